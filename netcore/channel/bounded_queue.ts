/**
 * {@linkcode BoundedQueue}: one FIFO of at most `capacity` items between two
 * components, with backpressure: a push waits while the queue is full.
 * Libra's `channel` crate (a bounded mpsc with a depth gauge) in one object.
 *
 * @module
 */

import { abortError } from "../_async.ts";
import { defaultMetrics } from "../metrics.ts";
import { NetworkError } from "../network_error.ts";
import { checkBound, checkItem } from "./_check.ts";
import { Deque } from "./_deque.ts";
import { channelMetrics, type ChannelSeries } from "./channel_metrics.ts";

/**
 * Options of a wait on a queue (a push waiting for room, a pop waiting for
 * an item).
 *
 * @example
 * ```ts
 * import { BoundedQueue, type WaitOptions } from "./mod.ts";
 * const queue = new BoundedQueue<string>(1, { name: "example" });
 * const options: WaitOptions = { signal: AbortSignal.timeout(1_000) };
 * await queue.push("a", options);
 * ```
 */
export interface WaitOptions {
  /**
   * Gives up the wait: the promise rejects with the signal's reason as a
   * `NetworkError` (`ABORTED`, `TIMEOUT` for `AbortSignal.timeout`, or the
   * reason itself when it is one), and the item stays the caller's. Default:
   * none, wait until the queue is closed.
   */
  signal?: AbortSignal;
}

/**
 * Where a queue records its series: the part of a `Metrics`
 * (`netcore/metrics.ts`) the queues use, so any `Metrics` fits: a
 * `MetricsRegistry`, one of its `scope({ network })`s, `defaultMetrics`.
 * (Spelled out here so that this module's API names only types it exports.)
 *
 * @example
 * ```ts
 * import { BoundedQueue, type ChannelMetricsTarget } from "./mod.ts";
 * import { MetricsRegistry } from "../metrics.ts";
 * const registry = new MetricsRegistry();
 * const metrics: ChannelMetricsTarget = registry.scope({ network: "testnet" });
 * const queue = new BoundedQueue<string>(8, { name: "example", metrics });
 * queue.tryPush("a");
 * console.log(registry.render().includes('validator_network_channel_depth{network="testnet",name="example"} 1'));
 * ```
 */
export interface ChannelMetricsTarget {
  /** A counter, with `labelNames` besides the scope's. */
  counter(name: string, help: string, labelNames?: readonly string[]): {
    /** The series of `labels`. */
    labels(labels?: Record<string, string>): { inc(n?: number): void; dec(n?: number): void };
  };
  /** A gauge, with `labelNames` besides the scope's. */
  gauge(name: string, help: string, labelNames?: readonly string[]): {
    /** The series of `labels`. */
    labels(labels?: Record<string, string>): { inc(n?: number): void; dec(n?: number): void };
  };
}

/**
 * Options of a {@linkcode BoundedQueue}.
 *
 * @example
 * ```ts
 * import { BoundedQueue, type BoundedQueueOptions } from "./mod.ts";
 * import { MetricsRegistry } from "../metrics.ts";
 * const options: BoundedQueueOptions = {
 *   name: "peer_manager_events",
 *   metrics: new MetricsRegistry().scope({ network: "testnet" }),
 * };
 * const queue = new BoundedQueue<string>(64, options);
 * ```
 */
export interface BoundedQueueOptions {
  /** The queue's name: the `name` label of its series. Required. */
  name: string;
  /** Where the queue records its series. Default: `defaultMetrics`. */
  metrics?: ChannelMetricsTarget;
  /**
   * How many pushes may wait for room at once; one more rejects with
   * `LIMIT_EXCEEDED`, so the waiting pushes are bounded too. Default 1024.
   */
  maxWaitingPushes?: number;
}

/** The defaults of {@linkcode BoundedQueueOptions}. */
const DEFAULTS = { maxWaitingPushes: 1024 } as const;

interface Pusher<T> {
  readonly item: T;
  readonly resolve: () => void;
  readonly reject: (err: NetworkError) => void;
  readonly signal: AbortSignal | undefined;
  onAbort: (() => void) | undefined;
}

interface Popper<T> {
  readonly resolve: (item: T | undefined) => void;
  readonly reject: (err: NetworkError) => void;
  readonly signal: AbortSignal | undefined;
  onAbort: (() => void) | undefined;
}

