/**
 * The libp2p profile's upgrade: multistream-select `/noise`, the Noise XX
 * libp2p handshake, `/yamux/1.0.0` (skipped when both ends listed it in the
 * handshake), then yamux: a {@linkcode PeerConnection}.
 *
 * @module
 */

import type { Ed25519Identity } from "../identity/mod.ts";
import type { Logger } from "../log.ts";
import type { Metrics } from "../metrics.ts";
import { YAMUX_PROTOCOL_ID } from "../multiplexing/yamux.ts";
import { handleProtocol, selectProtocol, selectProtocolOptimistic } from "../negotiate/mod.ts";
import {
  LIBP2P_NOISE_PROTOCOL_ID,
  libp2pNoise,
  type Libp2pNoiseOptions,
} from "../noise/libp2p_noise.ts";
import { NetworkError } from "../network_error.ts";
import type { Connection } from "../transport/connection.ts";
import type { Upgrade, UpgradeContext } from "../transport/transport.ts";
import { multiplex, type MultiplexOptions, type PeerConnection } from "./peer_connection.ts";

/**
 * Options for {@linkcode libp2pUpgrade}: the {@linkcode MultiplexOptions}
 * and the Noise handshake's.
 *
 * @example
 * ```ts
 * import type { Libp2pUpgradeOptions } from "./libp2p_upgrade.ts";
 * import { MetricsRegistry } from "../metrics.ts";
 * const options: Libp2pUpgradeOptions = {
 *   noise: { handshakeTimeout: 5_000 },
 *   yamux: { maxStreamWindow: 4 * 1024 * 1024 },
 *   metrics: new MetricsRegistry().scope({ network: "public" }),
 * };
 * ```
 */
export interface Libp2pUpgradeOptions extends MultiplexOptions {
  /** Noise options (handshake timeout, backend, ...). */
  noise?: Omit<Libp2pNoiseOptions, "metrics" | "logger">;
  /** Where handshakes, negotiations and streams are counted. Default `defaultMetrics`. */
  metrics?: Metrics;
  /** Where the layers log. Default `rootLogger`. */
  logger?: Logger;
}

/**
 * The whole libp2p upgrade: `/noise` -> Noise XX -> `/yamux/1.0.0` -> yamux.
 *
 * The dialer proposes `/noise` optimistically: the proposal travels with
 * Noise message 1 and the answer is read before message 2, which saves a
 * round trip. The listener's agreement and its message 2 are written in one
 * turn, so the socket sends them together.
 *
 * @example Over memory (TCP is the same with `TcpTransport`)
 * ```ts
 * import { libp2pUpgrade } from "./libp2p_upgrade.ts";
 * import { Ed25519Identity } from "../identity/mod.ts";
 * import { Multiaddr } from "../multiaddr.ts";
 * import { andThen, MemoryTransport } from "../transport/mod.ts";
 *
 * const [server, client] = [Ed25519Identity.generate(), Ed25519Identity.generate()];
 * const listener = await andThen(new MemoryTransport(), libp2pUpgrade(server))
 *   .listen(Multiaddr.parse("/memory/0"));
 * const accepted = (async () => {
 *   for await (const conn of listener) return conn; // accepting starts here
 * })();
 * const transport = andThen(new MemoryTransport(), libp2pUpgrade(client));
 * // The /p2p/ part makes the dialer check who answers (UNAUTHORIZED otherwise).
 * const conn = await transport.dial(listener.addr.withPeerId(server.peerId.toString()));
 * console.log(conn.remotePeer.equals(server.peerId), conn.profile); // true "libp2p"
 * console.log((await accepted)?.remotePeer.equals(client.peerId)); // true
 * await conn.close();
 * await listener.close();
 * ```
 */
export function libp2pUpgrade(
  identity: Ed25519Identity,
  options: Libp2pUpgradeOptions = {},
): Upgrade<Connection, PeerConnection> {
  const { metrics, logger } = options;
  const noise = libp2pNoise(identity, {
    streamMuxers: [YAMUX_PROTOCOL_ID],
    ...options.noise,
    metrics,
    logger,
  });
  const negotiate = { ...options.negotiate, metrics };
  return async (raw: Connection, context: UpgradeContext) => {
    const dialer = context.role === "dialer";
    const signal = context.signal;
    const noiseChannel = dialer
      ? selectProtocolOptimistic(raw, LIBP2P_NOISE_PROTOCOL_ID, { ...negotiate, signal }).stream
      : (await handleProtocol(raw, [LIBP2P_NOISE_PROTOCOL_ID], { ...negotiate, signal })).stream;
    const secure = await noise(noiseChannel, context);
    try {
      // Both ends advertised their muxers inside the Noise handshake; when the
      // peer listed yamux (we always do), both know it is chosen and skip the
      // round trip of negotiating it (libp2p/specs noise, "early muxer
      // negotiation"), as js-libp2p does.
      let channel: Connection = secure;
      if (!secure.remoteStreamMuxers.includes(YAMUX_PROTOCOL_ID)) {
        const muxerOptions = { ...negotiate, signal };
        channel = (dialer
          ? await selectProtocol(secure, [YAMUX_PROTOCOL_ID], muxerOptions)
          : await handleProtocol(secure, [YAMUX_PROTOCOL_ID], muxerOptions)).stream;
      }
      return multiplex(
        { secure, channel, remotePeer: secure.remotePeerId, profile: "libp2p" },
        context.role,
        options,
      );
    } catch (err) {
      secure.abort(err);
      throw NetworkError.wrap(err, "HANDSHAKE_FAILED", "muxer negotiation");
    }
  };
}
