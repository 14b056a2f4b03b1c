/**
 * Priorities under load: the latency of 64-byte high-priority DirectSend
 * messages sent every millisecond while one 64 MiB low-priority message
 * crosses the same connection, with yamux's priority lanes on and off. Two
 * nodes over TCP on loopback, in one process (both clocks are one).
 *
 * ```sh
 * deno run -A bench/priority.ts [--bytes N] [--runs N]
 * ```
 *
 * Prints p50, p99 and max of the high-priority messages' latency for each
 * setting, and the ratio of the p99s (on / off).
 *
 * @module
 */

import { Ed25519Identity } from "../netcore/identity/mod.ts";
import { Logger } from "../netcore/log.ts";
import { MetricsRegistry } from "../netcore/metrics.ts";
import { Multiaddr } from "../netcore/multiaddr.ts";
import { PeerManager } from "../netcore/peer/mod.ts";
import { TcpTransport } from "../netcore/transport/tcp_transport.ts";
import { libp2pUpgrade } from "../netcore/upgrade/mod.ts";
import { DirectSend } from "../protocols/direct_send.ts";

/** Latencies of one run, in ms. */
export interface PriorityResult {
  /** Whether yamux's priority lanes were on. */
  prioritized: boolean;
  /** High-priority messages measured. */
  count: number;
  p50: number;
  p99: number;
  max: number;
  /** How long the bulk message took, ms. */
  bulkMs: number;
}

function quantile(sorted: number[], q: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))];
}

/** One run: a bulk message of `bytes` and 64-byte urgent messages every ms alongside. */
export async function measurePriority(
  prioritized: boolean,
  bytes: number,
): Promise<PriorityResult> {
  const quiet = new Logger({}, "error");
  const metrics = new MetricsRegistry().scope({ network: "bench" });
  const node = (identity: Ed25519Identity) =>
    PeerManager.create({
      identity,
      upgrade: libp2pUpgrade(identity, { yamux: { prioritized }, metrics, logger: quiet }),
      transports: [new TcpTransport()],
      listen: [Multiaddr.parse("/ip4/127.0.0.1/tcp/0")],
      metrics,
      logger: quiet,
    });
  const [a, b] = await Promise.all([
    node(Ed25519Identity.generate()),
    node(Ed25519Identity.generate()),
  ]);
  const protocols = (manager: PeerManager) => ({
    bulk: new DirectSend({ manager, protocol: "/bench/bulk/1.0.0", priority: "low", metrics }),
    urgent: new DirectSend({ manager, protocol: "/bench/urgent/1.0.0", priority: "high", metrics }),
  });
  const [pa, pb] = [protocols(a), protocols(b)];
  for (const p of [pa, pb]) {
    p.bulk.start();
    p.urgent.start();
  }
  try {
    await a.dial(b.peerId, b.listenAddrs);
    // Warm the urgent stream up, so its first message does not measure the stream's opening.
    await pa.urgent.sendTo(b.peerId, new Uint8Array(64));
    await pb.urgent.receive();
    const latencies: number[] = [];
    let bulkDone = false;
    const receiving = (async () => {
      while (true) {
        const event = await pb.urgent.receive();
        if (event === undefined || event.type !== "message") return;
        const sent = new DataView(event.message.buffer, event.message.byteOffset).getFloat64(0);
        latencies.push(performance.now() - sent);
      }
    })();
    const bulkReceived = (async () => {
      const event = await pb.bulk.receive();
      if (event?.type !== "message" || event.message.length !== bytes) {
        throw new Error("the bulk message did not arrive whole");
      }
    })();
    // Written before it is sent, as an application's message is: a buffer
    // never written costs a page fault per page on its first read.
    const message = new Uint8Array(bytes).fill(0x5a);
    const start = performance.now();
    const bulk = pa.bulk.sendTo(b.peerId, message).then(() => bulkReceived)
      .then(() => bulkDone = true);
    const urgent = (async () => {
      while (!bulkDone) {
        const message = new Uint8Array(64);
        new DataView(message.buffer).setFloat64(0, performance.now());
        await pa.urgent.sendTo(b.peerId, message);
        await new Promise((resolve) => setTimeout(resolve, 1));
      }
    })();
    await bulk;
    const bulkMs = performance.now() - start;
    await urgent;
    await pa.urgent.end(b.peerId);
    await new Promise((resolve) => setTimeout(resolve, 50));
    const sorted = latencies.sort((x, y) => x - y);
    await pb.urgent.close();
    await receiving;
    return {
      prioritized,
      count: sorted.length,
      p50: quantile(sorted, 0.5),
      p99: quantile(sorted, 0.99),
      max: sorted[sorted.length - 1],
      bulkMs,
    };
  } finally {
    for (const p of [pa, pb]) {
      await p.bulk.close();
      await p.urgent.close();
    }
    await Promise.all([a.close(), b.close()]);
  }
}

function flag(name: string, fallback: number): number {
  const i = Deno.args.indexOf(`--${name}`);
  return i >= 0 ? Number(Deno.args[i + 1]) : fallback;
}

if (import.meta.main) {
  const bytes = flag("bytes", 64 * 1024 * 1024);
  const runs = flag("runs", 3);
  const results: Record<string, PriorityResult[]> = { on: [], off: [] };
  for (let r = 0; r < runs; r++) {
    for (const prioritized of [true, false]) {
      results[prioritized ? "on" : "off"].push(await measurePriority(prioritized, bytes));
    }
  }
  const median = (xs: number[]) => xs.sort((x, y) => x - y)[Math.floor(xs.length / 2)];
  console.log(
    `priority: 64-byte high-priority messages every 1 ms during one ${bytes}-byte low-priority message, ${runs} run(s), medians`,
  );
  for (const key of ["on", "off"]) {
    const rs = results[key];
    console.log(
      `priorities ${key.padEnd(3)}: p50 ${median(rs.map((r) => r.p50)).toFixed(2)} ms  p99 ${
        median(rs.map((r) => r.p99)).toFixed(2)
      } ms  max ${median(rs.map((r) => r.max)).toFixed(2)} ms  (${
        median(rs.map((r) => r.count))
      } messages, bulk ${median(rs.map((r) => r.bulkMs)).toFixed(0)} ms)`,
    );
  }
  const on = median(results.on.map((r) => r.p99));
  const off = median(results.off.map((r) => r.p99));
  console.log(`p99 on/off: ${(on / off).toFixed(3)} (target <= 0.1)`);
}
