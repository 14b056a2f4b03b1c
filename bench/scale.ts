/**
 * Scale: N validators in one process, each a `ValidatorNetwork` (Noise IK,
 * yamux, the connectivity manager, discovery, health checks), over the
 * memory transport or TCP loopback. One row per (transport, N):
 *
 * - **mesh**: from telling every node the validator set (with everyone's
 *   address, once all listen) to every node having N - 1 peers;
 * - **quiet after**: from the full mesh until the process idles (under a
 *   tenth of a CPU for three half-seconds in a row): discovery goes on
 *   exchanging records after the mesh is full. The runs below start then,
 *   so they measure the messages alone;
 * - **1 KiB p50 / p99**, **1 MiB p50 / p99**: delivery latency of a
 *   broadcast from node 0 to all others over a DirectSend handle
 *   (`net.register(protocol, { kind: "direct-send" })`,
 *   `handle.broadcast(bytes)`), one broadcast at a time (the next leaves
 *   once every receiver has the previous one; 200 of 1 KiB, 5 to 30 of 1
 *   MiB): the send time travels in the payload, each receiver takes the
 *   difference when its handle's `events` yields the message; percentiles
 *   over every (broadcast, receiver);
 * - **1 KiB msgs/s**: node 0 broadcasts 1 KiB in a loop (256 broadcasts in
 *   flight) for `--duration` seconds; deliveries at all receivers, divided
 *   by the time from the first send to the last delivery;
 * - **1 MiB MB/s**: node 0 broadcasts 1 MiB messages back to back (4 in
 *   flight; 512 MiB worth, 8 to 128 of them, after 4 untimed ones), bytes
 *   delivered at all receivers per second (MB = 10^6 bytes); receivers
 *   give each message's buffer back (`release()`) once they read it;
 * - **% ceiling**: that throughput as a share of the in-process cipher
 *   ceiling (below).
 *
 * The cipher ceiling. Every byte delivered is sealed once (by the sender,
 * for that peer's connection) and opened once (by the receiver), both on
 * this process's one JavaScript thread, with ChaCha20-Poly1305 through the
 * `native` backend (`node:crypto`). Measured in each row's process as
 * `bench/noise_bench.ts` does: `CipherState` encrypt and decrypt of 64 KiB
 * Noise messages (65 519 plaintext bytes each), seal alone, then seal and
 * open in turn:
 *
 * ```text
 * seal    = plaintext bytes sealed per second (one end's speed)
 * open    = plaintext bytes opened per second (the other end's)
 * ceiling = 1 / (1/seal + 1/open)  = the seal+open speed of a message, about one end's speed / 2
 * share   = delivered MB/s / ceiling
 * ```
 *
 * Nothing else (framing, copies, allocation, yamux, DirectSend, the event
 * loop) counts in the ceiling, so no stack in one process reaches it; the
 * issue's target is 50 % for 1 MiB to 99 peers.
 *
 * Timeouts are those of the issue (`backoffInitial` 200 ms, `backoffMax` 2
 * s, `dialGrace` 250 ms), with `limits` raised for one address (every node
 * is 127.0.0.1), and discovery's refresh every 10 minutes instead of 30 s
 * (`--discovery-refresh MS` to change it): with every validator in one
 * process, a refresh round is every node pushing its digest to every other
 * (N^2 pushes of N records at once), which at N = 100 takes the process's
 * one thread for seconds and would land in the middle of the runs.
 *
 * ```sh
 * deno run -A bench/scale.ts                                        # N = 4, 16, 64, 100; memory and tcp
 * deno run -A bench/scale.ts --nodes 4,16 --transport memory,tcp
 * deno run -A bench/scale.ts --nodes 100 --transport tcp --duration 5
 * # One row in this process, profiled; --trace prints when the throughput run starts and ends:
 * deno run -A --cpu-prof --cpu-prof-dir=/tmp/prof bench/scale.ts --child memory:100 --only throughput --trace
 * deno run --allow-read bench/profile_summary.ts /tmp/prof/*.cpuprofile
 * ```
 *
 * Options: `--nodes LIST`, `--transport LIST` (`memory`, `tcp`),
 * `--duration S` (the 1 KiB saturation run, default 3), `--only
 * throughput` (the mesh and the 1 MiB throughput run only),
 * `--large-count N` (1 MiB broadcasts), `--discovery-refresh MS`. Each
 * (transport, N) runs in a process of its own (`--child transport:N`), in
 * the order given, so that one's garbage and sockets do not weigh on the
 * next. TCP with N = 100 opens 4 950 connections (9 900 sockets in the
 * process): `ulimit -n` must allow about 10 000.
 *
 * @module
 */

