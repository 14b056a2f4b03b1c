/**
 * libp2p identities (libp2p/specs peer-ids/peer-ids.md): Ed25519 keys in the
 * `PublicKey`/`PrivateKey` protobufs, peer ids as multihashes of the public
 * key protobuf, their base58btc and CIDv1 text forms. Checked against RFC
 * 8032, the spec's test vectors, and js-libp2p itself (@libp2p/crypto,
 * @libp2p/peer-id) byte for byte in both directions.
 */

import fc from "fast-check";
import {
  generateKeyPairFromSeed,
  privateKeyFromProtobuf,
  privateKeyToProtobuf,
  publicKeyFromProtobuf,
  publicKeyToProtobuf,
} from "@libp2p/crypto/keys";
import { peerIdFromPrivateKey, peerIdFromString } from "@libp2p/peer-id";
import {
  Ed25519Identity,
  marshalEd25519PublicKey,
  PeerId,
  unmarshalPublicKey,
  verifyEd25519,
} from "../netcore/identity/mod.ts";
import { withNobleBackend } from "../netcore/identity/_ed25519.ts";
import { encodeBase32 } from "../netcore/identity/_base32.ts";
import { encodeBase58 } from "../netcore/base58.ts";
import { NetworkError } from "../netcore/network_error.ts";
import { assert, assertEquals, assertThrowsCode } from "./_assert.ts";
import { concat, fromHex, toHex } from "./_bytes.ts";
import { mutate, mutation } from "./_mutate.ts";

// RFC 8032 section 7.1, TEST 1 (empty message).
const RFC8032_1 = {
  secret: "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60",
  public: "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a",
  signature:
    "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b",
};

// libp2p/specs peer-ids/peer-ids.md, "Test vectors".
const SPEC = {
  ed25519Private:
    "080112407e0830617c4a7de83925dfb2694556b12936c477a0e1feb2e148ec9da60fee7d1ed1e8fae2c4a144b8be8fd4b47bf3d3b34b871c3cacf6010f0e42d474fce27e",
  ed25519Public: "080112201ed1e8fae2c4a144b8be8fd4b47bf3d3b34b871c3cacf6010f0e42d474fce27e",
  secp256k1Public: "08021221037777e994e452c21604f91de093ce415f5432f701dd8cd1a7a6fea0e630bfca99",
};

Deno.test("RFC 8032 test 1: seed -> public key and signature of the empty message", () => {
  const id = Ed25519Identity.fromSeed(fromHex(RFC8032_1.secret));
  assertEquals(id.publicKey, fromHex(RFC8032_1.public));
  assertEquals(id.sign(new Uint8Array(0)), fromHex(RFC8032_1.signature));
  assert(
    verifyEd25519(fromHex(RFC8032_1.public), new Uint8Array(0), fromHex(RFC8032_1.signature)),
    "RFC vector must verify",
  );
});

Deno.test("the noble fallback signs and verifies exactly as node:crypto does", () => {
  const seed = fromHex(RFC8032_1.secret);
  const viaNode = Ed25519Identity.fromSeed(seed);
  const data = new TextEncoder().encode("fallback");
  const sigNode = viaNode.sign(data);
  withNobleBackend(() => {
    const viaNoble = Ed25519Identity.fromSeed(seed);
    assertEquals(viaNoble.publicKey, viaNode.publicKey);
    assertEquals(viaNoble.sign(new Uint8Array(0)), fromHex(RFC8032_1.signature));
    assertEquals(viaNoble.sign(data), sigNode);
    assert(verifyEd25519(viaNode.publicKey, data, sigNode), "noble verifies node's signature");
    const bad = sigNode.slice();
    bad[5] ^= 1;
    assert(!verifyEd25519(viaNode.publicKey, data, bad), "noble rejects a flipped bit");
  });
});

