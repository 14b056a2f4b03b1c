/**
 * The libp2p-noise wire framing shared by handshake and transport messages:
 *
 * > All data is segmented into messages with the following structure:
 * > `noise_message_len` (2 bytes) | `noise_message` (variable length).
 * > The `noise_message_len` field stores the length in bytes of the
 * > `noise_message` field, encoded as a 16-bit big-endian unsigned integer.
 * > (libp2p/specs noise/README.md, "Wire Format")
 *
 * Internal to `netcore/noise`.
 *
 * @module
 */

import type { ByteReader } from "../byte_reader.ts";
import { NetworkError } from "../network_error.ts";

/** Bytes of the big-endian length prefix before every Noise message. */
export const LENGTH_PREFIX = 2;

/** "Noise messages have a maximum length of 65535 bytes" (Noise spec rev 34, section 3). */
export const MAX_NOISE_MESSAGE = 65535;

/** Bytes of the ChaChaPoly authentication tag appended to every ciphertext. */
export const TAG_LENGTH = 16;

/** The largest plaintext that fits in one transport message. */
export const MAX_PLAINTEXT = MAX_NOISE_MESSAGE - TAG_LENGTH;

/** The empty associated data of every transport message. */
export const EMPTY = new Uint8Array(0);

/**
 * `message` with its 2-byte big-endian length prefix, in a fresh array.
 *
 * @throws {NetworkError} `FRAME_TOO_LARGE` above {@linkcode MAX_NOISE_MESSAGE}
 */
export function encodeFrame(message: Uint8Array): Uint8Array {
  if (message.length > MAX_NOISE_MESSAGE) {
    throw new NetworkError(
      "FRAME_TOO_LARGE",
      `noise message of ${message.length} bytes exceeds ${MAX_NOISE_MESSAGE}`,
    );
  }
  const out = new Uint8Array(LENGTH_PREFIX + message.length);
  out[0] = message.length >>> 8;
  out[1] = message.length & 0xff;
  out.set(message, LENGTH_PREFIX);
  return out;
}

/** Bounds on one handshake message, checked before its body is read. */
export interface FrameBounds {
  /** Smallest acceptable length. */
  min: number;
  /** Largest acceptable length (at most {@linkcode MAX_NOISE_MESSAGE}). */
  max: number;
  /** What is being read, for the error message. */
  what: string;
}

/**
 * Reads one length-prefixed handshake message whose length lies in `bounds`.
 * The length is checked before the body is read, so a peer cannot make us
 * wait for (or buffer) bytes a valid message would never have.
 *
 * @throws {NetworkError} `HANDSHAKE_FAILED` for a length out of bounds,
 *   `CONNECTION_CLOSED` / `CONNECTION_RESET` from the stream
 */
export async function readHandshakeFrame(
  reader: ByteReader,
  bounds: FrameBounds,
): Promise<Uint8Array> {
  const prefix = await reader.readExactly(LENGTH_PREFIX);
  const length = (prefix[0] << 8) | prefix[1];
  if (length < bounds.min || length > bounds.max) {
    const expected = bounds.min === bounds.max ? `${bounds.min}` : `${bounds.min}..${bounds.max}`;
    throw new NetworkError(
      "HANDSHAKE_FAILED",
      `${bounds.what}: ${length} bytes, expected ${expected}`,
    );
  }
  return await reader.readExactly(length);
}
