/**
 * A peer-to-peer network stack for blockchain validators, for Deno.
 *
 * It keeps authenticated, encrypted connections between nodes, keeps track of
 * peers, and gives consensus and mempool a small typed API to reach other
 * validators. The wire speaks libp2p where libp2p has a spec
 * (multistream-select 1.0, yamux, libp2p-noise XX, ping, perf), so nodes
 * interoperate with js-libp2p; validators add Noise IK with mutual
 * authentication against the validator set.
 *
 * This module exports what a validator node and a libp2p user need, and, as
 * types only, what their signatures refer to (options, states, the socket,
 * Noise channel and yamux session under a `PeerConnection`, metric series).
 * Each layer's full API is a sub-path export of the package: `./transport`,
 * `./identity`, `./noise`, `./negotiate`, `./multiplexing`, `./upgrade`,
 * `./memsocket`, `./protocols`, `./validator` (with the protobuf messages of
 * consensus and mempool).
 *
 * @example Ping between two nodes (over TCP, listen on `/ip4/127.0.0.1/tcp/0` instead)
 * ```ts
 * import { handlePing, Libp2pNode, Multiaddr, PING_PROTOCOL, Pinger } from "./mod.ts";
 * const server = await Libp2pNode.create({ listen: [Multiaddr.parse("/memory/0")] });
 * server.handle(PING_PROTOCOL, (stream) => handlePing(stream));
 * const client = await Libp2pNode.create();
 * const pinger = new Pinger(await client.newStream(server.listenAddrs[0], [PING_PROTOCOL]));
 * console.log(`${await pinger.ping()} ms`);
 * await pinger.close();
 * await client.close();
 * await server.close();
 * ```
 *
 * @module
 */

// The validator network: what a validator node imports.
export {
  type ConnectedPeer,
  ValidatorNetwork,
  type ValidatorNetworkOptions,
} from "./validator/validator_network.ts";
export {
  type ValidatorInfo,
  type ValidatorKeyFile,
  ValidatorKeys,
} from "./validator/validator_keys.ts";
export {
  DirectSendHandle,
  type DirectSendHandleEvent,
  type PeerChange,
  type PeerLike,
  type ProtocolOptions,
  type RequestOptions,
  RpcHandle,
  type RpcHandleEvent,
} from "./validator/protocol_handle.ts";
export {
  LIMIT_DEFAULTS,
  type NetworkLimits,
  type NetworkTimeouts,
  type ParsedValidator,
  parseValidatorSet,
  resolveLimits,
  resolveTimeouts,
  TIMEOUT_DEFAULTS,
} from "./validator/config.ts";
export {
  CONSENSUS_DIRECT_SEND,
  CONSENSUS_RPC,
  type ConsensusEvent,
  ConsensusHandle,
} from "./validator/consensus.ts";
export { MEMPOOL_RPC, type MempoolEvent, MempoolHandle } from "./validator/mempool.ts";
export type {
  Block,
  BlockRequest,
  BlockResponse,
  ConsensusMessage,
  Proposal,
  QuorumCert,
  Timeout,
  TransactionAck,
  TransactionBatch,
  Vote,
} from "./validator/messages.ts";

// Errors and addresses.
export {
  NetworkError,
  type NetworkErrorCode,
  type NetworkErrorOptions,
} from "./netcore/network_error.ts";
export {
  Multiaddr,
  type MultiaddrComponent,
  type MultiaddrProtocol,
  type TcpEndpoint,
} from "./netcore/multiaddr.ts";

// Identities, keys and the Noise crypto backends.
export { Ed25519Identity } from "./netcore/identity/ed25519_identity.ts";
export { PeerId } from "./netcore/identity/peer_id.ts";
export {
  type CryptoBackend,
  getCryptoBackend,
  type KeyPair,
  type NoiseCipher,
  type NoiseDh,
  type NoiseHash,
} from "./netcore/noise/crypto.ts";
export { type TrustedPeers, TrustedPeerSet } from "./netcore/noise/trusted_peers.ts";

