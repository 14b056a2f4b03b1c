/**
 * The connectivity manager: given the eligible set (the validators of the
 * current epoch: peer id, static key, addresses), keeps a connection to
 * each of them (after Libra's `connectivity_manager`).
 *
 * - A change of the set acts at once: new peers are dialed immediately
 *   (Aptos waits for its next 5 s tick), peers that left are disconnected
 *   (reason `stale`) and their dials in flight cancelled, and the trusted
 *   set of the validator profile is replaced in the same call, so a removed
 *   validator's handshake arriving after it fails with `UNAUTHORIZED`.
 * - A failed dial is retried with exponential backoff (2 s doubling to
 *   60 s, plus up to 100 ms of jitter, all options); each attempt tries the
 *   peer's addresses in turn. New addresses for a peer (from the set or
 *   from discovery) reset its backoff and dial at once.
 * - A lost peer is dialed again at once, then with backoff.
 * - Optionally (`dialGrace`), of two eligible peers that learn of each
 *   other at the same moment, the one with the greater peer id dials at once
 *   and the other only after the grace if still not connected: the
 *   simultaneous-dial rule keeps one of the two connections anyway, and
 *   when a whole network comes up at once every pair races otherwise,
 *   doubling the handshakes.
 *
 * @module
 */

import type { PeerId } from "../identity/peer_id.ts";
import { type Logger, rootLogger } from "../log.ts";
import { defaultMetrics, type Metric, type Metrics } from "../metrics.ts";
import type { Multiaddr } from "../multiaddr.ts";
import { NetworkError } from "../network_error.ts";
import type { TrustedPeerSet } from "../noise/trusted_peers.ts";
import type { PeerEventStream } from "./peer_events.ts";
import type { PeerManager } from "./peer_manager.ts";

/**
 * One member of the eligible set.
 *
 * @example
 * ```ts ignore
 * const entry: EligiblePeer = { peerId, noiseKey, addrs: [Multiaddr.parse("/ip4/10.0.0.2/tcp/7000")] };
 * ```
 */
export interface EligiblePeer {
  /** The peer. */
  readonly peerId: PeerId;
  /** Its static X25519 key, for the validator profile's trusted set. */
  readonly noiseKey?: Uint8Array;
  /** Where to dial it (without `/p2p/`: the manager adds it). */
  readonly addrs: readonly Multiaddr[];
}

/** Backoff of failed dials. Defaults in {@linkcode CONNECTIVITY_DEFAULTS}. */
export interface BackoffSchedule {
  /** The delay after the first failure, in ms. Default 2_000. */
  initial?: number;
  /** The largest delay, in ms. Default 60_000. */
  max?: number;
  /** Growth per failure. Default 2. */
  factor?: number;
  /** Up to this many ms added at random to each delay. Default 100. */
  jitter?: number;
}

/** Options for {@linkcode ConnectivityManager}. */
export interface ConnectivityManagerOptions {
  /** The peer manager that dials and owns the connections. */
  manager: PeerManager;
  /**
   * The validator profile's trusted set, replaced with the eligible set's
   * keys whenever it changes. Omit for the libp2p profile.
   */
  trustedPeers?: TrustedPeerSet;
  /** The backoff of failed dials. */
  backoff?: BackoffSchedule;
  /**
   * How long the peer with the smaller peer id waits before its first dial
   * of a newly eligible (or newly addressed) peer, in ms: the other side
   * dials at once. 0 (the default) makes both dial at once, as a set
   * change asks; a deployment that brings many nodes up at once (a
   * testnet, the scale bench) sets a few hundred ms. Default 0.
   */
  dialGrace?: number;
  /**
   * At most this many dials in flight; the others wait for a slot, in the
   * order they were due. A handshake costs both ends CPU, and a node that
   * starts every dial of a large set at once (or a process holding many
   * nodes, as the scale bench does) can have so many in flight that they
   * time out faster than they finish, and each retry adds to the pile. Default 32.
   */
  maxConcurrentDials?: number;
  /** Random numbers in [0, 1), for the jitter. Default `Math.random`. */
  random?: () => number;
  /** Hears of every dial attempt: for logs and tests. */
  onDial?: (peer: PeerId, attempt: number) => void;
  /** Where dials and backoffs are counted. Default `defaultMetrics`. */
  metrics?: Metrics;
  /** The logger. Default `rootLogger`. */
  logger?: Logger;
}

/** The defaults of {@linkcode BackoffSchedule}. */
export const CONNECTIVITY_DEFAULTS: Readonly<Required<BackoffSchedule>> = {
  initial: 2_000,
  max: 60_000,
  factor: 2,
  jitter: 100,
};

/**
 * Where the manager stands with one eligible peer: `connected`; `dialing`;
 * `backoff` (waiting to dial again after failures, or the grace of the
 * peer with the smaller id); `idle` (not connected and no dial planned: no
 * address known yet, or the manager is closed).
 */
export type ConnectivityState = "connected" | "dialing" | "backoff" | "idle";

