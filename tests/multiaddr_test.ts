/**
 * Multiaddr text and binary forms: table-driven good and bad cases, checked
 * against hand-written bytes from the multiaddr table, plus fuzzing that
 * nothing but NetworkError ever escapes.
 */

import fc from "fast-check";
import { Multiaddr, type MultiaddrComponent } from "../netcore/multiaddr.ts";
import { NetworkError } from "../netcore/network_error.ts";
import { encodeBase58 } from "../netcore/base58.ts";
import { assert, assertEquals } from "./_assert.ts";
import { toHex } from "./_bytes.ts";

/** A sha2-256 peer id (Qm...) and an identity one (12D3Koo..., an Ed25519 key). */
const SHA_ID = "QmYyQSo1c1Ym7orWxLYvCrM2EmxFTANf8wXmmE7DWjhx5N";
const ED_ID = "12D3KooWD3eckifWpRn9wQpMG9R9hX3sD158z7EqHWmweQAJU5SA";

/**
 * Good addresses: input, canonical text, binary (hex) per the multiaddr table
 * (ip4=04, tcp=06, ip6=29, dns=35, dns4=36, dns6=37, p2p=a503, memory=8906);
 * "" where the bytes are checked by a test of their own.
 */
const GOOD: [input: string, canonical: string, bytes: string][] = [
  ["/ip4/127.0.0.1/tcp/4001", "/ip4/127.0.0.1/tcp/4001", "047f000001060fa1"],
  ["/ip4/0.0.0.0/tcp/0", "/ip4/0.0.0.0/tcp/0", "0400000000060000"],
  ["/ip4/255.255.255.255/tcp/65535", "/ip4/255.255.255.255/tcp/65535", "04ffffffff06ffff"],
  ["/ip6/::1/tcp/80", "/ip6/::1/tcp/80", "2900000000000000000000000000000001060050"],
  ["/ip6/0:0:0:0:0:0:0:1/tcp/80", "/ip6/::1/tcp/80", "2900000000000000000000000000000001060050"],
  ["/ip6/::/tcp/1", "/ip6/::/tcp/1", "2900000000000000000000000000000000060001"],
  [
    "/ip6/2001:DB8:0:0:1:0:0:1/tcp/3",
    "/ip6/2001:db8::1:0:0:1/tcp/3",
    "2920010db8000000000001000000000001060003",
  ],
  [
    "/ip6/2001:db8:0:1:1:1:1:1/tcp/3",
    "/ip6/2001:db8:0:1:1:1:1:1/tcp/3",
    "2920010db8000000010001000100010001060003",
  ],
  [
    "/ip6/::ffff:10.0.0.1/tcp/7",
    "/ip6/::ffff:10.0.0.1/tcp/7",
    "2900000000000000000000ffff0a000001060007",
  ],
  ["/ip6/fe80::0001/tcp/9", "/ip6/fe80::1/tcp/9", "29fe800000000000000000000000000001060009"],
  ["/dns4/example.com/tcp/443", "/dns4/example.com/tcp/443", "360b6578616d706c652e636f6d0601bb"],
  ["/dns6/localhost/tcp/1", "/dns6/localhost/tcp/1", "37096c6f63616c686f7374060001"],
  ["/dns/a-b_c.d1/tcp/2", "/dns/a-b_c.d1/tcp/2", "3508612d625f632e6431060002"],
  ["/memory/0", "/memory/0", "89060000000000000000"],
  ["/memory/1234", "/memory/1234", "890600000000000004d2"],
  ["/memory/9007199254740991", "/memory/9007199254740991", "8906001fffffffffffff"],
  [
    `/ip4/1.2.3.4/tcp/5/p2p/${SHA_ID}`,
    `/ip4/1.2.3.4/tcp/5/p2p/${SHA_ID}`,
    "", // p2p bytes are checked on their own below
  ],
  [`/memory/3/p2p/${ED_ID}`, `/memory/3/p2p/${ED_ID}`, ""],
  [`/p2p/${ED_ID}`, `/p2p/${ED_ID}`, ""],
];

