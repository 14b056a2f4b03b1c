/**
 * Signed envelopes (libp2p RFC 0002) and the peer records they carry (RFC
 * 0003): the encoding against a naive reference encoder written from the
 * RFCs, each refusal with its code, a fuzz of the opener on random, mutated
 * and signed-but-malformed input, and js-libp2p's `@libp2p/peer-record` byte
 * for byte in both directions.
 */

import fc from "fast-check";
import { generateKeyPairFromSeed, privateKeyToProtobuf } from "@libp2p/crypto/keys";
import { peerIdFromPrivateKey } from "@libp2p/peer-id";
import { PeerRecord as JsPeerRecord, RecordEnvelope } from "@libp2p/peer-record";
import {
  DEFAULT_MAX_PEER_RECORD_ADDRS,
  DEFAULT_MAX_SIGNED_ENVELOPE_BYTES,
  Ed25519Identity,
  openPeerRecord,
  openSignedEnvelope,
  PEER_RECORD_DOMAIN,
  type PeerRecord,
  sealPeerRecord,
  sealSignedEnvelope,
  verifyEd25519,
} from "../netcore/identity/mod.ts";
import { Multiaddr } from "../netcore/multiaddr.ts";
import { NetworkError, type NetworkErrorCode } from "../netcore/network_error.ts";
import { assert, assertEquals, assertRejects, assertThrows, assertThrowsCode } from "./_assert.ts";
import { concat, fromHex, toHex } from "./_bytes.ts";
import { mutate, mutation } from "./_mutate.ts";

const utf8 = (text: string) => new TextEncoder().encode(text);

// ---------------------------------------------------------------- a naive encoder

/** An unsigned varint, written the slow obvious way (bigint, so uint64 fits). */
function varint(value: number | bigint): Uint8Array {
  let v = BigInt(value);
  const out: number[] = [];
  while (v >= 0x80n) {
    out.push(Number(v & 0x7fn) | 0x80);
    v >>= 7n;
  }
  out.push(Number(v));
  return new Uint8Array(out);
}

/** A length-delimited protobuf field (wire type 2). */
function field(number: number, value: Uint8Array): Uint8Array {
  return concat([varint((number << 3) | 2), varint(value.length), value]);
}

/** A varint protobuf field (wire type 0). */
function varintField(number: number, value: bigint): Uint8Array {
  return concat([varint(number << 3), varint(value)]);
}

/** RFC 0003's PeerRecord; proto3 leaves out a zero seq. */
function naiveRecord(peerId: Uint8Array, seq: bigint, addrs: Uint8Array[]): Uint8Array {
  return concat([
    field(1, peerId),
    seq === 0n ? new Uint8Array(0) : varintField(2, seq),
    ...addrs.map((addr) => field(3, field(1, addr))),
  ]);
}

/** RFC 0002's signed data: each part prefixed with its varint length. */
function naiveSignedData(domain: string, payloadType: Uint8Array, payload: Uint8Array): Uint8Array {
  return concat(
    [utf8(domain), payloadType, payload].flatMap((part) => [varint(part.length), part]),
  );
}

/** RFC 0002's Envelope, fields 1, 2, 3 and 5 (an empty one is left out, as proto3 does). */
function naiveEnvelope(
  publicKeyProto: Uint8Array,
  payloadType: Uint8Array,
  payload: Uint8Array,
  signature: Uint8Array,
): Uint8Array {
  const opt = (n: number, v: Uint8Array) => v.length === 0 ? new Uint8Array(0) : field(n, v);
  return concat([
    opt(1, publicKeyProto),
    opt(2, payloadType),
    opt(3, payload),
    opt(5, signature),
  ]);
}

const PAYLOAD_TYPE = new Uint8Array([0x03, 0x01]);

/** An envelope signed by `signer` around any `payload`, for refusals past the signature. */
function signedPayload(
  signer: Ed25519Identity,
  payload: Uint8Array,
  payloadType: Uint8Array = PAYLOAD_TYPE,
  domain = PEER_RECORD_DOMAIN,
): Uint8Array {
  return sealSignedEnvelope(signer, domain, payloadType, payload);
}

const alice = Ed25519Identity.fromSeed(new Uint8Array(32).fill(1));
const bob = Ed25519Identity.fromSeed(new Uint8Array(32).fill(2));

/**
 * Addresses whose binary form ours and js-multiaddr agree on. Not
 * `/memory/`: ours writes its value as 8 bytes (a u64, as rust-multiaddr
 * does), js-multiaddr 13 as a length-prefixed string, so the js tests leave
 * it out.
 */
