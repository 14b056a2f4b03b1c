/**
 * Discovery (after Libra's `protocols/discovery`): every node publishes a
 * signed peer record (libp2p's format: a signed envelope, RFC 0002, with
 * domain `libp2p-peer-record` and payload type `0x0301`, around a peer
 * record, RFC 0003: peer id, sequence number, addresses), signed with its
 * Ed25519 identity key, and gossips its own record and those it knows to
 * the peers it is connected to.
 *
 * How it flows, per connection: both ends first send a digest (each record
 * they know as its peer id and sequence number, no signatures), and each
 * answers with the records the other lacks or has older; from then on a
 * record that changes (ours, or one learned) goes to every peer that lacks
 * it, batched: changes within `gossipDelay` leave in one push per peer.
 * What each peer has is known from its digest, from what it sent, and from
 * what we sent it once it confirmed the push (a failed push is sent again),
 * so a record crosses each connection about once, and a node that knows one
 * seed learns every address the seed knows. Every `refreshInterval` the
 * digests go out again, which heals whatever was lost. A record's addresses
 * feed the connectivity manager, which dials.
 *
 * Wire: one stream per message, protocol `/validator-network/discovery/1.0.0`.
 * The dialer writes a type byte, then `1` (records): envelopes, each behind
 * an unsigned varint length, or `2` (digest): entries of a varint-length
 * peer id and an 8-byte big-endian sequence number; then it closes its
 * side. The listener reads everything (at most `maxRecordsPerPush` records,
 * `maxRecords` digest entries) and closes its side, which confirms it.
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

/** What we know of one connected peer's records. */
interface PeerState {
  /** The peer. */
  peer: PeerId;
  /** The sequence number of each record it has (by {@linkcode keyOf}). */
  has: Map<string, bigint>;
  /** Records (by {@linkcode keyOf}) to send it with the next push. */
  outbox: Set<string>;
}

/** A record's key: its peer id's bytes as latin1 text (digest entries carry the bytes). */
function keyOf(peer: PeerId): string {
  return latin1(peer.bytes);
}

