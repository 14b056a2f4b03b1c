/**
 * Discovery (after Libra's `protocols/discovery`): every node publishes a
 * signed peer record (libp2p's format: a signed envelope, RFC 0002, with
 * domain `libp2p-peer-record` and payload type `0x0301`, around a peer
 * record, RFC 0003: peer id, sequence number, addresses), signed with its
 * Ed25519 identity key, and gossips its own record and those it knows to
 * the peers it is connected to.
 *
 * How it flows:
 * - a peer that dialed us gets every record we know, at once (so a node
 *   that knows one seed learns everyone's addresses from it); a peer we
 *   dialed gets our own record (we learned its address from someone, who
 *   most likely told it what we know too; gossip and the refresh cover the
 *   rest);
 * - a record we did not know (or a newer one), ours included, is pushed on
 *   to the connected peers that do not have it yet (push on change),
 *   batched: changes within `gossipDelay` leave in one push per peer. We
 *   remember which records each peer has (it sent them, or we sent them
 *   and it confirmed; a failed push is forgotten and sent again), so a
 *   record crosses each connection about once, not once per neighbour;
 * - everything we know is pushed again every `refreshInterval`, to heal
 *   pushes that were lost with a connection;
 * - a record's addresses feed the connectivity manager, which dials.
 *
 * Wire: one stream per push, protocol `/validator-network/discovery/1.0.0`:
 * the dialer writes up to `maxRecordsPerPush` envelopes, each behind an
 * unsigned varint length, and closes its side; the listener reads them all
 * and closes its side, which tells the dialer they arrived. Only then does
 * the dialer count the records as the peer's: a push lost with its
 * connection (a simultaneous dial's loser) is sent again.
 *
 * A record is ignored, and counted in
 * `validator_network_discovery_records_total{outcome}`, when it is
 * malformed or its signature is bad (`invalid`), too large or with too many
 * addresses (`too_large`), about a peer outside the eligible set
 * (`not_eligible`), or not newer than what we have (`stale`). A peer that
 * sends more records or bytes than a push may hold has its stream reset.
 *
 * @module
 */

import { Deadline } from "../_async.ts";
import { latin1 } from "../_bytes.ts";
import { ByteReader } from "../byte_reader.ts";
import type { Ed25519Identity } from "../identity/ed25519_identity.ts";
import type { PeerId } from "../identity/peer_id.ts";
import { openPeerRecord, type PeerRecord, sealPeerRecord } from "../identity/peer_record.ts";
import { type Logger, rootLogger } from "../log.ts";
import { defaultMetrics, type Metric, type Metrics } from "../metrics.ts";
import type { Multiaddr } from "../multiaddr.ts";
import { NetworkError } from "../network_error.ts";
import type { PeerConnection, ProtocolStream } from "../upgrade/peer_connection.ts";
import { encodeVarint } from "../varint.ts";
import type { PeerEventStream } from "./peer_events.ts";
import type { PeerManager } from "./peer_manager.ts";

/**
 * The protocol id of discovery pushes.
 *
 * @example
 * ```ts
 * import { DISCOVERY_PROTOCOL } from "./discovery.ts";
 * console.log(DISCOVERY_PROTOCOL); // "/validator-network/discovery/1.0.0"
 * ```
 */
export const DISCOVERY_PROTOCOL = "/validator-network/discovery/1.0.0";

