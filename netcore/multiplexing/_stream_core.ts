/**
 * The state of one yamux stream: its two windows, its receive queue and its
 * half-close state machine. The session (`yamux.ts`) feeds it frames; the
 * public {@linkcode YamuxStream} facade exposes it as a Web-Streams duplex.
 *
 * @module
 */

import { NetworkError } from "../network_error.ts";
import {
  Flag,
  FrameType,
  HEADER_LENGTH,
  INITIAL_STREAM_WINDOW,
  MAX_WINDOW,
  writeFrameHeader,
} from "./frame.ts";

/**
 * The stream states of hashicorp/yamux, for the half-close part (whether the
 * SYN was acknowledged is tracked apart, see {@linkcode StreamCore.acked}):
 *
 * - `established`: both directions open.
 * - `localClose`: we sent FIN; the peer may still send.
 * - `remoteClose`: the peer sent FIN; we may still send.
 * - `closed`: both sent FIN (terminal).
 * - `reset`: either side sent RST, or the session died (terminal).
 */
export type StreamState = "established" | "localClose" | "remoteClose" | "closed" | "reset";

/** What a stream needs from its session. Internal. */
export interface StreamHost {
  /** The largest Data frame body to send. */
  readonly maxFrameSize: number;
  /** How long `close()` waits for the peer's FIN before resetting. */
  readonly streamCloseTimeout: number;
  /** Queues a complete frame (header and body in one buffer) for the wire. */
  send(frame: Uint8Array): void;
  /**
   * A buffer of exactly `length` bytes for a frame given to `send` next
   * (reused from frames already written, when one fits). Its contents are
   * undefined.
   */
  frameBuffer(length: number): Uint8Array;
  /** Queues a header-only frame. */
  sendHeader(type: FrameType, flags: number, streamId: number, length: number): void;
  /**
   * `core` holds a deferred SYN, ACK or leading data: make sure it goes out
   * this turn of the event loop.
   */
  deferred(core: StreamCore): void;
  /**
   * `core` is about to send its deferred SYN or ACK: streams deferred before
   * it send theirs first, so the peer sees streams in the order they opened.
   */
  sendingOpenFlag(core: StreamCore): void;
  /** A promise while the outbound queue is above its high-water mark, else undefined. */
  drained(): Promise<void> | undefined;
  /** The smoothed round-trip time in ms, or NaN while unknown. */
  rtt(): number;
  /** Asks to grow a receive window by `bytes`; returns how many are granted. */
  reserveWindow(bytes: number): number;
  /** Gives back window budget when a stream goes away. */
  releaseWindow(bytes: number): void;
  /** The stream reached a terminal state; forget it. */
  released(core: StreamCore): void;
}

/** Options of one stream's flow control, resolved by the session. */
export interface StreamWindowOptions {
  /** Receive window granted at open; at least 256 KiB. */
  initialReceiveWindow: number;
  /** Ceiling for auto-tuning. */
  maxReceiveWindow: number;
}

/** A snapshot of a stream's flow-control state, for diagnostics and tests. */
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

/** One stream's state. Internal: the session owns it, the facade wraps it. */
export class StreamCore {
  /** The stream id. */
  readonly id: number;
  /** Whether we opened it. */
  readonly outbound: boolean;
  /** Whether our SYN was acknowledged (always true for inbound streams). */
  acked: boolean;
  /** The negotiated protocol, set by the application. */
  protocol: string | undefined;
  /** Bytes from the peer. */
  readonly readable: ReadableStream<Uint8Array>;
  /** Bytes to the peer. */
  readonly writable: WritableStream<Uint8Array>;
  /** Settles (never rejects) when the stream reaches `closed` or `reset`. */
  readonly closed: Promise<void>;

  readonly #host: StreamHost;
  #state: StreamState = "established";
  #error: NetworkError | undefined;
  readonly #closedSignal = Promise.withResolvers<void>();

  // Send side.
  #sendWindow = INITIAL_STREAM_WINDOW;
  #windowWaiter: PromiseWithResolvers<void> | undefined;
  #writeController!: WritableStreamDefaultController;
  #writing: Promise<void> | undefined;

