/**
 * The options and result shared by the dialer and listener sides of
 * multistream-select 1.0.
 *
 * @module
 */

import type { Duplex } from "../transport/connection.ts";

/**
 * The protocol id of multistream-select 1.0, sent as the first line by both
 * ends of every negotiation.
 *
 * @example
 * ```ts
 * import { MULTISTREAM_PROTOCOL_ID } from "./options.ts";
 * console.log(MULTISTREAM_PROTOCOL_ID); // "/multistream/1.0.0"
 * ```
 */
export const MULTISTREAM_PROTOCOL_ID = "/multistream/1.0.0";

/**
 * Options for every negotiation function. Defaults in
 * {@linkcode NEGOTIATE_DEFAULTS}.
 *
 * @example
 * ```ts
 * import type { NegotiateOptions } from "./options.ts";
 * const options: NegotiateOptions = { timeout: 5_000, signal: AbortSignal.timeout(60_000) };
 * ```
 */
export interface NegotiateOptions {
  /** Cancels the negotiation; it rejects with an `ABORTED` `NetworkError`. */
  signal?: AbortSignal;
  /**
   * Deadline for the whole negotiation in ms; past it the negotiation rejects
   * with `TIMEOUT`. Default 10_000.
   */
  timeout?: number;
  /**
   * Largest message accepted from the peer, in bytes, counting the trailing
   * `\n` (not the length prefix). Longer ones fail with `FRAME_TOO_LARGE`.
   * Default 1024, as js-libp2p.
   */
  maxLineLength?: number;
  /**
   * Listener only: how many proposals (and `ls` requests) are answered
   * without agreement before the listener gives up with `LIMIT_EXCEEDED`.
   * Default 16.
   */
  maxAttempts?: number;
}

/**
 * The defaults of {@linkcode NegotiateOptions}.
 *
 * @example
 * ```ts
 * import { NEGOTIATE_DEFAULTS } from "./options.ts";
 * console.log(NEGOTIATE_DEFAULTS.maxLineLength); // 1024
 * ```
 */
export const NEGOTIATE_DEFAULTS: Readonly<Required<Omit<NegotiateOptions, "signal">>> = {
  timeout: 10_000,
  maxLineLength: 1024,
  maxAttempts: 16,
};

/**
 * The outcome of a successful negotiation.
 *
 * `stream` carries the agreed protocol. It is the very duplex that was
 * negotiated on when the peer sent nothing beyond its last negotiation
 * message; otherwise it is a duplex whose readable yields those early bytes
 * first and then the rest of the original readable, with the original
 * writable. Keep the original object for its lifecycle (close, abort).
 *
 * @example
 * ```ts
 * import type { Negotiated } from "./options.ts";
 * async function greet({ protocol, stream }: Negotiated) {
 *   const writer = stream.writable.getWriter();
 *   await writer.write(new TextEncoder().encode(`hello over ${protocol}`));
 *   writer.releaseLock();
 * }
 * ```
 */
export interface Negotiated {
  /** The protocol both ends agreed on. */
  protocol: string;
  /** The duplex to speak `protocol` on. */
  stream: Duplex;
  /**
   * The listener's agreement, not sent yet: only with `handleProtocol`'s
   * `deferAnswer`. The caller must send it in front of its first bytes on
   * `stream`.
   */
  unsentAnswer?: Uint8Array;
}

/**
 * Options of {@linkcode handleProtocol}: the shared ones, plus how to answer.
 *
 * @example
 * ```ts
 * import type { HandleProtocolOptions } from "./options.ts";
 * const options: HandleProtocolOptions = { timeout: 5_000, deferAnswer: true };
 * console.log(options.deferAnswer); // true
 * ```
 */
export interface HandleProtocolOptions extends NegotiateOptions {
  /**
   * When the dialer's first data already arrived behind its accepted
   * proposal (an optimistic dialer), do not write the agreement: return it
   * as `unsentAnswer`, for the caller to send with its own first message
   * (the `/noise` responder sends it with Noise message 2). A dialer that
   * waits for the answer is answered at once either way. Default false.
   */
  deferAnswer?: boolean;
}
