/**
 * DirectSend (after Libra's `protocols/direct_send`): fire-and-forget
 * messages of one protocol to a peer, in order per (peer, protocol), over
 * the peer manager's connections, for either security profile.
 *
 * How a message flows, and what bounds it:
 * - `sendTo(peer, message)` fails at once with `NOT_CONNECTED` when the peer
 *   is not connected, and with `FRAME_TOO_LARGE` when the message exceeds
 *   `maxMessageSize` (nothing is sent). Otherwise it joins the peer's
 *   outbound queue, bounded in messages and bytes: when it is full,
 *   `sendTo` waits (backpressure). It resolves when the message was handed
 *   to the connection, and rejects with a typed error when the connection
 *   ended first: nothing is dropped without the sender knowing.
 * - One stream per (peer, protocol) carries the messages, each behind an
 *   unsigned varint length. The queue drains in batches: small messages
 *   queued together leave in one stream write (one yamux frame, one Noise
 *   message, one socket write), so a stream of 64-byte messages does not
 *   cost a frame or a write each. A large message is written whole and
 *   streamed by yamux in frames under flow control; its stream's priority
 *   class (`priority`) decides what it waits behind on a busy connection.
 * - The receiver reads a message into one buffer of its announced length
 *   (refusing more than `maxMessageSize`: that stream is reset and the
 *   refusal counted), then queues it for the application in a queue per
 *   peer, bounded (`inboundQueue`): a peer whose queue is full is no longer
 *   read, so flow control stalls its sender and nobody else. The
 *   application takes messages round-robin across peers: one that floods
 *   does not delay the others.
 *
 * Counted: messages and bytes in and out, refusals by reason, the queues'
 * depths (as bounded channels named `direct_send:<protocol>:in`).
 *
 * @module
 */

import type { PeerId } from "../netcore/identity/peer_id.ts";
import { ByteReader } from "../netcore/byte_reader.ts";
import { KeyedQueue } from "../netcore/channel/keyed_queue.ts";
import { type Logger, rootLogger } from "../netcore/log.ts";
import { defaultMetrics, type Metrics, type Series } from "../netcore/metrics.ts";
import type { Priority } from "../netcore/multiplexing/yamux_stream.ts";
import { NetworkError } from "../netcore/network_error.ts";
import type { PeerEventStream } from "../netcore/peer/peer_events.ts";
import type { PeerManager } from "../netcore/peer/peer_manager.ts";
import type { ProtocolStream } from "../netcore/upgrade/peer_connection.ts";
import { encodeVarint, varintLength } from "../netcore/varint.ts";

/** Options for {@linkcode DirectSend}. Defaults in {@linkcode DIRECT_SEND_DEFAULTS}. */
export interface DirectSendOptions {
  /** The peer manager whose connections carry the messages. */
  manager: PeerManager;
  /** The protocol id, e.g. `/validator/mempool/direct-send/1.0.0`. */
  protocol: string;
  /** The priority class of the protocol's streams. Default `"normal"`. */
  priority?: Priority;
  /** Largest message, in bytes, either way. Default 64 MiB. */
  maxMessageSize?: number;
  /** Messages one peer's outbound queue holds before `sendTo` waits. Default 1024. */
  outboundQueue?: number;
  /** Bytes one peer's outbound queue holds before `sendTo` waits (one larger message alone may). Default 16 MiB. */
  outboundBytes?: number;
  /** Messages from one peer waiting for the application before its stream stops being read. Default 1024. */
  inboundQueue?: number;
  /** Small messages are joined into writes of up to this many bytes. Default 64 KiB. */
  batchBytes?: number;
  /** Where messages, bytes and refusals are counted. Default `defaultMetrics`. */
  metrics?: Metrics;
  /** The logger. Default `rootLogger`. */
  logger?: Logger;
}

