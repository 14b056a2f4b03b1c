/**
 * The crypto functions the Noise Protocol Framework (revision 34, section 4)
 * needs, behind one interface, and the choice between two backends:
 *
 * - `native`: `node:crypto` as Deno ships it (OpenSSL/BoringSSL-class code),
 *   for the AEADs, the hashes and X25519;
 * - `noble`: the audited pure-TypeScript `@noble/*` libraries, which run
 *   anywhere.
 *
 * Both backends pass the same 236 cacophony vectors, so they are
 * interchangeable byte for byte.
 *
 * @module
 */

import { createNativeBackend } from "./native_crypto.ts";
import { createNobleBackend } from "./noble_crypto.ts";

/**
 * A raw X25519 key pair: two 32-byte strings, as Noise puts them on the wire.
 *
 * @example
 * ```ts
 * import { getCryptoBackend } from "./crypto.ts";
 * const kp = getCryptoBackend().dh.generateKeyPair();
 * console.log(kp.publicKey.length); // 32
 * ```
 */
export interface KeyPair {
  /** The 32-byte public key (u-coordinate, little-endian). */
  readonly publicKey: Uint8Array;
  /** The 32-byte private scalar, before clamping (X25519 clamps it). */
  readonly privateKey: Uint8Array;
}

/**
 * The Noise DH functions for Curve25519 (spec section 4.1 and 12.1).
 *
 * @example
 * ```ts
 * import { getCryptoBackend } from "./crypto.ts";
 * const { dh } = getCryptoBackend();
 * const a = dh.generateKeyPair(), b = dh.generateKeyPair();
 * const k1 = dh.dh(a.privateKey, b.publicKey), k2 = dh.dh(b.privateKey, a.publicKey);
 * console.log(k1.every((x, i) => x === k2[i])); // true
 * ```
 */
export interface NoiseDh {
  /** The name in the protocol name. */
  readonly name: "25519";
  /** DHLEN: the length of public keys and of DH outputs. */
  readonly dhLen: 32;
  /** GENERATE_KEYPAIR(): a fresh key pair from the platform CSPRNG. */
  generateKeyPair(): KeyPair;
  /** The key pair whose private key is `privateKey` (32 bytes). */
  keyPairFromPrivate(privateKey: Uint8Array): KeyPair;
  /**
   * DH(key_pair, public_key): the 32-byte shared secret.
   *
   * @throws {NetworkError} `HANDSHAKE_FAILED` when the public key has the
   * wrong length or is a low-order point (the shared secret would be zero).
   */
  dh(privateKey: Uint8Array, publicKey: Uint8Array): Uint8Array;
}

/**
 * A Noise cipher function (spec section 4.2): an AEAD with a 32-byte key and
 * a 64-bit counter nonce.
 *
 * @example
 * ```ts
 * import { getCryptoBackend } from "./crypto.ts";
 * const c = getCryptoBackend().cipher("ChaChaPoly");
 * const key = new Uint8Array(32);
 * const ct = c.encrypt(key, 0n, new Uint8Array(0), new TextEncoder().encode("hi"));
 * console.log(new TextDecoder().decode(c.decrypt(key, 0n, new Uint8Array(0), ct))); // "hi"
 * ```
 */
export interface NoiseCipher {
  /** The name in the protocol name. */
  readonly name: "ChaChaPoly" | "AESGCM";
  /**
   * ENCRYPT(k, n, ad, plaintext): returns ciphertext||16-byte tag; when `out`
   * is given (length >= plaintext.length + 16) writes there and returns the
   * view `out.subarray(0, plaintext.length + 16)`.
   */
  encrypt(
    key: Uint8Array,
    nonce: bigint,
    ad: Uint8Array,
    plaintext: Uint8Array,
    out?: Uint8Array,
  ): Uint8Array;
  /**
   * DECRYPT(k, n, ad, ciphertext): the plaintext.
   *
   * @throws {NetworkError} `HANDSHAKE_FAILED` ("decryption failed ...") on a
   * bad tag or a ciphertext shorter than the tag. Transport-phase callers
   * re-wrap it as they see fit (usually `PROTOCOL_VIOLATION`).
   */
  decrypt(key: Uint8Array, nonce: bigint, ad: Uint8Array, ciphertext: Uint8Array): Uint8Array;
}

/**
 * A Noise hash function (spec section 4.3) with the HMAC of RFC 2104 over it.
 *
 * @example
 * ```ts
 * import { getCryptoBackend } from "./crypto.ts";
 * const h = getCryptoBackend().hash("SHA256");
 * console.log(h.hash(new TextEncoder().encode("abc")).length); // 32
 * ```
 */
export interface NoiseHash {
  /** The name in the protocol name. */
  readonly name: "SHA256" | "BLAKE2s";
  /** HASHLEN. */
  readonly hashLen: 32;
  /** BLOCKLEN, used by HMAC. */
  readonly blockLen: 64;
  /** HASH(parts[0] || parts[1] || ...). */
  hash(...parts: Uint8Array[]): Uint8Array;
  /** HMAC-HASH(key, parts[0] || parts[1] || ...). */
  hmac(key: Uint8Array, ...parts: Uint8Array[]): Uint8Array;
}

/**
 * One implementation of all the Noise crypto functions.
 *
 * @example
 * ```ts
 * import { getCryptoBackend } from "./crypto.ts";
 * const b = getCryptoBackend("noble");
 * console.log(b.name, b.cipher("AESGCM").name, b.hash("BLAKE2s").name);
 * ```
 */
export interface CryptoBackend {
  /** Which implementation this is. */
  readonly name: "native" | "noble";
  /** The 25519 DH functions. */
  readonly dh: NoiseDh;
  /** The cipher functions by their Noise name. */
  cipher(name: "ChaChaPoly" | "AESGCM"): NoiseCipher;
  /** The hash functions by their Noise name. */
  hash(name: "SHA256" | "BLAKE2s"): NoiseHash;
}

let nativeBackend: CryptoBackend | null | undefined;
let nobleBackend: CryptoBackend | undefined;

function loadNative(): CryptoBackend | null {
  if (nativeBackend === undefined) {
    // A runtime without a working node:crypto (or without one of the
    // algorithms) falls back to noble instead of failing later mid-handshake.
    try {
      nativeBackend = createNativeBackend();
    } catch {
      nativeBackend = null;
    }
  }
  return nativeBackend;
}

/**
 * The crypto backend to use: `"auto"` (default) picks `native` when this
 * runtime's `node:crypto` provides every algorithm, else `noble`; `"native"`
 * and `"noble"` force one. Backends are created once and shared.
 *
 * @param prefer which backend; default `"auto"`
 * @throws {Error} when `"native"` is forced and `node:crypto` is unusable
 *
 * @example
 * ```ts
 * import { getCryptoBackend } from "./crypto.ts";
 * console.log(getCryptoBackend().name); // "native" on Deno
 * console.log(getCryptoBackend("noble").name); // "noble"
 * ```
 */
export function getCryptoBackend(prefer: "auto" | "native" | "noble" = "auto"): CryptoBackend {
  if (prefer !== "noble") {
    const native = loadNative();
    if (native) return native;
    if (prefer === "native") throw new Error("the native (node:crypto) backend is unavailable");
  }
  nobleBackend ??= createNobleBackend();
  return nobleBackend;
}
