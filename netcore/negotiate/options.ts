/**
 * The options and result shared by the dialer and listener sides of
 * multistream-select 1.0.
 *
 * @module
 */

import type { Metrics } from "../metrics.ts";
import type { Connection } from "../transport/connection.ts";

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
  /**
   * Cancels the negotiation; it rejects with an `ABORTED` `NetworkError` and
   * the connection is aborted.
   */
  signal?: AbortSignal;
  /**
   * Deadline for the whole negotiation in ms; past it the negotiation rejects
   * with `TIMEOUT` and the connection is aborted. Default 10_000.
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
  /** Where failures are counted. Default `defaultMetrics`. */
  metrics?: Metrics;
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
export const NEGOTIATE_DEFAULTS: Readonly<Required<Omit<NegotiateOptions, "signal" | "metrics">>> =
  {
    timeout: 10_000,
    maxLineLength: 1024,
    maxAttempts: 16,
  };

/**
 * The outcome of a successful negotiation.
 *
 * `stream` carries the agreed protocol. It is the very connection that was
 * negotiated on when the peer sent nothing beyond its last negotiation
 * message; otherwise it is a connection that reads those early bytes first
 * and then the rest, and otherwise delegates to the original.
 *
 * @example
 * ```ts
 * import type { Negotiated } from "./options.ts";
 * async function greet({ protocol, stream }: Negotiated) {
 *   await stream.write(new TextEncoder().encode(`hello over ${protocol}`));
 * }
 * ```
 */
export interface Negotiated {
  /** The protocol both ends agreed on. */
  protocol: string;
  /** The connection to speak `protocol` on. */
  stream: Connection;
}
