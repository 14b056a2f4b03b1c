/**
 * Time to full mesh and memory per connection: N validators in one process
 * (the validator profile: Noise IK, yamux), each told the whole validator
 * set with one seed's address, reach a full mesh through discovery and the
 * connectivity manager. Prints one row per (transport, N).
 *
 * ```sh
 * deno run -A --v8-flags=--expose-gc bench/mesh.ts            # 4, 16, 64, 100 nodes, memory and TCP
 * deno run -A --v8-flags=--expose-gc bench/mesh.ts --nodes 16 --transport memory
 * ```
 *
 * Memory per connection end: the heap after a full GC with the mesh up,
 * minus the heap with the nodes listening and no connection, divided by the
 * connection ends (N * (N - 1)); RSS the same way (it includes the socket
 * buffers the runtime keeps, for TCP).
 *
 * @module
 */

import { MemoryNetwork } from "../memsocket/mod.ts";
import { Ed25519Identity } from "../netcore/identity/mod.ts";
import { getCryptoBackend } from "../netcore/noise/crypto.ts";
import { TrustedPeerSet } from "../netcore/noise/trusted_peers.ts";
import { MetricsRegistry } from "../netcore/metrics.ts";
import { Multiaddr } from "../netcore/multiaddr.ts";
import {
  ConnectivityManager,
  Discovery,
  type EligiblePeer,
  PeerManager,
} from "../netcore/peer/mod.ts";
import { MemoryTransport } from "../netcore/transport/memory_transport.ts";
import { TcpTransport } from "../netcore/transport/tcp_transport.ts";
import { validatorUpgrade } from "../netcore/upgrade/mod.ts";
import { Logger } from "../netcore/log.ts";

/** One row of the table. */
export interface MeshResult {
  /** `memory` or `tcp`. */
  transport: string;
  /** Validators. */
  nodes: number;
  /** From telling every node the set to every node having N - 1 peers, ms. */
  meshMs: number;
  /** Heap per connection end, bytes. */
  heapPerEnd: number;
  /** RSS per connection end, bytes. */
  rssPerEnd: number;
}

function gc(): void {
  (globalThis as { gc?: () => void }).gc?.();
}

