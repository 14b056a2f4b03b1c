/**
 * Base58btc (the Bitcoin alphabet), the text form of libp2p peer ids.
 *
 * Quadratic in the input length, which is fine for the short identifiers it
 * serves; inputs are bounded by callers.
 *
 * @module
 */

import { NetworkError } from "./network_error.ts";

const ALPHABET = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz";
const DIGIT_OF: Int8Array = (() => {
  const table = new Int8Array(128).fill(-1);
  for (let i = 0; i < ALPHABET.length; i++) table[ALPHABET.charCodeAt(i)] = i;
  return table;
})();

/**
 * Encodes bytes as base58btc text.
 *
 * @example
 * ```ts
 * import { encodeBase58 } from "./base58.ts";
 * console.log(encodeBase58(new TextEncoder().encode("hello"))); // "Cn8eVZg"
 * ```
 */
export function encodeBase58(bytes: Uint8Array): string {
  let zeros = 0;
  while (zeros < bytes.length && bytes[zeros] === 0) zeros++;
  const digits: number[] = [];
  for (let i = zeros; i < bytes.length; i++) {
    let carry = bytes[i];
    for (let j = 0; j < digits.length; j++) {
      carry += digits[j] << 8;
      digits[j] = carry % 58;
      carry = (carry / 58) | 0;
    }
    while (carry > 0) {
      digits.push(carry % 58);
      carry = (carry / 58) | 0;
    }
  }
  let out = "1".repeat(zeros);
  for (let i = digits.length - 1; i >= 0; i--) out += ALPHABET[digits[i]];
  return out;
}

/**
 * Decodes base58btc text.
 *
 * @throws {NetworkError} `BAD_ADDRESS` for a character outside the alphabet
 * @example
 * ```ts
 * import { decodeBase58 } from "./base58.ts";
 * console.log(new TextDecoder().decode(decodeBase58("Cn8eVZg"))); // "hello"
 * ```
 */
export function decodeBase58(text: string): Uint8Array {
  let zeros = 0;
  while (zeros < text.length && text[zeros] === "1") zeros++;
  const bytes: number[] = [];
  for (let i = zeros; i < text.length; i++) {
    const code = text.charCodeAt(i);
    const digit = code < 128 ? DIGIT_OF[code] : -1;
    if (digit < 0) {
      throw new NetworkError("BAD_ADDRESS", `invalid base58 character ${JSON.stringify(text[i])}`);
    }
    let carry = digit;
    for (let j = 0; j < bytes.length; j++) {
      carry += bytes[j] * 58;
      bytes[j] = carry & 0xff;
      carry >>= 8;
    }
    while (carry > 0) {
      bytes.push(carry & 0xff);
      carry >>= 8;
    }
  }
  const out = new Uint8Array(zeros + bytes.length);
  for (let i = 0; i < bytes.length; i++) out[out.length - 1 - i] = bytes[i];
  return out;
}
