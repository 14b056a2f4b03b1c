/**
 * `ValidatorNetwork` end to end, as the issue specifies it:
 *
 * - validators given each other's entries reach a full mesh (every
 *   `net.peers().length === n - 1`), over memory and over loopback TCP,
 *   4 and 16 of them, and `peers()` describes each connection;
 * - a DirectSend broadcast from one reaches every other (each result
 *   `undefined`, each other node's events yield the message);
 * - an epoch change (`updateValidatorSet`) disconnects a removed validator
 *   at once and refuses it afterwards (`UNAUTHORIZED` on the responder), and
 *   connects an added one without restarting anyone;
 * - a key outside the set never becomes a peer, and nothing it sends
 *   reaches an application; a validator's peer id with another Noise key
 *   neither;
 * - `stop()` while messages are queued fails the pending `sendTo` promises
 *   with typed errors, and nothing hangs;
 * - `await using` stops the network at the end of its scope;
 * - the libp2p profile: nodes connect, RPC works, outsiders connect but are
 *   not validators (broadcast skips them).
 */

import { delay } from "../netcore/_async.ts";
import {
  type DirectSendHandle,
  type DirectSendHandleEvent,
  MemoryNetwork,
  Multiaddr,
  NetworkError,
  type PeerEvent,
  type RpcHandle,
  type ValidatorInfo,
  ValidatorKeys,
  ValidatorNetwork,
} from "../mod.ts";
import { assert, assertEquals, assertNetworkError, assertRejectsCode } from "./_assert.ts";
import {
  Cluster,
  EventReader,
  FAST,
  memoryCluster,
  metricValue,
  quiet,
  settled,
  tcpCluster,
  until,
  within,
} from "./_validators.ts";

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** Answers every request of `handle` with its own bytes, until the network stops. */
function serveEcho(handle: RpcHandle): Promise<void> {
  return (async () => {
    while (true) {
      const req = await handle.receive();
      if (req === undefined) return;
      await req.respond(req.request).catch(() => {});
    }
  })();
}

/**
 * Checks that every node of `cluster` lists exactly the others, once the
 * simultaneous dials of the start settled (both ends keep the same
 * connection: one's outbound is the other's inbound).
 */
async function assertMesh(cluster: Cluster): Promise<void> {
  await settled(cluster.nets);
  const ids = cluster.keys.map((k) => k.peerId.toString());
  cluster.nets.forEach((net, i) => {
    const peers = net.peers();
    const listed = peers.map((p) => p.peerId.toString()).sort();
    assertEquals(listed, ids.filter((_, j) => j !== i).sort(), `peers of validator ${i}`);
    for (const p of peers) {
      assert(p.validator, `validator ${i} lists ${p.peerId} as a validator`);
      assert(net.isConnected(p.peerId) && net.isConnected(p.peerId.toString()));
      assert(p.addrs.length >= 1 && p.addrs.every((a) => a.peerId === undefined));
      assert(p.connectedAt > 0 && p.connectedAt <= Date.now());
    }
  });
}

/** Free loopback TCP ports, found by binding port 0 and letting go. */
function freePorts(n: number): number[] {
  const listeners = Array.from(
    { length: n },
    () => Deno.listen({ hostname: "127.0.0.1", port: 0 }),
  );
  const ports = listeners.map((l) => (l.addr as Deno.NetAddr).port);
  for (const l of listeners) l.close();
  return ports;
}

/** Broadcasts from validator 0 of a started, meshed cluster whose nets all registered `chats`. */
async function assertBroadcastReachesAll(
  cluster: Cluster,
  chats: DirectSendHandle[],
  readers: EventReader<DirectSendHandleEvent>[],
): Promise<void> {
  const text = `block ${crypto.randomUUID()}`;
  const results = await chats[0].broadcast(encoder.encode(text));
  const others = cluster.keys.slice(1).map((k) => k.peerId.toString()).sort();
  assertEquals([...results.keys()].sort(), others, "broadcast targets: every other validator");
  for (const [peer, outcome] of results) assertEquals(outcome, undefined, `outcome for ${peer}`);
  await Promise.all(
    readers.slice(1).map(async (reader, i) => {
      const got = await reader.find(
        (ev) => ev.type === "message" ? ev : undefined,
        `the broadcast at validator ${i + 1}`,
      );
      assertEquals(got.peer.toString(), cluster.keys[0].peerId.toString());
      assertEquals(decoder.decode(got.message), text);
    }),
  );
}

