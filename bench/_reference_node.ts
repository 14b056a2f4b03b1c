/**
 * What the reference nodes (`bench/js_libp2p/node.ts`, `bench/raw_tcp_node.ts`)
 * share beyond the command-line contract of `protocols/cli_contract.ts`: the
 * sizes that make every implementation do the same work, waiting for a
 * signal in `listen`, and random payloads.
 *
 * @module
 */

/**
 * The size of every write the benchmark clients and servers make, in bytes:
 * the same as `protocols/perf.ts` writes, so every implementation does the
 * same work (four full Noise frames per write).
 */
export const CHUNK_SIZE = 256 * 1024;
/** The ping payload size, from libp2p/specs `ping/ping.md`. */
export const PING_SIZE = 32;

/**
 * Resolves when the process gets SIGINT or SIGTERM, for `listen`.
 *
 * @example
 * ```ts
 * await untilSignalled();
 * ```
 */
export function untilSignalled(): Promise<Deno.Signal> {
  return new Promise((resolve) => {
    for (const signal of ["SIGINT", "SIGTERM"] as const) {
      Deno.addSignalListener(signal, () => resolve(signal));
    }
  });
}

/**
 * Fills a buffer of any size with random bytes (`getRandomValues` caps one call at 64 KiB).
 *
 * @example
 * ```ts
 * randomBytes(100_000).length; // 100000
 * ```
 */
export function randomBytes(length: number): Uint8Array {
  const out = new Uint8Array(length);
  for (let i = 0; i < length; i += 65536) {
    crypto.getRandomValues(out.subarray(i, Math.min(length, i + 65536)));
  }
  return out;
}
