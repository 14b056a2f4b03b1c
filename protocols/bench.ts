/**
 * The bench protocols of the command-line node, on the project's own RPC
 * and DirectSend (`cli.ts listen` serves them; `cli.ts rpc`, `send` and
 * `priority` drive them; `bench/compare.ts` times them against js-libp2p):
 *
 * - RPC `/validator-network/bench/rpc/1.0.0`: the response is the
 *   request's bytes;
 * - DirectSend `/validator-network/bench/send/1.0.0`: the server counts a
 *   peer's messages and, when the peer ends its stream, sends the count back
 *   (8 bytes, big-endian) on the same protocol.
 *
 * @module
 */

import type { PeerId } from "../netcore/identity/peer_id.ts";
import type { Metrics } from "../netcore/metrics.ts";
import { NetworkError } from "../netcore/network_error.ts";
import type { PeerManager } from "../netcore/peer/peer_manager.ts";
import { DirectSend } from "./direct_send.ts";
import { Rpc } from "./rpc.ts";

/**
 * The bench RPC protocol: the response is the request.
 *
 * @example
 * ```ts
 * import { BENCH_RPC_PROTOCOL } from "./bench.ts";
 * console.log(BENCH_RPC_PROTOCOL); // "/validator-network/bench/rpc/1.0.0"
 * ```
 */
export const BENCH_RPC_PROTOCOL = "/validator-network/bench/rpc/1.0.0";

/**
 * The bench DirectSend protocol: messages counted, the count answered at the end.
 *
 * @example
 * ```ts
 * import { BENCH_SEND_PROTOCOL } from "./bench.ts";
 * console.log(BENCH_SEND_PROTOCOL); // "/validator-network/bench/send/1.0.0"
 * ```
 */
export const BENCH_SEND_PROTOCOL = "/validator-network/bench/send/1.0.0";

/** Large enough for the bench's largest messages. */
const MAX_MESSAGE = 64 * 1024 * 1024;

function count8(n: number): Uint8Array {
  const out = new Uint8Array(8);
  new DataView(out.buffer).setBigUint64(0, BigInt(n));
  return out;
}

/**
 * Serves both bench protocols on `manager` until the returned function is
 * called (which stops them).
 *
 * @example
 * ```ts ignore
 * const stop = serveBench(node.manager);
 * // ...
 * await stop();
 * ```
 */
export function serveBench(manager: PeerManager, metrics?: Metrics): () => Promise<void> {
  const rpc = new Rpc({
    manager,
    protocol: BENCH_RPC_PROTOCOL,
    metrics,
    maxRequestSize: MAX_MESSAGE,
  });
  const send = new DirectSend({
    manager,
    protocol: BENCH_SEND_PROTOCOL,
    metrics,
    maxMessageSize: MAX_MESSAGE,
  });
  rpc.start();
  send.start();
  const serving = Promise.all([
    (async () => {
      for await (const request of rpc) request.respond(request.request).catch(() => {});
    })(),
    (async () => {
      const counts = new Map<string, number>();
      for await (const event of send) {
        const key = event.peer.toString();
        if (event.type === "message") {
          counts.set(key, (counts.get(key) ?? 0) + 1);
          // Counted, done with: a large message's buffer serves the next one.
          event.release();
          continue;
        }
        const n = counts.get(key) ?? 0;
        counts.delete(key);
        send.sendTo(event.peer, count8(n)).catch(() => {});
      }
    })(),
  ]);
  return async () => {
    await rpc.close();
    await send.close();
    await serving;
  };
}

/** What {@linkcode runRpcBench} measured. */
export interface RpcBenchResult {
  /** Each request's latency, ms. */
  latenciesMs: number[];
  /** The whole run, ms. */
  elapsedMs: number;
}

/**
 * `count` requests of `bytes` bytes to `peer`, `concurrency` in flight at
 * once; each response is checked against its request.
 *
 * @example
 * ```ts ignore
 * const { latenciesMs, elapsedMs } = await runRpcBench(manager, peer, { count: 1000, concurrency: 32, bytes: 64 });
 * ```
 */
