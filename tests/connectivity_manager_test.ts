/**
 * The connectivity manager against its spec: a connection to every peer of
 * the eligible set; missing peers dialed at once when the set changes;
 * failed dials retried with exponential backoff (initial * factor^n, capped,
 * plus `random() * jitter`); each attempt tries the addresses in turn; new
 * addresses reset the backoff; peers that left the set disconnected (reason
 * `stale`) with their dials cancelled; trust follows the set in the same
 * call, so a removed validator's handshakes are refused with `UNAUTHORIZED`.
 *
 * Every node runs the validator profile over a fresh `MemoryNetwork` (one
 * test over TCP on loopback), with its own metrics scope. Dial times are
 * recorded with `onDial` and compared with the schedule.
 */

import { MemoryNetwork } from "../memsocket/mod.ts";
import { Ed25519Identity, type PeerId } from "../netcore/identity/mod.ts";
import { Logger, type LogLevel } from "../netcore/log.ts";
import { type Metrics, MetricsRegistry } from "../netcore/metrics.ts";
import { Multiaddr } from "../netcore/multiaddr.ts";
import { getCryptoBackend, type KeyPair } from "../netcore/noise/crypto.ts";
import { TrustedPeerSet } from "../netcore/noise/trusted_peers.ts";
import {
  type BackoffSchedule,
  CONNECTIVITY_DEFAULTS,
  ConnectivityManager,
  type ConnectivityManagerOptions,
  type EligiblePeer,
  type PeerEvent,
  PeerManager,
} from "../netcore/peer/mod.ts";
import type { Connection } from "../netcore/transport/connection.ts";
import { MemoryTransport } from "../netcore/transport/memory_transport.ts";
import { TcpTransport } from "../netcore/transport/tcp_transport.ts";
import type { Transport } from "../netcore/transport/transport.ts";
import { validatorUpgrade } from "../netcore/upgrade/mod.ts";
import { assert, assertEquals } from "./_assert.ts";

// ---- fixtures -----------------------------------------------------------------

const quiet = new Logger({}, "off");

/** A validator's keys: its identity (peer id) and its static Noise key. */
interface Validator {
  identity: Ed25519Identity;
  noise: KeyPair;
}

function validator(): Validator {
  return { identity: Ed25519Identity.generate(), noise: getCryptoBackend().dh.generateKeyPair() };
}

/** Lexicographic order of two peer ids' bytes. */
function compareIds(a: PeerId, b: PeerId): number {
  const x = a.bytes;
  const y = b.bytes;
  for (let i = 0; i < Math.min(x.length, y.length); i++) if (x[i] !== y[i]) return x[i] - y[i];
  return x.length - y.length;
}

/**
 * `n` validators, the greatest peer id first. The simultaneous-dial rule
 * favours the dialer with the greater id, so tests whose subject is not the
 * first dial's timing give the node under test the greatest id.
 */
function validators(n: number): Validator[] {
  return Array.from({ length: n }, validator)
    .sort((a, b) => compareIds(b.identity.peerId, a.identity.peerId));
}

/** One validator's peer manager, its trusted set and its metrics. */
interface Node {
  v: Validator;
  peerId: PeerId;
  manager: PeerManager;
  trusted: TrustedPeerSet;
  metrics: Metrics;
  /** The listen address, without `/p2p/`. */
  addr: Multiaddr;
}

interface NodeOptions {
  /** The raw transport. Default: memory on `network`. */
  transport?: Transport<Connection>;
  /** Where to listen. Default `/memory/0`. */
  listen?: string;
  /** Dial time limit of the memory transport. */
  connectTimeout?: number;
  logger?: Logger;
}

async function startNode(
  network: MemoryNetwork,
  v: Validator,
  options: NodeOptions = {},
): Promise<Node> {
  const trusted = new TrustedPeerSet();
  const metrics = new MetricsRegistry().scope({ network: "test" });
  const logger = options.logger ?? quiet;
  const transport = options.transport ?? new MemoryTransport({
    network,
    closeGracePeriod: 200,
    ...(options.connectTimeout === undefined ? {} : { connectTimeout: options.connectTimeout }),
  });
  const manager = await PeerManager.create({
    identity: v.identity,
    upgrade: validatorUpgrade(v.noise, {
      noise: { trustedPeers: trusted, networkId: "test" },
      yamux: { closeTimeout: 500 },
      metrics,
      logger,
    }),
    transports: [transport],
    listen: [Multiaddr.parse(options.listen ?? "/memory/0")],
    isTrusted: (p) => trusted.staticKeyOf(p) !== undefined,
    metrics,
    logger,
  });
  return {
    v,
    peerId: v.identity.peerId,
    manager,
    trusted,
    metrics,
    addr: manager.listenAddrs[0].withoutPeerId(),
  };
}

function entry(v: Validator, addrs: readonly Multiaddr[]): EligiblePeer {
  return { peerId: v.identity.peerId, noiseKey: v.noise.publicKey, addrs };
}

function entryOf(node: Node): EligiblePeer {
  return entry(node.v, [node.addr]);
}

/** A dial attempt as `onDial` reported it. */
interface DialRecord {
  peer: string;
  attempt: number;
  at: number;
}