/** The defaults of {@linkcode DirectSendOptions}. */
export const DIRECT_SEND_DEFAULTS = {
  priority: "normal" as Priority,
  maxMessageSize: 64 * 1024 * 1024,
  outboundQueue: 1024,
  outboundBytes: 16 * 1024 * 1024,
  inboundQueue: 1024,
  batchBytes: 64 * 1024,
};

/**
 * What {@linkcode DirectSend.receive} hands out: a message, or the end of a
 * peer's stream (it closed it; its messages before came first).
 */
export type DirectSendEvent =
  | { readonly type: "message"; readonly peer: PeerId; readonly message: Uint8Array }
  | { readonly type: "end"; readonly peer: PeerId };

/** Options for {@linkcode DirectSend.sendTo}. */
export interface SendOptions {
  /** Stops waiting for room in the queue (the message is then not sent). */
  signal?: AbortSignal;
}

/** One message waiting to be handed to the connection. */
interface Pending {
  message: Uint8Array;
  resolve: () => void;
  reject: (error: NetworkError) => void;
}

/** The protocol's counters, resolved once. */
interface Counters {
  messagesOut: Series;
  bytesOut: Series;
  messagesIn: Series;
  bytesIn: Series;
  refused(reason: string): Series;
}

/**
 * DirectSend of one protocol.
 *
 * @example
 * ```ts ignore
 * const mempool = new DirectSend({ manager, protocol: "/app/mempool/1.0.0" });
 * mempool.start();
 * await mempool.sendTo(peer, new TextEncoder().encode("tx"));
 * for await (const event of mempool) {
 *   if (event.type === "message") console.log(event.peer.toString(), event.message.length);
 * }
 * ```
 */
export class DirectSend implements AsyncIterable<DirectSendEvent> {
  /** The protocol id. */
  readonly protocol: string;
  readonly #manager: PeerManager;
  readonly #options: Required<
    Omit<DirectSendOptions, "manager" | "protocol" | "metrics" | "logger">
  >;
  readonly #senders = new Map<string, PeerSender>();
  readonly #inbound: KeyedQueue<string, DirectSendEvent>;
  readonly #counters: Counters;
  readonly #log: Logger;
  readonly #tasks = new Set<Promise<void>>();
  #events: PeerEventStream | undefined;
  #closed = false;