Deno.test("fixed seed (all zeros) -> fixed PublicKey protobuf and peer id text", () => {
  const id = Ed25519Identity.fromSeed(new Uint8Array(32));
  assertEquals(
    id.marshalPublicKey(),
    fromHex("080112203b6a27bcceb6a42d62a3a8d02a6f0d73653215771de243a63ac048a18b59da29"),
  );
  assertEquals(id.peerId.toString(), "12D3KooWDpJ7As7BWAwRMfu1VU2WCqNjvq387JEYKDBj4kx6nXTN");
  assertEquals(
    id.peerId.toCidString(),
    "bafzaajaiaejcao3ke66m5nvefvrkhkgqfjxq243fgikxohpciotdvqciugfvtwrj",
  );
  // Identity multihash: code 0x00, length 36, then the protobuf itself.
  assertEquals(id.peerId.bytes, fromHex("0024" + toHex(id.marshalPublicKey())));
  assertEquals(id.peerId.publicKey, id.publicKey);
});

Deno.test("peer-id spec test vectors: Ed25519 private and public key protobufs", () => {
  const id = Ed25519Identity.fromProtobuf(fromHex(SPEC.ed25519Private));
  assertEquals(id.marshalPublicKey(), fromHex(SPEC.ed25519Public));
  assertEquals(id.marshalPrivateKey(), fromHex(SPEC.ed25519Private));
  assertEquals(unmarshalPublicKey(fromHex(SPEC.ed25519Public)).raw, id.publicKey);
  // A seed-only Data (32 bytes) is accepted too and yields the same identity.
  const seedOnly = fromHex("08011220" + SPEC.ed25519Private.slice(8, 8 + 64));
  assert(Ed25519Identity.fromProtobuf(seedOnly).peerId.equals(id.peerId), "seed-only form");
});

Deno.test("peer-id spec: key types other than Ed25519 are rejected, not misread", () => {
  const err = assertThrowsCode(
    () => unmarshalPublicKey(fromHex(SPEC.secp256k1Public)),
    ["PROTOCOL_VIOLATION"],
  );
  assert(err.message.includes("Secp256k1"), err.message);
});

Deno.test("peer-id spec examples: legacy base58btc and CIDv1 text of the same id", () => {
  // "bafzbeie5745rpv2m6tjyuugywy4d5ewrqgqqhfnf445he3omzpjbx5xqxe -- CIDv1 of QmYyQSo1c1Ym7orWxLYvCrM2EmxFTANf8wXmmE7DWjhx5N"
  const legacy = PeerId.parse("QmYyQSo1c1Ym7orWxLYvCrM2EmxFTANf8wXmmE7DWjhx5N");
  const cid = PeerId.parse("bafzbeie5745rpv2m6tjyuugywy4d5ewrqgqqhfnf445he3omzpjbx5xqxe");
  assert(legacy.equals(cid), "both forms name the same peer");
  assertEquals(cid.toString(), "QmYyQSo1c1Ym7orWxLYvCrM2EmxFTANf8wXmmE7DWjhx5N");
  assertEquals(legacy.toCidString(), "bafzbeie5745rpv2m6tjyuugywy4d5ewrqgqqhfnf445he3omzpjbx5xqxe");
  assertEquals(legacy.bytes.length, 34);
  assertEquals(legacy.publicKey, undefined, "a sha2-256 id carries no key");
  // "12D3KooWD3eckifWpRn9wQpMG9R9hX3sD158z7EqHWmweQAJU5SA -- Ed25519 using identity multihash"
  const inline = PeerId.parse("12D3KooWD3eckifWpRn9wQpMG9R9hX3sD158z7EqHWmweQAJU5SA");
  assertEquals(inline.toString(), "12D3KooWD3eckifWpRn9wQpMG9R9hX3sD158z7EqHWmweQAJU5SA");
  assert(
    PeerId.fromPublicKey(inline.publicKey!).equals(inline),
    "the inlined key gives back the id",
  );
});

