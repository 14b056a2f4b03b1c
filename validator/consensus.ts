/**
 * The consensus handle (Libra's `ConsensusNetworkSender` and
 * `ConsensusNetworkEvents`): proposals, votes and timeouts by DirectSend,
 * blocks by RPC, all in the high priority class, as protobuf messages
 * (`validator/proto/consensus.proto`).
 *
 * @module
 */

import { create, toBinary } from "@bufbuild/protobuf";
import type { PeerId } from "../netcore/identity/peer_id.ts";
import type { Logger } from "../netcore/log.ts";
import type { Metrics } from "../netcore/metrics.ts";
import type { NetworkError } from "../netcore/network_error.ts";
import { decodeMessage } from "../netcore/proto/decode_message.ts";
import {
  BlockRequestSchema,
  BlockResponseSchema,
  ConsensusMsgSchema,
} from "./proto/_gen/consensus_pb.ts";
import type { BlockRequest, BlockResponse, ConsensusMessage } from "./messages.ts";
import { mergeEvents } from "./_merge.ts";
import { TypedDecoder } from "./_typed.ts";
import type {
  DirectSendHandle,
  PeerChange,
  PeerLike,
  RequestOptions,
  RpcHandle,
} from "./protocol_handle.ts";
import type { ValidatorNetwork } from "./validator_network.ts";

/** The protocol of consensus messages (DirectSend, high priority). */
export const CONSENSUS_DIRECT_SEND = "/validator/consensus/direct-send/1.0.0";
/** The protocol of block requests (RPC, high priority). */
export const CONSENSUS_RPC = "/validator/consensus/rpc/1.0.0";

/** What the consensus handle's `events` yield. */
export type ConsensusEvent =
  | PeerChange
  | { readonly type: "message"; readonly peer: PeerId; readonly message: ConsensusMessage }
  | {
    readonly type: "block-request";
    readonly peer: PeerId;
    readonly request: BlockRequest;
    /** Answers with blocks. */
    respond(response: BlockResponse): Promise<void>;
    /** Fails the request (`REMOTE_ERROR` on the requester's side). */
    reject(error: string | Error): Promise<void>;
  };

/**
 * Consensus over a {@linkcode ValidatorNetwork}: `net.consensus`.
 *
 * @example
 * ```ts ignore
 * await net.consensus.broadcast({ message: { case: "vote", value: { slot: 1n, height: 1n } } });
 * for await (const ev of net.consensus.events) {
 *   if (ev.type === "message") console.log(ev.message.message.case);
 *   if (ev.type === "block-request") await ev.respond({ blocks: [] });
 * }
 * ```
 */
export class ConsensusHandle {
  readonly #messages: DirectSendHandle;
  readonly #blocks: RpcHandle;
  readonly #net: ValidatorNetwork;
  readonly #decodeMessages: TypedDecoder;
  readonly #decodeBlocks: TypedDecoder;
  #events: AsyncIterable<ConsensusEvent> | undefined;

  /** Registers the consensus protocols on `net` (use `net.consensus`). */
  constructor(net: ValidatorNetwork, metrics: Metrics, logger: Logger) {
    this.#net = net;
    this.#messages = net.register(CONSENSUS_DIRECT_SEND, { kind: "direct-send", priority: "high" });
    this.#blocks = net.register(CONSENSUS_RPC, { kind: "rpc", priority: "high" });
    const max = net.limits.maxMessageSize;
    this.#decodeMessages = new TypedDecoder(CONSENSUS_DIRECT_SEND, max, metrics, logger);
    this.#decodeBlocks = new TypedDecoder(CONSENSUS_RPC, max, metrics, logger);
  }

  /**
   * Sends `message` to `peer` (ordered after our earlier ones to it).
   *
   * @throws {NetworkError} as `DirectSendHandle.sendTo`
   */
  sendTo(peer: PeerLike, message: ConsensusMessage): Promise<void> {
    return this.#messages.sendTo(peer, encode(message));
  }

  /** Sends `message` to every connected validator at once: each peer's outcome. */
  broadcast(message: ConsensusMessage): Promise<Map<string, NetworkError | undefined>> {
    return this.#messages.broadcast(encode(message));
  }

  /**
   * Asks `peer` for committed blocks.
   *
   * @throws {NetworkError} as `RpcHandle.request`; `PROTOCOL_VIOLATION` for a response that does not decode
   */
  async requestBlocks(
    peer: PeerLike,
    request: BlockRequest,
    options: RequestOptions = {},
  ): Promise<BlockResponse> {
    const bytes = toBinary(BlockRequestSchema, create(BlockRequestSchema, request));
    const reply = await this.#blocks.request(peer, bytes, options);
    return decodeMessage(BlockResponseSchema, reply, { maxBytes: this.#net.limits.maxMessageSize });
  }

  /** Peers coming and going, consensus messages and block requests. One consumer. */
  get events(): AsyncIterable<ConsensusEvent> {
    this.#events ??= this.#stream();
    return this.#events;
  }

  async *#stream(): AsyncGenerator<ConsensusEvent> {
    const messages = async (signal: AbortSignal): Promise<ConsensusEvent | undefined> => {
      while (true) {
        const ev = await this.#messages.receive({ signal });
        if (ev === undefined) return undefined;
        const message = this.#decodeMessages.decode(ConsensusMsgSchema, ev.message, ev.peer);
        if (message !== undefined) return { type: "message", peer: ev.peer, message };
      }
    };
    const requests = async (signal: AbortSignal): Promise<ConsensusEvent | undefined> => {
      while (true) {
        const ev = await this.#blocks.receive({ signal });
        if (ev === undefined) return undefined;
        const request = this.#decodeBlocks.decode(BlockRequestSchema, ev.request, ev.peer);
        if (request === undefined) {
          await ev.reject("malformed block request").catch(() => {});
          continue;
        }
        return {
          type: "block-request",
          peer: ev.peer,
          request,
          respond: (response) =>
            ev.respond(toBinary(BlockResponseSchema, create(BlockResponseSchema, response))),
          reject: ev.reject,
        };
      }
    };
    yield* mergeEvents(this.#net.subscribe(), [messages, requests]);
  }
}

function encode(message: ConsensusMessage): Uint8Array {
  return toBinary(ConsensusMsgSchema, create(ConsensusMsgSchema, message));
}
