/**
 * A yamux session (hashicorp/yamux `spec.md`, libp2p/specs
 * `yamux/README.md`): many {@linkcode YamuxStream}s over one connection,
 * with per-stream flow control and window auto-tuning, keepalive pings with
 * RTT measurement, GoAway and resource limits.
 *
 * @module
 */

import { setImmediate } from "node:timers";
import { abortable } from "../_async.ts";
import { type Logger, rootLogger } from "../log.ts";
import { defaultRegistry } from "../metrics.ts";
import type { Multiaddr } from "../multiaddr.ts";
import { NetworkError } from "../network_error.ts";
import type { Connection, ConnectionLifecycle } from "../transport/connection.ts";
import { type DirectSink, directSink, directSource } from "../transport/_direct.ts";
import type { Role } from "../transport/transport.ts";
import { StreamCore, type StreamHost, type StreamWindowOptions } from "./_stream_core.ts";
import {
  describeFrame,
  Flag,
  type FrameHeader,
  FrameType,
  GoAwayCode,
  HEADER_LENGTH,
  INITIAL_STREAM_WINDOW,
  MAX_WINDOW,
  writeFrameHeader,
} from "./frame.ts";
import { FrameDecoder, type FrameHandler } from "./frame_decoder.ts";
import { YamuxStream } from "./yamux_stream.ts";

/** Options for {@linkcode Yamux.create}. Defaults in {@linkcode YAMUX_DEFAULTS}. */
export interface YamuxOptions {
  /**
   * Our side: the dialer is the yamux client (odd stream ids), the listener
   * the server (even stream ids). Required.
   */
  role: Role;
  /**
   * Receive window granted to each new stream, in bytes; at least the spec's
   * 256 KiB (the extra is granted in the SYN/ACK frame). Default 256 KiB.
   */
  initialStreamWindow?: number;
  /**
   * Ceiling for window auto-tuning, in bytes. Set it equal to
   * `initialStreamWindow` to turn auto-tuning off. Default 16 MiB.
   */
  maxStreamWindow?: number;
  /**
   * Budget for the sum of all streams' receive windows, in bytes: auto-tuning
   * grows a window only within it. Default 1 GiB.
   */
  maxConnectionWindow?: number;
  /** Largest Data frame body we send, in bytes. Default 256 KiB. */
  maxFrameSize?: number;
  /**
   * Most inbound streams open at once (queued ones included); a SYN beyond
   * it is answered with RST and counted. Default 1024.
   */
  maxInboundStreams?: number;
  /**
   * Most inbound streams waiting for the application to take them from the
   * iterator (not yet acknowledged); beyond it new ones are reset. Default
   * 256 (the spec asks to buffer at least 256).
   */
  acceptBacklog?: number;
  /**
   * Most outbound streams the peer has not acknowledged yet; beyond it
   * `openStream` fails with `LIMIT_EXCEEDED`. Default 256 (the spec's ACK
   * backlog).
   */
  maxUnackedOutboundStreams?: number;
  /** Interval of keepalive pings in ms; 0 turns them off. Default 30_000. */
  keepAliveInterval?: number;
  /** How long a keepalive ping may stay unanswered before the session is aborted, in ms. Default 10_000. */
  pingTimeout?: number;
  /** How long `close()` lets existing streams finish before resetting them, in ms. Default 5_000. */
  closeTimeout?: number;
  /** How long a stream's `close()` waits for the peer's FIN before resetting, in ms. Default 10_000. */
  streamCloseTimeout?: number;
  /** Logger; default `rootLogger.child({ component: "yamux" })`. */
  logger?: Logger;
}

/** The defaults of {@linkcode YamuxOptions}. */
export const YAMUX_DEFAULTS: Readonly<Required<Omit<YamuxOptions, "role" | "logger">>> = {
  initialStreamWindow: INITIAL_STREAM_WINDOW,
  maxStreamWindow: 16 * 1024 * 1024,
  maxConnectionWindow: 1024 * 1024 * 1024,
  maxFrameSize: 256 * 1024,
  maxInboundStreams: 1024,
  acceptBacklog: 256,
  maxUnackedOutboundStreams: 256,
  keepAliveInterval: 30_000,
  pingTimeout: 10_000,
  closeTimeout: 5_000,
  streamCloseTimeout: 10_000,
};

/**
 * The session's states: `open`; `closing` after we sent GoAway (no new
 * streams either way; existing ones finish); `closed` (terminal).
 */
export type YamuxState = "open" | "closing" | "closed";

/** Options for {@linkcode Yamux.ping}. */
export interface YamuxPingOptions {
  /** Stops waiting for the answer. */
  signal?: AbortSignal;
}

