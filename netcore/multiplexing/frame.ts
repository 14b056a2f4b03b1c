/**
 * The yamux frame header (hashicorp/yamux `spec.md`, libp2p/specs
 * `yamux/README.md`): 12 bytes, big endian, in front of every frame.
 *
 * ```text
 * | Version (8) | Type (8) | Flags (16) | StreamID (32) | Length (32) |
 * ```
 *
 * @module
 */

import { NetworkError } from "../network_error.ts";

/**
 * The protocol id negotiated with multistream-select.
 *
 * @example
 * ```ts
 * import { YAMUX_PROTOCOL } from "./frame.ts";
 * console.log(YAMUX_PROTOCOL); // "/yamux/1.0.0"
 * ```
 */
export const YAMUX_PROTOCOL = "/yamux/1.0.0";

/**
 * "The version field is used for future backward compatibility. At the
 * current time, the field is always set to 0, to indicate the initial
 * version."
 *
 * @example
 * ```ts
 * import { encodeFrameHeader, FrameType, YAMUX_VERSION } from "./frame.ts";
 * const header = encodeFrameHeader({ type: FrameType.Ping, flags: 1, streamId: 0, length: 1 });
 * console.log(header[0] === YAMUX_VERSION); // true
 * ```
 */
export const YAMUX_VERSION = 0;

/**
 * "This means that each header has a 12 byte overhead."
 *
 * @example
 * ```ts
 * import { encodeFrameHeader, FrameType, HEADER_LENGTH } from "./frame.ts";
 * const header = encodeFrameHeader({ type: FrameType.Data, flags: 0, streamId: 1, length: 5 });
 * console.log(header.length === HEADER_LENGTH); // true
 * ```
 */
export const HEADER_LENGTH = 12;

/**
 * "When Yamux is initially starts each stream with a 256KB window size."
 * Both sides assume it; a larger window is granted with a window update.
 *
 * @example
 * ```ts
 * import { INITIAL_STREAM_WINDOW } from "./frame.ts";
 * console.log(INITIAL_STREAM_WINDOW); // 262144
 * ```
 */
export const INITIAL_STREAM_WINDOW = 256 * 1024;

/**
 * The largest value of the 32-bit length field (and of a stream window).
 *
 * @example
 * ```ts
 * import { MAX_WINDOW } from "./frame.ts";
 * console.log(MAX_WINDOW === 2 ** 32 - 1); // true
 * ```
 */
export const MAX_WINDOW = 0xffff_ffff;

/**
 * "The type field is used to switch the frame message type."
 *
 * @example
 * ```ts
 * import { FrameType } from "./frame.ts";
 * console.log(FrameType.WindowUpdate); // 1
 * ```
 */
export const FrameType = {
  /**
   * "Used to transmit data. May transmit zero length payloads depending on
   * the flags."
   */
  Data: 0x0,
  /**
   * "Used to updated the senders receive window size. This is used to
   * implement per-session flow control."
   */
  WindowUpdate: 0x1,
  /**
   * "Used to measure RTT. It can also be used to heart-beat and do
   * keep-alives over TCP."
   */
  Ping: 0x2,
  /** "Used to close a session." */
  GoAway: 0x3,
} as const;

/**
 * One of the values of {@linkcode FrameType}.
 *
 * @example
 * ```ts
 * import { FrameType } from "./frame.ts";
 * const type: FrameType = FrameType.GoAway;
 * ```
 */
export type FrameType = typeof FrameType[keyof typeof FrameType];

/**
 * "The flags field is used to provide additional information related to the
 * message type." Flags are bits and combine with `|`.
 *
 * @example
 * ```ts
 * import { Flag } from "./frame.ts";
 * const flags = Flag.SYN | Flag.FIN;
 * console.log((flags & Flag.FIN) !== 0); // true
 * ```
 */