/** What the manager knows about one eligible peer. */
interface Target {
  peer: PeerId;
  addrs: Multiaddr[];
  /** Failed dials in a row. */
  failures: number;
  timer: ReturnType<typeof setTimeout> | undefined;
  dial: AbortController | undefined;
}

/** Lexicographic order of two peer ids' bytes. */
function compareIds(a: PeerId, b: PeerId): number {
  const x = a.bytes;
  const y = b.bytes;
  for (let i = 0; i < Math.min(x.length, y.length); i++) if (x[i] !== y[i]) return x[i] - y[i];
  return x.length - y.length;
}

function sameAddrs(a: readonly Multiaddr[], b: readonly Multiaddr[]): boolean {
  return a.length === b.length && a.every((addr, i) => addr.toString() === b[i].toString());
}

/**
 * Keeps a connection to every peer of the eligible set.
 *
 * @example
 * ```ts ignore
 * const connectivity = new ConnectivityManager({ manager, trustedPeers });
 * connectivity.start();
 * connectivity.setEligible(validators.filter((v) => !v.peerId.equals(manager.peerId)));
 * ```
 */
export class ConnectivityManager {
  readonly #manager: PeerManager;
  readonly #trusted: TrustedPeerSet | undefined;
  readonly #backoff: Required<BackoffSchedule>;
  readonly #random: () => number;
  readonly #dialGrace: number;
  readonly #maxConcurrentDials: number;
  /** Dials in flight. */
  #dialing = 0;
  /** Targets due for a dial, waiting for a slot (in the order they became due). */
  readonly #waiting = new Set<Target>();
  readonly #onDial: ((peer: PeerId, attempt: number) => void) | undefined;
  readonly #targets = new Map<string, Target>();
  readonly #log: Logger;
  readonly #dials: Metric;
  #events: PeerEventStream | undefined;
  #watching: Promise<void> | undefined;
  #closed = false;

