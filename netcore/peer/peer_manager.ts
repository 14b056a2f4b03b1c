/**
 * The peer manager: owns the transports, the listeners and every
 * connection, keeps at most one connection per peer, and speaks in events
 * (after Libra's `peer_manager`, with what Diem and Aptos learned since).
 *
 * - **One connection per peer.** A second connection to a connected peer
 *   goes through {@linkcode keepNewConnection} (Diem's rule), so two peers
 *   that dial each other at once both keep the same one. A stream opened
 *   on the losing connection during the race fails with
 *   `CONNECTION_REPLACED` (its peer sees it reset: both retriable), then the
 *   loser closes gracefully, so a handshake message already written on it
 *   still arrives. Dialing ourselves is refused.
 * - **Connections carry ids.** The registry keeps the connection it
 *   adopted; when an older connection to the same peer closes later, its
 *   close is recognised by id and evicts nothing.
 * - **Events.** `new-peer` and `lost-peer` (with metadata and a reason) go
 *   to every subscriber through its own bounded, per-peer coalescing queue
 *   ({@linkcode PeerEventStream}): a slow subscriber never blocks the
 *   manager.
 * - **Streams.** `openStream(peer, protocols)` on the peer's connection
 *   (`NOT_CONNECTED` without one); inbound streams go to the handler
 *   registered for their negotiated protocol, and a failing handler resets
 *   only its stream.
 * - **Inbound limits.** While upgrading, the transport's {@linkcode InboundGate}
 *   (pending in total and per address, the first-message deadline, the rate
 *   of new connections per address); after the handshake, at most
 *   `maxUnknownInbound` connections from peers outside the trusted set
 *   (validators are exempt). All counted.
 *
 * @module
 */

import { Ed25519Identity, type PeerId } from "../identity/mod.ts";
import { type Logger, rootLogger } from "../log.ts";
import { channelMetrics, type ChannelSeries } from "../channel/channel_metrics.ts";
import { defaultMetrics, type Metric, type Metrics } from "../metrics.ts";
import type { Multiaddr } from "../multiaddr.ts";
import { NetworkError } from "../network_error.ts";
import type { Priority, YamuxStream } from "../multiplexing/yamux_stream.ts";
import { andThen } from "../transport/and_then.ts";
import { choice } from "../transport/choice.ts";
import type { Connection } from "../transport/connection.ts";
import type { InboundLimits } from "../transport/inbound_gate.ts";
import { MemoryTransport } from "../transport/memory_transport.ts";
import { TcpTransport } from "../transport/tcp_transport.ts";
import type { Listener, Transport, Upgrade } from "../transport/transport.ts";
import { libp2pUpgrade } from "../upgrade/libp2p_upgrade.ts";
import type {
  OpenStreamOptions,
  PeerConnection,
  ProtocolStream,
} from "../upgrade/peer_connection.ts";
import {
  type DisconnectReason,
  type PeerEvent,
  PeerEventStream,
  type PeerInfo,
  type PeerMetadata,
} from "./peer_events.ts";
import { keepNewConnection } from "./simultaneous_dial.ts";

/** Serves one inbound stream of a registered protocol. */
export type StreamHandler = (
  stream: ProtocolStream,
  connection: PeerConnection,
) => void | Promise<void>;

/** Options for {@linkcode PeerManager}. Defaults in {@linkcode PEER_MANAGER_DEFAULTS}. */
export interface PeerManagerOptions {
  /** Our identity: our peer id. Default: a fresh one. */
  identity?: Ed25519Identity;
  /**
   * The upgrade every connection runs: `validatorUpgrade(...)` for the
   * validator profile. Default: `libp2pUpgrade(identity)`.
   */
  upgrade?: Upgrade<Connection, PeerConnection>;
  /** Raw transports, chosen by address. Default: TCP and the default memory network. */
  transports?: Transport<Connection>[];
  /**
   * Peers exempt from `maxUnknownInbound` (the validator set). Read at each
   * inbound connection. Default: none is.
   */
  isTrusted?: (peer: PeerId) => boolean;
  /** Most inbound connections from peers that are not trusted. Default 100. */
  maxUnknownInbound?: number;
  /** Limits on inbound connections while they upgrade. Default: `INBOUND_LIMITS_DEFAULTS`. */
  inbound?: InboundLimits;
  /** Time limit of a whole upgrade (handshake and muxer), in ms. Default 10_000. */
  upgradeTimeout?: number;
  /** Where the manager's metrics go (a scope with the node's `network` label). Default `defaultMetrics`. */
  metrics?: Metrics;
  /** The manager's logger. Default `rootLogger`. */
  logger?: Logger;
}