/** A connectivity manager on `node` that records its dials. */
function connectivityOf(
  node: Node,
  options: Partial<ConnectivityManagerOptions> & { backoff?: BackoffSchedule } = {},
): { connectivity: ConnectivityManager; dials: DialRecord[] } {
  const dials: DialRecord[] = [];
  const { onDial, ...rest } = options;
  const connectivity = new ConnectivityManager({
    manager: node.manager,
    trustedPeers: node.trusted,
    backoff: { initial: 50, factor: 2, max: 400, jitter: 0 },
    random: () => 0,
    metrics: node.metrics,
    logger: quiet,
    onDial: (peer, attempt) => {
      dials.push({ peer: peer.toString(), attempt, at: performance.now() });
      onDial?.(peer, attempt);
    },
    ...rest,
  });
  connectivity.start();
  return { connectivity, dials };
}

function dialsTo(dials: readonly DialRecord[], peer: PeerId): DialRecord[] {
  return dials.filter((d) => d.peer === peer.toString());
}

/** Every event of one subscription, with the time it was taken. */
class EventLog {
  readonly events: { event: PeerEvent; at: number }[] = [];
  readonly #done: Promise<void>;
  readonly #stream;

  constructor(manager: PeerManager) {
    this.#stream = manager.subscribe();
    const stream = this.#stream;
    this.#done = (async () => {
      for await (const event of stream) this.events.push({ event, at: performance.now() });
    })();
  }

  /** The events about `peer`, as `type:reason` strings. */
  about(peer: PeerId): string[] {
    return this.events
      .filter((e) => e.event.peer.peerId.equals(peer))
      .map((e) => e.event.type === "lost-peer" ? `lost-peer:${e.event.reason}` : "new-peer");
  }

  /** The first event about `peer` matching `type` (and `reason`). */
  find(peer: PeerId, type: PeerEvent["type"], reason?: string) {
    return this.events.find((e) =>
      e.event.peer.peerId.equals(peer) && e.event.type === type &&
      (reason === undefined || (e.event.type === "lost-peer" && e.event.reason === reason))
    );
  }

  async close(): Promise<void> {
    this.#stream.close();
    await this.#done;
  }
}

/** A logger that keeps its lines, parsed. */
function recordingLogger(level: LogLevel = "debug"): {
  logger: Logger;
  lines: Record<string, unknown>[];
} {
  const lines: Record<string, unknown>[] = [];
  return { logger: new Logger({}, level, (line) => lines.push(JSON.parse(line))), lines };
}

function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

async function waitFor(condition: () => boolean, ms: number, what: string): Promise<void> {
  const start = performance.now();
  while (!condition()) {
    if (performance.now() - start > ms) throw new Error(`timed out after ${ms} ms: ${what}`);
    await delay(5);
  }
}

/** An address where nothing listens (a port bound and released). */
function deadMemoryAddr(network: MemoryNetwork): Multiaddr {
  const listener = network.listen("/memory/0");
  listener.close();
  return Multiaddr.parse(listener.addr);
}

/** How late a timer may fire on a loaded machine, in ms. */
const SLACK = 35;

/**
 * Checks the gaps between consecutive dials against `expected` delays: never
 * early (1 ms of rounding allowed), at most `SLACK` late.
 */
function assertGaps(dials: readonly DialRecord[], expected: readonly number[]): void {
  assert(
    dials.length >= expected.length + 1,
    `${dials.length} dials, wanted ${expected.length + 1}`,
  );
  const gaps = expected.map((_, i) => Math.round(dials[i + 1].at - dials[i].at));
  const ok = gaps.every((gap, i) => gap >= expected[i] - 1 && gap <= expected[i] + SLACK);
  assert(ok, `dial gaps ${JSON.stringify(gaps)} ms, expected ${JSON.stringify(expected)} ms`);
}

function dialsCount(node: Node, outcome: string): number {
  return node.metrics.counter(
    "validator_network_dials_total",
    "Dials, by outcome (the error code on failure)",
    ["outcome"],
  ).get({ outcome });
}

function noiseRejected(node: Node, reason: string): number {
  return node.metrics.counter(
    "validator_network_noise_rejected_total",
    "Noise handshakes refused or failed, by profile and reason",
    ["profile", "reason"],
  ).get({ profile: "validator", reason });
}

/** The `handshake refused` lines of a recorded logger, as (reason, error code). */
function refusals(lines: readonly Record<string, unknown>[]): { reason: unknown; code: unknown }[] {
  return lines
    .filter((l) => l.msg === "handshake refused")
    .map((l) => ({ reason: l.reason, code: (l.error as { code?: unknown } | undefined)?.code }));
}

/** Makes `a` and `b` trust each other without a connectivity manager. */
function trustEachOther(a: Node, b: Node): void {
  a.trusted.set(b.v.noise.publicKey, b.peerId);
  b.trusted.set(a.v.noise.publicKey, a.peerId);
}

// ---- immediate dials ------------------------------------------------------------

