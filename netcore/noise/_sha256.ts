/**
 * SHA-256 (FIPS 180-4) and HMAC-SHA256 (RFC 2104) in TypeScript, for the
 * short inputs of a Noise handshake.
 *
 * Why it exists: a handshake hashes a few dozen bytes at a time (MixHash) and
 * runs HKDF, three HMACs per MixKey. `node:crypto` costs about 2.5 us per
 * hash and 9 us per HMAC whatever the size, which added up to a tenth of a
 * connection's setup; this code does a one-block hash in about 0.5 us and
 * allocates only its 32-byte result. Longer inputs go native (see
 * `native_crypto.ts`, {@linkcode SHORT_INPUT_MAX}).
 *
 * Internal to `netcore/noise`. Tested against `node:crypto` on every length
 * around the block boundaries and against RFC 4231's HMAC vectors, and it
 * runs the cacophony vectors inside the native backend.
 *
 * @module
 */

/**
 * Inputs up to this many bytes in all are hashed here by the native backend:
 * about where `node:crypto`'s fixed cost stops outweighing its speed.
 */
export const SHORT_INPUT_MAX = 256;

const BLOCK = 64;

// FIPS 180-4 section 4.2.2: the first 32 bits of the fractional parts of the
// cube roots of the first 64 primes.
const K = new Int32Array([
  0x428a2f98,
  0x71374491,
  0xb5c0fbcf,
  0xe9b5dba5,
  0x3956c25b,
  0x59f111f1,
  0x923f82a4,
  0xab1c5ed5,
  0xd807aa98,
  0x12835b01,
  0x243185be,
  0x550c7dc3,
  0x72be5d74,
  0x80deb1fe,
  0x9bdc06a7,
  0xc19bf174,
  0xe49b69c1,
  0xefbe4786,
  0x0fc19dc6,
  0x240ca1cc,
  0x2de92c6f,
  0x4a7484aa,
  0x5cb0a9dc,
  0x76f988da,
  0x983e5152,
  0xa831c66d,
  0xb00327c8,
  0xbf597fc7,
  0xc6e00bf3,
  0xd5a79147,
  0x06ca6351,
  0x14292967,
  0x27b70a85,
  0x2e1b2138,
  0x4d2c6dfc,
  0x53380d13,
  0x650a7354,
  0x766a0abb,
  0x81c2c92e,
  0x92722c85,
  0xa2bfe8a1,
  0xa81a664b,
  0xc24b8b70,
  0xc76c51a3,
  0xd192e819,
  0xd6990624,
  0xf40e3585,
  0x106aa070,
  0x19a4c116,
  0x1e376c08,
  0x2748774c,
  0x34b0bcb5,
  0x391c0cb3,
  0x4ed8aa4a,
  0x5b9cca4f,
  0x682e6ff3,
  0x748f82ee,
  0x78a5636f,
  0x84c87814,
  0x8cc70208,
  0x90befffa,
  0xa4506ceb,
  0xbef9a3f7,
  0xc67178f2,
]);

// Section 5.3.3: the initial hash value.
const IV = new Int32Array([
  0x6a09e667,
  0xbb67ae85,
  0x3c6ef372,
  0xa54ff53a,
  0x510e527f,
  0x9b05688c,
  0x1f83d9ab,
  0x5be0cd19,
]);

/**
 * A reusable SHA-256 with preallocated state, one message at a time.
 *
 * @example
 * ```ts ignore
 * import { Sha256 } from "./_sha256.ts";
 * const sha = new Sha256();
 * console.log(sha.digest([new TextEncoder().encode("abc")]).length); // 32
 * ```
 */
export class Sha256 {
  readonly #state = new Int32Array(8);
  readonly #w = new Int32Array(64);
  readonly #block = new Uint8Array(BLOCK);
  #filled = 0;
  #length = 0;
  // HMAC pads: the key XOR 0x36 and 0x5c, one block each.
  readonly #inner = new Uint8Array(BLOCK);
  readonly #outer = new Uint8Array(BLOCK);
  readonly #innerHash = new Uint8Array(32);

  /** SHA-256(parts[0] || parts[1] || ...). */
  digest(parts: readonly Uint8Array[]): Uint8Array {
    this.#reset();
    for (const part of parts) this.#update(part);
    return this.#finish(new Uint8Array(32));
  }