/** The defaults of {@linkcode PeerManagerOptions}. */
export const PEER_MANAGER_DEFAULTS = {
  maxUnknownInbound: 100,
  upgradeTimeout: 10_000,
} as const;

/** Options for {@linkcode PeerManager.dial}. */
export interface PeerDialOptions {
  /** Cancels the dial. */
  signal?: AbortSignal;
}

/** What the manager keeps per connected peer. */
interface Entry {
  conn: PeerConnection;
  metadata: PeerMetadata;
  /** Why we closed it, when we did. */
  reason?: DisconnectReason;
  error?: NetworkError;
}

interface ManagerMetrics {
  connected: Metric;
  events: Metric;
  refused: Metric;
  /** The subscribers' event queues, as a bounded channel. */
  eventQueues: ChannelSeries;
  inboundStreams: Metric;
  dials: Metric;
}

/**
 * Owns the connections of one node. Start it with
 * {@linkcode PeerManager.create} (which listens), then dial, open streams
 * and subscribe to events.
 *
 * @example
 * ```ts ignore
 * const manager = await PeerManager.create({ listen: [Multiaddr.parse("/memory/0")] });
 * manager.handle("/echo/1.0.0", (stream) => handleEcho(stream));
 * const events = manager.subscribe();
 * await manager.dial(otherPeerId, [otherAddr]);
 * const stream = await manager.openStream(otherPeerId, ["/echo/1.0.0"]);
 * ```
 */
export class PeerManager {
  readonly #identity: Ed25519Identity;
  readonly #transport: Transport<PeerConnection>;
  readonly #listeners: Listener<PeerConnection>[] = [];
  readonly #handlers = new Map<string, { handler: StreamHandler; priority?: Priority }>();
  readonly #peers = new Map<string, Entry>();
  /** Every connection not yet closed, adopted or not (a loser lives until its close). */
  readonly #open = new Set<PeerConnection>();
  readonly #dials = new Map<string, Promise<PeerConnection>>();
  readonly #subscribers = new Set<PeerEventStream>();
  readonly #tasks = new Set<Promise<void>>();
  readonly #isTrusted: (peer: PeerId) => boolean;
  readonly #maxUnknownInbound: number;
  #unknownInbound = 0;
  readonly #log: Logger;
  readonly #metrics: ManagerMetrics;
  #closed = false;