Deno.test("ConnectivityManager dials eligible peers at once, and a peer added later at once too", async () => {
  const network = new MemoryNetwork();
  const [a, b, c] = await Promise.all(validators(3).map((v) => startNode(network, v)));
  // b and c accept a (they need no connectivity manager of their own).
  trustEachOther(a, b);
  trustEachOther(a, c);
  const { connectivity, dials } = connectivityOf(a, { backoff: { initial: 60_000 } });
  try {
    assertEquals(connectivity.state(b.peerId), undefined);
    const t0 = performance.now();
    connectivity.setEligible([entryOf(a), entryOf(b)]);
    // Our own entry is ignored; b is dialed in the call itself.
    assertEquals(connectivity.eligible.map(String), [b.peerId.toString()]);
    assertEquals(dialsTo(dials, b.peerId).length, 1);
    assert(dials[0].at - t0 < 20, "b dialed at once");
    assertEquals(connectivity.state(b.peerId), "dialing");
    await waitFor(() => a.manager.isConnected(b.peerId), 1_000, "a connected to b");
    assertEquals(connectivity.state(b.peerId), "connected");
    assertEquals(a.manager.connection(b.peerId)?.direction, "outbound");

    // The set grows: c is dialed in the call, b is not dialed again.
    const t1 = performance.now();
    connectivity.setEligible([entryOf(a), entryOf(b), entryOf(c)]);
    const toC = dialsTo(dials, c.peerId);
    assertEquals(toC.length, 1);
    assertEquals(toC[0].attempt, 1);
    assert(toC[0].at - t1 < 20, "c dialed at once");
    await waitFor(() => a.manager.isConnected(c.peerId), 1_000, "a connected to c");
    assertEquals(dialsTo(dials, b.peerId).length, 1);
    assertEquals(connectivity.state(c.peerId), "connected");
    // The trusted set follows the eligible set (our own key included).
    assertEquals(a.trusted.size, 3);
    assert(a.trusted.staticKeyOf(c.peerId) !== undefined);
  } finally {
    await connectivity.close();
    await Promise.all([a, b, c].map((n) => n.manager.close()));
  }
});

for (const order of ["greater", "smaller"] as const) {
  Deno.test(`ConnectivityManager dials a newly eligible peer at once, with default options (our peer id the ${order})`, async () => {
    const network = new MemoryNetwork();
    const [high, low] = validators(2);
    // x runs the connectivity manager with its defaults; y only accepts.
    const [vx, vy] = order === "greater" ? [high, low] : [low, high];
    const [x, y] = await Promise.all([vx, vy].map((v) => startNode(network, v)));
    y.trusted.set(x.v.noise.publicKey, x.peerId);
    const dials: number[] = [];
    const connectivity = new ConnectivityManager({
      manager: x.manager,
      trustedPeers: x.trusted,
      metrics: x.metrics,
      logger: quiet,
      onDial: () => dials.push(performance.now()),
    });
    connectivity.start();
    try {
      const t0 = performance.now();
      connectivity.setEligible([entryOf(x), entryOf(y)]);
      await waitFor(() => x.manager.isConnected(y.peerId), 2_000, "x connected to y");
      const elapsed = performance.now() - t0;
      assertEquals(dials.length, 1);
      assert(
        dials[0] - t0 < 20,
        `first dial ${Math.round(dials[0] - t0)} ms after the set changed`,
      );
      assert(elapsed < 150, `connected ${Math.round(elapsed)} ms after the set changed`);
    } finally {
      await connectivity.close();
      await Promise.all([x, y].map((n) => n.manager.close()));
    }
  });
}

Deno.test("ConnectivityManager: two validators that learn of each other at once connect at once, over one connection", async () => {
  const network = new MemoryNetwork();
  const [a, b] = await Promise.all(validators(2).map((v) => startNode(network, v)));
  const runs = [a, b].map((n) => connectivityOf(n, { backoff: { initial: 60_000 } }));
  try {
    const t0 = performance.now();
    for (const { connectivity } of runs) connectivity.setEligible([entryOf(a), entryOf(b)]);
    await waitFor(
      () => a.manager.isConnected(b.peerId) && b.manager.isConnected(a.peerId),
      2_000,
      "connected both ways",
    );
    assert(performance.now() - t0 < 150, "connected at once");
    await delay(100);
    // Both ends kept the same connection, and it is still up.
    const onA = a.manager.connection(b.peerId);
    const onB = b.manager.connection(a.peerId);
    assert(onA !== undefined && onB !== undefined, "still connected");
    assert(
      onA.direction !== onB.direction,
      "one connection: outbound at one end, inbound at the other",
    );
    assertEquals(runs[0].connectivity.state(b.peerId), "connected");
    assertEquals(runs[1].connectivity.state(a.peerId), "connected");
  } finally {
    for (const { connectivity } of runs) await connectivity.close();
    await Promise.all([a, b].map((n) => n.manager.close()));
  }
});

// ---- backoff -------------------------------------------------------------------

Deno.test("ConnectivityManager backs off a peer that is down: initial * factor^n, capped at max", async () => {
  const network = new MemoryNetwork();
  const [va, down] = validators(2);
  const a = await startNode(network, va);
  const { connectivity, dials } = connectivityOf(a, {
    // jitter 100 with random() = 0: a manager that ignored `random` would be up to 100 ms off.
    backoff: { initial: 50, factor: 2, max: 200, jitter: 100 },
    random: () => 0,
  });
  try {
    connectivity.setEligible([entry(down, [deadMemoryAddr(network)])]);
    await waitFor(() => dials.length >= 7, 3_000, "7 dials");
    assertEquals(dials.map((d) => d.attempt), [1, 2, 3, 4, 5, 6, 7]);
    assertGaps(dials, [50, 100, 200, 200, 200, 200]);
    assertEquals(connectivity.state(down.identity.peerId), "backoff");
    const failures = a.metrics.counter(
      "validator_network_connectivity_dials_total",
      "Dials of eligible peers by the connectivity manager, by outcome",
      ["outcome"],
    ).get({ outcome: "DIAL_REFUSED" });
    assert(failures >= 6, `${failures} refused dials counted`);
  } finally {
    await connectivity.close();
    await a.manager.close();
  }
});

