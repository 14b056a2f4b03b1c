/**
 * The libp2p-noise handshake payload (libp2p/specs noise/README.md):
 *
 * > The `identity_sig` field contains a signature, produced using the libp2p
 * > identity private key [...]. The data to be signed is the UTF-8 string
 * > `noise-libp2p-static-key:`, followed by the Noise static public key.
 *
 * Decoding verifies that signature against the static key the Noise
 * handshake authenticated, and every failure is HANDSHAKE_FAILED.
 */

import fc from "fast-check";
import { create, toBinary } from "@bufbuild/protobuf";
import { generateKeyPairFromSeed, publicKeyToProtobuf } from "@libp2p/crypto/keys";
import { peerIdFromPrivateKey } from "@libp2p/peer-id";
import {
  decodeNoiseHandshakePayload,
  Ed25519Identity,
  encodeNoiseHandshakePayload,
  MAX_NOISE_HANDSHAKE_PAYLOAD_BYTES,
} from "../netcore/identity/mod.ts";
import {
  NoiseExtensionsSchema,
  NoiseHandshakePayloadSchema,
} from "../netcore/proto/_gen/noise_payload_pb.ts";
import { NetworkError } from "../netcore/network_error.ts";
import { assert, assertEquals, assertThrowsCode } from "./_assert.ts";
import { concat, toHex } from "./_bytes.ts";

const utf8 = (text: string) => new TextEncoder().encode(text);

/** A naive protobuf encoder for length-delimited fields, for byte-exact comparison. */
function field(number: number, value: Uint8Array): Uint8Array {
  if (value.length > 127) throw new Error("naive encoder: short fields only");
  return concat([new Uint8Array([(number << 3) | 2, value.length]), value]);
}

const staticKey = (fill: number) => new Uint8Array(32).fill(fill);

Deno.test("round trip: the decoder returns the signer's peer id, key and extensions", () => {
  const me = Ed25519Identity.generate();
  const s = crypto.getRandomValues(new Uint8Array(32));
  const payload = encodeNoiseHandshakePayload(me, s, {
    streamMuxers: ["/yamux/1.0.0", "/mplex/6.7.0"],
  });
  const remote = decodeNoiseHandshakePayload(payload, s);
  assert(remote.peerId.equals(me.peerId), "peer id");
  assertEquals(remote.identityKey, me.publicKey);
  assertEquals(remote.extensions.streamMuxers, ["/yamux/1.0.0", "/mplex/6.7.0"]);
  assertEquals(remote.extensions.webtransportCerthashes, []);

  const bare = decodeNoiseHandshakePayload(encodeNoiseHandshakePayload(me, s), s);
  assert(bare.peerId.equals(me.peerId), "without extensions");
  assertEquals(bare.extensions, { streamMuxers: [], webtransportCerthashes: [] });
});

Deno.test("encoding is the spec's message, byte for byte (fields 1, 2, then 4)", () => {
  const me = Ed25519Identity.fromSeed(new Uint8Array(32).fill(5));
  const s = staticKey(7);
  const sig = me.sign(concat([utf8("noise-libp2p-static-key:"), s]));
  assertEquals(
    encodeNoiseHandshakePayload(me, s),
    concat([field(1, me.marshalPublicKey()), field(2, sig)]),
  );
  assertEquals(
    encodeNoiseHandshakePayload(me, s, { streamMuxers: ["/yamux/1.0.0"] }),
    concat([
      field(1, me.marshalPublicKey()),
      field(2, sig),
      field(4, field(2, utf8("/yamux/1.0.0"))),
    ]),
  );
});

Deno.test("a signature over another static key is rejected", () => {
  const me = Ed25519Identity.generate();
  const payload = encodeNoiseHandshakePayload(me, staticKey(1));
  const err = assertThrowsCode(
    () => decodeNoiseHandshakePayload(payload, staticKey(2)),
    "HANDSHAKE_FAILED",
    "wrong static key",
  );
  assert(err.message.includes("signature"), err.message);
});