  /** HMAC-SHA256(key, parts[0] || parts[1] || ...) as RFC 2104 defines it. */
  hmac(key: Uint8Array, parts: readonly Uint8Array[]): Uint8Array {
    const inner = this.#inner, outer = this.#outer;
    inner.fill(0);
    if (key.length > BLOCK) inner.set(this.digest([key]));
    else inner.set(key);
    for (let i = 0; i < BLOCK; i++) {
      outer[i] = inner[i] ^ 0x5c;
      inner[i] ^= 0x36;
    }
    this.#reset();
    this.#update(inner);
    for (const part of parts) this.#update(part);
    this.#finish(this.#innerHash);
    this.#reset();
    this.#update(outer);
    this.#update(this.#innerHash);
    return this.#finish(new Uint8Array(32));
  }

  #reset(): void {
    this.#state.set(IV);
    this.#filled = 0;
    this.#length = 0;
  }

  #update(data: Uint8Array): void {
    this.#length += data.length;
    let at = 0;
    const block = this.#block;
    // Short copies by hand: `set(subarray(...))` allocates a view per call.
    if (this.#filled > 0) {
      const take = Math.min(BLOCK - this.#filled, data.length);
      for (let i = 0; i < take; i++) block[this.#filled + i] = data[i];
      this.#filled += take;
      at = take;
      if (this.#filled < BLOCK) return;
      this.#compress(block, 0);
      this.#filled = 0;
    }
    for (; at + BLOCK <= data.length; at += BLOCK) this.#compress(data, at);
    for (let i = 0; at + i < data.length; i++) block[i] = data[at + i];
    this.#filled = data.length - at;
  }

  /** Section 5.1.1 padding (0x80, zeros, the 64-bit bit length), then the big-endian state. */
  #finish(out: Uint8Array): Uint8Array {
    const block = this.#block;
    let filled = this.#filled;
    block[filled++] = 0x80;
    if (filled > BLOCK - 8) {
      block.fill(0, filled);
      this.#compress(block, 0);
      filled = 0;
    }
    block.fill(0, filled, BLOCK - 8);
    // Inputs here stay far below 2^53 bits: the high word is the quotient.
    const bits = this.#length * 8;
    const high = Math.floor(bits / 0x1_0000_0000), low = bits >>> 0;
    block[56] = high >>> 24, block[57] = high >>> 16, block[58] = high >>> 8, block[59] = high;
    block[60] = low >>> 24, block[61] = low >>> 16, block[62] = low >>> 8, block[63] = low;
    this.#compress(block, 0);
    const state = this.#state;
    for (let i = 0; i < 8; i++) {
      const v = state[i];
      out[4 * i] = v >>> 24,
        out[4 * i + 1] = v >>> 16,
        out[4 * i + 2] = v >>> 8,
        out[4 * i + 3] = v;
    }
    return out;
  }

  /** Section 6.2.2: one block of `m` at `at` into the state. */
  #compress(m: Uint8Array, at: number): void {
    const w = this.#w;
    for (let t = 0; t < 16; t++, at += 4) {
      w[t] = (m[at] << 24) | (m[at + 1] << 16) | (m[at + 2] << 8) | m[at + 3];
    }
    for (let t = 16; t < 64; t++) {
      const x = w[t - 15], y = w[t - 2];
      const s0 = ((x >>> 7) | (x << 25)) ^ ((x >>> 18) | (x << 14)) ^ (x >>> 3);
      const s1 = ((y >>> 17) | (y << 15)) ^ ((y >>> 19) | (y << 13)) ^ (y >>> 10);
      w[t] = (s1 + w[t - 7] + s0 + w[t - 16]) | 0;
    }
    const state = this.#state;
    let a = state[0], b = state[1], c = state[2], d = state[3];
    let e = state[4], f = state[5], g = state[6], h = state[7];
    for (let t = 0; t < 64; t++) {
      const S1 = ((e >>> 6) | (e << 26)) ^ ((e >>> 11) | (e << 21)) ^ ((e >>> 25) | (e << 7));
      const ch = (e & f) ^ (~e & g);
      const t1 = (h + S1 + ch + K[t] + w[t]) | 0;
      const S0 = ((a >>> 2) | (a << 30)) ^ ((a >>> 13) | (a << 19)) ^ ((a >>> 22) | (a << 10));
      const maj = (a & b) ^ (a & c) ^ (b & c);
      const t2 = (S0 + maj) | 0;
      h = g, g = f, f = e, e = (d + t1) | 0;
      d = c, c = b, b = a, a = (t1 + t2) | 0;
    }
    state[0] = (state[0] + a) | 0, state[1] = (state[1] + b) | 0;
    state[2] = (state[2] + c) | 0, state[3] = (state[3] + d) | 0;
    state[4] = (state[4] + e) | 0, state[5] = (state[5] + f) | 0;
    state[6] = (state[6] + g) | 0, state[7] = (state[7] + h) | 0;
  }
}