// ---- meshes ---------------------------------------------------------------------

Deno.test("4 validators over memory reach a full mesh; peers() describes each connection", async () => {
  await using cluster = memoryCluster(4, { timeouts: { ...FAST, healthInterval: 50 } });
  await cluster.start();
  await cluster.fullMesh();
  await assertMesh(cluster);
  // The health checks measure each round trip.
  await until(
    () => cluster.nets.every((n) => n.peers().every((p) => p.rtt !== undefined && p.rtt >= 0)),
    "a round trip to every peer",
  );
  for (const [i, net] of cluster.nets.entries()) {
    assertEquals(
      net.validators.map(String).sort(),
      cluster.keys.map((k) => k.peerId.toString()).sort(),
    );
    assertEquals(net.listenAddrs.map(String), [`/memory/${i + 1}/p2p/${net.peerId}`]);
  }
  // An outbound peer's first address is the one we dialed: its set entry.
  for (const [i, net] of cluster.nets.entries()) {
    for (const p of net.peers().filter((p) => p.direction === "outbound")) {
      const j = cluster.keys.findIndex((k) => k.peerId.equals(p.peerId));
      assertEquals(p.addrs[0].toString(), `/memory/${j + 1}`, `validator ${i}'s peer ${j}`);
    }
  }
});

Deno.test("16 validators over memory reach a full mesh", async () => {
  await using cluster = memoryCluster(16, { timeouts: { ...FAST, dialGrace: 100 } });
  await cluster.start();
  await cluster.fullMesh(15_000);
  await assertMesh(cluster);
});

Deno.test("4 validators over loopback TCP with addresses fixed before start reach a full mesh, broadcast and answer RPCs", async () => {
  const ports = freePorts(4);
  const keys = Array.from({ length: 4 }, () => ValidatorKeys.generate());
  const infos = keys.map((k, i) => k.info([`/ip4/127.0.0.1/tcp/${ports[i]}`]));
  const nets = keys.map((k, i) =>
    new ValidatorNetwork({
      networkId: "tcp-test",
      keys: k,
      listen: [`/ip4/127.0.0.1/tcp/${ports[i]}`],
      validators: infos,
      timeouts: FAST,
      logger: quiet,
    })
  );
  await using cluster = new Cluster(keys, infos, nets, undefined);
  const chats = nets.map((n) => n.register("/app/chat/1.0.0", { kind: "direct-send" }));
  const echoes = nets.map((n) => n.register("/app/echo/1.0.0", { kind: "rpc" }));
  const readers = chats.map((c) => new EventReader(c.events));
  for (const e of echoes.slice(1)) void serveEcho(e);
  await cluster.start();
  await cluster.fullMesh();
  await assertMesh(cluster);
  assertEquals(
    nets[2].listenAddrs[0].toString(),
    `/ip4/127.0.0.1/tcp/${ports[2]}/p2p/${keys[2].peerId}`,
  );
  await assertBroadcastReachesAll(cluster, chats, readers);
  const reply = await echoes[0].request(keys[3].peerId.toString(), encoder.encode("over tcp"));
  assertEquals(decoder.decode(reply), "over tcp");
});

