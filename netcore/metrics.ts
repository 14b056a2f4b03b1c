/**
 * Prometheus-style counters, gauges and histograms, with labels, rendered in
 * the text exposition format. Hot paths resolve a labelled series once
 * (`counter.labels({ direction: "in" })`) and then only add to a number.
 *
 * Every metric of the stack is named `validator_network_*` and every series
 * carries a `network` label: components take a {@linkcode Metrics} (a
 * registry seen through {@linkcode MetricsRegistry.scope}, which adds the
 * label), so two nodes in one process report apart even when they share a
 * registry.
 *
 * @module
 */

/**
 * Label names to values.
 *
 * @example
 * ```ts
 * import { type Labels, MetricsRegistry } from "./metrics.ts";
 * const labels: Labels = { protocol: "/ipfs/ping/1.0.0", direction: "inbound" };
 * new MetricsRegistry().counter("validator_network_x_total", "X", ["protocol", "direction"])
 *   .labels(labels).inc();
 * ```
 */
export type Labels = Record<string, string>;

/** The prefix of every metric the stack records. */
export const METRIC_PREFIX = "validator_network_";

/**
 * One labelled time series of a counter or gauge: a number that can be changed.
 *
 * @example
 * ```ts
 * import { MetricsRegistry, type Series } from "./metrics.ts";
 * const open: Series = new MetricsRegistry().gauge("validator_network_open", "Open").labels();
 * open.inc();
 * open.dec();
 * console.log(open.value); // 0
 * ```
 */
export class Series {
  /** The current value. */
  value = 0;
  /** Adds `n` (default 1). */
  inc(n = 1): void {
    this.value += n;
  }
  /** Subtracts `n` (default 1); for gauges. */
  dec(n = 1): void {
    this.value -= n;
  }
  /** Sets the value; for gauges. */
  set(n: number): void {
    this.value = n;
  }
}

/**
 * One labelled series of a histogram: counts of observations per bucket.
 *
 * @example
 * ```ts
 * import { type HistogramSeries, MetricsRegistry } from "./metrics.ts";
 * const rtt: HistogramSeries = new MetricsRegistry()
 *   .histogram("validator_network_rtt_ms", "Round trips", [], [1, 10, 100]).labels();
 * rtt.observe(0.4);
 * rtt.observe(7);
 * console.log(rtt.count, rtt.quantile(0.5)); // 2 1
 * ```
 */
export class HistogramSeries {
  /** Upper bounds of the buckets, ascending (`+Inf` is implied). */
  readonly bounds: readonly number[];
  /** Observations at most each bound (not cumulative), then the ones above all. */
  readonly counts: number[];
  /** Sum of all observations. */
  sum = 0;
  /** Number of observations. */
  count = 0;

  /**
   * An empty histogram series. Metrics make these; see {@linkcode Metric.labels}.
   *
   * @param bounds upper bounds of the buckets, ascending
   */
  constructor(bounds: readonly number[]) {
    this.bounds = bounds;
    this.counts = new Array(bounds.length + 1).fill(0);
  }

  /** Records one observation. */
  observe(value: number): void {
    const bounds = this.bounds;
    let i = 0;
    while (i < bounds.length && value > bounds[i]) i++;
    this.counts[i]++;
    this.sum += value;
    this.count++;
  }

  /**
   * The `q` quantile (0..1) estimated from the buckets: the upper bound of
   * the bucket it falls in (the largest bound when above all); `NaN` when
   * nothing was observed.
   */
  quantile(q: number): number {
    if (this.count === 0) return Number.NaN;
    const rank = q * this.count;
    let seen = 0;
    for (let i = 0; i < this.counts.length; i++) {
      seen += this.counts[i];
      if (seen >= rank && this.counts[i] > 0) {
        return i < this.bounds.length ? this.bounds[i] : this.bounds[this.bounds.length - 1];
      }
    }
    return this.bounds[this.bounds.length - 1];
  }
}

/**
 * Whether a metric only goes up, goes up and down, or counts observations in buckets.
 *
 * @example
 * ```ts
 * import { type MetricKind, MetricsRegistry } from "./metrics.ts";
 * const kind: MetricKind = new MetricsRegistry().gauge("validator_network_peers", "Peers").kind;
 * console.log(kind); // "gauge"
 * ```
 */
export type MetricKind = "counter" | "gauge" | "histogram";