Deno.test("ConnectivityManager adds random() * jitter to every backoff delay", async () => {
  const network = new MemoryNetwork();
  const [va, down] = validators(2);
  const a = await startNode(network, va);
  const randoms: number[] = [];
  const { connectivity, dials } = connectivityOf(a, {
    backoff: { initial: 30, factor: 3, max: 300, jitter: 80 },
    random: () => {
      randoms.push(0.75);
      return 0.75;
    },
  });
  try {
    connectivity.setEligible([entry(down, [deadMemoryAddr(network)])]);
    await waitFor(() => dials.length >= 5, 3_000, "5 dials");
    // 30 + 60, 90 + 60, 270 + 60, 300 (the cap) + 60.
    assertGaps(dials, [90, 150, 330, 360]);
    assert(randoms.length >= 4, "random() drawn for each delay");
  } finally {
    await connectivity.close();
    await a.manager.close();
  }
});

Deno.test("ConnectivityManager's default backoff is 2 s doubling to 60 s with up to 100 ms of jitter", async () => {
  assertEquals({ ...CONNECTIVITY_DEFAULTS }, {
    initial: 2_000,
    max: 60_000,
    factor: 2,
    jitter: 100,
  });
  // With no backoff options, no retry comes before 2 s.
  const network = new MemoryNetwork();
  const [va, down] = validators(2);
  const a = await startNode(network, va);
  const dials: number[] = [];
  const connectivity = new ConnectivityManager({
    manager: a.manager,
    trustedPeers: a.trusted,
    metrics: a.metrics,
    logger: quiet,
    onDial: () => dials.push(performance.now()),
  });
  connectivity.start();
  try {
    connectivity.setEligible([entry(down, [deadMemoryAddr(network)])]);
    await waitFor(() => connectivity.state(down.identity.peerId) === "backoff", 1_000, "backoff");
    await delay(300);
    assertEquals(dials.length, 1);
  } finally {
    await connectivity.close();
    await a.manager.close();
  }
});

// ---- addresses -----------------------------------------------------------------

Deno.test("ConnectivityManager tries a peer's addresses in turn: a dead first address, a live second", async () => {
  const network = new MemoryNetwork();
  const [a, b] = await Promise.all(validators(2).map((v) => startNode(network, v)));
  b.trusted.set(a.v.noise.publicKey, a.peerId);
  const { connectivity, dials } = connectivityOf(a, { backoff: { initial: 60_000 } });
  try {
    const dead = deadMemoryAddr(network);
    connectivity.setEligible([entry(b.v, [dead, b.addr])]);
    await waitFor(() => a.manager.isConnected(b.peerId), 1_000, "a connected to b");
    // One attempt, both addresses: the first refused, the second taken.
    assertEquals(dials.map((d) => d.attempt), [1]);
    assertEquals(dialsCount(a, "DIAL_REFUSED"), 1);
    assertEquals(dialsCount(a, "ok"), 1);
    assertEquals(
      a.manager.connection(b.peerId)?.remoteAddr.withoutPeerId().toString(),
      `${b.addr}`,
    );
    assertEquals(connectivity.addresses(b.peerId).map(String), [`${dead}`, `${b.addr}`]);
  } finally {
    await connectivity.close();
    await Promise.all([a, b].map((n) => n.manager.close()));
  }
});

Deno.test("ConnectivityManager moves to the next address when the first one hangs until the dial timeout", async () => {
  const network = new MemoryNetwork();
  const [va, vb] = validators(2);
  const a = await startNode(network, va, { connectTimeout: 100 });
  const b = await startNode(network, vb);
  b.trusted.set(a.v.noise.publicKey, a.peerId);
  const blackHole = Multiaddr.parse("/memory/9999");
  network.partition(blackHole, "drop");
  const { connectivity, dials } = connectivityOf(a, { backoff: { initial: 60_000 } });
  try {
    const t0 = performance.now();
    connectivity.setEligible([entry(b.v, [blackHole, b.addr])]);
    await waitFor(() => a.manager.isConnected(b.peerId), 2_000, "a connected to b");
    assert(performance.now() - t0 >= 99, "the first address was tried until its timeout");
    assertEquals(dials.length, 1);
    assertEquals(dialsCount(a, "DIAL_TIMEOUT"), 1);
  } finally {
    network.heal(blackHole);
    await connectivity.close();
    await Promise.all([a, b].map((n) => n.manager.close()));
  }
});

Deno.test("ConnectivityManager tries every address in each attempt", async () => {
  const network = new MemoryNetwork();
  const [va, down] = validators(2);
  const a = await startNode(network, va);
  const refusedAtDial: number[] = [];
  const { connectivity, dials } = connectivityOf(a, {
    onDial: () => refusedAtDial.push(dialsCount(a, "DIAL_REFUSED")),
  });
  try {
    connectivity.setEligible([entry(down, [deadMemoryAddr(network), deadMemoryAddr(network)])]);
    await waitFor(() => dials.length >= 3, 2_000, "3 dials");
    // Before attempt n, the n - 1 attempts before it each failed on both addresses.
    assertEquals(refusedAtDial.slice(0, 3), [0, 2, 4]);
  } finally {
    await connectivity.close();
    await a.manager.close();
  }
});

