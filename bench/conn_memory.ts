/**
 * Memory per idle connection end: K nodes in one process, fully meshed over
 * TCP loopback (K = 46 makes 1 035 connections, 2 070 ends), measured after a
 * full GC against the same nodes listening with no connection.
 *
 * ```sh
 * deno run -A bench/conn_memory.ts                                   # every profile, K = 46
 * deno run -A bench/conn_memory.ts --profile libp2p,validator --nodes 46
 * deno run -A bench/conn_memory.ts --profile validator --snapshot /tmp/validator.heapsnapshot
 * ```
 *
 * Profiles (one row each, each in a child process of its own, run with
 * `--v8-flags=--expose-gc`, so that RSS starts from the same place):
 * - `libp2p`: `Libp2pNode`s with the default upgrade (Noise XX, yamux);
 * - `validator`: `Libp2pNode`s with `validatorUpgrade` (Noise IK against a
 *   trusted set holding every node, yamux);
 * - `network`: `ValidatorNetwork`s (the validator profile with the
 *   connectivity manager, health checks, discovery and the ping protocol),
 *   told each other's addresses once all listen, then meshing by
 *   themselves. What they learn about each other (discovery's records of
 *   every validator, the connectivity manager's entries) counts in this row
 *   too: it grows with the validator set, not with the connections.
 *
 * Node i dials node j for every i < j, at most 16 dials at once (the
 * `network` row dials as its connectivity manager does), then the process
 * idles (`--idle MS`, default 3 000: handshakes settle, and buffers kept for
 * reuse are released after one to two seconds without use). Figures per
 * connection end (`2 * connections`): `heap` is V8's `heapUsed` delta (JS
 * objects), `external` the delta of memory V8 tracks outside its heap
 * (ArrayBuffer backing stores: read buffers, write buffers), `heap
 * committed` the delta of `heapTotal` (what V8 keeps mapped for its heap:
 * it grows with the garbage of the handshakes and is not given back at
 * once), `rss` the process's resident set delta (all of it, the runtime's
 * own per-socket state included; the kernel's socket buffers are not in
 * it). The issue's target: at most 16 KiB of heap per end.
 *
 * `--snapshot FILE` (with one `--profile`) writes a V8 heap snapshot
 * (Chrome DevTools format) of the meshed state, through `node:v8`, for
 * finding where the bytes go.
 *
 * @module
 */

import { writeHeapSnapshot } from "node:v8";
import { Ed25519Identity } from "../netcore/identity/mod.ts";
import { Logger } from "../netcore/log.ts";
import { MetricsRegistry } from "../netcore/metrics.ts";
import { Multiaddr } from "../netcore/multiaddr.ts";
import { getCryptoBackend } from "../netcore/noise/crypto.ts";
import { TrustedPeerSet } from "../netcore/noise/trusted_peers.ts";
import { Libp2pNode } from "../netcore/peer/libp2p_node.ts";
import { TcpTransport } from "../netcore/transport/tcp_transport.ts";
import { validatorUpgrade } from "../netcore/upgrade/validator_upgrade.ts";
import { ValidatorKeys } from "../validator/validator_keys.ts";
import { ValidatorNetwork } from "../validator/validator_network.ts";

/** Which stack a row measures. */
export type MemoryProfile = "libp2p" | "validator" | "network";

/** One row of the table. */
export interface ConnMemoryResult {
  /** The profile. */
  profile: MemoryProfile;
  /** Nodes in the process. */
  nodes: number;
  /** Connections (each has two ends in this process). */
  connections: number;
  /** Time to establish them all, ms. */
  connectMs: number;
  /** `heapUsed` delta per connection end, bytes. */
  heapPerEnd: number;
  /** `external` delta per connection end, bytes. */
  externalPerEnd: number;
  /** RSS delta per connection end, bytes. */
  rssPerEnd: number;
  /** `heapTotal` (V8's committed heap) delta per connection end, bytes. */
  heapTotalPerEnd: number;
}