const WIRE_ADDRS = [
  "/ip4/192.0.2.1/tcp/4001",
  "/ip6/2001:db8::7/tcp/4001",
  "/dns4/validator-3.example.org/tcp/30333",
].map((text) => Multiaddr.parse(text));
const ADDRS = [...WIRE_ADDRS, Multiaddr.parse("/memory/12")];

function sameRecord(actual: PeerRecord, expected: PeerRecord, label = ""): void {
  assert(actual.peerId.equals(expected.peerId), `${label} peer id`);
  assertEquals(actual.seq, expected.seq, `${label} seq`);
  assertEquals(
    actual.addrs.map(String),
    expected.addrs.map(String),
    `${label} addresses`,
  );
}

// ---------------------------------------------------------------- round trip and layout

Deno.test("round trip: what is sealed opens as the same record", () => {
  const cases: [string, bigint, Multiaddr[]][] = [
    ["no addresses, seq 0", 0n, []],
    ["one address", 1n, ADDRS.slice(0, 1)],
    ["every kind of address", 1_700_000_000_000n, ADDRS],
    ["with /p2p/ suffixes", 5n, ADDRS.map((a) => a.withPeerId(alice.peerId.toString()))],
    ["the largest seq", (1n << 64n) - 1n, ADDRS.slice(1, 2)],
    ["the limit of addresses", 9n, Array(DEFAULT_MAX_PEER_RECORD_ADDRS).fill(ADDRS[0])],
  ];
  for (const [name, seq, addrs] of cases) {
    const bytes = sealPeerRecord(alice, { seq, addrs });
    const record = openPeerRecord(bytes);
    sameRecord(record, { peerId: alice.peerId, seq, addrs }, name);
    assertEquals(sealPeerRecord(alice, { seq, addrs }), bytes, `${name}: deterministic`);
    assertEquals(
      sealPeerRecord(alice, { peerId: alice.peerId, seq, addrs }),
      bytes,
      `${name}: peerId given explicitly`,
    );
  }
});

Deno.test("encoding is the RFCs' messages, byte for byte, signed over the RFC's data", () => {
  const seq = 1_700_000_000_123n;
  const record = naiveRecord(alice.peerId.bytes, seq, ADDRS.map((a) => a.bytes));
  const data = naiveSignedData("libp2p-peer-record", PAYLOAD_TYPE, record);
  const signature = alice.sign(data);
  const expected = naiveEnvelope(alice.marshalPublicKey(), PAYLOAD_TYPE, record, signature);
  assertEquals(toHex(sealPeerRecord(alice, { seq, addrs: ADDRS })), toHex(expected));
  assert(verifyEd25519(alice.publicKey, data, signature), "the signature covers the RFC's data");
  // The generic envelope: an empty payload type and payload are left out.
  const empty = sealSignedEnvelope(alice, "d", new Uint8Array(0), new Uint8Array(0));
  const emptySig = alice.sign(fromHex("01 64 00 00"));
  assertEquals(
    toHex(empty),
    toHex(naiveEnvelope(alice.marshalPublicKey(), new Uint8Array(0), new Uint8Array(0), emptySig)),
  );
  const opened = openSignedEnvelope(empty, "d");
  assertEquals(opened.payloadType, new Uint8Array(0));
  assertEquals(opened.payload, new Uint8Array(0));
  assertEquals(opened.publicKey, alice.publicKey);
  assert(opened.signer.equals(alice.peerId), "signer");
});

Deno.test("sealing refuses caller bugs: another peer's id, a seq outside uint64", () => {
  assertThrows(
    () => sealPeerRecord(alice, { peerId: bob.peerId, seq: 1n, addrs: [] }),
    RangeError,
    "cannot be signed",
  );
  assertThrows(() => sealPeerRecord(alice, { seq: -1n, addrs: [] }), RangeError, "seq");
  assertThrows(() => sealPeerRecord(alice, { seq: 1n << 64n, addrs: [] }), RangeError, "seq");
  assertThrows(
    () => sealPeerRecord(alice, { seq: 1 as unknown as bigint, addrs: [] }),
    RangeError,
    "seq",
  );
});

// ---------------------------------------------------------------- refusals