export const Flag = {
  /**
   * "Signals the start of a new stream. May be sent with a data or window
   * update message. Also sent with a ping to indicate outbound."
   */
  SYN: 0x1,
  /**
   * "Acknowledges the start of a new stream. May be sent with a data or
   * window update message. Also sent with a ping to indicate response."
   */
  ACK: 0x2,
  /**
   * "Performs a half-close of a stream. May be sent with a data message or
   * window update."
   */
  FIN: 0x4,
  /**
   * "Reset a stream immediately. May be sent with a data or window update
   * message."
   */
  RST: 0x8,
} as const;

/**
 * "When a session is being terminated, the Go Away message should be sent.
 * The Length should be set to one of the following to provide an error code."
 *
 * @example
 * ```ts
 * import { GoAwayCode } from "./frame.ts";
 * console.log(GoAwayCode.ProtocolError); // 1
 * ```
 */
export const GoAwayCode = {
  /** "Normal termination" */
  NormalTermination: 0x0,
  /** "Protocol error" */
  ProtocolError: 0x1,
  /** "Internal error" */
  InternalError: 0x2,
} as const;

/**
 * One of the values of {@linkcode GoAwayCode}.
 *
 * @example
 * ```ts
 * import { GoAwayCode } from "./frame.ts";
 * const code: GoAwayCode = GoAwayCode.NormalTermination;
 * ```
 */
export type GoAwayCode = typeof GoAwayCode[keyof typeof GoAwayCode];

/**
 * A decoded frame header.
 *
 * @example
 * ```ts
 * import { FrameType, type FrameHeader } from "./frame.ts";
 * const ping: FrameHeader = { type: FrameType.Ping, flags: 1, streamId: 0, length: 42 };
 * ```
 */
export interface FrameHeader {
  /** "The type field is used to switch the frame message type." */
  type: FrameType;
  /**
   * "The flags field is used to provide additional information related to
   * the message type." A combination of {@linkcode Flag} bits.
   */
  flags: number;
  /**
   * "The StreamID field is used to identify the logical stream the frame is
   * addressing. The client side should use odd ID's, and the server even.
   * This prevents any collisions. Additionally, the 0 ID is reserved to
   * represent the session."
   */
  streamId: number;
  /**
   * "The meaning of the length field depends on the message type:
   * Data - provides the length of bytes following the header;
   * Window update - provides a delta update to the window size;
   * Ping - Contains an opaque value, echoed back;
   * Go Away - Contains an error code."
   */
  length: number;
}

const TYPE_NAMES = ["Data", "WindowUpdate", "Ping", "GoAway"];
const FLAG_NAMES: [number, string][] = [[1, "SYN"], [2, "ACK"], [4, "FIN"], [8, "RST"]];

/**
 * A header for logs, e.g. `Data(SYN|FIN) stream=3 length=5`.
 *
 * @example
 * ```ts
 * import { describeFrame, Flag, FrameType } from "./frame.ts";
 * describeFrame({ type: FrameType.Data, flags: Flag.SYN, streamId: 1, length: 5 });
 * ```
 */
export function describeFrame(header: FrameHeader): string {
  const flags = FLAG_NAMES.filter(([bit]) => (header.flags & bit) !== 0).map(([, n]) => n);
  return `${TYPE_NAMES[header.type] ?? header.type}(${
    flags.join("|")
  }) stream=${header.streamId} length=${header.length}`;
}

/**
 * Writes a header into `target` at `offset`, for the hot path: data frames
 * write their header in front of the body in one buffer so the layer below
 * sees one chunk per frame.
 *
 * @example
 * ```ts
 * import { FrameType, HEADER_LENGTH, writeFrameHeader } from "./frame.ts";
 * const body = new TextEncoder().encode("hi");
 * const frame = new Uint8Array(HEADER_LENGTH + body.length);
 * writeFrameHeader(frame, 0, FrameType.Data, 0, 1, body.length);
 * frame.set(body, HEADER_LENGTH);
 * ```
 */
