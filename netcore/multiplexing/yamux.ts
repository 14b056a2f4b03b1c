/**
 * A yamux session (hashicorp/yamux `spec.md`, libp2p/specs
 * `yamux/README.md`): many {@linkcode YamuxStream}s over one connection.
 *
 * This file is the session and its frame dispatch; its concerns live
 * beside it: `_write_scheduler.ts` (the frame queue and backpressure),
 * `_flow_control.ts` (windows and auto-tuning), `_keepalive.ts` (pings and
 * RTT), `yamux_stream.ts` (one stream's state machine), `frame.ts` and
 * `frame_decoder.ts` (the wire format).
 *
 * @module
 */

import { setImmediate } from "node:timers";
import { Deadline } from "../_async.ts";
import { type Logger, rootLogger } from "../log.ts";
import { defaultMetrics, type Metric, type Metrics, perScope, type Series } from "../metrics.ts";
import type { Multiaddr } from "../multiaddr.ts";
import { NetworkError } from "../network_error.ts";
import type { Connection, ConnectionLifecycle } from "../transport/connection.ts";
import type { Role } from "../transport/transport.ts";
import { WindowBudget } from "./_flow_control.ts";
import { Pings } from "./_keepalive.ts";
import { type Lane, WriteScheduler } from "./_write_scheduler.ts";
import {
  describeFrame,
  Flag,
  type FrameHeader,
  FrameType,
  GoAwayCode,
  INITIAL_STREAM_WINDOW,
  MAX_WINDOW,
} from "./frame.ts";
import { FrameDecoder, type FrameHandler } from "./frame_decoder.ts";
import { type Priority, type StreamHost, YamuxStream } from "./yamux_stream.ts";

/**
 * The multistream-select id of yamux.
 *
 * @example
 * ```ts
 * import { YAMUX_PROTOCOL_ID } from "./yamux.ts";
 * console.log(YAMUX_PROTOCOL_ID); // "/yamux/1.0.0"
 * ```
 */
export const YAMUX_PROTOCOL_ID = "/yamux/1.0.0";

/**
 * Options for {@linkcode Yamux.create}. Defaults in {@linkcode YAMUX_DEFAULTS}.
 *
 * @example
 * ```ts
 * import type { YamuxOptions } from "./yamux.ts";
 * const options: YamuxOptions = {
 *   role: "dialer",
 *   maxStreamWindow: 4 * 1024 * 1024,
 *   keepAliveInterval: 0, // no keepalive pings
 * };
 * ```
 */
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
  /**
   * How long a keepalive ping may stay unanswered, with nothing else
   * received meanwhile, before the session is aborted, in ms. Default 10_000.
   */
  pingTimeout?: number;
  /** How long `close()` lets existing streams finish before resetting them, in ms. Default 5_000. */
  closeTimeout?: number;
  /** How long a stream's `close()` waits for the peer's FIN before resetting, in ms. Default 10_000. */
  streamCloseTimeout?: number;
  /**
   * Whether queued frames go out by their stream's priority class (control
   * frames first, then `high`, `normal`, `low`), or all first in, first out.
   * Default true.
   */
  prioritized?: boolean;
  /** Where the session's counters go. Default `defaultMetrics`. */
  metrics?: Metrics;
  /** Logger; default `rootLogger`, with `component: "yamux"`. */
  logger?: Logger;
}

/**
 * The defaults of {@linkcode YamuxOptions}.
 *
 * @example
 * ```ts
 * import { YAMUX_DEFAULTS } from "./yamux.ts";
 * console.log(YAMUX_DEFAULTS.maxFrameSize, YAMUX_DEFAULTS.keepAliveInterval); // 262144 30000
 * ```
 */
export const YAMUX_DEFAULTS: Readonly<
  Required<Omit<YamuxOptions, "role" | "logger" | "metrics">>
> = {
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
  prioritized: true,
};

/**
 * The session's states: `open`; `closing` after we sent GoAway (no new
 * streams either way; existing ones finish); `closed` (terminal).
 *
 * @example
 * ```ts
 * import type { Yamux, YamuxState } from "./yamux.ts";
 * const open: YamuxState = "open";
 * const acceptsStreams = (muxer: Yamux) => muxer.state === open;
 * ```
 */
