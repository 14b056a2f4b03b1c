/**
 * The command-line contract that `cli.ts` and the reference nodes under
 * `bench/` (js-libp2p, raw TCP) all speak: the arguments they take, the result
 * lines they print and the parsers scripts (`bench/compare.ts`, the tests) use
 * to read those lines back. The lines are parsed by scripts: keep them
 * byte for byte.
 *
 * ```text
 * listen [--listen MULTIADDR]             -> "listening <multiaddr>[/p2p/<peer id>]" per address
 * ping MULTIADDR [--count N]              -> "ping: N rtt avg X us p50 X us p99 X us"
 * echo MULTIADDR --bytes N                -> "echo: N bytes in X ms"
 * perf MULTIADDR --upload N --download N  -> "perf: upload X MB/s download Y MB/s"
 * connect MULTIADDR [--count N]           -> "connect: N connections X/s"
 * rpc MULTIADDR --count N --concurrency C --bytes B
 *                                         -> "rpc: N requests X req/s p50 Y us p99 Z us"
 * send MULTIADDR --count N --bytes B      -> "send: N messages X msg/s Y MB/s"
 * ```
 *
 * `listen` serves every client command: ping, perf, echo, an RPC protocol
 * whose response is the request's bytes, and a DirectSend protocol that
 * counts the messages of a stream and answers the count when the client
 * ends the stream.
 *
 * Perf phases are timed the same way everywhere: upload runs from the first
 * byte the client sends to the first byte of the server's reply (the server
 * only replies after it has drained the whole upload and seen the client's
 * half-close); download runs from that first reply byte to the server's
 * end-of-stream. MB is 10^6 bytes.
 *
 * RPC keeps C requests in flight (a new one leaves as soon as one completes)
 * until N have completed; each request is B bytes, the server echoes them back
 * as the response, and the client checks each response against its request.
 * The clock starts once the client is connected (dialing is not timed) and
 * stops at the last response: req/s is N over that time. A request's latency
 * runs from its send (a node that opens a stream per request opens it inside
 * that time) to the end of its response; p50 and p99 are taken as ping's are
 * ({@linkcode summarisePings}).
 *
 * DirectSend sends N one-way messages of B bytes, then ends its sending; the
 * server, which counts the messages, answers the count. The clock starts
 * once the client is connected and stops when the count arrives: msg/s is N
 * over that time and MB/s is N * B / 10^6 over it. A client whose count
 * comes back different from N prints no line and exits non-zero.
 *
 * @example
 * ```ts
 * import { formatEchoLine, parseEchoLine } from "./cli_contract.ts";
 *
 * const line = formatEchoLine(1000, 2.5); // "echo: 1000 bytes in 2.500 ms"
 * console.log(parseEchoLine(line)); // { bytes: 1000, ms: 2.5 }
 * ```
 *
 * @module
 */

/** A parsed command line: the command, its positional target and its `--name value` options. */
export interface NodeArgs {
  /** The sub-command: listen, ping, echo, perf, connect, rpc or send. */
  command: string;
  /** The multiaddr to dial, for the client commands. */
  target?: string;
  /** Every `--name value` (or `--name=value`); the last one when a name repeats. */
  options: Map<string, string>;
  /** Every value of each option, in order (for repeatable ones such as `--listen`). */
  repeated: Map<string, string[]>;
}

/**
 * Parses `COMMAND [TARGET] [--name value]...`.
 *
 * @throws {Error} when an option has no value or a second positional argument follows the target.
 * @example
 * ```ts
 * import { numberOption, parseNodeArgs } from "./cli_contract.ts";
 *
 * const args = parseNodeArgs(["ping", "/ip4/127.0.0.1/tcp/1", "--count", "3"]);
 * console.log(args.target, numberOption(args, "count", 1)); // /ip4/127.0.0.1/tcp/1 3
 * ```
 */
export function parseNodeArgs(argv: readonly string[]): NodeArgs {
  const [command = "", ...rest] = argv;
  const options = new Map<string, string>();
  const repeated = new Map<string, string[]>();
  let target: string | undefined;
  for (let i = 0; i < rest.length; i++) {
    const arg = rest[i];
    if (arg.startsWith("--")) {
      const eq = arg.indexOf("=");
      const name = eq > 0 ? arg.slice(2, eq) : arg.slice(2);
      const value = eq > 0 ? arg.slice(eq + 1) : rest[++i];
      if (value === undefined) throw new Error(`--${name} needs a value`);
      options.set(name, value);
      repeated.set(name, [...(repeated.get(name) ?? []), value]);
    } else if (target === undefined) {
      target = arg;
    } else {
      throw new Error(`unexpected argument ${arg}`);
    }
  }
  return { command, target, options, repeated };
}