/** Bad text and the part of the message that says what was wrong. */
const BAD_TEXT: [input: string, message: RegExp][] = [
  ["", /must start with '\/'/],
  ["ip4/1.2.3.4/tcp/1", /must start with '\/'/],
  ["/", /empty multiaddr/],
  ["/udp/1", /unknown protocol "udp"/],
  ["/ip4/1.2.3.4/udp/1", /unknown protocol "udp"/],
  ["//ip4/1.2.3.4/tcp/1", /unknown protocol ""/],
  ["/ip4", /missing value for \/ip4/],
  ["/ip4/1.2.3.4/tcp", /missing value for \/tcp/],
  ["/ip4//tcp/1", /missing value for \/ip4/],
  ["/ip4/1.2.3.256/tcp/1", /bad IPv4 octet 256/],
  ["/ip4/1.2.3/tcp/1", /expected 4 octets/],
  ["/ip4/1.2.3.04/tcp/1", /bad IPv4 octet "04"/],
  ["/ip4/1.2.3.x/tcp/1", /bad IPv4 octet "x"/],
  ["/ip4/1.2.3.4/tcp/65536", /out of range 0\.\.65535/],
  ["/ip4/1.2.3.4/tcp/-1", /not a decimal number/],
  ["/ip4/1.2.3.4/tcp/01", /not a decimal number/],
  ["/ip4/1.2.3.4", /must be followed by \/tcp, got nothing/],
  ["/ip4/1.2.3.4/ip4/1.2.3.4", /must be followed by \/tcp, got \/ip4/],
  ["/ip4/1.2.3.4/tcp/1/", /trailing '\/'/],
  ["/ip4/1.2.3.4/tcp/1/tcp/2", /trailing garbage after \/ip4\/1\.2\.3\.4\/tcp\/1: \/tcp/],
  ["/memory/1/memory/2", /trailing garbage/],
  [`/p2p/${SHA_ID}/memory/1`, /trailing garbage/],
  [`/memory/1/p2p/${SHA_ID}/p2p/${SHA_ID}`, /trailing garbage/],
  ["/tcp/1", /cannot start with \/tcp/],
  ["/ip6/1::2::3/tcp/1", /more than one '::'/],
  ["/ip6/1:2:3:4:5:6:7/tcp/1", /expected 8 groups/],
  ["/ip6/1:2:3:4:5:6:7:8:9/tcp/1", /expected 8 groups/],
  ["/ip6/1:2:3:4::5:6:7:8/tcp/1", /too many groups/],
  ["/ip6/12345::/tcp/1", /bad group "12345"/],
  ["/ip6/fe80::1%eth0/tcp/1", /bad group/],
  ["/dns4/exa mple.com/tcp/1", /bad character/],
  ["/dns4/-bad.com/tcp/1", /bad character/],
  ["/dns4/a..b/tcp/1", /empty or over-long label/],
  [`/dns4/${"a".repeat(64)}.com/tcp/1`, /empty or over-long label/],
  ["/memory/9007199254740992", /out of range/],
  ["/memory/abc", /not a decimal number/],
  ["/p2p/Qm0OIl", /invalid base58 character "0"/],
  ["/p2p/Qmabc", /multihash says/],
  [`/p2p/${encodeBase58(new Uint8Array([0x11, 2, 1, 2]))}`, /code 0x11 not allowed/],
  [`/p2p/${encodeBase58(new Uint8Array([0x12, 2, 1, 2]))}`, /sha2-256 digest must be 32/],
  [`/p2p/${encodeBase58(new Uint8Array([0, 43, ...new Uint8Array(43)]))}`, /identity digest/],
  [`/p2p/1${SHA_ID}`, /./],
  [`/ip4/1.2.3.4/tcp/1${"/p2p/x".repeat(300)}`, /longer than 1024/],
];

/** Bad binary (hex) and the message part. */
const BAD_BYTES: [hex: string, message: RegExp][] = [
  ["", /empty multiaddr/],
  ["047f0000", /truncated \/ip4 value/],
  ["047f000001", /must be followed by \/tcp, got nothing/],
  ["047f00000106", /truncated \/tcp value/],
  ["ff", /./], // an unfinished varint
  ["8080808080808080808001", /./], // over-long varint
  ["8000", /./], // non-minimal varint
  ["11", /unknown protocol code 17/],
  ["047f000001060fa10401020304", /trailing garbage/],
  ["3600060001", /bad DNS name/],
  ["3602ffff060001", /not UTF-8/],
  ["36ff01" + "61".repeat(255) + "060001", /exceeds the limit of 253/],
  ["89060020000000000000", /memory port .* out of range/],
  ["a50303001234", /multihash says/],
  ["a5030411020102", /code 0x11 not allowed/],
  ["a503ff01" + "00".repeat(255), /exceeds the limit/],
];