// Transports: the byte connection, sockets, TCP, memory, and the combinators.
export type {
  ByteSink,
  ByteSource,
  Connection,
  ConnectionLifecycle,
} from "./netcore/transport/connection.ts";
export type { ByteConnection } from "./netcore/transport/byte_connection.ts";
export type {
  Socket,
  SocketConnection,
  SocketConnectionOptions,
} from "./netcore/transport/socket_connection.ts";
export type {
  DialOptions,
  Listener,
  ListenOptions,
  Role,
  Transport,
  Upgrade,
  UpgradeContext,
} from "./netcore/transport/transport.ts";
export { TcpTransport, type TcpTransportOptions } from "./netcore/transport/tcp_transport.ts";
export {
  MemoryTransport,
  type MemoryTransportOptions,
} from "./netcore/transport/memory_transport.ts";
export {
  type MemoryAddress,
  type MemoryConnectOptions,
  type MemoryListener,
  type MemoryListenOptions,
  MemoryNetwork,
  type PartitionMode,
} from "./memsocket/memory_network.ts";
export type { MemorySocket } from "./memsocket/memory_socket.ts";
export { andThen, type AndThenOptions } from "./netcore/transport/and_then.ts";
export type { InboundLimits } from "./netcore/transport/inbound_gate.ts";
export { withTimeout } from "./netcore/transport/with_timeout.ts";
export { choice, type ConnectionOf } from "./netcore/transport/choice.ts";
export { ByteReader } from "./netcore/byte_reader.ts";

// The upgrade pipeline and the one connection type both profiles yield.
export {
  type Authenticated,
  type Direction,
  type MultiplexOptions,
  type OpenStreamOptions,
  PeerConnection,
  type ProtocolStream,
  type SecurityProfile,
} from "./netcore/upgrade/peer_connection.ts";
export { libp2pUpgrade, type Libp2pUpgradeOptions } from "./netcore/upgrade/libp2p_upgrade.ts";
export {
  validatorUpgrade,
  type ValidatorUpgradeOptions,
} from "./netcore/upgrade/validator_upgrade.ts";
// What a PeerConnection is made of: the Noise channel, the yamux session and its streams.
export type {
  SecureChannel,
  SecureChannelInit,
  TransportCipher,
} from "./netcore/noise/secure_channel.ts";
export type { Libp2pNoiseOptions } from "./netcore/noise/libp2p_noise.ts";
export type { ValidatorNoiseOptions } from "./netcore/noise/validator_noise.ts";
export type { ReplayGuard, ReplayGuardOptions } from "./netcore/noise/replay_guard.ts";
export type {
  Yamux,
  YamuxOptions,
  YamuxPingOptions,
  YamuxState,
} from "./netcore/multiplexing/yamux.ts";
export type {
  Priority,
  StreamState,
  YamuxStream,
  YamuxStreamStats,
} from "./netcore/multiplexing/yamux_stream.ts";
export type { NegotiateOptions } from "./netcore/negotiate/options.ts";

// The peer layer: one connection per peer, events; a node over it.
export { Libp2pNode, type Libp2pNodeOptions } from "./netcore/peer/libp2p_node.ts";
export {
  type PeerDialOptions,
  PeerManager,
  type PeerManagerOptions,
  type StreamHandler,
} from "./netcore/peer/peer_manager.ts";
export type {
  DisconnectReason,
  PeerEvent,
  PeerEventStream,
  PeerInfo,
  PeerMetadata,
} from "./netcore/peer/peer_events.ts";

// Protocols.
export { handlePing, PING_PROTOCOL, Pinger, type PingOptions } from "./protocols/ping.ts";
export {
  handlePerf,
  PERF_PROTOCOL,
  type PerfResult,
  type PerfServerOptions,
  runPerf,
} from "./protocols/perf.ts";
export { ECHO_PROTOCOL, handleEcho } from "./protocols/echo.ts";
export type { DirectSendMessage } from "./protocols/direct_send.ts";

// Observability.
export {
  defaultMetrics,
  defaultRegistry,
  type HistogramSeries,
  type Labels,
  type Metric,
  type MetricFamily,
  type MetricKind,
  type Metrics,
  MetricsRegistry,
  type Series,
  type SeriesOf,
} from "./netcore/metrics.ts";
export { type LogFields, Logger, type LogLevel, type LogSink, rootLogger } from "./netcore/log.ts";
