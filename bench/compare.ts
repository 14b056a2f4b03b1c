/**
 * Compares our stack (`cli.ts`) with js-libp2p and with raw Deno TCP, each
 * client and server in its own process over loopback TCP (and, for perf, with
 * raw TCP whose bytes node:crypto seals as Noise messages: the most any
 * Noise stack on node:crypto can do here):
 *
 * - perf: one `/perf/1.0.0` stream, upload then download (256 MiB each);
 * - ping: 5 000 32-byte round trips on one ping stream;
 * - connect: 300 sequential connections, each dial + handshake + muxer + one
 *   ping on the first stream + close.
 *
 * ```sh
 * deno task bench:compare            # full run
 * deno task bench:compare --quick    # 32 MiB, 1 000 pings, 50 connections
 * deno run -A bench/compare.ts --impl js-libp2p,raw --runs 3
 * deno task bench:compare --runs 5 --base ../before  # a change against a worktree of the commit before it
 * ```
 *
 * Options: `--quick`, `--perf-bytes N`, `--pings N`, `--connections N`,
 * `--runs N` (median of N runs, default 1), `--impl LIST` (default
 * `ours,js-libp2p,raw,sealed`), `--base DIR` (adds `base`: the `cli.ts` of
 * another checkout, with the ratio ours/base). With several runs the implementations take turns
 * (run 1 of each, then run 2 of each...), so a shared machine whose speed
 * drifts over a minute weighs on all of them alike. Each figure is timed as described in
 * `protocols/cli_contract.ts`. The pinned js-libp2p packages are installed
 * on first use (`bench/js_libp2p/install.ts`); `ours` is skipped with a note
 * when `cli.ts` is missing, `js-libp2p` when its packages cannot be installed.
 *
 * @module
 */

import { parseConnectLine, parsePerfLine, parsePingLine } from "../protocols/cli_contract.ts";
import {
  type Implementation,
  isAvailable,
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
  runs: 1,
  impls: ["ours", "js-libp2p", "raw", "sealed"],
};

/** `--quick` sizes: enough to see the shape in a few seconds. */
export const QUICK_COMPARE_OPTIONS: Readonly<Partial<CompareOptions>> = {
  perfBytes: 32 * 1024 * 1024,
  pings: 1_000,
  connections: 50,
};

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
  return {
    uploadMBps: perf.uploadMBps,
    downloadMBps: perf.downloadMBps,
    pingAvgUs: pings.avgUs,
    pingP50Us: pings.p50Us,
    connectionsPerSecond: connect.perSecond,
  };
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
];

function cell(value: number | undefined, unit: string): string {
  if (value === undefined) return "-";
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
    const ours = results.ours ? m.pick(results.ours) : undefined;
    const base = results.base ? m.pick(results.base) : undefined;
    const js = results["js-libp2p"] ? m.pick(results["js-libp2p"]) : undefined;
    const raw = results.raw ? m.pick(results.raw) : undefined;
    const sealed = results.sealed ? m.pick(results.sealed) : undefined;
    const r = ours !== undefined && js !== undefined && js !== 0 ? ours / js : undefined;
    const met = r === undefined || m.target === "-" ? "-" : meets(m, r) ? "yes" : "NO";
    return [
      m.name,
      m.better,
      cell(ours, m.unit),
      ...(hasBase ? [cell(base, m.unit), ratio(ours, base)] : []),
      cell(js, m.unit),
      ratio(ours, js),
      m.target,
      met,
      cell(raw, m.unit),
      ratio(ours, raw),
      cell(sealed, m.unit),
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
      `${options.connections} connections, median of ${options.runs} run(s), loopback TCP`,
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
  console.log(
    "\nratios are ours/other; 'better' says which direction wins. 'sealed' is raw TCP with " +
      "node:crypto ChaCha20-Poly1305 on every 64 KiB (perf only): the most a Noise stack on " +
      "that cipher can do. " +
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
