/**
 * The `native` crypto backend: `node:crypto` as Deno provides it.
 *
 * The primitives are native: ChaCha20-Poly1305, AES-256-GCM, SHA-256,
 * BLAKE2s-256 (`blake2s256`), their HMACs, and X25519. X25519 goes through
 * DER-wrapped key objects (imported once per private key); even so it
 * measured about 5x faster than `@noble/curves` on this machine (about 12k
 * vs 2.3k DH/s).
 *
 * `node:crypto` costs several microseconds per call whatever the size, so
 * short inputs take two allocation-free TypeScript paths instead:
 * ChaChaPoly messages up to 1 KiB (`_chacha20_poly1305.ts`) and SHA-256
 * hashes and HMACs up to 256 bytes (`_sha256.ts`). Both give the same bytes
 * as the native code (tested against it and by the cacophony vectors).
 *
 * @module
 */

import {
  createCipheriv,
  createDecipheriv,
  createHash,
  createHmac,
  createPrivateKey,
  createPublicKey,
  diffieHellman,
  getCiphers,
  getHashes,
  type KeyObject,
  randomBytes,
} from "node:crypto";
import { Buffer } from "node:buffer";
import { setImmediate } from "node:timers";
import { equalBytes } from "../_bytes.ts";
import { NetworkError } from "../network_error.ts";
import { ChaCha20Poly1305, LITTLE_ENDIAN, SMALL_MESSAGE_MAX } from "./_chacha20_poly1305.ts";
import { Sha256, SHORT_INPUT_MAX } from "./_sha256.ts";
import type { CryptoBackend, KeyPair, NoiseCipher, NoiseDh, NoiseHash } from "./crypto.ts";

const TAG_LEN = 16;
const DH_LEN = 32;

// Fixed ASN.1 headers (RFC 8410) in front of a raw X25519 key: PKCS#8 for a
// private key, SubjectPublicKeyInfo for a public one.
const PKCS8_X25519 = fromHex("302e020100300506032b656e04220420");
const SPKI_X25519 = fromHex("302a300506032b656e032100");

function fromHex(hex: string): Uint8Array {
  return Uint8Array.from(hex.match(/../g)!, (b) => parseInt(b, 16));
}

// node:crypto's key import wants a Buffer; this is the only place one is made.
function withPrefix(prefix: Uint8Array, raw: Uint8Array): Buffer {
  return Buffer.concat([prefix, raw]);
}

/**
 * Imported key objects by the array that holds the raw key, with a copy of
 * the bytes they were made from: a static key takes part in a DH on every
 * handshake and an ephemeral one in two or three, and each import costs a
 * tenth of the DH itself. The copy is compared on every use, so an array
 * whose bytes changed since is imported again, never served a stale key.
 */
class KeyObjectCache {
  readonly #entries = new WeakMap<Uint8Array, { bytes: Uint8Array; key: KeyObject }>();
  readonly #make: (raw: Uint8Array) => KeyObject;

  constructor(make: (raw: Uint8Array) => KeyObject) {
    this.#make = make;
  }

  get(raw: Uint8Array): KeyObject {
    const entry = this.#entries.get(raw);
    if (entry !== undefined && equalBytes(entry.bytes, raw)) return entry.key;
    const key = this.#make(raw);
    this.#entries.set(raw, { bytes: raw.slice(), key });
    return key;
  }
}

const privateKeyObjects = new KeyObjectCache((raw) =>
  createPrivateKey({ key: withPrefix(PKCS8_X25519, raw), format: "der", type: "pkcs8" })
);
const publicKeyObjects = new KeyObjectCache((raw) =>
  createPublicKey({ key: withPrefix(SPKI_X25519, raw), format: "der", type: "spki" })
);

function privateKeyObject(raw: Uint8Array): KeyObject {
  return privateKeyObjects.get(raw);
}

function publicKeyObject(raw: Uint8Array): KeyObject {
  return publicKeyObjects.get(raw);
}

/** Copies a node Buffer into a plain Uint8Array we own (Buffers may share a pool). */
function own(bytes: Uint8Array): Uint8Array {
  return new Uint8Array(bytes);
}

function rawPublic(privateKey: KeyObject): Uint8Array {
  const spki = createPublicKey(privateKey).export({ format: "der", type: "spki" });
  return own(spki.subarray(spki.length - DH_LEN));
}

function freshKeyPair(): KeyPair {
  const privateKey = own(randomBytes(DH_LEN));
  return { privateKey, publicKey: rawPublic(privateKeyObject(privateKey)) };
}

