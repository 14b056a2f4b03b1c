/**
 * Noise: the framework (revision 34) and the two secure-channel profiles
 * built on it.
 *
 * - {@linkcode libp2pNoise}: libp2p-noise, `Noise_XX_25519_ChaChaPoly_SHA256`,
 *   peers authenticated by their libp2p identity keys; speaks to any libp2p
 *   node.
 * - {@linkcode validatorNoise}: `Noise_IK_25519_ChaChaPoly_SHA256` between
 *   validators that know each other's static keys, with a trusted set
 *   ({@linkcode TrustedPeerSet}) and replay protection
 *   ({@linkcode ReplayGuard}).
 *
 * Both are upgrades (`Upgrade<Connection, ...>`) for `andThen` on any
 * transport, and yield a {@linkcode SecureChannel}: a {@linkcode Connection}
 * like the one below it (the same byte methods), encrypted, with the peer's
 * authenticated keys. `libp2pUpgrade` and `validatorUpgrade` in `../upgrade/`
 * run them as part of the whole pipeline.
 *
 * The framework itself (crypto backends, `CipherState`, `SymmetricState`,
 * `HandshakeState`, handshake patterns) is exported for other profiles and
 * for tests.
 *
 * @example Noise XX on every connection of a transport
 * ```ts
 * import { Ed25519Identity } from "../identity/mod.ts";
 * import { Multiaddr } from "../multiaddr.ts";
 * import { andThen, MemoryTransport } from "../transport/mod.ts";
 * import { libp2pNoise } from "./mod.ts";
 *
 * const server = Ed25519Identity.generate();
 * const listener = await andThen(new MemoryTransport(), libp2pNoise(server))
 *   .listen(Multiaddr.parse("/memory/0"));
 * const accepted = (async () => {
 *   for await (const conn of listener) return conn;
 * })();
 * const secure = andThen(new MemoryTransport(), libp2pNoise(Ed25519Identity.generate()));
 * const conn = await secure.dial(listener.addr);
 * await conn.write(new TextEncoder().encode("encrypted"));
 * const inbound = (await accepted)!;
 * console.log(new TextDecoder().decode((await inbound.read())!)); // "encrypted"
 * console.log(conn.remotePeerId.equals(server.peerId)); // true
 * conn.abort();
 * inbound.abort();
 * await listener.close();
 * ```
 *
 * @module
 */

export * from "./crypto.ts";
export * from "./cipher_state.ts";
export * from "./symmetric_state.ts";
export * from "./handshake_state.ts";
export * from "./patterns.ts";
export * from "./protocol_name.ts";
export * from "./secure_channel.ts";
export * from "./libp2p_noise.ts";
export * from "./validator_noise.ts";
export * from "./trusted_peers.ts";
export * from "./replay_guard.ts";

// Types of other modules that the API above refers to.
export type {
  ByteSink,
  ByteSource,
  Connection,
  ConnectionLifecycle,
} from "../transport/connection.ts";
export type { ByteConnection } from "../transport/byte_connection.ts";
export type { Role, Upgrade, UpgradeContext } from "../transport/transport.ts";
export type { ByteReader } from "../byte_reader.ts";
export type {
  Multiaddr,
  MultiaddrComponent,
  MultiaddrProtocol,
  TcpEndpoint,
} from "../multiaddr.ts";
export type { Ed25519Identity } from "../identity/ed25519_identity.ts";
export type { PeerId } from "../identity/peer_id.ts";
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
