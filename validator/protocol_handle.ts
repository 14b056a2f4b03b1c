/**
 * What {@linkcode ValidatorNetwork.register} hands out: one protocol's
 * sending side and its events (peers coming and going, messages or
 * requests), over DirectSend or RPC.
 *
 * @module
 */

import type { PeerId } from "../netcore/identity/peer_id.ts";
import { NetworkError } from "../netcore/network_error.ts";
import type { Priority } from "../netcore/multiplexing/yamux_stream.ts";
import type {
  DisconnectReason,
  PeerEventStream,
  PeerMetadata,
} from "../netcore/peer/peer_events.ts";
import type { DirectSend, DirectSendMessage } from "../protocols/direct_send.ts";
import type { Rpc } from "../protocols/rpc.ts";
import { mergeEvents } from "./_merge.ts";

/** A peer id, or its text form (`12D3KooW...`). */
export type PeerLike = PeerId | string;

/**
 * Options of a protocol passed to {@linkcode ValidatorNetwork.register}.
 * Limits left out take the network's (`limits`, `timeouts`).
 *
 * @example
 * ```ts
 * import type { ProtocolOptions } from "./protocol_handle.ts";
 * const consensus: ProtocolOptions = { kind: "direct-send", priority: "high" };
 * console.log(consensus.kind); // "direct-send"
 * ```
 */
export interface ProtocolOptions {
  /** `direct-send` (fire and forget, ordered per peer) or `rpc` (request and response). */
  kind: "direct-send" | "rpc";
  /** The priority class of the protocol's frames. Default `"normal"`. */
  priority?: Priority;
  /** Largest message (request and response for RPC), bytes. Default: the network's `maxMessageSize`. */
  maxMessageSize?: number;
  /** Default request deadline of an RPC protocol, ms. Default: the network's `timeouts.rpc`. */
  timeout?: number;
}

/** A peer came or went: every handle hears of it. */
export type PeerChange =
  | { readonly type: "new-peer"; readonly peer: PeerId; readonly info: PeerMetadata }
  | {
    readonly type: "lost-peer";
    readonly peer: PeerId;
    readonly info: PeerMetadata;
    readonly reason: DisconnectReason;
  };

/**
 * What a DirectSend handle's `events` yield: peer changes, and messages
 * (`release()` on a message gives a large one's buffer back for the next;
 * see {@linkcode DirectSendMessage}).
 */
export type DirectSendHandleEvent = PeerChange | DirectSendMessage;

/** What an RPC handle's `events` yield: answer each request once. */
export type RpcHandleEvent =
  | PeerChange
  | {
    readonly type: "request";
    readonly peer: PeerId;
    readonly request: Uint8Array;
    /** Sends the response. */
    respond(response: Uint8Array): Promise<void>;
    /** Fails the request: the requester gets `REMOTE_ERROR` with the message. */
    reject(error: string | Error): Promise<void>;
  };

/** Options for {@linkcode RpcHandle.request}. */
export interface RequestOptions {
  /** The deadline, in ms. Default: the protocol's `timeout`. */
  timeout?: number;
  /** Cancels the request. */
  signal?: AbortSignal;
}

/** What a handle needs of the network it belongs to. */
export interface HandleContext {
  /** The peer id of `peer`, checked. */
  peerId(peer: PeerLike): PeerId;
  /** The connected validators (broadcast targets). */
  connectedValidators(): PeerId[];
  /** A new subscription to peer events. */
  subscribe(): PeerEventStream;
}

/** Sends to every target at once; a `Map` of each peer's outcome. */
async function toAll(
  targets: PeerId[],
  send: (peer: PeerId) => Promise<unknown>,
): Promise<Map<string, NetworkError | undefined>> {
  const results = new Map<string, NetworkError | undefined>();
  await Promise.all(targets.map(async (peer) => {
    try {
      await send(peer);
      results.set(peer.toString(), undefined);
    } catch (err) {
      results.set(peer.toString(), NetworkError.wrap(err, "CONNECTION_CLOSED", "broadcast"));
    }
  }));
  return results;
}

/**
 * A DirectSend protocol of a {@linkcode ValidatorNetwork}.
 *
 * @example
 * ```ts ignore
 * const chat = net.register("/app/chat/1.0.0", { kind: "direct-send" });
 * await chat.sendTo(peer, new TextEncoder().encode("hi"));
 * for await (const ev of chat.events) if (ev.type === "message") console.log(ev.message);
 * ```
 */
export class DirectSendHandle {
  /** Always `"direct-send"`. */
  readonly kind = "direct-send" as const;
  readonly #protocol: DirectSend;
  readonly #context: HandleContext;
  #events: AsyncIterable<DirectSendHandleEvent> | undefined;

  /** A handle of `protocol` (see {@linkcode ValidatorNetwork.register}). */
  constructor(protocol: DirectSend, context: HandleContext) {
    this.#protocol = protocol;
    this.#context = context;
  }

  /** The protocol id. */
  get protocol(): string {
    return this.#protocol.protocol;
  }

