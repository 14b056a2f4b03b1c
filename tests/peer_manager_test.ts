/**
 * The peer manager and its event streams, as the issue specifies them:
 *
 * - `PeerEventStream`: per peer at most a `lost-peer` then a `new-peer`; a
 *   `lost-peer` cancels a `new-peer` of the same connection not yet taken;
 *   what is left out is counted; closing delivers what is queued, then ends.
 * - `PeerManager`: `new-peer` / `lost-peer` with their metadata and reason
 *   (requested, stale, health, limit, remote_closed, replaced, error + code);
 *   a subscriber that never reads blocks nothing; `dial` reuses the
 *   connection, shares a dial in flight and tries addresses in turn;
 *   `dialAddress` replaces the open connection of the same direction; a late
 *   close of a replaced connection never evicts the live one; self-dials
 *   are refused; `openStream` is `NOT_CONNECTED` without a connection;
 *   inbound streams go to the handler of their protocol and a failing
 *   handler resets only its stream; at most `maxUnknownInbound` inbound
 *   connections from peers outside `isTrusted`; both security profiles,
 *   over memory and TCP. Every count is read from the metrics.
 */

import { Series } from "../netcore/metrics.ts";
import { assert, assertEquals, assertNetworkError, assertRejectsCode } from "./_assert.ts";
import { randomBytes } from "./_bytes.ts";
import { echoThrough, readAllFrom, settlesWithin } from "./_streams.ts";
import { MemoryNetwork } from "../memsocket/mod.ts";
import { delay } from "../netcore/_async.ts";
import { Ed25519Identity, type PeerId } from "../netcore/identity/mod.ts";
import { Logger } from "../netcore/log.ts";
import { type Labels, MetricsRegistry } from "../netcore/metrics.ts";
import { Multiaddr } from "../netcore/multiaddr.ts";
import { getCryptoBackend } from "../netcore/noise/crypto.ts";
import { TrustedPeerSet } from "../netcore/noise/trusted_peers.ts";
import {
  type DisconnectReason,
  type PeerEvent,
  PeerEventStream,
  type PeerMetadata,
} from "../netcore/peer/peer_events.ts";
import { PeerManager, type PeerManagerOptions } from "../netcore/peer/peer_manager.ts";
import { MemoryTransport } from "../netcore/transport/memory_transport.ts";
import { TcpTransport } from "../netcore/transport/tcp_transport.ts";
import { type PeerConnection, validatorUpgrade } from "../netcore/upgrade/mod.ts";
import { ECHO_PROTOCOL, handleEcho } from "../protocols/echo.ts";

const quiet = new Logger({}, "off");

// ---- helpers ----------------------------------------------------------------------

/** Polls `condition` every 5 ms for up to 3 s; fails with `what` otherwise. */
async function until(condition: () => boolean, what: string): Promise<void> {
  const end = performance.now() + 3_000;
  while (!condition()) {
    if (performance.now() > end) throw new Error(`timed out waiting for ${what}`);
    await delay(5);
  }
}

/** Sums the series of `name` whose labels include `labels`, without creating any. */
function metricValue(registry: MetricsRegistry, name: string, labels: Labels = {}): number {
  let total = 0;
  for (const entry of registry.find(name)?.entries() ?? []) {
    if (Object.entries(labels).every(([k, v]) => entry.labels[k] === v)) total += entry.value;
  }
  return total;
}

/** Every event of a subscription, taken as soon as it is queued. */
class EventLog {
  readonly events: PeerEvent[] = [];
  readonly done: Promise<void>;

  constructor(stream: PeerEventStream) {
    this.done = (async () => {
      for await (const event of stream) this.events.push(event);
    })();
  }

  /** `[type, connectionId, reason?]` of each event. */
  get summary(): (string | number)[][] {
    return this.events.map((e) =>
      e.type === "new-peer" ? [e.type, e.peer.connectionId] : [
        e.type,
        e.peer.connectionId,
        e.reason,
      ]
    );
  }

  /** Waits until `count` events arrived. */
  async waitFor(count: number): Promise<PeerEvent[]> {
    await until(() => this.events.length >= count, `${count} events (have ${this.summary})`);
    return this.events;
  }
}

type Kind = "memory" | "tcp";

/** Managers on one fresh memory network (or TCP on 127.0.0.1), recording into `registry`. */
class Cluster {
  readonly registry = new MetricsRegistry();
  readonly network = new MemoryNetwork();
  readonly managers: PeerManager[] = [];
  readonly kind: Kind;

  constructor(kind: Kind = "memory") {
    this.kind = kind;
  }

  /** A listening manager with metrics labelled `network: name`. */
  async add(name: string, options: PeerManagerOptions = {}): Promise<PeerManager> {
    const manager = await PeerManager.create({
      listen: [Multiaddr.parse(this.kind === "memory" ? "/memory/0" : "/ip4/127.0.0.1/tcp/0")],
      transports: [
        this.kind === "memory"
          ? new MemoryTransport({ network: this.network })
          : new TcpTransport(),
      ],
      metrics: this.registry.scope({ network: name }),
      logger: quiet,
      ...options,
    });
    this.managers.push(manager);
    return manager;
  }

  /** The value of `name` in the scope of `network` (summed over the other labels). */
  metric(network: string, name: string, labels: Labels = {}): number {
    return metricValue(this.registry, name, { network, ...labels });
  }

  async close(): Promise<void> {
    for (const manager of this.managers) await manager.close();
  }
}

async function withCluster(
  body: (cluster: Cluster) => Promise<void>,
  kind: Kind = "memory",
): Promise<void> {
  const cluster = new Cluster(kind);
  try {
    await body(cluster);
  } finally {
    await cluster.close();
  }
}