  /** A DirectSend that does nothing until {@linkcode DirectSend.start}. */
  constructor(options: DirectSendOptions) {
    this.protocol = options.protocol;
    this.#manager = options.manager;
    this.#options = {
      priority: options.priority ?? DIRECT_SEND_DEFAULTS.priority,
      maxMessageSize: options.maxMessageSize ?? DIRECT_SEND_DEFAULTS.maxMessageSize,
      outboundQueue: options.outboundQueue ?? DIRECT_SEND_DEFAULTS.outboundQueue,
      outboundBytes: options.outboundBytes ?? DIRECT_SEND_DEFAULTS.outboundBytes,
      inboundQueue: options.inboundQueue ?? DIRECT_SEND_DEFAULTS.inboundQueue,
      batchBytes: options.batchBytes ?? DIRECT_SEND_DEFAULTS.batchBytes,
    };
    const metrics = options.metrics ?? defaultMetrics;
    this.#inbound = new KeyedQueue(this.#options.inboundQueue, {
      name: `direct_send:${options.protocol}:in`,
      metrics,
      policy: "backpressure",
    });
    this.#counters = messageCounters(metrics, options.protocol);
    this.#log = (options.logger ?? rootLogger).child({
      component: "direct-send",
      protocol: options.protocol,
      self: options.manager.peerId.toString(),
    });
  }

  /** Serves the protocol and follows the peer manager's events. */
  start(): void {
    if (this.#events !== undefined || this.#closed) return;
    this.#manager.handle(this.protocol, (stream, conn) => this.#receive(stream, conn.remotePeer), {
      priority: this.#options.priority,
    });
    this.#events = this.#manager.subscribe();
    this.#spawn(this.#watch(this.#events));
  }

  /**
   * Queues `message` for `peer`; resolves once it was handed to the
   * connection (then it is the connection's to deliver).
   *
   * @throws {NetworkError} `NOT_CONNECTED` without a connection to the peer;
   *   `FRAME_TOO_LARGE` above `maxMessageSize` (nothing sent); the
   *   connection's error (`CONNECTION_CLOSED`, `CONNECTION_RESET`,
   *   `CONNECTION_REPLACED`: retriable) when it ended before the message
   *   was handed to it; `ABORTED` when the signal fired while waiting for
   *   room; `CONNECTION_CLOSED` after `close()`
   */
  sendTo(peer: PeerId, message: Uint8Array, options: SendOptions = {}): Promise<void> {
    if (this.#closed) {
      return Promise.reject(new NetworkError("CONNECTION_CLOSED", `${this.protocol} is closed`));
    }
    if (message.length > this.#options.maxMessageSize) {
      this.#counters.refused("too_large_out").inc();
      return Promise.reject(
        new NetworkError(
          "FRAME_TOO_LARGE",
          `message of ${message.length} bytes exceeds ${this.#options.maxMessageSize}`,
        ),
      );
    }
    if (!this.#manager.isConnected(peer)) {
      this.#counters.refused("not_connected").inc();
      return Promise.reject(new NetworkError("NOT_CONNECTED", `not connected to ${peer}`));
    }
    const key = peer.toString();
    let sender = this.#senders.get(key);
    if (sender === undefined) {
      sender = new PeerSender(peer, this);
      this.#senders.set(key, sender);
    }
    return sender.enqueue(message, options.signal);
  }

  /**
   * Sends what is queued for `peer`, then closes our stream to it: its
   * receiver sees an `end` after our last message. The next `sendTo` opens
   * a new stream.
   */
  async end(peer: PeerId): Promise<void> {
    await this.#senders.get(peer.toString())?.end();
  }

  /** The next message (or stream end) from any peer, round-robin across peers; `undefined` once closed. */
  receive(options: { signal?: AbortSignal } = {}): Promise<DirectSendEvent | undefined> {
    return this.#inbound.pop(options);
  }

  /** Messages until `close()`. */
  [Symbol.asyncIterator](): AsyncIterator<DirectSendEvent> {
    return this.#inbound[Symbol.asyncIterator]();
  }

  /** Stops sending and receiving: queued outbound messages fail with `CONNECTION_CLOSED`. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#manager.unhandle(this.protocol);
    this.#events?.close();
    const error = new NetworkError("CONNECTION_CLOSED", `${this.protocol} closed`);
    for (const sender of this.#senders.values()) sender.fail(error, true);
    this.#senders.clear();
    this.#inbound.close();
    await Promise.allSettled([...this.#tasks]);
  }

  // ---- internals shared with PeerSender ----

  /** @internal */
  get options(): Required<Omit<DirectSendOptions, "manager" | "protocol" | "metrics" | "logger">> {
    return this.#options;
  }

  /** @internal Opens the protocol's stream to `peer` on its connection. */
  openStream(peer: PeerId): Promise<ProtocolStream> {
    return this.#manager.openStream(peer, [this.protocol], {
      negotiateFully: false,
      priority: this.#options.priority,
    });
  }

  /** @internal Counts messages handed to the connection. */
  sent(messages: number, bytes: number): void {
    this.#counters.messagesOut.inc(messages);
    this.#counters.bytesOut.inc(bytes);
  }

  /** @internal */
  get log(): Logger {
    return this.#log;
  }

  /** @internal Runs `task` until it ends; close() waits for it. */
  spawn(task: Promise<void>): void {
    this.#spawn(task);
  }

  #spawn(task: Promise<void>): void {
    const tracked = task.catch((err) => this.#log.debug("task failed", { err })).finally(() =>
      this.#tasks.delete(tracked)
    );
    this.#tasks.add(tracked);
  }

  /** A lost peer's queued messages fail: they were not handed to a connection. */
  async #watch(events: PeerEventStream): Promise<void> {
    for await (const event of events) {
      if (event.type !== "lost-peer") continue;
      const key = event.peer.peerId.toString();
      const sender = this.#senders.get(key);
      if (sender === undefined) continue;
      this.#senders.delete(key);
      sender.fail(
        event.error ??
          new NetworkError("CONNECTION_CLOSED", `connection to ${key} closed (${event.reason})`),
        true,
      );
    }
  }

  /** Reads one peer's stream: messages into the inbound queue, until its end. */
  async #receive(stream: ProtocolStream, peer: PeerId): Promise<void> {
    const key = peer.toString();
    const reader = new ByteReader(stream);
    const max = this.#options.maxMessageSize;
    // A push waiting for room gives up when the stream is reset (its
    // connection closing, say): otherwise it would wait for a reader forever
    // and hold up the peer manager's close.
    const reset = new AbortController();
    stream.closed.then(() =>
      reset.abort(new NetworkError("CONNECTION_RESET", "direct send: stream closed"))
    );
    const signal = reset.signal;
    try {
      while (!(await reader.atEnd())) {
        const length = await reader.readVarint(max);
        const message = await readMessage(reader, length);
        this.#counters.messagesIn.inc();
        this.#counters.bytesIn.inc(length);
        // Waits while the peer's queue is full: the stream is not read
        // meanwhile, so flow control stalls this peer alone.
        await this.#inbound.push(key, { type: "message", peer, message }, { signal });
      }
      await this.#inbound.push(key, { type: "end", peer }, { signal });
      // Our side carries nothing: closing it releases the stream both ways.
      await stream.closeWrite();
    } catch (err) {
      if (NetworkError.is(err, "FRAME_TOO_LARGE")) {
        this.#counters.refused("too_large_in").inc();
      }
      throw err; // the peer manager resets this stream only
    }
  }
}

