/**
 * RFC 4648 base32, lower case, no padding: multibase `b`, the text form of
 * CIDv1 peer ids.
 *
 * @module
 */

import { NetworkError } from "../network_error.ts";

const ALPHABET = "abcdefghijklmnopqrstuvwxyz234567";

/** Encodes bytes as lower-case unpadded base32. */
export function encodeBase32(bytes: Uint8Array): string {
  let out = "";
  let bits = 0;
  let value = 0;
  for (const byte of bytes) {
    value = (value << 8) | byte;
    bits += 8;
    while (bits >= 5) {
      out += ALPHABET[(value >>> (bits - 5)) & 31];
      bits -= 5;
    }
  }
  if (bits > 0) out += ALPHABET[(value << (5 - bits)) & 31];
  return out;
}

/**
 * Decodes lower-case unpadded base32.
 *
 * @throws {NetworkError} `BAD_ADDRESS` for a character outside the alphabet,
 *   an impossible length or non-zero trailing bits
 */
export function decodeBase32(text: string): Uint8Array {
  const out = new Uint8Array(Math.floor((text.length * 5) / 8));
  let bits = 0;
  let value = 0;
  let written = 0;
  for (let i = 0; i < text.length; i++) {
    const digit = ALPHABET.indexOf(text[i]);
    if (digit < 0) {
      throw new NetworkError("BAD_ADDRESS", `invalid base32 character ${JSON.stringify(text[i])}`);
    }
    value = ((value << 5) | digit) & 0xfff;
    bits += 5;
    if (bits >= 8) {
      out[written++] = (value >>> (bits - 8)) & 0xff;
      bits -= 8;
    }
  }
  if (bits >= 5) throw new NetworkError("BAD_ADDRESS", "base32 text has an impossible length");
  if ((value & ((1 << bits) - 1)) !== 0) {
    throw new NetworkError("BAD_ADDRESS", "base32 text has non-zero trailing bits");
  }
  return out;
}
