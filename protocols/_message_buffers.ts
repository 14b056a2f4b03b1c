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
 * after about a second unused (`_idle_release.ts`).
 *
 * Small messages, at the other end, are views of shared blocks of
 * {@linkcode SMALL_BLOCK} bytes: an `ArrayBuffer` of its own costs each
 * message more than the rest of its way through the receiver (a backing
 * store allocated, and later freed, for each), and a view of an existing one
 * a sixth of that (`bench/alloc_bench.ts`). The price, as with Rust's `Bytes` split off a read buffer
 * or Node's pooled `Buffer`s: a small message kept alive keeps its block,
 * at most {@linkcode SMALL_BLOCK} bytes, alive. Internal to `protocols/`.
 *
 * @module
 */

import { forgetHolder, keptForReuse, releaseIdle } from "../netcore/transport/_idle_release.ts";

/** Messages this large or larger are read into pooled buffers. */
const POOLED_MESSAGE_MIN = 64 * 1024;

/** The block small messages share. */
export const SMALL_BLOCK = 2048;
/** Messages up to this size are views of a shared block (one kept alive keeps its block, 16 times its size at most). */
export const SMALL_MESSAGE_MAX = 128;

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
  /** The block small messages are carved from, and how much of it is used. */
  #block: ArrayBuffer | undefined;
  #blockUsed = 0;

  /** Keeps at most `maxBytes` bytes of buffers; 0 keeps none. */
  constructor(maxBytes: number) {
    this.#maxBytes = maxBytes;
  }

  /**
   * A buffer of `length` bytes (contents undefined) and its release; up to
   * {@linkcode SMALL_MESSAGE_MAX}, a view of a shared block, and below
   * {@linkcode POOLED_MESSAGE_MIN} a fresh array, both with a release that
   * does nothing.
   */
  take(length: number): PooledMessage {
    if (length <= SMALL_MESSAGE_MAX) {
      if (this.#block === undefined || this.#blockUsed + length > SMALL_BLOCK) {
        this.#block = new ArrayBuffer(SMALL_BLOCK);
        this.#blockUsed = 0;
      }
      const bytes = new Uint8Array(this.#block, this.#blockUsed, length);
      this.#blockUsed += length;
      return { bytes, release: NO_RELEASE };
    }
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