/** Builds N nodes, meshes them, measures, and tears them down. */
export async function measureMesh(transport: "memory" | "tcp", n: number): Promise<MeshResult> {
  const network = new MemoryNetwork();
  const { dh } = getCryptoBackend();
  const quiet = new Logger({}, "error");
  const registry = new MetricsRegistry();
  const metrics = registry.scope({ network: "bench" });
  const validators = Array.from({ length: n }, () => ({
    identity: Ed25519Identity.generate(),
    noise: dh.generateKeyPair(),
  }));
  const nodes = [];
  for (const v of validators) {
    const trusted = new TrustedPeerSet();
    const manager = await PeerManager.create({
      identity: v.identity,
      upgrade: validatorUpgrade(v.noise, {
        noise: { trustedPeers: trusted, networkId: "bench" },
        metrics,
        logger: quiet,
      }),
      transports: [transport === "memory" ? new MemoryTransport({ network }) : new TcpTransport()],
      listen: [Multiaddr.parse(transport === "memory" ? "/memory/0" : "/ip4/127.0.0.1/tcp/0")],
      isTrusted: (p) => trusted.staticKeyOf(p) !== undefined,
      // Every node is 127.0.0.1 here: per-address caps would see one crowd.
      inbound: { maxPendingPerAddress: 4096, newConnectionsBurst: 100_000 },
      metrics,
      logger: quiet,
    });
    const connectivity = new ConnectivityManager({
      manager,
      trustedPeers: trusted,
      backoff: { initial: 200, max: 2_000 },
      // The whole network comes up at once: one dial per pair, not two.
      dialGrace: 250,
      // Every node's handshakes share this process's one thread: bound the
      // dials in flight in the whole process, not per node.
      maxConcurrentDials: Math.max(2, Math.ceil(256 / n)),
      metrics,
      logger: quiet,
    });
    const discovery = new Discovery({
      manager,
      identity: v.identity,
      isEligible: (p) => connectivity.state(p) !== undefined,
      onAddresses: (p, addrs) => connectivity.addAddresses(p, addrs),
      metrics,
      logger: quiet,
    });
    nodes.push({ manager, connectivity, discovery });
  }
  gc();
  const before = Deno.memoryUsage();
  const seed = nodes[0].manager.listenAddrs[0].withoutPeerId();
  const set: EligiblePeer[] = validators.map((v, i) => ({
    peerId: v.identity.peerId,
    noiseKey: v.noise.publicKey,
    addrs: i === 0 ? [seed] : [],
  }));
  const start = performance.now();
  for (const node of nodes) {
    node.connectivity.start();
    node.discovery.start();
    node.connectivity.setEligible(set);
  }
  while (!nodes.every((node) => node.manager.peers().length === n - 1)) {
    if (performance.now() - start > Number(Deno.env.get("MESH_LIMIT_MS") ?? 120_000)) {
      const counts = nodes.map((node) => node.manager.peers().length);
      console.error(
        registry.render().split("\n").filter((l) =>
          /dials_total|refused|rejected|coalesced|discovery_records/.test(l) && !l.startsWith("#")
        ).join("\n"),
      );
      throw new Error(`no full mesh of ${n} in 120 s: peers ${counts.join(",")}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
  const meshMs = performance.now() - start;
  if (Deno.env.get("MESH_DEBUG")) {
    for (const node of nodes.slice(0, 3)) {
      console.log(
        "states",
        validators.map((v) => node.connectivity.state(v.identity.peerId)).join(","),
        "dialing",
        validators.map((v) => node.manager.isDialing(v.identity.peerId)).join(","),
      );
    }
  }
  if (Deno.env.get("MESH_DEBUG")) {
    for (const node of nodes.slice(0, 3)) {
      console.log(
        node.manager.peerId.toString().slice(-6),
        node.manager.peers().map((p) =>
          `${p.peerId.toString().slice(-6)}:${p.direction}:${p.connectionId}`
        ).join(" "),
      );
    }
  }
  if (Deno.env.get("MESH_DEBUG")) {
    console.log(
      registry.render().split("\n").filter((l) =>
        /dials_total|refused|rejected|connectivity_dials|peer_events_total/.test(l) &&
        !l.startsWith("#")
      ).join("\n"),
    );
  }
  // Let handshakes that lost a race finish closing before measuring.
  await new Promise((resolve) => setTimeout(resolve, 500));
  gc();
  const after = Deno.memoryUsage();
  const ends = n * (n - 1);
  for (const node of nodes) {
    await node.discovery.close();
    await node.connectivity.close();
  }
  await Promise.all(nodes.map((node) => node.manager.close()));
  return {
    transport,
    nodes: n,
    meshMs,
    heapPerEnd: (after.heapUsed - before.heapUsed) / ends,
    rssPerEnd: (after.rss - before.rss) / ends,
  };
}

function flag(name: string): string | undefined {
  const i = Deno.args.indexOf(`--${name}`);
  return i >= 0 ? Deno.args[i + 1] : undefined;
}

if (import.meta.main) {
  const sizes = flag("nodes")?.split(",").map(Number) ?? [4, 16, 64, 100];
  const transports = (flag("transport")?.split(",") ?? ["memory", "tcp"]) as ("memory" | "tcp")[];
  if ((globalThis as { gc?: unknown }).gc === undefined) {
    console.log("(run with --v8-flags=--expose-gc for heap figures after a full GC)");
  }
  console.log("transport  nodes  full mesh  heap/end  rss/end");
  for (const transport of transports) {
    for (const n of sizes) {
      const r = await measureMesh(transport, n);
      console.log(
        `${r.transport.padEnd(9)}  ${String(r.nodes).padStart(5)}  ${
          `${r.meshMs.toFixed(0)} ms`.padStart(9)
        }  ${`${(r.heapPerEnd / 1024).toFixed(1)} KiB`.padStart(8)}  ${
          `${(r.rssPerEnd / 1024).toFixed(1)} KiB`.padStart(7)
        }`,
      );
    }
  }
}