  // Receive side. Invariant: #receiveCredit + #buffered <= #receiveWindow,
  // so what the peer can make us hold is bounded by the window we granted.
  #receiveWindow = INITIAL_STREAM_WINDOW;
  #receiveCredit = INITIAL_STREAM_WINDOW;
  #buffered = 0;
  // Totals for stats(): plain numbers added where the windows already
  // account the same bytes, so they cost nothing on the data path.
  #bytesReceived = 0;
  #bytesSent = 0;
  readonly #queue: Uint8Array[] = [];
  #queueHead = 0;
  #readController!: ReadableStreamDefaultController<Uint8Array>;
  #pullPending = false;
  #readDone = false;
  /**
   * SYN (we opened it) or ACK (we accepted it) not sent yet: it rides on the
   * stream's first frame, so opening a stream and sending its first bytes
   * (or accepting one and answering) take one frame, not two.
   */
  #openFlag = 0;
  /** Bytes that lead the stream's next data (see `deferLeadingData`). */
  #leadingData: Uint8Array | undefined;
  #lastWindowUpdate = performance.now();
  readonly #maxReceiveWindow: number;

  /**
   * @param id the stream id
   * @param outbound whether we opened it
   * @param host the session
   * @param windows initial and maximum receive windows
   */
  constructor(id: number, outbound: boolean, host: StreamHost, windows: StreamWindowOptions) {
    this.id = id;
    this.outbound = outbound;
    this.acked = !outbound;
    this.#host = host;
    this.#maxReceiveWindow = windows.maxReceiveWindow;
    this.closed = this.#closedSignal.promise;
    // The extra initial window is granted in the SYN/ACK frame by the session.
    this.#receiveWindow = windows.initialReceiveWindow;
    this.#receiveCredit = windows.initialReceiveWindow;
    this.readable = new ReadableStream<Uint8Array>({
      start: (controller) => {
        this.#readController = controller;
      },
      pull: () => this.#pull(),
      cancel: (reason) => this.#cancelRead(reason),
    }, { highWaterMark: 0 });
    this.writable = new WritableStream<Uint8Array>({
      start: (controller) => {
        this.#writeController = controller;
      },
      write: (chunk) => this.#trackWrite(chunk),
      close: () => this.#closeWrite(),
      abort: (reason) => this.abort(reason),
    });
  }

  /** The half-close state. */
  get state(): StreamState {
    return this.#state;
  }

  /** The window size granted at open beyond the spec's 256 KiB. */
  get initialWindowDelta(): number {
    return this.#receiveWindow - INITIAL_STREAM_WINDOW;
  }

