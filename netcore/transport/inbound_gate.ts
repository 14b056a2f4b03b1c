/**
 * Admission of inbound connections before their upgrade: how many may be
 * upgrading at once, in total and per remote address, how fast one address
 * may open new ones, and how long a connection may stay silent before its
 * first handshake message.
 *
 * The listener never stops accepting. Past a cap, the pending upgrade that
 * has made the least progress (no byte received yet, the oldest first) is
 * shed to make room: a listener that stopped accepting instead would let a
 * few hundred idle sockets, reopened every few seconds from one address,
 * keep every legitimate peer in the kernel's queue, without sending a byte.
 *
 * @module
 */

import { type Metric, type Metrics, perScope, type Series } from "../metrics.ts";
import type { Multiaddr } from "../multiaddr.ts";
import { NetworkError } from "../network_error.ts";
import { ForwardingConnection } from "./byte_connection.ts";
import type { Connection } from "./connection.ts";

/** Limits on inbound connections. Defaults in {@linkcode INBOUND_LIMITS_DEFAULTS}. */
export interface InboundLimits {
  /** Inbound connections upgrading at once, in total; past it one is shed. Default 256. */
  maxPending?: number;
  /** Inbound connections upgrading at once from one remote address (IP); past it one of them is shed. Default 64. */
  maxPendingPerAddress?: number;
  /** How long a new connection may stay silent before its first byte, in ms; then it is closed. Default 3_000. */
  firstMessageTimeout?: number;
  /** New connections per second one remote address may open, sustained; beyond it they are closed at once. Default 200. */
  newConnectionsPerSecond?: number;
  /** New connections one remote address may open in a burst. Default 2_000. */
  newConnectionsBurst?: number;
}

/** The defaults of {@linkcode InboundLimits}. */
export const INBOUND_LIMITS_DEFAULTS: Readonly<Required<InboundLimits>> = {
  maxPending: 256,
  maxPendingPerAddress: 64,
  firstMessageTimeout: 3_000,
  newConnectionsPerSecond: 200,
  newConnectionsBurst: 2_000,
};

/** Rate buckets kept before full ones are forgotten. */
const MAX_BUCKETS = 4096;

const gateMetrics = perScope((metrics: Metrics) => ({
  pending: metrics.gauge(
    "validator_network_pending_inbound_upgrades",
    "Inbound connections being upgraded, over all listeners",
  ).labels() as Series,
  refused: metrics.counter(
    "validator_network_inbound_refused_total",
    "Inbound connections closed before or during their upgrade by a limit, by reason",
    ["reason"],
  ) as Metric,
}));

/** The remote address's host: its IP, or `memory` for in-memory connections. */
function hostOf(addr: Multiaddr): string {
  return addr.tcpEndpoint()?.hostname ?? "memory";
}

/**
 * An inbound connection being upgraded, as the gate sees it: whether any
 * byte arrived yet (progress) and since when it waits.
 */
class PendingInbound extends ForwardingConnection {
  readonly host: string;
  readonly since = performance.now();
  /** Bytes received so far, counted until the first arrived (that is all the gate asks). */
  received = 0;
  #silence: ReturnType<typeof setTimeout> | undefined;

  constructor(conn: Connection, host: string, silence: number, onSilent: () => void) {
    super(conn);
    this.host = host;
    this.#silence = setTimeout(onSilent, silence);
  }

  // Past the first byte, reads go straight through: the connection keeps
  // this wrapper for its life, and a quiet one always has a read pending.

  override read(): Promise<Uint8Array | null> {
    if (this.received > 0) return this.inner.read();
    return this.inner.read().then((chunk) => {
      if (chunk !== null) this.#progress(chunk.length);
      return chunk;
    });
  }

  override readInto(buffer: Uint8Array): Promise<number | null> {
    if (this.received > 0) return this.inner.readInto(buffer);
    return this.inner.readInto(buffer).then((n) => {
      if (n !== null) this.#progress(n);
      return n;
    });
  }

  #progress(n: number): void {
    this.received += n;
    this.stopTimer();
  }

  stopTimer(): void {
    if (this.#silence !== undefined) {
      clearTimeout(this.#silence);
      this.#silence = undefined;
    }
  }
}

/** Whether `a` made less progress than `b`: silent ones first, then the oldest. */
function lessProgress(a: PendingInbound, b: PendingInbound): boolean {
  const aSilent = a.received === 0;
  if (aSilent !== (b.received === 0)) return aSilent;
  return a.since < b.since;
}

/**
 * Admits inbound connections within {@linkcode InboundLimits}, counting
 * every refusal in `validator_network_inbound_refused_total{reason}`
 * (`rate_limit`, `shed`, `first_message_timeout`, `backlog`).
 *
 * @example
 * ```ts ignore
 * const gate = new InboundGate({ maxPending: 128 }, metrics);
 * const admitted = gate.admit(raw); // undefined: refused and closed
 * if (admitted !== undefined) upgrade(admitted).finally(() => gate.release(admitted));
 * ```
 */
