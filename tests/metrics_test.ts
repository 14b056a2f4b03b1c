/**
 * Counters, gauges and histograms with labels, scopes that add constant
 * labels (the `network` label), and their rendering in the Prometheus text
 * exposition format (version 0.0.4): `# HELP name text`, `# TYPE name kind`,
 * then `name{label="value",...} number` per series (a histogram: cumulative
 * `name_bucket{...,le="bound"}` lines up to `le="+Inf"`, then `name_sum` and
 * `name_count`); in HELP text `\` and newline are escaped, in label values
 * `\`, `"` and newline are.
 */

import {
  defaultMetrics,
  defaultRegistry,
  HistogramSeries,
  LATENCY_BUCKETS_MS,
  Metric,
  METRIC_PREFIX,
  MetricsRegistry,
  Series,
} from "../netcore/metrics.ts";
import { assert, assertEquals, assertThrows } from "./_assert.ts";

const METRIC_NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;
const HELP_LINE = /^# HELP ([a-zA-Z_:][a-zA-Z0-9_:]*) ((?:[^\\\n]|\\[\\n])*)$/;
const TYPE_LINE = /^# TYPE ([a-zA-Z_:][a-zA-Z0-9_:]*) (counter|gauge|histogram|summary|untyped)$/;
const SAMPLE_LINE = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})? (\S+)$/;
const LABEL_PAIR = /^([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\\n]|\\[\\"n])*)"(?:,|$)/;

function unescape(text: string): string {
  return text.replace(/\\(.)/g, (_, c: string) => (c === "n" ? "\n" : c));
}

interface Parsed {
  help: Map<string, string>;
  type: Map<string, string>;
  samples: { name: string; labels: Record<string, string>; value: number }[];
}

/** A strict reader of the text format; throws on anything malformed. */
function parseExposition(text: string): Parsed {
  if (!text.endsWith("\n")) throw new Error("exposition must end with a newline");
  const parsed: Parsed = { help: new Map(), type: new Map(), samples: [] };
  for (const line of text.slice(0, -1).split("\n")) {
    let m: RegExpMatchArray | null;
    if ((m = line.match(HELP_LINE))) {
      if (parsed.help.has(m[1])) throw new Error(`second HELP for ${m[1]}`);
      parsed.help.set(m[1], unescape(m[2]));
    } else if ((m = line.match(TYPE_LINE))) {
      if (parsed.type.has(m[1])) throw new Error(`second TYPE for ${m[1]}`);
      if (parsed.samples.some((s) => s.name === m![1])) throw new Error("TYPE after samples");
      parsed.type.set(m[1], m[2]);
    } else if ((m = line.match(SAMPLE_LINE))) {
      const labels: Record<string, string> = {};
      let rest = m[3] ?? "";
      while (rest.length > 0) {
        const pair = rest.match(LABEL_PAIR);
        if (pair === null) throw new Error(`bad label set in ${JSON.stringify(line)}`);
        if (pair[1] in labels) throw new Error(`duplicate label ${pair[1]}`);
        labels[pair[1]] = unescape(pair[2]);
        rest = rest.slice(pair[0].length);
      }
      const value = Number(m[4]);
      if (Number.isNaN(value) && m[4] !== "NaN") throw new Error(`bad value in ${line}`);
      parsed.samples.push({ name: m[1], labels, value });
    } else {
      throw new Error(`not a valid exposition line: ${JSON.stringify(line)}`);
    }
  }
  return parsed;
}

Deno.test("counter: starts at 0, inc() adds 1, inc(n) adds n", () => {
  const registry = new MetricsRegistry();
  const dials = registry.counter("network_dials_total", "Dials attempted");
  assertEquals(dials.kind, "counter");
  assertEquals(dials.get(), 0);
  dials.labels().inc();
  dials.labels().inc(4);
  dials.labels({}).inc();
  assertEquals(dials.get(), 6);
  assert(dials.labels() instanceof Series, "a counter's series is a Series");
});

Deno.test("gauge: inc, dec and set", () => {
  const registry = new MetricsRegistry();
  const peers = registry.gauge("network_peers", "Connected peers");
  assertEquals(peers.kind, "gauge");
  const series = peers.labels();
  series.inc();
  series.inc(2);
  series.dec();
  assertEquals(peers.get(), 2);
  series.set(10);
  series.dec(3);
  assertEquals(peers.get(), 7);
});

Deno.test("labels: one series per distinct label values, the same object each time", () => {
  const registry = new MetricsRegistry();
  const bytes = registry.counter("network_bytes_sent_total", "Bytes sent", ["protocol", "dir"]);
  const yamuxOut = bytes.labels({ protocol: "yamux", dir: "out" });
  if (bytes.labels({ dir: "out", protocol: "yamux" }) !== yamuxOut) {
    throw new Error("label order must not matter");
  }
  yamuxOut.inc(100);
  bytes.labels({ protocol: "noise", dir: "out" }).inc(5);
  bytes.labels({ protocol: "yamux", dir: "in" }).inc(7);
  assertEquals(bytes.get({ protocol: "yamux", dir: "out" }), 100);
  assertEquals(bytes.get({ protocol: "noise", dir: "out" }), 5);
  assertEquals(bytes.get({ protocol: "yamux", dir: "in" }), 7);
  assertEquals(bytes.get({ protocol: "ping", dir: "in" }), 0);
  const entries = [...bytes.entries()].map((e) => [e.labels, e.value]);
  assertEquals(entries.slice(0, 3), [
    [{ protocol: "yamux", dir: "out" }, 100],
    [{ protocol: "noise", dir: "out" }, 5],
    [{ protocol: "yamux", dir: "in" }, 7],
  ]);
});

Deno.test("labels: a missing label is the empty string; undeclared labels are not kept", () => {
  const registry = new MetricsRegistry();
  const m = registry.counter("m_total", "m", ["a"]);
  m.labels({}).inc();
  m.labels({ a: "" }).inc();
  m.labels({ a: "x", extra: "ignored" }).inc();
  assertEquals([...m.entries()], [
    { labels: { a: "" }, value: 2 },
    { labels: { a: "x" }, value: 1 },
  ]);
});

Deno.test("registry: the same name returns the same metric (the same series), and find() too", () => {
  const registry = new MetricsRegistry();
  const a = registry.counter("network_streams_total", "Streams opened", ["protocol"]);
  const b = registry.counter("network_streams_total", "Streams opened", ["protocol"]);
  assert(a.labels({ protocol: "/a" }) === b.labels({ protocol: "/a" }), "one series");
  a.labels({ protocol: "/a" }).inc();
  b.labels({ protocol: "/a" }).inc(2);
  assertEquals([a.get({ protocol: "/a" }), b.get({ protocol: "/a" })], [3, 3]);
  const g = registry.gauge("network_open_streams", "Open streams");
  g.labels().set(7);
  assertEquals(registry.gauge("network_open_streams", "Open streams").get(), 7);
  const found = registry.find("network_streams_total");
  assert(found instanceof Metric, "find gives a Metric");
  assertEquals(found.get({ protocol: "/a" }), 3);
  assert(found.labels({ protocol: "/a" }) === a.labels({ protocol: "/a" }), "find: one series");
  assertEquals([found.name, found.help, found.kind], [
    "network_streams_total",
    "Streams opened",
    "counter",
  ]);
  assertEquals(registry.find("nope"), undefined);
});

Deno.test("registry: registering a name again as another kind throws", () => {
  const registry = new MetricsRegistry();
  registry.counter("x_total", "x");
  assertThrows(() => registry.gauge("x_total", "x"), TypeError);
  assertThrows(() => registry.histogram("x_total", "x"), TypeError);
  registry.gauge("y", "y");
  assertThrows(() => registry.counter("y", "y"), TypeError);
  registry.histogram("z_ms", "z");
  assertThrows(() => registry.counter("z_ms", "z"), TypeError);
  assertThrows(() => registry.scope({ network: "n" }).gauge("z_ms", "z"), TypeError);
  // The original is untouched.
  assertEquals(registry.find("x_total")?.kind, "counter");
});

Deno.test("registries are independent; defaultRegistry is a MetricsRegistry", () => {
  const a = new MetricsRegistry();
  const b = new MetricsRegistry();
  a.counter("c_total", "c").labels().inc(3);
  assertEquals(b.find("c_total"), undefined);
  if (!(defaultRegistry instanceof MetricsRegistry)) throw new Error("defaultRegistry");
});

Deno.test("render: HELP and TYPE lines, then one sample line per series", () => {
  const registry = new MetricsRegistry();
  registry.counter("network_dials_total", "Dials attempted", ["result"])
    .labels({ result: "ok" }).inc(3);
  registry.counter("network_dials_total", "Dials attempted", ["result"])
    .labels({ result: "refused" }).inc();
  registry.gauge("network_peers", "Connected peers").labels().set(2.5);
  registry.gauge("network_idle", "Registered, never set");
  assertEquals(
    registry.render(),
    [
      "# HELP network_dials_total Dials attempted",
      "# TYPE network_dials_total counter",
      'network_dials_total{result="ok"} 3',
      'network_dials_total{result="refused"} 1',
      "# HELP network_peers Connected peers",
      "# TYPE network_peers gauge",
      "network_peers 2.5",
      "# HELP network_idle Registered, never set",
      "# TYPE network_idle gauge",
      "",
    ].join("\n"),
  );
  const parsed = parseExposition(registry.render());
  assertEquals(parsed.samples.length, 3);
});

Deno.test("render: label values with backslash, quote and newline are escaped", () => {
  const registry = new MetricsRegistry();
  const nasty = 'C:\\peer "one"\nline two';
  registry.counter("network_errors_total", "Errors", ["peer", "code"])
    .labels({ peer: nasty, code: "X" }).inc();
  const text = registry.render();
  if (!text.includes('peer="C:\\\\peer \\"one\\"\\nline two"')) {
    throw new Error(`not escaped: ${text}`);
  }
  const parsed = parseExposition(text);
  assertEquals(parsed.samples, [
    { name: "network_errors_total", labels: { peer: nasty, code: "X" }, value: 1 },
  ]);
});

Deno.test("render: HELP text with backslash and newline is escaped", () => {
  const registry = new MetricsRegistry();
  const help = "Bytes per peer\nmeasured at C:\\stack";
  registry.counter("network_bytes_total", help).labels().inc();
  const text = registry.render();
  const parsed = parseExposition(text);
  assertEquals(parsed.help.get("network_bytes_total"), help);
  assertEquals(parsed.type.get("network_bytes_total"), "counter");
});

Deno.test("render: every metric a stack would record parses back to the values recorded", () => {
  const registry = new MetricsRegistry();
  const expected: { name: string; labels: Record<string, string>; value: number }[] = [];
  const protocols = ["/yamux/1.0.0", "/noise", "/ipfs/ping/1.0.0", 'we"ird\\'];
  for (const [i, protocol] of protocols.entries()) {
    registry.counter("network_streams_total", "Streams", ["protocol"]).labels({ protocol })
      .inc(i + 1);
    expected.push({ name: "network_streams_total", labels: { protocol }, value: i + 1 });
  }
  registry.gauge("network_rtt_seconds", "Last ping round trip").labels().set(0.0125);
  expected.push({ name: "network_rtt_seconds", labels: {}, value: 0.0125 });
  const parsed = parseExposition(registry.render());
  assertEquals(parsed.samples, expected);
  for (const name of parsed.type.keys()) {
    if (!METRIC_NAME.test(name)) throw new Error(`bad name ${name}`);
    if (!parsed.help.has(name)) throw new Error(`no HELP for ${name}`);
  }
});

Deno.test("histogram: each observation lands in the first bucket whose bound it does not exceed", () => {
  const registry = new MetricsRegistry();
  const latency = registry.histogram("validator_network_x_ms", "X latency", [], [1, 10, 100]);
  assertEquals(latency.kind, "histogram");
  assertEquals(latency.buckets, [1, 10, 100]);
  const series = latency.labels();
  assert(series instanceof HistogramSeries, "a histogram's series is a HistogramSeries");
  for (const value of [0.5, 1, 1.5, 10, 99, 100, 100.5, 5000]) series.observe(value);
  assertEquals(series.counts, [2, 2, 2, 2], "bounds are inclusive; the last count is above all");
  assertEquals(series.count, 8);
  assertEquals(series.sum, 0.5 + 1 + 1.5 + 10 + 99 + 100 + 100.5 + 5000);
  assertEquals(latency.get(), 8, "get() gives a histogram's count");
  assertEquals([...latency.entries()], [{ labels: {}, value: 8 }]);
  // Default buckets: latencies in ms, 50 us to 10 s.
  const defaulted = registry.histogram("validator_network_y_ms", "Y");
  assertEquals(defaulted.buckets, LATENCY_BUCKETS_MS);
  assertEquals([LATENCY_BUCKETS_MS[0], LATENCY_BUCKETS_MS.at(-1)], [0.05, 10_000]);
  for (let i = 1; i < LATENCY_BUCKETS_MS.length; i++) {
    assert(LATENCY_BUCKETS_MS[i] > LATENCY_BUCKETS_MS[i - 1], "ascending bounds");
  }
});

Deno.test("histogram: quantiles are the bound of the bucket they fall in; NaN when empty", () => {
  const series = new HistogramSeries([1, 10, 100]);
  assert(Number.isNaN(series.quantile(0.5)), "nothing observed");
  for (let i = 0; i < 90; i++) series.observe(0.5);
  for (let i = 0; i < 9; i++) series.observe(50);
  series.observe(1000);
  assertEquals(series.quantile(0.5), 1);
  assertEquals(series.quantile(0.9), 1);
  assertEquals(series.quantile(0.95), 100);
  assertEquals(series.quantile(0.99), 100);
  assertEquals(series.quantile(1), 100, "above every bound: the largest bound");
});

Deno.test("render: a histogram as cumulative buckets up to +Inf, then sum and count", () => {
  const registry = new MetricsRegistry();
  const latency = registry.histogram("validator_network_rtt_ms", "Round trips", ["peer"], [1, 10]);
  const a = latency.labels({ peer: "a" });
  a.observe(0.5);
  a.observe(5);
  a.observe(50);
  latency.labels({ peer: "b" }).observe(2);
  assertEquals(
    registry.render(),
    [
      "# HELP validator_network_rtt_ms Round trips",
      "# TYPE validator_network_rtt_ms histogram",
      'validator_network_rtt_ms_bucket{peer="a",le="1"} 1',
      'validator_network_rtt_ms_bucket{peer="a",le="10"} 2',
      'validator_network_rtt_ms_bucket{peer="a",le="+Inf"} 3',
      'validator_network_rtt_ms_sum{peer="a"} 55.5',
      'validator_network_rtt_ms_count{peer="a"} 3',
      'validator_network_rtt_ms_bucket{peer="b",le="1"} 0',
      'validator_network_rtt_ms_bucket{peer="b",le="10"} 1',
      'validator_network_rtt_ms_bucket{peer="b",le="+Inf"} 1',
      'validator_network_rtt_ms_sum{peer="b"} 2',
      'validator_network_rtt_ms_count{peer="b"} 1',
      "",
    ].join("\n"),
  );
  const parsed = parseExposition(registry.render());
  assertEquals(parsed.type.get("validator_network_rtt_ms"), "histogram");
  assertEquals(parsed.samples.length, 10);
});

Deno.test("scope: adds its labels to every metric declared through it and every series", () => {
  const registry = new MetricsRegistry();
  const testnet = registry.scope({ network: "testnet" });
  const bytes = testnet.counter("validator_network_bytes_total", "Bytes", ["direction"]);
  bytes.labels({ direction: "out" }).inc(10);
  testnet.gauge("validator_network_peers", "Peers").labels().set(3);
  testnet.histogram("validator_network_rtt_ms", "Round trips", [], [1]).labels().observe(0.5);
  assertEquals(bytes.get({ direction: "out" }), 10, "read back through the scope");
  assertEquals([...bytes.entries()], [{
    labels: { network: "testnet", direction: "out" },
    value: 10,
  }]);
  // The registry sees the label as any other.
  assertEquals(
    registry.find("validator_network_bytes_total")?.get({ network: "testnet", direction: "out" }),
    10,
  );
  const parsed = parseExposition(registry.render());
  assertEquals(parsed.samples.length, 2 + 4);
  for (const sample of parsed.samples) {
    assertEquals(sample.labels.network, "testnet", `${sample.name} has the network label`);
  }
  const text = registry.render();
  assert(
    text.includes('validator_network_bytes_total{network="testnet",direction="out"} 10'),
    text,
  );
  assert(text.includes('validator_network_peers{network="testnet"} 3'), text);
  assert(text.includes('validator_network_rtt_ms_count{network="testnet"} 1'), text);
});

Deno.test("scope: two scopes on one registry report apart", () => {
  const registry = new MetricsRegistry();
  const alpha = registry.scope({ network: "alpha" });
  const beta = registry.scope({ network: "beta" });
  const alphaStreams = alpha.counter("validator_network_streams_total", "Streams", ["protocol"]);
  const betaStreams = beta.counter("validator_network_streams_total", "Streams", ["protocol"]);
  alphaStreams.labels({ protocol: "/ping" }).inc(2);
  betaStreams.labels({ protocol: "/ping" }).inc(5);
  betaStreams.labels({ protocol: "/echo" }).inc();
  assertEquals(alphaStreams.get({ protocol: "/ping" }), 2);
  assertEquals(betaStreams.get({ protocol: "/ping" }), 5);
  assertEquals([...alphaStreams.entries()], [
    { labels: { network: "alpha", protocol: "/ping" }, value: 2 },
  ]);
  assertEquals([...betaStreams.entries()], [
    { labels: { network: "beta", protocol: "/ping" }, value: 5 },
    { labels: { network: "beta", protocol: "/echo" }, value: 1 },
  ]);
  // One family, three series.
  assertEquals(
    [...registry.find("validator_network_streams_total")!.entries()].map((e) => e.value),
    [2, 5, 1],
  );
  const samples = parseExposition(registry.render()).samples;
  assertEquals(samples, [
    {
      name: "validator_network_streams_total",
      labels: { network: "alpha", protocol: "/ping" },
      value: 2,
    },
    {
      name: "validator_network_streams_total",
      labels: { network: "beta", protocol: "/ping" },
      value: 5,
    },
    {
      name: "validator_network_streams_total",
      labels: { network: "beta", protocol: "/echo" },
      value: 1,
    },
  ]);
  // Gauges and histograms too.
  alpha.gauge("validator_network_peers", "Peers").labels().set(1);
  beta.gauge("validator_network_peers", "Peers").labels().set(4);
  alpha.histogram("validator_network_rtt_ms", "Rtt", [], [1]).labels().observe(3);
  assertEquals(alpha.gauge("validator_network_peers", "Peers").get(), 1);
  assertEquals(beta.gauge("validator_network_peers", "Peers").get(), 4);
  assertEquals(alpha.histogram("validator_network_rtt_ms", "Rtt", [], [1]).get(), 1);
  assertEquals(beta.histogram("validator_network_rtt_ms", "Rtt", [], [1]).get(), 0);
});

Deno.test("scope: a series cannot leave its scope by naming the scope's label", () => {
  const registry = new MetricsRegistry();
  const alpha = registry.scope({ network: "alpha" });
  const counter = alpha.counter("validator_network_x_total", "X", ["code"]);
  counter.labels({ network: "beta", code: "E" }).inc();
  assertEquals([...registry.find("validator_network_x_total")!.entries()], [
    { labels: { network: "alpha", code: "E" }, value: 1 },
  ]);
});

Deno.test('defaultMetrics records into defaultRegistry with network="default"; stack names share one prefix', () => {
  assertEquals(METRIC_PREFIX, "validator_network_");
  const name = `${METRIC_PREFIX}metrics_test_probe_total`;
  defaultMetrics.counter(name, "A probe of the default scope").labels().inc(3);
  assertEquals(defaultRegistry.find(name)?.get({ network: "default" }), 3);
  assert(defaultRegistry.render().includes(`${name}{network="default"} 3`));
});
