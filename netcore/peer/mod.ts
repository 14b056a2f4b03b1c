/**
 * The peer layer: the peer manager (connections, one per peer, events,
 * inbound limits), the simultaneous-dial rule, peer events, the
 * connectivity manager (a connection to every eligible peer, with backoff),
 * the health checker, discovery (signed peer records gossiped), and the
 * libp2p node over the peer manager.
 *
 * @module
 */

export * from "./peer_manager.ts";
export * from "./peer_events.ts";
export * from "./simultaneous_dial.ts";
export * from "./connectivity_manager.ts";
export * from "./health_checker.ts";
export * from "./discovery.ts";
export * from "./libp2p_node.ts";

// Types of other modules that the API above refers to.
export type {
  Direction,
  MultiplexOptions,
  OpenStreamOptions,
  PeerConnection,
  ProtocolStream,
  SecurityProfile,
} from "../upgrade/peer_connection.ts";
export type { Libp2pUpgradeOptions } from "../upgrade/libp2p_upgrade.ts";
export type {
  ByteSink,
  ByteSource,
  Connection,
  ConnectionLifecycle,
} from "../transport/connection.ts";
export type { ByteConnection } from "../transport/byte_connection.ts";
export type {
  DialOptions,
  Listener,
  ListenOptions,
  Role,
  Transport,
  Upgrade,
  UpgradeContext,
} from "../transport/transport.ts";
export type { InboundLimits } from "../transport/inbound_gate.ts";
export type { NetworkError, NetworkErrorCode } from "../network_error.ts";
export type {
  Multiaddr,
  MultiaddrComponent,
  MultiaddrProtocol,
  TcpEndpoint,
} from "../multiaddr.ts";
export type { Ed25519Identity } from "../identity/ed25519_identity.ts";
export type { PeerId } from "../identity/peer_id.ts";
export type { PeerRecord } from "../identity/peer_record.ts";
export type { TrustedPeers, TrustedPeerSet } from "../noise/trusted_peers.ts";
export type { CryptoBackend, KeyPair, NoiseCipher, NoiseDh, NoiseHash } from "../noise/crypto.ts";
export type { SecureChannel } from "../noise/secure_channel.ts";
export type { Libp2pNoiseOptions } from "../noise/libp2p_noise.ts";
export type { Yamux, YamuxOptions, YamuxPingOptions, YamuxState } from "../multiplexing/yamux.ts";
export type {
  Priority,
  StreamState,
  YamuxStream,
  YamuxStreamStats,
} from "../multiplexing/yamux_stream.ts";
export type { NegotiateOptions } from "../negotiate/options.ts";
export type {
  HistogramSeries,
  Labels,
  Metric,
  MetricKind,
  Metrics,
  Series,
  SeriesOf,
} from "../metrics.ts";
export type { LogFields, Logger, LogLevel } from "../log.ts";
