/**
 * Test helper: two `Duplex` ends joined by in-process pipes (a TransformStream
 * each way), for protocols that only need readable/writable pairs.
 */

import type { Duplex } from "../netcore/transport/connection.ts";

/** Two joined ends, and copies of every chunk written each way. */
export interface DuplexPair {
  /** One end: reads what `b` writes. */
  a: Duplex;
  /** The other end: reads what `a` writes. */
  b: Duplex;
  /** A copy of each chunk `a` wrote, in order, chunk boundaries kept. */
  aToB: Uint8Array[];
  /** A copy of each chunk `b` wrote, in order, chunk boundaries kept. */
  bToA: Uint8Array[];
}

/**
 * A pipe pair. Each direction buffers `highWaterMark` chunks (default 16), as
 * a socket does, so a write does not wait for the peer to read. Every chunk is
 * recorded (copied, since the writer may reuse its buffer) so tests can check
 * what went out in one write.
 *
 * @example
 * ```ts
 * const { a, b, aToB } = duplexPair();
 * const writer = a.writable.getWriter();
 * await writer.write(new Uint8Array([1, 2]));
 * await b.readable.getReader().read(); // { value: Uint8Array [1, 2], done: false }
 * aToB; // [Uint8Array [1, 2]]
 * ```
 */
export function duplexPair(highWaterMark = 16): DuplexPair {
  const aToB: Uint8Array[] = [];
  const bToA: Uint8Array[] = [];
  const recorder = (log: Uint8Array[]) =>
    new TransformStream<Uint8Array, Uint8Array>(
      {
        transform(chunk, controller) {
          log.push(chunk.slice());
          controller.enqueue(chunk);
        },
      },
      { highWaterMark },
      { highWaterMark },
    );
  const ab = recorder(aToB);
  const ba = recorder(bToA);
  return {
    a: { readable: ba.readable, writable: ab.writable },
    b: { readable: ab.readable, writable: ba.writable },
    aToB,
    bToA,
  };
}