/** Options of {@linkcode measureConnMemory}. */
export interface ConnMemoryOptions {
  /** Nodes, fully meshed. Default 46 (1 035 connections). */
  nodes?: number;
  /** How long the mesh idles before measuring, ms. Default 3 000. */
  idleMs?: number;
  /** Dials in flight at once. Default 16. */
  concurrency?: number;
  /** Writes a heap snapshot of the meshed state there. */
  snapshot?: string;
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** A full GC, several times (weak references and finalizers need more than one pass). */
export async function fullGc(): Promise<void> {
  const gc = (globalThis as { gc?: () => void }).gc;
  for (let i = 0; i < 4; i++) {
    gc?.();
    await sleep(20);
  }
}

/** Runs `task(i)` for i in 0..count-1, at most `limit` at once. */
async function pool(count: number, limit: number, task: (i: number) => Promise<void>) {
  let next = 0;
  await Promise.all(Array.from({ length: Math.min(limit, count) }, async () => {
    while (next < count) await task(next++);
  }));
}

/** What a measured set of nodes offers: connect them all, count connections, close. */
interface MeshUnderTest {
  connect(): Promise<void>;
  connections(): number;
  close(): Promise<void>;
}

/** Raised limits: every node is 127.0.0.1, so per-address caps would see one crowd. */
const INBOUND = { maxPendingPerAddress: 4_096, newConnectionsBurst: 100_000 };
const quiet = () => new Logger({}, "error");

async function nodesOf(profile: "libp2p" | "validator", k: number): Promise<MeshUnderTest> {
  const metrics = new MetricsRegistry().scope({ network: "bench" });
  const logger = quiet();
  const { dh } = getCryptoBackend();
  const keys = Array.from({ length: k }, () => ({
    identity: Ed25519Identity.generate(),
    noise: dh.generateKeyPair(),
  }));
  const trusted = new TrustedPeerSet(keys.map((v) => [v.noise.publicKey, v.identity.peerId]));
  const nodes: Libp2pNode[] = [];
  for (const v of keys) {
    nodes.push(
      await Libp2pNode.create({
        identity: v.identity,
        listen: [Multiaddr.parse("/ip4/127.0.0.1/tcp/0")],
        transports: [new TcpTransport()],
        upgrade: profile === "validator"
          ? validatorUpgrade(v.noise, {
            noise: { trustedPeers: trusted, networkId: "bench" },
            metrics,
            logger,
          })
          : undefined,
        inbound: INBOUND,
        metrics,
        logger,
      }),
    );
  }
  const pairs: [number, number][] = [];
  for (let i = 0; i < k; i++) for (let j = i + 1; j < k; j++) pairs.push([i, j]);
  return {
    async connect() {
      await pool(pairs.length, 16, async (p) => {
        const [i, j] = pairs[p];
        await nodes[i].dial(nodes[j].listenAddrs[0]);
      });
    },
    connections: () => nodes.reduce((sum, n) => sum + n.manager.peers().length, 0) / 2,
    async close() {
      await Promise.all(nodes.map((n) => n.close()));
    },
  };
}

async function networksOf(k: number): Promise<MeshUnderTest> {
  const registry = new MetricsRegistry();
  const logger = quiet();
  const keys = Array.from({ length: k }, () => ValidatorKeys.generate());
  const nets = keys.map((key) =>
    new ValidatorNetwork({
      keys: key,
      networkId: "bench",
      listen: ["/ip4/127.0.0.1/tcp/0"],
      // No addresses yet: nobody dials until connect().
      validators: keys.map((other) => other.info([])),
      limits: INBOUND,
      timeouts: { backoffInitial: 200, backoffMax: 2_000, dialGrace: 250 },
      metrics: registry,
      logger,
    })
  );
  for (const net of nets) await net.start();
  return {
    async connect() {
      const set = nets.map((net, i) => keys[i].info(net.listenAddrs.map((a) => a.withoutPeerId())));
      for (const net of nets) await net.updateValidatorSet(set);
      const start = performance.now();
      while (!nets.every((net) => net.peers().length === k - 1)) {
        if (performance.now() - start > 120_000) throw new Error("no full mesh in 120 s");
        await sleep(10);
      }
    },
    connections: () => nets.reduce((sum, n) => sum + n.peers().length, 0) / 2,
    async close() {
      await Promise.all(nets.map((n) => n.stop()));
    },
  };
}

/**
 * Builds `options.nodes` nodes of `profile`, measures them idle, meshes
 * them, measures again, and tears them down.
 */
export async function measureConnMemory(
  profile: MemoryProfile,
  options: ConnMemoryOptions = {},
): Promise<ConnMemoryResult> {
  const k = options.nodes ?? 46;
  const mesh = profile === "network" ? await networksOf(k) : await nodesOf(profile, k);
  await sleep(200);
  await fullGc();
  const before = Deno.memoryUsage();
  const start = performance.now();
  await mesh.connect();
  const connectMs = performance.now() - start;
  await sleep(options.idleMs ?? 3_000);
  await fullGc();
  const after = Deno.memoryUsage();
  const connections = mesh.connections();
  if (options.snapshot !== undefined) writeHeapSnapshot(options.snapshot);
  await mesh.close();
  const ends = 2 * connections;
  return {
    profile,
    nodes: k,
    connections,
    connectMs,
    heapPerEnd: (after.heapUsed - before.heapUsed) / ends,
    externalPerEnd: (after.external - before.external) / ends,
    rssPerEnd: (after.rss - before.rss) / ends,
    heapTotalPerEnd: (after.heapTotal - before.heapTotal) / ends,
  };
}

function flag(name: string): string | undefined {
  const i = Deno.args.indexOf(`--${name}`);
  return i >= 0 ? Deno.args[i + 1] : undefined;
}

/** Runs one profile in a child process (fresh RSS) and returns its row. */
async function inChild(profile: MemoryProfile, args: string[]): Promise<ConnMemoryResult> {
  const { code, stdout, stderr } = await new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "-A",
      "--v8-flags=--expose-gc",
      import.meta.filename!,
      ...args,
      "--child",
      profile,
    ],
  }).output();
  if (code !== 0) throw new Error(`${profile}: ${new TextDecoder().decode(stderr)}`);
  const lines = new TextDecoder().decode(stdout).trim().split("\n");
  return JSON.parse(lines[lines.length - 1]);
}

