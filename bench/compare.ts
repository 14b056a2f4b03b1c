/**
 * Compares our stack (`cli.ts`) with js-libp2p and with raw Deno TCP, each
 * client and server in its own process over loopback TCP (and, for perf, with
 * raw TCP whose bytes node:crypto seals as Noise messages: the most any
 * Noise stack on node:crypto can do here):
 *
 * - perf: one `/perf/1.0.0` stream, upload then download (256 MiB each);
 * - ping: 5 000 32-byte round trips on one ping stream;
 * - connect: 300 sequential connections, each dial + handshake + muxer + one
 *   ping on the first stream + close;
 * - rpc: 5 000 requests of 64 bytes, echoed back, one in flight and then 32
 *   in flight at once (requests per second, and the median latency);
 * - send: 100 000 one-way DirectSend messages of 64 bytes (messages per
 *   second), then 2 000 of 64 KiB (MB/s), each run on one stream that the
 *   server answers with its count.
 *
 * ```sh
 * deno task bench:compare            # full run
 * deno task bench:compare --quick    # 32 MiB, 1 000 pings, 50 connections, 1 000 rpcs, 20 000 + 500 sends
 * deno run -A bench/compare.ts --impl js-libp2p,raw --runs 3
 * deno task bench:compare --runs 5 --base ../before  # a change against a worktree of the commit before it
 * ```
 *
 * Options: `--quick`, `--perf-bytes N`, `--pings N`, `--connections N`,
 * `--rpc-count N` (requests per rpc run), `--send-count N` (64-byte
 * messages), `--send-large-count N` (64 KiB messages),
 * `--runs N` (median of N runs, default 1), `--impl LIST` (default
 * `ours,js-libp2p,raw,sealed`), `--base DIR` (adds `base`: the `cli.ts` of
 * another checkout, with the ratio ours/base). With several runs the implementations take turns
 * (run 1 of each, then run 2 of each...), so a shared machine whose speed
 * drifts over a minute weighs on all of them alike. Each figure is timed as described in
 * `protocols/cli_contract.ts`. The pinned js-libp2p packages are installed
 * on first use (`bench/js_libp2p/install.ts`); `ours` is skipped with a note
 * when `cli.ts` is missing, `js-libp2p` when its packages cannot be installed.
 * An implementation that fails perf, ping or connect is left out of the
 * table; one whose `rpc` or `send` fails (a node that lacks the command yet
 * exits 2 on it) keeps its other figures, and its rpc or send rows read
 * `skipped`, with the reason printed under the table. `sealed` runs perf
 * only.
 *
 * @module
 */

import {
  parseConnectLine,
  parsePerfLine,
  parsePingLine,
  parseRpcLine,
  parseSendLine,
} from "../protocols/cli_contract.ts";
import {
  type Implementation,
  isAvailable,
  runClient,
  runClientOk,
  setBaseCheckout,
  startListener,
} from "./_process.ts";
import { ensureInstalled } from "./js_libp2p/install.ts";

/** Sizes of one comparison run. */
export interface CompareOptions {
  /** Bytes to upload and to download in the perf run. Default: 256 MiB. */
  perfBytes: number;
  /** Round trips on the one ping stream. Default: 5 000. */
  pings: number;
  /** Sequential connections. Default: 300. */
  connections: number;
  /** Requests per rpc run (each concurrency runs this many). Default: 5 000. */
  rpcCount: number;
  /** 64-byte DirectSend messages. Default: 100 000. */
  sendCount: number;
  /** 64 KiB DirectSend messages. Default: 2 000. */
  sendLargeCount: number;
  /** Runs per figure; the median is reported. Default: 1. */
  runs: number;
  /** Which implementations to run. Default: all four. */
  impls: Implementation[];
}

