/**
 * The queues between the components of the peer layer and the messaging
 * protocols, as Libra's `channel` crate and Aptos's `aptos_channel`.
 *
 * **Every queue is bounded.** A queue without a bound turns a slow consumer
 * into unbounded memory and unbounded latency: nothing tells the producer to
 * slow down, and the node fails long after the cause, far from it. So each
 * queue here has a capacity, and what happens at the bound is a decision
 * written into the queue: wait ({@linkcode BoundedQueue}, or
 * {@linkcode KeyedQueue} with `"backpressure"`) or drop, visibly (the push
 * says what was dropped, and a counter counts it). Waiting pushes are
 * bounded too (`maxWaitingPushes`, `maxWaitingPushesPerKey`: one more is
 * refused with `LIMIT_EXCEEDED`); pops only wait while a queue is empty and
 * are made by the consumer itself.
 *
 * **Queues between peers and a protocol are per key.** In Libra, all
 * outbound direct-send messages shared one queue, and one slow peer filled
 * it and stopped every validator from sending (Diem issue #328: "the slow
 * peers fall behind, but the responsive peers should still commit
 * blocks"). The fix, Libra's `libra_channel` and now Aptos's
 * `aptos_channel`, gives each key (a peer, or a (peer, protocol) pair) its
 * own bounded FIFO and pops round-robin across keys: a peer that floods
 * fills only its own FIFO and drops only its own messages, a peer that is
 * slow to drain stalls only its own, and every other key still gets its
 * turn on each round. {@linkcode KeyedQueue} adds two things Aptos's queue
 * lacks: `"backpressure"` (the push waits for room in its key, so the loop
 * reading a flooding peer's stream stops reading it and flow control slows
 * that peer alone), and an optional total bound paid for by the key that
 * holds the most. A key exists only while it holds items or waiting pushes
 * (Diem issue #5543: the queues of transient peers must not accumulate).
 *
 * **Observability.** Each queue has a `name` and records, into the
 * `Metrics` it is given (default `defaultMetrics`), with the series
 * resolved once per (scope, name):
 *
 * - `validator_network_channel_depth{name}`: items queued (a gauge; queues
 *   sharing a name add up),
 * - `validator_network_channel_enqueued_total{name}`: items the queue took,
 * - `validator_network_channel_dequeued_total{name}`: items popped,
 * - `validator_network_channel_dropped_total{name,reason}`: items dropped,
 *   by {@linkcode DropReason} (`key_full`, `total_full`, `closed`),
 *
 * so that `enqueued = dequeued + dropped + depth` at all times.
 *
 * @example A protocol's inbound queue, one key per peer
 * ```ts
 * import { KeyedQueue } from "./mod.ts";
 *
 * const inbound = new KeyedQueue<string, string>(128, {
 *   name: "consensus_inbound",
 *   policy: "backpressure",
 * });
 * await inbound.push("peer-a", "proposal"); // waits while peer-a has 128 queued
 * console.log(await inbound.pop()); // "proposal"
 * ```
 *
 * @module
 */

export * from "./bounded_queue.ts";
export * from "./keyed_queue.ts";
export * from "./channel_metrics.ts";
