/**
 * The wire format of multistream-select 1.0 messages. From the spec
 * (multiformats/multistream-select): "Every multistream message is a
 * length-prefixed-message, which means that every message is prepended by a
 * varint that describes the size of the message", and "Every multistream
 * message is appended by a `\n` character, this character is included in the
 * byte count".
 *
 * @module
 */

import { latin1 } from "../_bytes.ts";
import { NetworkError } from "../network_error.ts";
import { encodeVarint, varintLength } from "../varint.ts";
import { MULTISTREAM_PROTOCOL_ID } from "./options.ts";

/** The refusal: "Otherwise we return a `na` ("not available") error". */
export const NA = "na";
/** The request for the listener's protocols. */
export const LS = "ls";

const NEWLINE = 0x0a;
const encoder = new TextEncoder();
// fatal: a line that is not valid UTF-8 is a protocol violation, not U+FFFD.
const decoder = new TextDecoder("utf-8", { fatal: true });

/**
 * Our protocol names are checked once, before anything is sent: a name the
 * peer would have to reject (empty, multi-line, a reserved word, too long for
 * the peer's usual 1024-byte limit) is a bug in the caller, not bad input.
 */
export function checkProtocolName(protocol: string, maxLineLength: number): void {
  if (typeof protocol !== "string" || protocol.length === 0) {
    throw new TypeError("a protocol name must be a non-empty string");
  }
  if (protocol.includes("\n")) throw new TypeError(`protocol name contains a newline: ${protocol}`);
  if (protocol === NA || protocol === LS || protocol === MULTISTREAM_PROTOCOL_ID) {
    throw new TypeError(`"${protocol}" is reserved by multistream-select`);
  }
  const length = encoder.encode(protocol).length + 1;
  if (length > maxLineLength) {
    throw new RangeError(`protocol name takes ${length} bytes, over the limit of ${maxLineLength}`);
  }
}

/**
 * Length-prefixed lines, then `tail` (raw bytes, for optimistic mode), all in
 * one buffer so they leave in one write.
 */
export function encodeMessages(lines: readonly string[], tail?: Uint8Array): Uint8Array {
  const bodies = lines.map((line) => encoder.encode(line));
  let size = tail?.length ?? 0;
  for (const body of bodies) size += varintLength(body.length + 1) + body.length + 1;
  const out = new Uint8Array(size);
  let offset = 0;
  for (const body of bodies) {
    offset += encodeVarint(body.length + 1, out, offset).length;
    out.set(body, offset);
    offset += body.length;
    out[offset++] = NEWLINE;
  }
  if (tail !== undefined) out.set(tail, offset);
  return out;
}

/** The header message, encoded once: it opens every negotiation. */
export const HEADER_MESSAGE: Uint8Array = encodeMessages([MULTISTREAM_PROTOCOL_ID]);
/** The refusal message, encoded once. */
export const NA_MESSAGE: Uint8Array = encodeMessages([NA]);

/**
 * The answer to `ls`, as rust-libp2p and js-libp2p write it: one message
 * whose body is each protocol as its own length-prefixed line, then a final
 * `\n` (so the body, like every message, ends in a newline).
 */
export function encodeProtocolList(protocols: readonly string[]): Uint8Array {
  const inner = encodeMessages(protocols);
  const bodyLength = inner.length + 1;
  const out = new Uint8Array(varintLength(bodyLength) + bodyLength);
  const offset = encodeVarint(bodyLength, out).length;
  out.set(inner, offset);
  out[out.length - 1] = NEWLINE;
  return out;
}

/**
 * Checks and decodes the body of one message (length prefix already
 * removed): it must end in `\n`, hold no other `\n` and be valid UTF-8.
 *
 * @throws {NetworkError} `PROTOCOL_VIOLATION` otherwise
 */
export function decodeLine(body: Uint8Array): string {
  if (body.length === 0 || body[body.length - 1] !== NEWLINE) {
    throw new NetworkError("PROTOCOL_VIOLATION", "negotiation message does not end in a newline");
  }
  const end = body.length - 1;
  if (body.indexOf(NEWLINE) !== end) {
    throw new NetworkError("PROTOCOL_VIOLATION", "negotiation message holds more than one line");
  }
  // Protocol ids are ASCII in practice: build those directly, which costs a
  // fraction of a TextDecoder call; anything else is decoded (and checked).
  let ascii = true;
  for (let i = 0; i < end; i++) {
    if (body[i] >= 0x80) {
      ascii = false;
      break;
    }
  }
  if (ascii) return latin1(body.subarray(0, end));
  try {
    return decoder.decode(body.subarray(0, end));
  } catch (err) {
    throw new NetworkError("PROTOCOL_VIOLATION", "negotiation message is not valid UTF-8", {
      cause: err,
    });
  }
}

/**
 * Checks the listener's first line: `na` means it refuses multistream-select
 * 1.0 itself (`UNSUPPORTED_PROTOCOL`); anything but our header is a
 * `PROTOCOL_VIOLATION`.
 */
export function expectMultistreamHeader(header: string): void {
  if (header === NA) {
    throw new NetworkError(
      "UNSUPPORTED_PROTOCOL",
      `the listener refused ${MULTISTREAM_PROTOCOL_ID}`,
    );
  }
  if (header !== MULTISTREAM_PROTOCOL_ID) {
    throw new NetworkError(
      "PROTOCOL_VIOLATION",
      `expected the ${MULTISTREAM_PROTOCOL_ID} header, got ${JSON.stringify(header)}`,
    );
  }
}
