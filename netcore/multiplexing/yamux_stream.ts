/**
 * One yamux stream: its half-close state machine, its receive queue and its
 * two windows, shaped like a {@linkcode Connection} so that protocol
 * negotiation and application protocols run on it as on any connection.
 *
 * @module
 */

import { Deadline } from "../_async.ts";
import type { Multiaddr } from "../multiaddr.ts";
import { NetworkError } from "../network_error.ts";
import { ByteConnection } from "../transport/byte_connection.ts";
import type { Connection } from "../transport/connection.ts";
import { ReceiveWindow, SendWindow, type WindowBudget } from "./_flow_control.ts";
import { Lane, laneOf } from "./_write_scheduler.ts";
import {
  Flag,
  FrameType,
  HEADER_LENGTH,
  INITIAL_STREAM_WINDOW,
  writeFrameHeader,
} from "./frame.ts";

/**
 * The stream states of hashicorp/yamux, for the half-close part (whether the
 * SYN was acknowledged is tracked apart):
 *
 * - `established`: both directions open.
 * - `localClose`: we sent FIN; the peer may still send.
 * - `remoteClose`: the peer sent FIN; we may still send.
 * - `closed`: both sent FIN (terminal).
 * - `reset`: either side sent RST, or the session died (terminal).
 *
 * @example
 * ```ts
 * import type { StreamState, YamuxStream } from "./yamux_stream.ts";
 * const terminal: StreamState[] = ["closed", "reset"];
 * const done = (stream: YamuxStream) => terminal.includes(stream.state);
 * ```
 */
export type StreamState = "established" | "localClose" | "remoteClose" | "closed" | "reset";

/**
 * A stream's priority class: what its frames wait behind when the
 * connection is busy. Consensus is `high`, mempool `normal`, state sync and
 * bulk transfers `low`.
 *
 * @example
 * ```ts
 * import type { Priority } from "./yamux_stream.ts";
 * const consensus: Priority = "high";
 * ```
 */
export type Priority = "high" | "normal" | "low";

/**
 * What a stream needs from its session; the `Yamux` session gives
 * one to every {@linkcode YamuxStream} it makes.
 *
 * @internal Exported for the session only: it refers to the session's window
 * budget, which lives in the private `_flow_control.ts`.
 */
export interface StreamHost {
  /** The largest Data frame body to send. */
  readonly maxFrameSize: number;
  /** How long `close()` waits for the peer's FIN before resetting. */
  readonly streamCloseTimeout: number;
  /** The connection's addresses, which are the stream's. */
  readonly addrs: Pick<Connection, "localAddr" | "remoteAddr">;
  /** The session's receive window budget. */
  readonly budget: WindowBudget;
  /** Queues a complete frame (header and body in one buffer) for the wire, in `lane`. */
  send(frame: Uint8Array, lane: Lane): void;
  /** A buffer of exactly `length` bytes for a frame given to `send` next. */
  frameBuffer(length: number): Uint8Array;
  /** Queues a header-only frame (in the control lane unless given another). */
  sendHeader(type: FrameType, flags: number, streamId: number, length: number, lane?: Lane): void;
  /** `stream` holds a deferred SYN or ACK: make sure it goes out this turn of the event loop. */
  deferred(stream: YamuxStream): void;
  /** `stream` sends its deferred SYN or ACK now: streams deferred before it go first. */
  sendingOpenFlag(stream: YamuxStream): void;
  /** A promise while the frames queued up to `lane` pass the high-water mark, else undefined. */
  drained(lane: Lane): Promise<void> | undefined;
  /** The smoothed round-trip time in ms, or NaN while unknown. */
  rtt(): number;
  /** The stream reached a terminal state; forget it. */
  released(stream: YamuxStream): void;
}

/**
 * A snapshot of a stream's flow-control state, for diagnostics and tests.
 *
 * @example
 * ```ts
 * import type { YamuxStreamStats } from "./yamux_stream.ts";
 * const fresh: YamuxStreamStats = {
 *   sendWindow: 262_144,
 *   receiveWindow: 262_144,
 *   receiveCredit: 262_144,
 *   bufferedBytes: 0,
 *   bytesReceived: 0,
 *   bytesSent: 0,
 * };
 * ```
 */
