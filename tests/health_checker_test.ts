/**
 * The health checker against its spec: every connected peer is pinged at an
 * interval, with a timeout; a peer is disconnected (reason `health`) after N
 * consecutive failures, within `interval * failures + timeout`; any inbound
 * traffic counts as alive, so a busy peer is never pinged
 * (`validator_network_health_checks_total{outcome="alive"}`); each answered
 * ping feeds the peer's round-trip estimate in `peers()` and
 * `peersByLatency()`.
 *
 * Nodes run the validator profile over a fresh `MemoryNetwork` each, with
 * their own metrics scope. A silent peer is made with
 * `network.partition(listenAddr, "drop")` on the listener the connection was
 * dialed to: its bytes stall, nothing is reset.
 */

import { MemoryNetwork } from "../memsocket/mod.ts";
import { Ed25519Identity, type PeerId } from "../netcore/identity/mod.ts";
import { Logger } from "../netcore/log.ts";
import { type Metrics, MetricsRegistry } from "../netcore/metrics.ts";
import { Multiaddr } from "../netcore/multiaddr.ts";
import { getCryptoBackend, type KeyPair } from "../netcore/noise/crypto.ts";
import { TrustedPeerSet } from "../netcore/noise/trusted_peers.ts";
import {
  HEALTH_CHECKER_DEFAULTS,
  HealthChecker,
  type HealthCheckerOptions,
  type PeerEvent,
  PeerManager,
} from "../netcore/peer/mod.ts";
import { MemoryTransport } from "../netcore/transport/memory_transport.ts";
import { validatorUpgrade } from "../netcore/upgrade/mod.ts";
import { assert, assertEquals } from "./_assert.ts";

// ---- fixtures -----------------------------------------------------------------

const quiet = new Logger({}, "off");

interface Validator {
  identity: Ed25519Identity;
  noise: KeyPair;
}

interface Node {
  v: Validator;
  peerId: PeerId;
  manager: PeerManager;
  trusted: TrustedPeerSet;
  metrics: Metrics;
  addr: Multiaddr;
}

