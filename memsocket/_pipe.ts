/**
 * One direction of an in-memory connection: a bounded byte queue with real
 * backpressure, optional delivery latency, end-of-stream and errors.
 *
 * @module
 */

import { NetworkError } from "../netcore/network_error.ts";

interface Queued {
  bytes: Uint8Array;
  /** When the reader may have it (performance.now() time). */
  deliverAt: number;
}

/** The states of one direction, as in TCP: open, ended by the writer (FIN), or errored (RST). */
type PipeState = "open" | "ended" | "errored";

/**
 * A bounded queue of copied chunks. The writer waits while `capacity` bytes
 * are unread; a chunk larger than the capacity is split so the bound holds.
 */
export class Pipe {
  readonly #capacity: number;
  readonly #latency: () => number;
  readonly #queue: Queued[] = [];
  #head = 0;
  #buffered = 0;
  #state: PipeState = "open";
  #error: NetworkError | undefined;
  /** The reader stopped reading: writes are accepted and dropped. */
  #discarding = false;
  #readable: PromiseWithResolvers<void> | undefined;
  #writable: PromiseWithResolvers<void> | undefined;

  constructor(capacity: number, latency: () => number) {
    this.#capacity = capacity;
    this.#latency = latency;
  }

  /** Unread bytes. */
  get buffered(): number {
    return this.#buffered;
  }

  /** Copies `chunk` in, waiting for room; rejects once the pipe ended or errored. */
  async write(chunk: Uint8Array): Promise<void> {
    let offset = 0;
    while (offset < chunk.length) {
      this.#checkWritable();
      if (this.#discarding) return;
      const room = this.#capacity - this.#buffered;
      if (room <= 0) {
        this.#writable ??= Promise.withResolvers();
        await this.#writable.promise;
        continue;
      }
      const piece = chunk.slice(offset, offset + room);
      offset += piece.length;
      this.#queue.push({ bytes: piece, deliverAt: performance.now() + this.#latency() });
      this.#buffered += piece.length;
      this.#wakeReader();
    }
  }

  #checkWritable(): void {
    if (this.#state === "errored") throw this.#error!;
    if (this.#state === "ended") {
      throw new NetworkError("CONNECTION_CLOSED", "write after the stream was closed");
    }
  }

  /** The next chunk, or `null` at the end of the stream. */
  async read(): Promise<Uint8Array | null> {
    while (true) {
      if (this.#state === "errored") throw this.#error!;
      const next = this.#queue[this.#head];
      if (next !== undefined) {
        const wait = next.deliverAt - performance.now();
        if (wait > 0) {
          await new Promise((resolve) => setTimeout(resolve, wait));
          continue;
        }
        this.#queue[this.#head++] = undefined!;
        if (this.#head > 1024 && this.#head * 2 > this.#queue.length) {
          this.#queue.splice(0, this.#head);
          this.#head = 0;
        }
        this.#buffered -= next.bytes.length;
        this.#wakeWriter();
        return next.bytes;
      }
      if (this.#state === "ended") return null;
      this.#readable ??= Promise.withResolvers();
      await this.#readable.promise;
    }
  }

  /** The writer is done (FIN): the reader gets the rest, then `null`. */
  end(): void {
    if (this.#state !== "open") return;
    this.#state = "ended";
    this.#wakeReader();
    this.#wakeWriter();
  }

  /** Drops everything; pending and later reads and writes reject with `error`. */
  error(error: NetworkError): void {
    if (this.#state === "errored") return;
    this.#state = "errored";
    this.#error = error;
    this.#queue.length = 0;
    this.#head = 0;
    this.#buffered = 0;
    this.#wakeReader();
    this.#wakeWriter();
  }

  /** The reader will not read again: free what is queued, accept and drop later writes. */
  discard(): void {
    this.#discarding = true;
    this.#queue.length = 0;
    this.#head = 0;
    this.#buffered = 0;
    this.#wakeWriter();
  }

  #wakeReader(): void {
    const waiter = this.#readable;
    this.#readable = undefined;
    waiter?.resolve();
  }

  #wakeWriter(): void {
    const waiter = this.#writable;
    this.#writable = undefined;
    waiter?.resolve();
  }
}
