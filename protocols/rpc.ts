/**
 * RPC (after Libra's `protocols/rpc`): request and response of one protocol
 * with a peer, over the peer manager's connections, for either security
 * profile.
 *
 * **Wire: a stream per request**, as libp2p request-response and anemo do.
 * The requester opens a stream (its protocol proposal leaves with the
 * request, optimistically), writes `varint length || request` and closes its
 * side; the responder writes `status || varint length || payload` and closes
 * its side. Status `0` is a response; `1` the responder's handler failed
 * (`REMOTE_ERROR`, the payload is its message); `2` the responder is over
 * its inbound limit for us (`LIMIT_EXCEEDED`); `3` the request was larger
 * than the responder accepts (`FRAME_TOO_LARGE`). Why a stream per request
 * rather than request ids on one stream (as Aptos does): a timeout, an
 * abort or an oversized message resets that request's stream and nothing
 * else; a 64 MiB response does not hold up the small ones behind it; flow
 * control and priorities apply per request; and yamux's SYN riding on the
 * first frame, the optimistic proposal and the socket's cork make the
 * stream cost no extra round trip and no extra socket write (its cost in
 * CPU is in the README).
 *
 * Limits and timeouts:
 * - each request has a deadline (`timeout`, default 10 s) and follows the
 *   caller's `AbortSignal`; either resets its stream (`TIMEOUT`, `ABORTED`);
 * - at most `maxConcurrentOutbound` (100) requests in flight per peer
 *   (beyond: `LIMIT_EXCEEDED` at once), and `maxConcurrentInbound` (100)
 *   served per peer: the one over it is answered `LIMIT_EXCEEDED` at once,
 *   not left to time out (Aptos drops it: the caller only sees a timeout);
 * - requests and responses larger than `maxRequestSize` /
 *   `maxResponseSize` fail on the sender before anything is sent, and are
 *   refused by the receiver if a peer sends one anyway;
 * - a lost connection fails its requests in flight at once.
 *
 * Inbound requests wait for the application in a queue per peer (bounded by
 * `maxConcurrentInbound`) and are handed out round-robin across peers.
 * Counted: requests and bytes in and out, latency histograms (outbound
 * request, inbound handler), refusals by reason, the queue's depth.
 *
 * @module
 */

import { abortError } from "../netcore/_async.ts";
import { ByteReader } from "../netcore/byte_reader.ts";
import { KeyedQueue } from "../netcore/channel/keyed_queue.ts";
import type { PeerId } from "../netcore/identity/peer_id.ts";
import { type Logger, rootLogger } from "../netcore/log.ts";
import {
  defaultMetrics,
  type HistogramSeries,
  type Metrics,
  type Series,
} from "../netcore/metrics.ts";
import type { Priority } from "../netcore/multiplexing/yamux_stream.ts";
import { NetworkError, type NetworkErrorCode } from "../netcore/network_error.ts";
import type { PeerManager } from "../netcore/peer/peer_manager.ts";
import type { ProtocolStream } from "../netcore/upgrade/peer_connection.ts";
import { encodeVarint, varintLength } from "../netcore/varint.ts";
import { messageCounters } from "./_counters.ts";

/** Options for {@linkcode Rpc}. Defaults in {@linkcode RPC_DEFAULTS}. */
export interface RpcOptions {
  /** The peer manager whose connections carry the requests. */
  manager: PeerManager;
  /** The protocol id, e.g. `/validator/consensus/rpc/1.0.0`. */
  protocol: string;
  /** The priority class of the protocol's streams. Default `"normal"`. */
  priority?: Priority;
  /** How long a request may take, in ms, unless the call says otherwise. Default 10_000. */
  timeout?: number;
  /** Largest request, in bytes, either way. Default 64 MiB. */
  maxRequestSize?: number;
  /** Largest response, in bytes, either way. Default 64 MiB. */
  maxResponseSize?: number;
  /** Requests in flight to one peer at once. Default 100. */
  maxConcurrentOutbound?: number;
  /** Requests from one peer served at once (queued or being handled). Default 100. */
  maxConcurrentInbound?: number;
  /** Where requests, bytes, latencies and refusals are counted. Default `defaultMetrics`. */
  metrics?: Metrics;
  /** The logger. Default `rootLogger`. */
  logger?: Logger;
}

