/**
 * Test helper: multistream-select messages spelled out by hand from the spec,
 * independent of the implementation's own encoder.
 */

import { concat } from "./_bytes.ts";

/**
 * One multistream-select message as the spec frames it: the unsigned varint
 * length of the line including its `\n`, then the UTF-8 line, then `\n`.
 *
 * @example
 * ```ts
 * msg("na"); // Uint8Array [0x03, 0x6e, 0x61, 0x0a]
 * ```
 */
export function msg(line: string): Uint8Array {
  const body = new TextEncoder().encode(line + "\n");
  const prefix: number[] = [];
  let n = body.length;
  while (n >= 0x80) {
    prefix.push((n & 0x7f) | 0x80);
    n >>>= 7;
  }
  prefix.push(n);
  return concat([new Uint8Array(prefix), body]);
}