Deno.test("round trips: seed -> protobufs -> identity, id -> text/bytes -> id", () => {
  fc.assert(
    fc.property(fc.uint8Array({ minLength: 32, maxLength: 32 }), (seed) => {
      const id = Ed25519Identity.fromSeed(seed);
      const again = Ed25519Identity.fromProtobuf(id.marshalPrivateKey());
      assertEquals(again.publicKey, id.publicKey);
      assert(again.peerId.equals(id.peerId), "private key round trip");
      assertEquals(unmarshalPublicKey(id.marshalPublicKey()).raw, id.publicKey);
      assert(PeerId.parse(id.peerId.toString()).equals(id.peerId), "base58 round trip");
      assert(PeerId.parse(id.peerId.toCidString()).equals(id.peerId), "CID round trip");
      assert(PeerId.fromBytes(id.peerId.bytes).equals(id.peerId), "bytes round trip");
      assertEquals(id.marshalPrivateKey().length, 68);
    }),
    { numRuns: 50 },
  );
});

Deno.test("a signature verifies only for its key, data and exact bytes", () => {
  const a = Ed25519Identity.generate();
  const b = Ed25519Identity.generate();
  const data = new TextEncoder().encode("validator set epoch 7");
  const sig = a.sign(data);
  assert(verifyEd25519(a.publicKey, data, sig), "genuine");
  assert(!verifyEd25519(b.publicKey, data, sig), "other key");
  assert(!verifyEd25519(a.publicKey, data.subarray(1), sig), "other data");
  for (let bit = 0; bit < 512; bit += 37) {
    const bad = sig.slice();
    bad[bit >> 3] ^= 1 << (bit & 7);
    assert(!verifyEd25519(a.publicKey, data, bad), `flipped bit ${bit}`);
  }
});

Deno.test("verifyEd25519 never throws, whatever the key, data and signature", () => {
  fc.assert(
    fc.property(
      fc.uint8Array({ maxLength: 40 }),
      fc.uint8Array({ maxLength: 16 }),
      fc.oneof(fc.uint8Array({ maxLength: 70 }), fc.uint8Array({ minLength: 64, maxLength: 64 })),
      (key, data, sig) => {
        assertEquals(verifyEd25519(key, data, sig), false);
      },
    ),
    { numRuns: 300 },
  );
  // Points not on the curve, and all-ones bytes, with well-formed lengths.
  assertEquals(
    verifyEd25519(new Uint8Array(32).fill(0xff), new Uint8Array(1), new Uint8Array(64)),
    false,
  );
  assertEquals(
    verifyEd25519(new Uint8Array(32).fill(2), new Uint8Array(1), new Uint8Array(64).fill(0xff)),
    false,
  );
});

Deno.test("malformed key protobufs throw only NetworkError", () => {
  const bad: [string, Uint8Array][] = [
    ["empty", new Uint8Array(0)],
    ["Type only", fromHex("0801")],
    ["Data only", fromHex("1220" + "00".repeat(32))],
    ["short key", fromHex("0801121f" + "00".repeat(31))],
    ["truncated", fromHex("08011220" + "00".repeat(31))],
    ["bad wire type", fromHex("0f01")],
    ["RSA", fromHex("08001220" + "00".repeat(32))],
    ["oversized", new Uint8Array(2048)],
  ];
  for (const [name, bytes] of bad) {
    assertThrowsCode(() => unmarshalPublicKey(bytes), ["PROTOCOL_VIOLATION"], name);
  }
  const good = fromHex(SPEC.ed25519Private);
  const mismatched = good.slice();
  mismatched[good.length - 1] ^= 1;
  assertThrowsCode(
    () => Ed25519Identity.fromProtobuf(mismatched),
    ["PROTOCOL_VIOLATION"],
    "public half must match the seed",
  );
  assertThrowsCode(
    () => Ed25519Identity.fromProtobuf(fromHex("08011221" + "00".repeat(33))),
    ["PROTOCOL_VIOLATION"],
    "33-byte private key",
  );
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 100 }), (bytes) => {
      for (const decode of [unmarshalPublicKey, Ed25519Identity.fromProtobuf]) {
        try {
          decode(bytes);
        } catch (err) {
          if (!NetworkError.is(err, "PROTOCOL_VIOLATION")) throw err;
        }
      }
    }),
    { numRuns: 500 },
  );
});

