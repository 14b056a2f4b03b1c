/**
 * A connected pair that records what each side writes: for tests that check
 * the messages on the wire (how many writes, their bytes).
 */

import { ForwardingConnection } from "../netcore/transport/byte_connection.ts";
import type { Connection } from "../netcore/transport/connection.ts";
import { memoryPair } from "./_pair.ts";

/** A connection that copies every chunk written into `log` before passing it on. */
class RecordingConnection extends ForwardingConnection {
  readonly #log: Uint8Array[];

  constructor(inner: Connection, log: Uint8Array[]) {
    super(inner);
    this.#log = log;
  }

  override write(chunk: Uint8Array): Promise<void> | undefined {
    this.#log.push(chunk.slice());
    return super.write(chunk);
  }
}

/** Two connected ends and what each wrote, chunk by chunk. */
export interface RecordingPair {
  /** One end. */
  a: Connection;
  /** The other end. */
  b: Connection;
  /** Chunks `a` wrote, in order (copies). */
  aToB: Uint8Array[];
  /** Chunks `b` wrote, in order (copies). */
  bToA: Uint8Array[];
}

/**
 * A connected pair over memory whose writes are recorded.
 *
 * @example
 * ```ts
 * const { a, b, aToB } = recordingPair();
 * await a.write(new Uint8Array([1]));
 * console.log(aToB.length); // 1
 * ```
 */
export function recordingPair(): RecordingPair {
  const [x, y] = memoryPair();
  const aToB: Uint8Array[] = [];
  const bToA: Uint8Array[] = [];
  return { a: new RecordingConnection(x, aToB), b: new RecordingConnection(y, bToA), aToB, bToA };
}
