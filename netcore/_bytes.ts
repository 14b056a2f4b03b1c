/**
 * Byte-array helpers the layers share: equality, and one-byte-per-character
 * strings (map keys, ASCII protocol lines). Internal to the stack.
 *
 * @module
 */

/**
 * Whether `a` and `b` hold the same bytes. Not constant-time: for keys and
 * ids, never for secrets an attacker may probe.
 *
 * @example
 * ```ts
 * import { equalBytes } from "./_bytes.ts";
 * console.log(equalBytes(new Uint8Array([1, 2]), new Uint8Array([1, 2]))); // true
 * ```
 */
export function equalBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/** Bytes per `String.fromCharCode.apply` call: far below any engine's argument limit. */
const APPLY_CHUNK = 4096;

/**
 * The string with one character (code 0-255) per byte: an exact, reversible
 * key for a map, or an ASCII line without a TextDecoder call.
 *
 * @example
 * ```ts
 * import { latin1 } from "./_bytes.ts";
 * console.log(latin1(new TextEncoder().encode("/noise"))); // "/noise"
 * ```
 */
export function latin1(bytes: Uint8Array): string {
  // apply() takes the array as it is; a spread would iterate it.
  if (bytes.length <= APPLY_CHUNK) {
    return String.fromCharCode.apply(null, bytes as unknown as number[]);
  }
  let text = "";
  for (let at = 0; at < bytes.length; at += APPLY_CHUNK) {
    text += String.fromCharCode.apply(
      null,
      bytes.subarray(at, at + APPLY_CHUNK) as unknown as number[],
    );
  }
  return text;
}
