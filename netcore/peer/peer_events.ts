/**
 * What the peer manager tells its subscribers: a peer connected
 * (`new-peer`) or was lost (`lost-peer`, with the reason), each with the
 * metadata of the connection. Delivered through a queue per subscriber that
 * never blocks the manager: it holds at most two events per peer, because a
 * subscriber that falls behind only needs each peer's latest state.
 *
 * @module
 */

import type { PeerId } from "../identity/peer_id.ts";
import type { Multiaddr } from "../multiaddr.ts";
import type { NetworkError } from "../network_error.ts";
import type { Direction, SecurityProfile } from "../upgrade/peer_connection.ts";
import type { ChannelSeries } from "../channel/channel_metrics.ts";

/**
 * A connected peer as the peer manager knows it.
 *
 * @example
 * ```ts ignore
 * for (const peer of manager.peers()) {
 *   console.log(peer.peerId.toString(), peer.connectionId, peer.direction, peer.rtt);
 * }
 * ```
 */
export interface PeerMetadata {
  /** The peer. */
  readonly peerId: PeerId;
  /** The id of the connection this is about (unique in the process). */
  readonly connectionId: number;
  /** The peer's address of the connection (with its `/p2p/` id). */
  readonly addr: Multiaddr;
  /** Whether we dialed it or accepted it. */
  readonly direction: Direction;
  /** How the peer was authenticated. */
  readonly profile: SecurityProfile;
  /** When the connection was established, ms since the epoch. */
  readonly connectedAt: number;
}

/**
 * A connected peer now: its metadata and the round trip the health checks
 * (and the session's pings) measured, if any yet.
 *
 * @example
 * ```ts ignore
 * const nearest = manager.peersByLatency()[0];
 * console.log(nearest.peerId.toString(), nearest.rtt);
 * ```
 */
export interface PeerInfo extends PeerMetadata {
  /** The smoothed round trip in ms, once measured. */
  readonly rtt: number | undefined;
}

/**
 * Why a peer was lost:
 * - `requested`: we disconnected it (`disconnect()` or shutdown);
 * - `stale`: it left the eligible set (an epoch change);
 * - `health`: it failed its health checks;
 * - `remote_closed`: the peer closed the connection;
 * - `replaced`: another connection to it won a simultaneous dial (a
 *   `new-peer` for that connection follows);
 * - `limit`: an inbound limit refused it after its handshake;
 * - `error`: the connection failed (see `error` for its code).
 */
export type DisconnectReason =
  | "requested"
  | "stale"
  | "health"
  | "remote_closed"
  | "replaced"
  | "limit"
  | "error";

/**
 * An event of the peer manager.
 *
 * @example
 * ```ts ignore
 * for await (const event of manager.subscribe()) {
 *   if (event.type === "lost-peer") console.log(event.peer.peerId.toString(), event.reason);
 * }
 * ```
 */
export type PeerEvent =
  | { readonly type: "new-peer"; readonly peer: PeerMetadata }
  | {
    readonly type: "lost-peer";
    readonly peer: PeerMetadata;
    readonly reason: DisconnectReason;
    /** The failure, for reason `error` (and the cause of others when there was one). */
    readonly error?: NetworkError;
  };

/**
 * One subscriber's events: an async iterable that ends when the manager
 * closes or the subscriber calls `close()`. Per peer it holds at most a
 * `lost-peer` followed by a `new-peer`: a `lost-peer` cancels a `new-peer`
 * of the same connection that was not taken yet (the subscriber never knew
 * of it), so a lagging subscriber sees every peer's latest state without the
 * queue growing. What it left out is counted in `coalesced`.
 *
 * @example
 * ```ts ignore
 * const events = manager.subscribe();
 * const first = await events.next();
 * events.close();
 * ```
 */
export class PeerEventStream implements AsyncIterable<PeerEvent> {
  /** Per peer (by id text): the pending lost and new events, in that order. */
  readonly #pending = new Map<string, { lost?: PeerEvent; added?: PeerEvent }>();
  #waiter: PromiseWithResolvers<void> | undefined;
  #closed = false;
  #coalesced = 0;
  /** Events waiting (at most two per peer). */
  #depth = 0;
  readonly #onClose: (stream: PeerEventStream) => void;
  readonly #series: ChannelSeries;

  /**
   * Made by the peer manager's `subscribe()`; counts into `series` (the
   * bounded channels' depth, enqueued, dequeued and dropped series).
   */
  constructor(onClose: (stream: PeerEventStream) => void, series: ChannelSeries) {
    this.#onClose = onClose;
    this.#series = series;
  }

  /** Events left out because later ones superseded them. */
  get coalesced(): number {
    return this.#coalesced;
  }

  /** Peers with events waiting. */
  get pendingPeers(): number {
    return this.#pending.size;
  }

  /** Queues `event` (called by the manager; never waits). */
  push(event: PeerEvent): void {
    if (this.#closed) return;
    this.#series.enqueued.inc();
    this.#changeDepth(1);
    const key = event.peer.peerId.toString();
    let slot = this.#pending.get(key);
    if (slot === undefined) this.#pending.set(key, slot = {});
    if (event.type === "new-peer") {
      if (slot.added !== undefined) this.#drop(1); // superseded without a lost: keep the newest
      slot.added = event;
    } else if (
      slot.added !== undefined && slot.added.peer.connectionId === event.peer.connectionId
    ) {
      // The subscriber never saw this connection: neither event matters.
      slot.added = undefined;
      this.#drop(2);
      if (slot.lost === undefined) this.#pending.delete(key);
    } else {
      if (slot.lost !== undefined) this.#drop(1);
      slot.lost = event;
    }
    this.#wake();
  }

  #drop(n: number): void {
    this.#coalesced += n;
    this.#series.dropped("coalesced").inc(n);
    this.#changeDepth(-n);
  }

  #changeDepth(n: number): void {
    this.#depth += n;
    this.#series.depth.inc(n);
  }

  #taken(): void {
    this.#series.dequeued.inc();
    this.#changeDepth(-1);
  }

  /** The next event; `undefined` once closed and drained. */
  async next(): Promise<PeerEvent | undefined> {
    while (true) {
      for (const [key, slot] of this.#pending) {
        if (slot.lost !== undefined) {
          const event = slot.lost;
          slot.lost = undefined;
          if (slot.added === undefined) this.#pending.delete(key);
          this.#taken();
          return event;
        }
        this.#pending.delete(key);
        this.#taken();
        return slot.added!;
      }
      if (this.#closed) return undefined;
      this.#waiter ??= Promise.withResolvers();
      await this.#waiter.promise;
    }
  }

  /** Events until the stream is closed. */
  async *[Symbol.asyncIterator](): AsyncIterator<PeerEvent> {
    try {
      while (true) {
        const event = await this.next();
        if (event === undefined) return;
        yield event;
      }
    } finally {
      this.close();
    }
  }

  /** Stops the subscription: events already queued are still delivered, then the iteration ends. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#onClose(this);
    this.#wake();
  }

  /** Events waiting to be taken. */
  get depth(): number {
    return this.#depth;
  }

  #wake(): void {
    const waiter = this.#waiter;
    this.#waiter = undefined;
    waiter?.resolve();
  }
}
