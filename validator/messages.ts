/**
 * The messages of the consensus and mempool handles, as plain types. On
 * the wire they are protobuf (`validator/proto/*.proto`); the handles encode
 * and decode them, so users need no protobuf runtime.
 *
 * @example
 * ```ts
 * import type { ConsensusMessage } from "./messages.ts";
 * const vote: ConsensusMessage = {
 *   message: { case: "vote", value: { slot: 3n, height: 2n, blockHash: new Uint8Array(32) } },
 * };
 * console.log(vote.message.case); // "vote"
 * ```
 *
 * @module
 */

/** A block: transactions on top of a parent. */
export interface Block {
  /** Its height (the first block is 1). */
  height: bigint;
  /** The slot (leader turn) it was proposed in. */
  slot: bigint;
  /** SHA-256 of the parent's encoding; 32 zero bytes for the first block. */
  parentHash: Uint8Array;
  /** The proposer's peer id (its bytes). */
  proposer: Uint8Array;
  /** The transactions. */
  transactions: Uint8Array[];
}

/** Who voted for a block: enough of them certify it. */
export interface QuorumCert {
  /** The block's height. */
  height: bigint;
  /** The block's hash. */
  blockHash: Uint8Array;
  /** The voters' peer ids (their bytes). */
  voters: Uint8Array[];
}

/** The leader's block of a slot, with the certificate of its parent. */
export interface Proposal {
  /** The block. */
  block?: Block;
  /** The certificate of its parent. */
  parentCert?: QuorumCert;
}

/** One validator's vote for a block. */
export interface Vote {
  /** The slot of the proposal. */
  slot: bigint;
  /** The block's height. */
  height: bigint;
  /** The block's hash. */
  blockHash: Uint8Array;
}

/** A validator gave up waiting for the leader of `slot`. */
export interface Timeout {
  /** The slot given up. */
  slot: bigint;
  /** The block it voted for last, if any. */
  voted?: Block;
  /** The highest certificate it knows. */
  highCert?: QuorumCert;
}

/** Any consensus message sent with DirectSend: one of proposal, vote, timeout. */
export interface ConsensusMessage {
  /** Which message, and its value. */
  message:
    | { case: "proposal"; value: Proposal }
    | { case: "vote"; value: Vote }
    | { case: "timeout"; value: Timeout }
    | { case: undefined; value?: undefined };
}

/** Asks for committed blocks `fromHeight` .. `fromHeight + count - 1`. */
export interface BlockRequest {
  /** The first height wanted. */
  fromHeight: bigint;
  /** How many blocks. */
  count: number;
}

/** Committed blocks in height order (fewer than asked when the responder has fewer). */
export interface BlockResponse {
  /** The blocks. */
  blocks: Block[];
}

/** Transactions pushed to a peer's mempool. */
export interface TransactionBatch {
  /** Chosen by the sender (0: the handle numbers it); the acknowledgement repeats it. */
  batchId: bigint;
  /** The transactions. */
  transactions: Uint8Array[];
}

/** The receiver's answer to a {@linkcode TransactionBatch}. */
export interface TransactionAck {
  /** The batch's id. */
  batchId: bigint;
  /** How many of its transactions the receiver took. */
  accepted: number;
  /** The receiver's mempool is full: send again later. */
  retry: boolean;
}
