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
export type {
  PeerDialOptions,
  PeerManager,
  PeerManagerOptions,
  StreamHandler,
} from "../netcore/peer/peer_manager.ts";
export type {
  DisconnectReason,
  PeerEvent,
  PeerEventStream,
  PeerInfo,
  PeerMetadata,
} from "../netcore/peer/peer_events.ts";
export type {
  Authenticated,
  Direction,
  MultiplexOptions,
  OpenStreamOptions,
  PeerConnection,
  ProtocolStream,
  SecurityProfile,
} from "../netcore/upgrade/peer_connection.ts";
export type { ByteConnection } from "../netcore/transport/byte_connection.ts";
export type {
  DialOptions,
  Listener,
  ListenOptions,
  Role,
  Transport,
  Upgrade,
  UpgradeContext,
} from "../netcore/transport/transport.ts";
export type { InboundLimits } from "../netcore/transport/inbound_gate.ts";
export type {
  NetworkError,
  NetworkErrorCode,
  NetworkErrorOptions,
} from "../netcore/network_error.ts";
export type { Ed25519Identity } from "../netcore/identity/ed25519_identity.ts";
export type { PeerId } from "../netcore/identity/peer_id.ts";
export type {
  CryptoBackend,
  KeyPair,
  NoiseCipher,
  NoiseDh,
  NoiseHash,
} from "../netcore/noise/crypto.ts";
export type {
  SecureChannel,
  SecureChannelInit,
  TransportCipher,
} from "../netcore/noise/secure_channel.ts";
export type {
  Yamux,
  YamuxOptions,
  YamuxPingOptions,
  YamuxState,
} from "../netcore/multiplexing/yamux.ts";
export type {
  Priority,
  StreamState,
  YamuxStream,
  YamuxStreamStats,
} from "../netcore/multiplexing/yamux_stream.ts";
export type { NegotiateOptions } from "../netcore/negotiate/options.ts";
export type { ByteReader } from "../netcore/byte_reader.ts";
export type {
  HistogramSeries,
  Labels,
  Metric,
  MetricFamily,
  MetricKind,
  Metrics,
  Series,
  SeriesOf,
} from "../netcore/metrics.ts";
export type { LogFields, Logger, LogLevel, LogSink } from "../netcore/log.ts";