Deno.test("16 validators over loopback TCP (port 0, then the real addresses by an epoch change) reach a full mesh, broadcast and answer RPCs", async () => {
  await using cluster = await tcpCluster(16, { timeouts: { ...FAST, dialGrace: 100 } });
  // Registered after start: served from then on.
  const chats = cluster.nets.map((n) => n.register("/app/chat/1.0.0", { kind: "direct-send" }));
  const echoes = cluster.nets.map((n) => n.register("/app/echo/1.0.0", { kind: "rpc" }));
  const readers = chats.map((c) => new EventReader(c.events));
  for (const e of echoes) void serveEcho(e);
  await cluster.fullMesh(15_000);
  await assertMesh(cluster);
  for (const info of cluster.infos) {
    assert(/^\/ip4\/127\.0\.0\.1\/tcp\/[1-9]\d*$/.test(info.addrs[0]));
  }
  await assertBroadcastReachesAll(cluster, chats, readers);
  const replies = await echoes[5].broadcast(encoder.encode("all of you"));
  assertEquals(replies.size, 15);
  for (const [peer, reply] of replies) {
    assert(reply instanceof Uint8Array, `reply of ${peer}: ${reply}`);
    assertEquals(decoder.decode(reply), "all of you");
  }
});

// ---- broadcast ----------------------------------------------------------------

Deno.test("a DirectSend broadcast from one validator reaches every other, and only once", async () => {
  await using cluster = memoryCluster(5);
  const chats = cluster.nets.map((n) =>
    n.register("/app/chat/1.0.0", { kind: "direct-send", priority: "normal" })
  );
  const readers = chats.map((c) => new EventReader(c.events));
  await cluster.start();
  await cluster.settledMesh();
  await assertBroadcastReachesAll(cluster, chats, readers);
  // Nothing else arrives: no duplicate, and the sender does not hear itself.
  for (const [i, reader] of readers.entries()) {
    const more = (await reader.drain(100)).filter((ev) => ev.type === "message");
    assertEquals(more.length, 0, `extra messages at validator ${i}`);
  }
});

// When two validators dial each other at once, each end first lists the
// connection it accepted, and the simultaneous-dial rule replaces one of the
// two a few ms later. A DirectSend message written on the losing connection
// in between is written again on the winner (the receiver acknowledges what
// it took), so a broadcast sent at once still reaches everyone, once.
Deno.test({
  name: "a broadcast sent as soon as every validator lists the others reaches every other",
  async fn() {
    for (let round = 0; round < 5; round++) {
      await using cluster = memoryCluster(5);
      const chats = cluster.nets.map((n) => n.register("/app/chat/1.0.0", { kind: "direct-send" }));
      const readers = chats.map((c) => new EventReader(c.events));
      await cluster.start();
      await cluster.fullMesh();
      await assertBroadcastReachesAll(cluster, chats, readers);
    }
  },
});

// ---- epoch change ---------------------------------------------------------------

