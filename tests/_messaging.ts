/**
 * Test helpers for the messaging layer (DirectSend, RPC): peer managers on
 * one fresh memory network, in either security profile, recording into one
 * metrics registry (a scope per node); numbered messages; promise outcomes
 * observed without awaiting them.
 */

import { MemoryNetwork } from "../memsocket/mod.ts";
import { delay } from "../netcore/_async.ts";
import { Ed25519Identity } from "../netcore/identity/mod.ts";
import { Logger } from "../netcore/log.ts";
import { HistogramSeries, type Labels, type Metrics, MetricsRegistry } from "../netcore/metrics.ts";
import { Multiaddr } from "../netcore/multiaddr.ts";
import type { YamuxOptions } from "../netcore/multiplexing/yamux.ts";
import { NetworkError } from "../netcore/network_error.ts";
import { getCryptoBackend } from "../netcore/noise/crypto.ts";
import { TrustedPeerSet } from "../netcore/noise/trusted_peers.ts";
import { PeerManager } from "../netcore/peer/peer_manager.ts";
import { MemoryTransport } from "../netcore/transport/memory_transport.ts";
import { libp2pUpgrade } from "../netcore/upgrade/libp2p_upgrade.ts";
import { validatorUpgrade } from "../netcore/upgrade/validator_upgrade.ts";

/** The two security profiles. */
export type Profile = "libp2p" | "validator";
export const PROFILES: readonly Profile[] = ["libp2p", "validator"];

export const quiet = new Logger({}, "off");

/** Yamux options the tests may set on every connection of a {@linkcode Net}. */
export type TestYamuxOptions = Omit<YamuxOptions, "role" | "metrics" | "logger">;

/**
 * Peer managers on one memory network, all of one profile (validators share
 * one trusted set, which holds every node made here).
 */
export class Net {
  readonly registry = new MetricsRegistry();
  readonly network = new MemoryNetwork();
  readonly trusted = new TrustedPeerSet();
  readonly managers: PeerManager[] = [];
  readonly closers: (() => Promise<void>)[] = [];
  readonly profile: Profile;
  readonly #yamux: TestYamuxOptions;

  constructor(profile: Profile = "libp2p", yamux: TestYamuxOptions = {}) {
    this.profile = profile;
    this.#yamux = yamux;
  }

  /** The metrics scope of node `name`. */
  metrics(name: string): Metrics {
    return this.registry.scope({ network: name });
  }

