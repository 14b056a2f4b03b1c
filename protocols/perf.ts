/**
 * The libp2p perf protocol, `/perf/1.0.0` (libp2p/specs `perf/perf.md`): the
 * client sends an 8-byte big-endian count of bytes it wants back, uploads its
 * bytes and closes its write side; the server drains the upload, then sends
 * the requested count and closes.
 *
 * How the client times the two phases, identically for every implementation
 * the comparison script runs: upload is from the first byte written until the
 * first byte of the answer arrives (the server answers only after it drained
 * the whole upload) or, with nothing to download, until the stream ends;
 * download is from that first answer byte until the stream ends.
 *
 * @module
 */

import { ByteReader } from "../netcore/byte_reader.ts";
import { NetworkError } from "../netcore/network_error.ts";
import type { Connection } from "../netcore/transport/connection.ts";

/**
 * The protocol id.
 *
 * @example
 * ```ts
 * import { PERF_PROTOCOL } from "./perf.ts";
 * console.log(PERF_PROTOCOL); // "/perf/1.0.0"
 * ```
 */
export const PERF_PROTOCOL = "/perf/1.0.0";

/**
 * Size of the writes both sides make: one yamux frame at most (256 KiB), and
 * four full Noise frames per write rather than one full and one tiny (a 64
 * KiB write plus the 12-byte yamux header needs two).
 */
const BLOCK = 256 * 1024;

/**
 * Options for {@linkcode handlePerf}.
 *
 * @example
 * ```ts
 * import type { PerfServerOptions } from "./perf.ts";
 * const options: PerfServerOptions = { maxDownload: 1024 ** 3 }; // 1 GiB
 * ```
 */
export interface PerfServerOptions {
  /** Largest download a client may ask for, in bytes. Default 16 GiB. */
  maxDownload?: number;
}

async function writeCount(stream: Connection, count: number): Promise<void> {
  // Zero-filled blocks: the content does not matter, and the writer may reuse
  // a chunk once its write says so, so one block serves every write.
  const block = new Uint8Array(Math.min(BLOCK, Math.max(count, 1)));
  let left = count;
  while (left > 0) {
    const n = Math.min(left, block.length);
    const room = stream.write(n === block.length ? block : block.subarray(0, n));
    if (room !== undefined) await room;
    left -= n;
  }
}

/**
 * Serves one perf stream.
 *
 * @throws {NetworkError} `LIMIT_EXCEEDED` for a download over the limit,
 *   `CONNECTION_CLOSED` if the stream ends before the 8-byte count
 * @example
 * ```ts
 * import { handlePerf, PERF_PROTOCOL } from "./perf.ts";
 * import { Libp2pNode } from "../netcore/libp2p_node.ts";
 * import { Multiaddr } from "../netcore/multiaddr.ts";
 * const node = await Libp2pNode.create({ listen: [Multiaddr.parse("/memory/0")] });
 * node.handle(PERF_PROTOCOL, (stream) => handlePerf(stream, { maxDownload: 1 << 30 }));
 * await node.close();
 * ```
 */
export async function handlePerf(
  stream: Connection,
  options: PerfServerOptions = {},
): Promise<void> {
  const maxDownload = options.maxDownload ?? 16 * 1024 ** 3;
  const reader = new ByteReader(stream);
  const header = await reader.readExactly(8);
  const count = Number(new DataView(header.buffer, header.byteOffset, 8).getBigUint64(0));
  if (count > maxDownload) {
    reader.cancelRead();
    throw new NetworkError("LIMIT_EXCEEDED", `perf download of ${count} bytes over the limit`);
  }
  while ((await reader.readSome()) !== undefined) {
    // drain the upload
  }
  await writeCount(stream, count);
  await stream.closeWrite();
}

/**
 * What {@linkcode runPerf} measured.
 *
 * @example
 * ```ts
 * import type { PerfResult } from "./perf.ts";
 * const r: PerfResult = {
 *   uploadBytes: 1 << 20,
 *   downloadBytes: 1 << 20,
 *   uploadMs: 4,
 *   downloadMs: 2,
 * };
 * const mbps = (r.uploadBytes * 8) / (r.uploadMs * 1_000);
 * ```
 */
export interface PerfResult {
  /** Bytes uploaded. */
  uploadBytes: number;
  /** Bytes downloaded. */
  downloadBytes: number;
  /** Upload phase in ms (see the module doc). */
  uploadMs: number;
  /** Download phase in ms. */
  downloadMs: number;
}

/**
 * Runs the perf protocol as the client on `stream`.
 *
 * @throws {NetworkError} `PROTOCOL_VIOLATION` if the server sends more or
 *   fewer bytes than asked for
 * @example
 * ```ts
 * import { handlePerf, PERF_PROTOCOL, runPerf } from "./perf.ts";
 * import { Libp2pNode } from "../netcore/libp2p_node.ts";
 * import { Multiaddr } from "../netcore/multiaddr.ts";
 *
 * const server = await Libp2pNode.create({ listen: [Multiaddr.parse("/memory/0")] });
 * server.handle(PERF_PROTOCOL, (stream) => handlePerf(stream));
 * const client = await Libp2pNode.create();
 * const stream = await client.newStream(server.listenAddrs[0], [PERF_PROTOCOL]);
 * const r = await runPerf(stream, { upload: 1 << 20, download: 1 << 20 });
 * console.log(r.uploadBytes, r.downloadBytes); // 1048576 1048576
 * await client.close();
 * await server.close();
 * ```
 */
export async function runPerf(
  stream: Connection,
  amounts: { upload: number; download: number },
): Promise<PerfResult> {
  const start = performance.now();
  let firstByteAt: number | undefined;
  let received = 0;
  const receiving = (async () => {
    for (let chunk = await stream.read(); chunk !== null; chunk = await stream.read()) {
      if (firstByteAt === undefined && chunk.length > 0) firstByteAt = performance.now();
      received += chunk.length;
    }
  })();
  try {
    const header = new Uint8Array(8);
    new DataView(header.buffer).setBigUint64(0, BigInt(amounts.download));
    const room = stream.write(header);
    if (room !== undefined) await room;
    await writeCount(stream, amounts.upload);
    await stream.closeWrite();
  } catch (err) {
    stream.abort(err);
    await receiving.catch(() => {});
    throw err;
  }
  await receiving;
  const end = performance.now();
  if (received !== amounts.download) {
    throw new NetworkError(
      "PROTOCOL_VIOLATION",
      `perf server sent ${received} bytes, ${amounts.download} were asked for`,
    );
  }
  const uploadEnd = firstByteAt ?? end;
  return {
    uploadBytes: amounts.upload,
    downloadBytes: received,
    uploadMs: uploadEnd - start,
    downloadMs: end - uploadEnd,
  };
}
