/**
 * The validator network: what a validator node builds from its config
 * ({@linkcode ValidatorNetwork}), its keys ({@linkcode ValidatorKeys}),
 * protocol handles over DirectSend and RPC, the consensus and mempool
 * handles with their messages (protobuf on the wire), config validation,
 * and the command-line node's config file.
 *
 * @example
 * ```ts
 * import { ValidatorKeys } from "./mod.ts";
 * const keys = ValidatorKeys.generate();
 * console.log(keys.info(["/ip4/127.0.0.1/tcp/7000"]).addrs); // [ "/ip4/127.0.0.1/tcp/7000" ]
 * ```
 *
 * @module
 */

export * from "./validator_network.ts";
export * from "./validator_keys.ts";
export * from "./protocol_handle.ts";
export * from "./config.ts";
export * from "./consensus.ts";
export * from "./mempool.ts";
export { PING_RPC } from "./ping.ts";
export * from "./messages.ts";

// Types of other modules that the API above refers to.
export type {
  ByteSink,
  ByteSource,
  Connection,
  ConnectionLifecycle,
} from "../netcore/transport/connection.ts";
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
  MemoryAddress,
  MemoryConnectOptions,
  MemoryListener,
  MemoryListenOptions,
  MemoryNetwork,
  PartitionMode,
} from "../memsocket/memory_network.ts";
export type { MemorySocket } from "../memsocket/memory_socket.ts";
export type { DirectSendMessage } from "../protocols/direct_send.ts";
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
  MetricFamily,
  MetricKind,
  Metrics,
  MetricsRegistry,
  Series,
  SeriesOf,
} from "../netcore/metrics.ts";
export type { LogFields, Logger, LogLevel } from "../netcore/log.ts";
