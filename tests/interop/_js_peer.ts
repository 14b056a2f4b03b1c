/**
 * Test harness for interop with js-libp2p: start a js-libp2p peer
 * (`bench/js_libp2p/node.ts`) in its own process, learn its multiaddr and
 * peer id, drive it as a client, stop it.
 *
 * The pinned js-libp2p packages are installed on first use
 * (`ensureInstalled()` of `bench/js_libp2p/install.ts`: one `npm ci` even
 * when several test files ask at once under `deno test --parallel`).
 *
 * @module
 */

import {
  type ClientResult,
  type ListeningNode,
  runClient,
  startListener,
} from "../../bench/_process.ts";
import { ensureInstalled } from "../../bench/js_libp2p/install.ts";

export type { ClientResult, ListeningNode };

/** Options for {@linkcode startJsPeer}. */
export interface JsPeerOptions {
  /** The `--listen` multiaddr. Default: `/ip4/127.0.0.1/tcp/0`. */
  listen?: string;
  /** How long to wait for it to listen, ms. Default: 30 000. */
  timeoutMs?: number;
}

/**
 * Starts a js-libp2p listener serving `/ipfs/ping/1.0.0`, `/perf/1.0.0` and
 * `/echo/1.0.0` over TCP + Noise XX + yamux.
 *
 * @throws {Error} when the js-libp2p packages cannot be installed or the peer does not start.
 * @example
 * ```ts
 * await using peer = await startJsPeer();
 * console.log(peer.multiaddr, peer.peerId); // /ip4/127.0.0.1/tcp/N/p2p/12D3KooW... 12D3KooW...
 * ```
 */
export async function startJsPeer(options: JsPeerOptions = {}): Promise<ListeningNode> {
  await ensureInstalled();
  return await startListener("js-libp2p", {
    listen: options.listen ?? "/ip4/127.0.0.1/tcp/0",
    timeoutMs: options.timeoutMs,
  });
}

/**
 * Runs the js-libp2p node as a client (`ping`, `echo`, `perf`, `connect`
 * with the CLI contract's arguments), e.g. to dial our listener.
 *
 * @example
 * ```ts
 * const r = await runJsClient(["ping", addr, "--count", "10"]);
 * if (r.code !== 0) throw new Error(r.stderr);
 * ```
 */
export async function runJsClient(
  args: readonly string[],
  timeoutMs = 60_000,
): Promise<ClientResult> {
  await ensureInstalled();
  return await runClient("js-libp2p", args, timeoutMs);
}
