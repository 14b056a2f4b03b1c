/**
 * The mempool handle (Libra's `MempoolNetworkSender` and
 * `MempoolNetworkEvents`): batches of transactions pushed to one peer by
 * RPC and acknowledged by its mempool, in the normal priority class
 * (`validator/proto/mempool.proto`).
 *
 * @module
 */

import { create, toBinary } from "@bufbuild/protobuf";
import type { PeerId } from "../netcore/identity/peer_id.ts";
import type { Logger } from "../netcore/log.ts";
import type { Metrics } from "../netcore/metrics.ts";
import { decodeMessage } from "../netcore/proto/decode_message.ts";
import { TransactionAckSchema, TransactionBatchSchema } from "./proto/_gen/mempool_pb.ts";
import type { TransactionAck, TransactionBatch } from "./messages.ts";
import { mergeEvents } from "./_merge.ts";
import { TypedDecoder } from "./_typed.ts";
import type { PeerChange, PeerLike, RequestOptions, RpcHandle } from "./protocol_handle.ts";
import type { ValidatorNetwork } from "./validator_network.ts";

/** The protocol of transaction batches (RPC, normal priority). */
export const MEMPOOL_RPC = "/validator/mempool/rpc/1.0.0";

/** What the mempool handle's `events` yield: acknowledge each batch once. */
export type MempoolEvent =
  | PeerChange
  | {
    readonly type: "transactions";
    readonly peer: PeerId;
    readonly batch: TransactionBatch;
    /** Acknowledges the batch (its `batchId` is filled in). */
    ack(ack?: { accepted?: number; retry?: boolean }): Promise<void>;
  };

/**
 * The mempool over a {@linkcode ValidatorNetwork}: `net.mempool`.
 *
 * @example
 * ```ts ignore
 * const ack = await net.mempool.broadcastTransactions(peer, { batchId: 1n, transactions: [tx] });
 * for await (const ev of net.mempool.events) {
 *   if (ev.type === "transactions") await ev.ack({ accepted: ev.batch.transactions.length });
 * }
 * ```
 */
export class MempoolHandle {
  readonly #rpc: RpcHandle;
  readonly #net: ValidatorNetwork;
  readonly #decode: TypedDecoder;
  #nextBatch = 1n;
  #events: AsyncIterable<MempoolEvent> | undefined;

  /** Registers the mempool protocol on `net` (use `net.mempool`). */
  constructor(net: ValidatorNetwork, metrics: Metrics, logger: Logger) {
    this.#net = net;
    this.#rpc = net.register(MEMPOOL_RPC, { kind: "rpc", priority: "normal" });
    this.#decode = new TypedDecoder(MEMPOOL_RPC, net.limits.maxMessageSize, metrics, logger);
  }

  /**
   * Sends a batch of transactions to `peer`; resolves with its
   * acknowledgement. A `batchId` of 0 (or none) is given the next id.
   *
   * @throws {NetworkError} as `RpcHandle.request`; `PROTOCOL_VIOLATION` for an acknowledgement that does not decode
   */
  async broadcastTransactions(
    peer: PeerLike,
    batch: { batchId?: bigint; transactions: Uint8Array[] },
    options: RequestOptions = {},
  ): Promise<TransactionAck> {
    const message = create(TransactionBatchSchema, batch);
    if (message.batchId === 0n) message.batchId = this.#nextBatch++;
    const reply = await this.#rpc.request(peer, toBinary(TransactionBatchSchema, message), options);
    return decodeMessage(TransactionAckSchema, reply, { maxBytes: 1024 });
  }

  /** Peers coming and going, and batches to acknowledge. One consumer. */
  get events(): AsyncIterable<MempoolEvent> {
    this.#events ??= this.#stream();
    return this.#events;
  }

  async *#stream(): AsyncGenerator<MempoolEvent> {
    const batches = async (signal: AbortSignal): Promise<MempoolEvent | undefined> => {
      while (true) {
        const ev = await this.#rpc.receive({ signal });
        if (ev === undefined) return undefined;
        const batch = this.#decode.decode(TransactionBatchSchema, ev.request, ev.peer);
        if (batch === undefined) {
          await ev.reject("malformed transaction batch").catch(() => {});
          continue;
        }
        return {
          type: "transactions",
          peer: ev.peer,
          batch,
          ack: (ack = {}) =>
            ev.respond(
              toBinary(
                TransactionAckSchema,
                create(TransactionAckSchema, {
                  batchId: batch.batchId,
                  accepted: ack.accepted ?? 0,
                  retry: ack.retry ?? false,
                }),
              ),
            ),
        };
      }
    };
    yield* mergeEvents(this.#net.subscribe(), [batches]);
  }
}