  /**
   * Holds `flag` (SYN or ACK) for the stream's next frame instead of sending
   * it on its own. It goes out alone when the application waits to read
   * before sending anything, or at the end of this turn of the event loop
   * (see {@linkcode StreamCore.flushDeferred}).
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
    // A window update may take the flag first: the leading data still waits.
    if (this.#leadingData !== undefined) this.#host.deferred(this);
    return flag;
  }

  /**
   * Holds `bytes` (a few, such as a protocol agreement) to go out in front
   * of what the application writes next, in the same write to the
   * connection. Like a deferred SYN or ACK, they go out on their own when the
   * application waits to read, closes, or has not written by the end of this
   * turn of the event loop.
   */
  deferLeadingData(bytes: Uint8Array): void {
    if (bytes.length === 0 || this.#state === "reset") return;
    this.#leadingData = bytes;
    this.#host.deferred(this);
  }

  /** Sends what is deferred (leading data, SYN or ACK) on its own, if still pending. */
  flushDeferred(): void {
    if (this.#state === "reset") return;
    if (this.#leadingData !== undefined) {
      this.#sendLeadingData();
      return;
    }
    if (this.#openFlag === 0) return;
    this.#host.sendHeader(FrameType.WindowUpdate, this.#takeOpenFlag(), this.id, 0);
  }

  /**
   * The leading data as one Data frame (with a deferred SYN or ACK). It fits
   * any window we can be given: a few bytes before all others.
   */
  #sendLeadingData(): void {
    const data = this.#leadingData!;
    this.#leadingData = undefined;
    if (this.#state !== "established" && this.#state !== "remoteClose") return;
    const n = Math.min(data.length, this.#sendWindow);
    this.#host.send(this.#dataFrame(data, 0, n));
    if (n < data.length) this.#leadingData = data.subarray(n);
  }

  /** A Data frame for `chunk[offset .. offset + n)`, counted against the send window. */
  #dataFrame(chunk: Uint8Array, offset: number, n: number): Uint8Array {
    // Header and body in one buffer: the layer below (Noise) turns every
    // write into at least one encrypted frame.
    const frame = this.#host.frameBuffer(HEADER_LENGTH + n);
    writeFrameHeader(frame, 0, FrameType.Data, this.#takeOpenFlag(), this.id, n);
    frame.set(
      offset === 0 && n === chunk.length ? chunk : chunk.subarray(offset, offset + n),
      HEADER_LENGTH,
    );
    this.#sendWindow -= n;
    this.#bytesSent += n;
    return frame;
  }

  /** The current receive window (what auto-tuning grows). */
  get receiveWindow(): number {
    return this.#receiveWindow;
  }

  /** A snapshot of the flow-control state. */
  stats(): YamuxStreamStats {
    return {
      sendWindow: this.#sendWindow,
      receiveWindow: this.#receiveWindow,
      receiveCredit: this.#receiveCredit,
      bufferedBytes: this.#buffered,
      bytesReceived: this.#bytesReceived,
      bytesSent: this.#bytesSent,
    };
  }

  // ---- frames from the session --------------------------------------------

  /**
   * A Data frame header of `length` bytes for this stream. Returns whether
   * the body is wanted (false: drop it).
   *
   * @throws {NetworkError} `PROTOCOL_VIOLATION` when it exceeds the window
   */
  onDataHeader(length: number): boolean {
    if (length > this.#receiveCredit) {
      throw new NetworkError(
        "PROTOCOL_VIOLATION",
        `yamux: stream ${this.id} received ${length} bytes with a window of ${this.#receiveCredit}`,
      );
    }
    this.#receiveCredit -= length;
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
    this.#buffered += piece.length;
    if (this.#pullPending) {
      this.#pullPending = false;
      this.#deliver(piece);
      return;
    }
    this.#queue.push(piece);
  }

  /** The peer granted `delta` more bytes. */
  onWindowUpdate(delta: number): void {
    if (this.#sendWindow + delta > MAX_WINDOW) {
      throw new NetworkError(
        "PROTOCOL_VIOLATION",
        `yamux: stream ${this.id} send window overflows 2^32 - 1`,
      );
    }
    this.#sendWindow += delta;
    if (this.#windowWaiter !== undefined && this.#sendWindow > 0) {
      const waiter = this.#windowWaiter;
      this.#windowWaiter = undefined;
      waiter.resolve();
    }
  }

  /** The peer sent FIN: no more data; the readable ends after what is queued. */
  onFin(): void {
    if (this.#state === "established") this.#state = "remoteClose";
    else if (this.#state === "localClose") this.#state = "closed";
    else return;
    if (this.#pullPending) {
      this.#pullPending = false;
      this.#endRead();
    }
    if (this.#state === "closed") this.#finish();
  }

  /** The peer sent RST. */
  onReset(): void {
    this.#terminate(resetError(`yamux: stream ${this.id} reset by peer`));
  }

  /** The session died: fail everything pending with `error`. */
  onSessionEnd(error: NetworkError): void {
    if (this.#state === "closed") {
      return;
    }
    this.#terminate(error);
  }

  // ---- the application's side -------------------------------------------

  /** Half-closes (after writes already queued), then waits for the peer's FIN. */
  async close(): Promise<void> {
    if (!this.writable.locked) {
      await this.writable.close().catch(() => {});
    } else {
      if (this.#writing !== undefined) await this.#writing.catch(() => {});
      this.#closeWrite();
    }
    if (this.#state === "closed" || this.#state === "reset") return;
    const timer = setTimeout(() => {
      this.abort(new NetworkError("TIMEOUT", `yamux: stream ${this.id} close timed out`));
    }, this.#host.streamCloseTimeout);
    try {
      await this.closed;
    } finally {
      clearTimeout(timer);
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

  // ---- internals ----------------------------------------------------------

  #sendReset(): void {
    // A stream whose SYN never left is unknown to the peer: nothing to reset.
    if ((this.#takeOpenFlag() & Flag.SYN) !== 0) return;
    this.#host.sendHeader(FrameType.WindowUpdate, Flag.RST, this.id, 0);
  }

  #pull(): void {
    if (this.#queueHead < this.#queue.length) {
      const chunk = this.#queue[this.#queueHead];
      this.#queue[this.#queueHead++] = EMPTY;
      if (this.#queueHead === this.#queue.length) {
        this.#queue.length = 0;
        this.#queueHead = 0;
      }
      this.#deliver(chunk);
      return;
    }
    if (this.#state === "remoteClose" || this.#state === "closed") {
      this.flushDeferred();
      this.#endRead();
      return;
    }
    this.#pullPending = true;
    this.flushDeferred();
  }

  /** Hands `chunk` to the reader and credits the peer for it. */
  #deliver(chunk: Uint8Array): void {
    this.#readController.enqueue(chunk);
    this.#buffered -= chunk.length;
    this.#maybeUpdateWindow();
  }

  /**
   * Grants the peer what the application has consumed, once that is at
   * least half the window (fewer, larger updates). Auto-tuning: when half a
   * window was consumed in less than two round trips, the window, not the
   * link, limited the transfer, so the window doubles (up to the maximum and
   * the session's budget), as QUIC implementations and rust-yamux do.
   */
  #maybeUpdateWindow(): void {
    if (this.#state !== "established" && this.#state !== "localClose") return;
    let grant = this.#receiveWindow - this.#receiveCredit - this.#buffered;
    if (grant < this.#receiveWindow / 2) return;
    const now = performance.now();
    const rtt = this.#host.rtt();
    if (rtt > 0 && now - this.#lastWindowUpdate < 2 * rtt) {
      const wanted = Math.min(this.#receiveWindow, this.#maxReceiveWindow - this.#receiveWindow);
      if (wanted > 0) {
        const granted = this.#host.reserveWindow(wanted);
        this.#receiveWindow += granted;
        grant += granted;
      }
    }
    this.#lastWindowUpdate = now;
    this.#receiveCredit += grant;
    this.#host.sendHeader(FrameType.WindowUpdate, this.#takeOpenFlag(), this.id, grant);
  }

  #endRead(): void {
    if (this.#readDone) return;
    this.#readDone = true;
    try {
      this.#readController.close();
    } catch {
      // already closed or errored by the application
    }
  }

  #cancelRead(reason: unknown): void {
    this.#readDone = true;
    this.#discardQueue();
    // Yamux cannot stop one direction: a reader that gives up resets the
    // stream unless the peer has already finished sending.
    if (this.#state === "established" || this.#state === "localClose") {
      this.abort(reason);
    }
  }

  #discardQueue(): void {
    this.#queue.length = 0;
    this.#queueHead = 0;
    this.#buffered = 0;
  }

  #trackWrite(chunk: Uint8Array): Promise<void> {
    const writing = this.#write(chunk);
    this.#writing = writing;
    return writing;
  }

  async #write(chunk: Uint8Array): Promise<void> {
    const host = this.#host;
    const max = host.maxFrameSize;
    let offset = 0;
    while (offset < chunk.length) {
      if (this.#state !== "established" && this.#state !== "remoteClose") {
        throw this.#error ??
          new NetworkError("CONNECTION_CLOSED", `yamux: stream ${this.id} closed for writing`);
      }
      if (this.#sendWindow === 0) {
        this.#windowWaiter ??= Promise.withResolvers<void>();
        await this.#windowWaiter.promise;
        continue;
      }
      if (this.#leadingData !== undefined) {
        // Queued in the same turn as the chunk's frame: one write to the connection.
        this.#sendLeadingData();
        continue;
      }
      const n = Math.min(this.#sendWindow, max, chunk.length - offset);
      const frame = this.#dataFrame(chunk, offset, n);
      offset += n;
      host.send(frame);
      const drained = host.drained();
      if (drained !== undefined) await drained;
    }
  }

  #closeWrite(): void {
    if (this.#leadingData !== undefined) this.#sendLeadingData();
    if (this.#state === "established") this.#state = "localClose";
    else if (this.#state === "remoteClose") this.#state = "closed";
    else return;
    this.#host.sendHeader(FrameType.WindowUpdate, Flag.FIN | this.#takeOpenFlag(), this.id, 0);
    if (this.#state === "closed") this.#finish();
  }

  /** Reached `reset`: fail both directions and release. */
  #terminate(error: NetworkError): void {
    if (this.#state === "reset" || this.#state === "closed") return;
    this.#state = "reset";
    this.#error = error;
    this.#leadingData = undefined;
    this.#discardQueue();
    if (!this.#readDone) {
      this.#readDone = true;
      this.#pullPending = false;
      try {
        this.#readController.error(error);
      } catch {
        // already closed
      }
    }
    try {
      this.#writeController.error(error);
    } catch {
      // already closed
    }
    if (this.#windowWaiter !== undefined) {
      const waiter = this.#windowWaiter;
      this.#windowWaiter = undefined;
      waiter.reject(error);
      waiter.promise.catch(() => {});
    }
    this.#finish();
  }

  #finish(): void {
    this.#host.releaseWindow(this.#receiveWindow);
    this.#host.released(this);
    this.#closedSignal.resolve();
  }
}
