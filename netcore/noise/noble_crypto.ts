/**
 * The `noble` crypto backend: pure TypeScript from `@noble/ciphers`,
 * `@noble/curves` and `@noble/hashes`, for runtimes without `node:crypto`
 * and as an independent second implementation the vectors check against the
 * native one.
 *
 * @module
 */

import { chacha20poly1305 } from "@noble/ciphers/chacha.js";
import { gcm } from "@noble/ciphers/aes.js";
import { x25519 } from "@noble/curves/ed25519.js";
import { sha256 } from "@noble/hashes/sha2.js";
import { blake2s } from "@noble/hashes/blake2.js";
import { hmac } from "@noble/hashes/hmac.js";
import { NetworkError } from "../network_error.ts";
import type { CryptoBackend, KeyPair, NoiseCipher, NoiseDh, NoiseHash } from "./crypto.ts";

const TAG_LEN = 16;
const DH_LEN = 32;

const nobleDh: NoiseDh = {
  name: "25519",
  dhLen: DH_LEN,
  generateKeyPair(): KeyPair {
    const privateKey = crypto.getRandomValues(new Uint8Array(DH_LEN));
    return { privateKey, publicKey: x25519.getPublicKey(privateKey) };
  },
  keyPairFromPrivate(privateKey: Uint8Array): KeyPair {
    if (privateKey.length !== DH_LEN) {
      throw new TypeError(`an X25519 private key is ${DH_LEN} bytes, got ${privateKey.length}`);
    }
    const copy = new Uint8Array(privateKey);
    return { privateKey: copy, publicKey: x25519.getPublicKey(copy) };
  },
  dh(privateKey: Uint8Array, publicKey: Uint8Array): Uint8Array {
    if (publicKey.length !== DH_LEN) {
      throw new NetworkError(
        "HANDSHAKE_FAILED",
        `bad X25519 public key length ${publicKey.length}`,
      );
    }
    try {
      return x25519.getSharedSecret(privateKey, publicKey);
    } catch (err) {
      // noble refuses low-order points (all-zero shared secret).
      throw NetworkError.wrap(err, "HANDSHAKE_FAILED", "X25519 failed (low-order public key?)");
    }
  },
};

type Aead = (key: Uint8Array, nonce: Uint8Array, ad: Uint8Array) => {
  encrypt(plaintext: Uint8Array): Uint8Array;
  decrypt(ciphertext: Uint8Array): Uint8Array;
};

function nobleCipher(
  name: "ChaChaPoly" | "AESGCM",
  aead: Aead,
  littleEndianNonce: boolean,
): NoiseCipher {
  // Spec 12.3 (ChaChaPoly): 32 bits of zeros followed by the little-endian
  // 64-bit n. Spec 12.4 (AESGCM): 32 bits of zeros followed by big-endian n.
  const nonceBytes = (nonce: bigint): Uint8Array => {
    const iv = new Uint8Array(12);
    new DataView(iv.buffer).setBigUint64(4, nonce, littleEndianNonce);
    return iv;
  };
  return {
    name,
    encrypt(key, nonce, ad, plaintext, out) {
      const sealed = aead(key, nonceBytes(nonce), ad).encrypt(plaintext);
      if (out === undefined) return sealed;
      if (out.length < sealed.length) {
        throw new RangeError(`output buffer of ${out.length} bytes, need ${sealed.length}`);
      }
      out.set(sealed);
      return out.subarray(0, sealed.length);
    },
    decrypt(key, nonce, ad, ciphertext) {
      if (ciphertext.length < TAG_LEN) {
        throw new NetworkError(
          "HANDSHAKE_FAILED",
          `decryption failed: ${ciphertext.length} bytes is shorter than the tag`,
        );
      }
      try {
        return aead(key, nonceBytes(nonce), ad).decrypt(ciphertext);
      } catch (err) {
        throw new NetworkError("HANDSHAKE_FAILED", `decryption failed (${name}): bad tag`, {
          cause: err,
        });
      }
    },
  };
}

type NobleHash = typeof sha256;

function nobleHash(name: "SHA256" | "BLAKE2s", fn: NobleHash): NoiseHash {
  return {
    name,
    hashLen: 32,
    blockLen: 64,
    hash(...parts) {
      const h = fn.create();
      for (const p of parts) h.update(p);
      return h.digest();
    },
    hmac(key, ...parts) {
      const h = hmac.create(fn, key);
      for (const p of parts) h.update(p);
      return h.digest();
    },
  };
}

/**
 * Creates the `noble` backend. Prefer {@linkcode getCryptoBackend}.
 *
 * @example
 * ```ts
 * import { createNobleBackend } from "./noble_crypto.ts";
 * console.log(createNobleBackend().name); // "noble"
 * ```
 */
export function createNobleBackend(): CryptoBackend {
  const chacha = nobleCipher("ChaChaPoly", chacha20poly1305, true);
  const aes = nobleCipher("AESGCM", gcm, false);
  const sha = nobleHash("SHA256", sha256);
  const b2s = nobleHash("BLAKE2s", blake2s as unknown as NobleHash);
  return {
    name: "noble",
    dh: nobleDh,
    cipher: (name) => (name === "ChaChaPoly" ? chacha : aes),
    hash: (name) => (name === "SHA256" ? sha : b2s),
  };
}