/**
 * Key pairs made ahead of need. Deriving a public key costs about as much
 * as a DH, and a handshake needs a fresh ephemeral key before its first
 * message; one made while the event loop would otherwise wait for the peer
 * takes that off the handshake's critical path. Each pair is handed out
 * once; the spares are made at the end of the event-loop turn that took one.
 */
const spareKeyPairs: KeyPair[] = [];
const SPARE_KEY_PAIRS = 2;
let refilling = false;

function refillSpareKeyPairs(): void {
  refilling = false;
  if (spareKeyPairs.length >= SPARE_KEY_PAIRS) return;
  spareKeyPairs.push(freshKeyPair());
  // One per turn, so a refill never holds up much else.
  if (spareKeyPairs.length < SPARE_KEY_PAIRS) {
    refilling = true;
    setImmediate(refillSpareKeyPairs);
  }
}

const nativeDh: NoiseDh = {
  name: "25519",
  dhLen: DH_LEN,
  generateKeyPair(): KeyPair {
    const pair = spareKeyPairs.pop() ?? freshKeyPair();
    if (!refilling) {
      refilling = true;
      setImmediate(refillSpareKeyPairs);
    }
    return pair;
  },
  keyPairFromPrivate(privateKey: Uint8Array): KeyPair {
    if (privateKey.length !== DH_LEN) {
      throw new TypeError(`an X25519 private key is ${DH_LEN} bytes, got ${privateKey.length}`);
    }
    const copy = new Uint8Array(privateKey);
    return { privateKey: copy, publicKey: rawPublic(privateKeyObject(copy)) };
  },
  dh(privateKey: Uint8Array, publicKey: Uint8Array): Uint8Array {
    if (publicKey.length !== DH_LEN) {
      throw new NetworkError(
        "HANDSHAKE_FAILED",
        `bad X25519 public key length ${publicKey.length}`,
      );
    }
    try {
      return own(
        diffieHellman({
          privateKey: privateKeyObject(privateKey),
          publicKey: publicKeyObject(publicKey),
        }),
      );
    } catch (err) {
      // OpenSSL refuses low-order points (all-zero shared secret).
      throw NetworkError.wrap(err, "HANDSHAKE_FAILED", "X25519 failed (low-order public key?)");
    }
  },
};

type AeadAlgorithm = "chacha20-poly1305" | "aes-256-gcm";

/** The low and high 32 bits of a Noise nonce, as the TypeScript AEAD takes them. */
const nonceLow = (nonce: bigint) => Number(nonce & 0xffff_ffffn);
const nonceHigh = (nonce: bigint) => Number(nonce >> 32n);

function nativeCipher(
  name: "ChaChaPoly" | "AESGCM",
  algorithm: AeadAlgorithm,
  littleEndianNonce: boolean,
): NoiseCipher {
  // Spec 12.3 (ChaChaPoly): 32 bits of zeros followed by the little-endian
  // 64-bit n. Spec 12.4 (AESGCM): 32 bits of zeros followed by big-endian n.
  const iv = new Uint8Array(12);
  const ivView = new DataView(iv.buffer);
  const setNonce = (nonce: bigint) => ivView.setBigUint64(4, nonce, littleEndianNonce);
  // node:crypto's fixed cost per call (about 6 us) dwarfs a short message's
  // cipher work, so short ChaChaPoly messages take the TypeScript AEAD.
  const small = algorithm === "chacha20-poly1305" && LITTLE_ENDIAN
    ? new ChaCha20Poly1305()
    : undefined;
  return {
    name,
    encrypt(key, nonce, ad, plaintext, out) {
      const total = plaintext.length + TAG_LEN;
      if (out !== undefined && out.length < total) {
        throw new RangeError(`output buffer of ${out.length} bytes, need ${total}`);
      }
      if (small !== undefined && plaintext.length <= SMALL_MESSAGE_MAX) {
        const dst = out ?? new Uint8Array(total);
        small.seal(key, nonceLow(nonce), nonceHigh(nonce), ad, plaintext, dst);
        return dst.length === total ? dst : dst.subarray(0, total);
      }
      setNonce(nonce);
      const c = algorithm === "chacha20-poly1305"
        ? createCipheriv(algorithm, key, iv, { authTagLength: TAG_LEN })
        : createCipheriv(algorithm, key, iv, { authTagLength: TAG_LEN });
      c.setAAD(ad, { plaintextLength: plaintext.length });
      const body = c.update(plaintext);
      // Both AEADs are stream modes: final() yields nothing but must run
      // before the tag exists.
      c.final();
      const tag = c.getAuthTag();
      if (out === undefined) {
        // update() handed us a fresh buffer; grow it by the tag only when a
        // caller gave no place to write to.
        const dst = new Uint8Array(total);
        dst.set(body);
        dst.set(tag, plaintext.length);
        return dst;
      }
      // node:crypto cannot encrypt into a caller's buffer: this one copy into
      // the frame is the least the API allows.
      out.set(body);
      out.set(tag, plaintext.length);
      return out.length === total ? out : out.subarray(0, total);
    },
    decrypt(key, nonce, ad, ciphertext) {
      if (ciphertext.length < TAG_LEN) {
        throw new NetworkError(
          "HANDSHAKE_FAILED",
          `decryption failed: ${ciphertext.length} bytes is shorter than the tag`,
        );
      }
      const bodyLen = ciphertext.length - TAG_LEN;
      if (small !== undefined && bodyLen <= SMALL_MESSAGE_MAX) {
        const plaintext = new Uint8Array(bodyLen);
        if (!small.open(key, nonceLow(nonce), nonceHigh(nonce), ad, ciphertext, plaintext)) {
          throw new NetworkError("HANDSHAKE_FAILED", `decryption failed (${name}): bad tag`);
        }
        return plaintext;
      }
      setNonce(nonce);
      try {
        const d = algorithm === "chacha20-poly1305"
          ? createDecipheriv(algorithm, key, iv, { authTagLength: TAG_LEN })
          : createDecipheriv(algorithm, key, iv, { authTagLength: TAG_LEN });
        d.setAAD(ad, { plaintextLength: bodyLen });
        d.setAuthTag(ciphertext.subarray(bodyLen));
        const body = d.update(ciphertext.subarray(0, bodyLen));
        // Stream modes: final() only checks the tag (and throws if it is bad).
        d.final();
        // update() returns a fresh Buffer (and a Buffer pool never hands the
        // same bytes out twice), so a plain view of it is ours without a copy.
        return new Uint8Array(body.buffer, body.byteOffset, body.length);
      } catch (err) {
        throw new NetworkError("HANDSHAKE_FAILED", `decryption failed (${name}): bad tag`, {
          cause: err,
        });
      }
    },
  };
}