/**
 * A FIFO of at most `capacity` items with async backpressure, for one
 * producer side and one consumer side of the peer layer (events from the
 * peer manager, requests to a connection's writer).
 *
 * - {@linkcode BoundedQueue.push} waits while the queue is full; waiting
 *   pushes are admitted in the order they came as pops make room.
 * - {@linkcode BoundedQueue.tryPush} never waits: `false` when full (the
 *   item stays the caller's; not counted as a drop).
 * - {@linkcode BoundedQueue.pop} waits for an item; `undefined` once the
 *   queue is closed and drained.
 * - {@linkcode BoundedQueue.close} ends it: waiting pushes reject with
 *   `CONNECTION_CLOSED`; without an error the consumer drains what is left,
 *   with one the items are discarded (returned, counted as dropped) and
 *   every pop rejects with it.
 *
 * Items may not be `undefined`. The queue never loses an item silently:
 * `validator_network_channel_enqueued_total{name}` =
 * `..._dequeued_total` + `..._dropped_total` + `..._depth`.
 *
 * @example Backpressure between a producer and a consumer
 * ```ts
 * import { BoundedQueue } from "./mod.ts";
 *
 * const queue = new BoundedQueue<number>(2, { name: "example" });
 * const producer = (async () => {
 *   for (let i = 0; i < 5; i++) await queue.push(i); // waits while 2 are queued
 *   queue.close();
 * })();
 * const seen: number[] = [];
 * for await (const n of queue) seen.push(n);
 * await producer;
 * console.log(seen); // [0, 1, 2, 3, 4]
 * ```
 */
export class BoundedQueue<T> implements AsyncIterable<T> {
  /** The most items the queue holds. */
  readonly capacity: number;
  /** The queue's name, the `name` label of its series. */
  readonly name: string;
  readonly #maxWaitingPushes: number;
  readonly #items = new Deque<T>();
  readonly #pushers = new Deque<Pusher<T>>();
  readonly #poppers = new Deque<Popper<T>>();
  readonly #series: ChannelSeries;
  #closed = false;
  #error: NetworkError | undefined = undefined;

  /**
   * An empty, open queue.
   *
   * @param capacity the most items it holds (a positive integer)
   * @param options its name, metrics and the bound on waiting pushes
   * @throws {RangeError} when `capacity` or `maxWaitingPushes` is not a positive integer
   */
  constructor(capacity: number, options: BoundedQueueOptions) {
    const { name, metrics = defaultMetrics, maxWaitingPushes = DEFAULTS.maxWaitingPushes } =
      options;
    checkBound("capacity", capacity);
    checkBound("maxWaitingPushes", maxWaitingPushes);
    this.capacity = capacity;
    this.name = name;
    this.#maxWaitingPushes = maxWaitingPushes;
    this.#series = channelMetrics(metrics, name);
  }

  /** Items queued now (not counting pushes still waiting for room). */
  get size(): number {
    return this.#items.length;
  }

  /** Whether {@linkcode BoundedQueue.close} was called. */
  get closed(): boolean {
    return this.#closed;
  }