Deno.test("malformed peer ids throw NetworkError BAD_ADDRESS", () => {
  const key = marshalEd25519PublicKey(new Uint8Array(32).fill(3));
  const bad: [string, () => unknown][] = [
    ["empty bytes", () => PeerId.fromBytes(new Uint8Array(0))],
    ["code only", () => PeerId.fromBytes(fromHex("00"))],
    ["length beyond the end", () => PeerId.fromBytes(fromHex("0024" + toHex(key).slice(2)))],
    ["trailing byte", () => PeerId.fromBytes(fromHex("0024" + toHex(key) + "00"))],
    ["sha2-256 of 31 bytes", () => PeerId.fromBytes(fromHex("121f" + "00".repeat(31)))],
    ["sha1", () => PeerId.fromBytes(fromHex("1114" + "00".repeat(20)))],
    ["identity not a key", () => PeerId.fromBytes(fromHex("0004deadbeef"))],
    ["identity over 42 bytes", () => PeerId.fromBytes(fromHex("002b" + "00".repeat(43)))],
    ["empty text", () => PeerId.parse("")],
    ["not base58", () => PeerId.parse("12D3KooW0OIl")],
    ["huge text", () => PeerId.parse("Q".repeat(10_000))],
    [
      "CID of another codec",
      () => PeerId.parse("bafybeigdyrzt5sfp7udm7hu76uh7y26nf3efuylqabf3oclgtqy55fbzdi"),
    ],
    ["CID bad base32", () => PeerId.parse("bafz1")],
  ];
  for (const [name, fn] of bad) assertThrowsCode(fn, ["BAD_ADDRESS"], name);
  // Parsed ids are remembered; refusals are not, so they refuse every time.
  for (const [name, fn] of bad) assertThrowsCode(fn, ["BAD_ADDRESS"], `${name}, again`);
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 60 }), fc.string({ maxLength: 80 }), (bytes, text) => {
      for (const fn of [() => PeerId.fromBytes(bytes), () => PeerId.parse(text)]) {
        try {
          fn();
        } catch (err) {
          if (!NetworkError.is(err, "BAD_ADDRESS")) throw err;
        }
      }
    }),
    { numRuns: 500 },
  );
});

// ------------------------------------------------ one key is one peer

/** An unsigned varint of `value`, padded with `pad` redundant bytes (non-minimal when pad > 0). */
function paddedVarint(value: number, pad = 0): Uint8Array {
  const out: number[] = [];
  do {
    out.push((value & 0x7f) | 0x80);
    value >>>= 7;
  } while (value > 0);
  for (let i = 0; i < pad; i++) out.push(0x80);
  out[out.length - 1] &= 0x7f;
  return new Uint8Array(out);
}

/** An identity multihash around `inner`, as a peer id's bytes. */
function identityMultihash(inner: Uint8Array): Uint8Array {
  return concat([new Uint8Array([0x00]), paddedVarint(inner.length), inner]);
}

