/**
 * multistream-select 1.0, the protocol negotiation libp2p runs on every raw
 * connection (`/noise`), inside the secure channel (`/yamux/1.0.0`) and on
 * every substream (application protocols).
 *
 * - {@linkcode selectProtocol}: the dialer, proposing protocols in order;
 * - {@linkcode selectProtocolOptimistic}: the dialer without the round trip;
 * - {@linkcode handleProtocol}: the listener.
 *
 * All three work on any {@linkcode Connection} (a socket, a secure channel,
 * a yamux stream) and return a {@linkcode Negotiated}: the agreed protocol
 * and the connection to speak it on.
 *
 * @example Both ends over an in-memory connection
 * ```ts
 * import { handleProtocol, selectProtocol } from "./mod.ts";
 * import { Multiaddr } from "../multiaddr.ts";
 * import { MemoryTransport } from "../transport/mod.ts";
 *
 * const transport = new MemoryTransport();
 * const listener = await transport.listen(Multiaddr.parse("/memory/0"));
 * const accepted = (async () => {
 *   for await (const conn of listener) return conn;
 * })();
 * const dialerSide = await transport.dial(listener.addr);
 * const listenerSide = (await accepted)!;
 * const [dialed, handled] = await Promise.all([
 *   selectProtocol(dialerSide, ["/yamux/1.0.0"]),
 *   handleProtocol(listenerSide, ["/yamux/1.0.0", "/mplex/6.7.0"]),
 * ]);
 * console.log(dialed.protocol, handled.protocol); // "/yamux/1.0.0" "/yamux/1.0.0"
 * dialerSide.abort();
 * listenerSide.abort();
 * await listener.close();
 * ```
 *
 * @module
 */

export * from "./options.ts";
export * from "./select_protocol.ts";
export * from "./select_protocol_optimistic.ts";
export * from "./handle_protocol.ts";

// Types of other modules that the API above refers to.
export type {
  ByteSink,
  ByteSource,
  Connection,
  ConnectionLifecycle,
} from "../transport/connection.ts";
export type {
  Multiaddr,
  MultiaddrComponent,
  MultiaddrProtocol,
  TcpEndpoint,
} from "../multiaddr.ts";
export type {
  HistogramSeries,
  Labels,
  Metric,
  MetricFamily,
  MetricKind,
  Metrics,
  Series,
  SeriesOf,
} from "../metrics.ts";