const bytesTotal = defaultRegistry.counter(
  "yamux_bytes_total",
  "Bytes of yamux frames, headers included",
  ["direction"],
);
const framesTotal = defaultRegistry.counter("yamux_frames_total", "Yamux frames", ["direction"]);
const BYTES_IN = bytesTotal.labels({ direction: "in" });
const BYTES_OUT = bytesTotal.labels({ direction: "out" });
const FRAMES_IN = framesTotal.labels({ direction: "in" });
const FRAMES_OUT = framesTotal.labels({ direction: "out" });
const STREAMS_OPEN = defaultRegistry.gauge("yamux_streams_open", "Open yamux streams").labels();
const streamsRefused = defaultRegistry.counter(
  "yamux_streams_refused_total",
  "Inbound yamux streams reset at open, by reason",
  ["reason"],
);
const sessionErrors = defaultRegistry.counter(
  "yamux_session_errors_total",
  "Yamux sessions ended by an error, by code",
  ["code"],
);
const ACCEPT_QUEUE_DEPTH = defaultRegistry.gauge(
  "yamux_accept_queue_depth",
  "Inbound yamux streams waiting for the application to take them, over all sessions",
).labels();
const WINDOW_GROWN = defaultRegistry.counter(
  "yamux_window_grown_bytes_total",
  "Bytes added to stream receive windows by auto-tuning",
).labels();

/** Frames smaller than this are coalesced with their neighbours into one write. */
const COALESCE_BELOW = 16 * 1024;
/** Data frames this large come from the session's frame pool. */
const POOLED_FRAME_MIN = COALESCE_BELOW;
/** Frame buffers the pool keeps for reuse. */
const FRAME_POOL_SIZE = 4;
/** The largest write made of coalesced frames. */
const COALESCE_LIMIT = 64 * 1024;
/**
 * Header-only frames (window updates, ping answers, resets) queued and not
 * yet written; beyond it the peer floods us without reading and is dropped.
 */
const MAX_QUEUED_CONTROL_FRAMES = 64 * 1024;
/** How long a failing session tries to get its GoAway out before aborting. */
const GOAWAY_FLUSH_MS = 1_000;

interface PendingPing {
  start: number;
  resolve: (ms: number) => void;
  reject: (err: NetworkError) => void;
}

/**
 * A yamux session over a {@linkcode Connection}: open streams, accept
 * streams, ping, close.
 *
 * Inbound streams are an async iterable: `for await (const stream of muxer)`
 * (one consumer at a time). Streams that arrive before anyone iterates are
 * queued (up to `acceptBacklog`, beyond which they are reset), and each is
 * acknowledged when the iterator hands it out. The iteration ends when the
 * session closes; if it ended by an error, {@linkcode Yamux.error} says why.
 *
 * Nothing runs until {@linkcode Yamux.start}.
 *
 * @example
 * ```ts ignore
 * import { Yamux } from "./yamux.ts";
 * const muxer = Yamux.create(conn, { role: "dialer" });
 * muxer.start();
 * const stream = await muxer.openStream();
 * console.log("rtt", await muxer.ping(), "ms");
 * await muxer.close();
 * ```
 */