Deno.test("ConnectivityManager resets a peer's backoff when setEligible changes its addresses", async () => {
  const network = new MemoryNetwork();
  const [a, b] = await Promise.all(validators(2).map((v) => startNode(network, v)));
  b.trusted.set(a.v.noise.publicKey, a.peerId);
  const { connectivity, dials } = connectivityOf(a, {
    backoff: { initial: 50, factor: 2, max: 2_000, jitter: 0 },
  });
  try {
    const dead = deadMemoryAddr(network);
    connectivity.setEligible([entry(b.v, [dead])]);
    await waitFor(() => dials.length >= 4, 2_000, "4 dials"); // next delay: 400 ms
    // The same addresses again: no dial, no reset.
    connectivity.setEligible([entry(b.v, [dead])]);
    await delay(20);
    assertEquals(dials.length, 4);

    // Other (still dead) addresses: dialed at once as attempt 1, then initial again.
    const t0 = performance.now();
    const otherDead = deadMemoryAddr(network);
    connectivity.setEligible([entry(b.v, [otherDead])]);
    assertEquals(dials.length, 5);
    assertEquals(dials[4].attempt, 1);
    assert(dials[4].at - t0 < 20, "dialed at once");
    await waitFor(() => dials.length >= 7, 2_000, "7 dials");
    assertEquals(dials.slice(4).map((d) => d.attempt), [1, 2, 3]);
    assertGaps(dials.slice(4), [50, 100]);

    // A live address: connected at once, without waiting out the backoff.
    const t1 = performance.now();
    connectivity.setEligible([entry(b.v, [b.addr])]);
    await waitFor(() => a.manager.isConnected(b.peerId), 1_000, "connected");
    assert(performance.now() - t1 < 150, "connected before the backoff delay ended");
    assertEquals(dials.at(-1)!.attempt, 1);
    assertEquals(connectivity.state(b.peerId), "connected");
  } finally {
    await connectivity.close();
    await Promise.all([a, b].map((n) => n.manager.close()));
  }
});

Deno.test("ConnectivityManager resets a peer's backoff when addAddresses brings new addresses", async () => {
  const network = new MemoryNetwork();
  const [a, b] = await Promise.all(validators(2).map((v) => startNode(network, v)));
  b.trusted.set(a.v.noise.publicKey, a.peerId);
  const { connectivity, dials } = connectivityOf(a, {
    backoff: { initial: 50, factor: 2, max: 2_000, jitter: 0 },
  });
  try {
    const dead = deadMemoryAddr(network);
    connectivity.setEligible([entry(b.v, [dead])]);
    await waitFor(() => dials.length >= 4, 2_000, "4 dials");
    // Known addresses are no news: no dial.
    connectivity.addAddresses(b.peerId, [dead]);
    assertEquals(dials.length, 4);
    // Addresses of a peer outside the set are ignored.
    const stranger = validator();
    connectivity.addAddresses(stranger.identity.peerId, [b.addr]);
    assertEquals(connectivity.state(stranger.identity.peerId), undefined);
    assertEquals(dials.length, 4);

    const t0 = performance.now();
    connectivity.addAddresses(b.peerId, [b.addr]);
    assertEquals(dials.length, 5);
    assertEquals(dials[4].attempt, 1);
    assert(dials[4].at - t0 < 20, "dialed at once");
    // The new address is tried first.
    assertEquals(connectivity.addresses(b.peerId).map(String), [`${b.addr}`, `${dead}`]);
    await waitFor(() => a.manager.isConnected(b.peerId), 1_000, "connected");
    assert(performance.now() - t0 < 150, "connected before the backoff delay ended");
    assertEquals(dialsCount(a, "ok"), 1);
  } finally {
    await connectivity.close();
    await Promise.all([a, b].map((n) => n.manager.close()));
  }
});

// ---- lost peers ------------------------------------------------------------------