Deno.test("Multiaddr.parse accepts the supported shapes and prints their canonical form", () => {
  for (const [input, canonical] of GOOD) {
    const addr = Multiaddr.parse(input);
    assertEquals(addr.toString(), canonical, input);
    assertEquals(Multiaddr.parse(canonical).toString(), canonical, `${canonical} is a fixed point`);
  }
});

Deno.test("binary form matches the multiaddr table and round-trips", () => {
  for (const [input, canonical, bytes] of GOOD) {
    const addr = Multiaddr.parse(input);
    if (bytes !== "") assertEquals(toHex(addr.bytes), bytes, input);
    const back = Multiaddr.fromBytes(addr.bytes);
    assertEquals(back.toString(), canonical, `${input} via bytes`);
    assert(back.equals(addr), `${input} equals its decoded bytes`);
    assertEquals(toHex(back.bytes), toHex(addr.bytes), `${input} re-encodes identically`);
  }
});

Deno.test("p2p binary is varint(length) + multihash", () => {
  const addr = Multiaddr.parse(`/memory/1/p2p/${SHA_ID}`);
  const bytes = addr.bytes;
  // memory (8906) + 8 bytes, then p2p code a503, length 0x22, 0x12 0x20 + 32 bytes.
  assertEquals(toHex(bytes.subarray(0, 10)), "89060000000000000001");
  assertEquals(toHex(bytes.subarray(10, 15)), "a503221220");
  assertEquals(bytes.length, 15 + 32);
  assertEquals(encodeBase58(bytes.subarray(13)), SHA_ID);
});

Deno.test("Multiaddr.parse rejects bad text with BAD_ADDRESS saying what was wrong", () => {
  for (const [input, message] of BAD_TEXT) {
    try {
      Multiaddr.parse(input);
    } catch (err) {
      assert(NetworkError.is(err, "BAD_ADDRESS"), `${input}: ${err}`);
      assert(message.test(err.message), `${JSON.stringify(input)}: message ${err.message}`);
      continue;
    }
    throw new Error(`${JSON.stringify(input)} was accepted`);
  }
});

Deno.test("Multiaddr.fromBytes rejects bad bytes with BAD_ADDRESS", () => {
  for (const [input, message] of BAD_BYTES) {
    const bytes = new Uint8Array(input.match(/../g)?.map((h) => parseInt(h, 16)) ?? []);
    try {
      Multiaddr.fromBytes(bytes);
    } catch (err) {
      assert(NetworkError.is(err, "BAD_ADDRESS"), `${input}: ${err}`);
      assert(message.test(err.message), `${input}: message ${err.message}`);
      continue;
    }
    throw new Error(`${input} was accepted`);
  }
  let tooLong = false;
  try {
    Multiaddr.fromBytes(new Uint8Array(513));
  } catch (err) {
    tooLong = NetworkError.is(err, "BAD_ADDRESS") && /longer than 512/.test(err.message);
  }
  assert(tooLong, "over-long input is refused before decoding");
});