/** Fails unless `open(bytes)` throws `code` with a message including `includes`. */
function refused(
  name: string,
  bytes: Uint8Array,
  code: NetworkErrorCode,
  includes: string,
  options?: Parameters<typeof openPeerRecord>[1],
): void {
  const err = assertThrowsCode(() => openPeerRecord(bytes, options), code, name);
  assert(err.message.includes(includes), `${name}: message ${JSON.stringify(err.message)}`);
}

Deno.test("refused: a forged signature, or a signature by another key (UNAUTHORIZED)", () => {
  const good = sealPeerRecord(alice, { seq: 3n, addrs: ADDRS });
  for (const at of [1, 17, 40, 63]) {
    const forged = good.slice();
    forged[good.length - 64 + at] ^= 0x10;
    refused(`signature byte ${at} flipped`, forged, "UNAUTHORIZED", "signature does not verify");
  }
  const record = openSignedEnvelope(good, PEER_RECORD_DOMAIN).payload;
  const bobsSignature = bob.sign(naiveSignedData(PEER_RECORD_DOMAIN, PAYLOAD_TYPE, record));
  refused(
    "Alice's key, Bob's signature",
    naiveEnvelope(alice.marshalPublicKey(), PAYLOAD_TYPE, record, bobsSignature),
    "UNAUTHORIZED",
    "signature does not verify",
  );
  const aliceSignature = alice.sign(naiveSignedData(PEER_RECORD_DOMAIN, PAYLOAD_TYPE, record));
  refused(
    "Bob's key put on Alice's signature",
    naiveEnvelope(bob.marshalPublicKey(), PAYLOAD_TYPE, record, aliceSignature),
    "UNAUTHORIZED",
    "signature does not verify",
  );
  refused(
    "no signature",
    naiveEnvelope(alice.marshalPublicKey(), PAYLOAD_TYPE, record, new Uint8Array(0)),
    "UNAUTHORIZED",
    "signature does not verify",
  );
  const edited = naiveRecord(alice.peerId.bytes, 4n, []);
  refused(
    "the record edited after signing",
    naiveEnvelope(alice.marshalPublicKey(), PAYLOAD_TYPE, edited, aliceSignature),
    "UNAUTHORIZED",
    "signature does not verify",
  );
});

Deno.test("refused: a record about a peer other than its signer (UNAUTHORIZED)", () => {
  // Bob's record, correctly signed by Alice: a relay cannot vouch for Bob.
  const bobsRecord = naiveRecord(bob.peerId.bytes, 1n, [ADDRS[0].bytes]);
  refused(
    "Bob's record signed by Alice",
    signedPayload(alice, bobsRecord),
    "UNAUTHORIZED",
    "signed by another peer",
  );
  // A sha2-256 peer id is a valid id, but never an Ed25519 signer's.
  const shaRecord = naiveRecord(fromHex("1220" + "ab".repeat(32)), 1n, []);
  refused("a Qm... id", signedPayload(alice, shaRecord), "UNAUTHORIZED", "signed by another peer");
});

Deno.test("refused: wrong payload type (PROTOCOL_VIOLATION), wrong domain (UNAUTHORIZED)", () => {
  const record = naiveRecord(alice.peerId.bytes, 1n, [ADDRS[0].bytes]);
  for (
    const [name, type] of [
      ["0x0302", fromHex("0302")],
      ["the varint of 0x0301", fromHex("8106")],
      ["empty", new Uint8Array(0)],
      ["0x0301 and more", fromHex("030100")],
    ] as const
  ) {
    refused(
      `payload type ${name}`,
      signedPayload(alice, record, type),
      "PROTOCOL_VIOLATION",
      "payload type",
    );
  }
  for (const domain of ["libp2p-routing-state", "libp2p-peer-recorD", "", "libp2p-peer-record\0"]) {
    refused(
      `domain ${JSON.stringify(domain)}`,
      signedPayload(alice, record, PAYLOAD_TYPE, domain),
      "UNAUTHORIZED",
      'for domain "libp2p-peer-record"',
    );
  }
  // The same payload type check in the generic opener.
  assertThrowsCode(
    () =>
      openSignedEnvelope(signedPayload(alice, record), PEER_RECORD_DOMAIN, {
        payloadType: fromHex("0302"),
      }),
    "PROTOCOL_VIOLATION",
  );
});