/** The full-size defaults. */
export const DEFAULT_COMPARE_OPTIONS: Readonly<CompareOptions> = {
  perfBytes: 256 * 1024 * 1024,
  pings: 5_000,
  connections: 300,
  rpcCount: 5_000,
  sendCount: 100_000,
  sendLargeCount: 2_000,
  runs: 1,
  impls: ["ours", "js-libp2p", "raw", "sealed"],
};

/** `--quick` sizes: enough to see the shape in a few seconds. */
export const QUICK_COMPARE_OPTIONS: Readonly<Partial<CompareOptions>> = {
  perfBytes: 32 * 1024 * 1024,
  pings: 1_000,
  connections: 50,
  rpcCount: 1_000,
  sendCount: 20_000,
  sendLargeCount: 500,
};

/** The size of each rpc request (and response). */
const RPC_BYTES = 64;
/** The small and the large DirectSend message. */
const SEND_SMALL_BYTES = 64;
const SEND_LARGE_BYTES = 64 * 1024;

/**
 * The figures that come from commands a node may not have yet (`rpc`,
 * `send`): a failure of one leaves its figure out, not the implementation.
 */
export type OptionalWork = "rpc c=1" | "rpc c=32" | "send 64 B" | "send 64 KiB";

/** The figures of one implementation. */
export interface Figures {
  /** Perf upload phase, MB/s. */
  uploadMBps: number;
  /** Perf download phase, MB/s. */
  downloadMBps: number;
  /** Mean ping round trip, us (not measured for `sealed`). */
  pingAvgUs?: number;
  /** Median ping round trip, us. */
  pingP50Us?: number;
  /** Sequential connections per second (not measured for `sealed`). */
  connectionsPerSecond?: number;
  /** RPC requests per second, one in flight (not measured for `sealed`). */
  rpc1PerSecond?: number;
  /** Median RPC latency, one in flight, us. */
  rpc1P50Us?: number;
  /** RPC requests per second, 32 in flight. */
  rpc32PerSecond?: number;
  /** Median RPC latency, 32 in flight, us. */
  rpc32P50Us?: number;
  /** 64-byte DirectSend messages per second. */
  sendSmallPerSecond?: number;
  /** 64 KiB DirectSend messages, MB/s. */
  sendLargeMBps?: number;
  /** Optional work that did not run or failed, and why. */
  skipped?: Partial<Record<OptionalWork, string>>;
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
}

/**
 * One run of every figure on one implementation: starts its listener, runs
 * its client once per figure, stops the listener.
 *
 * @example
 * ```ts
 * const raw = await measureOnce("raw", { ...DEFAULT_COMPARE_OPTIONS, ...QUICK_COMPARE_OPTIONS });
 * console.log(raw.pingAvgUs);
 * ```
 */
