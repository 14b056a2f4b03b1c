/**
 * A node: listens, dials, keeps its connections by peer (with ids, so a
 * closed connection is never mistaken for a newer one), and hands inbound
 * streams to the handler registered for their protocol. The transports
 * under it are TCP and memory, upgraded by {@linkcode libp2pUpgrade} unless
 * another upgrade (the validator profile's) is given.
 *
 * @module
 */

import { Ed25519Identity, type PeerId } from "./identity/mod.ts";
import {
  libp2pUpgrade,
  type Libp2pUpgradeOptions,
  type OpenStreamOptions,
  type PeerConnection,
  type ProtocolStream,
} from "./upgrade/mod.ts";
import { type Logger, rootLogger } from "./log.ts";
import { defaultMetrics, type Metrics } from "./metrics.ts";
import type { Multiaddr } from "./multiaddr.ts";
import { NetworkError } from "./network_error.ts";
import { andThen } from "./transport/and_then.ts";
import { choice } from "./transport/choice.ts";
import type { Connection } from "./transport/connection.ts";
import { MemoryTransport } from "./transport/memory_transport.ts";
import { TcpTransport } from "./transport/tcp_transport.ts";
import type { Listener, Transport, Upgrade } from "./transport/transport.ts";
import type { YamuxStream } from "./multiplexing/yamux_stream.ts";

/**
 * Serves one inbound stream of a registered protocol.
 *
 * @example
 * ```ts
 * import type { StreamHandler } from "./libp2p_node.ts";
 * const hello: StreamHandler = async (stream, connection) => {
 *   await stream.write(new TextEncoder().encode(`hello, ${connection.remotePeer}`));
 *   await stream.closeWrite();
 * };
 * ```
 */
export type StreamHandler = (
  stream: ProtocolStream,
  connection: PeerConnection,
) => void | Promise<void>;

/**
 * Options for {@linkcode Libp2pNode.create}.
 *
 * @example
 * ```ts
 * import type { Libp2pNodeOptions } from "./libp2p_node.ts";
 * import { Ed25519Identity } from "./identity/mod.ts";
 * import { Multiaddr } from "./multiaddr.ts";
 * const options: Libp2pNodeOptions = {
 *   identity: Ed25519Identity.generate(),
 *   listen: [Multiaddr.parse("/ip4/0.0.0.0/tcp/4001")],
 *   upgradeTimeout: 5_000,
 * };
 * ```
 */
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
  /** Where the node's metrics go (give it a `network` label). Default `defaultMetrics`. */
  metrics?: Metrics;
  /** The node's logger. Default `rootLogger`. */
  logger?: Logger;
}

/**
 * A libp2p node over TCP and memory transports.
 *
 * @example Echo over the in-memory network
 * ```ts
 * import { Libp2pNode } from "./libp2p_node.ts";
 * import { Multiaddr } from "./multiaddr.ts";
 * import { ECHO_PROTOCOL, handleEcho } from "../protocols/echo.ts";
 *
 * const server = await Libp2pNode.create({ listen: [Multiaddr.parse("/memory/0")] });
 * server.handle(ECHO_PROTOCOL, handleEcho);
 * const client = await Libp2pNode.create();
 * const stream = await client.newStream(server.listenAddrs[0], [ECHO_PROTOCOL]);
 * await stream.write(new TextEncoder().encode("hi"));
 * await stream.closeWrite();
 * console.log(new TextDecoder().decode((await stream.read())!)); // "hi"
 * await client.close();
 * await server.close();
 * ```
 */
export class Libp2pNode {
  readonly #identity: Ed25519Identity;
  readonly #transport: Transport<PeerConnection>;
  readonly #listeners: Listener<PeerConnection>[] = [];
  readonly #handlers = new Map<string, StreamHandler>();
  /** Open connections by peer, by connection id. */
  readonly #connections = new Map<string, Map<number, PeerConnection>>();
  readonly #pendingDials = new Map<string, Promise<PeerConnection>>();
  readonly #tasks = new Set<Promise<void>>();
  readonly #log: Logger;
  readonly #connectionsOpen;
  readonly #inboundStreams;
  #closed = false;

