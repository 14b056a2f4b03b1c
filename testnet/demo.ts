/**
 * The local validator testnet demo (`deno task demo`, `cli.ts demo
 * [--validators N] [--seconds S]`): keys and configs in a temporary
 * folder, N `cli.ts node --app consensus-demo` processes on loopback TCP,
 * one of them killed with SIGKILL in the middle and restarted, then a
 * report per node. It passes only when every node committed the same chain
 * and the restarted node caught up.
 *
 * @module
 */

import { histogramQuantile, metricValue, NodeProcess, writeTestnet } from "./node_process.ts";
import { CONSENSUS_DIRECT_SEND, CONSENSUS_RPC } from "../validator/consensus.ts";
import { MEMPOOL_RPC } from "../validator/mempool.ts";

/** Options for {@linkcode runDemo}. */
export interface DemoOptions {
  /** Validators. Default 4. */
  validators?: number;
  /** How long the testnet runs, in seconds. Default 30. */
  seconds?: number;
  /** Where report lines go. Default `console.log`. */
  print?: (line: string) => void;
}

/** What {@linkcode runDemo} found. */
export interface DemoResult {
  /** Every check passed. */
  ok: boolean;
  /** Why not, when not. */
  failures: string[];
}

const PROTOCOLS: [string, string][] = [
  ["consensus", CONSENSUS_DIRECT_SEND],
  ["blocks", CONSENSUS_RPC],
  ["mempool", MEMPOOL_RPC],
];

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

function mb(bytes: number): string {
  return bytes >= 1e6 ? `${(bytes / 1e6).toFixed(1)} MB` : `${(bytes / 1e3).toFixed(1)} kB`;
}

/**
 * Runs the demo and prints its report.
 *
 * @example
 * ```ts ignore
 * const { ok } = await runDemo({ validators: 4, seconds: 20 });
 * Deno.exit(ok ? 0 : 1);
 * ```
 */
export async function runDemo(options: DemoOptions = {}): Promise<DemoResult> {
  const n = options.validators ?? 4;
  const seconds = options.seconds ?? 30;
  const print = options.print ?? console.log;
  if (n < 4) throw new Error("--validators must be at least 4 (one may fail)");
  const dir = await Deno.makeTempDir({ prefix: "validator-demo-" });
  const failures: string[] = [];
  const validators = await writeTestnet({
    dir,
    validators: n,
    timeouts: {
      backoffInitial: 200,
      backoffMax: 2_000,
      healthInterval: 2_000,
      healthTimeout: 4_000,
    },
  });
  const nodes = validators.map((v) => new NodeProcess(v));
  print(`demo: ${n} validators on loopback TCP for ${seconds} s, files in ${dir}`);
  try {
    await Promise.all(nodes.map((node) => node.start()));
    for (const node of nodes) {
      print(`  ${node.validator.name} ${node.validator.keys.peerId} ${node.validator.listen}`);
    }
    const victim = nodes[1];
    const t0 = performance.now();
    await sleep(seconds * 1000 * 0.35);
    print(`demo: SIGKILL ${victim.validator.name} at height ${victim.height}`);
    await victim.kill("SIGKILL");
    await sleep(seconds * 1000 * 0.2);
    const othersAtRestart = Math.max(...nodes.filter((x) => x !== victim).map((x) => x.height));
    print(
      `demo: restarting ${victim.validator.name} (the others are at height ${othersAtRestart})`,
    );
    await victim.start();
    await sleep(Math.max(0, seconds * 1000 - (performance.now() - t0)));

    // Let the restarted node finish catching up before judging it.
    const deadline = performance.now() + 10_000;
    while (performance.now() < deadline) {
      const top = Math.max(...nodes.map((x) => x.height));
      if (victim.runHeight >= top - 2) break;
      await sleep(200);
    }
    const scrapes = await Promise.all(nodes.map((node) => node.scrape()));

    // Chain agreement: every height committed anywhere has one hash everywhere.
    const canonical = new Map<number, string>();
    for (const node of nodes) {
      failures.push(...node.conflicts);
      for (const [height, hash] of node.commits) {
        const known = canonical.get(height);
        if (known !== undefined && known !== hash) {
          failures.push(`fork at height ${height}: ${known.slice(0, 12)} vs ${hash.slice(0, 12)}`);
        }
        canonical.set(height, hash);
      }
    }
    const top = Math.max(...nodes.map((x) => x.height));
    const caughtUp = victim.runHeight >= othersAtRestart && victim.runHeight >= top - 3;
    if (!caughtUp) {
      failures.push(
        `${victim.validator.name} did not catch up: height ${victim.runHeight} after its restart, the others reached ${top}`,
      );
    }
    if (top < 3) failures.push(`the chain barely moved: height ${top}`);

    print("");
    print(
      "node   height  agrees  restarts  reconnects  consensus msgs/bytes  blocks rpc  mempool rpc  rpc p50/p99  caught up",
    );
    for (const [i, node] of nodes.entries()) {
      const text = scrapes[i];
      const agrees = [...node.commits].every(([h, hash]) => canonical.get(h) === hash);
      const perProtocol = PROTOCOLS.map(([, protocol]) => {
        const msgs = metricValue(text, "validator_network_messages_total", { protocol });
        const bytes = metricValue(text, "validator_network_message_bytes_total", { protocol });
        return { msgs, bytes };
      });
      const p50 = histogramQuantile(text, "validator_network_rpc_latency_ms", 0.5, {
        direction: "out",
      });
      const p99 = histogramQuantile(text, "validator_network_rpc_latency_ms", 0.99, {
        direction: "out",
      });
      const reconnects = Math.max(0, node.newPeers - (n - 1));
      const fmt = (x: number | undefined) => x === undefined ? "-" : `${x} ms`;
      print(
        [
          node.validator.name.padEnd(5),
          String(node.height).padStart(6),
          (agrees ? "yes" : "NO").padStart(6),
          String(node.starts - 1).padStart(8),
          String(reconnects).padStart(10),
          `${perProtocol[0].msgs} / ${mb(perProtocol[0].bytes)}`.padStart(20),
          `${perProtocol[1].msgs}`.padStart(10),
          `${perProtocol[2].msgs}`.padStart(11),
          `${fmt(p50)} / ${fmt(p99)}`.padStart(11),
          (node === victim ? (caughtUp ? "yes" : "NO") : "-").padStart(9),
        ].join("  "),
      );
      if (!agrees) failures.push(`${node.validator.name} committed blocks off the chain`);
    }
    print(
      "(messages and bytes: this run of the node, in and out; rpc latency: outbound requests, bucket bounds)",
    );
  } finally {
    await Promise.all(nodes.map((node) => node.kill("SIGTERM")));
    for (const node of nodes) failures.push(...node.crashes);
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  }
  print("");
  if (failures.length === 0) {
    print(`demo: ok: ${n} validators, one chain, the restarted node caught up`);
  } else {
    for (const f of failures) print(`demo: FAIL: ${f}`);
  }
  return { ok: failures.length === 0, failures };
}