export async function runRpcBench(
  manager: PeerManager,
  peer: PeerId,
  options: { count: number; concurrency: number; bytes: number },
): Promise<RpcBenchResult> {
  const rpc = new Rpc({
    manager,
    protocol: BENCH_RPC_PROTOCOL,
    maxConcurrentOutbound: Math.max(options.concurrency, 1),
    maxRequestSize: MAX_MESSAGE,
    maxResponseSize: MAX_MESSAGE,
  });
  const latenciesMs: number[] = [];
  let next = 0;
  const start = performance.now();
  const worker = async () => {
    const request = new Uint8Array(options.bytes);
    crypto.getRandomValues(request.subarray(0, Math.min(request.length, 65536)));
    while (next < options.count) {
      next++;
      const t = performance.now();
      const response = await rpc.request(peer, request);
      latenciesMs.push(performance.now() - t);
      if (response.length !== request.length || response[0] !== request[0]) {
        throw new NetworkError("PROTOCOL_VIOLATION", "the response differs from the request");
      }
    }
  };
  await Promise.all(Array.from({ length: Math.max(options.concurrency, 1) }, worker));
  const elapsedMs = performance.now() - start;
  await rpc.close();
  return { latenciesMs, elapsedMs };
}

/**
 * `count` one-way messages of `bytes` bytes to `peer`, then the end of the
 * stream; resolves when the server's count arrives, with the time and the
 * count.
 *
 * @example
 * ```ts ignore
 * const { elapsedMs, counted } = await runSendBench(manager, peer, { count: 100_000, bytes: 64 });
 * ```
 */
export async function runSendBench(
  manager: PeerManager,
  peer: PeerId,
  options: { count: number; bytes: number },
): Promise<{ elapsedMs: number; counted: number }> {
  const send = new DirectSend({
    manager,
    protocol: BENCH_SEND_PROTOCOL,
    maxMessageSize: MAX_MESSAGE,
  });
  send.start();
  try {
    const message = new Uint8Array(options.bytes);
    const start = performance.now();
    const pending: Promise<void>[] = [];
    for (let i = 0; i < options.count; i++) {
      pending.push(send.sendTo(peer, message));
      // A bounded window of outstanding sends: the queue's backpressure does the rest.
      if (pending.length >= 1024) {
        await Promise.all(pending);
        pending.length = 0;
      }
    }
    await Promise.all(pending);
    await send.end(peer);
    let event = await send.receive();
    while (event !== undefined && event.type !== "message") event = await send.receive();
    const elapsedMs = performance.now() - start;
    if (event === undefined || event.message.length !== 8) {
      throw new NetworkError("PROTOCOL_VIOLATION", "no count from the server");
    }
    const counted = Number(
      new DataView(event.message.buffer, event.message.byteOffset).getBigUint64(0),
    );
    return { elapsedMs, counted };
  } finally {
    await send.close();
  }
}

/**
 * Priorities under load: one low-priority DirectSend message of `bytes`
 * bytes to `peer` while a 64-byte high-priority RPC goes every millisecond;
 * the RPCs' round trips, ms.
 *
 * @example
 * ```ts ignore
 * const latencies = await runPriorityBench(manager, peer, { bytes: 64 * 1024 * 1024 });
 * ```
 */
export async function runPriorityBench(
  manager: PeerManager,
  peer: PeerId,
  options: { bytes: number },
): Promise<number[]> {
  const urgent = new Rpc({ manager, protocol: BENCH_RPC_PROTOCOL, priority: "high" });
  const bulk = new DirectSend({
    manager,
    protocol: BENCH_SEND_PROTOCOL,
    priority: "low",
    maxMessageSize: MAX_MESSAGE,
  });
  bulk.start();
  try {
    const ping = new Uint8Array(64);
    // The stream setup is not what is measured.
    await urgent.request(peer, ping);
    const latencies: number[] = [];
    let done = false;
    // Written before it is sent, as an application's message is: a buffer
    // never written costs a page fault per page on its first read, which is
    // the benchmark's artefact, not the network's.
    const message = new Uint8Array(options.bytes).fill(0x5a);
    const bulkSent = bulk.sendTo(peer, message)
      .then(() => bulk.end(peer))
      .then(async () => {
        let event = await bulk.receive();
        while (event !== undefined && event.type !== "message") event = await bulk.receive();
      })
      .finally(() => done = true);
    while (!done) {
      const t = performance.now();
      await urgent.request(peer, ping);
      latencies.push(performance.now() - t);
      await new Promise((resolve) => setTimeout(resolve, 1));
    }
    await bulkSent;
    return latencies;
  } finally {
    await urgent.close();
    await bulk.close();
  }
}