async function startNode(network: MemoryNetwork): Promise<Node> {
  const v = {
    identity: Ed25519Identity.generate(),
    noise: getCryptoBackend().dh.generateKeyPair(),
  };
  const trusted = new TrustedPeerSet();
  const metrics = new MetricsRegistry().scope({ network: "test" });
  const manager = await PeerManager.create({
    identity: v.identity,
    upgrade: validatorUpgrade(v.noise, {
      noise: { trustedPeers: trusted, networkId: "test" },
      yamux: { closeTimeout: 500 },
      metrics,
      logger: quiet,
    }),
    transports: [new MemoryTransport({ network, closeGracePeriod: 200 })],
    listen: [Multiaddr.parse("/memory/0")],
    isTrusted: (p) => trusted.staticKeyOf(p) !== undefined,
    metrics,
    logger: quiet,
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

/** `from` dials `to` (so the connection belongs to `to`'s listen address). */
async function connect(from: Node, to: Node): Promise<void> {
  from.trusted.set(to.v.noise.publicKey, to.peerId);
  to.trusted.set(from.v.noise.publicKey, from.peerId);
  await from.manager.dial(to.peerId, [to.addr]);
  await waitFor(() => to.manager.isConnected(from.peerId), 1_000, "both ends connected");
}

function healthChecker(node: Node, options: Partial<HealthCheckerOptions>): HealthChecker {
  return new HealthChecker({
    manager: node.manager,
    metrics: node.metrics,
    logger: quiet,
    ...options,
  });
}

/** The health checks of `node` with `outcome` (alive, ok, failed, disconnected). */
function checks(node: Node, outcome: string): number {
  return node.metrics.counter(
    "validator_network_health_checks_total",
    "Health checks of connected peers, by outcome (alive: traffic seen, ok, failed, disconnected)",
    ["outcome"],
  ).get({ outcome });
}

/** Every event of one subscription, with the time it was taken. */
class EventLog {
  readonly events: { event: PeerEvent; at: number }[] = [];
  readonly #stream;
  readonly #done: Promise<void>;

  constructor(manager: PeerManager) {
    const stream = this.#stream = manager.subscribe();
    this.#done = (async () => {
      for await (const event of stream) this.events.push({ event, at: performance.now() });
    })();
  }

  lost(peer: PeerId) {
    return this.events.filter((e) =>
      e.event.type === "lost-peer" && e.event.peer.peerId.equals(peer)
    );
  }

  async close(): Promise<void> {
    this.#stream.close();
    await this.#done;
  }
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

const SINK = "/test/sink/1.0.0";

// ---- tests ---------------------------------------------------------------------

Deno.test("HealthChecker defaults: a ping every 10 s, 20 s to answer, 3 failures", () => {
  assertEquals({ ...HEALTH_CHECKER_DEFAULTS }, { interval: 10_000, timeout: 20_000, failures: 3 });
});

Deno.test("HealthChecker drops a partitioned peer (reason health) within interval * failures + timeout", async () => {
  const network = new MemoryNetwork();
  const [a, b] = await Promise.all([startNode(network), startNode(network)]);
  const interval = 40;
  const timeout = 150;
  const failures = 3;
  const health = healthChecker(a, { interval, timeout, failures });
  const log = new EventLog(a.manager);
  try {
    await connect(a, b);
    health.start();
    await waitFor(() => checks(a, "ok") >= 2, 1_000, "healthy pings first");
    assertEquals(checks(a, "failed"), 0);

    const t0 = performance.now();
    network.partition(b.addr, "drop");
    await waitFor(() => health.failures(b.peerId) >= 1, 1_000, "a first failure");
    assertEquals(a.manager.isConnected(b.peerId), true, "one failure does not drop the peer");
    await waitFor(() => log.lost(b.peerId).length > 0, 2_000, "b lost");
    const elapsed = log.lost(b.peerId)[0].at - t0;
    const bound = interval * failures + timeout;
    assert(elapsed <= bound + 150, `dropped after ${Math.round(elapsed)} ms, bound ${bound} ms`);
    // Not before `failures` pings could time out: the last of them was sent
    // (failures - 1) rounds after the first, which came at most one interval in.
    const earliest = (failures - 1) * interval + timeout;
    assert(
      elapsed >= earliest - 10,
      `dropped after ${Math.round(elapsed)} ms, before ${earliest} ms`,
    );

    const event = log.lost(b.peerId)[0].event;
    assert(event.type === "lost-peer");
    assertEquals(event.reason, "health");
    assertEquals(a.manager.isConnected(b.peerId), false);
    assert(checks(a, "failed") >= failures, `${checks(a, "failed")} failed checks`);
    assert(checks(a, "disconnected") >= 1, "the disconnection is counted");
  } finally {
    network.heal(b.addr);
    await health.close();
    await Promise.all([a, b].map((n) => n.manager.close()));
    await log.close();
  }
});

Deno.test("HealthChecker counts a dropped peer's disconnection once", async () => {
  const network = new MemoryNetwork();
  const [a, b] = await Promise.all([startNode(network), startNode(network)]);
  // Several pings in flight when the third one fails (timeout > interval).
  const health = healthChecker(a, { interval: 30, timeout: 120, failures: 3 });
  const log = new EventLog(a.manager);
  try {
    await connect(a, b);
    health.start();
    network.partition(b.addr, "drop");
    await waitFor(() => log.lost(b.peerId).length > 0, 2_000, "b lost");
    await delay(200); // the pings still in flight settle
    assertEquals(log.lost(b.peerId).length, 1);
    assertEquals(
      checks(a, "disconnected"),
      1,
      "validator_network_health_checks_total{outcome=disconnected} counts one disconnection",
    );
  } finally {
    network.heal(b.addr);
    await health.close();
    await Promise.all([a, b].map((n) => n.manager.close()));
    await log.close();
  }
});

Deno.test("HealthChecker counts only consecutive failures: a peer that answers again is kept", async () => {
  const network = new MemoryNetwork();
  const [a, b] = await Promise.all([startNode(network), startNode(network)]);
  const health = healthChecker(a, { interval: 40, timeout: 60, failures: 2 });
  const log = new EventLog(a.manager);
  try {
    await connect(a, b);
    health.start();
    for (let i = 0; i < 3; i++) {
      // One ping lost, then the peer answers again: the count starts over.
      network.partition(b.addr, "drop");
      await waitFor(() => health.failures(b.peerId) === 1, 1_000, `failure ${i + 1}`);
      network.heal(b.addr);
      await waitFor(() => health.failures(b.peerId) === 0, 1_000, `recovery ${i + 1}`);
    }
    assert(checks(a, "failed") >= 3, `${checks(a, "failed")} failed checks`);
    assertEquals(checks(a, "disconnected"), 0);
    assertEquals(a.manager.isConnected(b.peerId), true);
    assertEquals(log.lost(b.peerId).length, 0);
  } finally {
    network.heal(b.addr);
    await health.close();
    await Promise.all([a, b].map((n) => n.manager.close()));
    await log.close();
  }
});

Deno.test("HealthChecker never pings (nor drops) a peer that keeps sending data", async () => {
  const network = new MemoryNetwork();
  const [a, b] = await Promise.all([startNode(network), startNode(network)]);
  // a reads whatever b sends.
  a.manager.handle(SINK, async (stream) => {
    while ((await stream.read()) !== null) { /* drain */ }
    await stream.closeWrite();
  });
  const health = healthChecker(a, { interval: 50, timeout: 100, failures: 2 });
  const log = new EventLog(a.manager);
  let sending = true;
  let sender: Promise<void> | undefined;
  try {
    await connect(b, a);
    const stream = await b.manager.openStream(a.peerId, [SINK]);
    sender = (async () => {
      const chunk = new Uint8Array(32);
      while (sending) {
        await stream.write(chunk);
        await delay(10);
      }
      await stream.closeWrite();
      await stream.closed;
    })();
    await delay(20); // traffic before the first round, too
    health.start();
    await delay(600);
    assert(checks(a, "alive") >= 8, `${checks(a, "alive")} rounds found b alive`);
    assertEquals(
      { ok: checks(a, "ok"), failed: checks(a, "failed") },
      { ok: 0, failed: 0 },
      "a peer that sends data needs no ping",
    );
    assertEquals(a.manager.isConnected(b.peerId), true);
    assertEquals(log.lost(b.peerId).length, 0);
  } finally {
    sending = false;
    await sender;
    await health.close();
    await Promise.all([a, b].map((n) => n.manager.close()));
    await log.close();
  }
});

Deno.test("HealthChecker keeps a healthy idle peer", async () => {
  const network = new MemoryNetwork();
  const [a, b] = await Promise.all([startNode(network), startNode(network)]);
  const health = healthChecker(a, { interval: 30, timeout: 100, failures: 2 });
  const log = new EventLog(a.manager);
  try {
    await connect(a, b);
    health.start();
    await delay(600);
    // Pinged when silent (an answer is traffic, so the next round may find it alive).
    assert(checks(a, "ok") >= 5, `${checks(a, "ok")} pings answered`);
    assert(checks(a, "ok") + checks(a, "alive") >= 12, "checked every round");
    assertEquals(checks(a, "failed"), 0);
    assertEquals(health.failures(b.peerId), 0);
    assertEquals(a.manager.isConnected(b.peerId), true);
    assertEquals(log.lost(b.peerId).length, 0);
  } finally {
    await health.close();
    await Promise.all([a, b].map((n) => n.manager.close()));
    await log.close();
  }
});

Deno.test("HealthChecker: each peer's round trip appears in peers() after a ping, and orders peersByLatency()", async () => {
  const network = new MemoryNetwork();
  const [a, near, far] = await Promise.all([
    startNode(network),
    startNode(network),
    startNode(network),
  ]);
  const health = healthChecker(a, { interval: 40, timeout: 500, failures: 3 });
  try {
    await connect(a, near);
    await connect(a, far);
    network.setLatency(25, far.addr); // 25 ms each way on a's connection to far
    const rttOf = (peer: PeerId) => a.manager.peers().find((p) => p.peerId.equals(peer))?.rtt;
    assertEquals(rttOf(near.peerId), undefined, "no round trip before any ping");
    assertEquals(rttOf(far.peerId), undefined, "no round trip before any ping");

    health.start();
    await waitFor(
      () => rttOf(near.peerId) !== undefined && rttOf(far.peerId) !== undefined,
      2_000,
      "both round trips measured",
    );
    assert(checks(a, "ok") >= 2, "measured by the health checks");
    const nearRtt = rttOf(near.peerId)!;
    const farRtt = rttOf(far.peerId)!;
    assert(nearRtt >= 0 && nearRtt < 25, `near rtt ${nearRtt}`);
    assert(farRtt >= 45, `far rtt ${farRtt}: 2 x 25 ms of latency`);
    assertEquals(
      a.manager.peersByLatency().map((p) => p.peerId.toString()),
      [near.peerId.toString(), far.peerId.toString()],
    );
  } finally {
    network.setLatency(0, far.addr);
    await health.close();
    await Promise.all([a, near, far].map((n) => n.manager.close()));
  }
});

Deno.test("HealthChecker.close stops the rounds and cancels the pings in flight", async () => {
  const network = new MemoryNetwork();
  const [a, b] = await Promise.all([startNode(network), startNode(network)]);
  const health = healthChecker(a, { interval: 30, timeout: 5_000, failures: 1 });
  try {
    await connect(a, b);
    network.partition(b.addr, "drop");
    health.start();
    await delay(70); // pings in flight, unanswered
    const t0 = performance.now();
    await health.close();
    assert(performance.now() - t0 < 100, "close did not wait for the ping timeout");
    const sent = checks(a, "failed") + checks(a, "ok");
    await delay(100);
    assertEquals(checks(a, "failed") + checks(a, "ok"), sent, "no round after close");
    // Cancelled pings are not failures of the peer.
    assertEquals(a.manager.isConnected(b.peerId), true);
    assertEquals(checks(a, "disconnected"), 0);
  } finally {
    network.heal(b.addr);
    await health.close();
    await Promise.all([a, b].map((n) => n.manager.close()));
  }
});