/** Whether `x` (one side) and `y` (the other side) are the two ends of one connection. */
function sameConnection(x: PeerConnection, y: PeerConnection): boolean {
  return x.localAddr.toString() === y.remoteAddr.withoutPeerId().toString() &&
    x.remoteAddr.withoutPeerId().toString() === y.localAddr.toString();
}

/** Waits until `manager` holds the other end of `conn`, which `from` made; returns it. */
async function otherEnd(
  manager: PeerManager,
  from: PeerManager,
  conn: PeerConnection,
): Promise<PeerConnection> {
  let found: PeerConnection | undefined;
  await until(() => {
    const candidate = manager.connection(from.peerId);
    if (candidate !== undefined && sameConnection(conn, candidate)) found = candidate;
    return found !== undefined;
  }, `the other end of connection ${conn.id}`);
  return found!;
}

/** Dials `to` from `from` and returns both ends once `to` adopted its end. */
async function connect(
  from: PeerManager,
  to: PeerManager,
): Promise<[PeerConnection, PeerConnection]> {
  const conn = await from.dial(to.peerId, to.listenAddrs);
  return [conn, await otherEnd(to, from, conn)];
}

/** A metadata record built from a connection, for comparison with an event's. */
function metadataOf(conn: PeerConnection): PeerMetadata {
  return {
    peerId: conn.remotePeer,
    connectionId: conn.id,
    addr: conn.remoteAddr,
    direction: conn.direction,
    profile: conn.profile,
    connectedAt: conn.openedAt,
  };
}

function assertMetadata(actual: PeerMetadata, conn: PeerConnection, what: string): void {
  const expected = metadataOf(conn);
  assert(actual.peerId.equals(expected.peerId), `${what}: peer id`);
  assertEquals(
    [actual.connectionId, `${actual.addr}`, actual.direction, actual.profile, actual.connectedAt],
    [
      expected.connectionId,
      `${expected.addr}`,
      expected.direction,
      expected.profile,
      expected.connectedAt,
    ],
    what,
  );
  assertEquals(
    actual.addr.peerId,
    conn.remotePeer.toString(),
    `${what}: the address names the peer`,
  );
}

// ---- PeerEventStream ------------------------------------------------------------

function fakeMetadata(peer: PeerId, connectionId: number): PeerMetadata {
  return {
    peerId: peer,
    connectionId,
    addr: Multiaddr.parse(`/memory/${connectionId}/p2p/${peer}`),
    direction: "outbound",
    profile: "libp2p",
    connectedAt: 1_000 + connectionId,
  };
}
const added = (peer: PeerId, id: number): PeerEvent => ({
  type: "new-peer",
  peer: fakeMetadata(peer, id),
});
const lost = (peer: PeerId, id: number, reason: DisconnectReason = "remote_closed"): PeerEvent => ({
  type: "lost-peer",
  peer: fakeMetadata(peer, id),
  reason,
});

/** A stream outside any manager, with what it reported. */
function eventStream(): { stream: PeerEventStream; coalesced: number[]; closed: number } {
  const state = {
    stream: undefined as unknown as PeerEventStream,
    coalesced: [] as number[],
    closed: 0,
  };
  const dropped = new class extends Series {
    override inc(n = 1): void {
      super.inc(n);
      state.coalesced.push(n);
    }
  }();
  state.stream = new PeerEventStream(() => state.closed++, {
    depth: new Series(),
    enqueued: new Series(),
    dequeued: new Series(),
    dropped: () => dropped,
  });
  return state;
}

/** Takes what is queued now (without waiting). */
async function drain(stream: PeerEventStream): Promise<(string | number)[][]> {
  const out: (string | number)[][] = [];
  while (stream.pendingPeers > 0) {
    const e = (await stream.next())!;
    out.push([e.type, e.peer.peerId.toString().slice(-4), e.peer.connectionId]);
  }
  return out;
}

const [P, Q] = [Ed25519Identity.generate().peerId, Ed25519Identity.generate().peerId];
const tag = (p: PeerId) => p.toString().slice(-4);

Deno.test("PeerEventStream: events of a subscriber that keeps up arrive as they were pushed", async () => {
  const { stream, coalesced } = eventStream();
  const got: PeerEvent[] = [];
  for (const event of [added(P, 1), added(Q, 2), lost(P, 1, "requested"), added(P, 3)]) {
    stream.push(event);
    got.push((await stream.next())!);
  }
  assertEquals(
    got.map((e) => [e.type, tag(e.peer.peerId), e.peer.connectionId]),
    [["new-peer", tag(P), 1], ["new-peer", tag(Q), 2], ["lost-peer", tag(P), 1], [
      "new-peer",
      tag(P),
      3,
    ]],
  );
  assertEquals(got[2].type === "lost-peer" && got[2].reason, "requested");
  assertEquals([stream.coalesced, coalesced], [0, []]);
});

Deno.test("PeerEventStream: a lost-peer cancels a new-peer of the same connection not yet taken", async () => {
  const { stream, coalesced } = eventStream();
  stream.push(added(P, 1));
  stream.push(lost(P, 1));
  assertEquals(stream.pendingPeers, 0, "the subscriber never knew of connection 1");
  assertEquals([stream.coalesced, coalesced], [2, [2]]);
  // A lost-peer for another connection does not cancel the new-peer.
  stream.push(added(Q, 5));
  stream.push(lost(Q, 4));
  assertEquals(await drain(stream), [["lost-peer", tag(Q), 4], ["new-peer", tag(Q), 5]]);
  assertEquals(stream.coalesced, 2);
});