Deno.test("epoch change: a removed validator is disconnected from everyone and refused; an added one connects without restarting anyone", async () => {
  await using cluster = memoryCluster(4);
  const [a, b, c, d] = cluster.nets;
  const chat = a.register("/app/chat/1.0.0", { kind: "direct-send" });
  const aEvents = new EventReader(chat.events);
  await cluster.start();
  await cluster.settledMesh();
  // A has taken the news of D's connection (a lost-peer of a connection the
  // reader never heard of would be coalesced away with its new-peer).
  await aEvents.drain(50);

  // E: keys no one trusts yet; it knows the next epoch's set already and dials in vain.
  const eKeys = ValidatorKeys.generate();
  const eInfo = eKeys.info(["/memory/5"]);
  const next = [...cluster.infos.slice(0, 3), eInfo];
  const e = new ValidatorNetwork({
    networkId: "test",
    keys: eKeys,
    listen: ["/memory/5"],
    validators: next,
    memory: cluster.memory,
    timeouts: FAST,
    logger: quiet,
  });
  cluster.extra.push(e);
  await e.start();
  await delay(150);
  assertEquals(e.peers().length, 0, "E is no validator yet");
  for (const net of [a, b, c]) assert(!net.isConnected(eKeys.peerId));

  // The epoch change on A, B and C: D leaves, E joins. D keeps the old set and keeps dialing.
  const refusedBefore = [a, b, c].map((n) => rejected(n, "unknown_peer"));
  await Promise.all([a, b, c].map((n) => n.updateValidatorSet(next)));
  for (const net of [a, b, c]) {
    assert(!net.isConnected(d.peerId), "D is disconnected when updateValidatorSet resolves");
    assert(!net.validators.some((v) => v.equals(d.peerId)));
  }
  await until(() => d.peers().length === 0, "D losing every connection");
  const lost = await aEvents.find(
    (ev) => ev.type === "lost-peer" && ev.peer.equals(d.peerId) ? ev : undefined,
    "A's lost-peer for D",
  );
  assertEquals(lost.reason, "stale");

  // E is connected to A, B and C without anyone restarting.
  await until(() => [a, b, c, e].every((n) => n.peers().length === 3), "A, B, C and E in a mesh");
  for (const net of [a, b, c]) {
    assert(net.peers().find((p) => p.peerId.equals(eKeys.peerId))!.validator);
  }
  await aEvents.find(
    (ev) => ev.type === "new-peer" && ev.peer.equals(eKeys.peerId) ? ev : undefined,
    "A's new-peer for E",
  );

  // D's own redials (backoff 100 ms, then 200, 400...) are refused: watch for a while.
  const watchers = [a, b, c].map((n) => n.subscribe());
  const seen: PeerEvent[] = [];
  const watching = watchers.map(async (w) => {
    for await (const ev of w) seen.push(ev);
  });
  try {
    // A dial through D's manager is refused by the responder.
    await assertRejectsCode(
      d.manager.dial(a.peerId, [Multiaddr.parse("/memory/1")]),
      "UNAUTHORIZED",
      "HANDSHAKE_FAILED",
      "CONNECTION_RESET",
      "CONNECTION_CLOSED",
    );
    // So is a fresh network with D's keys that still believes in the old set.
    const d2 = new ValidatorNetwork({
      networkId: "test",
      keys: cluster.keys[3],
      validators: cluster.infos,
      memory: cluster.memory,
      timeouts: FAST,
      logger: quiet,
    });
    cluster.extra.push(d2);
    await d2.start();
    await assertRejectsCode(
      d2.manager.dial(b.peerId, [Multiaddr.parse("/memory/2")]),
      "UNAUTHORIZED",
      "HANDSHAKE_FAILED",
      "CONNECTION_RESET",
      "CONNECTION_CLOSED",
    );
    await delay(500);
    assertEquals(d2.peers().length, 0);
  } finally {
    for (const w of watchers) w.close();
    await Promise.all(watching);
  }
  assertEquals(d.peers().length, 0);
  for (const net of [a, b, c]) assert(!net.isConnected(d.peerId));
  assertEquals(seen.filter((ev) => ev.peer.peerId.equals(d.peerId)).length, 0, "D never came back");
  // The responders refused D's key as soon as it was decrypted: UNAUTHORIZED, counted.
  const refusedAfter = [a, b, c].map((n) => rejected(n, "unknown_peer"));
  const refusals = refusedAfter.reduce((s, v, i) => s + v - refusedBefore[i], 0);
  assert(refusals >= 3, `D's handshakes refused as unknown_peer: ${refusals}`);
});

/** Validator handshakes `net` refused for `reason`. */
function rejected(net: ValidatorNetwork, reason: string): number {
  return metricValue(net.metrics, "validator_network_noise_rejected_total", {
    profile: "validator",
    reason,
  });
}

// ---- outsiders ------------------------------------------------------------------

