/**
 * Test helpers for `ValidatorNetwork`: clusters of validators over a fresh
 * memory network (fixed `/memory/N` ports, known before start) or over
 * loopback TCP (port 0, then the real addresses through an epoch change),
 * a quiet logger, polling with a deadline, and reading handle events with
 * a deadline.
 */

import { MemoryNetwork } from "../memsocket/mod.ts";
import { delay } from "../netcore/_async.ts";
import { Logger } from "../netcore/log.ts";
import type { Labels, MetricsRegistry } from "../netcore/metrics.ts";
import type { NetworkTimeouts } from "../validator/config.ts";
import { type ValidatorInfo, ValidatorKeys } from "../validator/validator_keys.ts";
import { ValidatorNetwork, type ValidatorNetworkOptions } from "../validator/validator_network.ts";

/** Only errors reach the test output. */
export const quiet = new Logger({}, "error");

/** Timeouts that make a cluster converge in test time. */
export const FAST: NetworkTimeouts = { backoffInitial: 100, backoffMax: 1000 };

/** Polls `condition` every 10 ms for up to `ms`; fails naming `what` otherwise. */
export async function until(
  condition: () => boolean,
  what: string,
  ms = 10_000,
): Promise<void> {
  const end = performance.now() + ms;
  while (!condition()) {
    if (performance.now() > end) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await delay(10);
  }
}

/** The sum of the series of `name` whose labels include `labels` (0 when none). */
export function metricValue(registry: MetricsRegistry, name: string, labels: Labels = {}): number {
  let total = 0;
  for (const entry of registry.find(name)?.entries() ?? []) {
    if (Object.entries(labels).every(([k, v]) => entry.labels[k] === v)) total += entry.value;
  }
  return total;
}

/** `promise`'s outcome if it settles within `ms`, else `"pending"`. */
export async function within<T>(
  promise: Promise<T>,
  ms: number,
): Promise<{ value: T } | { error: unknown } | "pending"> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<"pending">((resolve) => {
    timer = setTimeout(() => resolve("pending"), ms);
  });
  try {
    return await Promise.race([
      promise.then((value) => ({ value }), (error) => ({ error })),
      timeout,
    ]);
  } finally {
    clearTimeout(timer);
  }
}

/**
 * Reads a handle's `events` with deadlines. A `next()` that lost the race
 * to a deadline is kept and awaited first by the next read, so no event is
 * lost between reads.
 */
export class EventReader<E> {
  readonly #it: AsyncIterator<E>;
  #pending: Promise<IteratorResult<E>> | undefined;

  /** Starts reading at once (as a `for await` would): a handle subscribes to peer events then. */
  constructor(events: AsyncIterable<E>) {
    this.#it = events[Symbol.asyncIterator]();
    this.#pending = this.#it.next();
    this.#pending.catch(() => {});
  }

  /** The next event within `ms`, `undefined` at the end, `"timeout"` when none came. */
  async next(ms: number): Promise<E | undefined | "timeout"> {
    const pending = this.#pending ?? this.#it.next();
    this.#pending = pending;
    const got = await within(pending, ms);
    if (got === "pending") return "timeout";
    this.#pending = undefined;
    if ("error" in got) throw got.error;
    return got.value.done ? undefined : got.value.value;
  }

  /** The first event `match` maps to a value, within `ms`. */
  async find<T>(match: (event: E) => T | undefined, what: string, ms = 5_000): Promise<T> {
    const end = performance.now() + ms;
    while (true) {
      const left = end - performance.now();
      const ev = left > 0 ? await this.next(left) : "timeout";
      if (ev === "timeout") throw new Error(`timed out after ${ms} ms waiting for ${what}`);
      if (ev === undefined) throw new Error(`events ended before ${what}`);
      const value = match(ev);
      if (value !== undefined) return value;
    }
  }

  /** Every event that arrives within `ms` (the reader stays usable). */
  async drain(ms: number): Promise<E[]> {
    const out: E[] = [];
    const end = performance.now() + ms;
    while (true) {
      const left = end - performance.now();
      if (left <= 0) return out;
      const ev = await this.next(left);
      if (ev === "timeout" || ev === undefined) return out;
      out.push(ev);
    }
  }
}

/** The connections of `nets` among themselves, as `self>peer:direction:connection` lines. */
function snapshot(nets: readonly ValidatorNetwork[]): string[] {
  return nets.flatMap((net) =>
    net.manager.peers().map((p) => `${net.peerId}>${p.peerId}:${p.direction}:${p.connectionId}`)
  ).sort();
}

/** Whether both ends of every connection among `nets` agree on it and no dial is in flight. */
function agreed(nets: readonly ValidatorNetwork[]): boolean {
  const byId = new Map(nets.map((n) => [n.peerId.toString(), n]));
  return nets.every((net) =>
    net.manager.peers().every((p) => {
      const other = byId.get(p.peerId.toString());
      if (other === undefined) return true;
      if (net.manager.isDialing(p.peerId)) return false;
      const back = other.manager.peers().find((q) => q.peerId.equals(net.peerId));
      // (Each end has its own connection id: the directions tell whether it is the same one.)
      return back !== undefined && back.direction !== p.direction;
    })
  );
}

