/**
 * The validator profile's upgrade: Noise IK against the trusted validator
 * set, then yamux: a {@linkcode PeerConnection}. Nothing is negotiated on
 * the connection itself: both ends of a validator network know the stack,
 * and the prologue binds its version and the network id.
 *
 * @module
 */

import type { Logger } from "../log.ts";
import type { Metrics } from "../metrics.ts";
import type { KeyPair } from "../noise/crypto.ts";
import { validatorNoise, type ValidatorNoiseOptions } from "../noise/validator_noise.ts";
import { NetworkError } from "../network_error.ts";
import type { Connection } from "../transport/connection.ts";
import type { Upgrade, UpgradeContext } from "../transport/transport.ts";
import { multiplex, type MultiplexOptions, type PeerConnection } from "./peer_connection.ts";

/**
 * Options for {@linkcode validatorUpgrade}: the {@linkcode MultiplexOptions}
 * and the Noise IK handshake's, of which the trusted set is required.
 *
 * @example
 * ```ts
 * import type { ValidatorUpgradeOptions } from "./validator_upgrade.ts";
 * import { TrustedPeerSet } from "../noise/trusted_peers.ts";
 * const options: ValidatorUpgradeOptions = {
 *   noise: { trustedPeers: new TrustedPeerSet(), networkId: "testnet" },
 *   yamux: { maxInboundStreams: 4096 },
 * };
 * ```
 */
export interface ValidatorUpgradeOptions extends MultiplexOptions {
  /** The handshake's options: the trusted set (required), the network id, limits. */
  noise: Omit<ValidatorNoiseOptions, "metrics" | "logger">;
  /** Where handshakes, refusals and streams are counted. Default `defaultMetrics`. */
  metrics?: Metrics;
  /** Where the layers log. Default `rootLogger`. */
  logger?: Logger;
}

/**
 * The whole validator upgrade for one static X25519 key: Noise IK (mutual
 * authentication against `options.noise.trustedPeers`) -> yamux. The dialer
 * must dial an address ending in the peer's `/p2p/` id.
 *
 * @example Two validators that trust each other, over memory
 * ```ts
 * import { validatorUpgrade } from "./validator_upgrade.ts";
 * import { Ed25519Identity } from "../identity/mod.ts";
 * import { Multiaddr } from "../multiaddr.ts";
 * import { getCryptoBackend, TrustedPeerSet } from "../noise/mod.ts";
 * import { andThen, MemoryTransport } from "../transport/mod.ts";
 *
 * const { dh } = getCryptoBackend();
 * const [a, b] = [1, 2].map(() => ({
 *   peerId: Ed25519Identity.generate().peerId,
 *   noiseKey: dh.generateKeyPair(),
 * }));
 * const trustedPeers = new TrustedPeerSet([a, b].map((v) => [v.noiseKey.publicKey, v.peerId]));
 * const transportOf = (v: typeof a) =>
 *   andThen(
 *     new MemoryTransport(),
 *     validatorUpgrade(v.noiseKey, { noise: { trustedPeers, networkId: "testnet" } }),
 *   );
 * const listener = await transportOf(b).listen(Multiaddr.parse("/memory/0"));
 * const accepted = (async () => {
 *   for await (const conn of listener) return conn; // accepting starts here
 * })();
 * const conn = await transportOf(a).dial(listener.addr.withPeerId(b.peerId.toString()));
 * console.log(conn.remotePeer.equals(b.peerId), conn.profile); // true "validator"
 * console.log((await accepted)?.remotePeer.equals(a.peerId)); // true
 * await conn.close();
 * await listener.close();
 * ```
 */
export function validatorUpgrade(
  staticKey: KeyPair,
  options: ValidatorUpgradeOptions,
): Upgrade<Connection, PeerConnection> {
  const { metrics, logger } = options;
  const noise = validatorNoise(staticKey, { ...options.noise, metrics, logger });
  return async (raw: Connection, context: UpgradeContext) => {
    const secure = await noise(raw, context);
    try {
      return multiplex(
        { secure, channel: secure, remotePeer: secure.remotePeer, profile: "validator" },
        context.role,
        options,
      );
    } catch (err) {
      secure.abort(err);
      throw NetworkError.wrap(err, "HANDSHAKE_FAILED", "multiplexing");
    }
  };
}