Deno.test("ConnectivityManager: a killed node is lost everywhere, redialed with backoff, and reconnected when it returns", async () => {
  const network = new MemoryNetwork();
  const vals = validators(3); // c, the one killed, has the smallest id
  const nodes = await Promise.all(vals.map((v) => startNode(network, v)));
  const [a, b, c] = nodes;
  const backoff = { initial: 50, factor: 2, max: 200, jitter: 0 };
  const runs = nodes.map((n) => connectivityOf(n, { backoff }));
  const logs = nodes.map((n) => new EventLog(n.manager));
  let back: Node | undefined;
  let backRun: ReturnType<typeof connectivityOf> | undefined;
  try {
    const set = nodes.map(entryOf);
    for (const { connectivity } of runs) connectivity.setEligible(set);
    await waitFor(
      () => nodes.every((n) => n.manager.peers().length === 2),
      2_000,
      "full mesh of 3",
    );

    // (Forming the mesh may have raced simultaneous dials: only what follows the kill counts.)
    await delay(50);
    const marks = logs.map((l) => l.about(c.peerId).length);
    // Kill c: stop its connectivity manager, close its peer manager.
    const killedAt = performance.now();
    await runs[2].connectivity.close();
    await c.manager.close();
    const sinceKill = (i: number) => logs[i].about(c.peerId).slice(marks[i]);
    await waitFor(
      () => [0, 1].every((i) => sinceKill(i).length >= 1),
      1_000,
      "lost-peer for c on a and b",
    );
    for (const i of [0, 1]) assertEquals(sinceKill(i), ["lost-peer:remote_closed"]);
    assertEquals(a.manager.isConnected(b.peerId), true);

    // a dials c again at once, then with backoff: 50, 100, 200, 200.
    const lostAt = logs[0].events.filter((e) =>
      e.event.peer.peerId.equals(c.peerId) && e.event.type === "lost-peer" && e.at >= killedAt
    )[0].at;
    const redials = () =>
      dialsTo(runs[0].dials, c.peerId).filter((d) => d.at >= lostAt - 5);
    await waitFor(() => redials().length >= 5, 3_000, "5 redials of c");
    const seen = redials();
    assert(seen[0].at - lostAt < 30, `first redial ${seen[0].at - lostAt} ms after the loss`);
    assertEquals(seen.slice(0, 5).map((d) => d.attempt), [1, 2, 3, 4, 5]);
    assertGaps(seen, [50, 100, 200, 200]);

    // c comes back: same identity and key, a new memory port.
    back = await startNode(network, vals[2]);
    assert(`${back.addr}` !== `${c.addr}`, "a new port");
    back.trusted.replace(nodes.map((n) => [n.v.noise.publicKey, n.peerId] as const));
    // a hears of it through addAddresses, b through a new eligible set.
    const beforeA = dialsTo(runs[0].dials, c.peerId).length;
    const beforeB = dialsTo(runs[1].dials, c.peerId).length;
    const t0 = performance.now();
    runs[0].connectivity.addAddresses(c.peerId, [back.addr]);
    runs[1].connectivity.setEligible([entryOf(a), entryOf(b), entryOf(back)]);
    for (const [i, before] of [[0, beforeA], [1, beforeB]]) {
      const next = dialsTo(runs[i].dials, c.peerId)[before];
      assert(next !== undefined && next.at - t0 < 20, `node ${i} redialed c at once`);
      assertEquals(next.attempt, 1);
    }
    await waitFor(
      () => a.manager.isConnected(c.peerId) && b.manager.isConnected(c.peerId),
      1_000,
      "a and b reconnected to c",
    );
    assert(performance.now() - t0 < 150, "reconnected without waiting out the backoff");
    for (const i of [0, 1]) assertEquals(sinceKill(i), ["lost-peer:remote_closed", "new-peer"]);
    // The returned node keeps the mesh with its own connectivity manager.
    backRun = connectivityOf(back, { backoff });
    backRun.connectivity.setEligible([entryOf(a), entryOf(b), entryOf(back)]);
    await waitFor(() => back!.manager.peers().length === 2, 1_000, "c sees both");
    assertEquals(backRun.connectivity.state(a.peerId), "connected");
  } finally {
    await backRun?.connectivity.close();
    for (const { connectivity } of runs) await connectivity.close();
    await Promise.all([...nodes, ...(back ? [back] : [])].map((n) => n.manager.close()));
    await Promise.all(logs.map((l) => l.close()));
  }
});

// ---- the eligible set changes ------------------------------------------------------

Deno.test("ConnectivityManager disconnects a removed validator (stale) and refuses its later handshakes (UNAUTHORIZED)", async () => {
  const network = new MemoryNetwork();
  const recorded = recordingLogger("debug");
  const [va, vb, vr] = validators(3);
  const a = await startNode(network, va, { logger: recorded.logger });
  const [b, r] = await Promise.all([vb, vr].map((v) => startNode(network, v)));
  const nodes = [a, b, r];
  const backoff = { initial: 50, factor: 2, max: 200, jitter: 0 };
  const runs = nodes.map((n) => connectivityOf(n, { backoff }));
  const log = new EventLog(a.manager);
  try {
    for (const { connectivity } of runs) connectivity.setEligible(nodes.map(entryOf));
    await waitFor(() => nodes.every((n) => n.manager.peers().length === 2), 2_000, "full mesh");
    const dialsToRBefore = dialsTo(runs[0].dials, r.peerId).length;

    // A new epoch on a only: r is out. Trust follows in the same call.
    runs[0].connectivity.setEligible([entryOf(a), entryOf(b)]);
    assertEquals(a.trusted.staticKeyOf(r.peerId), undefined);
    assert(a.trusted.staticKeyOf(b.peerId) !== undefined);
    assertEquals(runs[0].connectivity.state(r.peerId), undefined);
    assertEquals(runs[0].connectivity.eligible.map(String), [b.peerId.toString()]);
    await waitFor(() => log.find(r.peerId, "lost-peer") !== undefined, 1_000, "r lost on a");
    assertEquals(log.about(r.peerId), ["new-peer", "lost-peer:stale"]);

    // r still counts a eligible: it redials at once and with backoff, and a
    // refuses every handshake as coming from an unknown key.
    const rDials = () => dialsTo(runs[2].dials, a.peerId).length;
    const rBefore = rDials();
    await waitFor(() => rDials() >= rBefore + 3, 2_000, "r redials a 3 times");
    await waitFor(() => noiseRejected(a, "unknown_peer") >= 2, 1_000, "a refuses r's handshakes");
    const refused = refusals(recorded.lines);
    assert(refused.length >= 2, `${refused.length} refusals logged`);
    for (const { reason, code } of refused) {
      assertEquals(reason, "unknown_peer");
      assertEquals(code, "UNAUTHORIZED");
    }
    assertEquals(a.manager.isConnected(r.peerId), false);
    assertEquals(log.about(r.peerId), ["new-peer", "lost-peer:stale"]);
    // a itself never dials r again; b, whose set still holds r, keeps it.
    assertEquals(dialsTo(runs[0].dials, r.peerId).length, dialsToRBefore);
    assertEquals(b.manager.isConnected(r.peerId), true);
    assertEquals(a.manager.isConnected(b.peerId), true);
  } finally {
    for (const { connectivity } of runs) await connectivity.close();
    await Promise.all(nodes.map((n) => n.manager.close()));
    await log.close();
  }
});