Deno.test("a payload that verified is remembered for its static key only", () => {
  const me = Ed25519Identity.generate();
  const s = staticKey(9);
  const payload = encodeNoiseHandshakePayload(me, s, { streamMuxers: ["/yamux/1.0.0"] });
  const first = decodeNoiseHandshakePayload(payload, s);
  const again = decodeNoiseHandshakePayload(payload, s);
  assert(again.peerId.equals(first.peerId), "same peer id");
  assertEquals(again.extensions, first.extensions);
  // Results are the caller's own, cached or not.
  again.identityKey.fill(0);
  again.extensions.streamMuxers.push("/changed");
  assertEquals(decodeNoiseHandshakePayload(payload, s).identityKey, me.publicKey);
  assertEquals(decodeNoiseHandshakePayload(payload, s).extensions.streamMuxers, ["/yamux/1.0.0"]);
  // The remembered payload proves nothing for another static key.
  assertThrowsCode(
    () => decodeNoiseHandshakePayload(payload, staticKey(10)),
    "HANDSHAKE_FAILED",
    "cached payload, other static key",
  );
  // Field 1 (2 + 36 bytes), then the signature's tag and length: byte 50 is signed.
  const tampered = payload.slice();
  tampered[50] ^= 1;
  assertThrowsCode(
    () => decodeNoiseHandshakePayload(tampered, s),
    "HANDSHAKE_FAILED",
    "cached payload, one signature bit changed",
  );
});

Deno.test("a payload signed by one identity but naming another is rejected", () => {
  const alice = Ed25519Identity.generate();
  const mallory = Ed25519Identity.generate();
  const s = staticKey(3);
  const forged = toBinary(
    NoiseHandshakePayloadSchema,
    create(NoiseHandshakePayloadSchema, {
      identityKey: alice.marshalPublicKey(),
      identitySig: mallory.sign(concat([utf8("noise-libp2p-static-key:"), s])),
    }),
  );
  assertThrowsCode(
    () => decodeNoiseHandshakePayload(forged, s),
    "HANDSHAKE_FAILED",
    "forged identity",
  );
});

Deno.test("every single-bit change of the signed fields is rejected or leaves them intact", () => {
  const me = Ed25519Identity.fromSeed(new Uint8Array(32).fill(11));
  const s = staticKey(4);
  const payload = encodeNoiseHandshakePayload(me, s, { streamMuxers: ["/yamux/1.0.0"] });
  const signedEnd = 2 + 36 + 2 + 64; // identity_key and identity_sig fields
  let rejected = 0;
  for (let bit = 0; bit < signedEnd * 8; bit++) {
    const tampered = payload.slice();
    tampered[bit >> 3] ^= 1 << (bit & 7);
    let result;
    try {
      result = decodeNoiseHandshakePayload(tampered, s);
    } catch (err) {
      if (!NetworkError.is(err, "HANDSHAKE_FAILED")) throw err;
      rejected++;
      continue;
    }
    // The decoder is lenient about a tag's wire type (0x0a -> 0x0b still
    // reads field 1), which is harmless exactly when the signed key and
    // signature came through unchanged.
    assert(result.peerId.equals(me.peerId), `bit ${bit} accepted as ${result.peerId}`);
    assertEquals(result.identityKey, me.publicKey, `bit ${bit}`);
  }
  // Only the three wire-type bits of the four tags (two in the payload, two
  // in the key protobuf) may be tolerated.
  assert(rejected >= signedEnd * 8 - 12, `only ${rejected} flips rejected`);
});