export interface YamuxStreamStats {
  /** Bytes we may still send before the peer grants more. */
  sendWindow: number;
  /** The receive window we currently grant (grows with auto-tuning). */
  receiveWindow: number;
  /** Bytes the peer may still send before our next window update. */
  receiveCredit: number;
  /** Bytes received and not yet read by the application. */
  bufferedBytes: number;
  /** Data bytes the peer sent on the stream so far (frame bodies, headers excluded). */
  bytesReceived: number;
  /** Data bytes we sent on the stream so far (frame bodies, headers excluded). */
  bytesSent: number;
}

const EMPTY = new Uint8Array(0);

function resetError(message: string): NetworkError {
  return new NetworkError("CONNECTION_RESET", message);
}

/**
 * A yamux substream.
 *
 * - `read()` yields the peer's data as views into the chunks read from the
 *   connection (they belong to the reader); it ends (`null`) when the peer
 *   sends FIN and rejects with `CONNECTION_RESET` when the peer resets the
 *   stream. `cancelRead()` resets the stream (yamux cannot stop one
 *   direction alone) unless the peer already finished sending.
 * - `write()` sends Data frames of at most the session's `maxFrameSize`,
 *   waiting for window when the peer's reader is slow (backpressure).
 *   `closeWrite()` half-closes (FIN); `abort()` resets (RST).
 * - `close()` half-closes, then waits for the peer's FIN (or the session's
 *   `streamCloseTimeout`, after which it resets).
 * - `closed` settles (never rejects) when both sides have closed or the
 *   stream was reset.
 *
 * Streams come from `Yamux.openStream` and from iterating a `Yamux`.
 *
 * @example
 * ```ts
 * import type { Yamux } from "./yamux.ts";
 * async function hello(muxer: Yamux) {
 *   const stream = await muxer.openStream();
 *   await stream.write(new TextEncoder().encode("hello"));
 *   await stream.closeWrite();
 *   for (let chunk = await stream.read(); chunk !== null; chunk = await stream.read()) {
 *     console.log(chunk);
 *   }
 *   await stream.closed;
 *   console.log(stream.state, stream.stats().bytesSent); // "closed" 5
 * }
 * ```
 */
export class YamuxStream extends ByteConnection {
  /** The yamux stream id: odd when the dialer opened it, even for the listener. */
  readonly id: number;
  /** `"outbound"` when we opened the stream, `"inbound"` when the peer did. */
  readonly direction: "outbound" | "inbound";
  /** Settles (never rejects) when the stream is closed both ways or reset. */
  readonly closed: Promise<void>;
  /** Whether our SYN was acknowledged (always true for inbound streams). Set by the session. */
  acked: boolean;
  /** The protocol negotiated on the stream, once the application sets it. */
  protocol: string | undefined;
  /** The lane the stream's frames wait in (see {@linkcode YamuxStream.priority}). */
  #lane: Lane = Lane.Normal;
  /** A frame of ours took the lane: the lane is fixed from now on (frames keep their order). */
  #laneUsed = false;

  readonly #host: StreamHost;
  #state: StreamState = "established";
  #error: NetworkError | undefined;
  readonly #closedSignal = Promise.withResolvers<void>();

  // Send side.
  readonly #sendWindow = new SendWindow();
  #writing: Promise<void> | undefined;
  #bytesSent = 0;

  // Receive side.
  readonly #receiveWindow: ReceiveWindow;
  #bytesReceived = 0;
  readonly #queue: Uint8Array[] = [];
  #queueHead = 0;
  /** A view `readInto` could not fit whole. */
  #partial: Uint8Array | undefined;
  #reader: PromiseWithResolvers<Uint8Array | null> | undefined;
  #readDone = false;
  /**
   * SYN (we opened it) or ACK (we accepted it) not sent yet: it rides on the
   * stream's first frame, so opening a stream and sending its first bytes
   * (or accepting one and answering) take one frame, not two.
   */
  #openFlag = 0;