Deno.test("a key outside the validator set never becomes a peer, and nothing it sends reaches an application", async () => {
  await using cluster = memoryCluster(3);
  const chats = cluster.nets.map((n) => n.register("/app/chat/1.0.0", { kind: "direct-send" }));
  const echoes = cluster.nets.map((n) => n.register("/app/echo/1.0.0", { kind: "rpc" }));
  const chatEvents = chats.map((c) => new EventReader(c.events));
  const echoEvents = echoes.map((c) => new EventReader(c.events));
  await cluster.start();
  await cluster.fullMesh();

  // The outsider lists the validators and itself as its set, and listens where they can dial.
  const xKeys = ValidatorKeys.generate();
  const x = new ValidatorNetwork({
    networkId: "test",
    keys: xKeys,
    listen: ["/memory/9"],
    validators: [...cluster.infos, xKeys.info(["/memory/9"])],
    memory: cluster.memory,
    timeouts: FAST,
    logger: quiet,
  });
  cluster.extra.push(x);
  const xChat = x.register("/app/chat/1.0.0", { kind: "direct-send" });
  const xEcho = x.register("/app/echo/1.0.0", { kind: "rpc" });
  await x.start();

  const end = performance.now() + 600;
  while (performance.now() < end) {
    for (const k of cluster.keys) {
      await assertRejectsCode(xChat.sendTo(k.peerId, encoder.encode("let me in")), "NOT_CONNECTED");
      await assertRejectsCode(xEcho.request(k.peerId, encoder.encode("hello?")), "NOT_CONNECTED");
    }
    const results = await xChat.broadcast(encoder.encode("anyone?"));
    assertEquals(results.size, 0, "the outsider has no validator to broadcast to");
    await delay(50);
  }
  await assertRejectsCode(
    x.manager.dial(cluster.keys[0].peerId, [Multiaddr.parse("/memory/1")]),
    "UNAUTHORIZED",
    "HANDSHAKE_FAILED",
    "CONNECTION_RESET",
    "CONNECTION_CLOSED",
  );
  assertEquals(x.peers().length, 0);
  for (const net of cluster.nets) {
    assertEquals(net.peers().length, 2, "the validators keep only each other");
    assert(!net.isConnected(xKeys.peerId));
  }
  for (const [i, reader] of [...chatEvents, ...echoEvents].entries()) {
    const fromX = (await reader.drain(20)).filter((ev) => ev.peer.equals(xKeys.peerId));
    assertEquals(fromX, [], `events from the outsider at handle ${i}`);
  }
  const refused = cluster.nets.reduce((s, n) => s + rejected(n, "unknown_peer"), 0);
  assert(refused >= 3, `the outsider's handshakes refused as unknown_peer: ${refused}`);
});

Deno.test("a validator's peer id with another Noise key cannot connect", async () => {
  await using cluster = memoryCluster(3);
  await cluster.start();
  await cluster.fullMesh();
  // Validator 2's identity, a Noise key of the impostor's own.
  const stolen = cluster.keys[2];
  const impostorKeys = new ValidatorKeys(stolen.identity, ValidatorKeys.generate().noise);
  const impostor = new ValidatorNetwork({
    networkId: "test",
    keys: impostorKeys,
    validators: [
      ...cluster.infos.slice(0, 2),
      impostorKeys.info(),
    ],
    memory: cluster.memory,
    timeouts: FAST,
    logger: quiet,
  });
  cluster.extra.push(impostor);
  await impostor.start();
  await assertRejectsCode(
    impostor.manager.dial(cluster.keys[0].peerId, [Multiaddr.parse("/memory/1")]),
    "UNAUTHORIZED",
    "HANDSHAKE_FAILED",
    "CONNECTION_RESET",
    "CONNECTION_CLOSED",
  );
  await delay(300);
  assertEquals(impostor.peers().length, 0);
  // The real validator 2 keeps its connections.
  const conns = cluster.nets.slice(0, 2).map((n) =>
    n.peers().find((p) => p.peerId.equals(stolen.peerId))?.connectedAt
  );
  assert(conns.every((t) => t !== undefined));
  assertEquals(cluster.nets[2].peers().length, 2);
});