Deno.test("PeerEventStream: per peer at most a lost-peer then a new-peer, the latest state", async () => {
  const { stream, coalesced } = eventStream();
  stream.push(added(P, 1));
  assertEquals((await stream.next())?.peer.connectionId, 1, "the subscriber knows connection 1");
  // Then it falls behind: 1 lost, 2 up and lost, 3 up.
  stream.push(lost(P, 1, "replaced"));
  stream.push(added(P, 2));
  stream.push(lost(P, 2, "replaced"));
  stream.push(added(P, 3));
  assertEquals(stream.pendingPeers, 1);
  assertEquals(await drain(stream), [["lost-peer", tag(P), 1], ["new-peer", tag(P), 3]]);
  assertEquals([stream.coalesced, coalesced], [2, [2]]);

  // A new-peer that supersedes an untaken one (no lost between) keeps the newest.
  stream.push(added(Q, 7));
  stream.push(added(Q, 8));
  assertEquals(await drain(stream), [["new-peer", tag(Q), 8]]);
  assertEquals([stream.coalesced, coalesced], [3, [2, 1]]);

  // Two lost-peers in a row (the second for a connection it never saw): one is kept.
  stream.push(lost(Q, 8));
  stream.push(lost(Q, 9));
  const left = await drain(stream);
  assertEquals(left.length, 1);
  assertEquals(stream.coalesced, 4);
});

Deno.test("PeerEventStream: a subscriber that never reads holds at most two events per peer", async () => {
  const { stream, coalesced } = eventStream();
  const peers = Array.from({ length: 10 }, () => Ed25519Identity.generate().peerId);
  let id = 0;
  const current = new Map<string, number>();
  // Each peer: connected once (taken), then 100 reconnections the subscriber does not follow.
  for (const peer of peers) {
    stream.push(added(peer, ++id));
    current.set(peer.toString(), id);
    await stream.next();
  }
  let pushed = 0;
  for (let round = 0; round < 100; round++) {
    for (const peer of peers) {
      stream.push(lost(peer, current.get(peer.toString())!, "replaced"));
      stream.push(added(peer, ++id));
      current.set(peer.toString(), id);
      pushed += 2;
      assert(stream.pendingPeers <= peers.length);
    }
  }
  const left = await drain(stream);
  assertEquals(left.length, 2 * peers.length, "a lost-peer and a new-peer per peer");
  for (const [i, peer] of peers.entries()) {
    assertEquals(left[2 * i], ["lost-peer", tag(peer), i + 1], "the connection it knew is lost");
    assertEquals(left[2 * i + 1], ["new-peer", tag(peer), current.get(peer.toString())!]);
  }
  assertEquals(stream.coalesced, pushed - left.length, "everything else was counted");
  assertEquals(coalesced.reduce((a, b) => a + b, 0), stream.coalesced);
});

Deno.test("PeerEventStream: close() delivers what is queued, then ends; later pushes are dropped", async () => {
  const state = eventStream();
  const { stream } = state;
  const waiting = stream.next();
  stream.push(added(P, 1));
  assertEquals((await waiting)?.peer.connectionId, 1, "a waiting next() is woken");
  stream.push(added(Q, 2));
  stream.close();
  stream.close();
  assertEquals(state.closed, 1, "onClose once");
  stream.push(added(P, 3));
  assertEquals((await stream.next())?.peer.connectionId, 2);
  assertEquals(await stream.next(), undefined);
  // A next() waiting when the stream closes ends too.
  const other = eventStream();
  const pending = other.stream.next();
  other.stream.close();
  assertEquals(await pending, undefined);
  // Iteration ends at close, and leaving an iteration closes the stream.
  const third = eventStream();
  third.stream.push(added(P, 4));
  for await (const event of third.stream) {
    assertEquals(event.peer.connectionId, 4);
    break;
  }
  assertEquals(third.closed, 1);
});

// ---- connecting, events and metadata ----------------------------------------------

Deno.test("manager: a dial connects both sides, with new-peer events carrying the connection's metadata", async () => {
  await withCluster(async (cluster) => {
    const a = await cluster.add("a");
    const b = await cluster.add("b");
    const [eventsA, eventsB] = [new EventLog(a.subscribe()), new EventLog(b.subscribe())];
    const before = Date.now();
    const [conn, theirs] = await connect(a, b);
    const after = Date.now();

    assert(conn.remotePeer.equals(b.peerId) && theirs.remotePeer.equals(a.peerId));
    assertEquals([conn.direction, theirs.direction], ["outbound", "inbound"]);
    assert(a.isConnected(b.peerId) && b.isConnected(a.peerId));
    assert(a.connection(b.peerId) === conn && b.connection(a.peerId) === theirs);
    const [onA] = await eventsA.waitFor(1);
    const [onB] = await eventsB.waitFor(1);
    assertEquals([onA.type, onB.type], ["new-peer", "new-peer"]);
    assertMetadata(onA.peer, conn, "a's new-peer");
    assertMetadata(onB.peer, theirs, "b's new-peer");
    assertEquals(onA.peer.profile, "libp2p");
    assert(onA.peer.connectedAt >= before && onA.peer.connectedAt <= after, "connectedAt");
    assertEquals(a.peers().length, 1);
    assertMetadata(a.peers()[0], conn, "a.peers()");
    assertMetadata(b.peers()[0], theirs, "b.peers()");

    const peers = "validator_network_connected_peers";
    assertEquals(
      [
        cluster.metric("a", peers, { direction: "outbound" }),
        cluster.metric("a", peers, { direction: "inbound" }),
      ],
      [1, 0],
    );
    assertEquals(
      [
        cluster.metric("b", peers, { direction: "outbound" }),
        cluster.metric("b", peers, { direction: "inbound" }),
      ],
      [0, 1],
    );
    const newPeers = (n: string) =>
      cluster.metric(n, "validator_network_peer_events_total", { type: "new-peer" });
    assertEquals([newPeers("a"), newPeers("b")], [1, 1]);
    assertEquals(cluster.metric("a", "validator_network_dials_total", { outcome: "ok" }), 1);
  });
});