  /**
   * Made by the session.
   *
   * @param id the stream id
   * @param outbound whether we opened it
   * @param host the session
   * @param windows initial and maximum receive windows
   */
  constructor(
    id: number,
    outbound: boolean,
    host: StreamHost,
    windows: { initial: number; max: number },
  ) {
    super();
    this.id = id;
    this.direction = outbound ? "outbound" : "inbound";
    this.acked = !outbound;
    this.#host = host;
    this.closed = this.#closedSignal.promise;
    this.#receiveWindow = new ReceiveWindow(windows.initial, windows.max, host.budget);
  }

  /** Our address of the connection the stream runs on. */
  get localAddr(): Multiaddr {
    return this.#host.addrs.localAddr;
  }

  /** The peer's address of the connection the stream runs on. */
  get remoteAddr(): Multiaddr {
    return this.#host.addrs.remoteAddr;
  }

  /** The half-close state, with the spec's names. */
  get state(): StreamState {
    return this.#state;
  }

  /**
   * The stream's priority class: when the connection is busy, its frames
   * wait behind those of higher classes (and ahead of lower ones). Default
   * `"normal"`.
   *
   * @throws {TypeError} when set after the stream sent a frame: its frames
   *   must keep their order, which one lane guarantees
   */
  get priority(): Priority {
    return this.#lane === Lane.High ? "high" : this.#lane === Lane.Normal ? "normal" : "low";
  }
  set priority(value: Priority) {
    const lane = laneOf(value);
    if (lane === this.#lane) return;
    if (this.#laneUsed) throw new TypeError("set a stream's priority before it sends anything");
    this.#lane = lane;
  }

  /** The lane for a frame of ours that must keep its place among the stream's frames. */
  #streamLane(): Lane {
    this.#laneUsed = true;
    return this.#lane;
  }

  /** The window granted at open beyond the spec's 256 KiB (announced in the SYN/ACK frame). */
  get initialWindowDelta(): number {
    return this.#receiveWindow.window - INITIAL_STREAM_WINDOW;
  }

  /** Flow-control state (windows, buffered bytes) and the data bytes sent and received so far. */
  stats(): YamuxStreamStats {
    return {
      sendWindow: this.#sendWindow.available,
      receiveWindow: this.#receiveWindow.window,
      receiveCredit: this.#receiveWindow.credit,
      bufferedBytes: this.#receiveWindow.buffered,
      bytesReceived: this.#bytesReceived,
      bytesSent: this.#bytesSent,
    };
  }

  // ---- the deferred SYN or ACK --------------------------------------------

  /**
   * Holds `flag` (SYN or ACK) for the stream's next frame instead of sending
   * it on its own. It goes out alone when the application waits to read
   * before sending anything, or at the end of this turn of the event loop.
   * Called by the session.
   */
  deferOpenFlag(flag: number): void {
    this.#openFlag = flag;
    this.#host.deferred(this);
  }

  /** The deferred SYN or ACK, once: the caller puts it on the frame it sends. */
  #takeOpenFlag(): number {
    const flag = this.#openFlag;
    if (flag === 0) return 0;
    this.#openFlag = 0;
    this.#host.sendingOpenFlag(this);
    return flag;
  }

  /** Sends the deferred SYN or ACK on its own, if still pending. Called by the session. */
  flushDeferred(): void {
    if (this.#openFlag === 0 || this.#state === "reset") return;
    this.#host.sendHeader(
      FrameType.WindowUpdate,
      this.#takeOpenFlag(),
      this.id,
      0,
      this.#streamLane(),
    );
  }

  // ---- frames from the session --------------------------------------------