import process from "node:process";
import { MemoryNetwork } from "../memsocket/mod.ts";
import { Logger } from "../netcore/log.ts";
import { MetricsRegistry } from "../netcore/metrics.ts";
import { CipherState } from "../netcore/noise/cipher_state.ts";
import { getCryptoBackend } from "../netcore/noise/crypto.ts";
import type { DirectSendHandle } from "../validator/protocol_handle.ts";
import { ValidatorKeys } from "../validator/validator_keys.ts";
import { ValidatorNetwork } from "../validator/validator_network.ts";

/** One row of the table. */
export interface ScaleResult {
  /** `memory` or `tcp`. */
  transport: Transport;
  /** Validators. */
  nodes: number;
  /** Time to full mesh, ms. */
  meshMs: number;
  /** From full mesh until the process went quiet (discovery done), ms. */
  settleMs: number;
  /** Delivery latency of 1 KiB broadcasts, ms: p50 and p99. */
  small: { p50: number; p99: number };
  /** Delivery latency of 1 MiB broadcasts, ms: p50 and p99. */
  large: { p50: number; p99: number };
  /** 1 KiB deliveries per second with one sender saturating. */
  messagesPerSecond: number;
  /** 1 MiB broadcast: bytes delivered per second (all receivers), MB/s. */
  largeMBps: number;
  /** The cipher ceiling, MB/s, and its parts. */
  cipher: CipherCeiling;
}

/** The in-process cipher ceiling, MB/s (10^6 bytes per second). */
export interface CipherCeiling {
  /** Plaintext sealed per second, 64 KiB messages. */
  seal: number;
  /** Plaintext opened per second, 64 KiB messages. */
  open: number;
  /** `1 / (1/seal + 1/open)`: both ends' work for every byte delivered. */
  ceiling: number;
}

/** `memory` or `tcp`. */
export type Transport = "memory" | "tcp";

const PROTOCOL = "/bench/scale/1.0.0";
const SMALL = 1024;
const LARGE = 1024 * 1024;
/** Payload header: send time (float64, ms), run id (u32), sequence (u32). */
const HEADER = 16;
const MB = 1e6;
/** Dials in flight in the whole process at most (`maxConcurrentDials` is this / N). */
const DIALS_IN_PROCESS = 256;
/** Discovery's refresh interval here: 10 minutes (see the module doc). */
const DISCOVERY_REFRESH = 600_000;

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * The seal and open speed of 64 KiB Noise messages with the `native`
 * backend's ChaCha20-Poly1305, as `bench/noise_bench.ts` measures it
 * (CipherState, 65 519-byte plaintexts, sealed into one reused buffer and
 * opened into fresh arrays, as the secure channel does), each for about
 * `ms`: seal alone, then seal and open in turn (the ceiling itself); the
 * open speed is what the second adds to the first.
 */