/**
 * Resolves once the connections among `nets` are settled: both ends of
 * each keep the same connection, no dial between them is in flight, and
 * nothing changed for 100 ms.
 */
export async function settled(nets: readonly ValidatorNetwork[], ms = 10_000): Promise<void> {
  const end = performance.now() + ms;
  let last = "";
  let since = performance.now();
  while (true) {
    const now = snapshot(nets).join("\n");
    if (now !== last || !agreed(nets)) {
      last = now;
      since = performance.now();
    } else if (performance.now() - since >= 100) {
      return;
    }
    if (performance.now() > end) throw new Error(`connections not settled after ${ms} ms`);
    await delay(10);
  }
}

/** Options every network of a cluster shares (besides keys, listen and validators). */
export type ClusterOptions =
  & Partial<
    Omit<ValidatorNetworkOptions, "keys" | "listen" | "validators" | "networkId">
  >
  & { networkId?: string };

/**
 * Validators that know each other: `keys[i]`, `infos[i]` (its set entry),
 * `nets[i]` (not started until `start()`). Disposing stops every network.
 */
export class Cluster implements AsyncDisposable {
  readonly keys: ValidatorKeys[];
  readonly infos: ValidatorInfo[];
  readonly nets: ValidatorNetwork[];
  readonly memory: MemoryNetwork | undefined;
  /** Other networks a test made and wants stopped with the cluster. */
  readonly extra: ValidatorNetwork[] = [];

  constructor(
    keys: ValidatorKeys[],
    infos: ValidatorInfo[],
    nets: ValidatorNetwork[],
    memory: MemoryNetwork | undefined,
  ) {
    this.keys = keys;
    this.infos = infos;
    this.nets = nets;
    this.memory = memory;
  }

  /** Starts every network. */
  async start(): Promise<void> {
    await Promise.all(this.nets.map((n) => n.start()));
  }

  /** Resolves once every network lists every other as a peer. */
  async fullMesh(ms = 10_000): Promise<void> {
    const n = this.nets.length;
    await until(
      () => this.nets.every((net) => net.peers().length === n - 1),
      `a full mesh of ${n} (peer counts: ${this.nets.map((x) => x.peers().length)})`,
      ms,
    );
  }

  /**
   * Resolves once the mesh is full and settled: both ends of every pair
   * keep the same connection, no dial is in flight, and nothing changed
   * for 100 ms. (When validators dial each other at once, each end first
   * lists the connection it accepted, and one of the two is replaced a few
   * ms later.)
   */
  async settledMesh(ms = 10_000): Promise<void> {
    await this.fullMesh(ms);
    await settled(this.nets, ms);
  }

  /** Stops every network (also the extra ones). */
  async [Symbol.asyncDispose](): Promise<void> {
    await Promise.allSettled([...this.nets, ...this.extra].map((n) => n.stop()));
  }
}

/**
 * `n` validators on a fresh memory network, validator `i` listening on
 * `/memory/(i + 1)` (the set carries those addresses before start).
 */
export function memoryCluster(n: number, options: ClusterOptions = {}): Cluster {
  const memory = options.memory ?? new MemoryNetwork();
  const keys = Array.from({ length: n }, () => ValidatorKeys.generate());
  const infos = keys.map((k, i) => k.info([`/memory/${i + 1}`]));
  const nets = keys.map((k, i) =>
    new ValidatorNetwork({
      networkId: "test",
      timeouts: FAST,
      logger: quiet,
      ...options,
      memory,
      keys: k,
      listen: [`/memory/${i + 1}`],
      validators: infos,
    })
  );
  return new Cluster(keys, infos, nets, memory);
}

/**
 * `n` validators on loopback TCP: each listens on port 0 with a set of
 * entries without addresses, then, once all listen, every one gets the set
 * with the real addresses (an epoch change that only adds addresses).
 */
export async function tcpCluster(n: number, options: ClusterOptions = {}): Promise<Cluster> {
  const keys = Array.from({ length: n }, () => ValidatorKeys.generate());
  const bare = keys.map((k) => k.info([]));
  const nets = keys.map((k) =>
    new ValidatorNetwork({
      networkId: "test",
      timeouts: FAST,
      logger: quiet,
      ...options,
      keys: k,
      listen: ["/ip4/127.0.0.1/tcp/0"],
      validators: bare,
    })
  );
  const cluster = new Cluster(keys, bare, nets, undefined);
  try {
    await cluster.start();
    const infos = nets.map((net, i) => keys[i].info(net.listenAddrs));
    cluster.infos.splice(0, n, ...infos);
    await Promise.all(nets.map((net) => net.updateValidatorSet(infos)));
  } catch (err) {
    await cluster[Symbol.asyncDispose]();
    throw err;
  }
  return cluster;
}