if (import.meta.main) {
  const nodes = Number(flag("nodes") ?? 46);
  const idleMs = Number(flag("idle") ?? 3_000);
  const child = flag("child") as MemoryProfile | undefined;
  if (child !== undefined) {
    const r = await measureConnMemory(child, { nodes, idleMs, snapshot: flag("snapshot") });
    console.log(JSON.stringify(r));
  } else {
    const profiles =
      (flag("profile")?.split(",") ?? ["libp2p", "validator", "network"]) as MemoryProfile[];
    const args = ["--nodes", String(nodes), "--idle", String(idleMs)];
    const snapshot = flag("snapshot");
    if (snapshot !== undefined) args.push("--snapshot", snapshot);
    const kib = (bytes: number) => `${(bytes / 1024).toFixed(1)} KiB`;
    console.log(
      "profile    nodes  conns  connect   heap/end  external/end  heap committed/end   rss/end",
    );
    for (const profile of profiles) {
      // Each profile in a process of its own: RSS never shrinks back for the next.
      const r = await inChild(profile, args);
      console.log(
        `${r.profile.padEnd(9)}  ${String(r.nodes).padStart(5)}  ${
          String(r.connections).padStart(5)
        }  ${`${(r.connectMs / 1000).toFixed(1)} s`.padStart(7)}  ${
          kib(r.heapPerEnd).padStart(9)
        }  ${kib(r.externalPerEnd).padStart(12)}  ${kib(r.heapTotalPerEnd).padStart(18)}  ${
          kib(r.rssPerEnd).padStart(8)
        }`,
      );
    }
  }
}