export async function measureOnce(
  impl: Implementation,
  options: CompareOptions,
): Promise<Figures> {
  await using node = await startListener(impl);
  const target = node.multiaddr;
  const bytes = String(options.perfBytes);
  const perf = parsePerfLine(
    await runClientOk(impl, [
      "perf",
      target,
      "--upload",
      bytes,
      "--download",
      bytes,
    ]),
  );
  if (!perf) throw new Error(`${impl}: no perf line`);
  if (impl === "sealed") {
    // Only perf seals anything; its ping and connect would be raw's again.
    return { uploadMBps: perf.uploadMBps, downloadMBps: perf.downloadMBps };
  }
  const pings = parsePingLine(
    await runClientOk(impl, ["ping", target, "--count", String(options.pings)]),
  );
  if (!pings) throw new Error(`${impl}: no ping line`);
  const connect = parseConnectLine(
    await runClientOk(impl, [
      "connect",
      target,
      "--count",
      String(options.connections),
    ]),
  );
  if (!connect) throw new Error(`${impl}: no connect line`);
  const figures: Figures = {
    uploadMBps: perf.uploadMBps,
    downloadMBps: perf.downloadMBps,
    pingAvgUs: pings.avgUs,
    pingP50Us: pings.p50Us,
    connectionsPerSecond: connect.perSecond,
  };
  const optional = new OptionalRuns(impl, figures);
  for (const concurrency of [1, 32] as const) {
    const rpc = await optional.run(
      `rpc c=${concurrency}`,
      [
        "rpc",
        target,
        "--count",
        String(options.rpcCount),
        "--concurrency",
        String(concurrency),
        "--bytes",
        String(RPC_BYTES),
      ],
      parseRpcLine,
    );
    if (concurrency === 1) {
      figures.rpc1PerSecond = rpc?.perSecond;
      figures.rpc1P50Us = rpc?.p50Us;
    } else {
      figures.rpc32PerSecond = rpc?.perSecond;
      figures.rpc32P50Us = rpc?.p50Us;
    }
  }
  const small = await optional.run(
    "send 64 B",
    ["send", target, "--count", String(options.sendCount), "--bytes", String(SEND_SMALL_BYTES)],
    parseSendLine,
  );
  figures.sendSmallPerSecond = small?.perSecond;
  const large = await optional.run(
    "send 64 KiB",
    [
      "send",
      target,
      "--count",
      String(options.sendLargeCount),
      "--bytes",
      String(SEND_LARGE_BYTES),
    ],
    parseSendLine,
  );
  figures.sendLargeMBps = large?.MBps;
  return figures;
}

/** The first or last non-empty line of a command's output, for a one-line reason. */
function oneLine(text: string, which: "first" | "last"): string {
  const lines = text.split("\n").map((l) => l.trim()).filter((l) => l !== "");
  const line = (which === "first" ? lines[0] : lines.at(-1)) ?? "";
  return line.length > 160 ? `${line.slice(0, 157)}...` : line;
}

/**
 * Runs the optional commands of one implementation: a command that fails
 * records why in `figures.skipped` instead of throwing, and once a command
 * exits 2 (bad usage: the node does not have it), its other runs are
 * skipped without starting the node again.
 */
class OptionalRuns {
  #impl: Implementation;
  #figures: Figures;
  /** Commands the node turned down with exit 2, and the reason. */
  #missing = new Map<string, string>();

  constructor(impl: Implementation, figures: Figures) {
    this.#impl = impl;
    this.#figures = figures;
  }

