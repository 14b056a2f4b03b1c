/**
 * The series every queue records into, in the style of Libra's `channel`
 * crate (a depth gauge per channel) and Aptos's `aptos_channel` (enqueued,
 * dequeued and dropped counters): resolved once per (scope, queue name),
 * so a queue made per connection or per peer costs no metric lookups, and
 * an item pushed or popped only adds to a number.
 *
 * Queues that share a name in one scope share their series: the depth is
 * then their sum (it moves with `inc`/`dec`, never `set`).
 *
 * Other bounded queues of the stack that are not a `BoundedQueue` or a
 * `KeyedQueue` (the peer manager's coalescing event streams) record into
 * the same series.
 *
 * @module
 */

import { type Metric, type Metrics, perScope, type Series } from "../metrics.ts";
import type { ChannelMetricsTarget } from "./bounded_queue.ts";
import type { DropReason } from "./keyed_queue.ts";

/**
 * The series of one queue name in one scope.
 *
 * @example
 * ```ts
 * import { channelMetrics } from "./channel_metrics.ts";
 * import { MetricsRegistry } from "../metrics.ts";
 * const series = channelMetrics(new MetricsRegistry().scope({ network: "t" }), "events");
 * series.enqueued.inc();
 * series.depth.inc();
 * ```
 */
export interface ChannelSeries {
  /** Items held now (a gauge). */
  readonly depth: Series;
  /** Items the queue took: queued, or dropped by its policy. */
  readonly enqueued: Series;
  /** Items popped. */
  readonly dequeued: Series;
  /** Items dropped, by reason. */
  dropped(reason: DropReason): Series;
}

interface Families {
  depth: Metric;
  enqueued: Metric;
  dequeued: Metric;
  dropped: Metric;
  byName: Map<string, ChannelSeries>;
}

const families = perScope((metrics): Families => ({
  depth: metrics.gauge(
    "validator_network_channel_depth",
    "Items waiting in a bounded channel, by channel name",
    ["name"],
  ),
  enqueued: metrics.counter(
    "validator_network_channel_enqueued_total",
    "Items pushed into a bounded channel (queued or dropped by its policy), by channel name",
    ["name"],
  ),
  dequeued: metrics.counter(
    "validator_network_channel_dequeued_total",
    "Items popped from a bounded channel, by channel name",
    ["name"],
  ),
  dropped: metrics.counter(
    "validator_network_channel_dropped_total",
    "Items a bounded channel dropped (refused, evicted, or discarded at close), by name and reason",
    ["name", "reason"],
  ),
  byName: new Map(),
}));

/**
 * The series of the queue `name` in `metrics`, resolved on first use.
 *
 * @example
 * ```ts
 * import { channelMetrics } from "./channel_metrics.ts";
 * import { defaultMetrics } from "../metrics.ts";
 * channelMetrics(defaultMetrics, "example").dropped("key_full").inc();
 * ```
 */
export function channelMetrics(metrics: ChannelMetricsTarget, name: string): ChannelSeries {
  // Every `Metrics` is a target, and a target is all `families` uses.
  const f = families(metrics as Metrics);
  let series = f.byName.get(name);
  if (series === undefined) {
    const dropped = new Map<DropReason, Series>();
    series = {
      depth: f.depth.labels({ name }),
      enqueued: f.enqueued.labels({ name }),
      dequeued: f.dequeued.labels({ name }),
      dropped(reason) {
        let s = dropped.get(reason);
        if (s === undefined) {
          s = f.dropped.labels({ name, reason });
          dropped.set(reason, s);
        }
        return s;
      },
    };
    f.byName.set(name, series);
  }
  return series;
}
