/**
 * {@linkcode KeyedQueue}: one bounded FIFO per key (a peer, a (peer,
 * protocol) pair), popped round-robin across keys, with a drop policy per
 * queue: Aptos's `aptos_channel` and its `PerKeyQueue`, plus backpressure
 * and an optional bound on the total.
 *
 * @module
 */

import { abortError } from "../_async.ts";
import { defaultMetrics } from "../metrics.ts";
import { NetworkError } from "../network_error.ts";
import type { ChannelMetricsTarget, WaitOptions } from "./bounded_queue.ts";
import { checkBound, checkItem } from "./_check.ts";
import { Deque } from "./_deque.ts";
import { channelMetrics, type ChannelSeries } from "./channel_metrics.ts";
import { Link, Rotation } from "./_rotation.ts";

/**
 * What a {@linkcode KeyedQueue} does with a push to a key that holds
 * `perKeyCapacity` items (or when the queue holds `totalCapacity`):
 *
 * - `"drop-newest"`: refuse the new item (Aptos's `FIFO` style): the items
 *   already queued are kept, the late ones lost. For messages where the
 *   first ones matter (requests: the sender times out and retries).
 * - `"drop-oldest"`: evict the key's oldest item and queue the new one
 *   (Aptos's `KLAST`): the freshest state wins. For messages that supersede
 *   each other (sync info, health, mempool announcements).
 * - `"backpressure"`: nothing is dropped; {@linkcode KeyedQueue.push} waits
 *   until the key has room, so the producer (the loop reading that peer's
 *   stream) stops reading, and flow control slows that peer alone.
 *
 * @example
 * ```ts
 * import { type DropPolicy, KeyedQueue } from "./mod.ts";
 * const policy: DropPolicy = "drop-oldest";
 * const queue = new KeyedQueue<string, string>(8, { name: "example", policy });
 * ```
 */
export type DropPolicy = "drop-newest" | "drop-oldest" | "backpressure";

/**
 * Why an item left a queue without being popped, the `reason` label of
 * `validator_network_channel_dropped_total`:
 *
 * - `key_full`: its key held `perKeyCapacity` items (the new item was
 *   refused under `"drop-newest"`, the key's oldest evicted under
 *   `"drop-oldest"`).
 * - `total_full`: the queue held `totalCapacity` items; the item dropped
 *   is one of the longest key's (or the new one, when its own key is the
 *   longest).
 * - `closed`: the queue was closed with an error while the item waited;
 * - `coalesced`: a later item made it needless (the peer manager's event
 *   streams keep only each peer's latest state).
 *
 * @example
 * ```ts
 * import { type DropReason, KeyedQueue } from "./mod.ts";
 * const queue = new KeyedQueue<string, number>(1, { name: "example" });
 * queue.tryPush("peer-a", 1);
 * const result = queue.tryPush("peer-a", 2);
 * const reason: DropReason | undefined = result.status === "dropped" ? result.reason : undefined;
 * console.log(reason); // "key_full"
 * ```
 */
export type DropReason = "key_full" | "total_full" | "closed" | "coalesced";

/**
 * What became of a pushed item. Every outcome but `"queued"` is a drop,
 * counted in `validator_network_channel_dropped_total{name,reason}`:
 *
 * - `"queued"`: the item is queued (or was handed to a waiting pop).
 * - `"dropped"`: the new item was refused (`"drop-newest"`); the caller
 *   still holds it and should fail it (answer the request with an error,
 *   count it).
 * - `"evicted"`: the new item is queued, and an older one (`value`, of
 *   `key`: the same key under `"drop-oldest"`, or the longest key when the
 *   total bound was reached) was removed to make room; the caller should
 *   fail that one.
 *
 * @example
 * ```ts
 * import { KeyedQueue } from "./mod.ts";
 * const queue = new KeyedQueue<string, string>(1, { name: "example", policy: "drop-oldest" });
 * queue.tryPush("peer-a", "old");
 * const result = queue.tryPush("peer-a", "new");
 * if (result.status === "evicted") console.log(`failing ${result.value} of ${result.key}`);
 * ```
 */
export type PushResult<K, V> =
  | { readonly status: "queued" }
  | { readonly status: "dropped"; readonly reason: DropReason }
  | {
    readonly status: "evicted";
    readonly reason: DropReason;
    /** The key of the evicted item. */
    readonly key: K;
    /** The evicted item. */
    readonly value: V;
  };

