/**
 * The chaos testnet (`deno task chaos [--validators N] [--seconds S]`): N
 * `cli.ts node --app consensus-demo` processes, each in its own Linux
 * network namespace joined by a bridge (on loopback, with kills only, where
 * namespaces cannot be made: it says so). For S seconds it kills and
 * restarts nodes and cuts one node's link and heals it, in turns, and
 * checks:
 *
 * - one chain everywhere (no height committed with two hashes);
 * - after each restart or heal, the full mesh is back within the backoff
 *   cap plus a margin;
 * - every RPC was answered or failed with a typed error (the nodes'
 *   `validator_network_rpc_failures_total` has no `BUG` code);
 * - no node crashed, and the chain moved on while a minority was down.
 *
 * Namespaces, links and processes are removed even when it fails.
 *
 * @module
 */

import { NetnsLab } from "./netns.ts";
import { metricValue, NodeProcess, writeTestnet } from "./node_process.ts";

/** Options for {@linkcode runChaos}. */
export interface ChaosOptions {
  /** Validators. Default 4. */
  validators?: number;
  /** How long the faults go on, in seconds. Default 60. */
  seconds?: number;
  /** Run on loopback with kills only, even where namespaces can be made. */
  loopback?: boolean;
  /** Where report lines go. Default `console.log`. */
  print?: (line: string) => void;
}

/** What {@linkcode runChaos} found. */
export interface ChaosResult {
  /** Every check passed. */
  ok: boolean;
  /** Why not, when not. */
  failures: string[];
  /** Whether it ran in namespaces (else on loopback). */
  namespaces: boolean;
  /** Faults injected. */
  faults: number;
}

/** The backoff cap of the chaos nodes, ms. */
const BACKOFF_MAX = 2_000;
/** How long a partition lasts and a killed node stays down, ms. */
const FAULT_MS = 3_000;
/** What the full mesh may take past the backoff cap: handshakes, health checks. */
const MARGIN_MS = 8_000;

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * Runs the chaos testnet and prints what it did and found.
 *
 * @example
 * ```ts ignore
 * const { ok } = await runChaos({ validators: 4, seconds: 30 });
 * ```
 */