  /**
   * Queues `message` for `peer`; resolves once the connection took it
   * (waiting while the peer's queue is full).
   *
   * @throws {NetworkError} `NOT_CONNECTED`, `FRAME_TOO_LARGE`, `ABORTED`,
   *   or the connection's error when it ended first
   */
  sendTo(
    peer: PeerLike,
    message: Uint8Array,
    options: { signal?: AbortSignal } = {},
  ): Promise<void> {
    let id: PeerId;
    try {
      id = this.#context.peerId(peer);
    } catch (err) {
      return Promise.reject(err);
    }
    return this.#protocol.sendTo(id, message, options);
  }

  /**
   * Sends `message` to every connected validator at once: each peer's
   * outcome (`undefined` when it was sent).
   */
  broadcast(message: Uint8Array): Promise<Map<string, NetworkError | undefined>> {
    return toAll(
      this.#context.connectedValidators(),
      (peer) => this.#protocol.sendTo(peer, message),
    );
  }

  /**
   * Peers coming and going, and messages, in arrival order per peer. One
   * consumer: every read of `events` returns the same iterable.
   */
  get events(): AsyncIterable<DirectSendHandleEvent> {
    this.#events ??= this.#stream();
    return this.#events;
  }

  /**
   * The next message alone (no peer changes), round-robin across peers;
   * `undefined` once the network stopped. Use it or `events`, not both.
   */
  async receive(
    options: { signal?: AbortSignal } = {},
  ): Promise<Extract<DirectSendHandleEvent, { type: "message" }> | undefined> {
    while (true) {
      const ev = await this.#protocol.receive(options);
      if (ev === undefined) return undefined;
      // A peer's stream ended: its messages came first; nothing to tell.
      if (ev.type === "message") return ev;
    }
  }

  async *#stream(): AsyncGenerator<DirectSendHandleEvent> {
    yield* mergeEvents(this.#context.subscribe(), [(signal) => this.receive({ signal })]);
  }
}

/**
 * An RPC protocol of a {@linkcode ValidatorNetwork}.
 *
 * @example
 * ```ts ignore
 * const echo = net.register("/app/echo/1.0.0", { kind: "rpc" });
 * (async () => {
 *   for await (const ev of echo.events) if (ev.type === "request") await ev.respond(ev.request);
 * })();
 * const reply = await echo.request(peer, new Uint8Array([1]), { timeout: 1_000 });
 * ```
 */
export class RpcHandle {
  /** Always `"rpc"`. */
  readonly kind = "rpc" as const;
  readonly #protocol: Rpc;
  readonly #context: HandleContext;
  #events: AsyncIterable<RpcHandleEvent> | undefined;

  /** A handle of `protocol` (see {@linkcode ValidatorNetwork.register}). */
  constructor(protocol: Rpc, context: HandleContext) {
    this.#protocol = protocol;
    this.#context = context;
  }

  /** The protocol id. */
  get protocol(): string {
    return this.#protocol.protocol;
  }

  /**
   * Sends `request` to `peer`; resolves with the response.
   *
   * @throws {NetworkError} `NOT_CONNECTED`, `TIMEOUT`, `ABORTED`,
   *   `LIMIT_EXCEEDED`, `FRAME_TOO_LARGE`, `REMOTE_ERROR`,
   *   `UNSUPPORTED_PROTOCOL`, or the connection's error
   */
  request(peer: PeerLike, request: Uint8Array, options: RequestOptions = {}): Promise<Uint8Array> {
    let id: PeerId;
    try {
      id = this.#context.peerId(peer);
    } catch (err) {
      return Promise.reject(err);
    }
    return this.#protocol.request(id, request, options);
  }

  /**
   * Sends `request` to every connected validator at once: each peer's
   * response or error.
   */
  async broadcast(
    request: Uint8Array,
    options: RequestOptions = {},
  ): Promise<Map<string, Uint8Array | NetworkError>> {
    const out = new Map<string, Uint8Array | NetworkError>();
    await Promise.all(
      this.#context.connectedValidators().map(async (peer) => {
        try {
          out.set(peer.toString(), await this.#protocol.request(peer, request, options));
        } catch (err) {
          out.set(peer.toString(), NetworkError.wrap(err, "CONNECTION_CLOSED", "broadcast"));
        }
      }),
    );
    return out;
  }

  /** Peers coming and going, and requests. One consumer (see `DirectSendHandle.events`). */
  get events(): AsyncIterable<RpcHandleEvent> {
    this.#events ??= this.#stream();
    return this.#events;
  }

  /**
   * The next request alone (no peer changes), round-robin across peers;
   * `undefined` once the network stopped. Use it or `events`, not both.
   */
  async receive(
    options: { signal?: AbortSignal } = {},
  ): Promise<Extract<RpcHandleEvent, { type: "request" }> | undefined> {
    const req = await this.#protocol.receive(options);
    if (req === undefined) return undefined;
    return {
      type: "request",
      peer: req.peer,
      request: req.request,
      respond: (response) => req.respond(response),
      reject: (error) => req.reject(typeof error === "string" ? error : error.message),
    };
  }

  async *#stream(): AsyncGenerator<RpcHandleEvent> {
    yield* mergeEvents(this.#context.subscribe(), [(signal) => this.receive({ signal })]);
  }
}