Deno.test("refused: oversize envelopes and too many addresses (FRAME_TOO_LARGE)", () => {
  // 20 long DNS names: few addresses, many bytes.
  const name = (i: number) => `${"a".repeat(60)}.${"b".repeat(60)}.${"c".repeat(60)}.n${i}.example`;
  const long = Array.from({ length: 20 }, (_, i) => Multiaddr.parse(`/dns4/${name(i)}/tcp/1`));
  const big = sealPeerRecord(alice, { seq: 1n, addrs: long });
  assert(big.length > DEFAULT_MAX_SIGNED_ENVELOPE_BYTES, `test record of ${big.length} bytes`);
  refused("over 4096 bytes", big, "FRAME_TOO_LARGE", "exceeds the limit of 4096");
  sameRecord(
    openPeerRecord(big, { maxBytes: big.length }),
    { peerId: alice.peerId, seq: 1n, addrs: long },
    "a raised maxBytes",
  );
  const small = sealPeerRecord(alice, { seq: 1n, addrs: ADDRS });
  refused("over a lowered maxBytes", small, "FRAME_TOO_LARGE", "exceeds the limit of 100", {
    maxBytes: 100,
  });

  const many = Array(DEFAULT_MAX_PEER_RECORD_ADDRS + 1).fill(ADDRS[0]);
  const tooMany = sealPeerRecord(alice, { seq: 1n, addrs: many });
  assert(tooMany.length <= DEFAULT_MAX_SIGNED_ENVELOPE_BYTES, "small enough in bytes");
  refused("33 addresses", tooMany, "FRAME_TOO_LARGE", "33 addresses, more than the limit of 32");
  assertEquals(openPeerRecord(tooMany, { maxAddrs: 33 }).addrs.length, 33, "a raised maxAddrs");
  refused("one address over maxAddrs 0", small, "FRAME_TOO_LARGE", "limit of 0", { maxAddrs: 0 });
});

Deno.test("refused: truncated envelopes, at every length", () => {
  const good = sealPeerRecord(alice, { seq: 2n, addrs: ADDRS });
  for (let n = 0; n < good.length; n++) {
    const err = assertThrowsCode(
      () => openPeerRecord(good.subarray(0, n)),
      ["PROTOCOL_VIOLATION", "UNAUTHORIZED"],
      `${n} of ${good.length} bytes`,
    );
    // Cut inside a field, the protobuf is malformed; cut between fields, a
    // field is missing, and what is left is not signed.
    assert(
      err.code === "PROTOCOL_VIOLATION" || /signature does not verify/.test(err.message),
      err.message,
    );
  }
  assertThrowsCode(() => openPeerRecord(good.subarray(0, good.length - 1)), "PROTOCOL_VIOLATION");
});

Deno.test("refused: malformed keys, records, peer ids and addresses (PROTOCOL_VIOLATION)", () => {
  const record = naiveRecord(alice.peerId.bytes, 1n, [ADDRS[0].bytes]);
  const sig = alice.sign(naiveSignedData(PEER_RECORD_DOMAIN, PAYLOAD_TYPE, record));
  const withKey = (key: Uint8Array) => naiveEnvelope(key, PAYLOAD_TYPE, record, sig);
  refused("no public key", withKey(new Uint8Array(0)), "PROTOCOL_VIOLATION", "no public key");
  refused(
    "a Secp256k1 key",
    withKey(fromHex("08021221037777e994e452c21604f91de093ce415f5432f701dd8cd1a7a6fea0e630bfca99")),
    "PROTOCOL_VIOLATION",
    "unsupported libp2p key type Secp256k1",
  );
  refused(
    "a 31-byte key",
    withKey(concat([fromHex("0801121f"), alice.publicKey.subarray(1)])),
    "PROTOCOL_VIOLATION",
    "must be 32 bytes",
  );
  refused("a key without Type", withKey(field(2, alice.publicKey)), "PROTOCOL_VIOLATION", "lacks");
  refused(
    "not a protobuf",
    fromHex("ff".repeat(40)),
    "PROTOCOL_VIOLATION",
    "malformed signed envelope",
  );

  const signed: [string, Uint8Array, string][] = [
    ["a record that is not a protobuf", fromHex("0a"), "malformed peer record"],
    ["a record without a peer id", naiveRecord(new Uint8Array(0), 1n, []), "peer record peer id"],
    [
      "a record with a garbage peer id",
      naiveRecord(fromHex("0004deadbeef"), 1n, []),
      "peer record peer id",
    ],
    [
      // The fuzz-found non-canonical id of the same key: it is not Alice's id.
      "Alice's key, non-canonically encoded, as the peer id",
      naiveRecord(concat([fromHex("0024 1220"), alice.publicKey, fromHex("0801")]), 1n, []),
      "non-canonical",
    ],
    ["an empty address", naiveRecord(alice.peerId.bytes, 1n, [new Uint8Array(0)]), "address 0"],
    [
      "an address this stack does not speak (/udp)",
      naiveRecord(alice.peerId.bytes, 1n, [ADDRS[0].bytes, fromHex("04 7f000001 9102 0fa1")]),
      "address 1",
    ],
  ];
  for (const [name, payload, includes] of signed) {
    refused(name, signedPayload(alice, payload), "PROTOCOL_VIOLATION", includes);
  }
});

