/**
 * A consensus demo over {@linkcode ValidatorNetwork}: an example of using the
 * API (`net.consensus`, `net.mempool`), kept small and readable, not a
 * consensus protocol. It tolerates crash faults only: votes are not signed,
 * so one lying validator breaks it.
 *
 * How it runs:
 *
 * - Slots are leader turns: validators sorted by peer id text, `leader(s)`
 *   is `sorted[s % n]`. The leader of a slot proposes once: a block at our
 *   committed height + 1 on our head, with the certificate (QC) of the head.
 * - A validator that accepts a proposal votes for the block, at most one
 *   block per height (the safety rule), and sends its vote to the next
 *   leader. The vote is persisted (`vote.json` in `dataDir`) before it is
 *   sent, so a restart cannot vote twice at one height.
 * - 2f+1 votes for a block (n = validators, f = floor((n - 1) / 3)) are a
 *   QC: the block is committed, and the next leader proposes on it. A
 *   proposal's QC commits the parent at everyone else; a validator that
 *   lacks blocks fetches them from the proposer, 100 a request.
 * - A slot that passes `slotTimeout` (1.5x longer per consecutive timeout,
 *   up to 4x) ends in a broadcast `Timeout` carrying our vote at the next
 *   height. f+1 timeouts of a slot pull everyone into the next one; 2f+1
 *   let its leader propose, re-proposing the block most voted for (2f+1
 *   votes carried by timeouts are a QC too).
 * - Transactions: generated every `txInterval`, pushed to the other
 *   validators every 200 ms, kept in a bounded pool until committed.
 *
 * Everything runs on the event loop without awaiting in between, so no two
 * messages interleave; sends are fire-and-forget with their errors counted.
 *
 * @module
 */

import { createHash } from "node:crypto";
import { create, toBinary } from "@bufbuild/protobuf";
import type { PeerId } from "../../netcore/identity/peer_id.ts";
import type { Logger } from "../../netcore/log.ts";
import type { Metric, Metrics, Series } from "../../netcore/metrics.ts";
import { fromHex } from "../_hex.ts";
import type { ConsensusEvent } from "../consensus.ts";
import type { MempoolEvent } from "../mempool.ts";
import type { Block, ConsensusMessage, Proposal, QuorumCert, Timeout, Vote } from "../messages.ts";
// The block's encoding is what its hash covers: the one place the demo needs the wire format.
import { BlockSchema } from "../proto/_gen/consensus_pb.ts";
import type { ValidatorNetwork } from "../validator_network.ts";

/**
 * Options of {@linkcode ConsensusDemo}.
 *
 * @example
 * ```ts ignore
 * const options: ConsensusDemoOptions = {
 *   net,
 *   logger: rootLogger,
 *   metrics: net.metrics.scope({ network: net.networkId }),
 *   slotTimeout: 500,
 *   dataDir: "/var/lib/validator",
 * };
 * ```
 */
export interface ConsensusDemoOptions {
  /** The network; create the demo before `net.start()` so its protocols are served at once. */
  net: ValidatorNetwork;
  /** Where `commit` lines go (`info`). */
  logger: Logger;
  /** Where the `consensus_demo_*` metrics go: a scope with the network label. */
  metrics: Metrics;
  /** How long a slot waits for progress, ms. Default 1_000. */
  slotTimeout?: number;
  /** Where the last vote is persisted (`vote.json`). Default: nowhere (no persistence). */
  dataDir?: string;
  /** Ms between locally generated transactions. Default 100. */
  txInterval?: number;
  /** Most transactions in a block. Default 100. */
  maxBlockTxs?: number;
  /**
   * The least time between a commit and the next proposal, ms: the chain's
   * pace when all is well (without it, blocks follow as fast as round trips
   * allow). Default 100.
   */
  blockInterval?: number;
}

const DEFAULTS = { slotTimeout: 1_000, txInterval: 100, maxBlockTxs: 100, blockInterval: 100 };
const ZERO_HASH = "00".repeat(32);
const EMPTY_CERT: QuorumCert = { height: 0n, blockHash: new Uint8Array(0), voters: [] };
/** Blocks a request asks for and a response holds, at most. */
const MAX_FETCH = 100;
const MAX_POOL = 10_000;
/** Proposals and voted blocks held above our height (a bound, not a tuning). */
const MAX_PENDING = 1_000;
const BATCH_INTERVAL = 200;