/**
 * Reads a message of `length` bytes: a copy into one buffer (a view of the
 * frames it arrived in would hold their buffers).
 */
async function readMessage(reader: ByteReader, length: number): Promise<Uint8Array> {
  if (reader.buffered >= length) return (await reader.readExactly(length)).slice();
  const message = new Uint8Array(length);
  let filled = 0;
  while (filled < length) {
    const chunk = await reader.readSome(length - filled);
    if (chunk === undefined) {
      throw new NetworkError("CONNECTION_CLOSED", `stream ended inside a ${length}-byte message`);
    }
    message.set(chunk, filled);
    filled += chunk.length;
  }
  return message;
}

/** The per-protocol counters (the series RPC shares for its messages). */
export function messageCounters(metrics: Metrics, protocol: string): Counters {
  const messages = metrics.counter(
    "validator_network_messages_total",
    "Messages, by protocol and direction",
    ["protocol", "direction"],
  );
  const bytes = metrics.counter(
    "validator_network_message_bytes_total",
    "Message bytes (payloads), by protocol and direction",
    ["protocol", "direction"],
  );
  const refused = metrics.counter(
    "validator_network_messages_refused_total",
    "Messages refused, by protocol and reason",
    ["protocol", "reason"],
  );
  return {
    messagesOut: messages.labels({ protocol, direction: "out" }),
    bytesOut: bytes.labels({ protocol, direction: "out" }),
    messagesIn: messages.labels({ protocol, direction: "in" }),
    bytesIn: bytes.labels({ protocol, direction: "in" }),
    refused: (reason) => refused.labels({ protocol, reason }),
  };
}

/** A sender waiting for room in the queue. */
interface Waiter {
  pending: Pending;
  signal: AbortSignal | undefined;
  onAbort: (() => void) | undefined;
}