export class Yamux<C extends Connection = Connection>
  implements ConnectionLifecycle, AsyncIterable<YamuxStream> {
  /** Settles (never rejects) when the session and its connection are released. */
  readonly closed: Promise<void>;
  /** Our side. */
  readonly role: Role;

  readonly #conn: C;
  readonly #options: Required<Omit<YamuxOptions, "logger">>;
  readonly #windows: StreamWindowOptions;
  readonly #log: Logger;
  readonly #host: StreamHost;
  readonly #handler: FrameHandler;
  readonly #decoder: FrameDecoder;
  readonly #closedSignal = Promise.withResolvers<void>();

  #state: YamuxState = "open";
  #started = false;
  #error: NetworkError | undefined;
  #remoteGoAway: number | undefined;

  readonly #streams = new Map<number, StreamCore>();
  readonly #facades = new WeakMap<StreamCore, YamuxStream>();
  #nextId: number;
  #inbound = 0;
  #unacked = 0;
  #windowBudget = 0;
  #idleSignal: PromiseWithResolvers<void> | undefined;

  readonly #acceptQueue: StreamCore[] = [];
  #acceptHead = 0;
  #acceptSignal: PromiseWithResolvers<void> | undefined;

  // The frame being read: its stream (undefined: drop the body) and flags.
  #current: StreamCore | undefined;
  #currentFlags = 0;

  #writer: WritableStreamDefaultWriter<Uint8Array> | undefined;
  /** The connection writable's side door, once we hold its lock. */
  #sink: DirectSink | undefined;
  #queue: Uint8Array[] = [];
  #queueHead = 0;
  #queuedBytes = 0;
  #queuedControl = 0;
  #flushing = false;
  #writeClosed = false;
  readonly #highWater: number;
  #drainSignal: PromiseWithResolvers<void> | undefined;
  #flushedSignal: PromiseWithResolvers<void> | undefined;

  /** Streams whose SYN, ACK or leading data waits for their next frame, flushed once per event-loop turn. */
  #deferredOpen: StreamCore[] = [];
  readonly #pings = new Map<number, PendingPing>();
  #nextPing = 1;
  #srtt = Number.NaN;
  #rttProbe = false;
  #keepAliveTimer: ReturnType<typeof setInterval> | undefined;
  /** Frame buffers free for reuse, and every buffer the pool ever made. */
  readonly #framePool: ArrayBuffer[] = [];
  readonly #pooledBuffers = new WeakSet<ArrayBuffer>();
  #keepAlivePending = false;

  /**
   * Wraps `conn`, which the session then owns. Prefer
   * {@linkcode Yamux.create}. Starts nothing: call {@linkcode Yamux.start}.
   */
  constructor(conn: C, options: YamuxOptions) {
    const { logger, ...rest } = options;
    this.#options = { ...YAMUX_DEFAULTS, ...rest };
    const o = this.#options;
    if (o.role !== "dialer" && o.role !== "listener") {
      throw new TypeError(`yamux: role must be "dialer" or "listener", not ${o.role}`);
    }
    if (o.initialStreamWindow < INITIAL_STREAM_WINDOW || o.initialStreamWindow > MAX_WINDOW) {
      throw new RangeError(`yamux: initialStreamWindow must be at least ${INITIAL_STREAM_WINDOW}`);
    }
    if (o.maxStreamWindow < o.initialStreamWindow || o.maxStreamWindow > MAX_WINDOW) {
      throw new RangeError("yamux: maxStreamWindow must be at least initialStreamWindow");
    }
    if (!(o.maxFrameSize > 0)) throw new RangeError("yamux: maxFrameSize must be positive");
    this.#conn = conn;
    this.role = o.role;
    this.closed = this.#closedSignal.promise;
    this.#log = (logger ?? rootLogger).child({ component: "yamux", role: o.role });
    this.#nextId = o.role === "dialer" ? 1 : 2;
    this.#windows = {
      initialReceiveWindow: o.initialStreamWindow,
      maxReceiveWindow: o.maxStreamWindow,
    };
    this.#highWater = Math.max(2 * o.maxFrameSize, 1024 * 1024);
    // A peer may send a Data frame as large as the largest window we grant.
    this.#decoder = new FrameDecoder(o.maxStreamWindow);
    this.#handler = {
      frame: (header) => this.#onFrame(header),
      data: (piece, remaining) => this.#onData(piece, remaining),
    };
    this.#host = {
      maxFrameSize: o.maxFrameSize,
      streamCloseTimeout: o.streamCloseTimeout,
      send: (frame) => this.#send(frame),
      frameBuffer: (length) => this.#frameBuffer(length),
      sendHeader: (type, flags, id, length) => this.#sendHeader(type, flags, id, length),
      deferred: (core) => this.#deferred(core),
      sendingOpenFlag: (core) => this.#sendingOpenFlag(core),
      drained: () => this.#drained(),
      rtt: () => this.#rttForTuning(),
      reserveWindow: (bytes) => this.#reserveWindow(bytes),
      releaseWindow: (bytes) => {
        this.#windowBudget -= bytes;
      },
      released: (core) => this.#released(core),
    };
  }

  /**
   * A session over `conn` for our `role`. Call {@linkcode Yamux.start} next.
   *
   * @example
   * ```ts ignore
   * const muxer = Yamux.create(conn, { role: "listener", maxInboundStreams: 64 });
   * muxer.start();
   * for await (const stream of muxer) handle(stream);
   * ```
   */
  static create<C extends Connection>(conn: C, options: YamuxOptions): Yamux<C> {
    return new Yamux(conn, options);
  }

  /** The connection the session runs on (e.g. a secure channel, to read the peer's identity). */
  get connection(): C {
    return this.#conn;
  }

  /** The session state. */
  get state(): YamuxState {
    return this.#state;
  }

  /** The error that ended the session, if it did not end normally. */
  get error(): NetworkError | undefined {
    return this.#error;
  }

  /** Streams currently open (inbound queued ones included). */
  get streamCount(): number {
    return this.#streams.size;
  }

  /** The smoothed ping round-trip time in ms, once measured. */
  get rtt(): number | undefined {
    return Number.isNaN(this.#srtt) ? undefined : this.#srtt;
  }

  /** The GoAway code the peer sent, if it did. */
  get remoteGoAway(): number | undefined {
    return this.#remoteGoAway;
  }

  /**
   * Starts reading frames and arms keepalive pings. Idempotent. The
   * round-trip time window auto-tuning needs is measured by a ping sent the
   * first time a stream's window update asks for it, so a short-lived
   * session sends none.
   */
  start(): void {
    if (this.#started) return;
    this.#started = true;
    this.#writer = this.#conn.writable.getWriter();
    this.#sink = directSink(this.#conn.writable);
    void this.#readLoop();
    if (this.#options.keepAliveInterval > 0) {
      this.#keepAliveTimer = setInterval(() => this.#keepAlive(), this.#options.keepAliveInterval);
    }
  }

  /**
   * Opens a stream. The SYN goes out with the stream's first frame when that
   * is sent in this turn of the event loop (a protocol proposal, say), else
   * on its own at the end of the turn; data may follow before the peer
   * acknowledges.
   *
   * @throws {NetworkError} `CONNECTION_CLOSED` when the session is closing
   *   or closed or the peer sent GoAway; `LIMIT_EXCEEDED` when
   *   `maxUnackedOutboundStreams` streams await the peer's ACK or stream ids
   *   are exhausted
   */
  openStream(): Promise<YamuxStream> {
    try {
      return Promise.resolve(this.#open());
    } catch (err) {
      return Promise.reject(err);
    }
  }

  #open(): YamuxStream {
    if (!this.#started) throw new TypeError("yamux: call start() before openStream()");
    if (this.#state !== "open") {
      throw this.#error ?? new NetworkError("CONNECTION_CLOSED", "yamux: session is closed");
    }
    if (this.#remoteGoAway !== undefined) {
      throw new NetworkError("CONNECTION_CLOSED", "yamux: the peer sent GoAway");
    }
    if (this.#unacked >= this.#options.maxUnackedOutboundStreams) {
      throw new NetworkError(
        "LIMIT_EXCEEDED",
        `yamux: ${this.#unacked} outbound streams await the peer's ACK (maxUnackedOutboundStreams)`,
      );
    }
    const id = this.#nextId;
    if (id > MAX_WINDOW) throw new NetworkError("LIMIT_EXCEEDED", "yamux: stream ids exhausted");
    this.#nextId += 2;
    const core = this.#addStream(id, true);
    this.#unacked++;
    this.#sendOpenFlag(core, Flag.SYN);
    return this.#facade(core);
  }

  /**
   * Measures the round trip with a Ping frame.
   *
   * @returns the round-trip time in ms
   * @throws {NetworkError} `CONNECTION_CLOSED` when the session ends first;
   *   the signal's error when it fires
   */
  ping(options: YamuxPingOptions = {}): Promise<number> {
    if (!this.#started || this.#state === "closed") {
      return Promise.reject(
        this.#error ?? new NetworkError("CONNECTION_CLOSED", "yamux: session is not running"),
      );
    }
    const id = this.#nextPing;
    this.#nextPing = (this.#nextPing + 1) >>> 0 || 1;
    const { promise, resolve, reject } = Promise.withResolvers<number>();
    this.#pings.set(id, { start: performance.now(), resolve, reject });
    this.#sendHeader(FrameType.Ping, Flag.SYN, 0, id);
    if (options.signal === undefined) return promise;
    options.signal.addEventListener("abort", () => this.#pings.delete(id), { once: true });
    return abortable(promise, options.signal);
  }

  /** Inbound streams, in arrival order. See the class documentation. */
  [Symbol.asyncIterator](): AsyncIterator<YamuxStream> {
    return {
      next: () => this.#nextInbound(),
      return: () => Promise.resolve({ done: true, value: undefined }),
    };
  }

  /** Our address of the underlying connection. */
  get localAddr(): Multiaddr {
    return this.#conn.localAddr;
  }

  /** The peer's address of the underlying connection. */
  get remoteAddr(): Multiaddr {
    return this.#conn.remoteAddr;
  }

  /**
   * Graceful close: sends GoAway (normal termination), refuses new streams
   * both ways, lets existing streams finish for up to `closeTimeout` ms
   * (then resets them), then closes the connection.
   */
  async close(): Promise<void> {
    if (!this.#started && this.#state === "open") {
      this.#end(undefined);
      return this.#release(false);
    }
    if (this.#state !== "open") return this.closed;
    // Streams opened before the GoAway are announced before it.
    this.#flushDeferredOpen();
    this.#state = "closing";
    this.#stopKeepAlive();
    this.#sendHeader(FrameType.GoAway, 0, 0, GoAwayCode.NormalTermination);
    // Queued streams were never acknowledged: refuse them like late SYNs.
    for (let i = this.#acceptHead; i < this.#acceptQueue.length; i++) {
      this.#acceptQueue[i].abort(new NetworkError("CONNECTION_CLOSED", "yamux: session closing"));
    }
    this.#clearAcceptQueue();
    this.#wakeAcceptor();
    if (this.#streams.size > 0) {
      this.#idleSignal ??= Promise.withResolvers<void>();
      let timer: ReturnType<typeof setTimeout> | undefined;
      const timeout = new Promise<void>((resolve) => {
        timer = setTimeout(resolve, this.#options.closeTimeout);
      });
      await Promise.race([this.#idleSignal.promise, timeout, this.closed]);
      clearTimeout(timer);
      if (this.#streams.size > 0) {
        // Made only when a stream is left: an Error costs its stack trace.
        const leftover = new NetworkError("TIMEOUT", "yamux: stream still open at session close");
        for (const core of [...this.#streams.values()]) core.abort(leftover);
      }
    }
    // A failure while streams finished already released everything.
    if ((this.#state as YamuxState) === "closed") return this.closed;
    this.#end(undefined);
    await this.#release(true);
  }

  /** Drops the session at once: streams fail, the connection is aborted. */
  abort(reason?: unknown): void {
    if (this.#state === "closed") return;
    const error = reason instanceof NetworkError
      ? reason
      : new NetworkError("ABORTED", "yamux: session aborted", { cause: reason });
    this.#end(error);
    this.#writeClosed = true;
    this.#conn.abort(error);
    this.#conn.closed.then(() => this.#closedSignal.resolve());
  }

  // ---- streams ---------------------------------------------------------------

  #addStream(id: number, outbound: boolean): StreamCore {
    const core = new StreamCore(id, outbound, this.#host, this.#windows);
    this.#streams.set(id, core);
    this.#windowBudget += core.receiveWindow;
    STREAMS_OPEN.inc();
    if (!outbound) this.#inbound++;
    return core;
  }

  #facade(core: StreamCore): YamuxStream {
    let facade = this.#facades.get(core);
    if (facade === undefined) {
      facade = new YamuxStream(core, this);
      this.#facades.set(core, facade);
    }
    return facade;
  }

  #released(core: StreamCore): void {
    if (this.#streams.get(core.id) !== core) return;
    this.#streams.delete(core.id);
    STREAMS_OPEN.dec();
    if (!core.outbound) this.#inbound--;
    else if (!core.acked) this.#unacked--;
    if (this.#streams.size === 0 && this.#idleSignal !== undefined) {
      this.#idleSignal.resolve();
      this.#idleSignal = undefined;
    }
  }

  /** The smoothed RTT, NaN until measured; the first call starts the measurement. */
  #rttForTuning(): number {
    if (Number.isNaN(this.#srtt) && !this.#rttProbe && this.#state === "open") {
      this.#rttProbe = true;
      this.ping().catch(() => {}).finally(() => {
        this.#rttProbe = false;
      });
    }
    return this.#srtt;
  }

  #reserveWindow(bytes: number): number {
    const granted = Math.max(
      0,
      Math.min(bytes, this.#options.maxConnectionWindow - this.#windowBudget),
    );
    this.#windowBudget += granted;
    WINDOW_GROWN.inc(granted);
    return granted;
  }

  async #nextInbound(): Promise<IteratorResult<YamuxStream>> {
    while (true) {
      while (this.#acceptHead < this.#acceptQueue.length) {
        const core = this.#acceptQueue[this.#acceptHead++];
        ACCEPT_QUEUE_DEPTH.dec();
        if (this.#acceptHead === this.#acceptQueue.length) {
          this.#acceptQueue.length = 0;
          this.#acceptHead = 0;
        }
        if (core.state === "reset") continue;
        // Acknowledge when the application takes the stream, as the spec
        // recommends, so the peer's ACK backlog reflects our pace.
        this.#sendOpenFlag(core, Flag.ACK);
        return { done: false, value: this.#facade(core) };
      }
      if (this.#state !== "open") return { done: true, value: undefined };
      this.#acceptSignal ??= Promise.withResolvers<void>();
      await this.#acceptSignal.promise;
    }
  }

  /**
   * SYN or ACK for `core`: with the spec's window it rides on the stream's
   * first frame ("may be sent with a data or window update message") when
   * the application sends one in the same turn of the event loop (opening a
   * stream and proposing its protocol, accepting one and answering); a
   * larger initial window must be announced in a window update, sent now.
   */
  #sendOpenFlag(core: StreamCore, flag: number): void {
    if (core.initialWindowDelta === 0) core.deferOpenFlag(flag);
    else this.#sendHeader(FrameType.WindowUpdate, flag, core.id, core.initialWindowDelta);
  }

  #deferred(core: StreamCore): void {
    if (this.#deferredOpen.includes(core)) return;
    this.#deferredOpen.push(core);
    // After every microtask of this turn: whatever the application sends in
    // reaction to opening or accepting the stream has been queued by then.
    if (this.#deferredOpen.length === 1) setImmediate(() => this.#flushDeferredOpen());
  }

  #sendingOpenFlag(core: StreamCore): void {
    const list = this.#deferredOpen;
    const at = list.indexOf(core);
    if (at < 0) return;
    const earlier = list.splice(0, at + 1);
    earlier.pop();
    for (const other of earlier) other.flushDeferred();
  }

  #flushDeferredOpen(): void {
    const cores = this.#deferredOpen;
    this.#deferredOpen = [];
    for (const core of cores) core.flushDeferred();
  }

  #clearAcceptQueue(): void {
    ACCEPT_QUEUE_DEPTH.dec(this.#acceptQueue.length - this.#acceptHead);
    this.#acceptQueue.length = 0;
    this.#acceptHead = 0;
  }

  #wakeAcceptor(): void {
    if (this.#acceptSignal !== undefined) {
      const signal = this.#acceptSignal;
      this.#acceptSignal = undefined;
      signal.resolve();
    }
  }

  #acceptInbound(id: number): StreamCore | undefined {
    let reason: string | undefined;
    if (this.#state !== "open") reason = "goaway";
    else if (this.#inbound >= this.#options.maxInboundStreams) reason = "inbound_limit";
    else if (this.#acceptQueue.length - this.#acceptHead >= this.#options.acceptBacklog) {
      reason = "backlog";
    }
    if (reason !== undefined) {
      streamsRefused.labels({ reason }).inc();
      this.#log.debug("inbound stream refused", { stream: id, reason });
      this.#sendHeader(FrameType.WindowUpdate, Flag.RST, id, 0);
      return undefined;
    }
    const core = this.#addStream(id, false);
    this.#acceptQueue.push(core);
    ACCEPT_QUEUE_DEPTH.inc();
    this.#wakeAcceptor();
    return core;
  }

  // ---- reading ---------------------------------------------------------------

  async #readLoop(): Promise<void> {
    let reader: ReadableStreamDefaultReader<Uint8Array>;
    try {
      reader = this.#conn.readable.getReader();
    } catch (err) {
      this.#fail(NetworkError.wrap(err, "CONNECTION_RESET", "yamux: cannot read"), undefined);
      return;
    }
    // Locked above, so the connection's side door (if any) is ours.
    const direct = directSource(this.#conn.readable);
    while (true) {
      let chunk: Uint8Array | undefined;
      try {
        if (direct !== undefined) {
          chunk = await direct.read();
        } else {
          const result = await reader.read();
          chunk = result.done ? undefined : result.value;
        }
      } catch (err) {
        this.#fail(NetworkError.wrap(err, "CONNECTION_RESET", "yamux: read failed"), undefined);
        return;
      }
      if (chunk === undefined) break;
      BYTES_IN.inc(chunk.length);
      try {
        this.#decoder.decode(chunk, this.#handler);
      } catch (err) {
        if (NetworkError.is(err)) {
          this.#fail(err, GoAwayCode.ProtocolError);
        } else {
          // A bug of ours, not the peer's fault: say so on the wire.
          this.#log.error("yamux internal error", { error: err });
          this.#fail(
            NetworkError.wrap(err, "CONNECTION_RESET", "yamux: internal error"),
            GoAwayCode.InternalError,
          );
        }
        reader.cancel().catch(() => {});
        return;
      }
      // After a graceful close, reading goes on until the peer's end, so the
      // connection is not torn down under bytes it still sends.
    }
    if (this.#state === "closed") return;
    // The peer closed the connection: streams still open end with it. After
    // its GoAway(normal) with nothing left open that is a normal ending.
    const normal = this.#remoteGoAway === GoAwayCode.NormalTermination && this.#streams.size === 0;
    this.#end(
      normal
        ? undefined
        : new NetworkError("CONNECTION_CLOSED", "yamux: connection closed by the peer"),
    );
    void this.#release(true);
  }

  #onFrame(header: FrameHeader): void {
    FRAMES_IN.inc();
    switch (header.type) {
      case FrameType.Data:
      case FrameType.WindowUpdate:
        this.#onStreamFrame(header);
        return;
      case FrameType.Ping:
        this.#onPing(header);
        return;
      case FrameType.GoAway:
        this.#onGoAway(header.length);
        return;
    }
  }

  #onStreamFrame(header: FrameHeader): void {
    const { streamId: id, flags, length } = header;
    const isData = header.type === FrameType.Data;
    if (id === 0) {
      throw new NetworkError("PROTOCOL_VIOLATION", `yamux: ${describeFrame(header)} on stream 0`);
    }
    let core = this.#streams.get(id);
    if ((flags & Flag.SYN) !== 0) {
      if (core !== undefined) {
        throw new NetworkError("PROTOCOL_VIOLATION", `yamux: SYN for open stream ${id}`);
      }
      if ((id & 1) === (this.#nextId & 1)) {
        throw new NetworkError(
          "PROTOCOL_VIOLATION",
          `yamux: peer opened stream ${id} with our parity (${this.role})`,
        );
      }
      core = this.#acceptInbound(id);
    } else if (core !== undefined && (flags & Flag.ACK) !== 0 && !core.acked) {
      core.acked = true;
      this.#unacked--;
    }
    if (isData) {
      // Unknown streams are not an error: a stream we reset may still get the
      // data the peer sent before it saw our RST. Such bodies are dropped.
      const wanted = core !== undefined && core.onDataHeader(length);
      if (length > 0) {
        // The body follows; FIN/RST apply after its last byte.
        this.#current = wanted ? core : undefined;
        this.#currentFlags = flags;
        return;
      }
      if (!wanted) return;
    } else if (core !== undefined) {
      core.onWindowUpdate(length);
    }
    if (core !== undefined) this.#applyCloseFlags(core, flags);
  }

  #onData(piece: Uint8Array, remaining: number): void {
    const core = this.#current;
    if (core === undefined) return;
    core.onData(piece);
    if (remaining === 0) {
      this.#current = undefined;
      this.#applyCloseFlags(core, this.#currentFlags);
    }
  }

  #applyCloseFlags(core: StreamCore, flags: number): void {
    if ((flags & Flag.RST) !== 0) core.onReset();
    else if ((flags & Flag.FIN) !== 0) core.onFin();
  }

  #onPing(header: FrameHeader): void {
    if ((header.flags & Flag.SYN) !== 0) {
      this.#sendHeader(FrameType.Ping, Flag.ACK, 0, header.length);
      return;
    }
    if ((header.flags & Flag.ACK) === 0) return;
    const pending = this.#pings.get(header.length);
    if (pending === undefined) return;
    this.#pings.delete(header.length);
    const rtt = performance.now() - pending.start;
    // Smoothed like TCP's SRTT (RFC 6298): new samples weigh 1/8.
    this.#srtt = Number.isNaN(this.#srtt) ? rtt : this.#srtt * 0.875 + rtt * 0.125;
    pending.resolve(rtt);
  }

  #onGoAway(code: number): void {
    this.#remoteGoAway = code;
    if (code === GoAwayCode.NormalTermination) {
      this.#log.debug("peer sent GoAway");
      return;
    }
    const what = code === GoAwayCode.ProtocolError ? "protocol error" : `error code ${code}`;
    this.#fail(new NetworkError("CONNECTION_RESET", `yamux: peer went away (${what})`), undefined);
  }

  // ---- writing ---------------------------------------------------------------

  #sendHeader(type: FrameType, flags: number, id: number, length: number): void {
    if (this.#writeClosed) return;
    if (++this.#queuedControl > MAX_QUEUED_CONTROL_FRAMES) {
      this.#fail(
        new NetworkError("LIMIT_EXCEEDED", "yamux: peer does not read the frames it provokes"),
        undefined,
      );
      return;
    }
    const frame = new Uint8Array(HEADER_LENGTH);
    writeFrameHeader(frame, 0, type, flags, id, length);
    this.#send(frame);
  }

  #send(frame: Uint8Array): void {
    if (this.#writeClosed) return;
    FRAMES_OUT.inc();
    this.#queue.push(frame);
    this.#queuedBytes += frame.length;
    if (!this.#flushing && this.#writer !== undefined) {
      this.#flushing = true;
      // Flushing in a microtask lets frames made in the same turn (a SYN and
      // the first data, window updates of many streams) share one write.
      queueMicrotask(() => void this.#flush());
    }
  }

  /**
   * Data frames of at least {@linkcode POOLED_FRAME_MIN} bytes come from a
   * few buffers that go back to the pool once the connection's writer has
   * taken them (its write resolved: the connection contract lets us reuse a
   * chunk then), so bulk transfers allocate no frame per write.
   */
  #frameBuffer(length: number): Uint8Array {
    if (length < POOLED_FRAME_MIN) return new Uint8Array(length);
    const pool = this.#framePool;
    for (let i = pool.length - 1; i >= 0; i--) {
      if (pool[i].byteLength >= length) {
        const buffer = pool[i];
        pool[i] = pool[pool.length - 1];
        pool.pop();
        return new Uint8Array(buffer, 0, length);
      }
    }
    const buffer = new ArrayBuffer(Math.max(length, HEADER_LENGTH + this.#options.maxFrameSize));
    this.#pooledBuffers.add(buffer);
    return new Uint8Array(buffer, 0, length);
  }

  #recycle(chunk: Uint8Array): void {
    const buffer = chunk.buffer as ArrayBuffer;
    if (
      chunk.byteOffset === 0 && this.#pooledBuffers.has(buffer) &&
      this.#framePool.length < FRAME_POOL_SIZE
    ) {
      this.#framePool.push(buffer);
    }
  }

  #drained(): Promise<void> | undefined {
    if (this.#queuedBytes <= this.#highWater || this.#writeClosed) return undefined;
    this.#drainSignal ??= Promise.withResolvers<void>();
    return this.#drainSignal.promise;
  }

  #wakeWriters(): void {
    if (this.#drainSignal !== undefined) {
      const signal = this.#drainSignal;
      this.#drainSignal = undefined;
      signal.resolve();
    }
  }

  async #flush(): Promise<void> {
    const writer = this.#writer!;
    try {
      while (this.#queueHead < this.#queue.length) {
        const chunk = this.#takeBatch();
        BYTES_OUT.inc(chunk.length);
        if (this.#queuedBytes <= this.#highWater / 2) this.#wakeWriters();
        const sink = this.#sink;
        if (sink !== undefined) {
          // The channel encrypts at once; a promise asks us to wait for room.
          const room = sink.write(chunk);
          if (room !== undefined) await room;
          this.#recycle(chunk);
          continue;
        }
        writer.write(chunk).then(
          () => this.#recycle(chunk),
          (err) => this.#onWriteError(err),
        );
        if ((writer.desiredSize ?? 0) <= 0) await writer.ready;
      }
    } catch (err) {
      this.#onWriteError(err);
    } finally {
      this.#flushing = false;
      if (this.#queueHead >= this.#queue.length && this.#flushedSignal !== undefined) {
        this.#flushedSignal.resolve();
        this.#flushedSignal = undefined;
      }
    }
  }

  /** The next write: one large frame, or consecutive small frames joined. */
  #takeBatch(): Uint8Array {
    const queue = this.#queue;
    const first = queue[this.#queueHead];
    let end = this.#queueHead + 1;
    let total = first.length;
    if (first.length < COALESCE_BELOW) {
      while (
        end < queue.length && queue[end].length < COALESCE_BELOW &&
        total + queue[end].length <= COALESCE_LIMIT
      ) {
        total += queue[end].length;
        end++;
      }
    }
    let chunk = first;
    let control = first.length === HEADER_LENGTH ? 1 : 0;
    if (end - this.#queueHead > 1) {
      chunk = new Uint8Array(total);
      let at = 0;
      for (let i = this.#queueHead; i < end; i++) {
        const frame = queue[i];
        chunk.set(frame, at);
        at += frame.length;
        if (frame.length === HEADER_LENGTH && i !== this.#queueHead) control++;
      }
    }
    if (end === queue.length) {
      this.#queue = [];
      this.#queueHead = 0;
    } else {
      for (let i = this.#queueHead; i < end; i++) queue[i] = EMPTY;
      this.#queueHead = end;
    }
    this.#queuedBytes -= total;
    this.#queuedControl -= control;
    return chunk;
  }

  #onWriteError(err: unknown): void {
    this.#fail(NetworkError.wrap(err, "CONNECTION_RESET", "yamux: write failed"), undefined);
  }

  /** Writes what is queued, then half-closes the connection's writable. */
  async #shutdownWrite(): Promise<void> {
    const writer = this.#writer;
    if (writer === undefined) return;
    if (this.#flushing || this.#queueHead < this.#queue.length) {
      this.#flushedSignal ??= Promise.withResolvers<void>();
      await this.#flushedSignal.promise;
    }
    this.#writeClosed = true;
    await writer.close().catch(() => {});
  }

  // ---- endings ---------------------------------------------------------------

  /** A fatal error: streams fail; GoAway with `code` if given; the connection is aborted. */
  #fail(error: NetworkError, code: GoAwayCode | undefined): void {
    if (this.#state === "closed") return;
    sessionErrors.labels({ code: error.code }).inc();
    this.#log.warn("yamux session failed", { error });
    this.#end(error);
    if (code === undefined || this.#writer === undefined) {
      this.#writeClosed = true;
      this.#conn.abort(error);
      this.#conn.closed.then(() => this.#closedSignal.resolve());
      return;
    }
    this.#sendHeader(FrameType.GoAway, 0, 0, code);
    let timer: ReturnType<typeof setTimeout> | undefined;
    const gaveUp = new Promise<void>((resolve) => {
      timer = setTimeout(resolve, GOAWAY_FLUSH_MS);
    });
    Promise.race([this.#shutdownWrite(), gaveUp]).then(() => {
      clearTimeout(timer);
      this.#writeClosed = true;
      this.#conn.abort(error);
      return this.#conn.closed;
    }).then(() => this.#closedSignal.resolve());
  }

  /** Moves to `closed`: streams, pings and the acceptor end with `error` (if any). */
  #end(error: NetworkError | undefined): void {
    this.#state = "closed";
    this.#error = error;
    this.#stopKeepAlive();
    if (this.#streams.size > 0 || this.#pings.size > 0) {
      // Made only when something will see it: an Error costs its stack trace.
      const streamError = error ?? new NetworkError("CONNECTION_CLOSED", "yamux: session closed");
      for (const core of [...this.#streams.values()]) core.onSessionEnd(streamError);
      for (const pending of this.#pings.values()) pending.reject(streamError);
      this.#pings.clear();
    }
    this.#clearAcceptQueue();
    this.#wakeAcceptor();
    this.#wakeWriters();
  }

  #releasing: Promise<void> | undefined;

  /** Gracefully half-closes and closes the connection (once). */
  #release(graceful: boolean): Promise<void> {
    this.#releasing ??= (async () => {
      if (graceful) {
        // A peer that stopped reading must not hold the close forever.
        let timer: ReturnType<typeof setTimeout> | undefined;
        const gaveUp = new Promise<void>((resolve) => {
          timer = setTimeout(resolve, this.#options.closeTimeout);
        });
        await Promise.race([this.#shutdownWrite(), gaveUp]);
        clearTimeout(timer);
      }
      this.#writeClosed = true;
      await this.#conn.close().catch(() => this.#conn.abort());
      this.#closedSignal.resolve();
    })();
    return this.#releasing;
  }

  #keepAlive(): void {
    if (this.#keepAlivePending || this.#state === "closed") return;
    this.#keepAlivePending = true;
    const timer = setTimeout(() => {
      this.#fail(
        new NetworkError(
          "TIMEOUT",
          `yamux: keepalive ping unanswered for ${this.#options.pingTimeout} ms`,
        ),
        GoAwayCode.InternalError,
      );
    }, this.#options.pingTimeout);
    this.ping().then(() => {}, () => {}).finally(() => {
      clearTimeout(timer);
      this.#keepAlivePending = false;
    });
  }

  #stopKeepAlive(): void {
    if (this.#keepAliveTimer !== undefined) {
      clearInterval(this.#keepAliveTimer);
      this.#keepAliveTimer = undefined;
    }
  }
}

const EMPTY = new Uint8Array(0);
