/**
 * The TypeScript ChaCha20-Poly1305 the native backend uses for short
 * messages: RFC 8439's AEAD vector, agreement with node:crypto on random
 * keys, nonces, associated data and every length around block boundaries,
 * and refusal of any tampered byte.
 */

import { createCipheriv } from "node:crypto";
import { ChaCha20Poly1305, SMALL_MESSAGE_MAX } from "../netcore/noise/_chacha20_poly1305.ts";
import { getCryptoBackend } from "../netcore/noise/crypto.ts";
import { assert, assertEquals } from "./_assert.ts";
import { fromHex, randomBytes, toHex } from "./_bytes.ts";

/** ciphertext || tag from node:crypto, the reference. */
function nodeSeal(
  key: Uint8Array,
  nonce: Uint8Array,
  ad: Uint8Array,
  plaintext: Uint8Array,
): Uint8Array {
  const cipher = createCipheriv("chacha20-poly1305", key, nonce, { authTagLength: 16 });
  cipher.setAAD(ad, { plaintextLength: plaintext.length });
  const body = cipher.update(plaintext);
  cipher.final();
  const out = new Uint8Array(plaintext.length + 16);
  out.set(body);
  out.set(cipher.getAuthTag(), plaintext.length);
  return out;
}

function word(bytes: Uint8Array, at: number): number {
  return new DataView(bytes.buffer, bytes.byteOffset).getUint32(at, true);
}

Deno.test("chacha20-poly1305: RFC 8439 section 2.8.2 AEAD test vector", () => {
  const key = Uint8Array.from({ length: 32 }, (_, i) => 0x80 + i);
  const nonce = fromHex("070000004041424344454647");
  const ad = fromHex("50515253c0c1c2c3c4c5c6c7");
  const plaintext = new TextEncoder().encode(
    "Ladies and Gentlemen of the class of '99: If I could offer you only one tip for the " +
      "future, sunscreen would be it.",
  );
  const aead = new ChaCha20Poly1305(word(nonce, 0));
  const sealed = new Uint8Array(plaintext.length + 16);
  aead.seal(key, word(nonce, 4), word(nonce, 8), ad, plaintext, sealed);
  assertEquals(
    toHex(sealed.subarray(0, 16)),
    "d31a8d34648e60db7b86afbc53ef7ec2",
    "first ciphertext block",
  );
  assertEquals(toHex(sealed.subarray(plaintext.length)), "1ae10b594f09e26a7e902ecbd0600691", "tag");
  const opened = new Uint8Array(plaintext.length);
  assert(aead.open(key, word(nonce, 4), word(nonce, 8), ad, sealed, opened), "tag accepted");
  assertEquals(opened, plaintext);
});

Deno.test("chacha20-poly1305: agrees with node:crypto on every length to 1100 and random inputs", () => {
  const aead = new ChaCha20Poly1305();
  for (let length = 0; length <= 1100; length++) {
    const key = randomBytes(32);
    // Noise's nonce: 32 zero bits, then the counter little-endian; high
    // counters and all-ones plaintexts reach the widest Poly1305 limbs.
    const counter = length % 3 === 0 ? 0xffff_fffe_ffff_ffffn : BigInt(length * 7919);
    const nonce = new Uint8Array(12);
    new DataView(nonce.buffer).setBigUint64(4, counter, true);
    const plaintext = length % 5 === 0 ? new Uint8Array(length).fill(0xff) : randomBytes(length);
    const ad = randomBytes(length % 67);
    const expected = nodeSeal(key, nonce, ad, plaintext);
    const sealed = new Uint8Array(length + 16);
    aead.seal(key, word(nonce, 4), word(nonce, 8), ad, plaintext, sealed);
    assertEquals(toHex(sealed), toHex(expected), `seal, ${length} bytes`);
    const opened = new Uint8Array(length);
    assert(aead.open(key, word(nonce, 4), word(nonce, 8), ad, expected, opened), `open ${length}`);
    assertEquals(opened, plaintext, `open, ${length} bytes`);
  }
});

Deno.test("chacha20-poly1305: seal works in place", () => {
  const aead = new ChaCha20Poly1305();
  const key = randomBytes(32), plaintext = randomBytes(100);
  const buffer = new Uint8Array(116);
  buffer.set(plaintext);
  aead.seal(key, 9, 0, new Uint8Array(0), buffer.subarray(0, 100), buffer);
  const nonce = new Uint8Array(12);
  nonce[4] = 9;
  assertEquals(toHex(buffer), toHex(nodeSeal(key, nonce, new Uint8Array(0), plaintext)));
});

Deno.test("chacha20-poly1305: any flipped bit, a wrong key, nonce or ad, or a short input is refused", () => {
  const aead = new ChaCha20Poly1305();
  const key = randomBytes(32), ad = randomBytes(5), plaintext = randomBytes(40);
  const sealed = new Uint8Array(56);
  aead.seal(key, 1, 2, ad, plaintext, sealed);
  const out = new Uint8Array(40).fill(0xaa);
  for (let bit = 0; bit < sealed.length * 8; bit++) {
    const tampered = sealed.slice();
    tampered[bit >> 3] ^= 1 << (bit & 7);
    assert(!aead.open(key, 1, 2, ad, tampered, out), `bit ${bit} flipped`);
  }
  assert(out.every((b) => b === 0xaa), "nothing written on failure");
  const otherKey = key.slice();
  otherKey[31] ^= 0x80;
  assert(!aead.open(otherKey, 1, 2, ad, sealed, out), "wrong key");
  assert(!aead.open(key, 2, 2, ad, sealed, out), "wrong nonce (low word)");
  assert(!aead.open(key, 1, 3, ad, sealed, out), "wrong nonce (high word)");
  assert(!aead.open(key, 1, 2, ad.subarray(1), sealed, out), "wrong ad");
  assert(!aead.open(key, 1, 2, ad, sealed.subarray(0, 15), out), "shorter than a tag");
  assert(aead.open(key, 1, 2, ad, sealed, out), "the untouched message");
  assertEquals(out, plaintext);
});

Deno.test("chacha20-poly1305: the native backend gives the same bytes on both sides of its size switch", () => {
  const native = getCryptoBackend("native").cipher("ChaChaPoly");
  const noble = getCryptoBackend("noble").cipher("ChaChaPoly");
  const key = randomBytes(32), ad = randomBytes(3);
  for (const length of [0, 1, SMALL_MESSAGE_MAX - 1, SMALL_MESSAGE_MAX, SMALL_MESSAGE_MAX + 1]) {
    const plaintext = randomBytes(length);
    const nonce = 0x1_0000_0001n * BigInt(length + 1);
    const sealed = native.encrypt(key, nonce, ad, plaintext);
    assertEquals(toHex(sealed), toHex(noble.encrypt(key, nonce, ad, plaintext)), `${length} bytes`);
    assertEquals(native.decrypt(key, nonce, ad, sealed), plaintext, `${length} bytes back`);
  }
});