function totalLength(parts: readonly Uint8Array[]): number {
  let total = 0;
  for (const part of parts) total += part.length;
  return total;
}

function nativeHash(name: "SHA256" | "BLAKE2s", algorithm: "sha256" | "blake2s256"): NoiseHash {
  // A handshake hashes and HMACs a few dozen bytes at a time, where
  // node:crypto's fixed cost per call dominates: short SHA-256 inputs take
  // the TypeScript implementation.
  const short = name === "SHA256" ? new Sha256() : undefined;
  return {
    name,
    hashLen: 32,
    blockLen: 64,
    hash(...parts) {
      if (short !== undefined && totalLength(parts) <= SHORT_INPUT_MAX) return short.digest(parts);
      const h = createHash(algorithm);
      for (const p of parts) h.update(p);
      return own(h.digest());
    },
    hmac(key, ...parts) {
      if (short !== undefined && totalLength(parts) <= SHORT_INPUT_MAX) {
        return short.hmac(key, parts);
      }
      // OpenSSL's HMAC pads the key to the digest's block size, which is 64
      // for both SHA-256 and BLAKE2s-256, as the spec's BLOCKLEN requires.
      const h = createHmac(algorithm, key);
      for (const p of parts) h.update(p);
      return own(h.digest());
    },
  };
}

/**
 * Creates the `native` backend, or throws when this runtime's `node:crypto`
 * lacks one of the algorithms. Prefer {@linkcode getCryptoBackend}.
 *
 * @example
 * ```ts
 * import { createNativeBackend } from "./native_crypto.ts";
 * console.log(createNativeBackend().name); // "native"
 * ```
 */
export function createNativeBackend(): CryptoBackend {
  const ciphers = new Set(getCiphers());
  const hashes = new Set(getHashes());
  for (const c of ["chacha20-poly1305", "aes-256-gcm"]) {
    if (!ciphers.has(c)) throw new Error(`node:crypto lacks ${c}`);
  }
  for (const h of ["sha256", "blake2s256"]) {
    if (!hashes.has(h)) throw new Error(`node:crypto lacks ${h}`);
  }
  const chacha = nativeCipher("ChaChaPoly", "chacha20-poly1305", true);
  const aes = nativeCipher("AESGCM", "aes-256-gcm", false);
  const sha256 = nativeHash("SHA256", "sha256");
  const blake2s = nativeHash("BLAKE2s", "blake2s256");
  // Self-test: X25519 must work (it needs key import), not just be listed.
  nativeDh.keyPairFromPrivate(new Uint8Array(DH_LEN).fill(1));
  return {
    name: "native",
    dh: nativeDh,
    cipher: (name) => (name === "ChaChaPoly" ? chacha : aes),
    hash: (name) => (name === "SHA256" ? sha256 : blake2s),
  };
}