Deno.test("one key is one peer: non-canonical encodings of a key are refused", () => {
  // Found by fuzzing: Data before Type. It decodes as a key, and used to give
  // a second PeerId, unequal to the key's own.
  const fuzzFound = fromHex(
    "00241220c43435f8ed5cb432e311ed30163fb8a76550ccb2a4ab138bafcd482087c66f810801",
  );
  const key = fuzzFound.subarray(4, 36);
  assertEquals(unmarshalPublicKey(fuzzFound.subarray(2)).raw, key);
  const err = assertThrowsCode(() => PeerId.fromBytes(fuzzFound), "BAD_ADDRESS", "fuzz-found");
  assert(err.message.includes("non-canonical"), err.message);
  assertThrowsCode(() => PeerId.parse(encodeBase58(fuzzFound)), "BAD_ADDRESS", "as base58");
  assertThrowsCode(
    () => PeerId.parse("b" + encodeBase32(concat([new Uint8Array([0x01, 0x72]), fuzzFound]))),
    "BAD_ADDRESS",
    "as a CID",
  );
  const canonical = PeerId.fromPublicKey(key);
  assertEquals(canonical.bytes, identityMultihash(marshalEd25519PublicKey(key)));

  const type = (pad = 0) => concat([paddedVarint(0x08, pad), paddedVarint(1)]);
  const data = (pad = 0) => concat([new Uint8Array([0x12]), paddedVarint(32, pad), key]);
  const variants: [string, Uint8Array][] = [
    ["Data before Type", concat([data(), type()])],
    ["Type tag as a 2-byte varint", concat([type(1), data()])],
    ["Type value as a 2-byte varint", concat([new Uint8Array([0x08]), paddedVarint(1, 1), data()])],
    ["Data length as a 2-byte varint", concat([type(), data(1)])],
    ["Type twice", concat([type(), type(), data()])],
    ["an unknown varint field after", concat([type(), data(), new Uint8Array([0x18, 0x00])])],
    ["an unknown bytes field between", concat([type(), new Uint8Array([0x22, 0x00]), data()])],
  ];
  for (const [name, inner] of variants) {
    // Each is a protobuf decoder's reading of the same key...
    assertEquals(unmarshalPublicKey(inner).raw, key, name);
    // ...and none of them is a peer id.
    assertThrowsCode(() => PeerId.fromBytes(identityMultihash(inner)), "BAD_ADDRESS", name);
  }
  // sha2-256 ids carry no key and stay as they are.
  const sha = fromHex("1220" + "ab".repeat(32));
  assertEquals(PeerId.fromBytes(sha).bytes, sha);
});

/** One protobuf field of a `PublicKey`-like message, in one of its spellings. */
const keyField = (key: Uint8Array) =>
  fc.oneof(
    // Type, with the right value or another, tag and value maybe padded.
    fc.tuple(fc.constantFrom(0, 1, 2, 3), fc.nat({ max: 2 }), fc.nat({ max: 1 })).map((
      [value, tagPad, valuePad],
    ) => concat([paddedVarint(0x08, tagPad), paddedVarint(value, valuePad)])),
    // Data: the key, or a key one byte short or long, length maybe padded.
    fc.tuple(fc.constantFrom(31, 32, 33), fc.nat({ max: 1 })).map(([length, pad]) =>
      concat([
        new Uint8Array([0x12]),
        paddedVarint(length, pad),
        concat([key, new Uint8Array([7])]).subarray(0, length),
      ])
    ),
    // An unknown varint field.
    fc.tuple(fc.integer({ min: 3, max: 15 }), fc.nat({ max: 300 })).map(([number, value]) =>
      concat([paddedVarint(number << 3), paddedVarint(value)])
    ),
  );

/** Peer id candidates: identity multihashes of key-like protobufs, random and mutated ids. */
const peerIdCandidate: fc.Arbitrary<Uint8Array> = fc.uint8Array({ minLength: 32, maxLength: 32 })
  .chain((key) =>
    fc.oneof(
      fc.array(keyField(key), { maxLength: 4 }).map((fields) => identityMultihash(concat(fields))),
      fc.array(mutation, { maxLength: 3 }).map((ms) => mutate(PeerId.fromPublicKey(key).bytes, ms)),
      fc.array(mutation, { maxLength: 2 }).map((ms) =>
        mutate(concat([new Uint8Array([0x12, 0x20]), key]), ms)
      ),
      fc.uint8Array({ maxLength: 48 }),
    )
  );

Deno.test("property: a peer id that parses re-encodes to its bytes and is its key's own id", () => {
  let parsed = 0;
  fc.assert(
    fc.property(peerIdCandidate, (bytes) => {
      let id: PeerId;
      try {
        id = PeerId.fromBytes(bytes);
      } catch (err) {
        if (!NetworkError.is(err, "BAD_ADDRESS")) throw err;
        return;
      }
      parsed++;
      assertEquals(id.bytes, bytes, "the bytes it was read from");
      assert(PeerId.fromBytes(id.bytes).equals(id), "bytes round trip");
      assert(PeerId.parse(id.toString()).equals(id), "base58 round trip");
      assert(PeerId.parse(id.toCidString()).equals(id), "CID round trip");
      if (id.publicKey !== undefined) {
        const own = PeerId.fromPublicKey(id.publicKey);
        assert(own.equals(id), `${toHex(bytes)} is not its key's own id ${own}`);
        assertEquals(own.bytes, id.bytes);
      } else {
        assertEquals(bytes.length, 34, "only a sha2-256 id carries no key");
      }
    }),
    { numRuns: 3000 },
  );
  // The generator is not vacuous: some candidates are ids.
  assert(parsed > 0, "no candidate parsed");
});

