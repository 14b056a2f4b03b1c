/**
 * The one error type every layer of the stack throws.
 *
 * A `NetworkError` carries a stable string {@linkcode NetworkErrorCode}, so
 * callers branch on `err.code` rather than on message text, and so metrics and
 * logs can count failures by kind. Decoders of untrusted input (frames,
 * varints, protobuf, handshake messages, negotiation lines) throw only this
 * type; anything else escaping from them is a bug.
 *
 * @module
 */

/**
 * Stable error codes. New codes may be added; existing ones never change
 * meaning.
 *
 * - `DIAL_REFUSED`: the remote end refused the connection (nothing listens, or
 *   a partition was injected in tests).
 * - `DIAL_TIMEOUT`: a dial did not complete within its deadline.
 * - `BAD_ADDRESS`: a multiaddr could not be parsed or is not supported by the
 *   transport it was given to.
 * - `ADDRESS_IN_USE`: a listener could not bind its address.
 * - `CONNECTION_CLOSED`: the connection or stream was closed (locally or by the
 *   peer) while an operation was pending.
 * - `CONNECTION_RESET`: the peer aborted the connection or reset the stream.
 * - `FRAME_TOO_LARGE`: a length prefix or a frame exceeds the protocol's limit.
 * - `PROTOCOL_VIOLATION`: the peer sent something the protocol forbids.
 * - `HANDSHAKE_FAILED`: an authentication or upgrade handshake failed.
 * - `UNAUTHORIZED`: the peer authenticated but is not allowed (unknown key,
 *   replayed handshake).
 * - `TIMEOUT`: an operation other than a dial ran past its deadline.
 * - `LIMIT_EXCEEDED`: a configured resource limit (streams, connections,
 *   buffered bytes) would be exceeded.
 * - `UNSUPPORTED_PROTOCOL`: the peer supports none of the proposed protocols.
 * - `ABORTED`: the caller's `AbortSignal` fired.
 * - `NOT_CONNECTED`: there is no connection to the peer an operation needs.
 * - `CONNECTION_REPLACED`: the connection was closed because another one to
 *   the same peer won (simultaneous dials keep one); retry on the peer.
 * - `REMOTE_ERROR`: the peer's handler failed the request (the message is
 *   the peer's).
 * - `BAD_CONFIG`: a configuration, key file or validator-set entry is
 *   invalid (the message names the field).
 *
 * @example
 * ```ts
 * import { NetworkError, type NetworkErrorCode } from "./network_error.ts";
 * const code: NetworkErrorCode = "DIAL_TIMEOUT";
 * const err = new NetworkError(code, "no answer from /ip4/10.0.0.7/tcp/4001");
 * console.log(err.retriable); // true
 * ```
 */
export type NetworkErrorCode =
  | "DIAL_REFUSED"
  | "DIAL_TIMEOUT"
  | "BAD_ADDRESS"
  | "ADDRESS_IN_USE"
  | "CONNECTION_CLOSED"
  | "CONNECTION_RESET"
  | "FRAME_TOO_LARGE"
  | "PROTOCOL_VIOLATION"
  | "HANDSHAKE_FAILED"
  | "UNAUTHORIZED"
  | "TIMEOUT"
  | "LIMIT_EXCEEDED"
  | "UNSUPPORTED_PROTOCOL"
  | "ABORTED"
  | "NOT_CONNECTED"
  | "CONNECTION_REPLACED"
  | "REMOTE_ERROR"
  | "BAD_CONFIG";

/** Codes for which the same operation may succeed if tried again (on the same or a new connection). */
const RETRIABLE: ReadonlySet<NetworkErrorCode> = new Set<NetworkErrorCode>([
  "DIAL_REFUSED",
  "DIAL_TIMEOUT",
  "CONNECTION_CLOSED",
  "CONNECTION_RESET",
  "CONNECTION_REPLACED",
  "NOT_CONNECTED",
  "TIMEOUT",
  "LIMIT_EXCEEDED",
]);

/**
 * Options for {@linkcode NetworkError}.
 *
 * @example
 * ```ts
 * import { NetworkError, type NetworkErrorOptions } from "./network_error.ts";
 * const options: NetworkErrorOptions = { cause: new RangeError("length 70000 > 65535") };
 * const err = new NetworkError("FRAME_TOO_LARGE", "noise frame", options);
 * console.log(err.cause === options.cause); // true
 * ```
 */
export interface NetworkErrorOptions {
  /** The lower-level error that caused this one, if any. */
  cause?: unknown;
}

/**
 * An error from the network stack, with a stable {@linkcode NetworkErrorCode}.
 *
 * @example Branch on the code
 * ```ts
 * import { NetworkError } from "./network_error.ts";
 *
 * try {
 *   throw new NetworkError("DIAL_REFUSED", "nothing listens on /memory/7");
 * } catch (err) {
 *   if (NetworkError.is(err, "DIAL_REFUSED")) console.log("retry later");
 * }
 * ```
 */
export class NetworkError extends Error {
  /** The stable code; see {@linkcode NetworkErrorCode}. */
  readonly code: NetworkErrorCode;

  /**
   * An error with `code` and `message`.
   *
   * @param code the stable code
   * @param message what went wrong, for a human
   * @param options the cause, if any
   */
  constructor(code: NetworkErrorCode, message: string, options?: NetworkErrorOptions) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.name = "NetworkError";
    this.code = code;
  }

  /**
   * Whether trying the operation again may succeed: the connection went away
   * or was replaced, a dial or a deadline failed, a limit was hit. Not for
   * refusals the peer will repeat (`UNAUTHORIZED`, `PROTOCOL_VIOLATION`, ...).
   *
   * @example
   * ```ts
   * import { NetworkError } from "./network_error.ts";
   * console.log(new NetworkError("CONNECTION_REPLACED", "lost the race").retriable); // true
   * console.log(new NetworkError("UNAUTHORIZED", "unknown key").retriable); // false
   * ```
   */
  get retriable(): boolean {
    return RETRIABLE.has(this.code);
  }

  /**
   * Whether `err` is a `NetworkError`, optionally with one of the given codes.
   *
   * @example
   * ```ts
   * import { NetworkError } from "./network_error.ts";
   * const err: unknown = new NetworkError("TIMEOUT", "slow");
   * console.log(NetworkError.is(err, "TIMEOUT", "DIAL_TIMEOUT")); // true
   * ```
   */
  static is(err: unknown, ...codes: NetworkErrorCode[]): err is NetworkError {
    return err instanceof NetworkError && (codes.length === 0 || codes.includes(err.code));
  }

  /**
   * Returns `err` if it is a `NetworkError`; otherwise wraps it in one with
   * `code`, keeping the original as `cause`. Use at layer boundaries so callers
   * only ever see typed errors.
   *
   * @example
   * ```ts
   * import { NetworkError } from "./network_error.ts";
   * const e = NetworkError.wrap(new TypeError("boom"), "PROTOCOL_VIOLATION", "decoding");
   * console.log(e.code); // "PROTOCOL_VIOLATION"
   * ```
   */
  static wrap(err: unknown, code: NetworkErrorCode, context: string): NetworkError {
    if (err instanceof NetworkError) return err;
    let detail: string;
    try {
      detail = err instanceof Error ? err.message : String(err);
    } catch {
      detail = Object.prototype.toString.call(err);
    }
    return new NetworkError(code, `${context}: ${detail}`, { cause: err });
  }
}
