/**
 * Counters and gauges with labels, and their rendering in the Prometheus text
 * exposition format (version 0.0.4): `# HELP name text`, `# TYPE name kind`,
 * then `name{label="value",...} number` per series; in HELP text `\` and
 * newline are escaped, in label values `\`, `"` and newline are.
 */

import { defaultRegistry, Metric, MetricsRegistry } from "../netcore/metrics.ts";
import { assertEquals, assertThrows } from "./_assert.ts";

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
  dials.inc();
  dials.inc(4);
  dials.labels().inc();
  assertEquals(dials.get(), 6);
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
  bytes.inc(5, { protocol: "noise", dir: "out" });
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

Deno.test("registry: the same name returns the same metric", () => {
  const registry = new MetricsRegistry();
  const a = registry.counter("network_streams_total", "Streams opened", ["protocol"]);
  const b = registry.counter("network_streams_total", "Streams opened", ["protocol"]);
  if (a !== b) throw new Error("expected the same counter");
  const g = registry.gauge("network_open_streams", "Open streams");
  if (registry.gauge("network_open_streams", "Open streams") !== g) {
    throw new Error("expected the same gauge");
  }
  if (registry.find("network_streams_total") !== a) throw new Error("find failed");
  assertEquals(registry.find("nope"), undefined);
  if (!(a instanceof Metric)) throw new Error("a Metric");
});

Deno.test("registry: registering a name again as the other kind throws", () => {
  const registry = new MetricsRegistry();
  registry.counter("x_total", "x");
  assertThrows(() => registry.gauge("x_total", "x"), TypeError);
  registry.gauge("y", "y");
  assertThrows(() => registry.counter("y", "y"), TypeError);
  // The original is untouched.
  assertEquals(registry.find("x_total")?.kind, "counter");
});

Deno.test("registries are independent; defaultRegistry is a MetricsRegistry", () => {
  const a = new MetricsRegistry();
  const b = new MetricsRegistry();
  a.counter("c_total", "c").inc(3);
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
  registry.counter("network_bytes_total", help).inc();
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
    registry.counter("network_streams_total", "Streams", ["protocol"]).inc(i + 1, { protocol });
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