Deno.test("peer ids compare by bytes and are not changed by the caller's buffers", () => {
  const seed = new Uint8Array(32).fill(9);
  const a = Ed25519Identity.fromSeed(seed);
  seed.fill(0);
  assert(
    a.peerId.equals(Ed25519Identity.fromSeed(new Uint8Array(32).fill(9)).peerId),
    "seed copied",
  );
  const bytes = a.peerId.bytes.slice();
  const b = PeerId.fromBytes(bytes);
  bytes[5] ^= 0xff;
  assert(b.equals(a.peerId), "fromBytes copies its input");
  assert(!b.equals(Ed25519Identity.fromSeed(new Uint8Array(32)).peerId), "different keys differ");
  assertEquals(JSON.stringify({ peer: a.peerId }), JSON.stringify({ peer: a.peerId.toString() }));
});

Deno.test("js-libp2p interop: same keys, protobufs, peer ids and signatures, both ways", async () => {
  const seeds = [new Uint8Array(32), fromHex(RFC8032_1.secret)];
  for (let i = 0; i < 6; i++) seeds.push(crypto.getRandomValues(new Uint8Array(32)));
  const data = new TextEncoder().encode("noise-libp2p-static-key:interop");
  for (const seed of seeds) {
    const theirs = await generateKeyPairFromSeed("Ed25519", seed);
    const theirId = peerIdFromPrivateKey(theirs);
    const ours = Ed25519Identity.fromSeed(seed);
    const label = toHex(seed);

    // Ours -> theirs.
    assertEquals(ours.marshalPrivateKey(), privateKeyToProtobuf(theirs), label);
    assertEquals(ours.marshalPublicKey(), publicKeyToProtobuf(theirs.publicKey), label);
    assertEquals(ours.peerId.toString(), theirId.toString(), label);
    assertEquals(ours.peerId.toCidString(), theirId.toCID().toString(), label);
    assertEquals(ours.peerId.bytes, theirId.toMultihash().bytes, label);
    assertEquals(
      peerIdFromString(ours.peerId.toString()).toString(),
      theirId.toString(),
      label,
    );
    const fromOurs = privateKeyFromProtobuf(ours.marshalPrivateKey());
    assertEquals(fromOurs.publicKey.raw, ours.publicKey, label);
    assertEquals(publicKeyFromProtobuf(ours.marshalPublicKey()).raw, ours.publicKey, label);

    // Theirs -> ours.
    const fromTheirs = Ed25519Identity.fromProtobuf(privateKeyToProtobuf(theirs));
    assert(fromTheirs.peerId.equals(ours.peerId), label);
    assert(PeerId.parse(theirId.toString()).equals(ours.peerId), label);
    assert(PeerId.parse(theirId.toCID().toString()).equals(ours.peerId), label);
    assert(PeerId.fromBytes(theirId.toMultihash().bytes).equals(ours.peerId), label);
    assert(PeerId.fromPublicKey(theirs.publicKey.raw).equals(ours.peerId), label);
    assertEquals(
      unmarshalPublicKey(publicKeyToProtobuf(theirs.publicKey)).raw,
      theirs.publicKey.raw,
    );

    // Signatures: Ed25519 is deterministic, so identical bytes; each verifies the other's.
    const theirSig = await theirs.sign(data);
    const ourSig = ours.sign(data);
    // Their signature is a Node Buffer: compare the bytes, not the class.
    assertEquals(ourSig, new Uint8Array(theirSig), label);
    assert(verifyEd25519(ours.publicKey, data, theirSig), `we verify theirs ${label}`);
    assert(await theirs.publicKey.verify(data, ourSig), `they verify ours ${label}`);
  }
});