export async function runChaos(options: ChaosOptions = {}): Promise<ChaosResult> {
  const n = options.validators ?? 4;
  const seconds = options.seconds ?? 60;
  const print = options.print ?? console.log;
  if (n < 4) throw new Error("--validators must be at least 4 (one at a time fails)");
  const failures: string[] = [];
  let faults = 0;
  const made = options.loopback ? { reason: "--loopback asked" } : await NetnsLab.create(n);
  const lab = made.lab;
  if (lab === undefined) {
    print(`chaos: no network namespaces (${made.reason}): loopback, kills only`);
  }
  const dir = await Deno.makeTempDir({ prefix: "validator-chaos-" });
  let nodes: NodeProcess[] = [];
  // Ctrl-C ends the faults; the cleanup below still runs.
  const interrupted = new AbortController();
  const onSignal = () => interrupted.abort();
  Deno.addSignalListener("SIGINT", onSignal);
  try {
    const validators = await writeTestnet({
      dir,
      validators: n,
      host: lab ? (i) => lab.addresses[i] : undefined,
      port: lab ? () => 7000 : undefined,
      metrics: lab ? (i) => `${lab.addresses[i]}:9100` : undefined,
      timeouts: {
        backoffInitial: 200,
        backoffMax: BACKOFF_MAX,
        healthInterval: 1_000,
        healthTimeout: 1_000,
        rpc: 2_000,
      },
    });
    nodes = validators.map((v, i) => new NodeProcess(v, { prefix: lab?.prefix(i) }));
    print(
      `chaos: ${n} validators ${lab ? "in network namespaces" : "on loopback"} for ${seconds} s`,
    );
    await Promise.all(nodes.map((node) => node.start()));
    const full = await fullMesh(nodes, 20_000);
    if (!full) failures.push("no full mesh at the start");

    const end = performance.now() + seconds * 1000;
    let turn = 0;
    while (performance.now() < end && !interrupted.signal.aborted) {
      const victim = nodes[(turn * 3 + 1) % n];
      const partition = lab !== undefined && turn % 2 === 1;
      const before = Math.max(...nodes.map((x) => x.height));
      faults++;
      if (partition) {
        print(`chaos: cut ${victim.validator.name} off for ${FAULT_MS} ms`);
        await lab.partition(nodes.indexOf(victim));
        await sleep(FAULT_MS);
        await lab.heal(nodes.indexOf(victim));
      } else {
        print(`chaos: SIGKILL ${victim.validator.name}, restart after ${FAULT_MS} ms`);
        await victim.kill("SIGKILL");
        await sleep(FAULT_MS);
        await victim.start();
      }
      const t0 = performance.now();
      const back = await fullMesh(nodes, BACKOFF_MAX + MARGIN_MS);
      const took = Math.round(performance.now() - t0);
      if (back) {
        print(`chaos:   full mesh back after ${took} ms`);
      } else {
        failures.push(
          `turn ${turn}: no full mesh within ${BACKOFF_MAX + MARGIN_MS} ms after ${
            partition ? "healing" : "restarting"
          } ${victim.validator.name}`,
        );
      }
      const after = Math.max(...nodes.map((x) => x.height));
      print(`chaos:   chain height ${before} -> ${after}`);
      turn++;
      await sleep(1_000);
    }
    // The chain goes on once everyone is back.
    const settled = Math.max(...nodes.map((x) => x.height));
    await sleep(5_000);
    const last = Math.max(...nodes.map((x) => x.height));
    if (interrupted.signal.aborted) failures.push("interrupted");
    if (last <= settled) failures.push(`the chain stopped at height ${last}`);
    const lagging = nodes.filter((x) => x.runHeight < last - 3);
    for (const x of lagging) {
      failures.push(`${x.validator.name} is behind: ${x.runHeight} of ${last}`);
    }
    for (const node of nodes) {
      const text = await node.scrape();
      const bugs = metricValue(text, "validator_network_rpc_failures_total", { code: "BUG" });
      if (bugs > 0) {
        failures.push(`${node.validator.name}: ${bugs} RPCs failed without a typed error`);
      }
    }
    const canonical = new Map<number, string>();
    for (const node of nodes) {
      failures.push(...node.conflicts);
      for (const [height, hash] of node.commits) {
        const known = canonical.get(height);
        if (known !== undefined && known !== hash) failures.push(`fork at height ${height}`);
        canonical.set(height, hash);
      }
    }
    print(`chaos: ${faults} faults, final height ${last}`);
  } finally {
    await Promise.all(nodes.map((node) => node.kill("SIGTERM")));
    for (const node of nodes) failures.push(...node.crashes);
    await lab?.destroy();
    await Deno.remove(dir, { recursive: true }).catch(() => {});
    Deno.removeSignalListener("SIGINT", onSignal);
  }
  for (const f of failures) print(`chaos: FAIL: ${f}`);
  if (failures.length === 0) print("chaos: ok");
  return { ok: failures.length === 0, failures, namespaces: lab !== undefined, faults };
}

/** Whether every running node has all others as peers before `timeout` ms pass. */
async function fullMesh(nodes: NodeProcess[], timeout: number): Promise<boolean> {
  const deadline = performance.now() + timeout;
  while (performance.now() < deadline) {
    const counts = await Promise.all(nodes.map(async (node) => (await node.health())?.peers));
    if (counts.every((c) => c === nodes.length - 1)) return true;
    await sleep(200);
  }
  return false;
}

function flag(name: string): number | undefined {
  const i = Deno.args.indexOf(`--${name}`);
  return i >= 0 ? Number(Deno.args[i + 1]) : undefined;
}

if (import.meta.main) {
  const result = await runChaos({
    validators: flag("validators"),
    seconds: flag("seconds"),
    loopback: Deno.args.includes("--loopback"),
  });
  Deno.exit(result.ok ? 0 : 1);
}