/**
 * Reads a non-negative integer option, or `fallback` when absent.
 *
 * @throws {Error} when the option is absent and has no fallback, or is not a count.
 * @example
 * ```ts
 * import { numberOption, parseNodeArgs } from "./cli_contract.ts";
 *
 * numberOption(parseNodeArgs(["perf", "x", "--upload", "10"]), "upload", 0); // 10
 * ```
 */
export function numberOption(
  args: NodeArgs,
  name: string,
  fallback?: number,
): number {
  const text = args.options.get(name);
  if (text === undefined) {
    if (fallback === undefined) throw new Error(`--${name} is required`);
    return fallback;
  }
  const value = Number(text);
  if (!Number.isSafeInteger(value) || value < 0) {
    throw new Error(`--${name}: not a count: ${text}`);
  }
  return value;
}

/** Latency summary of a ping run, in microseconds. */
export interface PingResult {
  /** How many round trips were measured. */
  count: number;
  /** Mean round-trip time, us. */
  avgUs: number;
  /** Median round-trip time, us (absent when the line did not carry it). */
  p50Us?: number;
  /** 99th percentile round-trip time, us (absent when the line did not carry it). */
  p99Us?: number;
}

/**
 * Summarises round-trip samples taken in milliseconds (`performance.now()`).
 *
 * @example
 * ```ts
 * import { summarisePings } from "./cli_contract.ts";
 *
 * summarisePings([0.1, 0.2, 0.3]).avgUs; // 200
 * ```
 */
export function summarisePings(samplesMs: readonly number[]): PingResult {
  const sorted = [...samplesMs].sort((a, b) => a - b);
  const at = (q: number) => sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))];
  const sum = sorted.reduce((a, b) => a + b, 0);
  return {
    count: sorted.length,
    avgUs: sorted.length === 0 ? 0 : (sum / sorted.length) * 1000,
    p50Us: sorted.length === 0 ? 0 : at(0.5) * 1000,
    p99Us: sorted.length === 0 ? 0 : at(0.99) * 1000,
  };
}

/**
 * Formats the `ping:` result line.
 *
 * @example
 * ```ts
 * import { formatPingLine } from "./cli_contract.ts";
 *
 * formatPingLine({ count: 1, avgUs: 80, p50Us: 80, p99Us: 80 });
 * // "ping: 1 rtt avg 80.0 us p50 80.0 us p99 80.0 us"
 * ```
 */
export function formatPingLine(r: PingResult): string {
  return `ping: ${r.count} rtt avg ${r.avgUs.toFixed(1)} us p50 ${(r.p50Us ?? 0).toFixed(1)} us` +
    ` p99 ${(r.p99Us ?? 0).toFixed(1)} us`;
}

/**
 * Formats the `perf:` result line from byte counts and phase durations.
 *
 * @example
 * ```ts
 * import { formatPerfLine } from "./cli_contract.ts";
 *
 * formatPerfLine(1e6, 1, 1e6, 1); // "perf: upload 1000.00 MB/s download 1000.00 MB/s"
 * ```
 */
export function formatPerfLine(
  up: number,
  upMs: number,
  down: number,
  downMs: number,
): string {
  return `perf: upload ${mbps(up, upMs).toFixed(2)} MB/s download ${
    mbps(down, downMs).toFixed(2)
  } MB/s`;
}

function mbps(bytes: number, ms: number): number {
  if (bytes === 0) return 0;
  return bytes / 1e6 / (Math.max(ms, 1e-3) / 1000);
}

function perSecond(count: number, ms: number): number {
  return count / (Math.max(ms, 1e-3) / 1000);
}

/**
 * Formats the `connect:` result line.
 *
 * @example
 * ```ts
 * import { formatConnectLine } from "./cli_contract.ts";
 *
 * formatConnectLine(10, 100); // "connect: 10 connections 100.0/s"
 * ```
 */
export function formatConnectLine(count: number, ms: number): string {
  return `connect: ${count} connections ${perSecond(count, ms).toFixed(1)}/s`;
}