export function measureCipherCeiling(ms = 1_000): CipherCeiling {
  const chunk = 65535 - 16;
  const empty = new Uint8Array(0);
  const cipher = getCryptoBackend("native").cipher("ChaChaPoly");
  const plaintext = crypto.getRandomValues(new Uint8Array(chunk));
  const out = new Uint8Array(chunk + 16);
  const timed = (step: () => void): number => {
    for (let i = 0; i < 100; i++) step();
    let messages = 0;
    const start = performance.now();
    while (performance.now() - start < ms) {
      for (let i = 0; i < 16; i++) step();
      messages += 16;
    }
    return (messages * chunk) / ((performance.now() - start) / 1000) / MB;
  };
  const key = crypto.getRandomValues(new Uint8Array(32));
  const sealer = new CipherState(cipher, key);
  const seal = timed(() => sealer.encryptWithAd(empty, plaintext, out));
  const tx = new CipherState(cipher, key);
  const rx = new CipherState(cipher, key);
  const ceiling = timed(() => rx.decryptWithAd(empty, tx.encryptWithAd(empty, plaintext, out)));
  return { seal, open: 1 / (1 / ceiling - 1 / seal), ceiling };
}

/** What receivers report to the run in progress. */
interface Run {
  id: number;
  /** Latencies, ms (kept only when asked). */
  latencies?: number[];
  delivered: number;
  bytes: number;
  lastDelivery: number;
  /** Resolves once `delivered` reaches `target`. */
  target: number;
  reached?: () => void;
}

class Receivers {
  #run: Run | undefined;
  #nextId = 1;

  /** A new run; deliveries of older runs are ignored from now on. */
  start(keepLatencies: boolean): Run {
    this.#run = {
      id: this.#nextId++,
      latencies: keepLatencies ? [] : undefined,
      delivered: 0,
      bytes: 0,
      lastDelivery: 0,
      target: Number.POSITIVE_INFINITY,
    };
    return this.#run;
  }

  /** Resolves when the current run has `count` deliveries. */
  until(count: number, timeoutMs = 120_000): Promise<void> {
    const run = this.#run!;
    if (run.delivered >= count) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const timer = setTimeout(
        () => reject(new Error(`${run.delivered} of ${count} deliveries in ${timeoutMs} ms`)),
        timeoutMs,
      );
      run.target = count;
      run.reached = () => {
        clearTimeout(timer);
        resolve();
      };
    });
  }

  deliver(message: Uint8Array): void {
    const now = performance.now();
    const run = this.#run;
    const view = new DataView(message.buffer, message.byteOffset, HEADER);
    if (run === undefined || view.getUint32(8) !== run.id) return;
    run.latencies?.push(now - view.getFloat64(0));
    run.delivered++;
    run.bytes += message.length;
    run.lastDelivery = now;
    if (run.delivered >= run.target) {
      run.target = Number.POSITIVE_INFINITY;
      run.reached?.();
    }
  }
}

function stamp(message: Uint8Array, run: Run, seq: number): Uint8Array {
  const view = new DataView(message.buffer, message.byteOffset, HEADER);
  view.setFloat64(0, performance.now());
  view.setUint32(8, run.id);
  view.setUint32(12, seq);
  return message;
}

function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return Number.NaN;
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)];
}

function latencyOf(run: Run): { p50: number; p99: number } {
  const sorted = run.latencies!.sort((a, b) => a - b);
  return { p50: percentile(sorted, 50), p99: percentile(sorted, 99) };
}

/** Fails when a broadcast did not reach every peer. */
async function broadcastAll(handle: DirectSendHandle, message: Uint8Array, peers: number) {
  const outcomes = await handle.broadcast(message);
  const failed = [...outcomes.values()].filter((e) => e !== undefined);
  if (outcomes.size !== peers || failed.length > 0) {
    throw new Error(`broadcast reached ${outcomes.size - failed.length} of ${peers}: ${failed[0]}`);
  }
}

/** The mesh's dial, refusal and handshake counters (summed over all nodes), one per line. */
function dialCounters(metrics: MetricsRegistry): string {
  return metrics.render().split("\n").filter((l) =>
    !l.startsWith("#") && /dial|refused|handshake|upgrade|replaced|backoff|lost/.test(l)
  ).join("\n");
}

