/**
 * Unsigned varints (LEB128, as in the multiformats `unsigned-varint` spec),
 * used by multiaddr, multistream-select and length-prefixed framing.
 *
 * Decoding is bounded: at most 9 bytes (63 bits, the spec's limit) and a
 * caller-chosen maximum value; the minimal encoding is required, as the spec
 * says. Values are JS numbers, so the largest is `Number.MAX_SAFE_INTEGER`.
 *
 * @module
 */

import { NetworkError } from "./network_error.ts";

/** The most bytes an unsigned varint may take (spec: 9, for 63 bits). */
export const MAX_VARINT_BYTES = 9;

/**
 * How many bytes {@linkcode encodeVarint} writes for `value`.
 *
 * @example
 * ```ts
 * import { varintLength } from "./varint.ts";
 * console.log(varintLength(300)); // 2
 * ```
 */
export function varintLength(value: number): number {
  let n = 1;
  while (value >= 0x80) {
    value = Math.floor(value / 128);
    n++;
  }
  return n;
}

/**
 * Writes `value` as an unsigned varint into `out` at `offset` (a new array
 * when `out` is omitted) and returns the bytes written to as a view.
 *
 * @throws {RangeError} for a negative, fractional or unsafe value (a caller bug, not bad input)
 * @example
 * ```ts
 * import { encodeVarint } from "./varint.ts";
 * console.log(encodeVarint(300)); // Uint8Array [ 172, 2 ]
 * ```
 */
export function encodeVarint(value: number, out?: Uint8Array, offset = 0): Uint8Array {
  if (!Number.isSafeInteger(value) || value < 0) {
    throw new RangeError(`varint value must be a safe non-negative integer, got ${value}`);
  }
  const length = varintLength(value);
  const target = out ?? new Uint8Array(length);
  let i = offset;
  while (value >= 0x80) {
    target[i++] = (value % 128) | 0x80;
    value = Math.floor(value / 128);
  }
  target[i] = value;
  return target.subarray(offset, offset + length);
}

/** A decoded varint and how many bytes it took. */
export interface DecodedVarint {
  /** The decoded value. */
  value: number;
  /** Bytes consumed. */
  length: number;
}

/**
 * Decodes an unsigned varint at `offset`. Returns `undefined` when `bytes`
 * ends before the varint does (read more and try again).
 *
 * @param max largest accepted value; larger ones throw `FRAME_TOO_LARGE`
 * @throws {NetworkError} `PROTOCOL_VIOLATION` for an over-long or non-minimal
 *   encoding, `FRAME_TOO_LARGE` for a value above `max`
 * @example
 * ```ts
 * import { decodeVarint } from "./varint.ts";
 * console.log(decodeVarint(new Uint8Array([172, 2]))); // { value: 300, length: 2 }
 * ```
 */
export function decodeVarint(
  bytes: Uint8Array,
  offset = 0,
  max = Number.MAX_SAFE_INTEGER,
): DecodedVarint | undefined {
  let value = 0;
  let scale = 1;
  for (let i = 0; i < MAX_VARINT_BYTES; i++) {
    if (offset + i >= bytes.length) return undefined;
    const byte = bytes[offset + i];
    value += (byte & 0x7f) * scale;
    if (value > max) {
      throw new NetworkError("FRAME_TOO_LARGE", `varint value exceeds the limit of ${max}`);
    }
    if ((byte & 0x80) === 0) {
      if (byte === 0 && i > 0) {
        throw new NetworkError("PROTOCOL_VIOLATION", "varint is not minimally encoded");
      }
      return { value, length: i + 1 };
    }
    scale *= 128;
  }
  throw new NetworkError("PROTOCOL_VIOLATION", `varint longer than ${MAX_VARINT_BYTES} bytes`);
}