/**
 * Formats the `echo:` result line.
 *
 * @example
 * ```ts
 * import { formatEchoLine } from "./cli_contract.ts";
 *
 * formatEchoLine(5, 1.5); // "echo: 5 bytes in 1.500 ms"
 * ```
 */
export function formatEchoLine(bytes: number, ms: number): string {
  return `echo: ${bytes} bytes in ${ms.toFixed(3)} ms`;
}

/**
 * Finds and parses the `ping:` line in a node's output.
 *
 * @example
 * ```ts
 * import { parsePingLine } from "./cli_contract.ts";
 *
 * parsePingLine("ping: 3 rtt avg 80 us")?.avgUs; // 80
 * ```
 */
export function parsePingLine(output: string): PingResult | undefined {
  const m = output.match(
    /^ping: (\d+) rtt avg ([\d.]+) us(?: p50 ([\d.]+) us p99 ([\d.]+) us)?/m,
  );
  if (!m) return undefined;
  return {
    count: Number(m[1]),
    avgUs: Number(m[2]),
    p50Us: m[3] === undefined ? undefined : Number(m[3]),
    p99Us: m[4] === undefined ? undefined : Number(m[4]),
  };
}

/** Throughput of a perf run, MB/s (10^6 bytes). */
export interface PerfResult {
  /** Upload phase throughput. */
  uploadMBps: number;
  /** Download phase throughput. */
  downloadMBps: number;
}

/**
 * Finds and parses the `perf:` line.
 *
 * @example
 * ```ts
 * import { parsePerfLine } from "./cli_contract.ts";
 *
 * parsePerfLine("perf: upload 1.5 MB/s download 2 MB/s")?.downloadMBps; // 2
 * ```
 */
export function parsePerfLine(output: string): PerfResult | undefined {
  const m = output.match(
    /^perf: upload ([\d.]+) MB\/s download ([\d.]+) MB\/s/m,
  );
  return m ? { uploadMBps: Number(m[1]), downloadMBps: Number(m[2]) } : undefined;
}

/**
 * Finds and parses the `connect:` line; returns connections per second.
 *
 * @example
 * ```ts
 * import { parseConnectLine } from "./cli_contract.ts";
 *
 * parseConnectLine("connect: 300 connections 150.5/s"); // { count: 300, perSecond: 150.5 }
 * ```
 */
export function parseConnectLine(
  output: string,
): { count: number; perSecond: number } | undefined {
  const m = output.match(/^connect: (\d+) connections ([\d.]+)\/s/m);
  return m ? { count: Number(m[1]), perSecond: Number(m[2]) } : undefined;
}

/**
 * Finds and parses the `echo:` line.
 *
 * @example
 * ```ts
 * import { parseEchoLine } from "./cli_contract.ts";
 *
 * parseEchoLine("echo: 5 bytes in 1.5 ms"); // { bytes: 5, ms: 1.5 }
 * ```
 */
export function parseEchoLine(
  output: string,
): { bytes: number; ms: number } | undefined {
  const m = output.match(/^echo: (\d+) bytes in ([\d.]+) ms/m);
  return m ? { bytes: Number(m[1]), ms: Number(m[2]) } : undefined;
}

/** Throughput and latency of an rpc run. */
export interface RpcResult {
  /** How many requests completed. */
  count: number;
  /** Requests completed per second over the whole run. */
  perSecond: number;
  /** Median request latency, us. */
  p50Us: number;
  /** 99th percentile request latency, us. */
  p99Us: number;
}

/**
 * Formats the `rpc:` result line from each request's latency and the time of
 * the whole run, both in milliseconds (`performance.now()`); the count is
 * the number of latencies.
 *
 * @example
 * ```ts
 * import { formatRpcLine } from "./cli_contract.ts";
 *
 * formatRpcLine([0.1, 0.2], 0.25);
 * // "rpc: 2 requests 8000.0 req/s p50 200.0 us p99 200.0 us"
 * ```
 */
export function formatRpcLine(latenciesMs: readonly number[], elapsedMs: number): string {
  const { count, p50Us = 0, p99Us = 0 } = summarisePings(latenciesMs);
  return `rpc: ${count} requests ${perSecond(count, elapsedMs).toFixed(1)} req/s` +
    ` p50 ${p50Us.toFixed(1)} us p99 ${p99Us.toFixed(1)} us`;
}