  /** Runs `args` and parses its line; undefined (and a reason recorded) when that fails. */
  async run<T>(
    work: OptionalWork,
    args: string[],
    parse: (output: string) => T | undefined,
  ): Promise<T | undefined> {
    const command = args[0];
    let reason = this.#missing.get(command);
    if (reason === undefined) {
      const r = await runClient(this.#impl, args);
      const parsed = r.code === 0 ? parse(r.stdout) : undefined;
      if (parsed !== undefined) return parsed;
      // Usage errors and uncaught exceptions both say what went wrong first.
      const output = oneLine(r.stderr, "first") || oneLine(r.stdout, "last");
      if (r.code === 2) {
        reason = `the ${this.#impl} node has no ${command} command (exit 2: ${output})`;
        this.#missing.set(command, reason);
      } else {
        reason = r.code === 0
          ? `no ${command} line in: ${oneLine(r.stdout, "last")}`
          : `${command} failed (exit ${r.code}): ${output}`;
      }
    }
    this.#figures.skipped = { ...this.#figures.skipped, [work]: reason };
    return undefined;
  }
}

/** The median of each figure over several runs. */
function medianFigures(runs: Figures[]): Figures {
  const of = (pick: (f: Figures) => number | undefined) => {
    const values = runs.map(pick).filter((v): v is number => v !== undefined);
    return values.length === 0 ? undefined : median(values);
  };
  return {
    uploadMBps: of((f) => f.uploadMBps)!,
    downloadMBps: of((f) => f.downloadMBps)!,
    pingAvgUs: of((f) => f.pingAvgUs),
    pingP50Us: of((f) => f.pingP50Us),
    connectionsPerSecond: of((f) => f.connectionsPerSecond),
    rpc1PerSecond: of((f) => f.rpc1PerSecond),
    rpc1P50Us: of((f) => f.rpc1P50Us),
    rpc32PerSecond: of((f) => f.rpc32PerSecond),
    rpc32P50Us: of((f) => f.rpc32P50Us),
    sendSmallPerSecond: of((f) => f.sendSmallPerSecond),
    sendLargeMBps: of((f) => f.sendLargeMBps),
    // A work skipped in every run stays skipped (with the first run's reason).
    skipped: Object.assign({}, ...runs.map((f) => f.skipped ?? {}).reverse()),
  };
}

/**
 * Measures one implementation `options.runs` times and returns the medians.
 * {@linkcode compare} interleaves implementations run by run instead, so
 * that a machine whose speed drifts does not favour whichever ran first.
 *
 * @example
 * ```ts
 * const raw = await measure("raw", { ...DEFAULT_COMPARE_OPTIONS, ...QUICK_COMPARE_OPTIONS });
 * console.log(raw.pingAvgUs);
 * ```
 */
export async function measure(
  impl: Implementation,
  options: CompareOptions,
): Promise<Figures> {
  const runs: Figures[] = [];
  for (let run = 0; run < options.runs; run++) {
    runs.push(await measureOnce(impl, options));
  }
  return medianFigures(runs);
}

/**
 * Every implementation of `options.impls`, interleaved: run 1 of each, then
 * run 2 of each, and so on; the medians per implementation. An
 * implementation that fails is reported through `onFailure` and left out.
 *
 * @example
 * ```ts
 * const results = await compare({ ...DEFAULT_COMPARE_OPTIONS, ...QUICK_COMPARE_OPTIONS });
 * console.log(formatTable(results));
 * ```
 */
export async function compare(
  options: CompareOptions,
  onFailure: (impl: Implementation, err: unknown) => void = () => {},
): Promise<Partial<Record<Implementation, Figures>>> {
  const runs = new Map<Implementation, Figures[]>();
  for (const impl of options.impls) runs.set(impl, []);
  for (let run = 0; run < options.runs; run++) {
    for (const impl of options.impls) {
      const done = runs.get(impl);
      if (done === undefined) continue;
      try {
        done.push(await measureOnce(impl, options));
      } catch (err) {
        onFailure(impl, err);
        runs.delete(impl);
      }
    }
  }
  const results: Partial<Record<Implementation, Figures>> = {};
  for (const [impl, figures] of runs) {
    if (figures.length > 0) results[impl] = medianFigures(figures);
  }
  return results;
}

interface Metric {
  name: string;
  better: "higher" | "lower";
  target: string;
  pick(f: Figures): number | undefined;
  unit: string;
  /** The optional work the figure comes from: its cell reads "skipped" when that did not run. */
  work?: OptionalWork;
}

const METRICS: Metric[] = [
  {
    name: "perf upload",
    better: "higher",
    target: ">= 2.5x",
    pick: (f) => f.uploadMBps,
    unit: "MB/s",
  },
  {
    name: "perf download",
    better: "higher",
    target: ">= 2.5x",
    pick: (f) => f.downloadMBps,
    unit: "MB/s",
  },
  {
    name: "ping rtt avg",
    better: "lower",
    target: "<= 0.45x",
    pick: (f) => f.pingAvgUs,
    unit: "us",
  },
  {
    name: "ping rtt p50",
    better: "lower",
    target: "-",
    pick: (f) => f.pingP50Us,
    unit: "us",
  },
  {
    name: "connections",
    better: "higher",
    target: ">= 3x",
    pick: (f) => f.connectionsPerSecond,
    unit: "/s",
  },
  {
    name: "rpc 64 B, 1 in flight",
    better: "higher",
    target: ">= 5x",
    pick: (f) => f.rpc1PerSecond,
    unit: "req/s",
    work: "rpc c=1",
  },
  {
    name: "rpc 64 B, 1 in flight, p50",
    better: "lower",
    target: "-",
    pick: (f) => f.rpc1P50Us,
    unit: "us",
    work: "rpc c=1",
  },
  {
    name: "rpc 64 B, 32 in flight",
    better: "higher",
    target: ">= 5x",
    pick: (f) => f.rpc32PerSecond,
    unit: "req/s",
    work: "rpc c=32",
  },
  {
    name: "rpc 64 B, 32 in flight, p50",
    better: "lower",
    target: "-",
    pick: (f) => f.rpc32P50Us,
    unit: "us",
    work: "rpc c=32",
  },
  {
    name: "send 64 B",
    better: "higher",
    target: ">= 10x",
    pick: (f) => f.sendSmallPerSecond,
    unit: "msg/s",
    work: "send 64 B",
  },
  {
    name: "send 64 KiB",
    better: "higher",
    target: ">= 2x",
    pick: (f) => f.sendLargeMBps,
    unit: "MB/s",
    work: "send 64 KiB",
  },
];

function cell(value: number | undefined, unit: string, skipped = false): string {
  if (value === undefined) return skipped ? "skipped" : "-";
  return `${value >= 100 ? value.toFixed(0) : value.toFixed(1)} ${unit}`;
}

function ratio(a: number | undefined, b: number | undefined): string {
  return a === undefined || b === undefined || b === 0 ? "-" : `${(a / b).toFixed(2)}x`;
}

function meets(m: Metric, r: number): boolean {
  const [op, text] = m.target.split(" ");
  const goal = Number(text.replace("x", ""));
  return op === ">=" ? r >= goal : r <= goal;
}

/**
 * Renders the comparison table (plain text, aligned columns).
 *
 * @example
 * ```ts
 * console.log(formatTable({ raw: rawFigures }));
 * ```
 */
export function formatTable(
  results: Partial<Record<Implementation, Figures>>,
): string {
  const hasBase = results.base !== undefined;
  const header = [
    "metric",
    "better",
    "ours",
    ...(hasBase ? ["base", "ours/base"] : []),
    "js-libp2p",
    "ours/js",
    "target",
    "met",
    "raw floor",
    "ours/raw",
    "sealed",
    "ours/sealed",
  ];
  const rows = METRICS.map((m) => {
    const value = (impl: Implementation) => {
      const f = results[impl];
      return f ? m.pick(f) : undefined;
    };
    const show = (impl: Implementation) =>
      cell(
        value(impl),
        m.unit,
        m.work !== undefined && results[impl]?.skipped?.[m.work] !== undefined,
      );
    const ours = value("ours");
    const base = value("base");
    const js = value("js-libp2p");
    const raw = value("raw");
    const sealed = value("sealed");
    const r = ours !== undefined && js !== undefined && js !== 0 ? ours / js : undefined;
    const met = r === undefined || m.target === "-" ? "-" : meets(m, r) ? "yes" : "NO";
    return [
      m.name,
      m.better,
      show("ours"),
      ...(hasBase ? [show("base"), ratio(ours, base)] : []),
      show("js-libp2p"),
      ratio(ours, js),
      m.target,
      met,
      show("raw"),
      ratio(ours, raw),
      show("sealed"),
      ratio(ours, sealed),
    ];
  });
  const widths = header.map((_, i) => Math.max(...[header, ...rows].map((row) => row[i].length)));
  const line = (row: string[]) => row.map((c, i) => c.padEnd(widths[i])).join("  ").trimEnd();
  return [
    line(header),
    line(widths.map((w) => "-".repeat(w))),
    ...rows.map(line),
  ].join("\n");
}

function parseOptions(argv: string[]): CompareOptions {
  const options: CompareOptions = { ...DEFAULT_COMPARE_OPTIONS };
  const count = (name: string, text: string | undefined): number => {
    const n = Number(text);
    if (!Number.isSafeInteger(n) || n <= 0) {
      throw new Error(`${name}: not a positive count`);
    }
    return n;
  };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    switch (arg) {
      case "--quick":
        Object.assign(options, QUICK_COMPARE_OPTIONS);
        break;
      case "--perf-bytes":
        options.perfBytes = count(arg, argv[++i]);
        break;
      case "--pings":
        options.pings = count(arg, argv[++i]);
        break;
      case "--connections":
        options.connections = count(arg, argv[++i]);
        break;
      case "--rpc-count":
        options.rpcCount = count(arg, argv[++i]);
        break;
      case "--send-count":
        options.sendCount = count(arg, argv[++i]);
        break;
      case "--send-large-count":
        options.sendLargeCount = count(arg, argv[++i]);
        break;
      case "--runs":
        options.runs = count(arg, argv[++i]);
        break;
      case "--impl":
        options.impls = (argv[++i] ?? "").split(",").map((s) => {
          if (
            s !== "ours" && s !== "base" && s !== "js-libp2p" && s !== "raw" && s !== "sealed"
          ) {
            throw new Error(`unknown impl ${s}`);
          }
          return s;
        });
        break;
      case "--base":
        setBaseCheckout(argv[++i] ?? "");
        if (!options.impls.includes("base")) options.impls = [...options.impls, "base"];
        break;
      default:
        throw new Error(`unknown option ${arg}`);
    }
  }
  return options;
}

