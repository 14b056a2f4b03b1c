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
 * Queued frames wait in lanes, served in order: control frames (window
 * updates, pings, GoAway) first, then each priority class (`high`,
 * `normal`, `low`) in turn; within a lane, first in, first out. A stream's
 * frames (its data, FIN and RST) all take its lane, so they never overtake
 * one another. So a consensus message queued behind a bulk transfer waits
 * for the frame already handed down, not for the transfer. Lower lanes are
 * not starved: after {@linkcode STARVATION_LIMIT} frames of the lanes above,
 * a waiting lower lane sends one. With `prioritized: false`, every frame
 * takes one lane (first in, first out), for comparison.
 *
 * Lanes alone cannot help a frame overtake bytes already handed down: the
 * secure channel, the socket and the kernel's buffers may hold megabytes of
 * a bulk transfer. So while high-priority frames were sent recently
 * (`throttleWindow`), the normal and low lanes keep at most
 * `throttleInFlight` bytes unacknowledged by the peer: every
 * `throttleMarkEvery` bytes a Ping follows them, and its answer (which the
 * peer sends once it read everything before it) acknowledges them. A bulk
 * transfer alone runs unthrottled.
 *
 * @module
 */

import { BufferPool } from "../_bytes.ts";
import type { Series } from "../metrics.ts";
import { NetworkError } from "../network_error.ts";
import { forgetHolder, keptForReuse, releaseIdle } from "../transport/_idle_release.ts";
import type { ByteSink } from "../transport/connection.ts";
import { type FrameType, HEADER_LENGTH, writeFrameHeader } from "./frame.ts";
import type { Priority } from "./yamux_stream.ts";

/** The lanes frames wait in, served in this order. */
export enum Lane {
  /** Window updates, pings, GoAway: small and time-critical. */
  Control = 0,
  High = 1,
  Normal = 2,
  Low = 3,
}

/** The lane of a priority class. */
export function laneOf(priority: Priority): Lane {
  return priority === "high" ? Lane.High : priority === "normal" ? Lane.Normal : Lane.Low;
}

/** Frames of the lanes above a waiting lane after which it sends one anyway. */
export const STARVATION_LIMIT = 64;

/** Data frames this large come from the scheduler's frame pool. */
const POOLED_FRAME_MIN = 16 * 1024;
/**
 * Frame buffers the pool keeps for reuse, in count and bytes: enough for
 * the frames a busy stream has queued at the high water mark, so a bulk
 * writer allocates no frame (fresh memory costs page faults).
 */
const FRAME_POOL_SIZE = 32;
const FRAME_POOL_BYTES = 2 * 1024 * 1024;
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
  /** Whether lanes are served by priority (else one first-in, first-out lane). Default true. */
  prioritized?: boolean;
  /**
   * Sends a marker (a Ping) after everything handed down so far; resolves
   * when the peer answered it. Without it, lower lanes are never throttled.
   */
  marker?: () => Promise<unknown>;
  /** How long after a high-priority frame the lower lanes stay throttled, in ms. Default 10_000. */
  throttleWindow?: number;
  /** Bytes of the lower lanes unacknowledged while throttled. Default 256 KiB. */
  throttleInFlight?: number;
  /** Bytes of the lower lanes between two markers while throttled. Default 64 KiB. */
  throttleMarkEvery?: number;
}

/** One lane's frames. */
interface Queue {
  frames: Uint8Array[];
  head: number;
  bytes: number;
}