Deno.test("manager: dial reuses the open connection and concurrent dials share one attempt", async () => {
  await withCluster(async (cluster) => {
    const a = await cluster.add("a");
    const b = await cluster.add("b");
    const c = await cluster.add("c");
    const dials = () => cluster.metric("a", "validator_network_dials_total");

    const racing = [a.dial(b.peerId, b.listenAddrs), a.dial(b.peerId, b.listenAddrs)];
    assert(a.isDialing(b.peerId), "a dial is in flight");
    // A third one with other addresses still shares the attempt in flight.
    racing.push(a.dial(b.peerId, [Multiaddr.parse("/memory/99999")]));
    const conns = await Promise.all(racing);
    assert(conns[0] === conns[1] && conns[1] === conns[2], "one connection for all three");
    assertEquals(a.isDialing(b.peerId), false);
    assertEquals(dials(), 1, "one dial");
    assert(await a.dial(b.peerId, b.listenAddrs) === conns[0], "reused while open");
    assert(await a.dial(b.peerId, []) === conns[0], "no address needed to reuse");
    assertEquals(dials(), 1);
    // Dials to another peer are their own.
    const toC = await a.dial(c.peerId, c.listenAddrs);
    assert(toC !== conns[0] && toC.remotePeer.equals(c.peerId));
    assertEquals(dials(), 2);
    assertEquals(a.peers().length, 2);
  });
});

Deno.test("manager: dial tries the addresses in turn and reports the last failure", async () => {
  await withCluster(async (cluster) => {
    const a = await cluster.add("a");
    const b = await cluster.add("b");
    const dials = (outcome: string) =>
      cluster.metric("a", "validator_network_dials_total", { outcome });
    const dead = [Multiaddr.parse("/memory/70001"), Multiaddr.parse("/memory/70002")];

    const conn = await a.dial(b.peerId, [...dead, ...b.listenAddrs]);
    assert(conn.remotePeer.equals(b.peerId));
    assertEquals(`${conn.remoteAddr}`, `${b.listenAddrs[0]}`, "the address that worked");
    assertEquals([dials("DIAL_REFUSED"), dials("ok")], [2, 1]);
    await a.disconnect(b.peerId);

    await assertRejectsCode(a.dial(b.peerId, dead), "DIAL_REFUSED");
    assertEquals([dials("DIAL_REFUSED"), dials("ok")], [4, 1]);
    await assertRejectsCode(a.dial(b.peerId, []), "BAD_ADDRESS");
    // A cancelled dial is ABORTED and stops trying.
    await assertRejectsCode(
      a.dial(b.peerId, b.listenAddrs, { signal: AbortSignal.abort() }),
      "ABORTED",
    );
    assertEquals(a.isConnected(b.peerId), false);
    assertEquals(a.isDialing(b.peerId), false);
  });
});

Deno.test("manager: self-dials are refused, before dialing when the address names us, after the handshake otherwise", async () => {
  await withCluster(async (cluster) => {
    const a = await cluster.add("a");
    const events = new EventLog(a.subscribe());
    await assertRejectsCode(a.dial(a.peerId, a.listenAddrs), "BAD_ADDRESS");
    await assertRejectsCode(a.dialAddress(a.listenAddrs[0]), "BAD_ADDRESS");
    assertEquals(cluster.metric("a", "validator_network_dials_total"), 0, "nothing dialed");
    // Without a /p2p/ id, we learn it is ourselves from the handshake.
    const err = await a.dialAddress(a.listenAddrs[0].withoutPeerId()).then(
      () => new Error("a self-dial succeeded"),
      (e: unknown) => e,
    );
    assertNetworkError(err);
    await until(
      () =>
        cluster.metric("a", "validator_network_connections_refused_total", { reason: "self" }) >=
          1,
      "the self-connection to be refused",
    );
    await delay(20);
    assertEquals(a.peers(), []);
    assertEquals(a.isConnected(a.peerId), false);
    assertEquals(events.events, [], "no event for ourselves");
  });
});

// ---- replacement and stale closes ----------------------------------------------------

Deno.test("manager: dialAddress makes a new connection that replaces the open one of the same direction", async () => {
  await withCluster(async (cluster) => {
    const a = await cluster.add("a");
    const b = await cluster.add("b");
    const eventsA = new EventLog(a.subscribe());
    const eventsB = new EventLog(b.subscribe());
    const [old, oldTheirs] = await connect(a, b);
    await eventsA.waitFor(1);
    await eventsB.waitFor(1);
    b.handle(ECHO_PROTOCOL, (s) => handleEcho(s));
    const held = await a.openStream(b.peerId, [ECHO_PROTOCOL]);
    const fresh = await a.dialAddress(b.listenAddrs[0]);
    assert(fresh !== old && fresh.id !== old.id, "a new connection");
    assert(a.connection(b.peerId) === fresh);
    const freshTheirs = await otherEnd(b, a, fresh);
    assert(freshTheirs !== oldTheirs);

    await eventsA.waitFor(3);
    assertEquals(eventsA.summary, [
      ["new-peer", old.id],
      ["lost-peer", old.id, "replaced"],
      ["new-peer", fresh.id],
    ]);
    const lostOld = eventsA.events[1];
    assert(lostOld.type === "lost-peer");
    assertEquals(lostOld.error?.code, "CONNECTION_REPLACED");
    assert(lostOld.error!.retriable);
    assertMetadata(lostOld.peer, old, "the lost-peer's metadata is the old connection's");
    assertMetadata(eventsA.events[2].peer, fresh, "the new-peer's metadata");
    // The old connection is gone, and what was open on it failed retriably.
    assertEquals(await settlesWithin(old.closed, 2_000), true);
    assertEquals(await settlesWithin(oldTheirs.closed, 2_000), true);
    const err = await held.read().then((r) => new Error(`read ${r}`), (e: unknown) => e);
    assertNetworkError(err, "CONNECTION_REPLACED");
    // B too ends on the new one, its old one lost first.
    await eventsB.waitFor(3);
    assertEquals(eventsB.summary.map((e) => e.slice(0, 2)), [
      ["new-peer", oldTheirs.id],
      ["lost-peer", oldTheirs.id],
      ["new-peer", freshTheirs.id],
    ]);
    const peers = "validator_network_connected_peers";
    assertEquals(cluster.metric("a", peers, { direction: "outbound" }), 1);
    assertEquals(cluster.metric("b", peers, { direction: "inbound" }), 1);
    assertEquals(
      cluster.metric("a", "validator_network_peer_events_total", {
        type: "lost-peer",
        reason: "replaced",
      }),
      1,
    );
    const data = randomBytes(1000);
    assertEquals(await echoThrough(await a.openStream(b.peerId, [ECHO_PROTOCOL]), data), data);
  });
});