/**
 * What {@linkcode KeyedQueue.tryPush} says under `"backpressure"` when the
 * key (or the queue) has no room: nothing happened, the item stays the
 * caller's (not a drop); {@linkcode KeyedQueue.push} would wait.
 *
 * @example
 * ```ts
 * import { KeyedQueue } from "./mod.ts";
 * const queue = new KeyedQueue<string, number>(1, { name: "example", policy: "backpressure" });
 * queue.tryPush("peer-a", 1);
 * console.log(queue.tryPush("peer-a", 2).status); // "full"
 * ```
 */
export interface PushFull {
  /** The key or the queue is full. */
  readonly status: "full";
}

/**
 * Options of a {@linkcode KeyedQueue}.
 *
 * @example
 * ```ts
 * import { KeyedQueue, type KeyedQueueOptions } from "./mod.ts";
 * type Key = { peer: string; protocol: string };
 * const options: KeyedQueueOptions<Key> = {
 *   name: "direct_send_inbound",
 *   policy: "backpressure",
 *   totalCapacity: 4_096,
 *   keyOf: (k) => `${k.peer}/${k.protocol}`,
 * };
 * const queue = new KeyedQueue<Key, Uint8Array>(256, options);
 * ```
 */
export interface KeyedQueueOptions<K> {
  /** The queue's name: the `name` label of its series. Required. */
  name: string;
  /** Where the queue records its series. Default: `defaultMetrics`. */
  metrics?: ChannelMetricsTarget;
  /** What a push to a full key does. Default `"drop-newest"`. */
  policy?: DropPolicy;
  /**
   * The most items all keys hold together. When it is reached, the key
   * holding the most items pays: under `"drop-newest"` its newest item
   * goes, under `"drop-oldest"` its oldest (or, when the pushing key is
   * itself the longest, its own policy applies); under `"backpressure"` the
   * push waits, and room is handed to waiting keys in turn. Default
   * `Infinity`: only the per-key bound (then the number of keys bounds the
   * total).
   */
  totalCapacity?: number;
  /**
   * The identity of a key: keys with the same string share a FIFO. Default
   * `String(key)`.
   */
  keyOf?: (key: K) => string;
  /**
   * Under `"backpressure"`, how many pushes may wait for room in one key;
   * one more rejects with `LIMIT_EXCEEDED`. Default 16 (a key is normally
   * fed by one reader, which awaits each push).
   */
  maxWaitingPushesPerKey?: number;
}

/** The defaults of {@linkcode KeyedQueueOptions}. */
const DEFAULTS = {
  policy: "drop-newest",
  totalCapacity: Infinity,
  keyOf: String,
  maxWaitingPushesPerKey: 16,
} as const;

const QUEUED: PushResult<never, never> = Object.freeze({ status: "queued" });
const FULL: PushFull = Object.freeze({ status: "full" });
const DROPPED_KEY_FULL: PushResult<never, never> = Object.freeze({
  status: "dropped",
  reason: "key_full",
});
const DROPPED_TOTAL_FULL: PushResult<never, never> = Object.freeze({
  status: "dropped",
  reason: "total_full",
});

/** A push waiting for room in its key. */
interface Waiter<K, V> {
  readonly value: V;
  readonly resolve: (result: PushResult<K, V>) => void;
  readonly reject: (err: NetworkError) => void;
  readonly signal: AbortSignal | undefined;
  onAbort: (() => void) | undefined;
}

/** A pop waiting for an item. */
interface Popper<V> {
  readonly resolve: (value: V | undefined) => void;
  readonly reject: (err: NetworkError) => void;
  readonly signal: AbortSignal | undefined;
  onAbort: (() => void) | undefined;
}

/**
 * One key's FIFO. It exists while it holds items or waiting pushes, and is
 * in the pop rotation exactly while it holds items, in the waiting rotation
 * exactly while pushes wait on it.
 */
class Lane<K, V> {
  readonly items: Deque<V> = new Deque();
  waiters: Deque<Waiter<K, V>> | undefined = undefined;
  readonly ready: Link<Lane<K, V>> = new Link<Lane<K, V>>(this);
  readonly waiting: Link<Lane<K, V>> = new Link<Lane<K, V>>(this);
  constructor(readonly key: K, readonly id: string) {}
}

/**
 * The key holding the most items, in O(1) per change: lanes bucketed by
 * length, the largest non-empty bucket tracked. Among equally long keys,
 * the one that got there first. Kept only with a total bound.
 */
class LongestKey<L> {
  readonly #byLength = new Map<number, Set<L>>();
  #max = 0;