  /** A listening manager whose metrics carry `network: name`. */
  async node(name: string): Promise<PeerManager> {
    const identity = Ed25519Identity.generate();
    const metrics = this.metrics(name);
    const common = { metrics, logger: quiet, yamux: this.#yamux };
    let upgrade;
    if (this.profile === "validator") {
      const key = getCryptoBackend().dh.generateKeyPair();
      this.trusted.set(key.publicKey, identity.peerId);
      upgrade = validatorUpgrade(key, {
        noise: { trustedPeers: this.trusted, networkId: "messaging-test" },
        ...common,
      });
    } else {
      upgrade = libp2pUpgrade(identity, common);
    }
    const manager = await PeerManager.create({
      identity,
      upgrade,
      listen: [Multiaddr.parse("/memory/0")],
      transports: [new MemoryTransport({ network: this.network })],
      metrics,
      logger: quiet,
    });
    this.managers.push(manager);
    return manager;
  }

  /** Dials `to` from `from`; returns once both ends adopted the connection. */
  async connect(from: PeerManager, to: PeerManager): Promise<void> {
    const conn = await from.dial(to.peerId, to.listenAddrs);
    if (conn.profile !== this.profile) throw new Error(`connected over ${conn.profile}`);
    await until(() => to.isConnected(from.peerId), "the dialed node to adopt the connection");
  }

  /** Runs `close` when the net closes (before the managers close). */
  defer(close: () => Promise<void>): void {
    this.closers.push(close);
  }

  /** The value of `name` in node `network`'s scope, summed over the series matching `labels`. */
  metric(network: string, name: string, labels: Labels = {}): number {
    let total = 0;
    for (const entry of this.registry.find(name)?.entries() ?? []) {
      const wanted: Labels = { network, ...labels };
      if (Object.entries(wanted).every(([k, v]) => entry.labels[k] === v)) total += entry.value;
    }
    return total;
  }

  /** The histogram series `name` of node `network` whose labels include `labels`, if recorded. */
  histogram(network: string, name: string, labels: Labels = {}): HistogramSeries | undefined {
    const wanted: Labels = { network, ...labels };
    for (const { labels: own, series } of this.registry.find(name)?.series() ?? []) {
      if (
        series instanceof HistogramSeries &&
        Object.entries(wanted).every(([k, v]) => own[k] === v)
      ) return series;
    }
    return undefined;
  }

  async close(): Promise<void> {
    for (const close of this.closers.splice(0).reverse()) await close();
    await Promise.all(this.managers.map((m) => m.close()));
  }
}

/** Runs `body` with a fresh {@linkcode Net}, closed afterwards whatever happens. */
export async function withNet(
  profile: Profile,
  body: (net: Net) => Promise<void>,
  yamux: TestYamuxOptions = {},
): Promise<void> {
  const net = new Net(profile, yamux);
  try {
    await body(net);
  } finally {
    await net.close();
  }
}

/** Polls `condition` every 5 ms for up to `ms`; fails naming `what` otherwise. */
export async function until(condition: () => boolean, what: string, ms = 5_000): Promise<void> {
  const end = performance.now() + ms;
  while (!condition()) {
    if (performance.now() > end) throw new Error(`timed out waiting for ${what}`);
    await delay(5);
  }
}

/**
 * Waits until `value()` stops changing for `quietMs` (checked every 10 ms,
 * for up to `ms`); returns the value it settled at.
 */
export async function settled(value: () => number, quietMs: number, ms = 5_000): Promise<number> {
  const end = performance.now() + ms;
  let last = value();
  let since = performance.now();
  while (performance.now() - since < quietMs) {
    if (performance.now() > end) throw new Error(`value still changing after ${ms} ms (${last})`);
    await delay(10);
    const now = value();
    if (now !== last) {
      last = now;
      since = performance.now();
    }
  }
  return last;
}

/** A message of `size` bytes (at least 4) starting with `seq` (big-endian u32), the rest a pattern of it. */
export function numbered(seq: number, size = 64): Uint8Array {
  const message = new Uint8Array(Math.max(4, size));
  new DataView(message.buffer).setUint32(0, seq);
  for (let i = 4; i < message.length; i++) message[i] = (seq + i) & 0xff;
  return message;
}

/** The sequence number of a {@linkcode numbered} message; throws when its body is not intact. */
export function seqOf(message: Uint8Array): number {
  const seq = new DataView(message.buffer, message.byteOffset, 4).getUint32(0);
  for (let i = 4; i < message.length; i++) {
    if (message[i] !== ((seq + i) & 0xff)) throw new Error(`message ${seq} corrupt at byte ${i}`);
  }
  return seq;
}

/** What became of a promise, observed without awaiting it. */
export class Outcome<T> {
  state: "pending" | "resolved" | "rejected" = "pending";
  value: T | undefined;
  error: unknown;
  /** Resolves (never rejects) once the promise settled. */
  readonly done: Promise<void>;

  constructor(promise: Promise<T>) {
    this.done = promise.then(
      (value) => {
        this.state = "resolved";
        this.value = value;
      },
      (error) => {
        this.state = "rejected";
        this.error = error;
      },
    );
  }

  /** The error code when it rejected with a `NetworkError`, else the state. */
  get code(): string {
    if (this.state !== "rejected") return this.state;
    return this.error instanceof NetworkError
      ? this.error.code
      : `not a NetworkError: ${this.error}`;
  }
}

/** Counts how many of `outcomes` are in `state`. */
export function count<T>(outcomes: readonly Outcome<T>[], state: Outcome<T>["state"]): number {
  let n = 0;
  for (const o of outcomes) if (o.state === state) n++;
  return n;
}

/** Milliseconds `work` took to settle, and its outcome. */
export async function timed<T>(work: Promise<T>): Promise<{ ms: number; outcome: Outcome<T> }> {
  const start = performance.now();
  const outcome = new Outcome(work);
  await outcome.done;
  return { ms: performance.now() - start, outcome };
}
