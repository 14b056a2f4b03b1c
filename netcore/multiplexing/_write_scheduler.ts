/**
 * The write side of a yamux session: frames from every stream, and the
 * session's own, go down to the connection in the order the scheduler picks,
 * with backpressure to the stream writers. Internal to
 * `netcore/multiplexing`.
 *
 * Frames are handed to the connection as they come while it takes them; the
 * socket at the bottom corks what one turn writes into one system call, so
 * nothing is held back here. Frames queue only while the connection below
 * asks to wait, and the stream writers wait once the queue passes its
 * high-water mark.
 *
 * @module
 */

import { BufferPool } from "../_bytes.ts";
import type { Series } from "../metrics.ts";
import { NetworkError } from "../network_error.ts";
import type { ByteSink } from "../transport/connection.ts";
import { type FrameType, HEADER_LENGTH, writeFrameHeader } from "./frame.ts";

/** Data frames this large come from the scheduler's frame pool. */
const POOLED_FRAME_MIN = 16 * 1024;
/** Frame buffers the pool keeps for reuse. */
const FRAME_POOL_SIZE = 4;
/**
 * Header-only frames (window updates, ping answers, resets) queued and not
 * yet written; beyond it the peer floods us without reading and is dropped.
 */
const MAX_QUEUED_CONTROL_FRAMES = 64 * 1024;

/** What the scheduler counts. */
export interface WriteSchedulerMetrics {
  /** Bytes of frames written, headers included. */
  bytes: Series;
  /** Frames written. */
  frames: Series;
}

/** Options of {@linkcode WriteScheduler}. */
export interface WriteSchedulerOptions {
  /** Bytes queued above which stream writers wait. */
  highWater: number;
  /** The largest Data frame body, for the pool's buffer size. */
  maxFrameSize: number;
  /** Counters to add to. */
  metrics: WriteSchedulerMetrics;
  /** The connection failed a write, or the peer provokes frames without reading them. */
  onError(error: NetworkError): void;
}

/** The frame queue of one session. */
export class WriteScheduler {
  readonly #sink: ByteSink;
  readonly #options: WriteSchedulerOptions;
  #queue: Uint8Array[] = [];
  #head = 0;
  #queuedBytes = 0;
  #queuedControl = 0;
  /** The connection asked to wait: its write promise has not resolved. */
  #blocked = false;
  #closed = false;
  #drain: PromiseWithResolvers<void> | undefined;
  #idle: PromiseWithResolvers<void> | undefined;
  /** Large frame buffers for reuse. */
  readonly #pool: BufferPool;

  /** Writes frames to `sink` (the connection under the session). */
  constructor(sink: ByteSink, options: WriteSchedulerOptions) {
    this.#sink = sink;
    this.#options = options;
    this.#pool = new BufferPool(FRAME_POOL_SIZE, HEADER_LENGTH + options.maxFrameSize);
  }

  /** Queues a complete frame (header and body in one buffer) for the wire. */
  send(frame: Uint8Array): void {
    if (this.#closed) return;
    this.#queue.push(frame);
    this.#queuedBytes += frame.length;
    if (!this.#blocked) this.#pump();
  }

  /** Queues a header-only frame; a peer that provokes too many without reading is an error. */
  sendHeader(type: FrameType, flags: number, streamId: number, length: number): void {
    if (this.#closed) return;
    if (this.#blocked && ++this.#queuedControl > MAX_QUEUED_CONTROL_FRAMES) {
      this.#options.onError(
        new NetworkError("LIMIT_EXCEEDED", "yamux: peer does not read the frames it provokes"),
      );
      return;
    }
    const frame = new Uint8Array(HEADER_LENGTH);
    writeFrameHeader(frame, 0, type, flags, streamId, length);
    this.send(frame);
  }

  /**
   * A buffer of exactly `length` bytes for a frame given to `send` next.
   * Data frames of at least {@linkcode POOLED_FRAME_MIN} bytes come from a
   * few buffers that go back to the pool once the connection took them
   * (the connection contract lets us reuse a chunk then), so bulk transfers
   * allocate no frame per write. Its contents are undefined.
   */
  frameBuffer(length: number): Uint8Array {
    return length < POOLED_FRAME_MIN ? new Uint8Array(length) : this.#pool.take(length);
  }

  /** A promise while the queue is above its high-water mark, else `undefined`. */
  drained(): Promise<void> | undefined {
    if (this.#queuedBytes <= this.#options.highWater || this.#closed) return undefined;
    this.#drain ??= Promise.withResolvers<void>();
    return this.#drain.promise;
  }

  /** Hands frames down until the connection asks to wait or none is left. */
  #pump(): void {
    while (this.#head < this.#queue.length && !this.#closed) {
      const frame = this.#next();
      let room: Promise<void> | undefined;
      try {
        room = this.#sink.write(frame);
      } catch (err) {
        room = Promise.reject(err);
      }
      if (room === undefined) {
        this.#recycle(frame);
        continue;
      }
      this.#blocked = true;
      room.then(() => {
        this.#blocked = false;
        this.#queuedControl = 0;
        this.#recycle(frame);
        this.#pump();
      }, (err) => {
        this.#options.onError(NetworkError.wrap(err, "CONNECTION_RESET", "yamux: write failed"));
      });
      return;
    }
    this.#queuedControl = 0;
    if (this.#idle !== undefined) {
      const idle = this.#idle;
      this.#idle = undefined;
      idle.resolve();
    }
  }

  /** The next frame to write (first in, first out), counted and out of the queue. */
  #next(): Uint8Array {
    const frame = this.#queue[this.#head];
    this.#queue[this.#head++] = EMPTY;
    if (this.#head === this.#queue.length) {
      this.#queue = [];
      this.#head = 0;
    }
    this.#queuedBytes -= frame.length;
    this.#options.metrics.bytes.inc(frame.length);
    this.#options.metrics.frames.inc();
    if (this.#drain !== undefined && this.#queuedBytes <= this.#options.highWater / 2) {
      const drain = this.#drain;
      this.#drain = undefined;
      drain.resolve();
    }
    return frame;
  }

  #recycle(frame: Uint8Array): void {
    if (frame.length >= POOLED_FRAME_MIN) this.#pool.give(frame);
  }

  /** Resolves when everything queued was handed to the connection. */
  idle(): Promise<void> {
    if (this.#head >= this.#queue.length && !this.#blocked) return Promise.resolve();
    this.#idle ??= Promise.withResolvers<void>();
    return this.#idle.promise;
  }

  /** Writes what is queued, then half-closes the connection. */
  async shutdown(): Promise<void> {
    if (this.#closed) return;
    await this.idle();
    this.close();
    await this.#sink.closeWrite().catch(() => {});
  }

  /** Drops what is queued and takes no more frames; waiting writers go on (and fail). */
  close(): void {
    this.#closed = true;
    this.#queue = [];
    this.#head = 0;
    this.#queuedBytes = 0;
    const drain = this.#drain;
    this.#drain = undefined;
    drain?.resolve();
    const idle = this.#idle;
    this.#idle = undefined;
    idle?.resolve();
  }
}

const EMPTY = new Uint8Array(0);
