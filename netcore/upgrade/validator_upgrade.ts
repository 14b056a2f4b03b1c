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

/** Options for {@linkcode validatorUpgrade}. */
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
 * @example
 * ```ts ignore
 * import { andThen, TcpTransport } from "../transport/mod.ts";
 * const trusted = new TrustedPeerSet(validators.map((v) => [v.noiseKey, v.peerId]));
 * const transport = andThen(
 *   new TcpTransport(),
 *   validatorUpgrade(keys.noise, { noise: { trustedPeers: trusted, networkId: "testnet" } }),
 * );
 * const conn = await transport.dial(Multiaddr.parse(`/ip4/127.0.0.1/tcp/7001/p2p/${peer}`));
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
