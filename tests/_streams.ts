/** Test helpers for streams and promises. */

import type { Connection } from "../netcore/transport/connection.ts";
import { concat } from "./_bytes.ts";

/** Writes `data` on the stream in 64 KiB writes, half-closes, and returns everything read back. */
export async function echoThrough(stream: Connection, data: Uint8Array): Promise<Uint8Array> {
  const writing = (async () => {
    for (let i = 0; i < data.length; i += 65536) await stream.write(data.slice(i, i + 65536));
    await stream.closeWrite();
  })();
  const [back] = await Promise.all([readAllFrom(stream), writing]);
  return back;
}

/** Everything `conn` reads until the peer's end, joined. */
export async function readAllFrom(conn: Connection): Promise<Uint8Array> {
  const chunks: Uint8Array[] = [];
  for (let chunk = await conn.read(); chunk !== null; chunk = await conn.read()) {
    chunks.push(chunk.slice());
  }
  return concat(chunks);
}

/** Whether `promise` settles (either way) within `ms`. */
export async function settlesWithin(promise: Promise<unknown>, ms: number): Promise<boolean> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<boolean>((r) => timer = setTimeout(() => r(false), ms));
  try {
    return await Promise.race([promise.then(() => true, () => true), timeout]);
  } finally {
    clearTimeout(timer);
  }
}
