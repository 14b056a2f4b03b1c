/**
 * One direction of an in-memory socket: a bounded byte queue with optional
 * delivery latency. Internal to `memsocket/`.
 *
 * @module
 */

interface Queued {
  bytes: Uint8Array;
  deliverAt: number;
}

/** Pieces this large or larger are copied into buffers the pipe reuses. */
const REUSED_MIN = 16 * 1024;
/** Buffers a pipe keeps for reuse (their bytes are bounded by its capacity too). */
const REUSED_KEPT = 8;

/**
 * Where a pipe is: `open` carries bytes; `ended` (the writer's FIN: reads
 * drain what is queued, then see the end); `errored` (reset: every read and
 * write fails). `ended` may still move to `errored`; `errored` is terminal.
 */
type PipeState = "open" | "ended" | "errored";

/**
 * A one-way byte queue holding at most `capacity` bytes: a write waits for
 * room, so a reader that stops reading stalls the writer (real
 * backpressure). Each written piece is delivered `latency()` ms after it was
 * written, in order. Errors are Deno's own I/O error classes, so a memory
 * socket fails exactly as a TCP socket does.
 */
export class Pipe {
  readonly #capacity: number;
  readonly #latency: () => number;
  readonly #queue: Queued[] = [];
  #head = 0;
  /** How far the head piece was already read. */
  #headOffset = 0;
  #buffered = 0;
  #state: PipeState = "open";
  #error: Error | undefined;
  /** The reader is gone: accept and drop what is written, as a socket whose reader closed. */
  #discarding = false;
  /**
   * Buffers of pieces already read, for the next large writes: the pipe
   * stands for a kernel's socket buffer, which allocates nothing per write
   * either (fresh memory per write would bound a bulk transfer here).
   */
  readonly #spare: ArrayBuffer[] = [];
  #spareBytes = 0;
  /** Bytes stay queued (not delivered) while held: a partition. */
  #held = false;
  #readable: PromiseWithResolvers<void> | undefined;
  #writable: PromiseWithResolvers<void> | undefined;

  constructor(capacity: number, latency: () => number) {
    this.#capacity = capacity;
    this.#latency = latency;
  }

  /** Bytes written and not yet read. */
  get buffered(): number {
    return this.#buffered;
  }

  /**
   * Queues as much of `data` as fits (waiting while nothing fits) and
   * resolves with the count, as a socket write does.
   */
  async write(data: Uint8Array): Promise<number> {
    while (true) {
      this.#checkWritable();
      if (this.#discarding) return data.length;
      const room = this.#capacity - this.#buffered;
      if (room > 0) {
        // A copy: the writer may reuse its buffer as soon as this resolves.
        const piece = this.#copy(data.subarray(0, room));
        this.#queue.push({ bytes: piece, deliverAt: performance.now() + this.#latency() });
        this.#buffered += piece.length;
        this.#wakeReader();
        return piece.length;
      }
      this.#writable ??= Promise.withResolvers();
      await this.#writable.promise;
    }
  }

  #checkWritable(): void {
    if (this.#state === "errored") throw this.#error!;
    if (this.#state === "ended") throw new Deno.errors.BrokenPipe("write after the pipe ended");
  }

  /**
   * Copies the next delivered bytes into `buffer` and resolves with the
   * count; `null` once the writer ended and everything was read.
   */
  async read(buffer: Uint8Array): Promise<number | null> {
    while (true) {
      if (this.#state === "errored") throw this.#error!;
      const next = this.#queue[this.#head];
      if (next !== undefined && !this.#held) {
        const wait = next.deliverAt - performance.now();
        if (wait > 0) {
          await new Promise((resolve) => setTimeout(resolve, wait));
          continue;
        }
        const available = next.bytes.length - this.#headOffset;
        const n = Math.min(available, buffer.length);
        buffer.set(next.bytes.subarray(this.#headOffset, this.#headOffset + n));
        if (n === available) this.#shift();
        else this.#headOffset += n;
        this.#buffered -= n;
        this.#wakeWriter();
        return n;
      }
      if (this.#state === "ended" && next === undefined) return null;
      this.#readable ??= Promise.withResolvers();
      await this.#readable.promise;
    }
  }

  /** A copy of `data`, in a reused buffer when it is large. */
  #copy(data: Uint8Array): Uint8Array {
    if (data.length < REUSED_MIN) return data.slice();
    const spare = this.#spare;
    let buffer: ArrayBuffer | undefined;
    for (let i = spare.length - 1; i >= 0; i--) {
      if (spare[i].byteLength >= data.length) {
        buffer = spare[i];
        spare[i] = spare[spare.length - 1];
        spare.pop();
        this.#spareBytes -= buffer.byteLength;
        break;
      }
    }
    // Power-of-two sizes, so buffers fit the next pieces of a similar size.
    buffer ??= new ArrayBuffer(2 ** Math.ceil(Math.log2(data.length)));
    const piece = new Uint8Array(buffer, 0, data.length);
    piece.set(data);
    return piece;
  }

  #shift(): void {
    const done = this.#queue[this.#head].bytes;
    const buffer = done.buffer as ArrayBuffer;
    if (
      done.length >= REUSED_MIN && this.#spare.length < REUSED_KEPT &&
      this.#spareBytes + buffer.byteLength <= this.#capacity
    ) {
      this.#spare.push(buffer);
      this.#spareBytes += buffer.byteLength;
    }
    this.#queue[this.#head++] = undefined!;
    this.#headOffset = 0;
    if (this.#head > 1024 && this.#head * 2 > this.#queue.length) {
      this.#queue.splice(0, this.#head);
      this.#head = 0;
    }
  }

  /** The writer's FIN: the reader sees the end after what is queued. */
  end(): void {
    if (this.#state !== "open") return;
    this.#state = "ended";
    this.#wakeReader();
    this.#wakeWriter();
  }

  /** Fails every pending and later read and write with `error`, dropping what is queued. */
  error(error: Error): void {
    if (this.#state === "errored") return;
    this.#state = "errored";
    this.#error = error;
    this.#queue.length = 0;
    this.#head = 0;
    this.#headOffset = 0;
    this.#buffered = 0;
    this.#wakeReader();
    this.#wakeWriter();
  }

  /** The reader is gone: drop what is queued and what is written from now on. */
  discard(): void {
    this.#discarding = true;
    this.#queue.length = 0;
    this.#head = 0;
    this.#headOffset = 0;
    this.#buffered = 0;
    this.#wakeWriter();
  }

  /** Holds (`true`) or releases delivery: bytes queue up, unseen, while held. */
  hold(held: boolean): void {
    this.#held = held;
    if (!held) this.#wakeReader();
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