/** The defaults of {@linkcode RpcOptions}. */
export const RPC_DEFAULTS = {
  priority: "normal" as Priority,
  timeout: 10_000,
  maxRequestSize: 64 * 1024 * 1024,
  maxResponseSize: 64 * 1024 * 1024,
  maxConcurrentOutbound: 100,
  maxConcurrentInbound: 100,
};

/** Options for {@linkcode Rpc.request}. */
export interface RequestOptions {
  /** This request's deadline, in ms. Default: the protocol's `timeout`. */
  timeout?: number;
  /** Cancels the request (its stream is reset). */
  signal?: AbortSignal;
}

/**
 * A request from a peer, as {@linkcode Rpc.receive} hands it out: answer it
 * once, with `respond` or `reject`.
 */
export interface InboundRequest {
  /** The requester. */
  readonly peer: PeerId;
  /** The request's bytes. */
  readonly request: Uint8Array;
  /**
   * Sends the response.
   *
   * @throws {NetworkError} `FRAME_TOO_LARGE` above `maxResponseSize` (the
   *   requester gets `FRAME_TOO_LARGE` too); the stream's error when the
   *   requester went away
   */
  respond(response: Uint8Array): Promise<void>;
  /** Fails the request: the requester gets `REMOTE_ERROR` with `message`. */
  reject(message: string): Promise<void>;
}

/** Response statuses on the wire. */
const enum Status {
  Ok = 0,
  RemoteError = 1,
  LimitExceeded = 2,
  TooLarge = 3,
}

/** What an error status becomes on the requester's side. */
const STATUS_CODES: Record<number, NetworkErrorCode> = {
  [Status.RemoteError]: "REMOTE_ERROR",
  [Status.LimitExceeded]: "LIMIT_EXCEEDED",
  [Status.TooLarge]: "FRAME_TOO_LARGE",
};

/** Error messages on the wire are at most this long. */
const MAX_ERROR_MESSAGE = 1024;

/** How long a responder that refused a request unread waits for the requester to reset it. */
const REFUSAL_GRACE = 1_000;

interface RpcCounters {
  requestsOut: Series;
  requestsIn: Series;
  bytesOut: Series;
  bytesIn: Series;
  refused(reason: string): Series;
  outboundLatency: HistogramSeries;
  inboundLatency: HistogramSeries;
  failures(code: string): Series;
}

/**
 * RPC of one protocol.
 *
 * @example
 * ```ts ignore
 * const blocks = new Rpc({ manager, protocol: "/app/blocks/1.0.0", priority: "high" });
 * blocks.start();
 * (async () => {
 *   for await (const req of blocks) await req.respond(lookUp(req.request));
 * })();
 * const reply = await blocks.request(peer, request, { timeout: 1_000 });
 * ```
 */
export class Rpc implements AsyncIterable<InboundRequest> {
  /** The protocol id. */
  readonly protocol: string;
  readonly #manager: PeerManager;
  readonly #options: Required<Omit<RpcOptions, "manager" | "protocol" | "metrics" | "logger">>;
  readonly #inbound: KeyedQueue<string, InboundRequest>;
  /** Requests in flight per peer (by id text), each way. */
  readonly #outboundCount = new Map<string, number>();
  readonly #inboundCount = new Map<string, number>();
  readonly #counters: RpcCounters;
  readonly #log: Logger;
  #started = false;
  #closed = false;

