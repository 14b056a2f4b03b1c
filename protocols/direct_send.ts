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
 * - One stream per (peer, protocol) carries the messages. It starts with a
 *   header: the sender's epoch (a random number per sender) and the number
 *   of its first message; then each message behind an unsigned varint
 *   length, numbered in order. The receiver acknowledges on the same stream
 *   (after 1024 messages or 1 MiB, or 5 ms after the first one it took),
 *   and the sender keeps what it wrote until then (at most 4 MiB or 8192
 *   messages: then it waits). When a stream breaks because its connection
 *   went (a simultaneous dial's loser, a dropped connection), the sender
 *   writes what was not acknowledged again on the peer's next connection,
 *   if one comes within `resendGrace`, and the receiver drops the numbers
 *   it already has: the message is delivered once, in order. If none comes,
 *   queued messages fail (typed) and those handed over but never
 *   acknowledged are counted (`lost_unacknowledged`).
 * - The queue drains in batches: small messages
 *   queued together leave in one stream write (one yamux frame, one Noise
 *   message, one socket write), so a stream of 64-byte messages does not
 *   cost a frame or a write each. A large message is written whole and
 *   streamed by yamux in frames under flow control; its stream's priority
 *   class (`priority`) decides what it waits behind on a busy connection.
 * - The receiver reads a message into one buffer of its announced length
 *   (refusing more than `maxMessageSize`: it tells the sender which message,
 *   which drops it and goes on with a new stream; the stream is reset and
 *   the refusal counted), then queues it for the application in a queue per
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
import { delay } from "../netcore/_async.ts";
import { ByteReader } from "../netcore/byte_reader.ts";
import { KeyedQueue } from "../netcore/channel/keyed_queue.ts";
import { type Logger, rootLogger } from "../netcore/log.ts";
import { defaultMetrics, type Metrics } from "../netcore/metrics.ts";
import type { Priority } from "../netcore/multiplexing/yamux_stream.ts";
import { NetworkError } from "../netcore/network_error.ts";
import type { PeerEventStream } from "../netcore/peer/peer_events.ts";
import type { PeerManager } from "../netcore/peer/peer_manager.ts";
import type { ProtocolStream } from "../netcore/upgrade/peer_connection.ts";
import { encodeVarint, varintLength } from "../netcore/varint.ts";
import { type Counters, messageCounters } from "./_counters.ts";
import { MessageBuffers, type PooledMessage } from "./_message_buffers.ts";

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
  /**
   * How long a sender whose connection went away keeps what it holds
   * for a new connection to the peer, in ms; then queued messages fail and
   * those handed over but never acknowledged are counted lost. Default 1_000.
   */
  resendGrace?: number;
  /**
   * Bytes of buffers for large received messages (64 KiB and more) kept for
   * reuse: a message whose event's `release()` was called gives its buffer
   * back, and the next large message reuses it instead of fresh memory.
   * 0 keeps none. Default 16 MiB.
   */
  messageBufferBytes?: number;
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
  resendGrace: 1_000,
  messageBufferBytes: 16 * 1024 * 1024,
};

/**
 * What {@linkcode DirectSend.receive} hands out: a message, or the end of a
 * peer's stream (it closed it; its messages before came first).
 */
export type DirectSendEvent =
  | DirectSendMessage
  | { readonly type: "end"; readonly peer: PeerId };

/**
 * A message received. The application owns `message`; once it is done with
 * it, `release()` may give a large message's buffer back for the next one
 * (optional: without it the garbage collector takes the buffer). After
 * `release()` the message must not be used: its bytes will be overwritten.
 * Messages of up to 128 bytes are views of a 2 KiB block shared with the
 * messages received around them (cheaper than a buffer each): one kept for
 * long keeps its block alive, so an application that keeps a few small
 * messages out of many keeps copies (`message.slice()`).
 */