  /**
   * A Data frame header of `length` bytes for this stream. Returns whether
   * the body is wanted (false: drop it).
   *
   * @throws {NetworkError} `PROTOCOL_VIOLATION` when it exceeds the window
   */
  onDataHeader(length: number): boolean {
    this.#receiveWindow.announce(length, this.id);
    this.#bytesReceived += length;
    if (this.#state === "remoteClose" || this.#state === "closed") {
      // Data after FIN: the peer broke the stream, not the session.
      this.#sendReset();
      this.#terminate(resetError(`yamux: stream ${this.id} received data after FIN`));
      return false;
    }
    return this.#state !== "reset";
  }

  /** A piece of a Data frame body (a view the stream now owns). */
  onData(piece: Uint8Array): void {
    if (this.#readDone || this.#state === "reset") return;
    this.#receiveWindow.hold(piece.length);
    const reader = this.#reader;
    if (reader !== undefined) {
      this.#reader = undefined;
      this.#consumed(piece.length);
      reader.resolve(piece);
      return;
    }
    this.#queue.push(piece);
  }

  /** The peer granted `delta` more bytes. */
  onWindowUpdate(delta: number): void {
    this.#sendWindow.grant(delta, this.id);
  }

  /** The peer sent FIN: no more data; reads end after what is queued. */
  onFin(): void {
    if (this.#state === "established") this.#state = "remoteClose";
    else if (this.#state === "localClose") this.#state = "closed";
    else return;
    const reader = this.#reader;
    if (reader !== undefined) {
      this.#reader = undefined;
      this.#readDone = true;
      reader.resolve(null);
    }
    if (this.#state === "closed") this.#finish();
  }

  /** The peer sent RST. */
  onReset(): void {
    this.#terminate(resetError(`yamux: stream ${this.id} reset by peer`));
  }

  /** The session died: fail everything pending with `error`. */
  onSessionEnd(error: NetworkError): void {
    if (this.#state === "closed") return;
    this.#terminate(error);
  }

  // ---- reading ------------------------------------------------------------

  /** The next chunk from the peer (a view it owns), `null` after its FIN. */
  read(): Promise<Uint8Array | null> {
    const partial = this.#partial;
    if (partial !== undefined) {
      this.#partial = undefined;
      return Promise.resolve(partial);
    }
    if (this.#queueHead < this.#queue.length) {
      const chunk = this.#queue[this.#queueHead];
      this.#queue[this.#queueHead++] = EMPTY;
      if (this.#queueHead === this.#queue.length) {
        this.#queue.length = 0;
        this.#queueHead = 0;
      }
      this.#consumed(chunk.length);
      return Promise.resolve(chunk);
    }
    if (this.#state === "reset") return Promise.reject(this.#error);
    if (this.#readDone || this.#state === "remoteClose" || this.#state === "closed") {
      this.flushDeferred();
      this.#readDone = true;
      return Promise.resolve(null);
    }
    // The peer waits for our SYN or ACK before it answers: send it now.
    this.flushDeferred();
    this.#reader = Promise.withResolvers();
    return this.#reader.promise;
  }

  /** Copies the next chunk into `buffer`; what does not fit is read next. */
  async readInto(buffer: Uint8Array): Promise<number | null> {
    const chunk = await this.read();
    if (chunk === null) return null;
    const n = Math.min(chunk.length, buffer.length);
    buffer.set(chunk.subarray(0, n));
    if (n < chunk.length) this.#partial = chunk.subarray(n);
    return n;
  }

  /**
   * Stops reading. Yamux cannot stop one direction: a reader that gives up
   * resets the stream unless the peer has already finished sending.
   */
  cancelRead(reason?: unknown): void {
    this.#readDone = true;
    this.#discardQueue();
    if (this.#state === "established" || this.#state === "localClose") this.abort(reason);
  }

  /** The application took `n` bytes: credit the peer when it is worth a window update. */
  #consumed(n: number): void {
    const grant = this.#receiveWindow.consumed(n, this.#host);
    if (grant === 0 || (this.#state !== "established" && this.#state !== "localClose")) return;
    this.#host.sendHeader(FrameType.WindowUpdate, this.#takeOpenFlag(), this.id, grant);
  }

  #discardQueue(): void {
    this.#queue.length = 0;
    this.#queueHead = 0;
    this.#partial = undefined;
    this.#receiveWindow.dropAll();
  }

  // ---- writing ------------------------------------------------------------

  /** Sends `chunk` as Data frames; the promise resolves when it may be reused. */
  write(chunk: Uint8Array): Promise<void> {
    const writing = this.#write(chunk);
    this.#writing = writing;
    return writing;
  }

  async #write(chunk: Uint8Array): Promise<void> {
    const host = this.#host;
    const max = host.maxFrameSize;
    const window = this.#sendWindow;
    let offset = 0;
    while (offset < chunk.length) {
      if (this.#state !== "established" && this.#state !== "remoteClose") {
        throw this.#error ??
          new NetworkError("CONNECTION_CLOSED", `yamux: stream ${this.id} closed for writing`);
      }
      if (window.available === 0) {
        await window.opened();
        continue;
      }
      const n = Math.min(window.available, max, chunk.length - offset);
      // Header and body in one buffer: the layer below (Noise) turns every
      // write into at least one encrypted frame.
      const frame = host.frameBuffer(HEADER_LENGTH + n);
      writeFrameHeader(frame, 0, FrameType.Data, this.#takeOpenFlag(), this.id, n);
      frame.set(
        offset === 0 && n === chunk.length ? chunk : chunk.subarray(offset, offset + n),
        HEADER_LENGTH,
      );
      window.take(n);
      this.#bytesSent += n;
      offset += n;
      host.send(frame, this.#streamLane());
      const drained = host.drained(this.#lane);
      if (drained !== undefined) await drained;
    }
  }

  /** Half-closes (FIN) after the writes already made. */
  async closeWrite(): Promise<void> {
    if (this.#writing !== undefined) await this.#writing.catch(() => {});
    this.#sendFin();
  }

  #sendFin(): void {
    if (this.#state === "established") this.#state = "localClose";
    else if (this.#state === "remoteClose") this.#state = "closed";
    else return;
    this.#host.sendHeader(
      FrameType.WindowUpdate,
      Flag.FIN | this.#takeOpenFlag(),
      this.id,
      0,
      this.#streamLane(),
    );
    if (this.#state === "closed") this.#finish();
  }

  // ---- lifecycle ----------------------------------------------------------

  /** Half-closes (after writes already made), then waits for the peer's FIN. */
  async close(): Promise<void> {
    await this.closeWrite();
    if (this.#state === "closed" || this.#state === "reset") return;
    using deadline = new Deadline(this.#host.streamCloseTimeout, {
      what: `yamux: stream ${this.id} close`,
    });
    try {
      await deadline.race(this.closed);
    } catch (err) {
      this.abort(err);
    }
  }

  /** Resets the stream: RST to the peer; local reads and writes fail. */
  abort(reason?: unknown): void {
    if (this.#state === "closed" || this.#state === "reset") return;
    this.#sendReset();
    const error = reason instanceof NetworkError
      ? reason
      : new NetworkError("ABORTED", `yamux: stream ${this.id} aborted`, { cause: reason });
    this.#terminate(error);
  }

  #sendReset(): void {
    // A stream whose SYN never left is unknown to the peer: nothing to reset.
    if ((this.#takeOpenFlag() & Flag.SYN) !== 0) return;
    this.#host.sendHeader(FrameType.WindowUpdate, Flag.RST, this.id, 0, this.#streamLane());
  }

  /** Reached `reset`: fail both directions and release. */
  #terminate(error: NetworkError): void {
    if (this.#state === "reset" || this.#state === "closed") return;
    this.#state = "reset";
    this.#error = error;
    this.#discardQueue();
    const reader = this.#reader;
    if (reader !== undefined) {
      this.#reader = undefined;
      reader.reject(error);
    }
    this.#readDone = true;
    this.#sendWindow.fail(error);
    this.#finish();
  }

  #finish(): void {
    this.#receiveWindow.close();
    this.#host.released(this);
    this.#closedSignal.resolve();
  }
}