/** Options for {@linkcode Discovery}. Defaults in {@linkcode DISCOVERY_DEFAULTS}. */
export interface DiscoveryOptions {
  /** The peer manager: connections, streams, events. */
  manager: PeerManager;
  /** Our identity, which signs our record (the manager's peer id). */
  identity: Ed25519Identity;
  /** Whether records about `peer` are wanted (the eligible set). Default: every peer. */
  isEligible?: (peer: PeerId) => boolean;
  /** Hears of a peer's addresses from a new record (feed the connectivity manager). */
  onAddresses?: (peer: PeerId, addrs: Multiaddr[]) => void;
  /**
   * The addresses our record advertises. Default: the manager's listen
   * addresses (without their `/p2p/` part), read when the record is made.
   */
  advertise?: () => Multiaddr[];
  /** How often everything known is pushed to every peer again, in ms. Default 30_000. */
  refreshInterval?: number;
  /** How long changes gather before they are pushed on, in ms. Default 50. */
  gossipDelay?: number;
  /** Largest envelope accepted, in bytes. Default 4096. */
  maxRecordBytes?: number;
  /** Most addresses in an accepted record. Default 32. */
  maxAddrs?: number;
  /** Most records in one push. Default 1024. */
  maxRecordsPerPush?: number;
  /** Most records kept (one per peer). Default 4096. */
  maxRecords?: number;
  /** How long a push may take, confirmation included, in ms. Default 10_000. */
  pushTimeout?: number;
  /** Where records and pushes are counted. Default `defaultMetrics`. */
  metrics?: Metrics;
  /** The logger. Default `rootLogger`. */
  logger?: Logger;
}

/** The defaults of {@linkcode DiscoveryOptions}. */
export const DISCOVERY_DEFAULTS = {
  refreshInterval: 30_000,
  gossipDelay: 50,
  maxRecordBytes: 4096,
  maxAddrs: 32,
  maxRecordsPerPush: 1024,
  maxRecords: 4096,
  pushTimeout: 10_000,
} as const;

/** A record we keep: what it says, and its envelope to pass on. */
interface Known {
  record: PeerRecord;
  envelope: Uint8Array;
}

/**
 * Gossips signed peer records over the peer manager's connections.
 *
 * @example
 * ```ts ignore
 * const discovery = new Discovery({
 *   manager,
 *   identity,
 *   isEligible: (peer) => connectivity.eligible.some((p) => p.equals(peer)),
 *   onAddresses: (peer, addrs) => connectivity.addAddresses(peer, addrs),
 * });
 * discovery.start();
 * ```
 */
export class Discovery {
  readonly #manager: PeerManager;
  readonly #identity: Ed25519Identity;
  readonly #isEligible: (peer: PeerId) => boolean;
  readonly #onAddresses: ((peer: PeerId, addrs: Multiaddr[]) => void) | undefined;
  readonly #advertise: () => Multiaddr[];
  readonly #options: typeof DISCOVERY_DEFAULTS;
  readonly #known = new Map<string, Known>();
  /** The records we keep, by their envelope's bytes (as latin1 text). */
  readonly #byEnvelope = new Map<string, Known>();
  /** Per connected peer: the sequence number of each record it is known to have. */
  readonly #peerHas = new Map<string, Map<string, bigint>>();
  #gossipTimer: ReturnType<typeof setTimeout> | undefined;
  readonly #log: Logger;
  readonly #records: Metric;
  readonly #pushes: Metric;
  readonly #tasks = new Set<Promise<void>>();
  /** Pushes in flight, to end on close. */
  readonly #streams = new Set<ProtocolStream>();
  #seq = 0n;
  #own: Known | undefined;
  #events: PeerEventStream | undefined;
  #timer: ReturnType<typeof setInterval> | undefined;
  #closed = false;