export class InboundGate {
  readonly #limits: Required<InboundLimits>;
  readonly #pending = new Set<PendingInbound>();
  readonly #perHost = new Map<string, number>();
  readonly #buckets = new Map<string, { tokens: number; at: number }>();
  readonly #metrics: { pending: Series; refused: Metric };

  /** A gate with `limits`, counting into `metrics`. */
  constructor(limits: InboundLimits, metrics: Metrics) {
    this.#limits = { ...INBOUND_LIMITS_DEFAULTS, ...limits };
    this.#metrics = gateMetrics(metrics);
  }

  /** Connections upgrading now. */
  get pending(): number {
    return this.#pending.size;
  }

  /**
   * Refuses (and counts, reason `backlog`) an upgraded connection that
   * nobody has taken yet when `waiting` connections already wait: the
   * listener's consumer stalled. Returns whether it was refused.
   */
  refuseBacklog(conn: { abort(reason?: unknown): void }, waiting: number): boolean {
    if (waiting < this.#limits.maxPending) return false;
    this.#metrics.refused.labels({ reason: "backlog" }).inc();
    conn.abort(new NetworkError("LIMIT_EXCEEDED", `${waiting} upgraded connections not taken`));
    return true;
  }

  /**
   * Admits `conn` for its upgrade: the connection to upgrade (it watches the
   * first byte), or `undefined` when it was refused and closed. Admitting it
   * may shed another pending connection.
   */
  admit(conn: Connection): Connection | undefined {
    const host = hostOf(conn.remoteAddr);
    if (!this.#takeToken(host)) {
      this.#refuse(conn, "rate_limit", `${host} opens connections too fast`);
      return undefined;
    }
    if ((this.#perHost.get(host) ?? 0) >= this.#limits.maxPendingPerAddress) {
      this.#shed((p) => p.host === host);
    }
    if (this.#pending.size >= this.#limits.maxPending) this.#shed(() => true);
    const silence = this.#limits.firstMessageTimeout;
    const pending: PendingInbound = new PendingInbound(conn, host, silence, () => {
      this.#refuse(pending, "first_message_timeout", `no byte within ${silence} ms`);
    });
    this.#pending.add(pending);
    this.#perHost.set(host, (this.#perHost.get(host) ?? 0) + 1);
    this.#metrics.pending.inc();
    return pending;
  }

  /** The upgrade of an admitted connection ended, whichever way. */
  release(admitted: Connection): void {
    const pending = admitted as PendingInbound;
    if (!this.#pending.delete(pending)) return;
    pending.stopTimer();
    const left = (this.#perHost.get(pending.host) ?? 1) - 1;
    if (left === 0) this.#perHost.delete(pending.host);
    else this.#perHost.set(pending.host, left);
    this.#metrics.pending.dec();
  }

  /** Closes every pending connection (the listener closed). */
  close(reason: NetworkError): void {
    for (const pending of [...this.#pending]) {
      this.release(pending);
      pending.abort(reason);
    }
  }

  /** Sheds the pending connection, among those `which` selects, that made the least progress. */
  #shed(which: (p: PendingInbound) => boolean): void {
    let victim: PendingInbound | undefined;
    for (const p of this.#pending) {
      if (which(p) && (victim === undefined || lessProgress(p, victim))) victim = p;
    }
    if (victim !== undefined) this.#refuse(victim, "shed", "shed for a newer connection");
  }

  #refuse(conn: Connection, reason: string, message: string): void {
    this.#metrics.refused.labels({ reason }).inc();
    if (conn instanceof PendingInbound) this.release(conn);
    conn.abort(new NetworkError("LIMIT_EXCEEDED", `inbound connection refused: ${message}`));
  }

  /** Takes a token from `host`'s bucket; false when it is empty. */
  #takeToken(host: string): boolean {
    const { newConnectionsPerSecond: rate, newConnectionsBurst: burst } = this.#limits;
    const now = performance.now();
    let bucket = this.#buckets.get(host);
    if (bucket === undefined) {
      if (this.#buckets.size >= MAX_BUCKETS) this.#forgetFullBuckets(now);
      bucket = { tokens: burst, at: now };
      this.#buckets.set(host, bucket);
    } else {
      bucket.tokens = Math.min(burst, bucket.tokens + ((now - bucket.at) / 1000) * rate);
      bucket.at = now;
    }
    if (bucket.tokens < 1) return false;
    bucket.tokens -= 1;
    return true;
  }

  /** Drops buckets that have refilled (a full bucket is what a new one starts as). */
  #forgetFullBuckets(now: number): void {
    const { newConnectionsPerSecond: rate, newConnectionsBurst: burst } = this.#limits;
    for (const [host, bucket] of this.#buckets) {
      if (bucket.tokens + ((now - bucket.at) / 1000) * rate >= burst) this.#buckets.delete(host);
    }
    // Every address is mid-burst: forget the oldest rather than grow.
    if (this.#buckets.size >= MAX_BUCKETS) {
      this.#buckets.delete(this.#buckets.keys().next().value!);
    }
  }
}