Deno.test("manager: the close of a replaced connection, arriving after the new one is adopted, evicts nothing", async () => {
  await withCluster(async (cluster) => {
    const a = await cluster.add("a");
    const b = await cluster.add("b");
    const eventsA = new EventLog(a.subscribe());
    const eventsB = new EventLog(b.subscribe());
    let live: PeerConnection | undefined;
    let liveTheirs: PeerConnection | undefined;
    const stale: PeerConnection[] = [];
    for (let i = 0; i < 5; i++) {
      const conn = i === 0
        ? await a.dial(b.peerId, b.listenAddrs)
        : await a.dialAddress(b.listenAddrs[0]);
      if (live !== undefined) stale.push(live, liveTheirs!);
      live = conn;
      liveTheirs = await otherEnd(b, a, conn);
    }
    // Every old connection's close is reported after its successor was adopted.
    for (const old of stale) assertEquals(await settlesWithin(old.closed, 2_000), true);
    await delay(50);
    assert(a.connection(b.peerId) === live, "a keeps the live connection");
    assert(b.connection(a.peerId) === liveTheirs, "b keeps the live connection");
    for (const [log, conn] of [[eventsA, live!], [eventsB, liveTheirs!]] as const) {
      const last = log.events.at(-1)!;
      assertEquals([last.type, last.peer.connectionId], ["new-peer", conn.id]);
      assertEquals(
        log.events.filter((e) => e.type === "lost-peer" && e.peer.connectionId === conn.id),
        [],
      );
      assertEquals(log.events.filter((e) => e.type === "new-peer").length, 5);
      assertEquals(log.events.filter((e) => e.type === "lost-peer").length, 4);
    }
    const peers = "validator_network_connected_peers";
    assertEquals(cluster.metric("a", peers), 1);
    assertEquals(cluster.metric("b", peers), 1);
    b.handle(ECHO_PROTOCOL, (s) => handleEcho(s));
    const data = randomBytes(1000);
    assertEquals(await echoThrough(await a.openStream(b.peerId, [ECHO_PROTOCOL]), data), data);
  });
});

// ---- disconnect reasons -----------------------------------------------------------

Deno.test("manager: lost-peer says why: requested, stale, health, limit; the other side sees remote_closed", async () => {
  await withCluster(async (cluster) => {
    const a = await cluster.add("a");
    const b = await cluster.add("b");
    const eventsA = new EventLog(a.subscribe());
    const eventsB = new EventLog(b.subscribe());
    const reasons: (DisconnectReason | undefined)[] = [undefined, "stale", "health", "limit"];
    for (const [i, reason] of reasons.entries()) {
      const [conn, theirs] = await connect(a, b);
      await (reason === undefined ? a.disconnect(b.peerId) : a.disconnect(b.peerId, reason));
      assertEquals(a.isConnected(b.peerId), false, "gone once disconnect() resolves");
      await eventsA.waitFor(2 * (i + 1));
      await eventsB.waitFor(2 * (i + 1));
      const onA = eventsA.events[2 * i + 1];
      const onB = eventsB.events[2 * i + 1];
      assert(onA.type === "lost-peer" && onB.type === "lost-peer");
      assertEquals([onA.reason, onA.error], [reason ?? "requested", undefined]);
      assertEquals(onB.reason, "remote_closed");
      assertMetadata(onA.peer, conn, "a's lost-peer");
      assertMetadata(onB.peer, theirs, "b's lost-peer");
    }
    // Nothing to do when not connected.
    await a.disconnect(b.peerId, "stale");
    for (const reason of ["requested", "stale", "health", "limit"]) {
      assertEquals(
        cluster.metric("a", "validator_network_peer_events_total", { type: "lost-peer", reason }),
        1,
        reason,
      );
    }
    assertEquals(
      cluster.metric("b", "validator_network_peer_events_total", {
        type: "lost-peer",
        reason: "remote_closed",
      }),
      4,
    );
    assertEquals(cluster.metric("a", "validator_network_connected_peers"), 0);
  });
});

Deno.test("manager: a reason marked before the connection ends is the one reported", async () => {
  await withCluster(async (cluster) => {
    const a = await cluster.add("a");
    const b = await cluster.add("b");
    const eventsA = new EventLog(a.subscribe());
    await connect(a, b);
    a.markReason(b.peerId, "health");
    await b.disconnect(a.peerId);
    const events = await eventsA.waitFor(2);
    assertEquals(events[1].type === "lost-peer" && events[1].reason, "health");
  });
});