  private constructor(options: Libp2pNodeOptions) {
    this.#identity = options.identity ?? Ed25519Identity.generate();
    const metrics = options.metrics ?? defaultMetrics;
    const logger = options.logger ?? rootLogger;
    const raw = choice(...(options.transports ?? [new TcpTransport(), new MemoryTransport()]));
    const upgrade = typeof options.upgrade === "function"
      ? options.upgrade
      : libp2pUpgrade(this.#identity, { ...options.upgrade, metrics, logger });
    this.#transport = andThen(raw, upgrade, {
      timeout: options.upgradeTimeout ?? 10_000,
      metrics,
    });
    this.#log = logger.child({ component: "node", self: this.peerId.toString() });
    this.#connectionsOpen = metrics.gauge(
      "validator_network_connections_open",
      "Open connections, by direction",
      ["direction"],
    );
    this.#inboundStreams = metrics.counter(
      "validator_network_inbound_streams_total",
      "Inbound streams, by protocol and outcome",
      ["protocol", "outcome"],
    );
  }

  /**
   * A node listening on `options.listen`, accepting at once.
   *
   * @throws {NetworkError} `ADDRESS_IN_USE`, `BAD_ADDRESS`
   */
  static async create(options: Libp2pNodeOptions = {}): Promise<Libp2pNode> {
    const node = new Libp2pNode(options);
    try {
      for (const addr of options.listen ?? []) await node.listen(addr);
    } catch (err) {
      await node.close();
      throw err;
    }
    return node;
  }

  /** Our peer id. */
  get peerId(): PeerId {
    return this.#identity.peerId;
  }

  /** The addresses we listen on, each ending in our `/p2p/` id. */
  get listenAddrs(): Multiaddr[] {
    return this.#listeners.map((l) => l.addr.withPeerId(this.peerId.toString()));
  }

  /** Starts listening on `addr` too. */
  async listen(addr: Multiaddr): Promise<Multiaddr> {
    const listener = await this.#transport.listen(addr, {
      onInboundError: (err, remote) =>
        this.#log.info("inbound connection failed", { remote: remote.toString(), err }),
    });
    this.#listeners.push(listener);
    this.#spawn(this.#accept(listener));
    return listener.addr.withPeerId(this.peerId.toString());
  }

  /** Serves inbound streams of `protocol` with `handler` (replacing any before). */
  handle(protocol: string, handler: StreamHandler): void {
    this.#handlers.set(protocol, handler);
  }

  /** Stops serving `protocol`. */
  unhandle(protocol: string): void {
    this.#handlers.delete(protocol);
  }

  /** The protocols we serve. */
  get protocols(): string[] {
    return [...this.#handlers.keys()];
  }

  /** Open connections to `peer`, oldest first. */
  connectionsTo(peer: PeerId): PeerConnection[] {
    return [...(this.#connections.get(peer.toString())?.values() ?? [])];
  }

  /**
   * A connection to the peer at `addr`: an open one to the same peer when
   * `reuse` (default) and the address names the peer (one that is going
   * away, after the peer's GoAway, is not reused), else a new one.
   * Concurrent dials to the same named peer share one attempt (and so the
   * first caller's `signal`).
   *
   * @throws {NetworkError} from the transport or the upgrade
   */
  async dial(
    addr: Multiaddr,
    options: { signal?: AbortSignal; reuse?: boolean } = {},
  ): Promise<PeerConnection> {
    if (this.#closed) throw new NetworkError("CONNECTION_CLOSED", "node is closed");
    const peer = options.reuse === false ? undefined : addr.peerId;
    if (peer === undefined) return await this.#dialNew(addr, options.signal);
    for (const conn of this.#connections.get(peer)?.values() ?? []) {
      if (!conn.goingAway) return conn;
    }
    // Concurrent dials to one peer share one connection attempt.
    let pending = this.#pendingDials.get(peer);
    if (pending === undefined) {
      pending = this.#dialNew(addr, options.signal).finally(() => this.#pendingDials.delete(peer));
      this.#pendingDials.set(peer, pending);
    }
    return await pending;
  }

  async #dialNew(addr: Multiaddr, signal: AbortSignal | undefined): Promise<PeerConnection> {
    const conn = await this.#transport.dial(addr, { signal });
    if (this.#closed) {
      // close() ran while we dialed: nothing would ever close this one.
      const error = new NetworkError("CONNECTION_CLOSED", "node closed during the dial");
      conn.abort(error);
      throw error;
    }
    this.#adopt(conn, "outbound");
    return conn;
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
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    await Promise.allSettled(this.#listeners.map((l) => l.close()));
    const conns = [...this.#connections.values()].flatMap((byId) => [...byId.values()]);
    await Promise.allSettled(conns.map((c) => c.close()));
    await Promise.allSettled([...this.#tasks]);
  }

  #spawn(task: Promise<void>): void {
    const tracked = task.catch((err) => this.#log.warn("task failed", { err })).finally(() =>
      this.#tasks.delete(tracked)
    );
    this.#tasks.add(tracked);
  }

  async #accept(listener: Listener<PeerConnection>): Promise<void> {
    for await (const conn of listener) {
      if (this.#closed) {
        conn.abort(new NetworkError("CONNECTION_CLOSED", "node is closed"));
        continue;
      }
      this.#adopt(conn, "inbound");
    }
  }

  #adopt(conn: PeerConnection, direction: "inbound" | "outbound"): void {
    const key = conn.remotePeer.toString();
    let byId = this.#connections.get(key);
    if (byId === undefined) this.#connections.set(key, byId = new Map());
    byId.set(conn.id, conn);
    const gauge = this.#connectionsOpen.labels({ direction });
    gauge.inc();
    if (this.#log.enabled("debug")) {
      this.#log.debug("connection open", {
        peer: key,
        connection: conn.id,
        direction,
        addr: `${conn.remoteAddr}`,
      });
    }
    conn.closed.finally(() => {
      gauge.dec();
      byId.delete(conn.id);
      if (byId.size === 0 && this.#connections.get(key) === byId) this.#connections.delete(key);
      this.#log.debug("connection closed", { peer: key, connection: conn.id });
    });
    this.#spawn(this.#serve(conn));
  }

  async #serve(conn: PeerConnection): Promise<void> {
    for await (const stream of conn) this.#spawn(this.#serveStream(conn, stream));
  }

  async #serveStream(conn: PeerConnection, stream: YamuxStream): Promise<void> {
    let negotiated: ProtocolStream;
    try {
      negotiated = await conn.acceptStream(stream, (p) => this.#handlers.has(p));
    } catch (err) {
      this.#inboundStreams.labels({ protocol: "", outcome: "negotiation_failed" }).inc();
      this.#log.debug("stream negotiation failed", { peer: conn.remotePeer.toString(), err });
      return;
    }
    const handler = this.#handlers.get(negotiated.protocol)!;
    try {
      await handler(negotiated, conn);
      this.#inboundStreams.labels({ protocol: negotiated.protocol, outcome: "ok" }).inc();
    } catch (err) {
      this.#inboundStreams.labels({ protocol: negotiated.protocol, outcome: "error" }).inc();
      this.#log.info("stream handler failed", {
        peer: conn.remotePeer.toString(),
        protocol: negotiated.protocol,
        err,
      });
      stream.abort(err);
    }
  }
}