Deno.test("malformed, truncated and oversized payloads fail with HANDSHAKE_FAILED", () => {
  const me = Ed25519Identity.generate();
  const s = staticKey(5);
  const payload = encodeNoiseHandshakePayload(me, s);
  for (let cut = 0; cut < payload.length; cut += 7) {
    assertThrowsCode(
      () => decodeNoiseHandshakePayload(payload.subarray(0, cut), s),
      "HANDSHAKE_FAILED",
      `cut ${cut}`,
    );
  }
  const cases: [string, Uint8Array][] = [
    ["empty", new Uint8Array(0)],
    ["bad wire type", new Uint8Array([0x0f, 0x00])],
    ["length beyond end", new Uint8Array([0x0a, 0x7f, 0x01])],
    ["oversized", new Uint8Array(MAX_NOISE_HANDSHAKE_PAYLOAD_BYTES + 1)],
    [
      "RSA identity key",
      concat([
        field(1, concat([new Uint8Array([0x08, 0x00]), field(2, new Uint8Array(32))])),
        field(2, new Uint8Array(64)),
      ]),
    ],
    [
      "secp256k1 identity key",
      concat([
        field(1, concat([new Uint8Array([0x08, 0x02]), field(2, new Uint8Array(33))])),
        field(2, new Uint8Array(64)),
      ]),
    ],
    [
      "invalid UTF-8 muxer",
      concat([
        field(1, me.marshalPublicKey()),
        field(2, new Uint8Array(64)),
        field(4, field(2, new Uint8Array([0xff, 0xfe]))),
      ]),
    ],
  ];
  for (const [name, bytes] of cases) {
    assertThrowsCode(() => decodeNoiseHandshakePayload(bytes, s), "HANDSHAKE_FAILED", name);
  }
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 200 }), (bytes) => {
      try {
        decodeNoiseHandshakePayload(bytes, s);
      } catch (err) {
        if (!NetworkError.is(err, "HANDSHAKE_FAILED")) throw err;
        return;
      }
      throw new Error("random bytes accepted as a signed payload");
    }),
    { numRuns: 500 },
  );
});

Deno.test("unknown fields and webtransport certhashes are carried, results are copies", () => {
  const me = Ed25519Identity.generate();
  const s = staticKey(6);
  const hash = new Uint8Array([0x12, 0x20, ...new Uint8Array(32).fill(0xab)]);
  const payload = concat([
    encodeNoiseHandshakePayload(me, s),
    field(4, concat([field(1, hash), field(2, utf8("/yamux/1.0.0"))])),
    field(9, utf8("future field")),
  ]);
  const remote = decodeNoiseHandshakePayload(payload, s);
  assertEquals(remote.extensions.webtransportCerthashes.map(toHex), [toHex(hash)]);
  assertEquals(remote.extensions.streamMuxers, ["/yamux/1.0.0"]);
  payload.fill(0);
  assertEquals(remote.extensions.webtransportCerthashes[0], hash, "certhash survives buffer reuse");
  assertEquals(remote.identityKey, me.publicKey, "key survives buffer reuse");
});

Deno.test("js-libp2p interop: a payload built with their crypto is accepted; ours is identical", async () => {
  for (let i = 0; i < 4; i++) {
    const seed = crypto.getRandomValues(new Uint8Array(32));
    const s = crypto.getRandomValues(new Uint8Array(32));
    const theirs = await generateKeyPairFromSeed("Ed25519", seed);
    const signature = await theirs.sign(concat([utf8("noise-libp2p-static-key:"), s]));
    const payload = toBinary(
      NoiseHandshakePayloadSchema,
      create(NoiseHandshakePayloadSchema, {
        identityKey: publicKeyToProtobuf(theirs.publicKey),
        identitySig: signature,
        extensions: create(NoiseExtensionsSchema, { streamMuxers: ["/yamux/1.0.0"] }),
      }),
    );
    const remote = decodeNoiseHandshakePayload(payload, s);
    assertEquals(remote.peerId.toString(), peerIdFromPrivateKey(theirs).toString());
    assertEquals(remote.identityKey, theirs.publicKey.raw);
    assertEquals(remote.extensions.streamMuxers, ["/yamux/1.0.0"]);

    const ours = encodeNoiseHandshakePayload(Ed25519Identity.fromSeed(seed), s, {
      streamMuxers: ["/yamux/1.0.0"],
    });
    assertEquals(ours, payload, "Ed25519 is deterministic, so the bytes match");
  }
});