Deno.test("manager: a connection that fails is lost with reason error and its code, on both sides", async () => {
  await withCluster(async (cluster) => {
    const a = await cluster.add("a");
    const b = await cluster.add("b");
    const eventsA = new EventLog(a.subscribe());
    const eventsB = new EventLog(b.subscribe());
    await connect(a, b);
    cluster.network.cut(b.listenAddrs[0].withoutPeerId());
    for (const log of [eventsA, eventsB]) {
      const [, gone] = await log.waitFor(2);
      assert(gone.type === "lost-peer");
      assertEquals([gone.reason, gone.error?.code], ["error", "CONNECTION_RESET"]);
    }
    assertEquals(
      cluster.metric("a", "validator_network_peer_events_total", {
        type: "lost-peer",
        reason: "error",
      }),
      1,
    );
    assertEquals(a.isConnected(b.peerId), false);
  });
});

Deno.test("manager: close() loses every peer with reason requested and ends the subscriptions", async () => {
  const cluster = new Cluster();
  try {
    const a = await cluster.add("a");
    const b = await cluster.add("b");
    const c = await cluster.add("c");
    const events = new EventLog(a.subscribe());
    const [toB] = await connect(a, b);
    const [toC] = await connect(a, c);
    await events.waitFor(2);
    await a.close();
    await events.done;
    assertEquals(
      events.summary.slice(2).sort(),
      [
        ["lost-peer", toB.id, "requested"],
        ["lost-peer", toC.id, "requested"],
      ].sort(),
    );
    assertEquals([await settlesWithin(toB.closed, 0), await settlesWithin(toC.closed, 0)], [
      true,
      true,
    ]);
    await until(() => !b.isConnected(a.peerId) && !c.isConnected(a.peerId), "the peers' ends");
    // A closed manager refuses everything and its subscriptions end at once.
    await assertRejectsCode(a.dial(b.peerId, b.listenAddrs), "CONNECTION_CLOSED");
    await assertRejectsCode(a.dialAddress(b.listenAddrs[0]), "CONNECTION_CLOSED");
    await assertRejectsCode(a.listen(Multiaddr.parse("/memory/0")), "CONNECTION_CLOSED");
    assertEquals(await a.subscribe().next(), undefined);
    await a.close();
  } finally {
    await cluster.close();
  }
});

Deno.test("manager: a subscriber that never reads blocks nothing and keeps only the latest state", async () => {
  await withCluster(async (cluster) => {
    const a = await cluster.add("a");
    const b = await cluster.add("b");
    const lagging = a.subscribe();
    const following = new EventLog(a.subscribe());
    const conns: PeerConnection[] = [await a.dial(b.peerId, b.listenAddrs)];
    for (let i = 1; i < 20; i++) conns.push(await a.dialAddress(b.listenAddrs[0]));
    await following.waitFor(39);
    // The one that follows saw every event, in order.
    const expected: (string | number)[][] = [["new-peer", conns[0].id]];
    for (let i = 1; i < 20; i++) {
      expected.push(["lost-peer", conns[i - 1].id, "replaced"], ["new-peer", conns[i].id]);
    }
    assertEquals(following.summary, expected);
    // The lagging one holds only the new-peer of the live connection.
    assertEquals(lagging.pendingPeers, 1);
    const only = await lagging.next();
    assertEquals([only?.type, only?.peer.connectionId], ["new-peer", conns[19].id]);
    assertEquals(lagging.pendingPeers, 0);
    assertEquals(lagging.coalesced, 38);
    // The event queues are bounded channels: their drops are counted as such.
    assertEquals(
      cluster.metric("a", "validator_network_channel_dropped_total", {
        name: "peer_events",
        reason: "coalesced",
      }),
      38,
    );
    lagging.close();
  });
});

// ---- streams ------------------------------------------------------------------

Deno.test("manager: openStream is NOT_CONNECTED (retriable) without a connection", async () => {
  await withCluster(async (cluster) => {
    const a = await cluster.add("a");
    const b = await cluster.add("b");
    b.handle(ECHO_PROTOCOL, (s) => handleEcho(s));
    const err = await assertRejectsCode(a.openStream(b.peerId, [ECHO_PROTOCOL]), "NOT_CONNECTED");
    assert(err.retriable, "NOT_CONNECTED is retriable");
    await connect(a, b);
    const data = randomBytes(10_000);
    assertEquals(await echoThrough(await a.openStream(b.peerId, [ECHO_PROTOCOL]), data), data);
    await a.disconnect(b.peerId);
    await assertRejectsCode(a.openStream(b.peerId, [ECHO_PROTOCOL]), "NOT_CONNECTED");
    // The inbound side opens streams on the same connection.
    const [, theirs] = await connect(a, b);
    a.handle(ECHO_PROTOCOL, (s) => handleEcho(s));
    assertEquals(await echoThrough(await b.openStream(a.peerId, [ECHO_PROTOCOL]), data), data);
    assert(b.connection(a.peerId) === theirs);
  });
});

