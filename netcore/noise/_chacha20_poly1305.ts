/**
 * ChaCha20-Poly1305 (RFC 8439) in TypeScript, written for short messages.
 *
 * Why it exists: `node:crypto` costs about 6 us per call whatever the size
 * (a `Cipheriv` is a Node stream, and every call allocates buffers), which is
 * most of the CPU a 32-byte ping spends in each process. This code does a
 * 44-byte message in about 1.2 us and allocates nothing; from about 1 KiB on
 * the native cipher is faster, so the native backend sends only messages
 * below {@linkcode SMALL_MESSAGE_MAX} here (see `native_crypto.ts`).
 *
 * It follows RFC 8439 section 2: the ChaCha20 block function (2.3), the
 * Poly1305 MAC (2.5) with the one-time key from block 0 (2.6), and the AEAD
 * construction (2.8). Poly1305 runs on ten 13-bit limbs, so every product
 * and sum stays an exact integer in a double; there is no branch or index
 * that depends on a secret, and the tag check is constant-time.
 *
 * Internal to `netcore/noise`. Tested against RFC 8439's vectors and against
 * `node:crypto` on random keys, nonces and lengths, and it runs the 236
 * cacophony vectors inside the native backend.
 *
 * @module
 */

/** Messages up to this many bytes go through this implementation in the native backend. */
export const SMALL_MESSAGE_MAX = 1024;

/** Whether this platform stores a Uint32Array little-endian, which the keystream view assumes. */
export const LITTLE_ENDIAN = new Uint8Array(new Uint32Array([1]).buffer)[0] === 1;

const TAG_LENGTH = 16;
/** Bit 128 of a full Poly1305 block, as it lands in the top limb. */
const HIBIT = 1 << 11;
const LIMB = 8192; // 2^13

/**
 * A reusable ChaCha20-Poly1305 AEAD. The 96-bit nonce is three
 * little-endian 32-bit words: the first fixed per instance (zero, as Noise's
 * ChaChaPoly has it), then the low and high halves of the 64-bit counter
 * given to each call. All state is preallocated; one instance serves any
 * number of keys, one call at a time.
 *
 * @example
 * ```ts ignore
 * import { ChaCha20Poly1305 } from "./_chacha20_poly1305.ts";
 * const aead = new ChaCha20Poly1305();
 * const key = new Uint8Array(32), plaintext = new TextEncoder().encode("ping");
 * const sealed = new Uint8Array(plaintext.length + 16);
 * aead.seal(key, 0, 0, new Uint8Array(0), plaintext, sealed);
 * const opened = new Uint8Array(plaintext.length);
 * console.log(aead.open(key, 0, 0, new Uint8Array(0), sealed, opened)); // true
 * ```
 */
export class ChaCha20Poly1305 {
  readonly #key = new Uint32Array(8);
  readonly #block = new Uint32Array(16);
  readonly #keystream = new Uint8Array(this.#block.buffer);
  readonly #r = new Uint16Array(10);
  readonly #h = new Uint16Array(10);
  readonly #g = new Uint16Array(10);
  readonly #s = new Uint16Array(8);
  readonly #last = new Uint8Array(16);
  readonly #tag = new Uint8Array(TAG_LENGTH);
  readonly #nonceWord0: number;

  /** @param nonceWord0 the first nonce word; Noise's ChaChaPoly uses 0 (the default) */
  constructor(nonceWord0 = 0) {
    this.#nonceWord0 = nonceWord0;
  }

  /**
   * Encrypts `plaintext` and writes ciphertext || tag into `out[0 ..
   * plaintext.length + 16)`. `out` may be `plaintext` itself (in place).
   */
  seal(
    key: Uint8Array,
    nonceLow: number,
    nonceHigh: number,
    ad: Uint8Array,
    plaintext: Uint8Array,
    out: Uint8Array,
  ): void {
    this.#start(key, nonceLow, nonceHigh);
    this.#xorKeystream(plaintext, plaintext.length, out, nonceLow, nonceHigh);
    this.#authenticate(ad, out, plaintext.length);
    this.#finish(out, plaintext.length);
  }

