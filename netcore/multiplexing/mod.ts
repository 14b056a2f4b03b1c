/**
 * Yamux stream multiplexing (`/yamux/1.0.0`): the frame codec, the session
 * and its streams.
 *
 * @module
 */

export * from "./frame.ts";
export * from "./frame_decoder.ts";
export * from "./yamux.ts";
export * from "./yamux_stream.ts";

// Types of other modules that the API above refers to.
export type {
  ByteSink,
  ByteSource,
  Connection,
  ConnectionLifecycle,
} from "../transport/connection.ts";
export type { ByteConnection } from "../transport/byte_connection.ts";
export type { Role } from "../transport/transport.ts";
export type { NetworkError, NetworkErrorCode, NetworkErrorOptions } from "../network_error.ts";
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
export type { LogFields, Logger, LogLevel, LogSink } from "../log.ts";