Deno.test("another network id cannot connect, with the right keys", async () => {
  await using cluster = memoryCluster(2);
  await cluster.start();
  await cluster.fullMesh();
  const keys = ValidatorKeys.generate();
  const other = new ValidatorNetwork({
    networkId: "mainnet",
    keys,
    validators: [...cluster.infos, keys.info()],
    memory: cluster.memory,
    timeouts: FAST,
    logger: quiet,
  });
  cluster.extra.push(other);
  // Trusted on both validators, but its handshakes are bound to "mainnet".
  await Promise.all(cluster.nets.map((n) => n.updateValidatorSet([...cluster.infos, keys.info()])));
  await other.start();
  await delay(300);
  assertEquals(other.peers().length, 0);
  for (const net of cluster.nets) assertEquals(net.peers().length, 1);
});

// ---- stop -----------------------------------------------------------------------

/** Sends `count` messages of `size` bytes without waiting; records each outcome. */
function flood(handle: DirectSendHandle, peer: string, count: number, size: number) {
  const outcomes: ("pending" | "sent" | NetworkError | unknown)[] = Array(count).fill("pending");
  const promises = Array.from(
    { length: count },
    (_, i) =>
      handle.sendTo(peer, new Uint8Array(size).fill(i & 0xff)).then(
        () => {
          outcomes[i] = "sent";
        },
        (err) => {
          outcomes[i] = err;
        },
      ),
  );
  return { outcomes, all: Promise.all(promises) };
}

/** Waits until no outcome changes for `quietMs`. */
async function settleDown(outcomes: unknown[], quietMs: number): Promise<void> {
  let last = -1;
  const end = performance.now() + 5_000;
  while (performance.now() < end) {
    const settled = outcomes.filter((o) => o !== "pending").length;
    if (settled === last) return;
    last = settled;
    await delay(quietMs);
  }
}

const BACKPRESSURE_LIMITS = { outboundQueue: 4, inboundQueue: 1 };

Deno.test("stop() while messages are queued fails the pending sendTo promises with typed errors, and nothing hangs", async () => {
  await using cluster = memoryCluster(2, { limits: BACKPRESSURE_LIMITS });
  const [a, b] = cluster.nets;
  const bulkA = a.register("/app/bulk/1.0.0", { kind: "direct-send", priority: "low" });
  b.register("/app/bulk/1.0.0", { kind: "direct-send", priority: "low" }); // never read
  await cluster.start();
  await cluster.fullMesh();

  const { outcomes, all } = flood(bulkA, b.peerId.toString(), 40, 512 * 1024);
  await settleDown(outcomes, 200);
  const pending = outcomes.filter((o) => o === "pending").length;
  assert(pending > 0, "the receiver that never reads makes sendTo wait");
  assert(outcomes.every((o) => o === "pending" || o === "sent"), "nothing failed before stop");

  const stopped = await within(a.stop(), 3_000);
  assert(stopped !== "pending", "stop() returns in bounded time");
  assert(!("error" in stopped), `stop() resolves: ${"error" in stopped && stopped.error}`);
  const settled = await within(all, 2_000);
  assert(settled !== "pending", "every pending sendTo settles once stopped");
  const failed = outcomes.filter((o) => o !== "sent");
  assert(failed.length >= pending, `${failed.length} failed, ${pending} were pending`);
  for (const err of failed) {
    assertNetworkError(err, "CONNECTION_CLOSED", "CONNECTION_RESET", "ABORTED");
  }
  // Once stopped: sending fails at once, typed.
  await assertRejectsCode(bulkA.sendTo(b.peerId, new Uint8Array(1)), "CONNECTION_CLOSED");
  assertEquals(a.peers().length, 0);
  await until(() => b.peers().length === 0, "B losing A");
});

