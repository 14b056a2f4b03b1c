/**
 * Protocols that run on negotiated streams: ping (`/ipfs/ping/1.0.0`), perf
 * (`/perf/1.0.0`) and echo (`/echo/1.0.0`); and messaging over the peer
 * manager's connections: {@linkcode DirectSend} (one-way messages, in order
 * per peer and protocol) and {@linkcode Rpc} (requests and responses).
 *
 * @module
 */

export * from "./ping.ts";
export * from "./perf.ts";
export * from "./echo.ts";
export * from "./direct_send.ts";
export * from "./rpc.ts";

// Types of other modules that the API above refers to.
export type {
  ByteSink,
  ByteSource,
  Connection,
  ConnectionLifecycle,
} from "../netcore/transport/connection.ts";
export type {
  Multiaddr,
  MultiaddrComponent,
  MultiaddrProtocol,
  TcpEndpoint,
} from "../netcore/multiaddr.ts";
export type { PeerDialOptions, PeerManager, StreamHandler } from "../netcore/peer/peer_manager.ts";
export type {
  DisconnectReason,
  PeerEvent,
  PeerEventStream,
  PeerInfo,
  PeerMetadata,
} from "../netcore/peer/peer_events.ts";
export type {
  Direction,
  OpenStreamOptions,
  PeerConnection,
  ProtocolStream,
  SecurityProfile,
} from "../netcore/upgrade/peer_connection.ts";
export type { ByteConnection } from "../netcore/transport/byte_connection.ts";
export type { DialOptions, Listener, ListenOptions, Role } from "../netcore/transport/transport.ts";
export type { NetworkError, NetworkErrorCode } from "../netcore/network_error.ts";
export type { Ed25519Identity } from "../netcore/identity/ed25519_identity.ts";
export type { PeerId } from "../netcore/identity/peer_id.ts";
export type { KeyPair } from "../netcore/noise/crypto.ts";
export type { SecureChannel } from "../netcore/noise/secure_channel.ts";
export type { Yamux, YamuxPingOptions, YamuxState } from "../netcore/multiplexing/yamux.ts";
export type {
  Priority,
  StreamState,
  YamuxStream,
  YamuxStreamStats,
} from "../netcore/multiplexing/yamux_stream.ts";
export type {
  HistogramSeries,
  Labels,
  Metric,
  MetricKind,
  Metrics,
  Series,
  SeriesOf,
} from "../netcore/metrics.ts";
export type { LogFields, Logger, LogLevel } from "../netcore/log.ts";