Deno.test("ConnectivityManager cancels the dial in flight to a removed validator", async () => {
  const network = new MemoryNetwork();
  const [va, vr] = validators(2);
  const a = await startNode(network, va);
  const r = await startNode(network, vr);
  network.partition(r.addr, "drop"); // dials to r hang until cancelled
  const { connectivity, dials } = connectivityOf(a);
  try {
    connectivity.setEligible([entryOf(a), entryOf(r)]);
    await delay(30);
    assertEquals(connectivity.state(r.peerId), "dialing");
    assertEquals(a.manager.isDialing(r.peerId), true);

    connectivity.setEligible([entryOf(a)]);
    assertEquals(connectivity.state(r.peerId), undefined);
    await waitFor(() => !a.manager.isDialing(r.peerId), 200, "the dial to r cancelled");
    // Cancelled, not failed: nothing is scheduled, nothing dials again.
    await delay(150);
    assertEquals(dials.length, 1);
    assertEquals(a.manager.isConnected(r.peerId), false);
    assertEquals(dialsCount(a, "DIAL_TIMEOUT"), 0);
  } finally {
    network.heal(r.addr);
    await connectivity.close();
    await Promise.all([a, r].map((n) => n.manager.close()));
  }
});

Deno.test("ConnectivityManager: a removed validator's handshake in flight fails with UNAUTHORIZED", async () => {
  const network = new MemoryNetwork();
  const recorded = recordingLogger("debug");
  const a = await startNode(network, validator(), { logger: recorded.logger });
  const r = await startNode(network, validator());
  // a knows r but has no address for it (it does not dial); r trusts a.
  const { connectivity } = connectivityOf(a, { backoff: { initial: 60_000 } });
  r.trusted.set(a.v.noise.publicKey, a.peerId);
  const log = new EventLog(a.manager);
  try {
    connectivity.setEligible([entryOf(a), entry(r.v, [])]);
    assert(a.trusted.staticKeyOf(r.peerId) !== undefined, "r trusted while eligible");
    // r's first handshake message takes 150 ms to reach a.
    network.setLatency(150, a.addr);
    const dial = r.manager.dial(a.peerId, [a.addr]);
    dial.catch(() => {});
    await delay(50);
    connectivity.setEligible([entryOf(a)]);
    let failed = false;
    try {
      await dial;
    } catch {
      failed = true;
    }
    assert(failed, "r's dial failed");
    await waitFor(() => noiseRejected(a, "unknown_peer") === 1, 1_000, "a refused r");
    assertEquals(refusals(recorded.lines), [{ reason: "unknown_peer", code: "UNAUTHORIZED" }]);
    assertEquals(a.manager.isConnected(r.peerId), false);
    assertEquals(log.about(r.peerId), []);
  } finally {
    network.setLatency(0, a.addr);
    await connectivity.close();
    await Promise.all([a, r].map((n) => n.manager.close()));
    await log.close();
  }
});

Deno.test("ConnectivityManager: an epoch change drops the removed validator and dials the added one at once", async () => {
  const network = new MemoryNetwork();
  const nodes = await Promise.all(validators(3).map((v) => startNode(network, v)));
  const [a, r, n] = nodes;
  trustEachOther(a, r);
  trustEachOther(a, n);
  const { connectivity, dials } = connectivityOf(a, { backoff: { initial: 60_000 } });
  const log = new EventLog(a.manager);
  try {
    connectivity.setEligible([entryOf(a), entryOf(r)]);
    await waitFor(() => a.manager.isConnected(r.peerId), 1_000, "a connected to r");
    const t0 = performance.now();
    connectivity.setEligible([entryOf(a), entryOf(n)]);
    const toN = dialsTo(dials, n.peerId);
    assertEquals(toN.length, 1);
    assert(toN[0].at - t0 < 20, "n dialed at once");
    assertEquals(a.trusted.staticKeyOf(r.peerId), undefined);
    assert(a.trusted.staticKeyOf(n.peerId) !== undefined);
    await waitFor(
      () => a.manager.isConnected(n.peerId) && !a.manager.isConnected(r.peerId),
      1_000,
      "n connected, r gone",
    );
    assertEquals(log.about(r.peerId), ["new-peer", "lost-peer:stale"]);
    assertEquals(log.about(n.peerId), ["new-peer"]);
  } finally {
    await connectivity.close();
    await Promise.all(nodes.map((node) => node.manager.close()));
    await log.close();
  }
});

// ---- TCP -----------------------------------------------------------------------------

