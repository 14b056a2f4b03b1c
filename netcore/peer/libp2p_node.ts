/**
 * A libp2p node: a {@linkcode PeerManager} addressed by multiaddrs, as the
 * command-line node and js-libp2p users know it (`dial(addr)`,
 * `newStream(addr, protocols)`). The libp2p profile by default, the
 * validator profile with `upgrade: validatorUpgrade(...)`.
 *
 * @module
 */

import { Ed25519Identity } from "../identity/ed25519_identity.ts";
import { PeerId } from "../identity/peer_id.ts";

import type { Logger } from "../log.ts";
import type { Metrics } from "../metrics.ts";
import type { Priority } from "../multiplexing/yamux_stream.ts";
import type { Multiaddr } from "../multiaddr.ts";
import { NetworkError } from "../network_error.ts";
import type { Connection } from "../transport/connection.ts";
import type { InboundLimits } from "../transport/inbound_gate.ts";
import type { Transport, Upgrade } from "../transport/transport.ts";
import { libp2pUpgrade, type Libp2pUpgradeOptions } from "../upgrade/libp2p_upgrade.ts";
import type {
  OpenStreamOptions,
  PeerConnection,
  ProtocolStream,
} from "../upgrade/peer_connection.ts";
import type { PeerEventStream } from "./peer_events.ts";
import { PeerManager, type StreamHandler } from "./peer_manager.ts";

/** Options for {@linkcode Libp2pNode.create}. */
export interface Libp2pNodeOptions {
  /** Our identity. Default: a fresh one. */
  identity?: Ed25519Identity;
  /** Addresses to listen on. Default: none (dial only). */
  listen?: Multiaddr[];
  /** Raw transports, chosen by address. Default: TCP and the default memory network. */
  transports?: Transport<Connection>[];
  /**
   * The upgrade pipeline: options of the libp2p profile's upgrade, or a
   * whole upgrade (such as `validatorUpgrade(...)`). Default: the libp2p
   * profile with `identity`.
   */
  upgrade?: Libp2pUpgradeOptions | Upgrade<Connection, PeerConnection>;
  /** Time limit of a whole upgrade (negotiation, handshake, muxer). Default 10_000 ms. */
  upgradeTimeout?: number;
  /** Limits on inbound connections while they upgrade. */
  inbound?: InboundLimits;
  /** Where the node's metrics go (give it a `network` label). Default `defaultMetrics`. */
  metrics?: Metrics;
  /** The node's logger. Default `rootLogger`. */
  logger?: Logger;
}

/**
 * A libp2p node over TCP and memory transports: one connection per peer,
 * handlers by protocol.
 *
 * @example
 * ```ts ignore
 * import { Libp2pNode } from "./libp2p_node.ts";
 * import { Multiaddr } from "../multiaddr.ts";
 * import { ECHO_PROTOCOL, handleEcho } from "../../protocols/echo.ts";
 * const server = await Libp2pNode.create({ listen: [Multiaddr.parse("/ip4/127.0.0.1/tcp/0")] });
 * server.handle(ECHO_PROTOCOL, (s) => handleEcho(s));
 * const client = await Libp2pNode.create();
 * const stream = await client.newStream(server.listenAddrs[0], [ECHO_PROTOCOL]);
 * ```
 */
export class Libp2pNode {
  readonly #manager: PeerManager;

  private constructor(manager: PeerManager) {
    this.#manager = manager;
  }

  /**
   * A node listening on `options.listen`, accepting at once.
   *
   * @throws {NetworkError} `ADDRESS_IN_USE`, `BAD_ADDRESS`
   */
  static async create(options: Libp2pNodeOptions = {}): Promise<Libp2pNode> {
    const identity = options.identity ?? Ed25519Identity.generate();
    const upgrade = typeof options.upgrade === "function"
      ? options.upgrade
      : libp2pUpgrade(identity, {
        ...options.upgrade,
        metrics: options.metrics,
        logger: options.logger,
      });
    const manager = await PeerManager.create({
      identity,
      upgrade,
      listen: options.listen,
      transports: options.transports,
      upgradeTimeout: options.upgradeTimeout,
      inbound: options.inbound,
      metrics: options.metrics,
      logger: options.logger,
    });
    return new Libp2pNode(manager);
  }

  /** The peer manager under the node. */
  get manager(): PeerManager {
    return this.#manager;
  }

  /** Our peer id. */
  get peerId(): PeerId {
    return this.#manager.peerId;
  }

  /** The addresses we listen on, each ending in our `/p2p/` id. */
  get listenAddrs(): Multiaddr[] {
    return this.#manager.listenAddrs;
  }

  /** Starts listening on `addr` too. */
  listen(addr: Multiaddr): Promise<Multiaddr> {
    return this.#manager.listen(addr);
  }

  /** Serves inbound streams of `protocol` with `handler` (replacing any before). */
  handle(protocol: string, handler: StreamHandler, options: { priority?: Priority } = {}): void {
    this.#manager.handle(protocol, handler, options);
  }

  /** Stops serving `protocol`. */
  unhandle(protocol: string): void {
    this.#manager.unhandle(protocol);
  }

  /** The protocols we serve. */
  get protocols(): string[] {
    return this.#manager.protocols;
  }

  /** The connection to `peer`, in a list (empty when not connected). */
  connectionsTo(peer: PeerId): PeerConnection[] {
    const conn = this.#manager.connection(peer);
    return conn === undefined ? [] : [conn];
  }

  /** Peer events (see `PeerManager.subscribe`). */
  subscribe(): PeerEventStream {
    return this.#manager.subscribe();
  }

  /**
   * A connection to the peer at `addr`: the open one to the same peer when
   * `reuse` (default) and the address names the peer (one that is going
   * away, after the peer's GoAway, is not reused), else a new one, which
   * then replaces any open connection to the same peer.
   *
   * @throws {NetworkError} from the transport or the upgrade
   */
  dial(
    addr: Multiaddr,
    options: { signal?: AbortSignal; reuse?: boolean } = {},
  ): Promise<PeerConnection> {
    const named = addr.peerId;
    if (options.reuse === false || named === undefined) {
      return this.#manager.dialAddress(addr, options);
    }
    let peer: PeerId;
    try {
      peer = PeerId.parse(named);
    } catch (err) {
      return Promise.reject(NetworkError.wrap(err, "BAD_ADDRESS", "the address's /p2p/ part"));
    }
    return this.#manager.dial(peer, [addr], options);
  }

  /**
   * Dials `addr` (or reuses a connection) and opens a stream for the first of
   * `protocols` it supports (see `PeerConnection.openStream` for
   * `negotiateFully`).
   */
  async newStream(
    addr: Multiaddr,
    protocols: readonly string[],
    options: OpenStreamOptions = {},
  ): Promise<ProtocolStream> {
    const conn = await this.dial(addr, options);
    return await conn.openStream(protocols, options);
  }

  /** Stops listening, closes every connection, waits for handlers to end. */
  close(): Promise<void> {
    return this.#manager.close();
  }
}
