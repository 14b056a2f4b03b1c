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
 * transport, and yield a {@linkcode SecureChannel}: the same Web-Streams
 * `Connection`, encrypted, with the peer's authenticated keys.
 *
 * The framework itself (crypto backends, `CipherState`, `SymmetricState`,
 * `HandshakeState`, handshake patterns) is exported for other profiles and
 * for tests.
 *
 * @example
 * ```ts ignore
 * import { Ed25519Identity } from "../identity/mod.ts";
 * import { andThen } from "../transport/and_then.ts";
 * import { TcpTransport } from "../transport/tcp_transport.ts";
 * import { libp2pNoise } from "./mod.ts";
 * const secure = andThen(new TcpTransport(), libp2pNoise(Ed25519Identity.generate()));
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