Deno.test("manager: inbound streams go to the handler of their protocol, with their connection", async () => {
  await withCluster(async (cluster) => {
    const a = await cluster.add("a");
    const b = await cluster.add("b");
    const seen: [string, PeerConnection][] = [];
    for (const protocol of ["/x/1.0.0", "/y/1.0.0"]) {
      b.handle(protocol, async (stream, conn) => {
        seen.push([stream.protocol, conn]);
        await stream.write(new TextEncoder().encode(protocol));
        await stream.closeWrite();
      });
    }
    assertEquals(b.protocols.sort(), ["/x/1.0.0", "/y/1.0.0"]);
    const [, theirs] = await connect(a, b);
    const text = async (protocols: string[]) => {
      const stream = await a.openStream(b.peerId, protocols);
      const bytes = await readAllFrom(stream);
      await stream.close();
      return [stream.protocol, new TextDecoder().decode(bytes)];
    };
    assertEquals(await text(["/y/1.0.0"]), ["/y/1.0.0", "/y/1.0.0"]);
    assertEquals(await text(["/z/1.0.0", "/x/1.0.0"]), ["/x/1.0.0", "/x/1.0.0"]);
    assertEquals(seen.map(([p]) => p), ["/y/1.0.0", "/x/1.0.0"]);
    assert(seen.every(([, conn]) => conn === theirs), "the handler gets the peer's connection");

    b.unhandle("/x/1.0.0");
    await assertRejectsCode(a.openStream(b.peerId, ["/x/1.0.0"]), "UNSUPPORTED_PROTOCOL");
    await until(
      () =>
        cluster.metric("b", "validator_network_inbound_streams_total", {
          outcome: "negotiation_failed",
        }) === 1,
      "the refused stream to be counted",
    );
    assertEquals(
      cluster.metric("b", "validator_network_inbound_streams_total", {
        protocol: "/y/1.0.0",
        outcome: "ok",
      }),
      1,
    );
    assert(a.isConnected(b.peerId), "a refused stream leaves the connection");
  });
});

Deno.test("manager: a failing handler resets only its own stream", async () => {
  await withCluster(async (cluster) => {
    const a = await cluster.add("a");
    const b = await cluster.add("b");
    b.handle(ECHO_PROTOCOL, (s) => handleEcho(s));
    b.handle("/async-boom/1.0.0", async (stream) => {
      await stream.read();
      throw new Error("handler bug");
    });
    b.handle("/sync-boom/1.0.0", () => {
      throw new Error("synchronous handler bug");
    });
    await connect(a, b);
    const survivor = await a.openStream(b.peerId, [ECHO_PROTOCOL]);
    await survivor.write(new Uint8Array([1, 2, 3]));
    assertEquals(await survivor.read(), new Uint8Array([1, 2, 3]));

    for (const protocol of ["/async-boom/1.0.0", "/sync-boom/1.0.0"]) {
      const doomed = await a.openStream(b.peerId, [protocol]);
      // The reset shows on the write or on the read after it.
      const err = await (async () => {
        await doomed.write(new Uint8Array([9]));
        return await readAllFrom(doomed);
      })().then(
        (bytes) => new Error(`read ${bytes.length} bytes and an end instead of a reset`),
        (e: unknown) => e,
      );
      assertNetworkError(err, "CONNECTION_RESET");
      await until(
        () =>
          cluster.metric("b", "validator_network_inbound_streams_total", {
            protocol,
            outcome: "error",
          }) === 1,
        `${protocol}'s failure to be counted`,
      );
    }
    await survivor.write(new Uint8Array([4]));
    assertEquals(await survivor.read(), new Uint8Array([4]));
    await survivor.closeWrite();
    assertEquals(await survivor.read(), null);
    assert(a.isConnected(b.peerId) && b.isConnected(a.peerId), "the connection stays");
  });
});

// ---- the unknown-inbound limit ------------------------------------------------------

Deno.test("manager: at most maxUnknownInbound inbound connections from untrusted peers; trusted ones are exempt", async () => {
  await withCluster(async (cluster) => {
    const validatorIdentity = Ed25519Identity.generate();
    const trusted = new Set([validatorIdentity.peerId.toString()]);
    const server = await cluster.add("server", {
      maxUnknownInbound: 2,
      isTrusted: (peer) => trusted.has(peer.toString()),
    });
    const events = new EventLog(server.subscribe());
    const refused = () =>
      cluster.metric("server", "validator_network_connections_refused_total", {
        reason: "unknown_inbound_limit",
      });
    const strangers = [
      await cluster.add("s1"),
      await cluster.add("s2"),
      await cluster.add("s3"),
      await cluster.add("s4"),
    ];
    await connect(strangers[0], server);
    await connect(strangers[1], server);
    assertEquals(refused(), 0);

    // The third stranger completes its handshake, then is refused and closed.
    const third = await strangers[2].dial(server.peerId, server.listenAddrs);
    await until(() => refused() === 1, "the third stranger to be refused");
    assertEquals(await settlesWithin(third.closed, 2_000), true, "its connection is closed");
    assertEquals(server.isConnected(strangers[2].peerId), false);
    await until(() => !strangers[2].isConnected(server.peerId), "the stranger to lose it");

    // A trusted peer (a validator) is exempt.
    const validator = await cluster.add("validator", { identity: validatorIdentity });
    await connect(validator, server);
    assertEquals(refused(), 1);
    // A stranger already connected may reconnect (its connection is replaced, not added).
    const again = await strangers[0].dialAddress(server.listenAddrs[0]);
    await otherEnd(server, strangers[0], again);
    assertEquals(refused(), 1);
    assertEquals(server.peers().length, 3);

    // When one leaves, another may come.
    await strangers[1].disconnect(server.peerId);
    await until(() => !server.isConnected(strangers[1].peerId), "the stranger to leave");
    await connect(strangers[3], server);
    assertEquals(refused(), 1);
    assertEquals(
      server.peers().map((p) => p.peerId.toString()).sort(),
      [strangers[0], validator, strangers[3]].map((m) => m.peerId.toString()).sort(),
    );
    // The refused connection never became a peer.
    assert(
      events.events.every((e) => !e.peer.peerId.equals(strangers[2].peerId)),
      "no event for the refused stranger",
    );
    // Outbound connections do not count: the server may still dial strangers.
    const out = await server.dial(strangers[2].peerId, strangers[2].listenAddrs);
    assertEquals(out.direction, "outbound");
    assertEquals(refused(), 1);
  });
});