  /** A manager that does nothing until {@linkcode ConnectivityManager.start}. */
  constructor(options: ConnectivityManagerOptions) {
    this.#manager = options.manager;
    this.#trusted = options.trustedPeers;
    this.#backoff = { ...CONNECTIVITY_DEFAULTS, ...options.backoff };
    this.#random = options.random ?? Math.random;
    this.#dialGrace = options.dialGrace ?? 0;
    this.#maxConcurrentDials = Math.max(1, options.maxConcurrentDials ?? 32);
    this.#onDial = options.onDial;
    this.#log = (options.logger ?? rootLogger).child({
      component: "connectivity",
      self: options.manager.peerId.toString(),
    });
    this.#dials = (options.metrics ?? defaultMetrics).counter(
      "validator_network_connectivity_dials_total",
      "Dials of eligible peers by the connectivity manager, by outcome",
      ["outcome"],
    );
  }

  /** Starts following the peer manager's events (lost peers are dialed again). */
  start(): void {
    if (this.#events !== undefined || this.#closed) return;
    this.#events = this.#manager.subscribe();
    this.#watching = this.#watch(this.#events);
  }

  /** The eligible peers. */
  get eligible(): PeerId[] {
    return [...this.#targets.values()].map((t) => t.peer);
  }

  /** Where the manager stands with `peer` (undefined: not eligible). */
  state(peer: PeerId): ConnectivityState | undefined {
    const target = this.#targets.get(peer.toString());
    if (target === undefined) return undefined;
    if (this.#manager.isConnected(peer)) return "connected";
    if (target.dial !== undefined || this.#waiting.has(target)) return "dialing";
    if (target.timer !== undefined) return "backoff";
    return "idle";
  }

  /**
   * Replaces the eligible set (our own entry is ignored). Acts at once:
   * trust follows the set, peers that left are disconnected and their dials
   * cancelled, new peers are dialed, and a peer whose addresses changed is
   * dialed now with its backoff reset.
   */
  setEligible(peers: readonly EligiblePeer[]): void {
    if (this.#closed) return;
    const self = this.#manager.peerId;
    const next = new Map<string, EligiblePeer>();
    for (const p of peers) if (!p.peerId.equals(self)) next.set(p.peerId.toString(), p);
    if (this.#trusted !== undefined) {
      this.#trusted.replace(
        peers.filter((p) => p.noiseKey !== undefined).map((p) => [p.noiseKey!, p.peerId] as const),
      );
    }
    for (const [key, target] of this.#targets) {
      if (next.has(key)) continue;
      this.#targets.delete(key);
      this.#stop(target);
      this.#log.info("peer left the eligible set", { peer: key });
      void this.#manager.disconnect(target.peer, "stale");
    }
    for (const [key, p] of next) {
      const target = this.#targets.get(key);
      if (target === undefined) {
        const added: Target = {
          peer: p.peerId,
          addrs: [...p.addrs],
          failures: 0,
          timer: undefined,
          dial: undefined,
        };
        this.#targets.set(key, added);
        this.#connectFirst(added);
      } else if (!sameAddrs(target.addrs, p.addrs)) {
        this.#newAddresses(target, [...p.addrs]);
      }
    }
  }

  /**
   * Adds addresses learned for an eligible peer (from discovery): when they
   * are new, its backoff is reset and it is dialed now. Ignored for peers
   * outside the set.
   */
  addAddresses(peer: PeerId, addrs: readonly Multiaddr[]): void {
    const target = this.#targets.get(peer.toString());
    if (target === undefined || this.#closed) return;
    const known = new Set(target.addrs.map((a) => a.toString()));
    const fresh = addrs.filter((a) => !known.has(a.toString()));
    if (fresh.length === 0) return;
    this.#newAddresses(target, [...fresh, ...target.addrs]);
  }

  /** The addresses known for `peer`, in the order they are tried. */
  addresses(peer: PeerId): Multiaddr[] {
    return [...(this.#targets.get(peer.toString())?.addrs ?? [])];
  }

  #newAddresses(target: Target, addrs: Multiaddr[]): void {
    target.addrs = addrs;
    target.failures = 0;
    if (target.timer !== undefined) {
      clearTimeout(target.timer);
      target.timer = undefined;
    }
    this.#connectFirst(target);
  }

  /**
   * A first dial: at once when our peer id is the greater, else after the
   * grace (the peer's own dial usually connects us first).
   */
  #connectFirst(target: Target): void {
    if (this.#dialGrace > 0 && compareIds(this.#manager.peerId, target.peer) < 0) {
      if (target.dial === undefined && !this.#manager.isConnected(target.peer)) {
        this.#schedule(target, this.#dialGrace);
      }
      return;
    }
    this.#connect(target);
  }

  /** Dials `target` unless it is connected, being dialed, or has no address yet. */
  #connect(target: Target): void {
    if (this.#closed || target.dial !== undefined || target.addrs.length === 0) return;
    if (this.#manager.isConnected(target.peer)) {
      target.failures = 0;
      return;
    }
    if (this.#dialing >= this.#maxConcurrentDials) {
      this.#waiting.add(target);
      return;
    }
    this.#dialing++;
    const controller = new AbortController();
    target.dial = controller;
    const attempt = target.failures + 1;
    this.#onDial?.(target.peer, attempt);
    this.#manager.dial(target.peer, target.addrs, { signal: controller.signal }).then(
      () => {
        target.failures = 0;
        this.#dials.labels({ outcome: "ok" }).inc();
      },
      (err) => {
        if (controller.signal.aborted || this.#closed) return;
        target.failures++;
        const code = NetworkError.is(err) ? err.code : "BUG";
        this.#dials.labels({ outcome: code }).inc();
        const delay = this.#delay(target.failures);
        this.#log.debug("dial failed, backing off", {
          peer: target.peer.toString(),
          attempt,
          delay,
          code,
        });
        this.#schedule(target, delay);
      },
    ).finally(() => {
      if (target.dial === controller) target.dial = undefined;
      this.#dialing--;
      this.#nextWaiting();
    });
  }

  /** Dial slots are free: the longest-waiting targets still eligible get them. */
  #nextWaiting(): void {
    while (this.#dialing < this.#maxConcurrentDials && this.#waiting.size > 0) {
      const target: Target = this.#waiting.values().next().value!;
      this.#waiting.delete(target);
      if (this.#targets.get(target.peer.toString()) === target) this.#connect(target);
    }
  }

  /** The delay after `failures` failed dials in a row. */
  #delay(failures: number): number {
    const { initial, max, factor, jitter } = this.#backoff;
    const base = Math.min(max, initial * factor ** Math.max(0, failures - 1));
    return Math.round(base + jitter * this.#random());
  }

  #schedule(target: Target, delay: number): void {
    if (target.timer !== undefined) clearTimeout(target.timer);
    target.timer = setTimeout(() => {
      target.timer = undefined;
      if (this.#targets.get(target.peer.toString()) === target) this.#connect(target);
    }, delay);
  }

  #stop(target: Target): void {
    this.#waiting.delete(target);
    if (target.timer !== undefined) clearTimeout(target.timer);
    target.timer = undefined;
    target.dial?.abort(new NetworkError("ABORTED", `${target.peer} left the eligible set`));
    target.dial = undefined;
  }

  /** Lost eligible peers are dialed again at once (then with backoff if that fails). */
  async #watch(events: PeerEventStream): Promise<void> {
    for await (const event of events) {
      const target = this.#targets.get(event.peer.peerId.toString());
      if (target === undefined) continue;
      if (event.type === "new-peer") {
        // Connected (perhaps by the peer's own dial): no retry is due.
        target.failures = 0;
        this.#waiting.delete(target);
        if (target.timer !== undefined) clearTimeout(target.timer);
        target.timer = undefined;
      } else if (event.reason !== "replaced" && event.reason !== "stale") {
        this.#connect(target);
      }
    }
  }

  /** Stops dialing: cancels every timer and dial in flight. Connections stay (the peer manager owns them). */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    for (const target of this.#targets.values()) this.#stop(target);
    this.#waiting.clear();
    this.#events?.close();
    await this.#watching;
  }
}