// ---------------------------------------------------------------- fuzz

/** Runs `openPeerRecord`; anything thrown must be a NetworkError of the documented codes. */
function openOrRefuse(bytes: Uint8Array): PeerRecord | undefined {
  try {
    return openPeerRecord(bytes);
  } catch (err) {
    if (!NetworkError.is(err, "PROTOCOL_VIOLATION", "UNAUTHORIZED", "FRAME_TOO_LARGE")) throw err;
    return undefined;
  }
}

/** Addresses of every kind but `/memory/` (see {@linkcode WIRE_ADDRS}). */
const wireAddrArb: fc.Arbitrary<Multiaddr> = fc.oneof(
  fc.tuple(fc.uint8Array({ minLength: 4, maxLength: 4 }), fc.integer({ min: 0, max: 65535 })).map(
    ([ip, port]) => Multiaddr.parse(`/ip4/${ip.join(".")}/tcp/${port}`),
  ),
  fc.tuple(fc.uint8Array({ minLength: 16, maxLength: 16 }), fc.integer({ min: 0, max: 65535 }))
    .map(([ip, port]) =>
      Multiaddr.fromBytes(
        concat([fromHex("29"), ip, fromHex("06"), new Uint8Array([port >> 8, port & 0xff])]),
      )
    ),
  fc.stringMatching(/^[a-z][a-z0-9-]{0,20}[a-z0-9](\.[a-z]{2,8}){1,3}$/).map((host) =>
    Multiaddr.parse(`/dns4/${host}/tcp/443`)
  ),
);
const addrArb: fc.Arbitrary<Multiaddr> = fc.oneof(
  wireAddrArb,
  fc.integer({ min: 0, max: 1 << 30 }).map((n) => Multiaddr.parse(`/memory/${n}`)),
);

const recordOf = (addr: fc.Arbitrary<Multiaddr>) =>
  fc.record({
    seed: fc.uint8Array({ minLength: 32, maxLength: 32 }),
    seq: fc.bigInt({ min: 0n, max: (1n << 64n) - 1n }),
    addrs: fc.array(addr, { maxLength: 6 }),
  });
const recordArb = recordOf(addrArb);

Deno.test("fuzz: random and mutated envelopes throw only NetworkError; whatever opens is what was signed", () => {
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 300 }), (bytes) => {
      assertEquals(openOrRefuse(bytes), undefined, "random bytes never carry a valid signature");
    }),
    { numRuns: 2000 },
  );
  fc.assert(
    fc.property(recordArb, fc.array(mutation, { minLength: 1, maxLength: 4 }), (r, ms) => {
      const me = Ed25519Identity.fromSeed(r.seed);
      const sealed = sealPeerRecord(me, { seq: r.seq, addrs: r.addrs });
      const opened = openOrRefuse(mutate(sealed, ms));
      // A mutation may keep the envelope valid (an edit the protobuf reader
      // forgives), never change what it says.
      if (opened !== undefined) {
        sameRecord(opened, { peerId: me.peerId, seq: r.seq, addrs: r.addrs });
      }
    }),
    { numRuns: 1000 },
  );
});

Deno.test("fuzz: mutated records, validly signed, throw only NetworkError", () => {
  // Signing each mutated payload gets it past the signature, to the record
  // decoder, the peer id and the addresses.
  fc.assert(
    fc.property(recordArb, fc.array(mutation, { minLength: 1, maxLength: 4 }), (r, ms) => {
      const me = Ed25519Identity.fromSeed(r.seed);
      const payload = naiveRecord(me.peerId.bytes, r.seq, r.addrs.map((a) => a.bytes));
      const opened = openOrRefuse(signedPayload(me, mutate(payload, ms)));
      if (opened !== undefined) {
        assert(opened.peerId.equals(me.peerId), "an opened record is always the signer's");
        assert(opened.addrs.length <= DEFAULT_MAX_PEER_RECORD_ADDRS, "address limit");
      }
    }),
    { numRuns: 1000 },
  );
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 200 }), (payload) => {
      openOrRefuse(signedPayload(alice, payload));
    }),
    { numRuns: 1000 },
  );
});