async function main(): Promise<void> {
  const options = parseOptions(Deno.args);
  console.log(
    `compare: perf ${options.perfBytes} B each way, ${options.pings} pings, ` +
      `${options.connections} connections, ${options.rpcCount} rpcs of ${RPC_BYTES} B ` +
      `(1 and 32 in flight), ${options.sendCount} sends of ${SEND_SMALL_BYTES} B and ` +
      `${options.sendLargeCount} of ${SEND_LARGE_BYTES} B, median of ${options.runs} run(s), ` +
      `loopback TCP`,
  );
  const available: Implementation[] = [];
  for (const impl of options.impls) {
    if (impl === "js-libp2p") {
      try {
        await ensureInstalled();
      } catch (err) {
        console.log(`skipping js-libp2p: ${err instanceof Error ? err.message : String(err)}`);
        continue;
      }
    }
    if (await isAvailable(impl)) {
      available.push(impl);
    } else {
      console.log(
        impl === "ours"
          ? "skipping ours: cli.ts does not exist yet"
          : impl === "base"
          ? "skipping base: give --base DIR, a checkout with a cli.ts"
          : `skipping ${impl}: bench/js_libp2p/node_modules is missing`,
      );
    }
  }
  console.log(`measuring ${available.join(", ")}, interleaved run by run ...`);
  const results = await compare(
    { ...options, impls: available },
    (impl, err) => {
      console.log(
        `${impl} failed: ${err instanceof Error ? err.message : String(err)}`,
      );
    },
  );
  console.log();
  console.log(formatTable(results));
  for (const [impl, figures] of Object.entries(results)) {
    for (const [work, reason] of Object.entries(figures.skipped ?? {})) {
      console.log(`${impl}: ${work} skipped: ${reason}`);
    }
  }
  console.log(
    "\nratios are ours/other; 'better' says which direction wins. 'sealed' is raw TCP with " +
      "node:crypto ChaCha20-Poly1305 on every 64 KiB (perf only): the most a Noise stack on " +
      "that cipher can do. rpc and send are not measured for 'sealed'. " +
      "Figures are from one shared machine; rerun with --runs 3 for medians.",
  );
}

if (import.meta.main) {
  try {
    await main();
  } catch (err) {
    console.error(`error: ${err instanceof Error ? err.message : String(err)}`);
    Deno.exit(1);
  }
}
