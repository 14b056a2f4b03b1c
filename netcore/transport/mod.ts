/**
 * Transports and their combinators: the {@linkcode Connection} and
 * {@linkcode Transport} contracts, {@linkcode TcpTransport}, and
 * {@linkcode andThen} (upgrade every connection), {@linkcode withTimeout}
 * (bound a whole dial) and {@linkcode choice} (route by address). The
 * in-memory transport lives in `memsocket/`.
 *
 * @example TCP, upgraded, with a dial deadline
 * ```ts
 * import { andThen, TcpTransport, withTimeout } from "./mod.ts";
 *
 * const transport = withTimeout(
 *   andThen(new TcpTransport(), (conn, { role }) => Promise.resolve(Object.assign(conn, { role }))),
 *   10_000,
 * );
 * ```
 *
 * @module
 */

export * from "./connection.ts";
export * from "./transport.ts";
export * from "./byte_connection.ts";
export * from "./socket_connection.ts";
export * from "./tcp_transport.ts";
export * from "./memory_transport.ts";
export * from "./and_then.ts";
export * from "./with_timeout.ts";
export * from "./choice.ts";
export type { InboundLimits } from "./inbound_gate.ts";

// Types of other modules that the API above refers to.
export type {
  Multiaddr,
  MultiaddrComponent,
  MultiaddrProtocol,
  TcpEndpoint,
} from "../multiaddr.ts";
export type {
  MemoryAddress,
  MemoryConnectOptions,
  MemoryListener,
  MemoryListenOptions,
  MemoryNetwork,
  PartitionMode,
} from "../../memsocket/memory_network.ts";
export type { MemorySocket } from "../../memsocket/memory_socket.ts";
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