export type YamuxState = "open" | "closing" | "closed";

/**
 * Options for {@linkcode Yamux.ping}.
 *
 * @example
 * ```ts
 * import type { YamuxPingOptions } from "./yamux.ts";
 * const options: YamuxPingOptions = { signal: AbortSignal.timeout(2_000) };
 * ```
 */
export interface YamuxPingOptions {
  /** Stops waiting for the answer. */
  signal?: AbortSignal;
}

// The session's methods its host calls: keyed by symbols this module keeps,
// so they are not part of the session's API.
const RELEASED = Symbol("released");
const DEFERRED = Symbol("deferred");
const SENDING_OPEN_FLAG = Symbol("sendingOpenFlag");
const ON_FRAME = Symbol("onFrame");
const ON_DATA = Symbol("onData");

/** How long a failing session tries to get its GoAway out before aborting. */
const GOAWAY_FLUSH_MS = 1_000;

/** The series every session of one metrics scope adds to, resolved once per scope. */
interface YamuxMetrics {
  /** `bytesOut` and `framesOut`, as the write scheduler takes them. */
  writer: { bytes: Series; frames: Series };
  bytesIn: Series;
  bytesOut: Series;
  framesIn: Series;
  framesOut: Series;
  streamsOpen: Series;
  acceptQueueDepth: Series;
  windowGrown: Series;
  refused: Metric;
  sessionErrors: Metric;
}

const yamuxMetrics = perScope((metrics): YamuxMetrics => {
  const bytes = metrics.counter(
    "validator_network_yamux_bytes_total",
    "Bytes of yamux frames, headers included",
    ["direction"],
  );
  const frames = metrics.counter("validator_network_yamux_frames_total", "Yamux frames", [
    "direction",
  ]);
  const bytesOut = bytes.labels({ direction: "out" });
  const framesOut = frames.labels({ direction: "out" });
  return {
    writer: { bytes: bytesOut, frames: framesOut },
    bytesIn: bytes.labels({ direction: "in" }),
    bytesOut,
    framesIn: frames.labels({ direction: "in" }),
    framesOut,
    streamsOpen: metrics.gauge("validator_network_yamux_streams_open", "Open yamux streams")
      .labels(),
    acceptQueueDepth: metrics.gauge(
      "validator_network_yamux_accept_queue_depth",
      "Inbound yamux streams waiting for the application to take them, over all sessions",
    ).labels(),
    windowGrown: metrics.counter(
      "validator_network_yamux_window_grown_bytes_total",
      "Bytes added to stream receive windows by auto-tuning",
    ).labels(),
    refused: metrics.counter(
      "validator_network_yamux_streams_refused_total",
      "Inbound yamux streams reset at open, by reason",
      ["reason"],
    ),
    sessionErrors: metrics.counter(
      "validator_network_yamux_session_errors_total",
      "Yamux sessions ended by an error, by code",
      ["code"],
    ),
  };
});

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
 * @example Both ends over an in-memory connection
 * ```ts
 * import { Yamux } from "./yamux.ts";
 * import { Multiaddr } from "../multiaddr.ts";
 * import { MemoryTransport } from "../transport/mod.ts";
 *
 * const transport = new MemoryTransport();
 * const listener = await transport.listen(Multiaddr.parse("/memory/0"));
 * const accepted = (async () => {
 *   for await (const conn of listener) return conn;
 * })();
 * const client = Yamux.create(await transport.dial(listener.addr), { role: "dialer" });
 * const server = Yamux.create((await accepted)!, { role: "listener" });
 * client.start();
 * server.start();
 * (async () => {
 *   for await (const stream of server) {
 *     await stream.write(new TextEncoder().encode("hello"));
 *     await stream.closeWrite();
 *   }
 * })();
 * const stream = await client.openStream();
 * await stream.closeWrite(); // we send nothing
 * console.log(new TextDecoder().decode((await stream.read())!)); // "hello"
 * console.log(await stream.read()); // null: the server closed its side too
 * console.log(typeof await client.ping()); // "number" (ms)
 * await client.close();
 * await listener.close();
 * ```
 */