/** The network of N validators, meshed. */
async function buildMesh(
  transport: Transport,
  n: number,
  discoveryRefresh: number,
  metricsLines = false,
) {
  const memory = new MemoryNetwork();
  const metrics = new MetricsRegistry();
  const logger = new Logger({}, "error");
  const keys = Array.from({ length: n }, () => ValidatorKeys.generate());
  const nets = keys.map((key) =>
    new ValidatorNetwork({
      keys: key,
      networkId: "scale",
      listen: [transport === "memory" ? "/memory/0" : "/ip4/127.0.0.1/tcp/0"],
      // Addresses come once every node listens (TCP ports are the kernel's choice).
      validators: keys.map((k) => k.info([])),
      memory,
      // Every node is 127.0.0.1: per-address caps would see one crowd.
      limits: {
        maxPendingPerAddress: 4_096,
        newConnectionsBurst: 100_000,
        // Every node's handshakes share this process's one thread: bound them
        // all together, not per node (see the module doc).
        maxConcurrentDials: Math.max(2, Math.ceil(DIALS_IN_PROCESS / n)),
      },
      timeouts: {
        backoffInitial: 200,
        backoffMax: 2_000,
        dialGrace: 250,
        discoveryRefresh,
      },
      metrics,
      logger,
    })
  );
  const handles = nets.map((net) => net.register(PROTOCOL, { kind: "direct-send" }));
  for (const net of nets) await net.start();
  const set = nets.map((net, i) => keys[i].info(net.listenAddrs.map((a) => a.withoutPeerId())));
  const start = performance.now();
  for (const net of nets) await net.updateValidatorSet(set);
  while (!nets.every((net) => net.peers().length === n - 1)) {
    if (performance.now() - start > 120_000) {
      const counts = nets.map((net) => net.peers().length);
      console.error(dialCounters(metrics));
      throw new Error(`no full mesh of ${n} in 120 s: peers ${counts.join(",")}`);
    }
    await sleep(5);
  }
  const meshMs = performance.now() - start;
  if (metricsLines) {
    // What it took: dials, refusals, handshakes (counters summed over all nodes).
    console.error(dialCounters(metrics));
  }
  return { nets, handles, meshMs };
}

/**
 * Waits until the process spends less than a tenth of its time on the CPU
 * for three half-second windows in a row (at most 120 s); returns how long
 * it took.
 */
async function settle(): Promise<number> {
  const start = performance.now();
  let quiet = 0;
  while (quiet < 3 && performance.now() - start < 120_000) {
    const before = process.cpuUsage();
    await sleep(500);
    const used = process.cpuUsage(before);
    quiet = (used.user + used.system) / 1000 < 50 ? quiet + 1 : 0;
  }
  return performance.now() - start;
}

/** Options of {@linkcode measureScale}. */
export interface ScaleOptions {
  /** Length of the 1 KiB saturation run, s. Default 3. */
  durationS?: number;
  /** `throughput`: the mesh and the 1 MiB throughput run only. */
  only?: "throughput";
  /** Discovery's refresh interval, ms. Default 600 000 (see the module doc). */
  discoveryRefresh?: number;
  /** 1 MiB broadcasts in the throughput run. Default: 512 MiB worth, 8 to 128. */
  largeCount?: number;
  /**
   * Prints the mesh's dial, refusal and handshake counters once it is full,
   * and when the throughput run starts and ends (`performance.now()`, for
   * slicing a profile), to stderr.
   */
  trace?: boolean;
}