/** The frame queue of one session. */
export class WriteScheduler {
  readonly #sink: ByteSink;
  readonly #options: WriteSchedulerOptions;
  readonly #lanes: Queue[] = [0, 1, 2, 3].map(() => ({ frames: [], head: 0, bytes: 0 }));
  readonly #prioritized: boolean;
  /** Frames sent in a row from the lanes above each lane (starvation guard). */
  readonly #passedOver = [0, 0, 0, 0];
  #queuedBytes = 0;
  #queuedControl = 0;
  /** The connection asked to wait: its write promise has not resolved. */
  #blocked = false;
  #closed = false;
  /** Until when (performance.now()) the lower lanes are throttled: a high frame went recently. */
  #throttledUntil = 0;
  /** Bytes of the lower lanes handed down, ever; and how many of them the peer acknowledged. */
  #bulkSent = 0;
  #bulkAcked = 0;
  /** `#bulkSent` when the last marker went. */
  #lastMark = 0;
  /** Whether the pump stopped the lower lanes to wait for an acknowledgement. */
  #waitingForAck = false;
  readonly #throttleWindow: number;
  readonly #throttleInFlight: number;
  readonly #throttleMarkEvery: number;
  /** Per lane: writers waiting for the lanes up to it to drain. */
  readonly #drain: (PromiseWithResolvers<void> | undefined)[] = [
    undefined,
    undefined,
    undefined,
    undefined,
  ];
  #idle: PromiseWithResolvers<void> | undefined;
  /**
   * Large frame buffers for reuse: made with the first large frame, dropped
   * after about a second without one (`_idle_release.ts`), so a quiet
   * session keeps none.
   */
  #pool: BufferPool | undefined;

  /** Writes frames to `sink` (the connection under the session). */
  constructor(sink: ByteSink, options: WriteSchedulerOptions) {
    this.#sink = sink;
    this.#options = options;
    this.#prioritized = options.prioritized ?? true;
    this.#throttleWindow = options.throttleWindow ?? 10_000;
    this.#throttleInFlight = options.throttleInFlight ?? 256 * 1024;
    this.#throttleMarkEvery = options.throttleMarkEvery ?? 64 * 1024;
  }

  /** Queues a complete frame (header and body in one buffer) for the wire, in `lane`. */
  send(frame: Uint8Array, lane: Lane): void {
    if (this.#closed) return;
    const queue = this.#lanes[this.#prioritized ? lane : Lane.Control];
    if (lane === Lane.High && this.#prioritized && this.#options.marker !== undefined) {
      this.#throttle();
    }
    queue.frames.push(frame);
    queue.bytes += frame.length;
    this.#queuedBytes += frame.length;
    if (!this.#blocked) this.#pump();
  }

  /**
   * Queues a header-only frame in `lane` (a stream's FIN or RST takes the
   * stream's lane); a peer that provokes too many without reading is an
   * error.
   */
  sendHeader(
    type: FrameType,
    flags: number,
    streamId: number,
    length: number,
    lane: Lane = Lane.Control,
  ): void {
    if (this.#closed) return;
    if (this.#blocked && ++this.#queuedControl > MAX_QUEUED_CONTROL_FRAMES) {
      this.#options.onError(
        new NetworkError("LIMIT_EXCEEDED", "yamux: peer does not read the frames it provokes"),
      );
      return;
    }
    const frame = new Uint8Array(HEADER_LENGTH);
    writeFrameHeader(frame, 0, type, flags, streamId, length);
    this.send(frame, lane);
  }

  /**
   * A buffer of exactly `length` bytes for a frame given to `send` next.
   * Data frames of at least {@linkcode POOLED_FRAME_MIN} bytes come from a
   * few buffers that go back to the pool once the connection took them
   * (the connection contract lets us reuse a chunk then), so bulk transfers
   * allocate no frame per write. Its contents are undefined.
   */
  frameBuffer(length: number): Uint8Array {
    if (length < POOLED_FRAME_MIN) return new Uint8Array(length);
    this.#pool ??= new BufferPool(FRAME_POOL_SIZE, POOLED_FRAME_MIN, FRAME_POOL_BYTES);
    keptForReuse(this);
    return this.#pool.take(length);
  }

  /** No large frame for a while: the pool goes (the next large frame makes it again). */
  [releaseIdle](): void {
    this.#pool = undefined;
  }

  /**
   * A promise while the frames queued in `lane` and the lanes before it pass
   * the high-water mark, else `undefined`: a high-priority writer does not
   * wait for bulk data queued behind it.
   */
  drained(lane: Lane): Promise<void> | undefined {
    const l = this.#prioritized ? lane : Lane.Control;
    if (this.#bytesUpTo(l) <= this.#options.highWater || this.#closed) return undefined;
    this.#drain[l] ??= Promise.withResolvers<void>();
    return this.#drain[l]!.promise;
  }

  #bytesUpTo(lane: Lane): number {
    let bytes = 0;
    for (let l = 0; l <= lane; l++) bytes += this.#lanes[l].bytes;
    return bytes;
  }

  /**
   * A high-priority frame is queued: throttle the lower lanes for the next
   * `throttleWindow`. What was handed down unthrottled counts as acknowledged
   * (it is on its way; a marker follows at once to catch up with it).
   */
  #throttle(): void {
    const now = performance.now();
    if (now >= this.#throttledUntil) {
      this.#bulkAcked = this.#bulkSent;
      this.#lastMark = this.#bulkSent - this.#throttleMarkEvery;
    }
    this.#throttledUntil = now + this.#throttleWindow;
  }

  /** Whether the lower lanes must wait for an acknowledgement now. */
  #lowerLanesHeld(): boolean {
    return performance.now() < this.#throttledUntil &&
      this.#bulkSent - this.#bulkAcked >= this.#throttleInFlight;
  }

  /** Counts a lower-lane frame handed down; while throttled, a marker follows every so often. */
  #bulkHandedDown(bytes: number): void {
    this.#bulkSent += bytes;
    if (
      performance.now() >= this.#throttledUntil ||
      this.#bulkSent - this.#lastMark < this.#throttleMarkEvery
    ) {
      return;
    }
    this.#lastMark = this.#bulkSent;
    const position = this.#bulkSent;
    this.#options.marker!().then(() => {
      if (position > this.#bulkAcked) this.#bulkAcked = position;
      if (this.#waitingForAck) {
        this.#waitingForAck = false;
        if (!this.#blocked) this.#pump();
      }
    }, () => {
      // The session is ending: nothing more goes out anyway.
    });
  }

  /** Hands frames down until the connection asks to wait or none is left. */
  #pump(): void {
    while (this.#queuedBytes > 0 && !this.#closed) {
      const frame = this.#next();
      if (frame === undefined) {
        // Only throttled lower-lane frames are left: an acknowledgement wakes us.
        this.#waitingForAck = true;
        return;
      }
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

  /**
   * The lane to send from: the first that has frames, unless a lower one
   * waited too long; `undefined` when only throttled lower lanes have frames.
   */
  #pick(): Lane | undefined {
    const held = this.#prioritized && this.#options.marker !== undefined && this.#lowerLanesHeld();
    const last = held ? Lane.High : Lane.Low;
    let lane = Lane.Control;
    while (lane <= last && this.#lanes[lane].bytes === 0) lane++;
    if (lane > last) return undefined;
    if (held) return lane;
    for (let lower = Lane.Low; lower > lane; lower--) {
      if (this.#lanes[lower].bytes > 0 && this.#passedOver[lower] >= STARVATION_LIMIT) {
        lane = lower;
        break;
      }
    }
    for (let l = lane + 1; l <= Lane.Low; l++) {
      if (this.#lanes[l].bytes > 0) this.#passedOver[l]++;
    }
    this.#passedOver[lane] = 0;
    return lane;
  }

  /** The next frame to write, counted and out of its lane; `undefined` while throttled. */
  #next(): Uint8Array | undefined {
    const lane = this.#pick();
    if (lane === undefined) return undefined;
    const queue = this.#lanes[lane];
    const frame = queue.frames[queue.head];
    queue.frames[queue.head++] = EMPTY;
    if (queue.head === queue.frames.length) {
      queue.frames = [];
      queue.head = 0;
    }
    queue.bytes -= frame.length;
    this.#queuedBytes -= frame.length;
    if (lane >= Lane.Normal && this.#prioritized) this.#bulkHandedDown(frame.length);
    this.#options.metrics.bytes.inc(frame.length);
    this.#options.metrics.frames.inc();
    this.#wakeWriters();
    return frame;
  }

  /** Wakes the writers of every lane whose queue ahead drained to half the mark. */
  #wakeWriters(): void {
    const half = this.#options.highWater / 2;
    let bytes = 0;
    for (let l = 0; l <= Lane.Low; l++) {
      bytes += this.#lanes[l].bytes;
      const drain = this.#drain[l];
      if (drain !== undefined && bytes <= half) {
        this.#drain[l] = undefined;
        drain.resolve();
      }
    }
  }

  #recycle(frame: Uint8Array): void {
    if (frame.length >= POOLED_FRAME_MIN) this.#pool?.give(frame);
  }

  /** Resolves when everything queued was handed to the connection. */
  idle(): Promise<void> {
    if (this.#queuedBytes === 0 && !this.#blocked) return Promise.resolve();
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
    this.#pool = undefined;
    forgetHolder(this);
    for (const queue of this.#lanes) {
      queue.frames = [];
      queue.head = 0;
      queue.bytes = 0;
    }
    this.#queuedBytes = 0;
    for (let l = 0; l <= Lane.Low; l++) {
      const drain = this.#drain[l];
      this.#drain[l] = undefined;
      drain?.resolve();
    }
    const idle = this.#idle;
    this.#idle = undefined;
    idle?.resolve();
  }
}

const EMPTY = new Uint8Array(0);