  /**
   * Queues `item`, waiting while the queue is full. Resolves once the item
   * is queued (or handed to a waiting pop).
   *
   * @throws {NetworkError} `CONNECTION_CLOSED` once the queue is closed (also
   * for a push that was waiting); `ABORTED`/`TIMEOUT` (the signal's reason)
   * when `options.signal` fires first; `LIMIT_EXCEEDED` when
   * `maxWaitingPushes` pushes already wait. In every case the item was not
   * queued.
   * @throws {TypeError} when `item` is `undefined`
   */
  push(item: T, options: WaitOptions = {}): Promise<void> {
    checkItem(item);
    const { signal } = options;
    if (signal?.aborted) return Promise.reject(abortError(signal));
    if (this.#closed) return Promise.reject(this.#closedError());
    if (this.#pushers.length === 0 && this.#offer(item)) return Promise.resolve();
    if (this.#pushers.length >= this.#maxWaitingPushes) {
      return Promise.reject(
        new NetworkError(
          "LIMIT_EXCEEDED",
          `channel ${this.name}: ${this.#pushers.length} pushes already wait for room`,
        ),
      );
    }
    return new Promise<void>((resolve, reject) => {
      const pusher: Pusher<T> = { item, resolve, reject, signal, onAbort: undefined };
      if (signal !== undefined) {
        pusher.onAbort = () => {
          this.#pushers.remove(pusher);
          reject(abortError(signal));
        };
        signal.addEventListener("abort", pusher.onAbort, { once: true });
      }
      this.#pushers.push(pusher);
    });
  }

  /**
   * Queues `item` if there is room now; never waits. `false` when the queue
   * is full or pushes are waiting (they go first): the item stays the
   * caller's, which is not a drop.
   *
   * @throws {NetworkError} `CONNECTION_CLOSED` once the queue is closed
   * @throws {TypeError} when `item` is `undefined`
   */
  tryPush(item: T): boolean {
    checkItem(item);
    if (this.#closed) throw this.#closedError();
    return this.#pushers.length === 0 && this.#offer(item);
  }

  /**
   * The oldest item, waiting for one while the queue is empty; `undefined`
   * once the queue is closed (without an error) and drained. Concurrent pops
   * are served in the order they came.
   *
   * @throws {NetworkError} the error given to {@linkcode BoundedQueue.close};
   * the signal's reason when `options.signal` fires first
   */
  pop(options: WaitOptions = {}): Promise<T | undefined> {
    const { signal } = options;
    if (signal?.aborted) return Promise.reject(abortError(signal));
    if (this.#error !== undefined) return Promise.reject(this.#error);
    const item = this.#items.shift();
    if (item !== undefined) {
      this.#series.dequeued.inc();
      this.#series.depth.dec();
      this.#admitPusher();
      return Promise.resolve(item);
    }
    if (this.#closed) return Promise.resolve(undefined);
    return new Promise<T | undefined>((resolve, reject) => {
      const popper: Popper<T> = { resolve, reject, signal, onAbort: undefined };
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
   * left and then give `undefined`; with one, the items left are discarded
   * (counted as dropped with reason `closed`) and returned, so the caller
   * can fail them, and waiting and later pops reject with `error` (as a
   * `NetworkError`: itself if it is one, else `CONNECTION_CLOSED` with it
   * as `cause`).
   *
   * @param error why the queue ends abnormally, if it does
   * @returns the items discarded (empty without `error`), oldest first
   */
  close(error?: Error): T[] {
    if (this.#closed) return [];
    this.#closed = true;
    this.#error = error === undefined
      ? undefined
      : NetworkError.wrap(error, "CONNECTION_CLOSED", `channel ${this.name} closed`);
    const closedError = this.#closedError();
    for (let p = this.#pushers.shift(); p !== undefined; p = this.#pushers.shift()) {
      if (p.onAbort !== undefined) p.signal!.removeEventListener("abort", p.onAbort);
      p.reject(closedError);
    }
    for (let p = this.#poppers.shift(); p !== undefined; p = this.#poppers.shift()) {
      if (p.onAbort !== undefined) p.signal!.removeEventListener("abort", p.onAbort);
      if (this.#error === undefined) p.resolve(undefined);
      else p.reject(this.#error);
    }
    if (error === undefined) return [];
    const discarded = this.#items.drain();
    this.#series.depth.dec(discarded.length);
    this.#series.dropped("closed").inc(discarded.length);
    return discarded;
  }

  /**
   * Pops until the queue is closed and drained (or rejects with the close
   * error). Breaking out of the loop leaves the queue open and its items in
   * place.
   */
  async *[Symbol.asyncIterator](): AsyncGenerator<T, void, undefined> {
    for (;;) {
      const item = await this.pop();
      if (item === undefined) return;
      yield item;
    }
  }

  // Takes `item` if there is room: straight to a waiting pop (the queue is
  // empty then), else at the back.
  #offer(item: T): boolean {
    const popper = this.#poppers.shift();
    if (popper !== undefined) {
      if (popper.onAbort !== undefined) popper.signal!.removeEventListener("abort", popper.onAbort);
      this.#series.enqueued.inc();
      this.#series.dequeued.inc();
      popper.resolve(item);
      return true;
    }
    if (this.#items.length >= this.capacity) return false;
    this.#items.push(item);
    this.#series.enqueued.inc();
    this.#series.depth.inc();
    return true;
  }

  // A pop made room: the longest-waiting push takes it.
  #admitPusher(): void {
    const pusher = this.#pushers.shift();
    if (pusher === undefined) return;
    if (pusher.onAbort !== undefined) pusher.signal!.removeEventListener("abort", pusher.onAbort);
    this.#items.push(pusher.item);
    this.#series.enqueued.inc();
    this.#series.depth.inc();
    pusher.resolve();
  }

  #closedError(): NetworkError {
    return new NetworkError(
      "CONNECTION_CLOSED",
      `channel ${this.name}: closed`,
      this.#error === undefined ? undefined : { cause: this.#error },
    );
  }
}