export interface DirectSendMessage {
  /** `message`. */
  readonly type: "message";
  /** The sender. */
  readonly peer: PeerId;
  /** The message's bytes. */
  readonly message: Uint8Array;
  /** Gives the message's buffer back for reuse; does nothing for small messages, or a second time. */
  readonly release: () => void;
}

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
  /** Per sending peer: its sender's epoch and the number of the next message we expect. */
  readonly #inboundOrder = new Map<string, { epoch: number; next: number }>();
  /** The inbound streams being read, with their acknowledgements (reset when we close). */
  readonly #reading = new Map<ProtocolStream, AckWriter>();
  /** Buffers of large received messages, given back by the application. */
  readonly #buffers: MessageBuffers;
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
      resendGrace: options.resendGrace ?? DIRECT_SEND_DEFAULTS.resendGrace,
      messageBufferBytes: options.messageBufferBytes ?? DIRECT_SEND_DEFAULTS.messageBufferBytes,
    };
    this.#buffers = new MessageBuffers(this.#options.messageBufferBytes);
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
   * connection (then it is the connection's to deliver). The message is
   * kept, not copied, until the peer acknowledges it (it may be written
   * again on a new connection): do not modify it after the call.
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
    // The peers' streams to us end now, not when their connections close.
    // What we took is acknowledged first, with our end of the stream, and
    // the reset waits a moment: it would discard the acknowledgement on the
    // peer's side before its sender read it, and the sender would count
    // delivered messages as lost.
    const reading = [...this.#reading];
    for (const [stream, acks] of reading) {
      acks.flush();
      stream.closeWrite().catch(() => {});
    }
    if (reading.length > 0) {
      const waited = new AbortController();
      await Promise.race([
        Promise.allSettled(reading.map(([stream]) => stream.closed)),
        delay(CLOSE_GRACE, { signal: waited.signal }).catch(() => {}),
      ]);
      waited.abort();
    }
    for (const [stream] of reading) stream.abort(error);
    this.#inbound.close();
    await Promise.allSettled([...this.#tasks]);
    this.#buffers.clear();
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

  /** @internal The id of the connection to `peer`, 0 when there is none. */
  connectionId(peer: PeerId): number {
    return this.#manager.connection(peer)?.id ?? 0;
  }

  /** @internal A sender gave up: forget it (unless another took its place). */
  forget(peer: PeerId, sender: PeerSender): void {
    const key = peer.toString();
    if (this.#senders.get(key) === sender) this.#senders.delete(key);
  }

  /** @internal Counts messages handed over and never acknowledged. */
  lost(messages: number): void {
    this.#counters.refused("lost_unacknowledged").inc(messages);
    this.#log.warn("messages handed to a connection that went away were not acknowledged", {
      messages,
    });
  }

  /** @internal Counts messages the peer refused as too large. */
  refusedByPeer(): void {
    this.#counters.refused("too_large_at_peer").inc();
  }

  /** @internal Counts messages written again on a new connection. */
  resent(messages: number): void {
    this.#counters.refused("resent").inc(messages);
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

  /**
   * A lost peer's sender waits for a new connection (a simultaneous dial's
   * winner, a reconnection), which gets what was not acknowledged.
   */
  async #watch(events: PeerEventStream): Promise<void> {
    for await (const event of events) {
      const key = event.peer.peerId.toString();
      const sender = this.#senders.get(key);
      if (sender === undefined) continue;
      if (event.type === "new-peer") {
        sender.connected(event.peer.connectionId);
      } else {
        sender.disconnected(
          event.error ??
            new NetworkError("CONNECTION_CLOSED", `connection to ${key} closed (${event.reason})`),
        );
      }
    }
  }

  /**
   * Reads one peer's stream: its header (the sender's epoch, the number of
   * its first message), then messages into the inbound queue, in order,
   * dropping those we already have (written again after a connection
   * change), and acknowledging what we took whenever we have read all
   * that arrived.
   */
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
    // The number after the last message this stream put in the queue: what it acknowledges.
    let pushed = 0;
    const acks = new AckWriter(stream, () => pushed);
    this.#reading.set(stream, acks);
    try {
      const epoch = await reader.readVarint(Number.MAX_SAFE_INTEGER);
      let seq = await reader.readVarint(Number.MAX_SAFE_INTEGER);
      let known = this.#inboundOrder.get(key);
      if (known === undefined || known.epoch !== epoch) {
        known = { epoch, next: seq };
        this.#inboundOrder.delete(key);
        this.#inboundOrder.set(key, known);
        if (this.#inboundOrder.size > MAX_SENDERS_REMEMBERED) {
          this.#inboundOrder.delete(this.#inboundOrder.keys().next().value!);
        }
      }
      const order = known;
      pushed = seq;
      while (true) {
        // Messages already buffered are taken without waiting: a frame of
        // small messages costs no promise per message.
        let length = reader.tryReadVarint(Number.MAX_SAFE_INTEGER);
        if (length === undefined) {
          if (await reader.atEnd()) break;
          length = await reader.readVarint(Number.MAX_SAFE_INTEGER);
        }
        if (length > max) {
          // Tell the sender which one, so it drops it and goes on, and give it
          // a moment to reset the stream itself: our reset would discard the
          // refusal before the sender read it.
          acks.flush();
          await written(stream.write(encodeVarint(seq * 2 + 1))).catch(() => {});
          const waited = new AbortController();
          await Promise.race([
            stream.closed,
            delay(REFUSAL_GRACE, { signal: waited.signal }).catch(() => {}),
          ]);
          waited.abort();
          throw new NetworkError("FRAME_TOO_LARGE", `message of ${length} bytes exceeds ${max}`);
        }
        const taken = this.#buffers.take(length);
        if (!reader.tryReadFully(taken.bytes)) await readMessage(reader, taken);
        const { bytes: message, release } = taken;
        const number = seq++;
        if (number >= order.next) {
          // Claimed before the wait below: a second stream of the same
          // sender (after a connection change) cannot take it too.
          order.next = number + 1;
          this.#counters.messagesIn.inc();
          this.#counters.bytesIn.inc(length);
          // Waits while the peer's queue is full: the stream is not read
          // meanwhile, so flow control stalls this peer alone.
          // Counted as taken at once: with room, the queue took it already
          // (and the application may have it before this function resumes).
          const event: DirectSendEvent = { type: "message", peer, message, release };
          const offered = this.#inbound.tryPush(key, event);
          pushed = number + 1;
          acks.took(length);
          try {
            if (offered.status === "full") {
              await this.#inbound.push(key, event, { signal });
              // The application fell behind: it gets a whole turn to catch
              // up, rather than every later message waiting for room alone.
              await delay(0);
            } else {
              // A turn for the application after each message keeps its
              // queue short.
              await undefined;
            }
          } catch (err) {
            // The stream closed while the application did not read. Unless we
            // acknowledged it, give the number back: the sender's next stream
            // delivers it again. If we did, it is lost: counted.
            if (acks.acknowledged > number) this.#counters.refused("dropped_unread").inc();
            else if (order.next === number + 1) order.next = number;
            throw err;
          }
        } else {
          this.#counters.refused("duplicate").inc();
          release();
          pushed = Math.max(pushed, number + 1);
          acks.took(length);
        }
      }
      acks.flush();
      await this.#inbound.push(key, { type: "end", peer }, { signal });
      // Our side carries nothing more: closing it releases the stream both ways.
      await stream.closeWrite();
    } catch (err) {
      if (NetworkError.is(err, "FRAME_TOO_LARGE")) {
        this.#counters.refused("too_large_in").inc();
      }
      throw err; // the peer manager resets this stream only
    } finally {
      acks.stop();
      this.#reading.delete(stream);
    }
  }
}

/** Acknowledge after this many messages or bytes taken, at the latest... */
const ACK_EVERY_MESSAGES = 1024;
const ACK_EVERY_BYTES = 1024 * 1024;
/** ...or this many ms after the first one not acknowledged. */
const ACK_DELAY = 5;

/**
 * The receiver's acknowledgements on one stream: the number of the next
 * message it expects, written after enough messages, or shortly after the
 * first one taken, so a stream of small messages costs a few writes back,
 * not one per message.
 */
class AckWriter {
  readonly #stream: ProtocolStream;
  readonly #next: () => number;
  #messages = 0;
  #bytes = 0;
  #timer: ReturnType<typeof setTimeout> | undefined;
  #stopped = false;
  /** The last number acknowledged (every message below it). */
  acknowledged = 0;

  constructor(stream: ProtocolStream, next: () => number) {
    this.#stream = stream;
    this.#next = next;
  }

  /** A message of `bytes` was taken (or dropped as a duplicate). */
  took(bytes: number): void {
    this.#messages++;
    this.#bytes += bytes;
    if (this.#messages >= ACK_EVERY_MESSAGES || this.#bytes >= ACK_EVERY_BYTES) this.flush();
    else this.#timer ??= setTimeout(() => this.flush(), ACK_DELAY);
  }

  /** Writes the acknowledgement now, if anything is unacknowledged. */
  flush(): void {
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    this.#timer = undefined;
    if (this.#stopped || this.#messages === 0) return;
    this.#messages = 0;
    this.#bytes = 0;
    this.acknowledged = this.#next();
    try {
      this.#stream.write(encodeVarint(this.acknowledged * 2))?.catch(() => {});
    } catch {
      // The stream is gone: its reader hears of it.
    }
  }

  stop(): void {
    this.#stopped = true;
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    this.#timer = undefined;
  }
}

/** How long a receiver that refused a message waits for its sender to reset the stream, in ms. */
const REFUSAL_GRACE = 1_000;

/** How long closing waits for the peers to take our acknowledgements and end their streams, in ms. */
const CLOSE_GRACE = 100;

/** Senders whose message order is remembered (the oldest forgotten first). */
const MAX_SENDERS_REMEMBERED = 4096;

/**
 * Reads a message into its buffer, `taken` (a copy: a view of the frames it
 * arrived in would hold their buffers), giving the buffer back if the
 * stream fails first.
 */
async function readMessage(reader: ByteReader, taken: PooledMessage): Promise<void> {
  try {
    await reader.readFully(taken.bytes);
  } catch (err) {
    taken.release();
    throw err;
  }
}

/** A sender waiting for room in the queue. */
interface Waiter {
  pending: Pending;
  signal: AbortSignal | undefined;
  onAbort: (() => void) | undefined;
}

/** A batch of one message this large or larger is written without copying it. */
const WRITTEN_ALONE = 16 * 1024;

/** Messages written but not acknowledged: at most this many bytes (one larger message alone may). */
const UNACKED_BYTES = 4 * 1024 * 1024;
/** ... and at most this many messages. */
const UNACKED_MESSAGES = 8192;

/** Errors that mean the connection went (or is going) away: the sender waits for it to settle. */
const CONNECTION_GONE: ReadonlySet<string> = new Set([
  "CONNECTION_REPLACED",
  "CONNECTION_RESET",
  "CONNECTION_CLOSED",
  "NOT_CONNECTED",
  "TIMEOUT",
]);

/**
 * Messages written together on a stream, some not acknowledged yet: kept
 * as the bytes that were written (one buffer per batch, so a stream of
 * small messages keeps few objects alive), with their senders until the
 * write completed.
 */
interface Sent {
  /** The number of the first message. */
  first: number;
  /** How many messages. */
  count: number;
  /** What was written: each message behind its varint length. */
  bytes: Uint8Array;
  /** A single message of `WRITTEN_ALONE` bytes or more is written as its length, then itself: `bytes` is the message. */
  large: boolean;
  /** Messages before this index are acknowledged. */
  acked: number;
  /** Their senders, until a write of them completed. */
  items: Pending[] | undefined;
}

/**
 * The outbound queue and stream of one peer: messages are numbered, kept
 * once written until the receiver acknowledges them, and written again on
 * the next stream when the connection changed under them.
 */
class PeerSender {
  readonly #peer: PeerId;
  readonly #owner: DirectSend;
  /** Tells a receiver that this is a new sender, whose numbers start afresh. */
  readonly #epoch = Math.floor(Math.random() * 2 ** 48);
  #queue: Pending[] = [];
  #head = 0;
  #queuedBytes = 0;
  /** Senders waiting for room, in order, from `#waitHead` (no `shift`: it copies). */
  #waiting: Waiter[] = [];
  #waitHead = 0;
  /** The number of the next message written. */
  #nextSeq = 0;
  /** What was written and not acknowledged, oldest first, from `#sentHead`. */
  #sent: Sent[] = [];
  #sentHead = 0;
  #unackedCount = 0;
  #unackedBytes = 0;
  /** Wakes the writer when an acknowledgement makes room. */
  #acked: PromiseWithResolvers<void> | undefined;
  #stream: ProtocolStream | undefined;
  /** The connection of `#stream`. */
  #connectionId = 0;
  #pumping = false;
  #ending: PromiseWithResolvers<void> | undefined;
  /** Set while the stream broke and the sender waits for the connection to settle. */
  #stalled: ReturnType<typeof setTimeout> | undefined;
  /** The peer refused a message: the stream it resets is not a connection change. */
  #retryAtOnce = false;
  #failed = false;

  constructor(peer: PeerId, owner: DirectSend) {
    this.#peer = peer;
    this.#owner = owner;
  }

  get #length(): number {
    return this.#queue.length - this.#head;
  }

  /** Whether the sender holds nothing: it can be forgotten. */
  get idle(): boolean {
    return this.#length === 0 && this.#unackedCount === 0 &&
      this.#waitHead === this.#waiting.length && !this.#pumping;
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
    this.#kick();
  }

  #kick(): void {
    if (!this.#pumping && this.#stalled === undefined && !this.#failed) {
      this.#owner.spawn(this.#pump());
    }
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

  /** Whether written messages fill the window: wait for acknowledgements. */
  get #windowFull(): boolean {
    return this.#unackedCount > 0 &&
      (this.#unackedCount >= UNACKED_MESSAGES || this.#unackedBytes >= UNACKED_BYTES);
  }

  /**
   * Opens a stream on the peer's connection: the header (our epoch, the
   * number of the first message), then the messages not acknowledged on
   * the stream before it, in order.
   */
  async #open(): Promise<ProtocolStream> {
    const connectionId = this.#owner.connectionId(this.#peer);
    const stream = await this.#owner.openStream(this.#peer);
    const head = this.#sent[this.#sentHead];
    const first = head !== undefined ? head.first + head.acked : this.#nextSeq;
    const header = new Uint8Array(varintLength(this.#epoch) + varintLength(first));
    encodeVarint(this.#epoch, header, 0);
    encodeVarint(first, header, varintLength(this.#epoch));
    this.#stream = stream;
    this.#connectionId = connectionId;
    this.#owner.spawn(this.#readAcks(stream));
    await written(stream.write(header));
    if (this.#unackedCount > 0) this.#owner.resent(this.#unackedCount);
    // The batches as they were, each from its first message not acknowledged.
    for (let i = this.#sentHead; i < this.#sent.length; i++) {
      const sent = this.#sent[i];
      if (sent.large) {
        await written(stream.write(encodeVarint(sent.bytes.length)));
        await written(stream.write(sent.bytes));
      } else {
        await written(stream.write(sent.bytes.subarray(offsetOf(sent.bytes, sent.acked))));
      }
      handedOver(sent);
    }
    return stream;
  }

  /**
   * Writes a batch: small messages joined in one write, a large one behind
   * its length; kept (numbered) before the write, so if the stream breaks
   * during it, it is written again on the next one (the receiver drops what
   * it already has), and its senders hear when that completes.
   */
  async #writeBatch(stream: ProtocolStream, items: Pending[]): Promise<void> {
    // A message that fills a batch alone is written behind its length, not
    // copied: a copy of a large message costs fresh memory, and the sender
    // keeps it until acknowledged.
    const large = items.length === 1 && items[0].message.length >= WRITTEN_ALONE;
    const joined = large ? undefined : join(items);
    const bytes = large ? items[0].message : joined!.buffer;
    const sent: Sent = { first: this.#nextSeq, count: items.length, bytes, large, acked: 0, items };
    this.#nextSeq += items.length;
    this.#sent.push(sent);
    this.#unackedCount += items.length;
    this.#unackedBytes += bytes.length;
    if (large) await written(stream.write(encodeVarint(bytes.length)));
    await written(stream.write(bytes));
    this.#owner.sent(items.length, large ? bytes.length : joined!.payload);
    handedOver(sent);
  }

  /** Writes the queue, batch by batch, until it is empty. */
  async #pump(): Promise<void> {
    this.#pumping = true;
    const { batchBytes } = this.#owner.options;
    let stream: ProtocolStream | undefined;
    try {
      while (this.#stalled === undefined && !this.#failed) {
        if (this.#stream === undefined) {
          if (this.#length === 0 && this.#unackedCount === 0) break;
          stream = undefined;
          try {
            stream = await this.#open();
          } catch (err) {
            const error = NetworkError.wrap(err, "CONNECTION_RESET", "direct send");
            if (stream === undefined && !CONNECTION_GONE.has(error.code)) {
              // The peer refused the stream itself (say, it does not serve
              // the protocol): nothing held can be delivered.
              this.#owner.forget(this.#peer, this);
              this.fail(error, true);
              break;
            }
            this.#broken(stream, error);
            continue;
          }
        }
        stream = this.#stream!;
        if (this.#windowFull) {
          this.#acked ??= Promise.withResolvers();
          await this.#acked.promise;
          continue;
        }
        if (this.#length === 0) break;
        // Numbered and kept before the write: if the stream breaks during
        // it, they are written again on the next one (the receiver drops
        // what it already has), and their senders hear when that completes.
        try {
          await this.#writeBatch(stream, this.#takeBatch(batchBytes));
        } catch (err) {
          this.#broken(stream, NetworkError.wrap(err, "CONNECTION_RESET", "direct send"));
        }
      }
      if (this.#ending !== undefined && this.#length === 0 && this.#stalled === undefined) {
        await this.#closeStream();
      }
    } catch (err) {
      this.fail(NetworkError.wrap(err, "CONNECTION_RESET", "direct send"), false);
    } finally {
      this.#pumping = false;
      // Messages admitted while the last write was under way.
      if (this.#length > 0 && this.#stream !== undefined) this.#kick();
    }
  }

  /** Reads the receiver's acknowledgements: the number of the next message it expects. */
  async #readAcks(stream: ProtocolStream): Promise<void> {
    const reader = new ByteReader(stream);
    try {
      while (!(await reader.atEnd())) {
        const record = await reader.readVarint(Number.MAX_SAFE_INTEGER);
        if (record % 2 === 1) {
          this.#refusedByPeer((record - 1) / 2);
          // The receiver waits for us to drop this stream; the rest go on a new one.
          this.#broken(stream, new NetworkError("FRAME_TOO_LARGE", "the peer refused a message"));
          return;
        }
        this.#acknowledged(record / 2);
        const acked = this.#acked;
        this.#acked = undefined;
        acked?.resolve();
      }
      // The receiver ended its side while we still write: it stopped reading
      // (its protocol closed). What it did not acknowledge goes elsewhere or fails.
      if (this.#stream === stream) {
        this.#broken(stream, new NetworkError("CONNECTION_CLOSED", "the peer stopped reading"));
      }
    } catch (err) {
      if (this.#stream === stream) {
        this.#broken(stream, NetworkError.wrap(err, "CONNECTION_RESET", "direct send"));
      }
    }
  }

  /** The receiver took every message numbered below `next`. */
  #acknowledged(next: number): void {
    while (this.#sentHead < this.#sent.length) {
      const sent = this.#sent[this.#sentHead];
      const end = Math.min(next - sent.first, sent.count);
      if (end <= sent.acked) break;
      // Acknowledged before its write completed: it is delivered.
      if (sent.items !== undefined) {
        for (let i = sent.acked; i < end; i++) sent.items[i].resolve();
      }
      this.#unackedCount -= end - sent.acked;
      sent.acked = end;
      if (end < sent.count) break;
      this.#unackedBytes -= sent.bytes.length;
      this.#sent[this.#sentHead++] = undefined!;
    }
    if (this.#sentHead === this.#sent.length) {
      this.#sent = [];
      this.#sentHead = 0;
    } else if (this.#sentHead > 256 && this.#sentHead * 2 > this.#sent.length) {
      this.#sent = this.#sent.slice(this.#sentHead);
      this.#sentHead = 0;
    }
  }

  /**
   * The receiver refused message `seq` (larger than it accepts; it
   * acknowledged every one before it) and resets the stream: that message
   * is dropped, the others go on a new stream at once.
   */
  #refusedByPeer(seq: number): void {
    const head = this.#sent[this.#sentHead];
    if (head === undefined || head.first + head.acked !== seq) return;
    const refused = head.items?.[head.acked];
    // Its sender (when the write is still under way) hears why; it is not written again.
    refused?.reject(new NetworkError("FRAME_TOO_LARGE", "the peer refused a message as too large"));
    if (head.items !== undefined) head.items[head.acked] = NOOP_PENDING;
    this.#acknowledged(seq + 1);
    this.#owner.refusedByPeer();
    this.#retryAtOnce = true;
  }

  /**
   * The stream broke (its connection was replaced, closed, or reset). What
   * was written and not acknowledged is kept, with the queue, while the
   * connection settles: a new connection to the peer (the winner of a
   * simultaneous dial, a reconnection within `resendGrace`) gets it all
   * again, in order; otherwise it fails (the queue) or is counted as lost
   * (what was handed over and never acknowledged).
   */
  #broken(stream: ProtocolStream | undefined, error: NetworkError): void {
    if (this.#failed) return;
    if (stream !== undefined) {
      if (this.#stream !== stream) return;
      stream.abort(error);
    }
    this.#stream = undefined;
    const acked = this.#acked;
    this.#acked = undefined;
    acked?.resolve();
    if (this.#ending !== undefined && this.#length === 0 && this.#unackedCount === 0) {
      void this.#closeStream();
      return;
    }
    const current = this.#owner.connectionId(this.#peer);
    if (current !== 0 && (current !== this.#connectionId || this.#retryAtOnce)) {
      // Already a new connection, or the peer refused one message: go on at once.
      this.#retryAtOnce = false;
      this.#kick();
      return;
    }
    this.#stall(error);
  }

  #stall(error: NetworkError): void {
    if (this.#stalled !== undefined || this.#failed) return;
    this.#stalled = setTimeout(() => {
      this.#stalled = undefined;
      const current = this.#owner.connectionId(this.#peer);
      if (current === 0) {
        this.#owner.forget(this.#peer, this);
        this.fail(error, true);
      } else {
        // The same connection is still there: the stream alone broke. Try a new one.
        this.#kick();
      }
    }, this.#owner.options.resendGrace);
  }

  /** A connection to the peer (a new one, or the one we had): go on, writing again what was not acknowledged. */
  connected(connectionId: number): void {
    if (this.#failed || connectionId === this.#connectionId && this.#stream !== undefined) return;
    if (this.#stalled !== undefined) {
      clearTimeout(this.#stalled);
      this.#stalled = undefined;
    }
    if (this.#stream !== undefined) {
      // Still writing on the old connection: leave it for the new one.
      const old = this.#stream;
      this.#stream = undefined;
      old.abort(new NetworkError("CONNECTION_REPLACED", "direct send moved to a new connection"));
    }
    this.#kick();
  }

  /** The connection went away: wait for a new one (within `resendGrace`), then give up. */
  disconnected(error: NetworkError): void {
    if (this.#failed) return;
    if (this.#stream !== undefined) {
      this.#stream.abort(error);
      this.#stream = undefined;
    }
    if (this.#length === 0 && this.#unackedCount === 0 && this.#waitHead === this.#waiting.length) {
      this.#owner.forget(this.#peer, this);
      return;
    }
    this.#stall(error);
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
    if (!this.#pumping && this.#stalled === undefined) {
      if (this.#length > 0) this.#kick();
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

  /**
   * Fails everything queued with `error` (and the waiters for room, when
   * `all`); messages handed over and never acknowledged are counted lost.
   */
  fail(error: NetworkError, all: boolean): void {
    if (all) this.#failed = true;
    if (this.#stalled !== undefined) {
      clearTimeout(this.#stalled);
      this.#stalled = undefined;
    }
    const queued = this.#queue.slice(this.#head);
    this.#queue = [];
    this.#head = 0;
    this.#queuedBytes = 0;
    for (const p of queued) p.reject(error);
    if (all && this.#unackedCount > 0) {
      let lost = 0;
      for (let i = this.#sentHead; i < this.#sent.length; i++) {
        const sent = this.#sent[i];
        if (sent.items === undefined) lost += sent.count - sent.acked;
        else for (let j = sent.acked; j < sent.count; j++) sent.items[j].reject(error);
      }
      if (lost > 0) this.#owner.lost(lost);
      this.#sent = [];
      this.#sentHead = 0;
      this.#unackedCount = 0;
      this.#unackedBytes = 0;
    }
    const acked = this.#acked;
    this.#acked = undefined;
    acked?.resolve();
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
function join(batch: { message: Uint8Array }[]): { buffer: Uint8Array; payload: number } {
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

/** The senders of `sent`'s messages not acknowledged yet hear that they were written. */
function handedOver(sent: Sent): void {
  const items = sent.items;
  if (items === undefined) return;
  sent.items = undefined;
  for (let i = sent.acked; i < items.length; i++) items[i].resolve();
}

/** Where message `index` starts in a joined batch (its varint length first). */
function offsetOf(joined: Uint8Array, index: number): number {
  let at = 0;
  for (let i = 0; i < index; i++) {
    let length = 0;
    let shift = 1;
    let byte: number;
    do {
      byte = joined[at++];
      length += (byte & 0x7f) * shift;
      shift *= 128;
    } while (byte & 0x80);
    at += length;
  }
  return at;
}

/** Stands in for a refused message's sender, already answered. */
const NOOP_PENDING: Pending = {
  message: new Uint8Array(0),
  resolve: () => {},
  reject: () => {},
};