/** Measures one (transport, N). */
export async function measureScale(
  transport: Transport,
  n: number,
  options: ScaleOptions = {},
): Promise<ScaleResult> {
  const cipher = measureCipherCeiling();
  const { nets, handles, meshMs } = await buildMesh(
    transport,
    n,
    options.discoveryRefresh ?? DISCOVERY_REFRESH,
    options.trace,
  );
  const peers = n - 1;
  const receivers = new Receivers();
  const consumers = handles.slice(1).map(async (handle) => {
    for await (const ev of handle.events) {
      if (ev.type !== "message") continue;
      receivers.deliver(ev.message);
      // Done with it: a large message's buffer serves the next one.
      ev.release();
    }
  });
  const sender = handles[0];
  // Discovery goes on exchanging records for a while after the mesh is
  // full (every node pushes what it learns to every peer): wait until the
  // process is quiet, so that the runs below measure the messages alone.
  const settleMs = await settle();
  const nan = { p50: Number.NaN, p99: Number.NaN };
  let small = nan, large = nan, messagesPerSecond = Number.NaN;

  if (options.only !== "throughput") {
    // Latency, one broadcast at a time.
    for (const [size, count] of [[SMALL, 200], [LARGE, Math.min(30, Math.max(5, 64 / peers))]]) {
      const run = receivers.start(true);
      for (let seq = 0; seq < count; seq++) {
        await broadcastAll(sender, stamp(new Uint8Array(size), run, seq), peers);
        await receivers.until((seq + 1) * peers);
      }
      if (size === SMALL) small = latencyOf(run);
      else large = latencyOf(run);
    }

    // Saturation: 1 KiB, 256 broadcasts in flight, for a few seconds.
    const run = receivers.start(false);
    const durationMs = (options.durationS ?? 3) * 1000;
    const inFlight = new Set<Promise<void>>();
    const start = performance.now();
    let sent = 0;
    while (performance.now() - start < durationMs) {
      const p: Promise<void> = broadcastAll(sender, stamp(new Uint8Array(SMALL), run, sent), peers)
        .finally(() => inFlight.delete(p));
      inFlight.add(p);
      sent++;
      if (inFlight.size >= 256) await Promise.race(inFlight);
    }
    await Promise.all(inFlight);
    await receivers.until(sent * peers);
    messagesPerSecond = run.delivered / ((run.lastDelivery - start) / 1000);
  }

  // 1 MiB throughput: back to back, 4 broadcasts in flight, after 4 untimed
  // ones (the first large writes of each connection fill its buffer pools).
  const warmUp = receivers.start(false);
  for (let seq = 0; seq < 4; seq++) {
    await broadcastAll(sender, stamp(new Uint8Array(LARGE), warmUp, seq), peers);
  }
  await receivers.until(4 * peers);
  if (options.trace) console.error(`throughput starts at ${performance.now().toFixed(0)} ms`);
  const run = receivers.start(false);
  const count = options.largeCount ?? Math.min(128, Math.max(8, Math.ceil(512 / peers)));
  const payload = new Uint8Array(LARGE);
  const inFlight = new Set<Promise<void>>();
  const start = performance.now();
  for (let seq = 0; seq < count; seq++) {
    // One buffer for every broadcast: DirectSend hands it down before resolving.
    const message = stamp(payload.slice(), run, seq);
    const p: Promise<void> = broadcastAll(sender, message, peers).finally(() => inFlight.delete(p));
    inFlight.add(p);
    if (inFlight.size >= 4) await Promise.race(inFlight);
  }
  await Promise.all(inFlight);
  await receivers.until(count * peers);
  const largeMBps = run.bytes / MB / ((run.lastDelivery - start) / 1000);
  if (options.trace) console.error(`throughput ends at ${performance.now().toFixed(0)} ms`);

  await Promise.all(nets.map((net) => net.stop()));
  await Promise.all(consumers);
  return {
    transport,
    nodes: n,
    meshMs,
    settleMs,
    small,
    large,
    messagesPerSecond,
    largeMBps,
    cipher,
  };
}

function flag(name: string): string | undefined {
  const i = Deno.args.indexOf(`--${name}`);
  return i >= 0 ? Deno.args[i + 1] : undefined;
}

/** The options given on the command line (passed on to the children as they are). */
const OPTION_FLAGS = ["duration", "only", "discovery-refresh", "large-count"];

function optionsFromFlags(): ScaleOptions {
  const number = (name: string) => flag(name) === undefined ? undefined : Number(flag(name));
  return {
    durationS: number("duration"),
    only: flag("only") === "throughput" ? "throughput" : undefined,
    discoveryRefresh: number("discovery-refresh"),
    largeCount: number("large-count"),
    trace: Deno.args.includes("--trace"),
  };
}