export function writeFrameHeader(
  target: Uint8Array,
  offset: number,
  type: FrameType,
  flags: number,
  streamId: number,
  length: number,
): void {
  target[offset] = YAMUX_VERSION;
  target[offset + 1] = type;
  target[offset + 2] = flags >>> 8;
  target[offset + 3] = flags;
  target[offset + 4] = streamId >>> 24;
  target[offset + 5] = streamId >>> 16;
  target[offset + 6] = streamId >>> 8;
  target[offset + 7] = streamId;
  target[offset + 8] = length >>> 24;
  target[offset + 9] = length >>> 16;
  target[offset + 10] = length >>> 8;
  target[offset + 11] = length;
}

/**
 * A fresh 12-byte header.
 *
 * @throws {RangeError} when a field does not fit its width (a local bug, not
 *   a peer's fault)
 *
 * @example
 * ```ts
 * import { encodeFrameHeader, Flag, FrameType } from "./frame.ts";
 * const bytes = encodeFrameHeader({ type: FrameType.Ping, flags: Flag.SYN, streamId: 0, length: 7 });
 * console.log(bytes.length); // 12
 * ```
 */
export function encodeFrameHeader(header: FrameHeader): Uint8Array {
  const { type, flags, streamId, length } = header;
  if (!(type >= 0 && type <= 3)) throw new RangeError(`unknown frame type ${type}`);
  if (!Number.isInteger(flags) || flags < 0 || flags > 0xffff) {
    throw new RangeError(`flags ${flags} out of range`);
  }
  if (!Number.isInteger(streamId) || streamId < 0 || streamId > MAX_WINDOW) {
    throw new RangeError(`stream id ${streamId} out of range`);
  }
  if (!Number.isInteger(length) || length < 0 || length > MAX_WINDOW) {
    throw new RangeError(`length ${length} out of range`);
  }
  const bytes = new Uint8Array(HEADER_LENGTH);
  writeFrameHeader(bytes, 0, type, flags, streamId, length);
  return bytes;
}

/**
 * Reads the header at `offset` (12 bytes must be there) into `into`, which
 * is returned; pass a reused object on the hot path.
 *
 * @param maxDataLength the largest Data frame body accepted
 * @throws {NetworkError} `PROTOCOL_VIOLATION` for a version other than 0, an
 *   unknown type, or a Data length above `maxDataLength`
 *
 * @example
 * ```ts
 * import { decodeFrameHeader, encodeFrameHeader, FrameType } from "./frame.ts";
 * const bytes = encodeFrameHeader({ type: FrameType.GoAway, flags: 0, streamId: 0, length: 0 });
 * console.log(decodeFrameHeader(bytes, 0, 1 << 20).type); // 3
 * ```
 */
export function decodeFrameHeader(
  bytes: Uint8Array,
  offset: number,
  maxDataLength: number,
  into: FrameHeader = { type: FrameType.Data, flags: 0, streamId: 0, length: 0 },
): FrameHeader {
  const version = bytes[offset];
  if (version !== YAMUX_VERSION) {
    throw new NetworkError("PROTOCOL_VIOLATION", `yamux: unsupported version ${version}`);
  }
  const type = bytes[offset + 1];
  if (type > FrameType.GoAway) {
    throw new NetworkError("PROTOCOL_VIOLATION", `yamux: unknown frame type ${type}`);
  }
  const length = ((bytes[offset + 8] << 24) | (bytes[offset + 9] << 16) |
    (bytes[offset + 10] << 8) | bytes[offset + 11]) >>> 0;
  if (type === FrameType.Data && length > maxDataLength) {
    throw new NetworkError(
      "PROTOCOL_VIOLATION",
      `yamux: data frame of ${length} bytes exceeds the maximum of ${maxDataLength}`,
    );
  }
  into.type = type as FrameType;
  into.flags = (bytes[offset + 2] << 8) | bytes[offset + 3];
  into.streamId = ((bytes[offset + 4] << 24) | (bytes[offset + 5] << 16) |
    (bytes[offset + 6] << 8) | bytes[offset + 7]) >>> 0;
  into.length = length;
  return into;
}