Deno.test("a receiver that stops fails its sender's queued messages with typed errors", async () => {
  await using cluster = memoryCluster(2, { limits: BACKPRESSURE_LIMITS });
  const [a, b] = cluster.nets;
  const bulkA = a.register("/app/bulk/1.0.0", { kind: "direct-send" });
  b.register("/app/bulk/1.0.0", { kind: "direct-send" }); // never read
  await cluster.start();
  await cluster.fullMesh();

  const { outcomes, all } = flood(bulkA, b.peerId.toString(), 40, 512 * 1024);
  await settleDown(outcomes, 200);
  assert(outcomes.some((o) => o === "pending"), "sendTo waits");

  const stopped = await within(b.stop(), 3_000);
  assert(stopped !== "pending" && !("error" in stopped), "the receiver stops in bounded time");
  const settled = await within(all, 5_000);
  assert(settled !== "pending", "every pending sendTo settles once the receiver is gone");
  const failed = outcomes.filter((o) => o !== "sent");
  assert(failed.length > 0);
  for (const err of failed) {
    assertNetworkError(err, "CONNECTION_CLOSED", "CONNECTION_RESET", "NOT_CONNECTED");
  }
  await until(() => a.peers().length === 0, "A losing B");
  // A keeps running: it redials B (refused: nobody listens) and stops cleanly.
  await assertRejectsCode(bulkA.sendTo(b.peerId, new Uint8Array(1)), "NOT_CONNECTED");
});

// A network that received DirectSend messages from a peer that keeps
// running stops at once: closing DirectSend resets the streams it reads, so
// the graceful close of the connection waits for none.
Deno.test({
  name: "stop() of a validator that received DirectSend messages from a running peer is prompt",
  async fn() {
    await using cluster = memoryCluster(2);
    const chats = cluster.nets.map((n) => n.register("/app/chat/1.0.0", { kind: "direct-send" }));
    const reader = new EventReader(chats[1].events);
    await cluster.start();
    await cluster.settledMesh();
    await chats[0].sendTo(cluster.keys[1].peerId, encoder.encode("hello"));
    await reader.find((ev) => ev.type === "message" ? ev : undefined, "the message");
    const start = performance.now();
    await cluster.nets[1].stop();
    const took = performance.now() - start;
    assert(took < 1_000, `stop() took ${took.toFixed(0)} ms`);
  },
});

Deno.test("stop() is idempotent, ends the handles' events, and start() after it fails", async () => {
  await using cluster = memoryCluster(2);
  const [a, b] = cluster.nets;
  const chat = a.register("/app/chat/1.0.0", { kind: "direct-send" });
  const echo = a.register("/app/echo/1.0.0", { kind: "rpc" });
  const chatEvents = new EventReader(chat.events);
  await a.start();
  await a.start(); // a no-op
  await b.start();
  await cluster.fullMesh();
  const receiving = echo.receive();
  await Promise.all([a.stop(), a.stop()]);
  await a.stop();
  assertEquals(
    await within(receiving, 1_000),
    { value: undefined },
    "receive() ends with undefined",
  );
  // The events end (after what was queued).
  const rest = await chatEvents.drain(1_000);
  assertEquals(await chatEvents.next(100), undefined, "events end once stopped");
  assert(rest.every((ev) => ev.type !== "message"));
  assertEquals(a.peers(), []);
  await assertRejectsCode(a.start(), "CONNECTION_CLOSED");
  try {
    a.register("/app/other/1.0.0", { kind: "rpc" });
    throw new Error("register after stop succeeded");
  } catch (err) {
    assertNetworkError(err, "CONNECTION_CLOSED");
  }
  await assertRejectsCode(
    echo.request(b.peerId, new Uint8Array(1)),
    "CONNECTION_CLOSED",
    "NOT_CONNECTED",
  );
});

Deno.test("start() on an address in use fails with ADDRESS_IN_USE and leaves nothing running", async () => {
  const memory = new MemoryNetwork();
  const [k1, k2] = [ValidatorKeys.generate(), ValidatorKeys.generate()];
  const validators = [k1.info(["/memory/7"]), k2.info(["/memory/7"])];
  const common = { networkId: "test", validators, memory, logger: quiet };
  await using first = new ValidatorNetwork({ ...common, keys: k1, listen: ["/memory/7"] });
  await first.start();
  const second = new ValidatorNetwork({ ...common, keys: k2, listen: ["/memory/7"] });
  await assertRejectsCode(second.start(), "ADDRESS_IN_USE");
  await assertRejectsCode(second.start(), "CONNECTION_CLOSED");
  await second.stop();
});

