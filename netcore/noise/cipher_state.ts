/**
 * The Noise `CipherState` object (spec section 5.1): a key `k` (or none) and
 * a 64-bit counter nonce `n`.
 *
 * @module
 */

import { NetworkError } from "../network_error.ts";
import type { NoiseCipher } from "./crypto.ts";

/**
 * The largest Noise message, in bytes (spec section 3: "Noise messages ...
 * are limited to 65535 bytes").
 *
 * @example
 * ```ts
 * import { MAX_NOISE_MESSAGE_LEN, NOISE_TAG_LEN } from "./cipher_state.ts";
 * console.log(MAX_NOISE_MESSAGE_LEN - NOISE_TAG_LEN); // 65519: the largest transport payload
 * ```
 */
export const MAX_NOISE_MESSAGE_LEN = 65535;

/**
 * The length of the AEAD authentication tag every ciphertext carries.
 *
 * @example
 * ```ts
 * import { NOISE_TAG_LEN } from "./cipher_state.ts";
 * console.log(NOISE_TAG_LEN); // 16
 * ```
 */
export const NOISE_TAG_LEN = 16;

/** 2^64-1: never used as a nonce for messages; `rekey()` uses it (spec 5.1). */
const MAX_NONCE = 0xffff_ffff_ffff_ffffn;
const ZEROS_32 = new Uint8Array(32);

/**
 * A Noise CipherState: encrypts and decrypts with the current key and the
 * next nonce, which advances by one per successful call.
 *
 * Errors:
 * - nonce exhausted (n reached 2^64-1): `NetworkError("LIMIT_EXCEEDED")`;
 *   the session must be torn down (or rekeyed by a higher protocol and the
 *   nonce reset, which Noise leaves to the application);
 * - a plaintext whose ciphertext would exceed 65535 bytes, or a ciphertext
 *   longer than that: `NetworkError("FRAME_TOO_LARGE")`;
 * - a bad tag: `NetworkError("HANDSHAKE_FAILED")` from the cipher, `n`
 *   unchanged. Transport-phase callers usually re-wrap this as
 *   `PROTOCOL_VIOLATION`.
 *
 * @example
 * ```ts
 * import { CipherState } from "./cipher_state.ts";
 * import { getCryptoBackend } from "./crypto.ts";
 * const cipher = getCryptoBackend().cipher("ChaChaPoly");
 * const key = new Uint8Array(32).fill(7);
 * const tx = new CipherState(cipher, key), rx = new CipherState(cipher, key);
 * const ad = new Uint8Array(0);
 * const ct = tx.encryptWithAd(ad, new TextEncoder().encode("ping"));
 * console.log(new TextDecoder().decode(rx.decryptWithAd(ad, ct))); // "ping"
 * console.log(tx.nonce, rx.nonce); // 1n 1n
 * ```
 */
export class CipherState {
  readonly #cipher: NoiseCipher;
  #k: Uint8Array | undefined;
  #n = 0n;

  /**
   * A CipherState with `key` (copied) and n = 0.
   *
   * @param cipher the cipher functions
   * @param key the initial 32-byte key; none means "empty" (pass-through)
   */
  constructor(cipher: NoiseCipher, key?: Uint8Array) {
    this.#cipher = cipher;
    this.initializeKey(key);
  }

  /** The cipher functions in use. */
  get cipher(): NoiseCipher {
    return this.#cipher;
  }

  /** InitializeKey(key): sets k (copied; `undefined` empties it) and n = 0. */
  initializeKey(key: Uint8Array | undefined): void {
    if (key !== undefined && key.length !== 32) {
      throw new TypeError(`a Noise cipher key is 32 bytes, got ${key.length}`);
    }
    this.#k = key === undefined ? undefined : new Uint8Array(key);
    this.#n = 0n;
  }

  /** HasKey(): whether k is non-empty. */
  hasKey(): boolean {
    return this.#k !== undefined;
  }

  /**
   * SetNonce(nonce): for out-of-order transport messages. `nonce` must be in
   * [0, 2^64-1]; a `TypeError` otherwise (a caller bug).
   */
  setNonce(nonce: bigint): void {
    if (nonce < 0n || nonce > MAX_NONCE) throw new TypeError(`nonce ${nonce} out of range`);
    this.#n = nonce;
  }

  /** The next nonce n. */
  get nonce(): bigint {
    return this.#n;
  }

  /**
   * EncryptWithAd(ad, plaintext): with a key, ENCRYPT(k, n++, ad, plaintext)
   * (into `out` when given); with none, returns `plaintext` itself.
   *
   * @throws {NetworkError} `LIMIT_EXCEEDED` when the nonce is exhausted,
   * `FRAME_TOO_LARGE` when the ciphertext would exceed 65535 bytes
   */
  encryptWithAd(ad: Uint8Array, plaintext: Uint8Array, out?: Uint8Array): Uint8Array {
    if (this.#k === undefined) {
      if (plaintext.length > MAX_NOISE_MESSAGE_LEN) throw tooLarge(plaintext.length);
      return plaintext;
    }
    if (plaintext.length + NOISE_TAG_LEN > MAX_NOISE_MESSAGE_LEN) {
      throw tooLarge(plaintext.length + NOISE_TAG_LEN);
    }
    this.#checkNonce();
    const ct = this.#cipher.encrypt(this.#k, this.#n, ad, plaintext, out);
    this.#n++;
    return ct;
  }

  /**
   * DecryptWithAd(ad, ciphertext): with a key, DECRYPT(k, n, ad, ciphertext)
   * and n++ on success only; with none, returns `ciphertext` itself.
   *
   * @throws {NetworkError} `HANDSHAKE_FAILED` on a bad tag, `LIMIT_EXCEEDED`
   * when the nonce is exhausted, `FRAME_TOO_LARGE` above 65535 bytes
   */
  decryptWithAd(ad: Uint8Array, ciphertext: Uint8Array): Uint8Array {
    if (ciphertext.length > MAX_NOISE_MESSAGE_LEN) throw tooLarge(ciphertext.length);
    if (this.#k === undefined) return ciphertext;
    this.#checkNonce();
    const plain = this.#cipher.decrypt(this.#k, this.#n, ad, ciphertext);
    this.#n++;
    return plain;
  }

  /**
   * Rekey(): k = the first 32 bytes of ENCRYPT(k, 2^64-1, empty, 32 zeros)
   * (spec 4.2 REKEY); n is unchanged.
   *
   * @throws {TypeError} when there is no key (a caller bug)
   */
  rekey(): void {
    if (this.#k === undefined) throw new TypeError("rekey() on a CipherState without a key");
    const next = this.#cipher.encrypt(this.#k, MAX_NONCE, new Uint8Array(0), ZEROS_32);
    this.#k = next.slice(0, 32);
  }

  #checkNonce(): void {
    // Spec 5.1: n = 2^64-1 is reserved; reaching it is an error.
    if (this.#n >= MAX_NONCE) {
      throw new NetworkError("LIMIT_EXCEEDED", "Noise nonce exhausted (2^64-1 messages)");
    }
  }
}

function tooLarge(length: number): NetworkError {
  return new NetworkError(
    "FRAME_TOO_LARGE",
    `Noise message of ${length} bytes exceeds ${MAX_NOISE_MESSAGE_LEN}`,
  );
}