  /** RPC that serves nothing until {@linkcode Rpc.start} (requests can be made at once). */
  constructor(options: RpcOptions) {
    this.protocol = options.protocol;
    this.#manager = options.manager;
    this.#options = {
      priority: options.priority ?? RPC_DEFAULTS.priority,
      timeout: options.timeout ?? RPC_DEFAULTS.timeout,
      maxRequestSize: options.maxRequestSize ?? RPC_DEFAULTS.maxRequestSize,
      maxResponseSize: options.maxResponseSize ?? RPC_DEFAULTS.maxResponseSize,
      maxConcurrentOutbound: options.maxConcurrentOutbound ?? RPC_DEFAULTS.maxConcurrentOutbound,
      maxConcurrentInbound: options.maxConcurrentInbound ?? RPC_DEFAULTS.maxConcurrentInbound,
    };
    const metrics = options.metrics ?? defaultMetrics;
    this.#inbound = new KeyedQueue(this.#options.maxConcurrentInbound, {
      name: `rpc:${options.protocol}:in`,
      metrics,
      policy: "drop-newest",
    });
    this.#counters = rpcCounters(metrics, options.protocol);
    this.#log = (options.logger ?? rootLogger).child({
      component: "rpc",
      protocol: options.protocol,
      self: options.manager.peerId.toString(),
    });
  }

  /** Serves the protocol: inbound requests reach {@linkcode Rpc.receive}. */
  start(): void {
    if (this.#started || this.#closed) return;
    this.#started = true;
    this.#manager.handle(this.protocol, (stream, conn) => this.#serve(stream, conn.remotePeer), {
      priority: this.#options.priority,
    });
  }

  /**
   * Sends `request` to `peer` and resolves with its response.
   *
   * @throws {NetworkError} `NOT_CONNECTED`; `FRAME_TOO_LARGE` for a request
   *   above `maxRequestSize` (nothing sent) or a response above
   *   `maxResponseSize` (or when the peer found the request too large);
   *   `LIMIT_EXCEEDED` with `maxConcurrentOutbound` requests to the peer in
   *   flight, or when the peer is over its inbound limit; `REMOTE_ERROR`
   *   when the peer's handler failed; `TIMEOUT`; `ABORTED`;
   *   `CONNECTION_CLOSED`/`CONNECTION_RESET`/`CONNECTION_REPLACED` when the
   *   connection went away; `UNSUPPORTED_PROTOCOL` when the peer does not
   *   serve the protocol
   */
  async request(
    peer: PeerId,
    request: Uint8Array,
    options: RequestOptions = {},
  ): Promise<Uint8Array> {
    if (this.#closed) throw new NetworkError("CONNECTION_CLOSED", `${this.protocol} is closed`);
    if (request.length > this.#options.maxRequestSize) {
      this.#counters.refused("request_too_large_out").inc();
      throw new NetworkError(
        "FRAME_TOO_LARGE",
        `request of ${request.length} bytes exceeds ${this.#options.maxRequestSize}`,
      );
    }
    const key = peer.toString();
    const inFlight = this.#outboundCount.get(key) ?? 0;
    if (inFlight >= this.#options.maxConcurrentOutbound) {
      this.#counters.refused("outbound_limit").inc();
      throw new NetworkError(
        "LIMIT_EXCEEDED",
        `${inFlight} requests to ${peer} in flight (maxConcurrentOutbound)`,
      );
    }
    this.#outboundCount.set(key, inFlight + 1);
    const started = performance.now();
    // The request's deadline and the caller's signal end it through one
    // path: the stream is aborted with the error, which every pending read
    // and write then rejects with. No AbortController or listener per
    // request unless the caller passed a signal (a request costs a few
    // dozen microseconds; those cost a tenth of it).
    const { signal } = options;
    const timeout = options.timeout ?? this.#options.timeout;
    let stream: ProtocolStream | undefined;
    let ended: NetworkError | undefined;
    const stopped = Promise.withResolvers<never>();
    stopped.promise.catch(() => {});
    const end = (error: NetworkError) => {
      if (ended !== undefined) return;
      ended = error;
      stopped.reject(error);
      stream?.abort(error);
    };
    const timer = setTimeout(
      () =>
        end(
          new NetworkError(
            "TIMEOUT",
            `${this.protocol} request to ${peer} timed out after ${timeout} ms`,
          ),
        ),
      timeout,
    );
    const onAbort = signal === undefined ? undefined : () => end(abortError(signal));
    try {
      if (signal?.aborted) throw abortError(signal);
      if (onAbort !== undefined) signal!.addEventListener("abort", onAbort, { once: true });
      const opening = this.#manager.openStream(peer, [this.protocol], {
        negotiateFully: false,
        priority: this.#options.priority,
        signal,
      });
      opening.then((opened) => {
        // Opened after the request ended: nobody will use it.
        if (ended !== undefined) opened.abort(ended);
      }, () => {});
      const open = stream = await Promise.race([opening, stopped.promise]);
      // The response is read while the request is written: a peer that
      // refuses early (over its limit, request too large) is heard at once.
      const response = readResponse(open, this.#options.maxResponseSize);
      let refusal: unknown;
      response.catch((err) => {
        refusal = err;
        // Refused while we still write (over its limit, too large): stop.
        open.abort(err);
      });
      try {
        await writeMessage(open, request);
        await open.closeWrite();
      } catch (err) {
        // A refusal that already arrived says more than the write's error.
        await Promise.resolve();
        throw refusal ?? err;
      }
      const result = await response;
      this.#counters.requestsOut.inc();
      this.#counters.bytesOut.inc(request.length);
      this.#counters.outboundLatency.observe(performance.now() - started);
      return result;
    } catch (err) {
      const error = ended ??
        notOurTimeout(NetworkError.wrap(err, "CONNECTION_RESET", `${this.protocol} request`));
      stream?.abort(error);
      this.#counters.refused(`out_${error.code.toLowerCase()}`).inc();
      // An error that was not a NetworkError is a bug of ours: counted apart.
      const typed = ended !== undefined || err instanceof NetworkError;
      this.#counters.failures(typed ? error.code : "BUG").inc();
      throw error;
    } finally {
      clearTimeout(timer);
      if (onAbort !== undefined) signal!.removeEventListener("abort", onAbort);
      const left = (this.#outboundCount.get(key) ?? 1) - 1;
      if (left === 0) this.#outboundCount.delete(key);
      else this.#outboundCount.set(key, left);
    }
  }

  /** The next request from any peer, round-robin across peers; `undefined` once closed. */
  receive(options: { signal?: AbortSignal } = {}): Promise<InboundRequest | undefined> {
    return this.#inbound.pop(options);
  }

  /** Requests until `close()`. */
  [Symbol.asyncIterator](): AsyncIterator<InboundRequest> {
    return this.#inbound[Symbol.asyncIterator]();
  }

  /** Stops serving; requests waiting for the application are answered `REMOTE_ERROR`. */
  close(): Promise<void> {
    if (this.#closed) return Promise.resolve();
    this.#closed = true;
    if (this.#started) this.#manager.unhandle(this.protocol);
    const waiting = this.#inbound.close();
    return Promise.allSettled(waiting.map(([, req]) => req.reject(`${this.protocol} closed`)))
      .then(() => {});
  }

  /** Serves one inbound request stream: limit, read, queue, answer. */
  async #serve(stream: ProtocolStream, peer: PeerId): Promise<void> {
    const key = peer.toString();
    const served = this.#inboundCount.get(key) ?? 0;
    if (served >= this.#options.maxConcurrentInbound || this.#closed) {
      // Answered at once, not left to time out; the request is not read.
      this.#counters.refused("inbound_limit").inc();
      await answer(
        stream,
        Status.LimitExceeded,
        `over ${this.#options.maxConcurrentInbound} requests`,
      );
      await stopReading(stream);
      return;
    }
    this.#inboundCount.set(key, served + 1);
    const release = () => {
      const left = (this.#inboundCount.get(key) ?? 1) - 1;
      if (left === 0) this.#inboundCount.delete(key);
      else this.#inboundCount.set(key, left);
    };
    let request: Uint8Array;
    try {
      const reader = new ByteReader(stream);
      let length: number;
      try {
        length = await reader.readVarint(this.#options.maxRequestSize);
      } catch (err) {
        if (!NetworkError.is(err, "FRAME_TOO_LARGE")) throw err;
        this.#counters.refused("request_too_large_in").inc();
        await answer(stream, Status.TooLarge, err.message);
        await stopReading(stream);
        release();
        return;
      }
      request = await readBody(reader, length);
    } catch (err) {
      release();
      throw err; // the peer manager resets this stream only
    }
    this.#counters.requestsIn.inc();
    this.#counters.bytesIn.inc(request.length);
    const received = performance.now();
    let answered = false;
    const finish = (status: Status, payload: Uint8Array): Promise<void> => {
      if (answered) return Promise.reject(new TypeError("request already answered"));
      answered = true;
      this.#counters.inboundLatency.observe(performance.now() - received);
      return writeAnswer(stream, status, payload).finally(release);
    };
    const inbound: InboundRequest = {
      peer,
      request,
      respond: (response) => {
        if (response.length > this.#options.maxResponseSize) {
          this.#counters.refused("response_too_large_out").inc();
          const message =
            `response of ${response.length} bytes exceeds ${this.#options.maxResponseSize}`;
          return finish(Status.TooLarge, encoder.encode(message)).then(() => {
            throw new NetworkError("FRAME_TOO_LARGE", message);
          });
        }
        return finish(Status.Ok, response);
      },
      reject: (message) =>
        finish(Status.RemoteError, encoder.encode(message.slice(0, MAX_ERROR_MESSAGE))),
    };
    // The per-peer bound is the concurrency limit: there is always room.
    const pushed = this.#inbound.tryPush(key, inbound);
    if (pushed.status !== "queued") {
      answered = true;
      release();
      await answer(stream, Status.LimitExceeded, "request queue full");
    }
  }
}

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/**
 * `TIMEOUT` is the request's own deadline: a lower layer's (yamux resetting
 * the streams still open when its connection closes, or a keepalive that
 * went unanswered) is the connection going away.
 */
function notOurTimeout(error: NetworkError): NetworkError {
  if (error.code !== "TIMEOUT") return error;
  return new NetworkError("CONNECTION_CLOSED", error.message, { cause: error });
}

/** Messages up to this size are copied behind their header into one write; larger ones are written as they are. */
const SMALL_WRITE = 16 * 1024;

/**
 * Writes `[status] || varint length || message` (a request has no status
 * byte): a small message copied behind its header into one write (one
 * frame), a large one written as it is, behind its header.
 */
async function writeMessage(
  stream: ProtocolStream,
  message: Uint8Array,
  status?: Status,
): Promise<void> {
  const head = status === undefined ? 0 : 1;
  const prefix = varintLength(message.length);
  const small = message.length <= SMALL_WRITE;
  const header = new Uint8Array(head + prefix + (small ? message.length : 0));
  if (status !== undefined) header[0] = status;
  encodeVarint(message.length, header, head);
  if (small) header.set(message, head + prefix);
  let room = stream.write(header);
  if (room !== undefined) await room;
  if (small) return;
  room = stream.write(message);
  if (room !== undefined) await room;
}

/** Writes `status || varint length || payload` and closes our side. */
async function writeAnswer(
  stream: ProtocolStream,
  status: Status,
  payload: Uint8Array,
): Promise<void> {
  await writeMessage(stream, payload, status);
  await stream.closeWrite();
}

/**
 * Stops reading a request refused unread. The requester resets the stream
 * once it has read the refusal; a reset of ours right behind the answer
 * could reach it first and discard the answer unread (a reset drops what
 * the stream holds), so ours waits for that, up to `REFUSAL_GRACE`.
 */
async function stopReading(stream: ProtocolStream): Promise<void> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const grace = new Promise<void>((resolve) => timer = setTimeout(resolve, REFUSAL_GRACE));
  await Promise.race([stream.closed, grace]);
  clearTimeout(timer);
  stream.cancelRead();
}

/** An error answer; a requester that went away is no concern. */
async function answer(stream: ProtocolStream, status: Status, message: string): Promise<void> {
  await writeAnswer(stream, status, encoder.encode(message)).catch(() => {});
}

/** Reads `length` bytes into one buffer of its own. */
async function readBody(reader: ByteReader, length: number): Promise<Uint8Array> {
  const body = new Uint8Array(length);
  await reader.readFully(body);
  return body;
}

/** Reads the responder's answer: the response, or its refusal as a typed error. */
async function readResponse(stream: ProtocolStream, maxResponseSize: number): Promise<Uint8Array> {
  const reader = new ByteReader(stream);
  const [status] = await reader.readExactly(1);
  if (status === Status.Ok) {
    const length = await reader.readVarint(maxResponseSize);
    return await readBody(reader, length);
  }
  const code = STATUS_CODES[status];
  if (code === undefined) {
    throw new NetworkError("PROTOCOL_VIOLATION", `unknown response status ${status}`);
  }
  const length = await reader.readVarint(MAX_ERROR_MESSAGE * 4);
  const message = decoder.decode(await readBody(reader, length));
  throw new NetworkError(code, `the peer answered: ${message}`);
}

function rpcCounters(metrics: Metrics, protocol: string): RpcCounters {
  const messages = messageCounters(metrics, protocol);
  const latency = metrics.histogram(
    "validator_network_rpc_latency_ms",
    "RPC latency in ms: outbound from request to response, inbound from request to answer",
    ["protocol", "direction"],
  );
  const failures = metrics.counter(
    "validator_network_rpc_failures_total",
    "Outbound RPCs that failed, by protocol and error code (BUG: not a NetworkError)",
    ["protocol", "code"],
  );
  return {
    requestsOut: messages.messagesOut,
    requestsIn: messages.messagesIn,
    bytesOut: messages.bytesOut,
    bytesIn: messages.bytesIn,
    refused: messages.refused,
    outboundLatency: latency.labels({ protocol, direction: "out" }),
    inboundLatency: latency.labels({ protocol, direction: "in" }),
    failures: (code) => failures.labels({ protocol, code }),
  };
}