// ---- await using ----------------------------------------------------------------

Deno.test("`await using` stops the network at the end of its scope", async () => {
  const memory = new MemoryNetwork();
  const [k1, k2] = [ValidatorKeys.generate(), ValidatorKeys.generate()];
  const validators: ValidatorInfo[] = [k1.info(["/memory/1"]), k2.info(["/memory/2"])];
  const common = { networkId: "test", validators, memory, timeouts: FAST, logger: quiet };
  await using keeper = new ValidatorNetwork({ ...common, keys: k1, listen: ["/memory/1"] });
  const events = new EventReader(keeper.subscribe());
  await keeper.start();
  let escaped: ValidatorNetwork;
  {
    await using scoped = new ValidatorNetwork({ ...common, keys: k2, listen: ["/memory/2"] });
    escaped = scoped;
    await scoped.start();
    await scoped.connected(k1.peerId, { timeout: 5_000 });
    await settled([keeper, scoped]);
    assertEquals(scoped.peers().length, 1);
    await events.drain(50);
  }
  // Out of scope: stopped, its connection closed, its address free again.
  assertEquals(escaped.peers(), []);
  await assertRejectsCode(escaped.start(), "CONNECTION_CLOSED");
  const lost = await events.find(
    (ev) => ev.type === "lost-peer" ? ev : undefined,
    "the keeper's lost-peer",
  );
  assertEquals(lost.peer.peerId.toString(), k2.peerId.toString());
  assertEquals(lost.reason, "remote_closed");
  assertEquals(keeper.peers(), []);
  const listener = memory.listen("/memory/2");
  listener.close();
});

// ---- libp2p profile --------------------------------------------------------------

Deno.test("libp2p profile: two validators connect and RPC works; an outsider connects but is no validator", async () => {
  await using cluster = memoryCluster(2, { profile: "libp2p" });
  const [a, b] = cluster.nets;
  assertEquals(a.profile, "libp2p");
  const echoB = b.register("/app/echo/1.0.0", { kind: "rpc" });
  const echoA = a.register("/app/echo/1.0.0", { kind: "rpc" });
  const chatA = a.register("/app/chat/1.0.0", { kind: "direct-send" });
  void serveEcho(echoB);
  await cluster.start();
  await cluster.fullMesh();
  assert(a.peers()[0].validator);
  // Both dial at once here: a request may land on the connection that loses
  // the race, and fails then with a retriable error (never silently); the
  // retry goes over the connection both kept.
  const request = () =>
    echoA.request(b.peerId.toString(), encoder.encode("libp2p"), { timeout: 2_000 });
  let reply: Uint8Array | undefined;
  for (let attempt = 1; reply === undefined; attempt++) {
    try {
      reply = await request();
    } catch (err) {
      assert(NetworkError.is(err) && err.retriable, `a retriable error, not ${err}`);
      assert(attempt < 5, `still failing after ${attempt} attempts: ${err}`);
      await delay(50);
    }
  }
  assertEquals(decoder.decode(reply), "libp2p");
  assert((await a.ping(b.peerId)) > 0);

  // Anyone connects in the libp2p profile: the outsider is a peer, not a validator.
  const xKeys = ValidatorKeys.generate();
  const x = new ValidatorNetwork({
    networkId: "test",
    profile: "libp2p",
    keys: xKeys,
    validators: [...cluster.infos, xKeys.info()],
    memory: cluster.memory,
    timeouts: FAST,
    logger: quiet,
  });
  cluster.extra.push(x);
  await x.start();
  await a.connected(xKeys.peerId, { timeout: 5_000 });
  const listed = a.peers().find((p) => p.peerId.equals(xKeys.peerId))!;
  assertEquals(listed.validator, false);
  const results = await chatA.broadcast(encoder.encode("validators only"));
  assertEquals([...results.keys()], [b.peerId.toString()], "broadcast skips the outsider");
});