/**
 * Latency buckets in milliseconds, from 50 us to 10 s: the default of
 * {@linkcode Metrics.histogram}.
 */
export const LATENCY_BUCKETS_MS: readonly number[] = [
  0.05,
  0.1,
  0.25,
  0.5,
  1,
  2.5,
  5,
  10,
  25,
  50,
  100,
  250,
  500,
  1_000,
  2_500,
  5_000,
  10_000,
];

/**
 * The series a metric hands out for one set of labels: a
 * {@linkcode HistogramSeries} for a histogram, a {@linkcode Series} otherwise.
 *
 * @example
 * ```ts
 * import { MetricsRegistry, type SeriesOf } from "./metrics.ts";
 * const latency: SeriesOf<"histogram"> = new MetricsRegistry()
 *   .histogram("validator_network_latency_ms", "Latency").labels();
 * latency.observe(2.5);
 * ```
 */
export type SeriesOf<K extends MetricKind> = K extends "histogram" ? HistogramSeries : Series;

/**
 * What a registry keeps per metric name: the description and every series.
 * Components never hold one; they get {@linkcode Metric}s.
 *
 * @example
 * ```ts
 * import { MetricsRegistry } from "./metrics.ts";
 * const family = new MetricsRegistry().family("validator_network_x_total", "X", "counter", []);
 * console.log(family.kind); // "counter"
 * ```
 */
export class MetricFamily<K extends MetricKind> {
  /** Every series by its joined label values. */
  readonly series: Map<string, { labels: Labels; series: SeriesOf<K> }> = new Map();
  /** Made by {@linkcode MetricsRegistry.family}. */
  constructor(
    /** The metric name. */
    readonly name: string,
    /** One-line description. */
    readonly help: string,
    /** Counter, gauge or histogram. */
    readonly kind: K,
    /** Every label name, constant ones included. */
    readonly labelNames: readonly string[],
    /** Bucket bounds of a histogram; empty otherwise. */
    readonly buckets: readonly number[],
  ) {}
}

/**
 * A named metric with labelled series, as a component sees it: through a
 * registry, or through a scope whose constant labels it adds to every series.
 *
 * @example
 * ```ts
 * import { MetricsRegistry } from "./metrics.ts";
 * const registry = new MetricsRegistry();
 * const bytes = registry.counter("validator_network_bytes_total", "Bytes", ["direction"]);
 * bytes.labels({ direction: "out" }).inc(1024);
 * console.log(bytes.get({ direction: "out" })); // 1024
 * ```
 */
export class Metric<K extends MetricKind = "counter" | "gauge"> {
  readonly #family: MetricFamily<K>;
  readonly #constant: Labels | undefined;

  /** Use {@linkcode MetricsRegistry.counter}, `gauge` or `histogram`. */
  constructor(family: MetricFamily<K>, constant?: Labels) {
    this.#family = family;
    this.#constant = constant;
  }

  /** Metric name, e.g. `validator_network_yamux_bytes_total`. */
  get name(): string {
    return this.#family.name;
  }
  /** One-line description. */
  get help(): string {
    return this.#family.help;
  }
  /** Counter, gauge or histogram. */
  get kind(): K {
    return this.#family.kind;
  }
  /** Bucket bounds of a histogram; empty otherwise. */
  get buckets(): readonly number[] {
    return this.#family.buckets;
  }