  /** `lane` went from `from` to `to` items. */
  moved(lane: L, from: number, to: number): void {
    if (from === to) return;
    if (from > 0) {
      const bucket = this.#byLength.get(from)!;
      bucket.delete(lane);
      if (bucket.size === 0) this.#byLength.delete(from);
    }
    if (to > 0) {
      let bucket = this.#byLength.get(to);
      if (bucket === undefined) this.#byLength.set(to, bucket = new Set());
      bucket.add(lane);
    }
    if (to > this.#max) this.#max = to;
    while (this.#max > 0 && !this.#byLength.has(this.#max)) this.#max--;
  }

  /** The longest lane, if any holds items. */
  longest(): L | undefined {
    return this.#byLength.get(this.#max)?.values().next().value;
  }

  /** Forgets every lane. */
  clear(): void {
    this.#byLength.clear();
    this.#max = 0;
  }
}

/**
 * Bounded per-key FIFOs, popped round-robin across keys: the queue between
 * the peers and a protocol (one key per (peer, protocol)), where one peer
 * that floods, or whose messages are slow to handle, must not delay the
 * others (Diem issue #328: one combined queue let a single slow peer stall
 * every validator).
 *
 * - FIFO within a key; {@linkcode KeyedQueue.pop} takes one item from each
 *   key holding items in turn, so a key with 10,000 items queued delays a
 *   newly arrived key by at most one item per other key.
 * - Each key holds at most `perKeyCapacity` items; a push to a full key
 *   follows the {@linkcode DropPolicy}. An optional `totalCapacity` bounds
 *   all keys together, and the longest key pays for reaching it.
 * - Drops are never silent: {@linkcode KeyedQueue.tryPush} and
 *   {@linkcode KeyedQueue.push} say what happened
 *   ({@linkcode PushResult}, with the evicted item), and every drop is
 *   counted in `validator_network_channel_dropped_total{name,reason}`.
 * - A key exists while it holds items or waiting pushes: a peer that is
 *   gone costs nothing (Diem issue #5543: memory held by the empty queues of
 *   transient peers).
 *
 * Items may not be `undefined`.
 *
 * @example One queue per protocol, one key per peer
 * ```ts
 * import { KeyedQueue } from "./mod.ts";
 *
 * const inbound = new KeyedQueue<string, string>(2, { name: "consensus_inbound" });
 * for (let i = 0; i < 5; i++) inbound.tryPush("flooder", `f${i}`); // 3 dropped (key_full)
 * inbound.tryPush("honest", "h0");
 * console.log(await inbound.pop(), await inbound.pop()); // "f0" "h0"
 * ```
 */
export class KeyedQueue<K, V> implements AsyncIterable<V> {
  /** The most items one key holds. */
  readonly perKeyCapacity: number;
  /** The most items all keys hold together (`Infinity`: no total bound). */
  readonly totalCapacity: number;
  /** What a push to a full key does. */
  readonly policy: DropPolicy;
  /** The queue's name, the `name` label of its series. */
  readonly name: string;
  readonly #keyOf: (key: K) => string;
  readonly #maxWaiting: number;
  readonly #lanes = new Map<string, Lane<K, V>>();
  /** Lanes holding items, in pop order. */
  readonly #ready = new Rotation<Lane<K, V>>();
  /** Lanes with waiting pushes, in admission order when the total bound frees room. */
  readonly #waiting = new Rotation<Lane<K, V>>();
  readonly #poppers = new Deque<Popper<V>>();
  readonly #longest: LongestKey<Lane<K, V>> | undefined;
  readonly #series: ChannelSeries;
  #size = 0;
  #closed = false;
  #error: NetworkError | undefined = undefined;

  /**
   * An empty, open queue.
   *
   * @param perKeyCapacity the most items one key holds (a positive integer)
   * @param options its name, policy, total bound, key identity and metrics
   * @throws {RangeError} when a bound is not a positive integer
   */
  constructor(perKeyCapacity: number, options: KeyedQueueOptions<K>) {
    const {
      name,
      metrics = defaultMetrics,
      policy = DEFAULTS.policy,
      totalCapacity = DEFAULTS.totalCapacity,
      keyOf = DEFAULTS.keyOf,
      maxWaitingPushesPerKey = DEFAULTS.maxWaitingPushesPerKey,
    } = options;
    checkBound("perKeyCapacity", perKeyCapacity);
    checkBound("totalCapacity", totalCapacity, true);
    checkBound("maxWaitingPushesPerKey", maxWaitingPushesPerKey);
    if (policy !== "drop-newest" && policy !== "drop-oldest" && policy !== "backpressure") {
      throw new RangeError(`unknown drop policy ${policy}`);
    }
    this.perKeyCapacity = perKeyCapacity;
    this.totalCapacity = totalCapacity;
    this.policy = policy;
    this.name = name;
    this.#keyOf = keyOf;
    this.#maxWaiting = maxWaitingPushesPerKey;
    // Only the drop policies pick a victim when the total is reached.
    this.#longest = totalCapacity === Infinity || policy === "backpressure"
      ? undefined
      : new LongestKey();
    this.#series = channelMetrics(metrics, name);
  }

  /** Items queued now, over all keys (not counting pushes still waiting). */
  get size(): number {
    return this.#size;
  }

  /** How many keys hold items or waiting pushes. */
  get keyCount(): number {
    return this.#lanes.size;
  }

  /** Whether {@linkcode KeyedQueue.close} was called. */
  get closed(): boolean {
    return this.#closed;
  }

  /** Items queued now for `key`. */
  sizeOf(key: K): number {
    return this.#lanes.get(this.#keyOf(key))?.items.length ?? 0;
  }

  /**
   * Offers `value` under `key` without waiting: queued, or dropped by the
   * policy (see {@linkcode PushResult}); under `"backpressure"`, `"full"`
   * when it would have to wait (pushes already waiting on the key go
   * first).
   *
   * @throws {NetworkError} `CONNECTION_CLOSED` once the queue is closed
   * @throws {TypeError} when `value` is `undefined`
   */
  tryPush(key: K, value: V): PushResult<K, V> | PushFull {
    checkItem(value);
    if (this.#closed) throw this.#closedError();
    return this.#offer(key, this.#keyOf(key), value);
  }

  /**
   * Offers `value` under `key`. Under `"drop-newest"` and `"drop-oldest"`
   * it settles at once, as {@linkcode KeyedQueue.tryPush}; under
   * `"backpressure"` it waits until the key has room (and the total, if
   * bounded), then resolves with `"queued"`. Waiting pushes of one key are
   * admitted in the order they came.
   *
   * @throws {NetworkError} `CONNECTION_CLOSED` once the queue is closed
   * (also for a push that was waiting); the signal's reason when
   * `options.signal` fires first; `LIMIT_EXCEEDED` when
   * `maxWaitingPushesPerKey` pushes already wait on the key. In every case
   * the item was not queued.
   * @throws {TypeError} when `value` is `undefined`
   */
  push(key: K, value: V, options: WaitOptions = {}): Promise<PushResult<K, V>> {
    checkItem(value);
    const { signal } = options;
    if (signal?.aborted) return Promise.reject(abortError(signal));
    if (this.#closed) return Promise.reject(this.#closedError());
    const id = this.#keyOf(key);
    const result = this.#offer(key, id, value);
    if (result !== FULL) return Promise.resolve(result as PushResult<K, V>);
    const lane = this.#lane(key, id);
    const waiters = lane.waiters ??= new Deque();
    if (waiters.length >= this.#maxWaiting) {
      this.#release(lane);
      return Promise.reject(
        new NetworkError(
          "LIMIT_EXCEEDED",
          `channel ${this.name}: ${waiters.length} pushes already wait for room in key ${id}`,
        ),
      );
    }
    return new Promise<PushResult<K, V>>((resolve, reject) => {
      const waiter: Waiter<K, V> = { value, resolve, reject, signal, onAbort: undefined };
      if (signal !== undefined) {
        waiter.onAbort = () => {
          waiters.remove(waiter);
          if (waiters.length === 0) this.#waiting.remove(lane.waiting);
          this.#release(lane);
          reject(abortError(signal));
        };
        signal.addEventListener("abort", waiter.onAbort, { once: true });
      }
      waiters.push(waiter);
      if (!lane.waiting.linked) this.#waiting.append(lane.waiting);
    });
  }

  /**
   * The next item: the oldest of the next key in the rotation, waiting for
   * one while the queue is empty; `undefined` once the queue is closed
   * (without an error) and drained. Concurrent pops are served in the order
   * they came.
   *
   * @throws {NetworkError} the error given to {@linkcode KeyedQueue.close};
   * the signal's reason when `options.signal` fires first
   */
  pop(options: WaitOptions = {}): Promise<V | undefined> {
    const { signal } = options;
    if (signal?.aborted) return Promise.reject(abortError(signal));
    if (this.#error !== undefined) return Promise.reject(this.#error);
    const lane = this.#ready.shift();
    if (lane !== undefined) return Promise.resolve(this.#take(lane));
    if (this.#closed) return Promise.resolve(undefined);
    return new Promise<V | undefined>((resolve, reject) => {
      const popper: Popper<V> = { resolve, reject, signal, onAbort: undefined };
      if (signal !== undefined) {
        popper.onAbort = () => {
          this.#poppers.remove(popper);
          reject(abortError(signal));
        };
        signal.addEventListener("abort", popper.onAbort, { once: true });
      }
      this.#poppers.push(popper);
    });
  }

  /**
   * Closes the queue; idempotent (a second call does nothing and returns
   * `[]`). Waiting and later pushes reject with `CONNECTION_CLOSED` (its
   * `cause` is the close error, if any). Without `error`, pops drain the items
   * left (still round-robin) and then give `undefined`; with one, the items
   * left are discarded (counted as dropped with reason `closed`) and
   * returned with their keys, so the caller can fail them, and waiting and
   * later pops reject with `error` (as a `NetworkError`: itself if it is
   * one, else `CONNECTION_CLOSED` with it as `cause`).
   *
   * @param error why the queue ends abnormally, if it does
   * @returns the discarded items with their keys (empty without `error`)
   */
  close(error?: Error): Array<[K, V]> {
    if (this.#closed) return [];
    this.#closed = true;
    this.#error = error === undefined
      ? undefined
      : NetworkError.wrap(error, "CONNECTION_CLOSED", `channel ${this.name} closed`);
    const closedError = this.#closedError();
    for (let lane = this.#waiting.shift(); lane !== undefined; lane = this.#waiting.shift()) {
      for (const w of lane.waiters!.drain()) {
        if (w.onAbort !== undefined) w.signal!.removeEventListener("abort", w.onAbort);
        w.reject(closedError);
      }
      this.#release(lane);
    }
    for (let p = this.#poppers.shift(); p !== undefined; p = this.#poppers.shift()) {
      if (p.onAbort !== undefined) p.signal!.removeEventListener("abort", p.onAbort);
      if (this.#error === undefined) p.resolve(undefined);
      else p.reject(this.#error);
    }
    if (error === undefined) return [];
    const discarded: Array<[K, V]> = [];
    for (const lane of this.#ready) {
      for (const value of lane.items.drain()) discarded.push([lane.key, value]);
    }
    this.#ready.clear();
    this.#lanes.clear();
    this.#longest?.clear();
    this.#size = 0;
    this.#series.depth.dec(discarded.length);
    this.#series.dropped("closed").inc(discarded.length);
    return discarded;
  }

  /**
   * Pops until the queue is closed and drained (or rejects with the close
   * error). Breaking out of the loop leaves the queue open and its items in
   * place.
   */
  async *[Symbol.asyncIterator](): AsyncGenerator<V, void, undefined> {
    for (;;) {
      const value = await this.pop();
      if (value === undefined) return;
      yield value;
    }
  }

  // The push decision, without waiting: FULL only under backpressure.
  #offer(key: K, id: string, value: V): PushResult<K, V> | PushFull {
    const lane = this.#lanes.get(id);
    const length = lane === undefined ? 0 : lane.items.length;
    if (this.policy === "backpressure") {
      // Waiting pushes of the key go first (with room in the key they can
      // only be waiting on the total, which the second test catches too).
      if (
        length >= this.perKeyCapacity || this.#size >= this.totalCapacity ||
        (lane?.waiters !== undefined && lane.waiters.length > 0)
      ) {
        return FULL;
      }
      return this.#admit(lane ?? this.#lane(key, id), value);
    }
    const series = this.#series;
    if (length >= this.perKeyCapacity) {
      series.enqueued.inc();
      series.dropped("key_full").inc();
      if (this.policy === "drop-newest") return DROPPED_KEY_FULL;
      // drop-oldest: the key's oldest makes room; sizes do not change.
      const evicted = lane!.items.shift()!;
      lane!.items.push(value);
      return { status: "evicted", reason: "key_full", key: lane!.key, value: evicted };
    }
    if (this.#size >= this.totalCapacity) {
      series.enqueued.inc();
      series.dropped("total_full").inc();
      const longestKey = this.#longest!;
      const longest = longestKey.longest()!;
      const n = longest.items.length;
      if (n > length) {
        // Another key holds more: it pays, the pushing key gets its item in.
        const evicted = this.policy === "drop-newest"
          ? longest.items.pop()!
          : longest.items.shift()!;
        longestKey.moved(longest, n, n - 1);
        if (n === 1) {
          this.#ready.remove(longest.ready);
          this.#release(longest);
        }
        const target = lane ?? this.#lane(key, id);
        target.items.push(value);
        longestKey.moved(target, length, length + 1);
        if (!target.ready.linked) this.#ready.append(target.ready);
        return { status: "evicted", reason: "total_full", key: longest.key, value: evicted };
      }
      // The pushing key is the longest (it holds at least one item): its own policy applies.
      if (this.policy === "drop-newest") return DROPPED_TOTAL_FULL;
      const evicted = lane!.items.shift()!;
      lane!.items.push(value);
      return { status: "evicted", reason: "total_full", key: lane!.key, value: evicted };
    }
    return this.#admit(lane ?? this.#lane(key, id), value);
  }

  // Queues `value` in `lane`, which has room (or hands it to a waiting pop:
  // the queue is empty then).
  #admit(lane: Lane<K, V>, value: V): PushResult<K, V> {
    const series = this.#series;
    series.enqueued.inc();
    const popper = this.#poppers.shift();
    if (popper !== undefined) {
      if (popper.onAbort !== undefined) popper.signal!.removeEventListener("abort", popper.onAbort);
      series.dequeued.inc();
      this.#release(lane);
      popper.resolve(value);
      return QUEUED;
    }
    const length = lane.items.length;
    lane.items.push(value);
    this.#size++;
    series.depth.inc();
    this.#longest?.moved(lane, length, length + 1);
    if (!lane.ready.linked) this.#ready.append(lane.ready);
    return QUEUED;
  }

  // Pops the oldest item of `lane` (just taken from the front of the
  // rotation), puts the lane back at the end if it holds more, and hands the
  // room made to a waiting push.
  #take(lane: Lane<K, V>): V {
    const length = lane.items.length;
    const value = lane.items.shift()!;
    const wasTotalFull = this.#size >= this.totalCapacity;
    this.#size--;
    this.#series.dequeued.inc();
    this.#series.depth.dec();
    this.#longest?.moved(lane, length, length - 1);
    if (length > 1) this.#ready.append(lane.ready);
    if (this.#waiting.length > 0) this.#wake(lane, wasTotalFull);
    this.#release(lane);
    return value;
  }

  // Under backpressure, a pop from `freed` made room. If the total bound
  // was what held pushes back, the room goes to the waiting keys in turn
  // (a key that floods waits its turn like the others); otherwise only
  // `freed` itself has gained room.
  #wake(freed: Lane<K, V>, wasTotalFull: boolean): void {
    if (!wasTotalFull) {
      if (freed.waiters !== undefined && freed.waiters.length > 0) this.#admitWaiter(freed);
      return;
    }
    for (let turns = this.#waiting.length; turns > 0; turns--) {
      const lane = this.#waiting.shift()!;
      const admitted = lane.items.length < this.perKeyCapacity;
      if (admitted) this.#admitWaiter(lane);
      else this.#waiting.append(lane.waiting);
      if (admitted) return;
    }
  }

  // Admits the first waiting push of `lane`, which has room; keeps `lane`
  // in the waiting rotation (at the end) while pushes still wait on it.
  #admitWaiter(lane: Lane<K, V>): void {
    const waiters = lane.waiters!;
    const waiter = waiters.shift()!;
    this.#waiting.remove(lane.waiting);
    if (waiters.length > 0) this.#waiting.append(lane.waiting);
    if (waiter.onAbort !== undefined) waiter.signal!.removeEventListener("abort", waiter.onAbort);
    waiter.resolve(this.#admit(lane, waiter.value));
  }

  // The lane of `id`, made if needed.
  #lane(key: K, id: string): Lane<K, V> {
    let lane = this.#lanes.get(id);
    if (lane === undefined) {
      lane = new Lane(key, id);
      this.#lanes.set(id, lane);
    }
    return lane;
  }

  // Forgets `lane` once it holds nothing and nobody waits on it.
  #release(lane: Lane<K, V>): void {
    if (lane.items.length === 0 && (lane.waiters === undefined || lane.waiters.length === 0)) {
      this.#lanes.delete(lane.id);
    }
  }

  #closedError(): NetworkError {
    return new NetworkError(
      "CONNECTION_CLOSED",
      `channel ${this.name}: closed`,
      this.#error === undefined ? undefined : { cause: this.#error },
    );
  }
}