/**
 * Finds and parses the `rpc:` line.
 *
 * @example
 * ```ts
 * import { parseRpcLine } from "./cli_contract.ts";
 *
 * parseRpcLine("rpc: 2 requests 8000.0 req/s p50 200.0 us p99 200.0 us");
 * // { count: 2, perSecond: 8000, p50Us: 200, p99Us: 200 }
 * ```
 */
export function parseRpcLine(output: string): RpcResult | undefined {
  const m = output.match(
    /^rpc: (\d+) requests ([\d.]+) req\/s p50 ([\d.]+) us p99 ([\d.]+) us/m,
  );
  return m
    ? { count: Number(m[1]), perSecond: Number(m[2]), p50Us: Number(m[3]), p99Us: Number(m[4]) }
    : undefined;
}

/** Throughput of a DirectSend run. */
export interface SendResult {
  /** How many messages the server counted. */
  count: number;
  /** Messages per second. */
  perSecond: number;
  /** Message bytes (without framing) per second, MB/s (10^6 bytes). */
  MBps: number;
}

/**
 * Formats the `send:` result line from the message count, the size of each
 * message and the time of the whole run in milliseconds.
 *
 * @example
 * ```ts
 * import { formatSendLine } from "./cli_contract.ts";
 *
 * formatSendLine(1000, 1000, 10); // "send: 1000 messages 100000.0 msg/s 100.00 MB/s"
 * ```
 */
export function formatSendLine(count: number, messageBytes: number, ms: number): string {
  return `send: ${count} messages ${perSecond(count, ms).toFixed(1)} msg/s ${
    mbps(count * messageBytes, ms).toFixed(2)
  } MB/s`;
}

/**
 * Finds and parses the `send:` line.
 *
 * @example
 * ```ts
 * import { parseSendLine } from "./cli_contract.ts";
 *
 * parseSendLine("send: 1000 messages 100000.0 msg/s 100.00 MB/s");
 * // { count: 1000, perSecond: 100000, MBps: 100 }
 * ```
 */
export function parseSendLine(output: string): SendResult | undefined {
  const m = output.match(/^send: (\d+) messages ([\d.]+) msg\/s ([\d.]+) MB\/s/m);
  return m ? { count: Number(m[1]), perSecond: Number(m[2]), MBps: Number(m[3]) } : undefined;
}

/** The `priority` command's result: the high-priority round trips under a low-priority bulk transfer. */
export interface PriorityResult {
  /** High-priority requests measured. */
  count: number;
  /** Median round trip, us. */
  p50Us: number;
  /** 99th percentile round trip, us. */
  p99Us: number;
  /** Whether the sender's yamux served lanes by priority (`prioritized`) or first in, first out (`fifo`). */
  mode: "prioritized" | "fifo";
}

/**
 * The `priority` command's line: `priority: N requests p50 X us p99 Y us prioritized|fifo`.
 *
 * @example
 * ```ts
 * import { formatPriorityLine } from "./cli_contract.ts";
 * formatPriorityLine([0.4, 0.5], "fifo"); // "priority: 2 requests p50 500.0 us p99 500.0 us fifo"
 * ```
 */
export function formatPriorityLine(
  latenciesMs: readonly number[],
  mode: "prioritized" | "fifo",
): string {
  const { count, p50Us = 0, p99Us = 0 } = summarisePings(latenciesMs);
  return `priority: ${count} requests p50 ${p50Us.toFixed(1)} us p99 ${
    p99Us.toFixed(1)
  } us ${mode}`;
}

/**
 * Reads a `priority` line back.
 *
 * @example
 * ```ts
 * import { parsePriorityLine } from "./cli_contract.ts";
 * parsePriorityLine("priority: 2 requests p50 500.0 us p99 500.0 us fifo")?.p99Us; // 500
 * ```
 */
export function parsePriorityLine(output: string): PriorityResult | undefined {
  const m = /^priority: (\d+) requests p50 ([\d.]+) us p99 ([\d.]+) us (prioritized|fifo)$/m.exec(
    output,
  );
  if (m === null) return undefined;
  return {
    count: Number(m[1]),
    p50Us: Number(m[2]),
    p99Us: Number(m[3]),
    mode: m[4] as "prioritized" | "fifo",
  };
}