Deno.test("accessors: tcpEndpoint, memoryPort, peerId, withPeerId, withoutPeerId, from", () => {
  const tcp6 = Multiaddr.parse("/ip6/::1/tcp/4001");
  assertEquals(tcp6.tcpEndpoint(), { hostname: "::1", port: 4001, family: "ip6" });
  assertEquals(tcp6.memoryPort(), undefined);
  assertEquals(Multiaddr.parse("/dns4/localhost/tcp/1").tcpEndpoint()?.family, "dns4");
  const mem = Multiaddr.parse("/memory/12");
  assertEquals([mem.memoryPort(), mem.tcpEndpoint(), mem.peerId], [12, undefined, undefined]);
  const full = tcp6.withPeerId(SHA_ID);
  assertEquals(full.toString(), `/ip6/::1/tcp/4001/p2p/${SHA_ID}`);
  assertEquals(full.peerId, SHA_ID);
  assertEquals(full.withPeerId(ED_ID).toString(), `/ip6/::1/tcp/4001/p2p/${ED_ID}`, "replaced");
  assert(full.withoutPeerId().equals(tcp6), "withoutPeerId");
  assert(tcp6.withoutPeerId() === tcp6, "no peer id: same object");
  const bare = Multiaddr.parse(`/p2p/${ED_ID}`);
  assertEquals([bare.peerId, bare.tcpEndpoint(), bare.withoutPeerId() === bare], [
    ED_ID,
    undefined,
    true,
  ]);
  let badId = false;
  try {
    tcp6.withPeerId("not-a-peer-id");
  } catch (err) {
    badId = NetworkError.is(err, "BAD_ADDRESS");
  }
  assert(badId, "withPeerId validates");
  assert(Multiaddr.from(full) === full, "from(Multiaddr) is identity");
  assert(Multiaddr.from(full.bytes).equals(full), "from(bytes)");
  assert(Multiaddr.from(full.toString()).equals(full), "from(text)");
  assert(!full.equals(tcp6), "different addresses differ");
});

Deno.test("bytes is a copy: changing it does not change the address", () => {
  const addr = Multiaddr.parse("/ip4/127.0.0.1/tcp/1");
  const bytes = addr.bytes;
  bytes[1] = 10;
  assertEquals(addr.toString(), "/ip4/127.0.0.1/tcp/1");
  const frozen = Object.isFrozen(addr.components) &&
    addr.components.every((c: MultiaddrComponent) => Object.isFrozen(c));
  assert(frozen, "components are frozen");
});

/** Runs `fn` and fails on anything thrown other than a BAD_ADDRESS NetworkError. */
function onlyBadAddress(fn: () => unknown): boolean {
  try {
    fn();
  } catch (err) {
    if (!NetworkError.is(err, "BAD_ADDRESS")) throw err;
  }
  return true;
}

const pieces = fc.constantFrom(
  "/",
  "ip4",
  "ip6",
  "dns4",
  "tcp",
  "memory",
  "p2p",
  "1.2.3.4",
  "::1",
  ":",
  ".",
  "0",
  "65535",
  "99999",
  SHA_ID,
  ED_ID,
  "Qm",
  "ffff",
  "localhost",
);

Deno.test("fuzz: random and protocol-shaped text only ever throws BAD_ADDRESS", () => {
  fc.assert(
    fc.property(fc.string({ maxLength: 200 }), (s) => onlyBadAddress(() => Multiaddr.parse(s))),
    {
      numRuns: 2000,
    },
  );
  fc.assert(
    fc.property(fc.array(pieces, { maxLength: 12 }), (parts) => {
      const text = parts.join("");
      return onlyBadAddress(() => {
        const addr = Multiaddr.parse(text);
        // Whatever parses must round-trip through both forms.
        assert(Multiaddr.parse(addr.toString()).equals(addr), `text round trip of ${text}`);
        assert(Multiaddr.fromBytes(addr.bytes).equals(addr), `byte round trip of ${text}`);
      });
    }),
    { numRuns: 3000 },
  );
});

Deno.test("fuzz: random and mutated bytes only ever throw BAD_ADDRESS", () => {
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 128 }), (bytes) =>
      onlyBadAddress(() => {
        const addr = Multiaddr.fromBytes(bytes);
        // Re-encoded from the parsed text, accepted bytes come back unchanged: one binary form each.
        assertEquals(
          toHex(Multiaddr.parse(addr.toString()).bytes),
          toHex(bytes),
          "canonical bytes",
        );
      })),
    { numRuns: 3000 },
  );
  const seeds = GOOD.map(([input]) => Multiaddr.parse(input).bytes);
  fc.assert(
    fc.property(
      fc.constantFrom(...seeds),
      fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), {
        minLength: 1,
        maxLength: 4,
      }),
      fc.nat(),
      (seed, edits, cut) => {
        const bytes = seed.slice(0, seed.length - (cut % 3));
        for (const [at, value] of edits) if (bytes.length > 0) bytes[at % bytes.length] = value;
        return onlyBadAddress(() => {
          const addr = Multiaddr.fromBytes(bytes);
          assert(
            Multiaddr.parse(addr.toString()).equals(addr),
            "decoded bytes print parseable text",
          );
        });
      },
    ),
    { numRuns: 5000 },
  );
});