// ---------------------------------------------------------------- js-libp2p

/** The same private key on both sides: js-libp2p's from a seed, ours imported from its protobuf. */
async function bothKeys(seed: Uint8Array) {
  const theirs = await generateKeyPairFromSeed("Ed25519", seed);
  const ours = Ed25519Identity.fromProtobuf(privateKeyToProtobuf(theirs));
  return { theirs, theirId: peerIdFromPrivateKey(theirs), ours };
}

async function interopBothWays(seed: Uint8Array, seq: bigint, addrs: Multiaddr[], label: string) {
  const { theirs, theirId, ours } = await bothKeys(seed);
  assertEquals(ours.peerId.toString(), theirId.toString(), label);

  // js-libp2p seals; the record's addresses are its own multiaddrs, parsed by
  // it from the naive encoder's bytes, not from ours.
  const addrsOf = JsPeerRecord.createFromProtobuf(
    naiveRecord(ours.peerId.bytes, seq, addrs.map((a) => a.bytes)),
  ).multiaddrs;
  const theirRecord = new JsPeerRecord({ peerId: theirId, seqNumber: seq, multiaddrs: addrsOf });
  const theirEnvelope = (await RecordEnvelope.seal(theirRecord, theirs)).marshal();

  // ...ours opens it, and seals the same record to the same bytes.
  sameRecord(openPeerRecord(theirEnvelope), { peerId: ours.peerId, seq, addrs }, label);
  const ourEnvelope = sealPeerRecord(ours, { seq, addrs });
  assertEquals(toHex(ourEnvelope), toHex(theirEnvelope), `${label}: identical envelopes`);

  // Ours seals; js-libp2p certifies it and reads the same record.
  const certified = await RecordEnvelope.openAndCertify(ourEnvelope, JsPeerRecord.DOMAIN);
  assertEquals(toHex(certified.payloadType), toHex(JsPeerRecord.CODEC), label);
  assert(certified.publicKey.equals(theirs.publicKey), `${label}: js sees our key`);
  const read = JsPeerRecord.createFromProtobuf(certified.payload);
  assert(read.peerId.equals(theirId), `${label}: js reads our peer id`);
  assertEquals(read.seqNumber, seq, label);
  assertEquals(read.multiaddrs.map((m) => toHex(m.bytes)), addrs.map((a) => toHex(a.bytes)), label);
}

Deno.test("js-libp2p @libp2p/peer-record: identical envelopes, each opens the other's", async () => {
  const seeds = [
    new Uint8Array(32),
    new Uint8Array(32).fill(1),
    fromHex("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60"),
  ];
  for (const [i, seed] of seeds.entries()) {
    await interopBothWays(seed, 0n, [], `seed ${i}, empty record`);
    await interopBothWays(
      seed,
      1_700_000_000_000n,
      WIRE_ADDRS,
      `seed ${i}, three kinds of address`,
    );
    await interopBothWays(
      seed,
      (1n << 64n) - 1n,
      [WIRE_ADDRS[0].withPeerId(Ed25519Identity.fromSeed(seed).peerId.toString())],
      `seed ${i}, /p2p/ suffix and the largest seq`,
    );
  }
  await fc.assert(
    fc.asyncProperty(
      recordOf(wireAddrArb),
      (r) => interopBothWays(r.seed, r.seq, r.addrs, toHex(r.seed)),
    ),
    { numRuns: 40 },
  );
});

Deno.test("js-libp2p refuses what ours refuses: a forged signature, another domain", async () => {
  const { ours } = await bothKeys(new Uint8Array(32).fill(4));
  const good = sealPeerRecord(ours, { seq: 1n, addrs: WIRE_ADDRS });
  const forged = good.slice();
  forged[forged.length - 1] ^= 1;
  refused("forged, ours", forged, "UNAUTHORIZED", "signature does not verify");
  await assertRejects(
    () => RecordEnvelope.openAndCertify(forged, JsPeerRecord.DOMAIN),
    Error,
    "signature is not valid",
    "forged, js-libp2p",
  );
  await assertRejects(
    () => RecordEnvelope.openAndCertify(good, "libp2p-routing-state"),
    Error,
    "signature is not valid",
    "another domain, js-libp2p",
  );
});
