/**
 * The Noise `SymmetricState` object (spec section 5.2): the chaining key
 * `ck`, the handshake hash `h`, and a {@linkcode CipherState}.
 *
 * @module
 */

import { CipherState } from "./cipher_state.ts";
import type { NoiseCipher, NoiseHash } from "./crypto.ts";

const EMPTY = new Uint8Array(0);
const BYTE_1 = Uint8Array.of(1);
const BYTE_2 = Uint8Array.of(2);
const BYTE_3 = Uint8Array.of(3);

/**
 * HKDF(chaining_key, input_key_material, num_outputs) as spec section 4.3
 * defines it (HMAC-based, two or three HASHLEN outputs).
 *
 * @example
 * ```ts
 * import { hkdf } from "./symmetric_state.ts";
 * import { getCryptoBackend } from "./crypto.ts";
 * const [a, b] = hkdf(getCryptoBackend().hash("SHA256"), new Uint8Array(32), new Uint8Array(0), 2);
 * console.log(a.length, b.length); // 32 32
 * ```
 */
export function hkdf(
  hash: NoiseHash,
  chainingKey: Uint8Array,
  inputKeyMaterial: Uint8Array,
  numOutputs: 2 | 3,
): Uint8Array[] {
  const tempKey = hash.hmac(chainingKey, inputKeyMaterial);
  const output1 = hash.hmac(tempKey, BYTE_1);
  const output2 = hash.hmac(tempKey, output1, BYTE_2);
  if (numOutputs === 2) return [output1, output2];
  return [output1, output2, hash.hmac(tempKey, output2, BYTE_3)];
}

/**
 * A Noise SymmetricState. Used by {@linkcode HandshakeState}; exported for
 * protocols that build on the same primitives.
 *
 * @example
 * ```ts
 * import { SymmetricState } from "./symmetric_state.ts";
 * import { getCryptoBackend } from "./crypto.ts";
 * const b = getCryptoBackend();
 * const ss = new SymmetricState("Noise_NN_25519_ChaChaPoly_SHA256", b.cipher("ChaChaPoly"), b.hash("SHA256"));
 * ss.mixHash(new Uint8Array(0)); // the empty prologue
 * console.log(ss.handshakeHash.length); // 32
 * ```
 */
export class SymmetricState {
  readonly #hash: NoiseHash;
  readonly #cipher: NoiseCipher;
  readonly #cs: CipherState;
  #ck: Uint8Array;
  #h: Uint8Array;

  /**
   * InitializeSymmetric(protocol_name): h = the name zero-padded to HASHLEN
   * when it fits, else HASH(name); ck = h; no key.
   */
  constructor(protocolName: string, cipher: NoiseCipher, hash: NoiseHash) {
    this.#hash = hash;
    this.#cipher = cipher;
    this.#cs = new CipherState(cipher);
    const name = new TextEncoder().encode(protocolName);
    if (name.length <= hash.hashLen) {
      this.#h = new Uint8Array(hash.hashLen);
      this.#h.set(name);
    } else {
      this.#h = hash.hash(name);
    }
    this.#ck = this.#h;
  }

  /** h, the handshake hash so far (a copy). */
  get handshakeHash(): Uint8Array {
    return this.#h.slice();
  }

  /** Whether the inner CipherState has a key. */
  hasKey(): boolean {
    return this.#cs.hasKey();
  }

  /** MixKey(ikm): ck, temp_k = HKDF(ck, ikm, 2); InitializeKey(temp_k). */
  mixKey(inputKeyMaterial: Uint8Array): void {
    const [ck, tempK] = hkdf(this.#hash, this.#ck, inputKeyMaterial, 2);
    this.#ck = ck;
    this.#cs.initializeKey(tempK.subarray(0, 32));
  }

  /** MixHash(data): h = HASH(h || data). */
  mixHash(data: Uint8Array): void {
    this.#h = this.#hash.hash(this.#h, data);
  }

  /**
   * MixKeyAndHash(ikm): ck, temp_h, temp_k = HKDF(ck, ikm, 3);
   * MixHash(temp_h); InitializeKey(temp_k). Used for "psk" tokens.
   */
  mixKeyAndHash(inputKeyMaterial: Uint8Array): void {
    const [ck, tempH, tempK] = hkdf(this.#hash, this.#ck, inputKeyMaterial, 3);
    this.#ck = ck;
    this.mixHash(tempH);
    this.#cs.initializeKey(tempK.subarray(0, 32));
  }

  /** EncryptAndHash(plaintext): ciphertext = EncryptWithAd(h, plaintext); MixHash(ciphertext). */
  encryptAndHash(plaintext: Uint8Array): Uint8Array {
    const ciphertext = this.#cs.encryptWithAd(this.#h, plaintext);
    this.mixHash(ciphertext);
    return ciphertext;
  }

  /**
   * DecryptAndHash(ciphertext): plaintext = DecryptWithAd(h, ciphertext);
   * MixHash(ciphertext).
   *
   * @throws {NetworkError} `HANDSHAKE_FAILED` on a bad tag
   */
  decryptAndHash(ciphertext: Uint8Array): Uint8Array {
    const plaintext = this.#cs.decryptWithAd(this.#h, ciphertext);
    this.mixHash(ciphertext);
    return plaintext;
  }

  /**
   * Split(): temp_k1, temp_k2 = HKDF(ck, empty, 2); two CipherStates, the
   * first for initiator-to-responder traffic.
   */
  split(): [CipherState, CipherState] {
    const [k1, k2] = hkdf(this.#hash, this.#ck, EMPTY, 2);
    return [
      new CipherState(this.#cipher, k1.subarray(0, 32)),
      new CipherState(this.#cipher, k2.subarray(0, 32)),
    ];
  }
}