type Message = Exclude<ConsensusMessage["message"], { case: undefined }>;
/** Who voted for one block; `slot` is the latest slot of votes sent to us as its next leader. */
type VoteTally = { height: number; voters: Set<string>; slot?: number };

/**
 * One validator of the demo chain over `net`. It owns `net.consensus` and
 * `net.mempool` events: one demo per network.
 *
 * @example
 * ```ts
 * import { ConsensusDemo } from "./consensus_demo.ts";
 * import { Logger, ValidatorKeys, ValidatorNetwork } from "../../mod.ts";
 * const keys = ValidatorKeys.generate();
 * await using net = new ValidatorNetwork({ keys, networkId: "solo", validators: [keys.info()] });
 * const metrics = net.metrics.scope({ network: "solo" });
 * const demo = new ConsensusDemo({ net, logger: new Logger({}, "error"), metrics });
 * await net.start();
 * demo.start();
 * while (demo.height < 3) await new Promise((r) => setTimeout(r, 10));
 * console.log(demo.chain().length >= 3); // true
 * await demo.stop();
 * ```
 */
export class ConsensusDemo {
  readonly #net: ValidatorNetwork;
  readonly #log: Logger;
  readonly #o: typeof DEFAULTS & { dataDir?: string };
  readonly #me: string;
  readonly #m: Record<
    "height" | "proposals" | "votes" | "timeouts" | "dropped" | "accepted",
    Series
  >;
  readonly #errors: Metric;
  // The validator set: by peer id text, and sorted (leader order).
  readonly #ids = new Map<string, PeerId>();
  #sorted: string[] = [];
  #f = 0;
  #quorum = 1;
  // The committed chain, and the QC of its head (what the next proposal carries).
  readonly #blocks: Block[] = [];
  readonly #hashes: string[] = [];
  #headCert = EMPTY_CERT;
  // Slots: ours, the last we proposed in, the one a QC or 2f+1 timeouts let us propose in, the
  // last we sent a timeout for, timeouts in a row (the timer grows), who timed out each slot.
  #slot = 0;
  #proposed = -1;
  #justified = -1;
  #timeoutSent = -1;
  #streak = 0;
  readonly #timeouts = new Map<number, Set<string>>();
  // Votes: ours by height, the last one persisted, everyone's by block hash.
  readonly #voted = new Map<number, Block>();
  #lastVote: { height: number; hash: string } | undefined;
  readonly #votes = new Map<string, VoteTally>();
  readonly #pending = new Map<string, Block>();
  #syncing = false;
  #stashed: { from: string; proposal: Proposal } | undefined;
  // Transactions by hex; committed ones are remembered so a late copy is not re-added.
  readonly #pool = new Map<string, Uint8Array>();
  readonly #committedTxs = new Set<string>();
  #outbox: Uint8Array[] = [];
  #txCount = 0n;
  // Lifecycle.
  #state: "new" | "running" | "stopped" = "new";
  readonly #abort = new AbortController();
  #timer: ReturnType<typeof setTimeout> | undefined;
  /** Holds a proposal back until `blockInterval` after the last commit. */
  #paceTimer: ReturnType<typeof setTimeout> | undefined;
  #lastCommitAt = 0;
  readonly #intervals: ReturnType<typeof setInterval>[] = [];
  readonly #tasks = new Set<Promise<unknown>>();

