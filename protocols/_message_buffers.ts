/**
 * Buffers for large received messages, which the application may give
 * back. Each receiver owns the message it is handed, so without this every
 * large message costs fresh memory, and fresh memory costs page faults: at
 * a broadcast of megabyte messages the faults, not the cipher, bound the
 * receiving process. An application that is done with a message calls its
 * event's `release()`, and the next message of a similar size reuses the
 * buffer; one that does not simply leaves it to the garbage collector.
 *
 * Buffers come in power-of-two sizes from {@linkcode POOLED_MESSAGE_MIN}
 * up, the pool keeps at most `maxBytes` of them, and drops all it keeps
 * after about a second unused (`_idle_release.ts`). Internal to
 * `protocols/`.
 *
 * @module
 */

import { forgetHolder, keptForReuse, releaseIdle } from "../netcore/transport/_idle_release.ts";

/** Messages this large or larger are read into pooled buffers. */
const POOLED_MESSAGE_MIN = 64 * 1024;

/** Does nothing: the release of a message that came from no pool. */
const NO_RELEASE = (): void => {};

/** A message's bytes and the way to give them back. */
export interface PooledMessage {
  /** The message: a view of exactly its length. */
  readonly bytes: Uint8Array;
  /** Gives the buffer back (once; later calls do nothing). */
  readonly release: () => void;
}

/** The pool of one receiver (a DirectSend protocol). */
export class MessageBuffers {
  readonly #maxBytes: number;
  /** Kept buffers by size (a power of two). */
  #kept = new Map<number, ArrayBuffer[]>();
  #keptBytes = 0;

  /** Keeps at most `maxBytes` bytes of buffers; 0 keeps none. */
  constructor(maxBytes: number) {
    this.#maxBytes = maxBytes;
  }

  /**
   * A buffer of `length` bytes (contents undefined) and its release; below
   * {@linkcode POOLED_MESSAGE_MIN}, a fresh array and a release that does
   * nothing.
   */
  take(length: number): PooledMessage {
    if (length < POOLED_MESSAGE_MIN || this.#maxBytes === 0) {
      return { bytes: new Uint8Array(length), release: NO_RELEASE };
    }
    const size = 2 ** Math.ceil(Math.log2(length));
    let buffer = this.#kept.get(size)?.pop();
    if (buffer !== undefined) this.#keptBytes -= size;
    else buffer = new ArrayBuffer(size);
    const taken = buffer;
    let released = false;
    return {
      bytes: new Uint8Array(taken, 0, length),
      release: () => {
        if (released) return;
        released = true;
        this.#give(taken);
      },
    };
  }

  #give(buffer: ArrayBuffer): void {
    const size = buffer.byteLength;
    if (this.#keptBytes + size > this.#maxBytes) return;
    let list = this.#kept.get(size);
    if (list === undefined) this.#kept.set(size, list = []);
    list.push(buffer);
    this.#keptBytes += size;
    keptForReuse(this);
  }

  /** Idle for a while: what is kept goes. */
  [releaseIdle](): void {
    this.#kept = new Map();
    this.#keptBytes = 0;
  }

  /** Drops what is kept (the receiver closed). */
  clear(): void {
    this[releaseIdle]();
    forgetHolder(this);
  }
}
