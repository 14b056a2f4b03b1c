/**
 * The health checker (after Libra's `protocols/health_checker`): every
 * `interval` it pings each connected peer that sent nothing since the last
 * round, with a `timeout`, and disconnects a peer (reason `health`) after
 * `failures` pings in a row went unanswered. Any traffic from the peer
 * counts as alive, so a busy connection costs no pings.
 *
 * Each round sends a ping of its own (with its own deadline) rather than
 * waiting for the previous one, so a silent peer is dropped within about
 * `interval * failures + timeout`. The pings are yamux Ping frames: they need no stream or protocol, both
 * profiles and js-libp2p answer them, and each answer feeds the session's
 * smoothed round trip, which the peer manager reports per peer
 * (`peersByLatency()`).
 *
 * @module
 */

import { Deadline } from "../_async.ts";
import type { PeerId } from "../identity/peer_id.ts";
import { type Logger, rootLogger } from "../log.ts";
import { defaultMetrics, type Metric, type Metrics } from "../metrics.ts";
import type { PeerManager } from "./peer_manager.ts";

/** Options for {@linkcode HealthChecker}. Defaults in {@linkcode HEALTH_CHECKER_DEFAULTS}. */
export interface HealthCheckerOptions {
  /** The peer manager whose peers are checked. */
  manager: PeerManager;
  /** How often each peer is checked, in ms. Default 10_000. */
  interval?: number;
  /** How long a ping may go unanswered, in ms. Default 20_000. */
  timeout?: number;
  /** Unanswered pings in a row before the peer is disconnected. Default 3. */
  failures?: number;
  /** Where pings and disconnections are counted. Default `defaultMetrics`. */
  metrics?: Metrics;
  /** The logger. Default `rootLogger`. */
  logger?: Logger;
}

/** The defaults of {@linkcode HealthCheckerOptions}. */
export const HEALTH_CHECKER_DEFAULTS = {
  interval: 10_000,
  timeout: 20_000,
  failures: 3,
} as const;

/** One peer's checks. */
interface Check {
  failures: number;
  /** The connection the failures were counted on (a new one starts afresh). */
  connectionId: number;
  /** When the last round looked at it (performance.now()). */
  lastRound: number;
  /** We dropped this connection: its other pings failing now mean nothing. */
  dropped: boolean;
}

/**
 * Pings the peer manager's peers and drops the ones that stop answering.
 *
 * @example
 * ```ts ignore
 * const health = new HealthChecker({ manager, interval: 10_000, timeout: 20_000, failures: 3 });
 * health.start();
 * // ... later
 * await health.close();
 * ```
 */
export class HealthChecker {
  readonly #manager: PeerManager;
  readonly #interval: number;
  readonly #timeout: number;
  readonly #maxFailures: number;
  readonly #checks = new Map<string, Check>();
  readonly #log: Logger;
  readonly #pings: Metric;
  readonly #pending = new Set<Promise<void>>();
  /** Cancels the pings in flight when the checker closes. */
  readonly #stop = new AbortController();
  #timer: ReturnType<typeof setInterval> | undefined;
  /** When the previous round ran (a peer first seen counts traffic since then). */
  #previousRound = performance.now();
  #closed = false;

  /** A checker that does nothing until {@linkcode HealthChecker.start}. */
  constructor(options: HealthCheckerOptions) {
    this.#manager = options.manager;
    this.#interval = options.interval ?? HEALTH_CHECKER_DEFAULTS.interval;
    this.#timeout = options.timeout ?? HEALTH_CHECKER_DEFAULTS.timeout;
    this.#maxFailures = options.failures ?? HEALTH_CHECKER_DEFAULTS.failures;
    this.#log = (options.logger ?? rootLogger).child({
      component: "health",
      self: options.manager.peerId.toString(),
    });
    this.#pings = (options.metrics ?? defaultMetrics).counter(
      "validator_network_health_checks_total",
      "Health checks of connected peers, by outcome (alive: traffic seen, ok, failed, disconnected)",
      ["outcome"],
    );
  }

  /** Starts the rounds. */
  start(): void {
    if (this.#timer !== undefined || this.#closed) return;
    this.#timer = setInterval(() => this.#round(), this.#interval);
  }

  /** Unanswered pings in a row for `peer` (0 when healthy or unknown). */
  failures(peer: PeerId): number {
    return this.#checks.get(peer.toString())?.failures ?? 0;
  }

  #round(): void {
    const now = performance.now();
    const previous = this.#previousRound;
    this.#previousRound = now;
    const seen = new Set<string>();
    for (const info of this.#manager.peers()) {
      const key = info.peerId.toString();
      seen.add(key);
      const conn = this.#manager.connection(info.peerId);
      if (conn === undefined) continue;
      let check = this.#checks.get(key);
      if (check === undefined || check.connectionId !== conn.id) {
        check = { failures: 0, connectionId: conn.id, lastRound: previous, dropped: false };
        this.#checks.set(key, check);
      }
      const lastRound = check.lastRound;
      check.lastRound = now;
      if (conn.lastReceived > lastRound) {
        // The peer spoke since the last round: alive, no ping needed.
        check.failures = 0;
        this.#pings.labels({ outcome: "alive" }).inc();
        continue;
      }
      // A ping every round, each with its own deadline, so a silent peer
      // fails `failures` of them within `interval * failures + timeout`.
      this.#ping(info.peerId, check);
    }
    for (const key of this.#checks.keys()) if (!seen.has(key)) this.#checks.delete(key);
  }

  #ping(peer: PeerId, check: Check): void {
    const conn = this.#manager.connection(peer);
    if (conn === undefined || conn.id !== check.connectionId) return;
    const deadline = new Deadline(this.#timeout, {
      what: `health check of ${peer}`,
      signal: this.#stop.signal,
    });
    const task = conn.ping({ signal: deadline.signal }).then(
      () => {
        check.failures = 0;
        this.#pings.labels({ outcome: "ok" }).inc();
      },
      (err) => {
        // A ping of a connection that is gone (closed, or dropped by an
        // earlier failure) says nothing about the peer's health.
        const current = this.#manager.connection(peer);
        if (
          this.#closed || check.dropped || current === undefined ||
          current.id !== check.connectionId
        ) {
          return;
        }
        check.failures++;
        this.#pings.labels({ outcome: "failed" }).inc();
        this.#log.debug("health check failed", {
          peer: peer.toString(),
          failures: check.failures,
          err,
        });
        if (check.failures < this.#maxFailures) return;
        this.#pings.labels({ outcome: "disconnected" }).inc();
        this.#log.warn("peer failed its health checks", {
          peer: peer.toString(),
          connection: check.connectionId,
          failures: check.failures,
        });
        check.dropped = true;
        this.#manager.markReason(peer, "health");
        // A peer that does not answer pings will not answer a GoAway either.
        current.abort(err);
      },
    ).finally(() => {
      deadline.clear();
      this.#pending.delete(task);
    });
    this.#pending.add(task);
  }

  /** Stops the rounds and cancels the pings in flight. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    if (this.#timer !== undefined) clearInterval(this.#timer);
    this.#timer = undefined;
    this.#stop.abort();
    await Promise.allSettled([...this.#pending]);
  }
}