  /**
   * A demo that does nothing until {@linkcode ConsensusDemo.start}; it
   * registers the consensus and mempool protocols on `net` now.
   *
   * @throws {RangeError} naming the option that is not a positive integer
   */
  constructor(options: ConsensusDemoOptions) {
    const { net, logger, metrics: m } = options;
    this.#o = {
      slotTimeout: options.slotTimeout ?? DEFAULTS.slotTimeout,
      txInterval: options.txInterval ?? DEFAULTS.txInterval,
      maxBlockTxs: options.maxBlockTxs ?? DEFAULTS.maxBlockTxs,
      blockInterval: options.blockInterval ?? DEFAULTS.blockInterval,
      dataDir: options.dataDir,
    };
    for (const key of ["slotTimeout", "txInterval", "maxBlockTxs"] as const) {
      const value = this.#o[key];
      if (!Number.isSafeInteger(value) || value < 1) throw new RangeError(`${key}: expected > 0`);
    }
    this.#net = net;
    this.#log = logger;
    this.#me = net.peerId.toString();
    // Registered now, before the network starts, they are served from the first connection.
    void net.consensus;
    void net.mempool;
    this.#m = {
      height: m.gauge("consensus_demo_committed_height", "Last committed height").labels(),
      proposals: m.counter("consensus_demo_proposals_total", "Blocks proposed").labels(),
      votes: m.counter("consensus_demo_votes_total", "Votes cast").labels(),
      timeouts: m.counter("consensus_demo_timeouts_total", "Slot timeouts sent").labels(),
      dropped: m.counter("consensus_demo_mempool_dropped_total", "Txs a full pool refused")
        .labels(),
      accepted: m.counter("consensus_demo_txs_accepted_total", "Txs peers took").labels(),
    };
    this.#errors = m.counter("consensus_demo_send_errors_total", "Failed sends", ["message"]);
  }

  /** The committed height (0 before the first block). */
  get height(): number {
    return this.#blocks.length;
  }

  /** The hash of the last committed block, hex (64 zeros before the first). */
  get headHash(): string {
    return this.#hashes.at(-1) ?? ZERO_HASH;
  }

  /** The committed blocks' hashes (hex), by height: index 0 is height 1. A copy. */
  chain(): readonly string[] {
    return [...this.#hashes];
  }

  /**
   * Reads the persisted vote, then runs: slots, event loops, transactions.
   *
   * @throws {Error} when `vote.json` exists but cannot be read (voting
   *   without it could vote twice at a height)
   */
  start(): void {
    if (this.#state !== "new") return;
    this.#lastVote = this.#loadVote();
    this.#state = "running";
    for (const id of this.#net.validators) this.#ids.set(id.toString(), id);
    this.#sorted = [...this.#ids.keys()].sort();
    this.#f = Math.floor((this.#sorted.length - 1) / 3);
    this.#quorum = 2 * this.#f + 1;
    this.#spawn(this.#consume(this.#net.consensus.events, (ev) => this.#onConsensus(ev)));
    this.#spawn(this.#consume(this.#net.mempool.events, (ev) => this.#onMempool(ev)));
    this.#intervals.push(
      setInterval(() => this.#generateTx(), this.#o.txInterval),
      setInterval(() => this.#flushTxs(), BATCH_INTERVAL),
    );
    this.#armTimer();
    this.#justified = 0; // slot 0 needs no QC: its leader proposes the first block
    this.#tryPropose();
  }

  /** Stops timers and loops, cancels requests in flight; resolves when all ended. */
  async stop(): Promise<void> {
    this.#state = "stopped";
    this.#abort.abort();
    clearTimeout(this.#timer);
    clearTimeout(this.#paceTimer);
    for (const id of this.#intervals) clearInterval(id);
    while (this.#tasks.size > 0) await Promise.allSettled([...this.#tasks]);
  }

  // ---- events ---------------------------------------------------------------

  /** Feeds `events` to `handle` until stopped; a handler's error is logged, not thrown. */
  async #consume<T>(events: AsyncIterable<T>, handle: (ev: T) => void): Promise<void> {
    const it = events[Symbol.asyncIterator]();
    // The generator cannot be returned while it waits, so race it with stop.
    const stopped = new Promise<undefined>((resolve) =>
      this.#abort.signal.addEventListener("abort", () => resolve(undefined), { once: true })
    );
    while (this.#state === "running") {
      const next = await Promise.race([it.next(), stopped]);
      if (next === undefined || next.done) return;
      try {
        handle(next.value);
      } catch (err) {
        this.#log.error("consensus demo: event failed", { err });
      }
    }
  }

  #onConsensus(ev: ConsensusEvent): void {
    if (ev.type === "block-request") {
      const from = Math.max(1, Number(ev.request.fromHeight));
      const count = Math.min(MAX_FETCH, ev.request.count);
      const blocks = this.#blocks.slice(from - 1, from - 1 + count);
      this.#spawn(ev.respond({ blocks }).catch(() => this.#failed("blocks")));
      return;
    }
    // Peers coming and going need nothing: lost messages end in timeouts.
    if (ev.type !== "message" || !this.#ids.has(ev.peer.toString())) return;
    const from = ev.peer.toString();
    const m = ev.message.message;
    if (m.case === "proposal") this.#onProposal(from, m.value);
    else if (m.case === "vote") this.#onVote(from, m.value);
    else if (m.case === "timeout") this.#onTimeout(from, m.value);
  }

  #onProposal(from: string, proposal: Proposal, slotHint?: number): void {
    const block = proposal.block;
    const cert = proposal.parentCert ?? EMPTY_CERT;
    if (block === undefined || block.height !== cert.height + 1n) return;
    const parent = cert.height === 0n ? ZERO_HASH : hex(cert.blockHash);
    if (hex(block.parentHash) !== parent || (cert.height > 0n && !this.#isQuorum(cert))) return;
    const hash = hashOf(block);
    this.#remember(hash, block);
    if (!this.#learnCert(cert, from)) {
      if (this.#syncing) this.#stashed = { from, proposal }; // handled again once synced
      return;
    }
    this.#tryCertify(hash); // votes may have come before the block
    const slot = slotHint ?? this.#slotOf(from, block);
    if (slot === undefined || slot < this.#slot) return;
    this.#enter(slot);
    this.#vote(slot, block, hash);
  }

  /**
   * The slot of `from`'s proposal of `block`. A fresh block names it; a
   * re-proposed block keeps its first slot (its hash must not change) and
   * `Proposal` has no slot of its own, so it is taken to be ours or the
   * next when `from` leads it; never further, so a late re-proposal cannot
   * pull us ahead of everyone.
   */
  #slotOf(from: string, block: Block): number | undefined {
    const first = Number(block.slot);
    if (first >= this.#slot && this.#leader(first) === from) return first;
    return [this.#slot, this.#slot + 1].find((s) => s > first && this.#leader(s) === from);
  }

  #onVote(from: string, vote: Vote): void {
    const slot = Number(vote.slot);
    if (vote.height <= BigInt(this.height) || this.#leader(slot + 1) !== this.#me) return;
    const hash = hex(vote.blockHash);
    const entry = this.#addVote(hash, Number(vote.height), from);
    if (entry !== undefined) entry.slot = Math.max(entry.slot ?? 0, slot);
    this.#tryCertify(hash);
  }

  #onTimeout(from: string, timeout: Timeout): void {
    if (timeout.highCert !== undefined && this.#isQuorum(timeout.highCert)) {
      this.#learnCert(timeout.highCert, from);
    }
    if (timeout.voted !== undefined) {
      // The same vote as the one sent to the leader, not a new one: 2f+1 of them are a QC.
      const hash = hashOf(timeout.voted);
      this.#remember(hash, timeout.voted);
      this.#addVote(hash, Number(timeout.voted.height), from);
      this.#tryCertify(hash);
    }
    const slot = Number(timeout.slot);
    if (slot < this.#slot - 1) return;
    const senders = this.#timeouts.get(slot) ?? new Set();
    this.#timeouts.set(slot, senders.add(from));
    if (senders.size >= this.#f + 1 && slot >= this.#slot) {
      // Someone honest gave up on it: follow, and say so, so the next leader gets 2f+1.
      this.#advance(slot);
      this.#sendTimeout(slot);
    }
    if (senders.size >= this.#quorum) this.#justify(slot + 1);
  }

  // ---- chain ----------------------------------------------------------------

  /**
   * Whether our chain holds the block `cert` certifies, after committing
   * up to it from the proposals we hold when they chain to our head; if
   * they do not, a sync from `from` starts.
   */
  #learnCert(cert: QuorumCert, from: string): boolean {
    const height = Number(cert.height);
    if (height <= this.height) {
      if (height === 0 || this.#hashes[height - 1] === hex(cert.blockHash)) return true;
      this.#log.error("consensus demo: certificate conflicts with the chain", { height });
      return false;
    }
    // Ancestors of a certified block are committed: its voters had them as their head.
    const chain: [string, Block][] = [];
    let hash = hex(cert.blockHash);
    for (let h = height; h > this.height; h--) {
      const block = this.#pending.get(hash);
      if (block === undefined || Number(block.height) !== h) break;
      chain.unshift([hash, block]);
      hash = hex(block.parentHash);
    }
    if (chain.length === height - this.height && hash === this.headHash) {
      for (const [h, block] of chain) this.#commit(block, h);
      this.#headCert = cert;
      return true;
    }
    if (!this.#syncing) this.#spawn(this.#sync(from, cert));
    return false;
  }

  /** Fetches committed blocks from `peer` up to `cert`'s, in pages of {@linkcode MAX_FETCH}. */
  async #sync(peer: string, cert: QuorumCert): Promise<void> {
    this.#syncing = true;
    const start = this.height;
    const target = Number(cert.height);
    const timeout = Math.max(1_000, 4 * this.#o.slotTimeout);
    try {
      while (this.height < target && this.#state === "running") {
        const { blocks } = await this.#net.consensus.requestBlocks(
          peer,
          { fromHeight: BigInt(this.height + 1), count: Math.min(MAX_FETCH, target - this.height) },
          { timeout, signal: this.#abort.signal },
        );
        if (blocks.length === 0) break;
        for (const block of blocks) {
          // Votes may have committed some meanwhile.
          if (Number(block.height) <= this.height) continue;
          if (Number(block.height) !== this.height + 1 || hex(block.parentHash) !== this.headHash) {
            throw new Error(`block ${block.height} from ${peer} does not chain to ours`);
          }
          this.#commit(block, hashOf(block));
        }
      }
      if (this.height === target && this.headHash === hex(cert.blockHash)) this.#headCert = cert;
    } catch (err) {
      this.#failed("blocks");
      if (this.#state === "running") this.#log.warn("consensus demo: sync failed", { peer, err });
    } finally {
      this.#syncing = false;
    }
    const stashed = this.#stashed;
    this.#stashed = undefined;
    // Only after progress: an unreachable peer would otherwise be asked again at once.
    if (stashed !== undefined && this.height > start && this.#state === "running") {
      this.#onProposal(stashed.from, stashed.proposal);
    }
    this.#tryPropose();
  }

  /** Commits `block` if 2f+1 votes for `hash` are in and it extends our head. */
  #tryCertify(hash: string): void {
    const entry = this.#votes.get(hash);
    const block = this.#pending.get(hash);
    if (entry === undefined || block === undefined || entry.voters.size < this.#quorum) return;
    if (Number(block.height) !== this.height + 1 || hex(block.parentHash) !== this.headHash) return;
    this.#commit(block, hash);
    this.#headCert = {
      height: block.height,
      blockHash: fromHex(hash, "hash"),
      voters: [...entry.voters].map((v) => this.#ids.get(v)!.bytes),
    };
    // Votes sent to us as the next leader: propose in that slot.
    if (entry.slot !== undefined) this.#justify(entry.slot + 1);
  }

  #commit(block: Block, hash: string): void {
    this.#blocks.push(block);
    this.#hashes.push(hash);
    const height = this.height;
    for (const tx of block.transactions) {
      const key = hex(tx);
      this.#pool.delete(key);
      this.#committedTxs.add(key);
    }
    this.#streak = 0;
    for (const h of this.#voted.keys()) if (h <= height) this.#voted.delete(h);
    for (const [k, b] of this.#pending) if (Number(b.height) <= height) this.#pending.delete(k);
    for (const [k, v] of this.#votes) if (v.height <= height) this.#votes.delete(k);
    this.#lastCommitAt = performance.now();
    this.#log.info("commit", { height, hash });
    this.#m.height.set(height);
  }

  // ---- slots, proposals, votes ---------------------------------------------

  #leader(slot: number): string {
    return this.#sorted[slot % this.#sorted.length];
  }

  /** Moves to `slot` (never back), restarting the slot timer. */
  #enter(slot: number): void {
    if (slot <= this.#slot) return;
    this.#slot = slot;
    for (const s of this.#timeouts.keys()) if (s < slot - 1) this.#timeouts.delete(s);
    this.#armTimer();
  }

  /** Leaves `slot` on a timeout (ours or f+1 others'): the next timer is longer. */
  #advance(slot: number): void {
    if (slot + 1 <= this.#slot) return;
    this.#streak++;
    this.#enter(slot + 1);
  }

  #armTimer(): void {
    clearTimeout(this.#timer);
    if (this.#state !== "running") return;
    const ms = this.#o.slotTimeout * Math.min(4, 1.5 ** this.#streak);
    const slot = this.#slot;
    this.#timer = setTimeout(() => {
      this.#sendTimeout(slot);
      this.#advance(slot);
    }, ms);
  }

  /** A QC or 2f+1 timeouts let the leader of `slot` propose in it. */
  #justify(slot: number): void {
    if (this.#leader(slot) !== this.#me || slot < this.#slot) return;
    this.#enter(slot);
    this.#justified = slot;
    this.#tryPropose();
  }

  #tryPropose(): void {
    const slot = this.#slot;
    if (this.#leader(slot) !== this.#me || this.#proposed >= slot) return;
    if (this.#justified !== slot || this.#syncing || this.#state !== "running") return;
    if (Number(this.#headCert.height) !== this.height) return; // nothing certified to build on
    const wait = this.#lastCommitAt + this.#o.blockInterval - performance.now();
    if (wait > 0) {
      this.#paceTimer ??= setTimeout(() => {
        this.#paceTimer = undefined;
        this.#tryPropose();
      }, wait);
      return;
    }
    this.#proposed = slot;
    const block: Block = this.#mostVoted(this.height + 1) ?? {
      height: BigInt(this.height + 1),
      slot: BigInt(slot),
      parentHash: fromHex(this.headHash, "head"),
      proposer: this.#net.peerId.bytes,
      transactions: [...this.#pool.values()].slice(0, this.#o.maxBlockTxs),
    };
    const proposal: Proposal = { block, parentCert: this.#headCert };
    this.#m.proposals.inc();
    this.#broadcast({ case: "proposal", value: proposal });
    this.#onProposal(this.#me, proposal, slot);
  }

  /** The block at `height` with most votes we heard of: re-proposed, since voters cannot change. */
  #mostVoted(height: number): Block | undefined {
    let best: { block: Block; votes: number } | undefined;
    for (const [hash, entry] of this.#votes) {
      const block = this.#pending.get(hash);
      if (entry.height !== height || block === undefined) continue;
      if (hex(block.parentHash) !== this.headHash) continue;
      if (best === undefined || entry.voters.size > best.votes) {
        best = { block, votes: entry.voters.size };
      }
    }
    return best?.block;
  }

  #vote(slot: number, block: Block, hash: string): void {
    const height = Number(block.height);
    if (!this.#ids.has(this.#me)) return; // not a validator: follow only
    if (height !== this.height + 1 || hex(block.parentHash) !== this.headHash) return;
    // The safety rule: one block per height, across restarts too.
    const last = this.#lastVote ?? { height: 0, hash: "" };
    if (height < last.height || (height === last.height && hash !== last.hash)) return;
    if (height !== last.height) {
      try {
        this.#saveVote(height, hash);
      } catch (err) {
        this.#log.error("consensus demo: cannot persist the vote, not voting", { err });
        return;
      }
      this.#lastVote = { height, hash };
    }
    this.#voted.set(height, block);
    this.#m.votes.inc();
    const vote: Vote = {
      slot: BigInt(slot),
      height: block.height,
      blockHash: fromHex(hash, "hash"),
    };
    const next = this.#leader(slot + 1);
    // To ourselves (we lead the next slot) on a later turn: in a set of one, a direct call would
    // recurse from commit to proposal to vote forever.
    if (next === this.#me) setTimeout(() => this.#state === "running" && this.#onVote(next, vote));
    else this.#sendTo(next, { case: "vote", value: vote });
  }

  #sendTimeout(slot: number): void {
    if (slot <= this.#timeoutSent || !this.#ids.has(this.#me)) return;
    this.#timeoutSent = slot;
    const timeout: Timeout = {
      slot: BigInt(slot),
      voted: this.#voted.get(this.height + 1),
      highCert: this.#headCert,
    };
    this.#m.timeouts.inc();
    this.#broadcast({ case: "timeout", value: timeout });
    this.#onTimeout(this.#me, timeout);
  }

  #addVote(hash: string, height: number, voter: string): VoteTally | undefined {
    if (height <= this.height) return undefined;
    let entry = this.#votes.get(hash);
    if (entry === undefined) {
      if (this.#votes.size >= MAX_PENDING) return undefined;
      entry = { height, voters: new Set() };
      this.#votes.set(hash, entry);
    }
    entry.voters.add(voter);
    return entry;
  }

  #remember(hash: string, block: Block): void {
    if (Number(block.height) > this.height && this.#pending.size < MAX_PENDING) {
      this.#pending.set(hash, block);
    }
  }

  /** Whether `cert` names 2f+1 distinct validators (no signatures: crash faults only). */
  #isQuorum(cert: QuorumCert): boolean {
    const voters = new Set(cert.voters.map(hex));
    return [...this.#ids.values()].filter((id) => voters.has(hex(id.bytes))).length >= this.#quorum;
  }

  // ---- persistence ----------------------------------------------------------

  #loadVote(): { height: number; hash: string } | undefined {
    if (this.#o.dataDir === undefined) return undefined;
    const path = `${this.#o.dataDir}/vote.json`;
    let vote;
    try {
      vote = JSON.parse(Deno.readTextFileSync(path));
    } catch (err) {
      if (err instanceof Deno.errors.NotFound) return undefined;
      throw new Error(`${path}: cannot read the last vote`, { cause: err });
    }
    if (!Number.isSafeInteger(vote?.height) || !/^[0-9a-f]{64}$/.test(vote?.hash)) {
      throw new Error(`${path}: expected {"height": <integer>, "hash": "<64 hex digits>"}`);
    }
    return { height: vote.height, hash: vote.hash };
  }

  /** Writes the vote before it leaves: a crash after sending must still remember it. */
  #saveVote(height: number, hash: string): void {
    if (this.#o.dataDir === undefined) return;
    // Write then rename, so a crash mid-write leaves the previous vote, not half a file.
    const path = `${this.#o.dataDir}/vote.json`;
    Deno.writeTextFileSync(`${path}.tmp`, JSON.stringify({ height, hash }));
    Deno.renameSync(`${path}.tmp`, path);
  }

  // ---- transactions ---------------------------------------------------------

  #onMempool(ev: MempoolEvent): void {
    if (ev.type !== "transactions") return;
    let accepted = 0;
    for (const tx of ev.batch.transactions) if (this.#addTx(tx)) accepted++;
    this.#spawn(ev.ack({ accepted }).catch(() => this.#failed("ack")));
  }

  #addTx(tx: Uint8Array): boolean {
    const key = hex(tx);
    if (this.#pool.has(key) || this.#committedTxs.has(key)) return false;
    if (this.#pool.size >= MAX_POOL) {
      this.#m.dropped.inc();
      return false;
    }
    this.#pool.set(key, tx);
    return true;
  }

  /** 32 bytes: the end of our peer id, a counter, random bytes (unique, and whose is visible). */
  #generateTx(): void {
    const tx = new Uint8Array(32);
    tx.set(this.#net.peerId.bytes.subarray(-8));
    new DataView(tx.buffer).setBigUint64(8, ++this.#txCount);
    crypto.getRandomValues(tx.subarray(16));
    if (this.#addTx(tx)) this.#outbox.push(tx);
  }

  #flushTxs(): void {
    if (this.#outbox.length === 0) return;
    const transactions = this.#outbox;
    this.#outbox = [];
    for (const peer of this.#sorted) {
      if (peer === this.#me || !this.#net.isConnected(peer)) continue;
      const options = { signal: this.#abort.signal, timeout: 2_000 };
      this.#spawn(
        this.#net.mempool.broadcastTransactions(peer, { transactions }, options).then(
          (ack) => this.#m.accepted.inc(ack.accepted),
          () => this.#failed("transactions"),
        ),
      );
    }
  }

  // ---- sending --------------------------------------------------------------

  #broadcast(message: Message): void {
    // Not tracked: a full queue may hold it; stop() must not wait for peers.
    void this.#net.consensus.broadcast({ message }).then((results) => {
      for (const err of results.values()) if (err !== undefined) this.#failed(message.case);
    });
  }

  #sendTo(peer: string, message: Message): void {
    this.#net.consensus.sendTo(peer, { message }).catch(() => this.#failed(message.case));
  }

  #failed(message: string): void {
    this.#errors.labels({ message }).inc();
  }

  #spawn(task: Promise<unknown>): void {
    const tracked = task.catch((err) => this.#log.error("consensus demo: task failed", { err }))
      .finally(() => this.#tasks.delete(tracked));
    this.#tasks.add(tracked);
  }
}

function hashOf(block: Block): string {
  return createHash("sha256").update(toBinary(BlockSchema, create(BlockSchema, block))).digest(
    "hex",
  );
}

function hex(bytes: Uint8Array): string {
  let out = "";
  for (const b of bytes) out += b.toString(16).padStart(2, "0");
  return out;
}