  /** Discovery that does nothing until {@linkcode Discovery.start}. */
  constructor(options: DiscoveryOptions) {
    this.#manager = options.manager;
    this.#identity = options.identity;
    this.#isEligible = options.isEligible ?? (() => true);
    this.#onAddresses = options.onAddresses;
    this.#advertise = options.advertise ??
      (() => options.manager.listenAddrs.map((a) => a.withoutPeerId()));
    this.#options = {
      refreshInterval: options.refreshInterval ?? DISCOVERY_DEFAULTS.refreshInterval,
      gossipDelay: options.gossipDelay ?? DISCOVERY_DEFAULTS.gossipDelay,
      maxRecordBytes: options.maxRecordBytes ?? DISCOVERY_DEFAULTS.maxRecordBytes,
      maxAddrs: options.maxAddrs ?? DISCOVERY_DEFAULTS.maxAddrs,
      maxRecordsPerPush: options.maxRecordsPerPush ?? DISCOVERY_DEFAULTS.maxRecordsPerPush,
      maxRecords: options.maxRecords ?? DISCOVERY_DEFAULTS.maxRecords,
      pushTimeout: options.pushTimeout ?? DISCOVERY_DEFAULTS.pushTimeout,
    } as typeof DISCOVERY_DEFAULTS;
    this.#log = (options.logger ?? rootLogger).child({
      component: "discovery",
      self: options.manager.peerId.toString(),
    });
    const metrics = options.metrics ?? defaultMetrics;
    this.#records = metrics.counter(
      "validator_network_discovery_records_total",
      "Peer records received, by outcome (new, invalid, too_large, not_eligible, stale)",
      ["outcome"],
    );
    this.#pushes = metrics.counter(
      "validator_network_discovery_pushes_total",
      "Discovery pushes, by direction (in/out) and outcome",
      ["direction", "outcome"],
    );
  }

  /** Serves pushes, publishes our record, and pushes to every peer that connects. */
  start(): void {
    if (this.#events !== undefined || this.#closed) return;
    this.#manager.handle(DISCOVERY_PROTOCOL, (stream, conn) => this.#receive(stream, conn));
    this.#events = this.#manager.subscribe();
    this.refresh();
    this.#spawn(this.#watch(this.#events));
    this.#timer = setInterval(() => this.#pushAll(), this.#options.refreshInterval);
  }

  /** The addresses a record told us for `peer`, if any. */
  addresses(peer: PeerId): Multiaddr[] | undefined {
    return this.#known.get(peer.toString())?.record.addrs;
  }

  /** The records we know, ours included. */
  records(): PeerRecord[] {
    return [...this.#known.values()].map((k) => k.record);
  }

  /**
   * Signs a new record of ours (our addresses may have changed) and pushes
   * it to every connected peer. Sequence numbers come from the clock and
   * always grow, as libp2p's do.
   */
  refresh(): void {
    if (this.#closed) return;
    const now = BigInt(Date.now());
    this.#seq = now > this.#seq ? now : this.#seq + 1n;
    const addrs = this.#advertise();
    const envelope = sealPeerRecord(this.#identity, { seq: this.#seq, addrs });
    this.#own = {
      record: { peerId: this.#identity.peerId, seq: this.#seq, addrs },
      envelope,
    };
    this.#keep(this.#identity.peerId.toString(), this.#own);
    this.#scheduleGossip();
  }

  async #watch(events: PeerEventStream): Promise<void> {
    for await (const event of events) {
      const key = event.peer.peerId.toString();
      if (event.type === "lost-peer") {
        this.#peerHas.delete(key);
        continue;
      }
      this.#peerHas.set(key, new Map());
      if (event.peer.direction === "inbound") this.#pushLacking(event.peer.peerId);
      else if (this.#own !== undefined) this.#push(event.peer.peerId, [this.#own]);
    }
  }

  /** Pushes changes on after `gossipDelay`, so a burst of them leaves together. */
  #scheduleGossip(): void {
    if (this.#gossipTimer !== undefined || this.#closed) return;
    this.#gossipTimer = setTimeout(() => {
      this.#gossipTimer = undefined;
      for (const info of this.#manager.peers()) this.#pushLacking(info.peerId);
    }, this.#options.gossipDelay);
  }

  /** Pushes `peer` the records it is not known to have (in their newest version). */
  #pushLacking(peer: PeerId): void {
    const has = this.#peerHas.get(peer.toString());
    this.#push(
      peer,
      [...this.#known.values()].filter((known) => {
        const seq = has?.get(known.record.peerId.toString());
        return seq === undefined || seq < known.record.seq;
      }),
    );
  }

  /**
   * Counts `records` as `peer`'s (they are on their way: a later change
   * does not send them again); `undo` forgets that again when the push
   * failed, so they are sent with the next one.
   */
  #markSent(peer: PeerId, records: Known[], undo = false): void {
    const has = this.#peerHas.get(peer.toString());
    if (has === undefined) return;
    for (const { record } of records) {
      const key = record.peerId.toString();
      if (undo) {
        if (has.get(key) === record.seq) has.delete(key);
      } else if ((has.get(key) ?? -1n) < record.seq) {
        has.set(key, record.seq);
      }
    }
  }

  #pushAll(): void {
    const all = [...this.#known.values()];
    for (const info of this.#manager.peers()) this.#push(info.peerId, all);
  }

  /**
   * Pushes `records` to `peer`, in pushes of at most `maxRecordsPerPush`,
   * each on a stream of its own; once the peer confirms a push, its records
   * count as the peer's.
   */
  #push(peer: PeerId, records: Known[]): void {
    if (this.#closed || records.length === 0) return;
    this.#markSent(peer, records);
    this.#spawn((async () => {
      const max = this.#options.maxRecordsPerPush;
      for (let i = 0; i < records.length; i += max) {
        const batch = records.slice(i, i + max);
        let stream: ProtocolStream | undefined;
        // A peer that never confirms must not hold the push (or our close).
        using deadline = new Deadline(this.#options.pushTimeout, { what: "discovery push" });
        try {
          stream = await this.#manager.openStream(peer, [DISCOVERY_PROTOCOL], {
            negotiateFully: false,
            signal: deadline.signal,
          });
          const open = stream;
          this.#streams.add(open);
          deadline.signal.addEventListener("abort", () => open.abort(deadline.error), {
            once: true,
          });
          for (const { envelope } of batch) {
            const room = stream.write(concat(encodeVarint(envelope.length), envelope));
            if (room !== undefined) await room;
          }
          await stream.closeWrite();
          // The peer closes its side once it read everything.
          while ((await stream.read()) !== null) {
            // it sends nothing else
          }
          this.#streams.delete(stream);
          this.#pushes.labels({ direction: "out", outcome: "ok" }).inc();
        } catch (err) {
          stream?.abort(err);
          this.#markSent(peer, records.slice(i), true);
          if (stream !== undefined) this.#streams.delete(stream);
          this.#pushes.labels({
            direction: "out",
            outcome: NetworkError.is(err) ? err.code : "error",
          }).inc();
          this.#log.debug("push failed", { peer: peer.toString(), err });
          return;
        }
      }
    })());
  }

  /** Reads one push: bounded in records and bytes; each record checked alone. */
  async #receive(stream: ProtocolStream, from: PeerConnection): Promise<void> {
    const reader = new ByteReader(stream);
    const fromKey = from.remotePeer.toString();
    let changed = false;
    let count = 0;
    try {
      while (true) {
        if (await reader.atEnd()) break;
        if (++count > this.#options.maxRecordsPerPush) {
          throw new NetworkError(
            "LIMIT_EXCEEDED",
            `more than ${this.#options.maxRecordsPerPush} records in one push`,
          );
        }
        const length = await reader.readVarint(this.#options.maxRecordBytes);
        const envelope = (await reader.readExactly(length)).slice();
        const record = this.#accept(envelope);
        if (record === undefined) continue;
        // The sender has it: it will not be sent back.
        this.#peerHas.get(fromKey)?.set(record.peerId.toString(), record.seq);
        changed ||= record.fresh;
      }
      // Everything arrived: say so by ending our side.
      await stream.closeWrite();
      this.#pushes.labels({ direction: "in", outcome: "ok" }).inc();
    } catch (err) {
      const code = NetworkError.is(err) ? err.code : "error";
      this.#pushes.labels({ direction: "in", outcome: code }).inc();
      if (NetworkError.is(err, "FRAME_TOO_LARGE")) {
        this.#records.labels({ outcome: "too_large" }).inc();
      }
      throw err; // the manager resets this stream only
    } finally {
      // What was new goes on to the peers that lack it.
      if (changed) this.#scheduleGossip();
    }
  }

  /**
   * Checks one envelope and keeps it when newer than what we have: the
   * record (with `fresh` when it was new to us), or `undefined` when it was
   * refused.
   */
  #accept(envelope: Uint8Array): (PeerRecord & { fresh: boolean }) | undefined {
    // The same record relayed again (the common case: every peer passes on
    // what it has) is recognised by its bytes, without a signature check.
    const same = this.#byEnvelope.get(latin1(envelope));
    if (same !== undefined && this.#known.get(same.record.peerId.toString()) === same) {
      this.#records.labels({ outcome: "stale" }).inc();
      return { ...same.record, fresh: false };
    }
    let record: PeerRecord;
    try {
      record = openPeerRecord(envelope, {
        maxBytes: this.#options.maxRecordBytes,
        maxAddrs: this.#options.maxAddrs,
      });
    } catch (err) {
      const outcome = NetworkError.is(err, "FRAME_TOO_LARGE") ? "too_large" : "invalid";
      this.#records.labels({ outcome }).inc();
      this.#log.debug("record refused", { outcome, err });
      return undefined;
    }
    const key = record.peerId.toString();
    if (record.peerId.equals(this.#identity.peerId)) return { ...record, fresh: false };
    if (!this.#isEligible(record.peerId)) {
      this.#records.labels({ outcome: "not_eligible" }).inc();
      return undefined;
    }
    const known = this.#known.get(key);
    if (known !== undefined && known.record.seq >= record.seq) {
      this.#records.labels({ outcome: "stale" }).inc();
      return { ...record, fresh: false };
    }
    if (known === undefined && this.#known.size >= this.#options.maxRecords) {
      this.#records.labels({ outcome: "too_many" }).inc();
      return undefined;
    }
    this.#keep(key, { record, envelope });
    this.#records.labels({ outcome: "new" }).inc();
    this.#log.debug("new record", { peer: key, seq: `${record.seq}`, addrs: record.addrs.length });
    this.#onAddresses?.(record.peerId, record.addrs);
    return { ...record, fresh: true };
  }

  /** Keeps `known` as `key`'s record, replacing the one before. */
  #keep(key: string, known: Known): void {
    const before = this.#known.get(key);
    if (before !== undefined) this.#byEnvelope.delete(latin1(before.envelope));
    this.#known.set(key, known);
    this.#byEnvelope.set(latin1(known.envelope), known);
  }

  /** Forgets records of peers that are no longer eligible. */
  prune(): void {
    for (const [key, known] of this.#known) {
      if (known !== this.#own && !this.#isEligible(known.record.peerId)) {
        this.#known.delete(key);
        this.#byEnvelope.delete(latin1(known.envelope));
      }
    }
  }

  #spawn(task: Promise<void>): void {
    const tracked = task.catch((err) => this.#log.debug("task failed", { err })).finally(() =>
      this.#tasks.delete(tracked)
    );
    this.#tasks.add(tracked);
  }

  /** Stops gossiping; pushes in flight end with their connections. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    if (this.#timer !== undefined) clearInterval(this.#timer);
    if (this.#gossipTimer !== undefined) clearTimeout(this.#gossipTimer);
    this.#manager.unhandle(DISCOVERY_PROTOCOL);
    this.#events?.close();
    const closing = new NetworkError("CONNECTION_CLOSED", "discovery closed");
    for (const stream of this.#streams) stream.abort(closing);
    await Promise.allSettled([...this.#tasks]);
  }
}

function concat(a: Uint8Array, b: Uint8Array): Uint8Array {
  const out = new Uint8Array(a.length + b.length);
  out.set(a);
  out.set(b, a.length);
  return out;
}