  /** Builds a manager that does not listen yet; see {@linkcode PeerManager.create}. */
  constructor(options: PeerManagerOptions = {}) {
    this.#identity = options.identity ?? Ed25519Identity.generate();
    const metrics = options.metrics ?? defaultMetrics;
    const logger = options.logger ?? rootLogger;
    const raw = choice(...(options.transports ?? [new TcpTransport(), new MemoryTransport()]));
    const upgrade = options.upgrade ?? libp2pUpgrade(this.#identity, { metrics, logger });
    this.#transport = andThen(raw, upgrade, {
      timeout: options.upgradeTimeout ?? PEER_MANAGER_DEFAULTS.upgradeTimeout,
      inbound: options.inbound,
      metrics,
    });
    this.#isTrusted = options.isTrusted ?? (() => false);
    this.#maxUnknownInbound = options.maxUnknownInbound ?? PEER_MANAGER_DEFAULTS.maxUnknownInbound;
    this.#log = logger.child({ component: "peer-manager", self: this.peerId.toString() });
    this.#metrics = {
      connected: metrics.gauge(
        "validator_network_connected_peers",
        "Connected peers, by direction",
        ["direction"],
      ),
      events: metrics.counter(
        "validator_network_peer_events_total",
        "Peer events, by type and reason",
        ["type", "reason"],
      ),
      refused: metrics.counter(
        "validator_network_connections_refused_total",
        "Connections closed after their handshake by the peer manager, by reason",
        ["reason"],
      ),
      eventQueues: channelMetrics(metrics, "peer_events"),
      inboundStreams: metrics.counter(
        "validator_network_inbound_streams_total",
        "Inbound streams, by protocol and outcome",
        ["protocol", "outcome"],
      ),
      dials: metrics.counter(
        "validator_network_dials_total",
        "Dials, by outcome (the error code on failure)",
        ["outcome"],
      ),
    };
  }

  /**
   * A manager listening on `listen`, accepting at once.
   *
   * @throws {NetworkError} `ADDRESS_IN_USE`, `BAD_ADDRESS`
   */
  static async create(
    options: PeerManagerOptions & { listen?: Multiaddr[] } = {},
  ): Promise<PeerManager> {
    const manager = new PeerManager(options);
    try {
      for (const addr of options.listen ?? []) await manager.listen(addr);
    } catch (err) {
      await manager.close();
      throw err;
    }
    return manager;
  }

  /** Our peer id. */
  get peerId(): PeerId {
    return this.#identity.peerId;
  }

  /** Our identity. */
  get identity(): Ed25519Identity {
    return this.#identity;
  }

  /** The addresses we listen on, each ending in our `/p2p/` id. */
  get listenAddrs(): Multiaddr[] {
    return this.#listeners.map((l) => l.addr.withPeerId(this.peerId.toString()));
  }

  /** Starts listening on `addr` too; returns the bound address with our `/p2p/` id. */
  async listen(addr: Multiaddr): Promise<Multiaddr> {
    if (this.#closed) throw new NetworkError("CONNECTION_CLOSED", "peer manager is closed");
    const listener = await this.#transport.listen(addr, {
      onInboundError: (err, remote) =>
        this.#log.debug("inbound connection failed", { remote: remote.toString(), err }),
    });
    this.#listeners.push(listener);
    this.#spawn(this.#accept(listener));
    return listener.addr.withPeerId(this.peerId.toString());
  }

  /**
   * Serves inbound streams of `protocol` with `handler` (replacing any
   * before); with `priority`, the streams answer in that priority class.
   */
  handle(protocol: string, handler: StreamHandler, options: { priority?: Priority } = {}): void {
    this.#handlers.set(protocol, { handler, priority: options.priority });
  }

  /** Stops serving `protocol`. */
  unhandle(protocol: string): void {
    this.#handlers.delete(protocol);
  }

  /** The protocols we serve. */
  get protocols(): string[] {
    return [...this.#handlers.keys()];
  }

  /** The connected peers, with their current round trip. */
  peers(): PeerInfo[] {
    return [...this.#peers.values()].map((entry) => ({ ...entry.metadata, rtt: entry.conn.rtt }));
  }

  /** The connected peers, nearest first (peers whose round trip is not measured yet last). */
  peersByLatency(): PeerInfo[] {
    return this.peers().sort((a, b) => (a.rtt ?? Infinity) - (b.rtt ?? Infinity));
  }

  /** The connection to `peer`, if connected. */
  connection(peer: PeerId): PeerConnection | undefined {
    return this.#peers.get(peer.toString())?.conn;
  }

  /** Whether `peer` is connected. */
  isConnected(peer: PeerId): boolean {
    return this.#peers.has(peer.toString());
  }

  /**
   * Events from now on (`new-peer`, `lost-peer`), until `close()` on the
   * stream or on the manager. The queue holds at most two events per peer.
   */
  subscribe(): PeerEventStream {
    const stream = new PeerEventStream(
      (s) => this.#subscribers.delete(s),
      this.#metrics.eventQueues,
    );
    if (this.#closed) stream.close();
    else this.#subscribers.add(stream);
    return stream;
  }

  /**
   * A connection to `peer`: the open one, the dial already in flight, or a
   * new dial trying `addrs` in turn. When the peer dials us at the same time,
   * both ends keep the same one of the two connections, and this returns
   * that one.
   *
   * @throws {NetworkError} `BAD_ADDRESS` for ourselves or no address; the
   *   last address's error (`DIAL_REFUSED`, `DIAL_TIMEOUT`, `HANDSHAKE_FAILED`,
   *   `UNAUTHORIZED`, ...) when none works
   */
  dial(
    peer: PeerId,
    addrs: readonly Multiaddr[],
    options: PeerDialOptions = {},
  ): Promise<PeerConnection> {
    if (this.#closed) {
      return Promise.reject(new NetworkError("CONNECTION_CLOSED", "peer manager is closed"));
    }
    if (peer.equals(this.peerId)) {
      return Promise.reject(new NetworkError("BAD_ADDRESS", "refusing to dial ourselves"));
    }
    const key = peer.toString();
    const entry = this.#peers.get(key);
    if (entry !== undefined && !entry.conn.goingAway) return Promise.resolve(entry.conn);
    let pending = this.#dials.get(key);
    if (pending === undefined) {
      pending = this.#dialAddrs(peer, addrs, options.signal).finally(() => this.#dials.delete(key));
      this.#dials.set(key, pending);
    }
    return pending;
  }

  /**
   * Dials `addr` anew, whether or not its peer is connected or named (the
   * libp2p profile learns who it is from the handshake). The connection
   * then goes through the one-per-peer rule like any other: against an
   * open connection of the same direction, the new one wins.
   *
   * @throws {NetworkError} as {@linkcode PeerManager.dial}
   */
  async dialAddress(addr: Multiaddr, options: PeerDialOptions = {}): Promise<PeerConnection> {
    if (this.#closed) throw new NetworkError("CONNECTION_CLOSED", "peer manager is closed");
    if (addr.peerId === this.peerId.toString()) {
      throw new NetworkError("BAD_ADDRESS", "refusing to dial ourselves");
    }
    let conn: PeerConnection;
    try {
      conn = await this.#transport.dial(addr, options);
    } catch (err) {
      this.#metrics.dials.labels({ outcome: NetworkError.is(err) ? err.code : "BUG" }).inc();
      throw err;
    }
    this.#metrics.dials.labels({ outcome: "ok" }).inc();
    return this.#adopt(conn);
  }

  /** Whether a dial to `peer` is in flight. */
  isDialing(peer: PeerId): boolean {
    return this.#dials.has(peer.toString());
  }

  async #dialAddrs(
    peer: PeerId,
    addrs: readonly Multiaddr[],
    signal: AbortSignal | undefined,
  ): Promise<PeerConnection> {
    if (addrs.length === 0) {
      throw new NetworkError("BAD_ADDRESS", `no address to dial ${peer}`);
    }
    let lastError: unknown;
    for (const addr of addrs) {
      if (signal?.aborted) break;
      try {
        const conn = await this.#transport.dial(addr.withPeerId(peer.toString()), { signal });
        this.#metrics.dials.labels({ outcome: "ok" }).inc();
        return this.#adopt(conn);
      } catch (err) {
        lastError = err;
        const code = NetworkError.is(err) ? err.code : "BUG";
        this.#metrics.dials.labels({ outcome: code }).inc();
        this.#log.debug("dial failed", { peer: peer.toString(), addr: `${addr}`, err });
        if (NetworkError.is(err, "UNAUTHORIZED")) break; // another address will not change who it is
      }
    }
    if (signal?.aborted) throw NetworkError.wrap(signal.reason, "ABORTED", "dial cancelled");
    // The peer's own dial may have connected us meanwhile (ours lost the race).
    const entry = this.#peers.get(peer.toString());
    if (entry !== undefined && !entry.conn.goingAway) return entry.conn;
    throw lastError;
  }

  /**
   * Opens a stream to `peer` on its connection and negotiates the first of
   * `protocols` it supports.
   *
   * @throws {NetworkError} `NOT_CONNECTED` without a connection;
   *   `CONNECTION_REPLACED` when it lost a simultaneous dial meanwhile (retry);
   *   as `PeerConnection.openStream` otherwise
   */
  async openStream(
    peer: PeerId,
    protocols: readonly string[],
    options: OpenStreamOptions = {},
  ): Promise<ProtocolStream> {
    const entry = this.#peers.get(peer.toString());
    if (entry === undefined) throw new NetworkError("NOT_CONNECTED", `not connected to ${peer}`);
    return await entry.conn.openStream(protocols, options);
  }

  /**
   * Closes the connection to `peer` (GoAway, streams finish), reporting
   * `reason` in its `lost-peer` event. Resolves when it is closed; nothing
   * to do when not connected.
   */
  async disconnect(peer: PeerId, reason: DisconnectReason = "requested"): Promise<void> {
    const entry = this.#peers.get(peer.toString());
    if (entry === undefined) return;
    entry.reason ??= reason;
    await entry.conn.close();
  }

  /** Stops listening, closes every connection, ends every subscription, waits for handlers. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    await Promise.allSettled(this.#listeners.map((l) => l.close()));
    for (const entry of this.#peers.values()) entry.reason ??= "requested";
    await Promise.allSettled([...this.#open].map((c) => c.close()));
    await Promise.allSettled([...this.#tasks]);
    for (const subscriber of [...this.#subscribers]) subscriber.close();
  }

  // ---- adopting connections -------------------------------------------------

  async #accept(listener: Listener<PeerConnection>): Promise<void> {
    for await (const conn of listener) {
      if (this.#closed) {
        conn.abort(new NetworkError("CONNECTION_CLOSED", "peer manager is closed"));
        continue;
      }
      try {
        this.#adopt(conn);
      } catch {
        // refused and counted by #adopt
      }
    }
  }

  /**
   * Takes a new connection in: refuses it (self, closed, limit) or registers
   * it, replacing the peer's existing one by the simultaneous-dial rule.
   * Returns the connection the peer is now reached by.
   */
  #adopt(conn: PeerConnection): PeerConnection {
    const peer = conn.remotePeer;
    const key = peer.toString();
    if (this.#closed) return this.#refuse(conn, "closed", "peer manager is closed");
    if (peer.equals(this.peerId)) return this.#refuse(conn, "self", "connected to ourselves");
    const inboundUnknown = conn.direction === "inbound" && !this.#isTrusted(peer);
    const existing = this.#peers.get(key);
    if (
      inboundUnknown && existing === undefined && this.#unknownInbound >= this.#maxUnknownInbound
    ) {
      return this.#refuse(
        conn,
        "unknown_inbound_limit",
        `${this.#unknownInbound} inbound connections from untrusted peers`,
      );
    }
    this.#open.add(conn);
    conn.closed.then(() => this.#onClosed(conn, inboundUnknown));
    if (inboundUnknown) this.#unknownInbound++;
    if (existing !== undefined) {
      if (!keepNewConnection(this.peerId, peer, existing.conn.direction, conn.direction)) {
        this.#metrics.refused.labels({ reason: "replaced" }).inc();
        void conn.replace(existing.conn.id);
        return existing.conn;
      }
      existing.reason = "replaced";
      void existing.conn.replace(conn.id);
      existing.error = existing.conn.replacedError;
      this.#remove(existing);
    }
    const metadata: PeerMetadata = {
      peerId: peer,
      connectionId: conn.id,
      addr: conn.remoteAddr,
      direction: conn.direction,
      profile: conn.profile,
      connectedAt: conn.openedAt,
    };
    this.#peers.set(key, { conn, metadata });
    this.#metrics.connected.labels({ direction: conn.direction }).inc();
    this.#metrics.events.labels({ type: "new-peer", reason: "" }).inc();
    this.#log.info("new peer", {
      peer: key,
      connection: conn.id,
      direction: conn.direction,
      addr: `${metadata.addr}`,
    });
    this.#emit({ type: "new-peer", peer: metadata });
    this.#spawn(this.#serve(conn));
    return conn;
  }

  #refuse(conn: PeerConnection, reason: string, message: string): never {
    this.#metrics.refused.labels({ reason }).inc();
    this.#log.info("connection refused", { peer: conn.remotePeer.toString(), reason });
    const error = new NetworkError(
      reason === "unknown_inbound_limit" ? "LIMIT_EXCEEDED" : "CONNECTION_CLOSED",
      message,
    );
    conn.abort(error);
    throw error;
  }

  /** Unregisters `entry` and tells subscribers the peer is lost. */
  #remove(entry: Entry): void {
    const key = entry.metadata.peerId.toString();
    if (this.#peers.get(key) !== entry) return;
    this.#peers.delete(key);
    this.#metrics.connected.labels({ direction: entry.metadata.direction }).dec();
    const muxerError = entry.conn.muxer.error;
    const reason = entry.reason ?? (muxerError === undefined ? "remote_closed" : "error");
    const error = entry.error ?? muxerError;
    this.#metrics.events.labels({ type: "lost-peer", reason }).inc();
    this.#log.info("lost peer", {
      peer: key,
      connection: entry.conn.id,
      reason,
      code: error?.code,
    });
    this.#emit({ type: "lost-peer", peer: entry.metadata, reason, error });
  }

  /** A connection closed: only the peer's current one evicts anything (ids, not peers). */
  #onClosed(conn: PeerConnection, countedUnknown: boolean): void {
    this.#open.delete(conn);
    if (countedUnknown) this.#unknownInbound--;
    const entry = this.#peers.get(conn.remotePeer.toString());
    if (entry !== undefined && entry.conn === conn) this.#remove(entry);
  }

  #emit(event: PeerEvent): void {
    for (const subscriber of this.#subscribers) subscriber.push(event);
  }

  /** Marks the reason the peer's connection is about to close for (used by the connectivity layer). */
  markReason(peer: PeerId, reason: DisconnectReason): void {
    const entry = this.#peers.get(peer.toString());
    if (entry !== undefined) entry.reason ??= reason;
  }

  // ---- inbound streams --------------------------------------------------------

  async #serve(conn: PeerConnection): Promise<void> {
    for await (const stream of conn) this.#spawn(this.#serveStream(conn, stream));
  }

  async #serveStream(conn: PeerConnection, stream: YamuxStream): Promise<void> {
    let negotiated: ProtocolStream;
    try {
      negotiated = await conn.acceptStream(
        stream,
        (p) => this.#handlers.has(p),
        (p) => this.#handlers.get(p)?.priority,
      );
    } catch (err) {
      this.#metrics.inboundStreams.labels({ protocol: "", outcome: "negotiation_failed" }).inc();
      this.#log.debug("stream negotiation failed", { peer: conn.remotePeer.toString(), err });
      return;
    }
    const { handler } = this.#handlers.get(negotiated.protocol)!;
    try {
      await handler(negotiated, conn);
      this.#metrics.inboundStreams.labels({ protocol: negotiated.protocol, outcome: "ok" }).inc();
    } catch (err) {
      this.#metrics.inboundStreams.labels({ protocol: negotiated.protocol, outcome: "error" })
        .inc();
      this.#log.info("stream handler failed", {
        peer: conn.remotePeer.toString(),
        protocol: negotiated.protocol,
        err,
      });
      stream.abort(err);
    }
  }

  #spawn(task: Promise<void>): void {
    const tracked = task.catch((err) => this.#log.warn("task failed", { err })).finally(() =>
      this.#tasks.delete(tracked)
    );
    this.#tasks.add(tracked);
  }
}