export class Yamux<C extends Connection = Connection>
  implements ConnectionLifecycle, AsyncIterable<YamuxStream> {
  /** Settles (never rejects) when the session and its connection are released. */
  readonly closed: Promise<void>;
  /** Our side. */
  readonly role: Role;

  readonly #conn: C;
  readonly #options: Required<Omit<YamuxOptions, "logger" | "metrics">>;
  readonly #metrics: YamuxMetrics;
  readonly #log: Logger;
  readonly #host: SessionHost;
  readonly #decoder: FrameDecoder;
  readonly #writer: WriteScheduler;
  readonly #pings: Pings;
  readonly #budget: WindowBudget;
  readonly #closedSignal = Promise.withResolvers<void>();

  #state: YamuxState = "open";
  #started = false;
  #error: NetworkError | undefined;
  #remoteGoAway: number | undefined;

  readonly #streams = new Map<number, YamuxStream>();
  #nextId: number;
  #inbound = 0;
  #unacked = 0;
  #idleSignal: PromiseWithResolvers<void> | undefined;

  readonly #acceptQueue: YamuxStream[] = [];
  #acceptHead = 0;
  #acceptSignal: PromiseWithResolvers<void> | undefined;

  // The frame being read: its stream (undefined: drop the body) and flags.
  #current: YamuxStream | undefined;
  #currentFlags = 0;

  /** Streams whose SYN or ACK waits for their first frame, flushed once per event-loop turn. */
  #deferredOpen: YamuxStream[] = [];
  #releasing: Promise<void> | undefined;
  /** When the peer last sent anything (performance.now()). */
  #lastReceived = performance.now();

  /**
   * Wraps `conn`, which the session then owns. Prefer
   * {@linkcode Yamux.create}. Starts nothing: call {@linkcode Yamux.start}.
   */
  constructor(conn: C, options: YamuxOptions) {
    const { logger, metrics, ...rest } = options;
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
    this.#metrics = yamuxMetrics(metrics ?? defaultMetrics);
    this.#log = (logger ?? rootLogger).child({ component: "yamux", role: o.role });
    this.#nextId = o.role === "dialer" ? 1 : 2;
    // A peer may send a Data frame as large as the largest window we grant.
    this.#decoder = new FrameDecoder(o.maxStreamWindow);
    this.#writer = new WriteScheduler(conn, {
      highWater: Math.max(2 * o.maxFrameSize, 1024 * 1024),
      maxFrameSize: o.maxFrameSize,
      metrics: this.#metrics.writer,
      onError: (error) => this.#fail(error, undefined),
      prioritized: o.prioritized,
      marker: () => this.#pings.ping(),
    });
    this.#pings = new Pings({
      send: (id) => this.#writer.sendHeader(FrameType.Ping, Flag.SYN, 0, id),
      keepAliveInterval: o.keepAliveInterval,
      pingTimeout: o.pingTimeout,
      lastReceived: () => this.#lastReceived,
      onDead: (error) => this.#fail(error, GoAwayCode.InternalError),
    });
    const grown = this.#metrics.windowGrown;
    this.#budget = new WindowBudget(o.maxConnectionWindow, (bytes) => grown.inc(bytes));
    this.#host = new SessionHost(this, this.#writer, this.#pings, this.#budget, conn, o);
  }

  /**
   * A session over `conn` for our `role`. Call {@linkcode Yamux.start} next.
   *
   * @example
   * ```ts
   * import { Yamux } from "./yamux.ts";
   * import type { YamuxStream } from "./yamux_stream.ts";
   * import type { Connection } from "../transport/connection.ts";
   * async function serve(conn: Connection, handle: (stream: YamuxStream) => void) {
   *   const muxer = Yamux.create(conn, { role: "listener", maxInboundStreams: 64 });
   *   muxer.start();
   *   for await (const stream of muxer) handle(stream);
   * }
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
    return this.#pings.rtt;
  }

  /** When the peer last sent anything, in `performance.now()` time: any traffic shows it is alive. */
  get lastReceived(): number {
    return this.#lastReceived;
  }

  /** The GoAway code the peer sent, if it did. */
  get remoteGoAway(): number | undefined {
    return this.#remoteGoAway;
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
   * Starts reading frames and arms keepalive pings. Idempotent. The
   * round-trip time window auto-tuning needs is measured by a ping sent the
   * first time a stream's window update asks for it, so a short-lived
   * session sends none.
   */
  start(): void {
    if (this.#started) return;
    this.#started = true;
    void this.#readLoop();
    this.#pings.start();
  }

  /**
   * Opens a stream, of priority class `priority` (default `"normal"`). The
   * SYN goes out with the stream's first frame when that is sent in this
   * turn of the event loop (a protocol proposal, say), else on its own at
   * the end of the turn; data may follow before the peer acknowledges.
   *
   * @throws {NetworkError} `CONNECTION_CLOSED` when the session is closing
   *   or closed or the peer sent GoAway; `LIMIT_EXCEEDED` when
   *   `maxUnackedOutboundStreams` streams await the peer's ACK or stream ids
   *   are exhausted
   */
  openStream(priority: Priority = "normal"): Promise<YamuxStream> {
    try {
      return Promise.resolve(this.#open(priority));
    } catch (err) {
      return Promise.reject(err);
    }
  }

  #open(priority: Priority): YamuxStream {
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
    const stream = this.#addStream(id, true);
    stream.priority = priority;
    this.#unacked++;
    this.#sendOpenFlag(stream, Flag.SYN);
    return stream;
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
    return this.#pings.ping(options.signal);
  }

  /** Inbound streams, in arrival order. See the class documentation. */
  [Symbol.asyncIterator](): AsyncIterator<YamuxStream> {
    return {
      next: () => this.#nextInbound(),
      return: () => Promise.resolve({ done: true, value: undefined }),
    };
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
    this.#pings.stopKeepAlive();
    this.#writer.sendHeader(FrameType.GoAway, 0, 0, GoAwayCode.NormalTermination);
    // Queued streams were never acknowledged: refuse them like late SYNs.
    for (let i = this.#acceptHead; i < this.#acceptQueue.length; i++) {
      this.#acceptQueue[i].abort(new NetworkError("CONNECTION_CLOSED", "yamux: session closing"));
    }
    this.#clearAcceptQueue();
    this.#wakeAcceptor();
    if (this.#streams.size > 0) {
      this.#idleSignal ??= Promise.withResolvers<void>();
      using deadline = new Deadline(this.#options.closeTimeout, { what: "yamux close" });
      await deadline.race(Promise.race([this.#idleSignal.promise, this.closed])).catch(() => {});
      if (this.#streams.size > 0) {
        // Made only when a stream is left: an Error costs its stack trace.
        const leftover = new NetworkError("TIMEOUT", "yamux: stream still open at session close");
        for (const stream of [...this.#streams.values()]) stream.abort(leftover);
      }
    }
    // A failure while streams finished already released everything.
    if ((this.#state as YamuxState) === "closed") return this.closed;
    this.#end(undefined);
    await this.#release(true);
  }

  /**
   * Resets every open stream with `error` (the peer gets RST frames), the
   * session staying up: for a connection that is being replaced, closed
   * gracefully next so that what is already written still leaves.
   */
  resetStreams(error: NetworkError): void {
    for (const stream of [...this.#streams.values()]) stream.abort(error);
  }

  /** Drops the session at once: streams fail, the connection is aborted. */
  abort(reason?: unknown): void {
    if (this.#state === "closed") return;
    const error = reason instanceof NetworkError
      ? reason
      : new NetworkError("ABORTED", "yamux: session aborted", { cause: reason });
    this.#end(error);
    this.#writer.close();
    this.#conn.abort(error);
    this.#conn.closed.then(() => this.#closedSignal.resolve());
  }

  // ---- streams ---------------------------------------------------------------

  #addStream(id: number, outbound: boolean): YamuxStream {
    const stream = new YamuxStream(id, outbound, this.#host, {
      initial: this.#options.initialStreamWindow,
      max: this.#options.maxStreamWindow,
    });
    this.#streams.set(id, stream);
    this.#metrics.streamsOpen.inc();
    if (!outbound) this.#inbound++;
    return stream;
  }

  /** @internal (for `SessionHost`) */
  [RELEASED](stream: YamuxStream): void {
    if (this.#streams.get(stream.id) !== stream) return;
    this.#streams.delete(stream.id);
    this.#metrics.streamsOpen.dec();
    if (stream.direction === "inbound") this.#inbound--;
    else if (!stream.acked) this.#unacked--;
    if (this.#streams.size === 0 && this.#idleSignal !== undefined) {
      this.#idleSignal.resolve();
      this.#idleSignal = undefined;
    }
  }

  /**
   * The next inbound stream. Not an async function: a session waits here
   * for its peer's next stream all its life, and a pending async frame
   * would be held per session for it.
   */
  #nextInbound(): Promise<IteratorResult<YamuxStream>> {
    while (this.#acceptHead < this.#acceptQueue.length) {
      const stream = this.#acceptQueue[this.#acceptHead++];
      this.#metrics.acceptQueueDepth.dec();
      if (this.#acceptHead === this.#acceptQueue.length) {
        this.#acceptQueue.length = 0;
        this.#acceptHead = 0;
      }
      if (stream.state === "reset") continue;
      // Acknowledge when the application takes the stream, as the spec
      // recommends, so the peer's ACK backlog reflects our pace.
      this.#sendOpenFlag(stream, Flag.ACK);
      return Promise.resolve({ done: false, value: stream });
    }
    if (this.#state !== "open") return Promise.resolve({ done: true, value: undefined });
    this.#acceptSignal ??= Promise.withResolvers<void>();
    return this.#acceptSignal.promise.then(() => this.#nextInbound());
  }

  /**
   * SYN or ACK for `stream`: with the spec's window it rides on the stream's
   * first frame ("may be sent with a data or window update message") when
   * the application sends one in the same turn of the event loop (opening a
   * stream and proposing its protocol, accepting one and answering); a
   * larger initial window must be announced in a window update, sent now.
   */
  #sendOpenFlag(stream: YamuxStream, flag: number): void {
    if (stream.initialWindowDelta === 0) stream.deferOpenFlag(flag);
    else {this.#writer.sendHeader(
        FrameType.WindowUpdate,
        flag,
        stream.id,
        stream.initialWindowDelta,
      );}
  }

  /** @internal (for `SessionHost`) */
  [DEFERRED](stream: YamuxStream): void {
    if (this.#deferredOpen.includes(stream)) return;
    this.#deferredOpen.push(stream);
    // After every microtask of this turn: whatever the application sends in
    // reaction to opening or accepting the stream has been queued by then.
    if (this.#deferredOpen.length === 1) setImmediate(() => this.#flushDeferredOpen());
  }

  /** @internal (for `SessionHost`) */
  [SENDING_OPEN_FLAG](stream: YamuxStream): void {
    const list = this.#deferredOpen;
    const at = list.indexOf(stream);
    if (at < 0) return;
    const earlier = list.splice(0, at + 1);
    earlier.pop();
    for (const other of earlier) other.flushDeferred();
  }

  #flushDeferredOpen(): void {
    const streams = this.#deferredOpen;
    this.#deferredOpen = [];
    for (const stream of streams) stream.flushDeferred();
  }

  #clearAcceptQueue(): void {
    this.#metrics.acceptQueueDepth.dec(this.#acceptQueue.length - this.#acceptHead);
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

  #acceptInbound(id: number): YamuxStream | undefined {
    let reason: string | undefined;
    if (this.#state !== "open") reason = "goaway";
    else if (this.#inbound >= this.#options.maxInboundStreams) reason = "inbound_limit";
    else if (this.#acceptQueue.length - this.#acceptHead >= this.#options.acceptBacklog) {
      reason = "backlog";
    }
    if (reason !== undefined) {
      this.#metrics.refused.labels({ reason }).inc();
      this.#log.debug("inbound stream refused", { stream: id, reason });
      this.#writer.sendHeader(FrameType.WindowUpdate, Flag.RST, id, 0);
      return undefined;
    }
    const stream = this.#addStream(id, false);
    this.#acceptQueue.push(stream);
    this.#metrics.acceptQueueDepth.inc();
    this.#wakeAcceptor();
    return stream;
  }

  // ---- reading and dispatch ------------------------------------------------

  async #readLoop(): Promise<void> {
    const conn = this.#conn;
    while (true) {
      let chunk: Uint8Array | null;
      try {
        chunk = await conn.read();
      } catch (err) {
        this.#fail(NetworkError.wrap(err, "CONNECTION_RESET", "yamux: read failed"), undefined);
        return;
      }
      if (chunk === null) break;
      this.#lastReceived = performance.now();
      this.#metrics.bytesIn.inc(chunk.length);
      try {
        this.#decoder.decode(chunk, this.#host);
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
        conn.cancelRead(err);
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

  /** @internal (for `SessionHost`) */
  [ON_FRAME](header: FrameHeader): void {
    this.#metrics.framesIn.inc();
    switch (header.type) {
      case FrameType.Data:
      case FrameType.WindowUpdate:
        this.#onStreamFrame(header);
        return;
      case FrameType.Ping:
        if ((header.flags & Flag.SYN) !== 0) {
          this.#writer.sendHeader(FrameType.Ping, Flag.ACK, 0, header.length);
        } else if ((header.flags & Flag.ACK) !== 0) {
          this.#pings.onAck(header.length);
        }
        return;
      case FrameType.GoAway:
        this.#onGoAway(header.length);
        return;
    }
  }

  #onStreamFrame(header: FrameHeader): void {
    const { streamId: id, flags, length } = header;
    if (id === 0) {
      throw new NetworkError("PROTOCOL_VIOLATION", `yamux: ${describeFrame(header)} on stream 0`);
    }
    let stream = this.#streams.get(id);
    if ((flags & Flag.SYN) !== 0) {
      if (stream !== undefined) {
        throw new NetworkError("PROTOCOL_VIOLATION", `yamux: SYN for open stream ${id}`);
      }
      if ((id & 1) === (this.#nextId & 1)) {
        throw new NetworkError(
          "PROTOCOL_VIOLATION",
          `yamux: peer opened stream ${id} with our parity (${this.role})`,
        );
      }
      stream = this.#acceptInbound(id);
    } else if (stream !== undefined && (flags & Flag.ACK) !== 0 && !stream.acked) {
      stream.acked = true;
      this.#unacked--;
    }
    if (header.type === FrameType.Data) {
      // Unknown streams are not an error: a stream we reset may still get the
      // data the peer sent before it saw our RST. Such bodies are dropped.
      const wanted = stream !== undefined && stream.onDataHeader(length);
      if (length > 0) {
        // The body follows; FIN/RST apply after its last byte.
        this.#current = wanted ? stream : undefined;
        this.#currentFlags = flags;
        return;
      }
      if (!wanted) return;
    } else if (stream !== undefined) {
      stream.onWindowUpdate(length);
    }
    if (stream !== undefined) this.#applyCloseFlags(stream, flags);
  }

  /** @internal (for `SessionHost`) */
  [ON_DATA](piece: Uint8Array, remaining: number): void {
    const stream = this.#current;
    if (stream === undefined) return;
    stream.onData(piece);
    if (remaining === 0) {
      this.#current = undefined;
      this.#applyCloseFlags(stream, this.#currentFlags);
    }
  }

  #applyCloseFlags(stream: YamuxStream, flags: number): void {
    if ((flags & Flag.RST) !== 0) stream.onReset();
    else if ((flags & Flag.FIN) !== 0) stream.onFin();
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

  // ---- endings ---------------------------------------------------------------

  /** A fatal error: streams fail; GoAway with `code` if given; the connection is aborted. */
  #fail(error: NetworkError, code: GoAwayCode | undefined): void {
    if (this.#state === "closed") return;
    this.#metrics.sessionErrors.labels({ code: error.code }).inc();
    // A peer that went away is routine; a broken protocol or a dead peer is worth a warning.
    if (NetworkError.is(error, "CONNECTION_RESET", "CONNECTION_CLOSED", "CONNECTION_REPLACED")) {
      this.#log.debug("yamux session ended", { error });
    } else {
      this.#log.warn("yamux session failed", { error });
    }
    this.#end(error);
    if (code === undefined || !this.#started) {
      this.#writer.close();
      this.#conn.abort(error);
      this.#conn.closed.then(() => this.#closedSignal.resolve());
      return;
    }
    this.#writer.sendHeader(FrameType.GoAway, 0, 0, code);
    const deadline = new Deadline(GOAWAY_FLUSH_MS, { what: "yamux GoAway" });
    deadline.race(this.#writer.shutdown()).catch(() => {}).then(() => {
      deadline.clear();
      this.#writer.close();
      this.#conn.abort(error);
      return this.#conn.closed;
    }).then(() => this.#closedSignal.resolve());
  }

  /** Moves to `closed`: streams, pings and the acceptor end with `error` (if any). */
  #end(error: NetworkError | undefined): void {
    this.#state = "closed";
    this.#error = error;
    // Made only when something will see it: an Error costs its stack trace.
    const needed = this.#streams.size > 0 || error !== undefined;
    const streamError = !needed ? undefined : error ??
      new NetworkError("CONNECTION_CLOSED", "yamux: session closed");
    this.#pings.stop(streamError ?? SESSION_CLOSED);
    if (streamError !== undefined) {
      for (const stream of [...this.#streams.values()]) stream.onSessionEnd(streamError);
    }
    this.#clearAcceptQueue();
    this.#wakeAcceptor();
  }

  /** Gracefully half-closes and closes the connection (once). */
  #release(graceful: boolean): Promise<void> {
    this.#releasing ??= (async () => {
      if (graceful) {
        // A peer that stopped reading must not hold the close forever.
        using deadline = new Deadline(this.#options.closeTimeout, { what: "yamux shutdown" });
        await deadline.race(this.#writer.shutdown()).catch(() => {});
      }
      this.#writer.close();
      await this.#conn.close().catch(() => this.#conn.abort());
      this.#closedSignal.resolve();
    })();
    return this.#releasing;
  }
}

/**
 * What a session's streams and its frame decoder call: one object per
 * session whose methods live on the prototype, rather than a dozen closures
 * per session (a process may hold thousands of quiet sessions).
 */
class SessionHost implements StreamHost, FrameHandler {
  readonly maxFrameSize: number;
  readonly streamCloseTimeout: number;
  readonly addrs: Pick<Connection, "localAddr" | "remoteAddr">;
  readonly budget: WindowBudget;
  readonly #session: Yamux;
  readonly #writer: WriteScheduler;
  readonly #pings: Pings;

  constructor(
    session: Yamux,
    writer: WriteScheduler,
    pings: Pings,
    budget: WindowBudget,
    addrs: Pick<Connection, "localAddr" | "remoteAddr">,
    options: { maxFrameSize: number; streamCloseTimeout: number },
  ) {
    this.#session = session;
    this.#writer = writer;
    this.#pings = pings;
    this.budget = budget;
    this.addrs = addrs;
    this.maxFrameSize = options.maxFrameSize;
    this.streamCloseTimeout = options.streamCloseTimeout;
  }

  send(frame: Uint8Array, lane: Lane): void {
    this.#writer.send(frame, lane);
  }
  frameBuffer(length: number): Uint8Array {
    return this.#writer.frameBuffer(length);
  }
  sendHeader(type: FrameType, flags: number, streamId: number, length: number, lane?: Lane): void {
    this.#writer.sendHeader(type, flags, streamId, length, lane);
  }
  drained(lane: Lane): Promise<void> | undefined {
    return this.#writer.drained(lane);
  }
  rtt(): number {
    return this.#pings.rttForTuning();
  }
  deferred(stream: YamuxStream): void {
    this.#session[DEFERRED](stream);
  }
  sendingOpenFlag(stream: YamuxStream): void {
    this.#session[SENDING_OPEN_FLAG](stream);
  }
  released(stream: YamuxStream): void {
    this.#session[RELEASED](stream);
  }
  frame(header: FrameHeader): void {
    this.#session[ON_FRAME](header);
  }
  data(piece: Uint8Array, remaining: number): void {
    this.#session[ON_DATA](piece, remaining);
  }
}

/** What pings see after a normal close (shared: nothing reads its stack). */
const SESSION_CLOSED = new NetworkError("CONNECTION_CLOSED", "yamux: session closed");
