/**
 * The upgrade pipeline: how a raw connection becomes a
 * {@linkcode PeerConnection}, for either security profile.
 *
 * Transitions, in order (as rust-libp2p's `core/src/transport/upgrade.rs`
 * writes them down). Each step takes only the type the step before it
 * yields, so the order cannot be broken: yamux runs only on an
 * authenticated channel, and streams exist only on a `PeerConnection`.
 *
 * ```text
 * libp2p profile (public peers, js-libp2p interop):
 *   Connection (TCP | memory)
 *     --multistream-select /noise (optimistic)--> Connection
 *     --Noise XX, signed libp2p identity--------> Libp2pNoiseConnection (SecureChannel, PeerId)
 *     --multistream-select /yamux/1.0.0 (skipped: early muxer negotiation)--> Connection
 *     --multiplex (yamux)-----------------------> PeerConnection
 *
 * validator profile (the validator set):
 *   Connection (TCP | memory)
 *     --Noise IK against the trusted set-------> ValidatorNoiseConnection (SecureChannel, PeerId)
 *     --multiplex (yamux)-----------------------> PeerConnection
 *
 * both:
 *   PeerConnection --openStream | acceptStream + multistream-select <protocol>--> ProtocolStream
 * ```
 *
 * @module
 */

export * from "./peer_connection.ts";
export * from "./libp2p_upgrade.ts";
export * from "./validator_upgrade.ts";

// Types of other modules that the API above refers to.
export type {
  ByteSink,
  ByteSource,
  Connection,
  ConnectionLifecycle,
} from "../transport/connection.ts";
export type { ByteConnection } from "../transport/byte_connection.ts";
export type { Role, Upgrade, UpgradeContext } from "../transport/transport.ts";
export type { NetworkError, NetworkErrorCode, NetworkErrorOptions } from "../network_error.ts";
export type { ByteReader } from "../byte_reader.ts";
export type {
  Multiaddr,
  MultiaddrComponent,
  MultiaddrProtocol,
  TcpEndpoint,
} from "../multiaddr.ts";
export type { Ed25519Identity } from "../identity/ed25519_identity.ts";
export type { PeerId } from "../identity/peer_id.ts";
export type { CryptoBackend, KeyPair, NoiseCipher, NoiseDh, NoiseHash } from "../noise/crypto.ts";
export type { SecureChannel, SecureChannelInit, TransportCipher } from "../noise/secure_channel.ts";
export type { Libp2pNoiseOptions } from "../noise/libp2p_noise.ts";
export type { ValidatorNoiseOptions } from "../noise/validator_noise.ts";
export type { TrustedPeers } from "../noise/trusted_peers.ts";
export type { ReplayGuard, ReplayGuardOptions } from "../noise/replay_guard.ts";
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
  MetricFamily,
  MetricKind,
  Metrics,
  Series,
  SeriesOf,
} from "../metrics.ts";
export type { LogFields, Logger, LogLevel, LogSink } from "../log.ts";
