/** Test helpers for streams and promises. */

import type { Duplex } from "../netcore/transport/connection.ts";
import { readAll } from "./_bytes.ts";

/** Writes `data` on the stream in 64 KiB writes, half-closes, and returns everything read back. */
export async function echoThrough(stream: Duplex, data: Uint8Array): Promise<Uint8Array> {
  const writer = stream.writable.getWriter();
  const writing = (async () => {
    for (let i = 0; i < data.length; i += 65536) await writer.write(data.slice(i, i + 65536));
    await writer.close();
  })();
  const [back] = await Promise.all([readAll(stream.readable), writing]);
  return back;
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