  /**
   * Checks the tag of `sealed` (ciphertext || tag) and, if it is right,
   * writes the plaintext into `out[0 .. sealed.length - 16)`; returns whether
   * the tag was right. Nothing is written when it is not.
   */
  open(
    key: Uint8Array,
    nonceLow: number,
    nonceHigh: number,
    ad: Uint8Array,
    sealed: Uint8Array,
    out: Uint8Array,
  ): boolean {
    const length = sealed.length - TAG_LENGTH;
    if (length < 0) return false;
    this.#start(key, nonceLow, nonceHigh);
    this.#authenticate(ad, sealed, length);
    const tag = this.#tag;
    this.#finish(tag, 0);
    let diff = 0;
    for (let i = 0; i < TAG_LENGTH; i++) diff |= tag[i] ^ sealed[length + i];
    if (diff !== 0) return false;
    this.#xorKeystream(sealed, length, out, nonceLow, nonceHigh);
    return true;
  }

  /** Loads the key and derives the Poly1305 one-time key from block 0 (RFC 8439 2.6). */
  #start(key: Uint8Array, nonceLow: number, nonceHigh: number): void {
    const k = this.#key;
    for (let i = 0; i < 8; i++) {
      const j = 4 * i;
      k[i] = key[j] | (key[j + 1] << 8) | (key[j + 2] << 16) | (key[j + 3] << 24);
    }
    this.#chachaBlock(0, nonceLow, nonceHigh);
    this.#polyKey(this.#keystream);
  }

  /**
   * `dst[i] = src[i] ^ keystream[i]` for `i < length`, the keystream from
   * block counter 1 (RFC 8439 2.4).
   */
  #xorKeystream(
    src: Uint8Array,
    length: number,
    dst: Uint8Array,
    nonceLow: number,
    nonceHigh: number,
  ): void {
    const keystream = this.#keystream;
    let counter = 1;
    for (let at = 0; at < length; at += 64) {
      this.#chachaBlock(counter++, nonceLow, nonceHigh);
      const end = Math.min(64, length - at);
      for (let i = 0; i < end; i++) dst[at + i] = src[at + i] ^ keystream[i];
    }
  }

  /** Poly1305 over ad || pad16 || ciphertext || pad16 || le64(|ad|) || le64(|ct|) (RFC 8439 2.8). */
  #authenticate(ad: Uint8Array, ciphertext: Uint8Array, length: number): void {
    this.#polyPadded(ad, ad.length);
    this.#polyPadded(ciphertext, length);
    const last = this.#last;
    last.fill(0);
    writeLength(last, 0, ad.length);
    writeLength(last, 8, length);
    this.#polyBlocks(last, 0, 16);
  }

  /** The ChaCha20 block function (RFC 8439 2.3) for `counter`, into `#block`. */
  #chachaBlock(counter: number, nonceLow: number, nonceHigh: number): void {
    const k = this.#key;
    // "expand 32-byte k", the key, the counter, then the nonce's three words.
    const j0 = 0x61707865, j1 = 0x3320646e, j2 = 0x79622d32, j3 = 0x6b206574;
    const j4 = k[0], j5 = k[1], j6 = k[2], j7 = k[3];
    const j8 = k[4], j9 = k[5], j10 = k[6], j11 = k[7];
    const j12 = counter, j13 = this.#nonceWord0, j14 = nonceLow, j15 = nonceHigh;
    let x0 = j0, x1 = j1, x2 = j2, x3 = j3, x4 = j4, x5 = j5, x6 = j6, x7 = j7;
    let x8 = j8, x9 = j9, x10 = j10, x11 = j11, x12 = j12, x13 = j13, x14 = j14, x15 = j15;
    for (let round = 0; round < 20; round += 2) {
      // Column rounds: QUARTERROUND(0,4,8,12) (1,5,9,13) (2,6,10,14) (3,7,11,15).
      x0 = (x0 + x4) | 0, x12 ^= x0, x12 = (x12 << 16) | (x12 >>> 16);
      x8 = (x8 + x12) | 0, x4 ^= x8, x4 = (x4 << 12) | (x4 >>> 20);
      x0 = (x0 + x4) | 0, x12 ^= x0, x12 = (x12 << 8) | (x12 >>> 24);
      x8 = (x8 + x12) | 0, x4 ^= x8, x4 = (x4 << 7) | (x4 >>> 25);
      x1 = (x1 + x5) | 0, x13 ^= x1, x13 = (x13 << 16) | (x13 >>> 16);
      x9 = (x9 + x13) | 0, x5 ^= x9, x5 = (x5 << 12) | (x5 >>> 20);
      x1 = (x1 + x5) | 0, x13 ^= x1, x13 = (x13 << 8) | (x13 >>> 24);
      x9 = (x9 + x13) | 0, x5 ^= x9, x5 = (x5 << 7) | (x5 >>> 25);
      x2 = (x2 + x6) | 0, x14 ^= x2, x14 = (x14 << 16) | (x14 >>> 16);
      x10 = (x10 + x14) | 0, x6 ^= x10, x6 = (x6 << 12) | (x6 >>> 20);
      x2 = (x2 + x6) | 0, x14 ^= x2, x14 = (x14 << 8) | (x14 >>> 24);
      x10 = (x10 + x14) | 0, x6 ^= x10, x6 = (x6 << 7) | (x6 >>> 25);
      x3 = (x3 + x7) | 0, x15 ^= x3, x15 = (x15 << 16) | (x15 >>> 16);
      x11 = (x11 + x15) | 0, x7 ^= x11, x7 = (x7 << 12) | (x7 >>> 20);
      x3 = (x3 + x7) | 0, x15 ^= x3, x15 = (x15 << 8) | (x15 >>> 24);
      x11 = (x11 + x15) | 0, x7 ^= x11, x7 = (x7 << 7) | (x7 >>> 25);
      // Diagonal rounds: QUARTERROUND(0,5,10,15) (1,6,11,12) (2,7,8,13) (3,4,9,14).
      x0 = (x0 + x5) | 0, x15 ^= x0, x15 = (x15 << 16) | (x15 >>> 16);
      x10 = (x10 + x15) | 0, x5 ^= x10, x5 = (x5 << 12) | (x5 >>> 20);
      x0 = (x0 + x5) | 0, x15 ^= x0, x15 = (x15 << 8) | (x15 >>> 24);
      x10 = (x10 + x15) | 0, x5 ^= x10, x5 = (x5 << 7) | (x5 >>> 25);
      x1 = (x1 + x6) | 0, x12 ^= x1, x12 = (x12 << 16) | (x12 >>> 16);
      x11 = (x11 + x12) | 0, x6 ^= x11, x6 = (x6 << 12) | (x6 >>> 20);
      x1 = (x1 + x6) | 0, x12 ^= x1, x12 = (x12 << 8) | (x12 >>> 24);
      x11 = (x11 + x12) | 0, x6 ^= x11, x6 = (x6 << 7) | (x6 >>> 25);
      x2 = (x2 + x7) | 0, x13 ^= x2, x13 = (x13 << 16) | (x13 >>> 16);
      x8 = (x8 + x13) | 0, x7 ^= x8, x7 = (x7 << 12) | (x7 >>> 20);
      x2 = (x2 + x7) | 0, x13 ^= x2, x13 = (x13 << 8) | (x13 >>> 24);
      x8 = (x8 + x13) | 0, x7 ^= x8, x7 = (x7 << 7) | (x7 >>> 25);
      x3 = (x3 + x4) | 0, x14 ^= x3, x14 = (x14 << 16) | (x14 >>> 16);
      x9 = (x9 + x14) | 0, x4 ^= x9, x4 = (x4 << 12) | (x4 >>> 20);
      x3 = (x3 + x4) | 0, x14 ^= x3, x14 = (x14 << 8) | (x14 >>> 24);
      x9 = (x9 + x14) | 0, x4 ^= x9, x4 = (x4 << 7) | (x4 >>> 25);
    }
    // The Uint32Array stores each sum modulo 2^32.
    const b = this.#block;
    b[0] = x0 + j0, b[1] = x1 + j1, b[2] = x2 + j2, b[3] = x3 + j3;
    b[4] = x4 + j4, b[5] = x5 + j5, b[6] = x6 + j6, b[7] = x7 + j7;
    b[8] = x8 + j8, b[9] = x9 + j9, b[10] = x10 + j10, b[11] = x11 + j11;
    b[12] = x12 + j12, b[13] = x13 + j13, b[14] = x14 + j14, b[15] = x15 + j15;
  }

  /** Poly1305 key setup: r clamped into 13-bit limbs, s kept as 16-bit words, h = 0. */
  #polyKey(key: Uint8Array): void {
    const t0 = key[0] | (key[1] << 8), t1 = key[2] | (key[3] << 8);
    const t2 = key[4] | (key[5] << 8), t3 = key[6] | (key[7] << 8);
    const t4 = key[8] | (key[9] << 8), t5 = key[10] | (key[11] << 8);
    const t6 = key[12] | (key[13] << 8), t7 = key[14] | (key[15] << 8);
    // r &= 0x0ffffffc0ffffffc0ffffffc0fffffff, expressed per limb.
    const r = this.#r;
    r[0] = t0 & 0x1fff;
    r[1] = ((t0 >>> 13) | (t1 << 3)) & 0x1fff;
    r[2] = ((t1 >>> 10) | (t2 << 6)) & 0x1f03;
    r[3] = ((t2 >>> 7) | (t3 << 9)) & 0x1fff;
    r[4] = ((t3 >>> 4) | (t4 << 12)) & 0x00ff;
    r[5] = (t4 >>> 1) & 0x1ffe;
    r[6] = ((t4 >>> 14) | (t5 << 2)) & 0x1fff;
    r[7] = ((t5 >>> 11) | (t6 << 5)) & 0x1f81;
    r[8] = ((t6 >>> 8) | (t7 << 8)) & 0x1fff;
    r[9] = (t7 >>> 5) & 0x007f;
    const s = this.#s;
    for (let i = 0; i < 8; i++) s[i] = key[16 + 2 * i] | (key[17 + 2 * i] << 8);
    this.#h.fill(0);
  }

  /** Absorbs `data[0 .. length)`, the last partial block zero-padded to 16 bytes. */
  #polyPadded(data: Uint8Array, length: number): void {
    const whole = length & ~15;
    if (whole > 0) this.#polyBlocks(data, 0, whole);
    if (whole < length) {
      const last = this.#last;
      last.fill(0);
      for (let i = whole; i < length; i++) last[i - whole] = data[i];
      this.#polyBlocks(last, 0, 16);
    }
  }

  /** h = (h + block + 2^128) * r mod 2^130 - 5 for each 16-byte block of `m[at .. at + bytes)`. */
  #polyBlocks(m: Uint8Array, at: number, bytes: number): void {
    const r = this.#r, h = this.#h;
    const r0 = r[0], r1 = r[1], r2 = r[2], r3 = r[3], r4 = r[4];
    const r5 = r[5], r6 = r[6], r7 = r[7], r8 = r[8], r9 = r[9];
    // 2^130 = 5 (mod p): limbs that overflow the top wrap around times 5.
    const s1 = 5 * r1, s2 = 5 * r2, s3 = 5 * r3, s4 = 5 * r4, s5 = 5 * r5;
    const s6 = 5 * r6, s7 = 5 * r7, s8 = 5 * r8, s9 = 5 * r9;
    let h0 = h[0], h1 = h[1], h2 = h[2], h3 = h[3], h4 = h[4];
    let h5 = h[5], h6 = h[6], h7 = h[7], h8 = h[8], h9 = h[9];
    for (const end = at + bytes; at < end; at += 16) {
      const t0 = m[at] | (m[at + 1] << 8), t1 = m[at + 2] | (m[at + 3] << 8);
      const t2 = m[at + 4] | (m[at + 5] << 8), t3 = m[at + 6] | (m[at + 7] << 8);
      const t4 = m[at + 8] | (m[at + 9] << 8), t5 = m[at + 10] | (m[at + 11] << 8);
      const t6 = m[at + 12] | (m[at + 13] << 8), t7 = m[at + 14] | (m[at + 15] << 8);
      h0 += t0 & 0x1fff;
      h1 += ((t0 >>> 13) | (t1 << 3)) & 0x1fff;
      h2 += ((t1 >>> 10) | (t2 << 6)) & 0x1fff;
      h3 += ((t2 >>> 7) | (t3 << 9)) & 0x1fff;
      h4 += ((t3 >>> 4) | (t4 << 12)) & 0x1fff;
      h5 += (t4 >>> 1) & 0x1fff;
      h6 += ((t4 >>> 14) | (t5 << 2)) & 0x1fff;
      h7 += ((t5 >>> 11) | (t6 << 5)) & 0x1fff;
      h8 += ((t6 >>> 8) | (t7 << 8)) & 0x1fff;
      h9 += (t7 >>> 5) | HIBIT;
      // Sums reach about 2^33: carries divide instead of shifting, which
      // would cut them to 32 bits.
      let d0 = h0 * r0 + h1 * s9 + h2 * s8 + h3 * s7 + h4 * s6 +
        h5 * s5 + h6 * s4 + h7 * s3 + h8 * s2 + h9 * s1;
      let c = (d0 / LIMB) | 0;
      d0 &= 0x1fff;
      let d1 = c + h0 * r1 + h1 * r0 + h2 * s9 + h3 * s8 + h4 * s7 +
        h5 * s6 + h6 * s5 + h7 * s4 + h8 * s3 + h9 * s2;
      c = (d1 / LIMB) | 0;
      d1 &= 0x1fff;
      let d2 = c + h0 * r2 + h1 * r1 + h2 * r0 + h3 * s9 + h4 * s8 +
        h5 * s7 + h6 * s6 + h7 * s5 + h8 * s4 + h9 * s3;
      c = (d2 / LIMB) | 0;
      d2 &= 0x1fff;
      let d3 = c + h0 * r3 + h1 * r2 + h2 * r1 + h3 * r0 + h4 * s9 +
        h5 * s8 + h6 * s7 + h7 * s6 + h8 * s5 + h9 * s4;
      c = (d3 / LIMB) | 0;
      d3 &= 0x1fff;
      let d4 = c + h0 * r4 + h1 * r3 + h2 * r2 + h3 * r1 + h4 * r0 +
        h5 * s9 + h6 * s8 + h7 * s7 + h8 * s6 + h9 * s5;
      c = (d4 / LIMB) | 0;
      d4 &= 0x1fff;
      let d5 = c + h0 * r5 + h1 * r4 + h2 * r3 + h3 * r2 + h4 * r1 +
        h5 * r0 + h6 * s9 + h7 * s8 + h8 * s7 + h9 * s6;
      c = (d5 / LIMB) | 0;
      d5 &= 0x1fff;
      let d6 = c + h0 * r6 + h1 * r5 + h2 * r4 + h3 * r3 + h4 * r2 +
        h5 * r1 + h6 * r0 + h7 * s9 + h8 * s8 + h9 * s7;
      c = (d6 / LIMB) | 0;
      d6 &= 0x1fff;
      let d7 = c + h0 * r7 + h1 * r6 + h2 * r5 + h3 * r4 + h4 * r3 +
        h5 * r2 + h6 * r1 + h7 * r0 + h8 * s9 + h9 * s8;
      c = (d7 / LIMB) | 0;
      d7 &= 0x1fff;
      let d8 = c + h0 * r8 + h1 * r7 + h2 * r6 + h3 * r5 + h4 * r4 +
        h5 * r3 + h6 * r2 + h7 * r1 + h8 * r0 + h9 * s9;
      c = (d8 / LIMB) | 0;
      d8 &= 0x1fff;
      let d9 = c + h0 * r9 + h1 * r8 + h2 * r7 + h3 * r6 + h4 * r5 +
        h5 * r4 + h6 * r3 + h7 * r2 + h8 * r1 + h9 * r0;
      c = (d9 / LIMB) | 0;
      d9 &= 0x1fff;
      c = (c * 5 + d0) | 0;
      d0 = c & 0x1fff;
      d1 += c >>> 13;
      h0 = d0, h1 = d1, h2 = d2, h3 = d3, h4 = d4;
      h5 = d5, h6 = d6, h7 = d7, h8 = d8, h9 = d9;
    }
    h[0] = h0, h[1] = h1, h[2] = h2, h[3] = h3, h[4] = h4;
    h[5] = h5, h[6] = h6, h[7] = h7, h[8] = h8, h[9] = h9;
  }

  /** tag = (h mod p + s) mod 2^128, written little-endian to `out[at .. at + 16)`. */
  #finish(out: Uint8Array, at: number): void {
    const h = this.#h, g = this.#g;
    // Carry h fully, then g = h + 5 - 2^130; h >= p exactly when g did not borrow.
    let c = h[1] >>> 13;
    h[1] &= 0x1fff;
    for (let i = 2; i < 10; i++) {
      h[i] += c;
      c = h[i] >>> 13;
      h[i] &= 0x1fff;
    }
    h[0] += c * 5;
    c = h[0] >>> 13;
    h[0] &= 0x1fff;
    h[1] += c;
    c = h[1] >>> 13;
    h[1] &= 0x1fff;
    h[2] += c;
    g[0] = h[0] + 5;
    c = g[0] >>> 13;
    g[0] &= 0x1fff;
    for (let i = 1; i < 10; i++) {
      g[i] = h[i] + c;
      c = g[i] >>> 13;
      g[i] &= 0x1fff;
    }
    g[9] -= 1 << 13;
    // Constant-time select: all ones when h >= p (take g), else zero.
    const takeG = ((c ^ 1) - 1) & 0xffff;
    for (let i = 0; i < 10; i++) h[i] = (h[i] & ~takeG) | (g[i] & takeG);
    // Repack the 130-bit value into eight 16-bit words, then add s mod 2^128.
    const w0 = (h[0] | (h[1] << 13)) & 0xffff;
    const w1 = ((h[1] >>> 3) | (h[2] << 10)) & 0xffff;
    const w2 = ((h[2] >>> 6) | (h[3] << 7)) & 0xffff;
    const w3 = ((h[3] >>> 9) | (h[4] << 4)) & 0xffff;
    const w4 = ((h[4] >>> 12) | (h[5] << 1) | (h[6] << 14)) & 0xffff;
    const w5 = ((h[6] >>> 2) | (h[7] << 11)) & 0xffff;
    const w6 = ((h[7] >>> 5) | (h[8] << 8)) & 0xffff;
    const w7 = ((h[8] >>> 8) | (h[9] << 5)) & 0xffff;
    const s = this.#s;
    let f = 0;
    f = w0 + s[0], out[at] = f & 0xff, out[at + 1] = (f >>> 8) & 0xff;
    f = w1 + s[1] + (f >>> 16), out[at + 2] = f & 0xff, out[at + 3] = (f >>> 8) & 0xff;
    f = w2 + s[2] + (f >>> 16), out[at + 4] = f & 0xff, out[at + 5] = (f >>> 8) & 0xff;
    f = w3 + s[3] + (f >>> 16), out[at + 6] = f & 0xff, out[at + 7] = (f >>> 8) & 0xff;
    f = w4 + s[4] + (f >>> 16), out[at + 8] = f & 0xff, out[at + 9] = (f >>> 8) & 0xff;
    f = w5 + s[5] + (f >>> 16), out[at + 10] = f & 0xff, out[at + 11] = (f >>> 8) & 0xff;
    f = w6 + s[6] + (f >>> 16), out[at + 12] = f & 0xff, out[at + 13] = (f >>> 8) & 0xff;
    f = w7 + s[7] + (f >>> 16), out[at + 14] = f & 0xff, out[at + 15] = (f >>> 8) & 0xff;
  }
}

/** le64(length) at `buf[at]`; lengths here are below 2^32. */
function writeLength(buf: Uint8Array, at: number, length: number): void {
  buf[at] = length & 0xff;
  buf[at + 1] = (length >>> 8) & 0xff;
  buf[at + 2] = (length >>> 16) & 0xff;
  buf[at + 3] = (length >>> 24) & 0xff;
}