/** Runs one (transport, N) in a child process and returns its row. */
async function inChild(transport: Transport, n: number): Promise<ScaleResult> {
  const args = ["run", "-A", import.meta.filename!, "--child", `${transport}:${n}`];
  for (const name of OPTION_FLAGS) {
    const value = flag(name);
    if (value !== undefined) args.push(`--${name}`, value);
  }
  const { code, stdout, stderr } = await new Deno.Command(Deno.execPath(), { args }).output();
  if (code !== 0) {
    throw new Error(`${transport} ${n}: ${new TextDecoder().decode(stderr)}`);
  }
  const lines = new TextDecoder().decode(stdout).trim().split("\n");
  return JSON.parse(lines[lines.length - 1]);
}

function row(cells: string[], widths: number[]): string {
  return cells.map((c, i) => i < 1 ? c.padEnd(widths[i]) : c.padStart(widths[i])).join("  ");
}

if (import.meta.main) {
  const child = flag("child");
  if (child !== undefined) {
    const [transport, n] = child.split(":");
    const result = await measureScale(transport as Transport, Number(n), optionsFromFlags());
    console.log(JSON.stringify(result));
  } else {
    const sizes = flag("nodes")?.split(",").map(Number) ?? [4, 16, 64, 100];
    const transports = (flag("transport")?.split(",") ?? ["memory", "tcp"]) as Transport[];
    const header = [
      "transport",
      "nodes",
      "mesh",
      "quiet after",
      "1 KiB p50",
      "1 KiB p99",
      "1 MiB p50",
      "1 MiB p99",
      "1 KiB msgs/s",
      "1 MiB MB/s",
      "ceiling MB/s",
      "% ceiling",
    ];
    const widths = header.map((h) => Math.max(h.length, 9));
    console.log(row(header, widths));
    console.log(widths.map((w) => "-".repeat(w)).join("  "));
    // NaN (not measured) comes back from the child as null.
    const none = (x: number | null) => x === null || Number.isNaN(x);
    const ms = (x: number) => none(x) ? "-" : `${x < 10 ? x.toFixed(2) : x.toFixed(0)} ms`;
    const s = (x: number) => x < 1000 ? `${x.toFixed(0)} ms` : `${(x / 1000).toFixed(1)} s`;
    const ceilings: string[] = [];
    for (const transport of transports) {
      for (const n of sizes) {
        const r = await inChild(transport, n);
        console.log(row([
          r.transport,
          String(r.nodes),
          s(r.meshMs),
          s(r.settleMs),
          ms(r.small.p50),
          ms(r.small.p99),
          ms(r.large.p50),
          ms(r.large.p99),
          none(r.messagesPerSecond) ? "-" : r.messagesPerSecond.toFixed(0),
          r.largeMBps.toFixed(0),
          r.cipher.ceiling.toFixed(0),
          `${((100 * r.largeMBps) / r.cipher.ceiling).toFixed(0)} %`,
        ], widths));
        ceilings.push(
          `${r.transport} ${r.nodes}: seal ${r.cipher.seal.toFixed(0)} MB/s, open ${
            r.cipher.open.toFixed(0)
          } MB/s -> ceiling ${r.cipher.ceiling.toFixed(0)} MB/s`,
        );
      }
    }
    console.log(
      "\nceiling = 1 / (1/seal + 1/open) = the seal+open speed of 64 KiB Noise messages" +
        " (ChaCha20-Poly1305, native backend),\n  i.e. about one end's speed / 2: both ends' work" +
        " for every byte delivered, on one thread; measured in each row's process.\n" +
        "% ceiling = 1 MiB MB/s / ceiling. MB = 10^6 bytes. Latency: send to the receiver's" +
        " event. quiet after: from full mesh until the process idled (discovery done).",
    );
    for (const line of ceilings) console.log(`  ${line}`);
  }
}