/** Message types: the first byte of every discovery stream. */
const RECORDS = 1;
const DIGEST = 2;
/** A digest entry's sequence number: a big-endian uint64. */
const SEQ_BYTES = 8;
/** Longer peer ids do not exist (an inlined Ed25519 key is 38 bytes). */
const MAX_PEER_ID_BYTES = 64;

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
  /** Per connected peer (by peer id text): what it has, what it is owed. */
  readonly #peers = new Map<string, PeerState>();
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
    this.#timer = setInterval(() => this.#refreshAll(), this.#options.refreshInterval);
  }

  /** The addresses a record told us for `peer`, if any. */
  addresses(peer: PeerId): Multiaddr[] | undefined {
    return this.#known.get(keyOf(peer))?.record.addrs;
  }

  /** The records we know, ours included. */
  records(): PeerRecord[] {
    return [...this.#known.values()].map((k) => k.record);
  }

  /**
   * Signs a new record of ours (our addresses may have changed) and sends
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
    this.#keep(keyOf(this.#identity.peerId), this.#own);
    this.#owe(keyOf(this.#identity.peerId), this.#own.record.seq);
  }

  async #watch(events: PeerEventStream): Promise<void> {
    for await (const event of events) {
      const key = event.peer.peerId.toString();
      if (event.type === "lost-peer") {
        this.#peers.delete(key);
        continue;
      }
      // A new connection: we know nothing of what it has until its digest.
      this.#peers.set(key, { peer: event.peer.peerId, has: new Map(), outbox: new Set() });
      this.#sendDigest(event.peer.peerId);
    }
  }

  /** Every connected peer that lacks record `key` (at `seq`) is owed it. */
  #owe(key: string, seq: bigint): void {
    for (const state of this.#peers.values()) {
      if ((state.has.get(key) ?? -1n) < seq) state.outbox.add(key);
    }
    this.#scheduleGossip();
  }

  /** Sends what is owed after `gossipDelay`, so a burst of changes leaves together. */
  #scheduleGossip(): void {
    if (this.#gossipTimer !== undefined || this.#closed) return;
    this.#gossipTimer = setTimeout(() => {
      this.#gossipTimer = undefined;
      for (const state of this.#peers.values()) this.#flush(state);
    }, this.#options.gossipDelay);
  }

  /** Pushes one peer what it is owed, in the newest version we know. */
  #flush(state: PeerState): void {
    if (state.outbox.size === 0) return;
    const records: Known[] = [];
    for (const key of state.outbox) {
      const known = this.#known.get(key);
      if (known !== undefined && (state.has.get(key) ?? -1n) < known.record.seq) {
        records.push(known);
      }
    }
    state.outbox.clear();
    this.#push(state.peer, records);
  }

  #sendDigest(peer: PeerId): void {
    const parts: Uint8Array[] = [new Uint8Array([DIGEST])];
    for (const known of this.#known.values()) {
      const id = known.record.peerId.bytes;
      const seq = new Uint8Array(SEQ_BYTES);
      new DataView(seq.buffer).setBigUint64(0, known.record.seq);
      parts.push(encodeVarint(id.length), id, seq);
    }
    this.#send(peer, concat(parts), () => {});
  }

  /** A refresh: every peer gets our digest again, and answers with what we lack. */
  #refreshAll(): void {
    for (const info of this.#manager.peers()) this.#sendDigest(info.peerId);
  }

  /**
   * Pushes `records` to `peer`, at most `maxRecordsPerPush` per stream. They
   * count as the peer's once it confirms; a failed push owes them again.
   */
  #push(peer: PeerId, records: Known[]): void {
    if (this.#closed || records.length === 0) return;
    const state = this.#peers.get(peer.toString());
    for (const { record } of records) state?.has.set(keyOf(record.peerId), record.seq);
    const max = this.#options.maxRecordsPerPush;
    for (let i = 0; i < records.length; i += max) {
      const batch = records.slice(i, i + max);
      const parts: Uint8Array[] = [new Uint8Array([RECORDS])];
      for (const { envelope } of batch) parts.push(encodeVarint(envelope.length), envelope);
      this.#send(peer, concat(parts), (ok) => {
        if (ok || state === undefined || this.#peers.get(peer.toString()) !== state) return;
        // Lost (the connection was replaced, say): owed again, to the new one too.
        for (const { record } of batch) {
          const key = keyOf(record.peerId);
          if (state.has.get(key) === record.seq) state.has.delete(key);
          this.#owe(key, record.seq);
        }
      });
    }
  }

  /** Sends one message on a stream of its own and waits for the peer's confirmation. */
  #send(peer: PeerId, message: Uint8Array, done: (ok: boolean) => void): void {
    this.#spawn((async () => {
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
        const room = stream.write(message);
        if (room !== undefined) await room;
        await stream.closeWrite();
        // The peer closes its side once it read everything.
        while ((await stream.read()) !== null) {
          // it sends nothing else
        }
        this.#pushes.labels({ direction: "out", outcome: "ok" }).inc();
        done(true);
      } catch (err) {
        stream?.abort(err);
        this.#pushes.labels({
          direction: "out",
          outcome: NetworkError.is(err) ? err.code : "error",
        }).inc();
        this.#log.debug("push failed", { peer: peer.toString(), err });
        done(false);
      } finally {
        if (stream !== undefined) this.#streams.delete(stream);
      }
    })());
  }

  /**
   * Reads one message: records (each checked alone) or a digest, bounded in
   * count and bytes; confirms it by closing our side.
   */
  async #receive(stream: ProtocolStream, from: PeerConnection): Promise<void> {
    const reader = new ByteReader(stream);
    const state = this.#peers.get(from.remotePeer.toString());
    try {
      const [type] = await reader.readExactly(1);
      if (type === RECORDS) await this.#receiveRecords(reader, state);
      else if (type === DIGEST) await this.#receiveDigest(reader, state);
      else throw new NetworkError("PROTOCOL_VIOLATION", `unknown discovery message type ${type}`);
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
    }
  }

  async #receiveRecords(reader: ByteReader, from: PeerState | undefined): Promise<void> {
    let count = 0;
    while (!(await reader.atEnd())) {
      if (++count > this.#options.maxRecordsPerPush) {
        throw new NetworkError(
          "LIMIT_EXCEEDED",
          `more than ${this.#options.maxRecordsPerPush} records in one push`,
        );
      }
      const length = await reader.readVarint(this.#options.maxRecordBytes);
      const record = this.#accept((await reader.readExactly(length)).slice());
      if (record === undefined) continue;
      const key = keyOf(record.peerId);
      // The sender has it: it is not sent back.
      if ((from?.has.get(key) ?? -1n) < record.seq) from?.has.set(key, record.seq);
      if (record.fresh) this.#owe(key, record.seq);
    }
  }

  async #receiveDigest(reader: ByteReader, from: PeerState | undefined): Promise<void> {
    let count = 0;
    while (!(await reader.atEnd())) {
      if (++count > this.#options.maxRecords) {
        throw new NetworkError("LIMIT_EXCEEDED", `more than ${this.#options.maxRecords} entries`);
      }
      const idLength = await reader.readVarint(MAX_PEER_ID_BYTES);
      // Only compared with the keys of records we hold: an id we do not
      // know, or a malformed one, is a key that matches nothing.
      const key = latin1(await reader.readExactly(idLength));
      const bytes = await reader.readExactly(SEQ_BYTES);
      const seq = new DataView(bytes.buffer, bytes.byteOffset, SEQ_BYTES).getBigUint64(0);
      if (from !== undefined && this.#known.has(key) && (from.has.get(key) ?? -1n) < seq) {
        from.has.set(key, seq);
      }
    }
    if (from === undefined) return;
    // It is owed whatever it lacks or has older.
    for (const [key, known] of this.#known) {
      if ((from.has.get(key) ?? -1n) < known.record.seq) from.outbox.add(key);
    }
    this.#scheduleGossip();
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
    if (same !== undefined && this.#known.get(keyOf(same.record.peerId)) === same) {
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
    const key = keyOf(record.peerId);
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

function concat(parts: Uint8Array[]): Uint8Array {
  let length = 0;
  for (const part of parts) length += part.length;
  const out = new Uint8Array(length);
  let at = 0;
  for (const part of parts) {
    out.set(part, at);
    at += part.length;
  }
  return out;
}