/** The outbound queue and stream of one peer. */
class PeerSender {
  readonly #peer: PeerId;
  readonly #owner: DirectSend;
  #queue: Pending[] = [];
  #head = 0;
  #queuedBytes = 0;
  /** Senders waiting for room, in order, from `#waitHead` (no `shift`: it copies). */
  #waiting: Waiter[] = [];
  #waitHead = 0;
  #stream: ProtocolStream | undefined;
  #pumping = false;
  #ending: PromiseWithResolvers<void> | undefined;

  constructor(peer: PeerId, owner: DirectSend) {
    this.#peer = peer;
    this.#owner = owner;
  }

  get #length(): number {
    return this.#queue.length - this.#head;
  }

  /**
   * Queues `message`, or waits for room behind the senders already waiting
   * (in call order, whatever their sizes: a small message never overtakes
   * a larger one waiting for room); resolves once it was written.
   */
  enqueue(message: Uint8Array, signal: AbortSignal | undefined): Promise<void> {
    const { promise, resolve, reject } = Promise.withResolvers<void>();
    const pending = { message, resolve, reject };
    if (this.#waitHead === this.#waiting.length && this.#fits(message.length)) {
      this.#admit(pending);
      return promise;
    }
    const aborted = () =>
      NetworkError.wrap(signal!.reason, "ABORTED", "waiting for room in the queue");
    if (signal?.aborted) {
      reject(aborted());
      return promise;
    }
    const waiter: Waiter = { pending, signal, onAbort: undefined };
    if (signal !== undefined) {
      waiter.onAbort = () => {
        const i = this.#waiting.indexOf(waiter, this.#waitHead);
        if (i >= 0) this.#waiting.splice(i, 1);
        reject(aborted());
        // It may have held back smaller messages that fit.
        this.#wakeWaiting();
      };
      signal.addEventListener("abort", waiter.onAbort, { once: true });
    }
    this.#waiting.push(waiter);
    return promise;
  }

  /** Whether a message of `size` bytes fits in the queue now (alone, any message does). */
  #fits(size: number): boolean {
    const { outboundQueue, outboundBytes } = this.#owner.options;
    return this.#length === 0 ||
      (this.#length < outboundQueue && this.#queuedBytes + size <= outboundBytes);
  }

  #admit(pending: Pending): void {
    this.#queue.push(pending);
    this.#queuedBytes += pending.message.length;
    if (!this.#pumping) this.#owner.spawn(this.#pump());
  }

  /** Admits the waiting senders, first come first, while the first fits. */
  #wakeWaiting(): void {
    while (
      this.#waitHead < this.#waiting.length &&
      this.#fits(this.#waiting[this.#waitHead].pending.message.length)
    ) {
      const waiter = this.#waiting[this.#waitHead];
      this.#waiting[this.#waitHead++] = undefined!;
      if (waiter.onAbort !== undefined) waiter.signal?.removeEventListener("abort", waiter.onAbort);
      this.#admit(waiter.pending);
    }
    if (this.#waitHead === this.#waiting.length) {
      this.#waiting = [];
      this.#waitHead = 0;
    } else if (this.#waitHead > 1024 && this.#waitHead * 2 > this.#waiting.length) {
      this.#waiting = this.#waiting.slice(this.#waitHead);
      this.#waitHead = 0;
    }
  }

  /** Writes the queue, batch by batch, until it is empty. */
  async #pump(): Promise<void> {
    this.#pumping = true;
    const { batchBytes } = this.#owner.options;
    try {
      while (this.#length > 0) {
        const stream = this.#stream ??= await this.#owner.openStream(this.#peer);
        const batch = this.#takeBatch(batchBytes);
        let bytes = 0;
        try {
          if (batch.length === 1 && batch[0].message.length > batchBytes) {
            // A large message: its length, then itself (yamux frames it).
            const message = batch[0].message;
            await written(stream.write(encodeVarint(message.length)));
            await written(stream.write(message));
            bytes = message.length;
          } else {
            const joined = join(batch);
            bytes = joined.payload;
            await written(stream.write(joined.buffer));
          }
        } catch (err) {
          const error = NetworkError.wrap(err, "CONNECTION_RESET", "direct send write");
          for (const p of batch) p.reject(error);
          this.#stream = undefined;
          stream.abort(error);
          continue;
        }
        this.#owner.sent(batch.length, bytes);
        for (const p of batch) p.resolve();
      }
      if (this.#ending !== undefined) await this.#closeStream();
    } catch (err) {
      this.fail(NetworkError.wrap(err, "CONNECTION_RESET", "direct send"), false);
    } finally {
      this.#pumping = false;
      // Messages admitted after a failed write, or while the stream closed.
      if (this.#length > 0) this.#owner.spawn(this.#pump());
    }
  }

  /** Takes the next messages to write together: up to `limit` bytes, at least one. */
  #takeBatch(limit: number): Pending[] {
    const batch: Pending[] = [];
    let bytes = 0;
    while (this.#length > 0) {
      const next = this.#queue[this.#head];
      const size = next.message.length + varintLength(next.message.length);
      if (batch.length > 0 && (bytes + size > limit || next.message.length > limit)) break;
      this.#queue[this.#head++] = undefined!;
      this.#queuedBytes -= next.message.length;
      batch.push(next);
      bytes += size;
      if (next.message.length > limit) break;
    }
    if (this.#head === this.#queue.length) {
      this.#queue = [];
      this.#head = 0;
    }
    this.#wakeWaiting();
    return batch;
  }

  /** Sends what is queued, then closes the stream (the receiver sees its end). */
  async end(): Promise<void> {
    this.#ending ??= Promise.withResolvers<void>();
    const ending = this.#ending.promise;
    if (!this.#pumping) {
      if (this.#length > 0) this.#owner.spawn(this.#pump());
      else await this.#closeStream();
    }
    await ending;
  }

  async #closeStream(): Promise<void> {
    const ending = this.#ending;
    this.#ending = undefined;
    const stream = this.#stream;
    this.#stream = undefined;
    try {
      if (stream !== undefined) await stream.closeWrite();
      ending?.resolve();
    } catch (err) {
      ending?.reject(NetworkError.wrap(err, "CONNECTION_RESET", "direct send close"));
    }
  }

  /** Fails everything queued with `error` (and the waiters for room, when `all`). */
  fail(error: NetworkError, all: boolean): void {
    const queued = this.#queue.slice(this.#head);
    this.#queue = [];
    this.#head = 0;
    this.#queuedBytes = 0;
    for (const p of queued) p.reject(error);
    this.#stream?.abort(error);
    this.#stream = undefined;
    const ending = this.#ending;
    this.#ending = undefined;
    ending?.reject(error);
    ending?.promise.catch(() => {});
    if (all) {
      const waiting = this.#waiting.slice(this.#waitHead);
      this.#waiting = [];
      this.#waitHead = 0;
      for (const waiter of waiting) {
        if (waiter.onAbort !== undefined) {
          waiter.signal?.removeEventListener("abort", waiter.onAbort);
        }
        waiter.pending.reject(error);
      }
    } else this.#wakeWaiting();
  }
}

/** Joins messages, each behind its varint length, into one buffer. */
function join(batch: Pending[]): { buffer: Uint8Array; payload: number } {
  let total = 0;
  let payload = 0;
  for (const { message } of batch) {
    total += varintLength(message.length) + message.length;
    payload += message.length;
  }
  const buffer = new Uint8Array(total);
  let at = 0;
  for (const { message } of batch) {
    encodeVarint(message.length, buffer, at);
    at += varintLength(message.length);
    buffer.set(message, at);
    at += message.length;
  }
  return { buffer, payload };
}

async function written(room: Promise<void> | undefined): Promise<void> {
  if (room !== undefined) await room;
}