  /** The series for `labels` (missing labels are empty strings), created on first use. */
  labels(labels: Labels = {}): SeriesOf<K> {
    if (this.#constant !== undefined) labels = { ...labels, ...this.#constant };
    // Built by hand: this runs per connection and per stream.
    const family = this.#family;
    const names = family.labelNames;
    let key = names.length === 0 ? "" : labels[names[0]] ?? "";
    for (let i = 1; i < names.length; i++) key += "\u0000" + (labels[names[i]] ?? "");
    let entry = family.series.get(key);
    if (entry === undefined) {
      const own: Labels = {};
      for (const n of names) own[n] = labels[n] ?? "";
      const series = (family.kind === "histogram"
        ? new HistogramSeries(family.buckets)
        : new Series()) as SeriesOf<K>;
      entry = { labels: own, series };
      family.series.set(key, entry);
    }
    return entry.series;
  }

  /** The value of a counter or gauge series (0 if never touched); a histogram's count. */
  get(labels: Labels = {}): number {
    const series = this.labels(labels);
    return series instanceof HistogramSeries ? series.count : series.value;
  }

  /** Every series with its labels (within this metric's scope). */
  *series(): IterableIterator<{ labels: Labels; series: SeriesOf<K> }> {
    const constant = this.#constant;
    for (const entry of this.#family.series.values()) {
      if (
        constant === undefined ||
        Object.keys(constant).every((k) => entry.labels[k] === constant[k])
      ) {
        yield entry;
      }
    }
  }

  /** Every series with its labels and value (a histogram gives its count). */
  *entries(): IterableIterator<{ labels: Labels; value: number }> {
    for (const { labels, series } of this.series()) {
      yield { labels, value: series instanceof HistogramSeries ? series.count : series.value };
    }
  }
}

/**
 * Where components declare the metrics they record: a
 * {@linkcode MetricsRegistry}, or one seen through
 * {@linkcode MetricsRegistry.scope} with constant labels (the `network`
 * label). Declaring a name twice returns the metric already there.
 *
 * @example
 * ```ts
 * import { MetricsRegistry, type Metrics } from "./metrics.ts";
 * function record(metrics: Metrics) {
 *   metrics.counter("validator_network_dials_total", "Dials").labels().inc();
 * }
 * record(new MetricsRegistry().scope({ network: "testnet" }));
 * ```
 */
export interface Metrics {
  /** A counter (only goes up). */
  counter(name: string, help: string, labelNames?: readonly string[]): Metric<"counter" | "gauge">;
  /** A gauge (goes up and down). */
  gauge(name: string, help: string, labelNames?: readonly string[]): Metric<"counter" | "gauge">;
  /** A histogram with `buckets` (default {@linkcode LATENCY_BUCKETS_MS}). */
  histogram(
    name: string,
    help: string,
    labelNames?: readonly string[],
    buckets?: readonly number[],
  ): Metric<"histogram">;
}

function escapeLabel(value: string): string {
  return value.replace(/\\/g, "\\\\").replace(/\n/g, "\\n").replace(/"/g, '\\"');
}

// The format escapes only backslash and newline in HELP text.
function escapeHelp(text: string): string {
  return text.replace(/\\/g, "\\\\").replace(/\n/g, "\\n");
}

function labelText(labels: Labels, extra?: [string, string]): string {
  const parts = Object.keys(labels).map((n) => `${n}="${escapeLabel(labels[n])}"`);
  if (extra !== undefined) parts.push(`${extra[0]}="${escapeLabel(extra[1])}"`);
  return parts.length === 0 ? "" : `{${parts.join(",")}}`;
}

/**
 * A set of metrics, rendered together.
 *
 * @example
 * ```ts
 * import { MetricsRegistry } from "./metrics.ts";
 * const registry = new MetricsRegistry();
 * const node = registry.scope({ network: "testnet" });
 * node.gauge("validator_network_connected_peers", "Connected peers").labels().set(3);
 * console.log(registry.render().includes('validator_network_connected_peers{network="testnet"} 3'));
 * ```
 */
export class MetricsRegistry implements Metrics {
  readonly #families = new Map<string, MetricFamily<MetricKind>>();

  /** A counter (only goes up). */
  counter(name: string, help: string, labelNames: readonly string[] = []): Metric {
    return new Metric(this.family(name, help, "counter", labelNames) as MetricFamily<"counter">);
  }

  /** A gauge (goes up and down). */
  gauge(name: string, help: string, labelNames: readonly string[] = []): Metric {
    return new Metric(this.family(name, help, "gauge", labelNames) as MetricFamily<"gauge">);
  }

  /** A histogram with `buckets` (default {@linkcode LATENCY_BUCKETS_MS}). */
  histogram(
    name: string,
    help: string,
    labelNames: readonly string[] = [],
    buckets: readonly number[] = LATENCY_BUCKETS_MS,
  ): Metric<"histogram"> {
    return new Metric(
      this.family(name, help, "histogram", labelNames, buckets) as MetricFamily<"histogram">,
    );
  }

  /**
   * The family of `name`, registered on first use. Internal: for
   * {@linkcode MetricsRegistry.scope}.
   *
   * @throws {TypeError} when `name` is registered as another kind or with other labels
   */
  family(
    name: string,
    help: string,
    kind: MetricKind,
    labelNames: readonly string[],
    buckets: readonly number[] = [],
  ): MetricFamily<MetricKind> {
    const existing = this.#families.get(name);
    if (existing !== undefined) {
      if (existing.kind !== kind) throw new TypeError(`metric ${name} is a ${existing.kind}`);
      // A scope's labels must be there: a family declared without them would
      // merge the series of every scope.
      if (existing.labelNames.join() !== labelNames.join()) {
        throw new TypeError(
          `metric ${name} has labels [${existing.labelNames}], not [${labelNames}]`,
        );
      }
      return existing;
    }
    const family = new MetricFamily(name, help, kind, labelNames, buckets);
    this.#families.set(name, family);
    return family;
  }

  /** The metric registered under `name`, if any. */
  find(name: string): Metric<MetricKind> | undefined {
    const family = this.#families.get(name);
    return family === undefined ? undefined : new Metric(family);
  }

  /**
   * This registry seen with `labels` added to every metric declared through
   * it and to every series made from those (a node passes
   * `registry.scope({ network })` to its components).
   */
  scope(labels: Labels): Metrics {
    const names = Object.keys(labels);
    const constant = { ...labels };
    return {
      counter: (name, help, labelNames = []) =>
        new Metric(
          this.family(name, help, "counter", [...names, ...labelNames]) as MetricFamily<
            "counter"
          >,
          constant,
        ),
      gauge: (name, help, labelNames = []) =>
        new Metric(
          this.family(name, help, "gauge", [...names, ...labelNames]) as MetricFamily<"gauge">,
          constant,
        ),
      histogram: (name, help, labelNames = [], buckets = LATENCY_BUCKETS_MS) =>
        new Metric(
          this.family(
            name,
            help,
            "histogram",
            [...names, ...labelNames],
            buckets,
          ) as MetricFamily<
            "histogram"
          >,
          constant,
        ),
    };
  }

  /** Everything in the Prometheus text exposition format. */
  render(): string {
    const lines: string[] = [];
    for (const family of this.#families.values()) {
      const name = family.name;
      lines.push(`# HELP ${name} ${escapeHelp(family.help)}`, `# TYPE ${name} ${family.kind}`);
      for (const { labels, series } of family.series.values()) {
        if (series instanceof HistogramSeries) {
          let cumulative = 0;
          for (let i = 0; i < series.bounds.length; i++) {
            cumulative += series.counts[i];
            const le = labelText(labels, ["le", `${series.bounds[i]}`]);
            lines.push(`${name}_bucket${le} ${cumulative}`);
          }
          lines.push(
            `${name}_bucket${labelText(labels, ["le", "+Inf"])} ${series.count}`,
            `${name}_sum${labelText(labels)} ${series.sum}`,
            `${name}_count${labelText(labels)} ${series.count}`,
          );
        } else {
          lines.push(`${name}${labelText(labels)} ${series.value}`);
        }
      }
    }
    return lines.join("\n") + "\n";
  }
}

/**
 * The registry components use when given none.
 *
 * @example
 * ```ts
 * import { defaultRegistry } from "./metrics.ts";
 * console.log(typeof defaultRegistry.render()); // "string"
 * ```
 */
export const defaultRegistry: MetricsRegistry = new MetricsRegistry();

/**
 * What a component records into when its options give no metrics:
 * {@linkcode defaultRegistry} with `network="default"`.
 *
 * @example
 * ```ts
 * import { defaultMetrics } from "./metrics.ts";
 * defaultMetrics.counter("validator_network_example_total", "An example").labels().inc();
 * ```
 */
export const defaultMetrics: Metrics = defaultRegistry.scope({ network: "default" });

/**
 * Resolves a component's series once per {@linkcode Metrics} scope, so the
 * many sessions or streams of one node share them and creating one costs
 * no metric lookups. `build` runs the first time a scope is seen.
 *
 * @example
 * ```ts
 * import { defaultMetrics, perScope } from "./metrics.ts";
 * const dials = perScope((m) => m.counter("validator_network_dials_total", "Dials").labels());
 * dials(defaultMetrics).inc();
 * ```
 */
export function perScope<T>(build: (metrics: Metrics) => T): (metrics: Metrics) => T {
  const resolved = new WeakMap<Metrics, T>();
  return (metrics) => {
    let value = resolved.get(metrics);
    if (value === undefined) {
      value = build(metrics);
      resolved.set(metrics, value);
    }
    return value;
  };
}
