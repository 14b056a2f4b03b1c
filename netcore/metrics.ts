/**
 * Prometheus-style counters and gauges, with labels, rendered in the text
 * exposition format. Hot paths resolve a labelled child once
 * (`counter.labels({ protocol: "yamux" })`) and then only add to a number.
 *
 * @module
 */

/** Label names to values. */
export type Labels = Record<string, string>;

/** One labelled time series: a number that can be changed. */
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

/** Whether a metric only goes up (`counter`) or up and down (`gauge`). */
export type MetricKind = "counter" | "gauge";

/**
 * A named metric with labelled series.
 *
 * @example
 * ```ts
 * import { MetricsRegistry } from "./metrics.ts";
 * const registry = new MetricsRegistry();
 * const bytes = registry.counter("network_bytes_sent_total", "Bytes written to peers", ["protocol"]);
 * bytes.labels({ protocol: "noise" }).inc(1024);
 * console.log(registry.render());
 * ```
 */
export class Metric {
  readonly #series = new Map<string, { labels: Labels; series: Series }>();
  /** Metric name, e.g. `network_bytes_sent_total`. */
  readonly name: string;
  /** One-line description. */
  readonly help: string;
  /** Counter or gauge. */
  readonly kind: MetricKind;
  /** Label names every series must give. */
  readonly labelNames: readonly string[];

  /** Use {@linkcode MetricsRegistry.counter} or {@linkcode MetricsRegistry.gauge}. */
  constructor(name: string, help: string, kind: MetricKind, labelNames: readonly string[]) {
    this.name = name;
    this.help = help;
    this.kind = kind;
    this.labelNames = labelNames;
  }

  /** The series for these label values, created on first use. Keep it for hot paths. */
  labels(labels: Labels = {}): Series {
    // Built by hand: this runs per connection and per stream.
    const names = this.labelNames;
    let key = names.length === 0 ? "" : labels[names[0]] ?? "";
    for (let i = 1; i < names.length; i++) key += "\u0000" + (labels[names[i]] ?? "");
    let entry = this.#series.get(key);
    if (entry === undefined) {
      const own: Labels = {};
      for (const n of this.labelNames) own[n] = labels[n] ?? "";
      entry = { labels: own, series: new Series() };
      this.#series.set(key, entry);
    }
    return entry.series;
  }

  /** Adds to the unlabelled series (or the one for `labels`). */
  inc(n = 1, labels?: Labels): void {
    this.labels(labels).inc(n);
  }

  /** The value of the series for `labels` (0 if it never changed). */
  get(labels: Labels = {}): number {
    return this.labels(labels).value;
  }

  /** Every series with its labels. */
  *entries(): IterableIterator<{ labels: Labels; value: number }> {
    for (const { labels, series } of this.#series.values()) yield { labels, value: series.value };
  }
}

function escapeLabel(value: string): string {
  return value.replace(/\\/g, "\\\\").replace(/\n/g, "\\n").replace(/"/g, '\\"');
}

// The format escapes only backslash and newline in HELP text.
function escapeHelp(text: string): string {
  return text.replace(/\\/g, "\\\\").replace(/\n/g, "\\n");
}

/**
 * A set of metrics, rendered together. Registering a name twice returns the
 * metric already there, so modules can declare what they use without
 * coordinating.
 *
 * @example
 * ```ts
 * import { defaultRegistry } from "./metrics.ts";
 * defaultRegistry.gauge("network_peers", "Connected peers").labels().set(3);
 * ```
 */
export class MetricsRegistry {
  readonly #metrics = new Map<string, Metric>();

  /** A counter (only goes up). */
  counter(name: string, help: string, labelNames: readonly string[] = []): Metric {
    return this.#get(name, help, "counter", labelNames);
  }

  /** A gauge (goes up and down). */
  gauge(name: string, help: string, labelNames: readonly string[] = []): Metric {
    return this.#get(name, help, "gauge", labelNames);
  }

  #get(name: string, help: string, kind: MetricKind, labelNames: readonly string[]): Metric {
    const existing = this.#metrics.get(name);
    if (existing !== undefined) {
      if (existing.kind !== kind) throw new TypeError(`metric ${name} is a ${existing.kind}`);
      return existing;
    }
    const metric = new Metric(name, help, kind, labelNames);
    this.#metrics.set(name, metric);
    return metric;
  }

  /** The metric called `name`, if registered. */
  find(name: string): Metric | undefined {
    return this.#metrics.get(name);
  }

  /** All metrics in the Prometheus text exposition format. */
  render(): string {
    const lines: string[] = [];
    for (const metric of this.#metrics.values()) {
      lines.push(
        `# HELP ${metric.name} ${escapeHelp(metric.help)}`,
        `# TYPE ${metric.name} ${metric.kind}`,
      );
      for (const { labels, value } of metric.entries()) {
        const names = Object.keys(labels);
        const text = names.length === 0
          ? ""
          : `{${names.map((n) => `${n}="${escapeLabel(labels[n])}"`).join(",")}}`;
        lines.push(`${metric.name}${text} ${value}`);
      }
    }
    return lines.join("\n") + "\n";
  }
}

/** The process-wide registry the stack's modules record into by default. */
export const defaultRegistry: MetricsRegistry = new MetricsRegistry();