// ---- the validator profile, memory and TCP -------------------------------------------

for (const kind of ["memory", "tcp"] as const) {
  Deno.test(`manager over ${kind}, validator profile: dial by peer id against the trusted set`, async () => {
    await withCluster(async (cluster) => {
      const backend = getCryptoBackend();
      const trusted = new TrustedPeerSet();
      const validator = (name: string, inSet = true, extra: PeerManagerOptions = {}) => {
        const identity = Ed25519Identity.generate();
        const key = backend.dh.generateKeyPair();
        if (inSet) trusted.set(key.publicKey, identity.peerId);
        const metrics = cluster.registry.scope({ network: name });
        return cluster.add(name, {
          identity,
          upgrade: validatorUpgrade(key, {
            noise: { trustedPeers: trusted, networkId: "manager-test" },
            metrics,
            logger: quiet,
          }),
          isTrusted: (peer) => [...trusted.entries()].some(([, p]) => p.equals(peer)),
          ...extra,
        });
      };
      // No room for strangers: validators are exempt through isTrusted.
      const a = await validator("a", true, { maxUnknownInbound: 0 });
      const b = await validator("b", true, { maxUnknownInbound: 0 });
      const c = await validator("c", true, { maxUnknownInbound: 0 });
      const outsider = await validator("outsider", false);
      b.handle(ECHO_PROTOCOL, (s) => handleEcho(s));
      const eventsB = new EventLog(b.subscribe());

      // The manager adds the /p2p/ part to a bare address.
      const conn = await a.dial(b.peerId, [b.listenAddrs[0].withoutPeerId()]);
      assertEquals([conn.profile, conn.direction], ["validator", "outbound"]);
      assert(conn.remotePeer.equals(b.peerId));
      const theirs = await otherEnd(b, a, conn);
      const [added] = await eventsB.waitFor(1);
      assertMetadata(added.peer, theirs, "b's new-peer");
      assertEquals(added.peer.profile, "validator");
      const data = randomBytes(50_000);
      assertEquals(await echoThrough(await a.openStream(b.peerId, [ECHO_PROTOCOL]), data), data);

      // dialAddress with addr/p2p/<peer>.
      const fromC = await c.dialAddress(
        b.listenAddrs[0].withoutPeerId().withPeerId(b.peerId.toString()),
      );
      assertEquals(fromC.profile, "validator");
      assert(fromC.remotePeer.equals(b.peerId));
      await until(() => b.isConnected(c.peerId), "b to adopt c");
      assertEquals(
        cluster.metric("b", "validator_network_connections_refused_total"),
        0,
        "no validator refused",
      );
      // Outside the set: the dialer refuses to dial a peer it cannot authenticate,
      // and the listener refuses a key it does not know.
      await assertRejectsCode(
        outsider.dial(b.peerId, b.listenAddrs),
        "HANDSHAKE_FAILED",
        "UNAUTHORIZED",
      );
      await assertRejectsCode(a.dial(outsider.peerId, outsider.listenAddrs), "UNAUTHORIZED");
      assertEquals(b.isConnected(outsider.peerId), false);
      assertEquals(a.peers().map((p) => p.peerId.toString()), [b.peerId.toString()]);
    }, kind);
  });

  Deno.test(`manager over ${kind}, libp2p profile: connect, stream, replace, disconnect`, async () => {
    await withCluster(async (cluster) => {
      const a = await cluster.add("a");
      const b = await cluster.add("b");
      b.handle(ECHO_PROTOCOL, (s) => handleEcho(s));
      const events = new EventLog(b.subscribe());
      const [conn, theirs] = await connect(a, b);
      assertEquals(conn.remoteAddr.tcpEndpoint() !== undefined, kind === "tcp");
      const data = randomBytes(100_000);
      assertEquals(await echoThrough(await a.openStream(b.peerId, [ECHO_PROTOCOL]), data), data);
      const fresh = await a.dialAddress(b.listenAddrs[0]);
      const freshTheirs = await otherEnd(b, a, fresh);
      assertEquals(await settlesWithin(theirs.closed, 2_000), true);
      await a.disconnect(b.peerId, "stale");
      await events.waitFor(4);
      assertEquals(events.summary.map((e) => e.slice(0, 2)), [
        ["new-peer", theirs.id],
        ["lost-peer", theirs.id],
        ["new-peer", freshTheirs.id],
        ["lost-peer", freshTheirs.id],
      ]);
      assertEquals(
        events.events[3].type === "lost-peer" && events.events[3].reason,
        "remote_closed",
      );
      assertEquals(cluster.metric("b", "validator_network_connected_peers"), 0);
    }, kind);
  });
}

Deno.test("manager: the error of a refused dial names its code in the dial metrics", async () => {
  await withCluster(async (cluster) => {
    const a = await cluster.add("a");
    const b = await cluster.add("b");
    const impostor = Ed25519Identity.generate().peerId;
    // The address is b's, the id is someone else's: the handshake says who it is.
    const err = await a.dial(impostor, [b.listenAddrs[0].withoutPeerId()]).then(
      () => new Error("dialed an impostor"),
      (e: unknown) => e,
    );
    const error = assertNetworkError(err, "UNAUTHORIZED");
    assertEquals(
      cluster.metric("a", "validator_network_dials_total", { outcome: "UNAUTHORIZED" }),
      1,
    );
    assertEquals(error.retriable, false, "UNAUTHORIZED is not retriable");
    assertEquals(a.peers(), []);
  });
});