Deno.test("ConnectivityManager over TCP on loopback: immediate dial, backoff on a closed port, stale on removal", async () => {
  const network = new MemoryNetwork();
  const tcp = { listen: "/ip4/127.0.0.1/tcp/0" };
  const recorded = recordingLogger("debug");
  const [va, vb, down] = validators(3);
  const a = await startNode(network, va, {
    ...tcp,
    transport: new TcpTransport(),
    logger: recorded.logger,
  });
  const b = await startNode(network, vb, { ...tcp, transport: new TcpTransport() });
  trustEachOther(a, b);
  const closed = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const closedPort = (closed.addr as Deno.NetAddr).port;
  closed.close();
  const { connectivity, dials } = connectivityOf(a, {
    backoff: { initial: 50, factor: 2, max: 200, jitter: 0 },
  });
  const log = new EventLog(a.manager);
  try {
    const t0 = performance.now();
    connectivity.setEligible([
      entryOf(a),
      entryOf(b),
      entry(down, [Multiaddr.parse(`/ip4/127.0.0.1/tcp/${closedPort}`)]),
    ]);
    assertEquals(dials.length, 2);
    assert(dials.every((d) => d.at - t0 < 20), "both dialed at once");
    await waitFor(() => a.manager.isConnected(b.peerId), 2_000, "a connected to b over TCP");
    assert(a.manager.connection(b.peerId)!.remoteAddr.toString().startsWith("/ip4/127.0.0.1/tcp/"));

    await waitFor(() => dialsTo(dials, down.identity.peerId).length >= 4, 3_000, "4 dials");
    const toDown = dialsTo(dials, down.identity.peerId);
    assertEquals(toDown.slice(0, 4).map((d) => d.attempt), [1, 2, 3, 4]);
    assertGaps(toDown, [50, 100, 200]);

    connectivity.setEligible([entryOf(a)]);
    assertEquals(a.trusted.staticKeyOf(b.peerId), undefined);
    await waitFor(() => !a.manager.isConnected(b.peerId), 1_000, "b disconnected");
    await waitFor(() => log.find(b.peerId, "lost-peer") !== undefined, 1_000, "lost-peer b");
    assertEquals(log.about(b.peerId), ["new-peer", "lost-peer:stale"]);
    // Its next dial to us is refused.
    let failed = false;
    try {
      await b.manager.dial(a.peerId, [a.addr]);
    } catch {
      failed = true;
    }
    assert(failed, "b's dial refused");
    await waitFor(() => refusals(recorded.lines).length === 1, 1_000, "a refused b");
    assertEquals(refusals(recorded.lines), [{ reason: "unknown_peer", code: "UNAUTHORIZED" }]);
    // The down peer left the set too: its backoff timer is gone.
    const count = dials.length;
    await delay(250);
    assertEquals(dials.length, count);
  } finally {
    await connectivity.close();
    await Promise.all([a, b].map((n) => n.manager.close()));
    await log.close();
  }
});

Deno.test("ConnectivityManager keeps at most maxConcurrentDials dials in flight; the others wait their turn, in order", async () => {
  const network = new MemoryNetwork();
  const [va, ...others] = validators(6);
  const a = await startNode(network, va, { connectTimeout: 100 });
  const peers = await Promise.all(others.map((v) => startNode(network, v)));
  for (const p of peers) p.trusted.set(a.v.noise.publicKey, a.peerId);
  // Each dial first tries an address that hangs until the 100 ms dial timeout.
  const blackHole = Multiaddr.parse("/memory/9998");
  network.partition(blackHole, "drop");
  const { connectivity, dials } = connectivityOf(a, {
    backoff: { initial: 60_000 },
    maxConcurrentDials: 2,
  });
  try {
    const t0 = performance.now();
    connectivity.setEligible(peers.map((p) => entry(p.v, [blackHole, p.addr])));
    // Two dials start in the call; the three others are due and wait ("dialing").
    assertEquals(dials.length, 2);
    for (const p of peers) assertEquals(connectivity.state(p.peerId), "dialing");
    await waitFor(
      () => peers.every((p) => a.manager.isConnected(p.peerId)),
      3_000,
      "a connected to all five",
    );
    assertEquals(dials.length, 5, "each peer dialed once");
    assertEquals(dials.map((d) => d.peer), peers.map((p) => p.peerId.toString()), "in order");
    // Two at a time, about 100 ms each: three waves.
    const starts = dials.map((d) => d.at - t0);
    assert(starts[2] >= 90 && starts[3] >= 90, `third and fourth waited: ${starts}`);
    assert(starts[4] >= 180, `fifth waited for two dials: ${starts}`);
  } finally {
    network.heal(blackHole);
    await connectivity.close();
    await Promise.all([a, ...peers].map((n) => n.manager.close()));
  }
});

Deno.test("ConnectivityManager: a waiting dial whose peer leaves the set never starts", async () => {
  const network = new MemoryNetwork();
  const [va, ...others] = validators(3);
  const a = await startNode(network, va, { connectTimeout: 100 });
  const peers = await Promise.all(others.map((v) => startNode(network, v)));
  for (const p of peers) p.trusted.set(a.v.noise.publicKey, a.peerId);
  const blackHole = Multiaddr.parse("/memory/9997");
  network.partition(blackHole, "drop");
  const { connectivity, dials } = connectivityOf(a, {
    backoff: { initial: 60_000 },
    maxConcurrentDials: 1,
  });
  try {
    connectivity.setEligible(peers.map((p) => entry(p.v, [blackHole, p.addr])));
    assertEquals(dials.length, 1);
    // The waiting peer leaves before its turn.
    connectivity.setEligible([entry(peers[0].v, [blackHole, peers[0].addr])]);
    assertEquals(connectivity.state(peers[1].peerId), undefined);
    await waitFor(() => a.manager.isConnected(peers[0].peerId), 2_000, "a connected to the first");
    await delay(150);
    assertEquals(dials.length, 1, "the removed peer was never dialed");
    assert(!a.manager.isConnected(peers[1].peerId));
  } finally {
    network.heal(blackHole);
    await connectivity.close();
    await Promise.all([a, ...peers].map((n) => n.manager.close()));
  }
});
