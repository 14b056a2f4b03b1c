/**
 * The handles of a `ValidatorNetwork`, as the issue specifies them:
 *
 * - `register()`: a DirectSend handle (`sendTo`, `broadcast`, `events`,
 *   `receive`) and an RPC handle (`request`, `broadcast`, `events`,
 *   `receive`); a peer is a `PeerId` or its string form; each failure is a
 *   typed `NetworkError`;
 * - every handle's events tell of peers coming (`new-peer`) and going
 *   (`lost-peer`, with the reason);
 * - `net.consensus`: consensus messages by DirectSend arrive decoded, block
 *   requests by RPC are answered with blocks, what does not decode is
 *   dropped (messages) or refused (requests) and counted;
 * - `net.mempool`: transaction batches are acknowledged with their batch id
 *   and the accepted count;
 * - `net.ping(peer)`: a positive round trip.
 */

import { create, toBinary } from "@bufbuild/protobuf";
import {
  CONSENSUS_DIRECT_SEND,
  CONSENSUS_RPC,
  type ConsensusEvent,
  type DirectSendHandleEvent,
  MEMPOOL_RPC,
  type RpcHandle,
  type RpcHandleEvent,
  ValidatorKeys,
  ValidatorNetwork,
} from "../mod.ts";
import { ConsensusMsgSchema } from "../validator/proto/mod.ts";
import { PING_RPC } from "../validator/mod.ts";
import { assert, assertEquals, assertRejectsCode, assertThrowsCode } from "./_assert.ts";
import {
  type Cluster,
  EventReader,
  FAST,
  memoryCluster,
  metricValue,
  quiet,
} from "./_validators.ts";

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** Answers every request of `handle` with its own bytes, until the network stops. */
function serveEcho(handle: RpcHandle): void {
  void (async () => {
    while (true) {
      const req = await handle.receive();
      if (req === undefined) return;
      await req.respond(req.request).catch(() => {});
    }
  })();
}

/** `n` validators on memory, `setup` run on each before start, then a settled mesh. */
async function meshed<T>(
  n: number,
  setup: (net: Cluster["nets"][number], i: number) => T,
): Promise<{ cluster: Cluster; handles: T[] }> {
  const cluster = memoryCluster(n);
  try {
    const handles = cluster.nets.map(setup);
    await cluster.start();
    await cluster.settledMesh();
    return { cluster, handles };
  } catch (err) {
    await cluster[Symbol.asyncDispose]();
    throw err;
  }
}

function refused(cluster: Cluster, i: number, protocol: string, reason: string): number {
  return metricValue(cluster.nets[i].metrics, "validator_network_messages_refused_total", {
    protocol,
    reason,
  });
}

// ---- RPC --------------------------------------------------------------------------

Deno.test("RPC: an echo round trip, with a PeerId and with its string form", async () => {
  const { cluster, handles: echoes } = await meshed(
    3,
    (net) => net.register("/app/echo/1.0.0", { kind: "rpc" }),
  );
  await using _ = cluster;
  serveEcho(echoes[1]);
  serveEcho(echoes[2]);
  const b = cluster.keys[1].peerId;
  const controller = new AbortController();
  const one = await echoes[0].request(b, encoder.encode("by id"), {
    timeout: 1_000,
    signal: controller.signal,
  });
  assertEquals(decoder.decode(one), "by id");
  const two = await echoes[0].request(b.toString(), encoder.encode("by text"));
  assertEquals(decoder.decode(two), "by text");
  // Many at once, each answered with its own bytes.
  const replies = await Promise.all(
    Array.from(
      { length: 50 },
      (_, i) => echoes[0].request(i % 2 ? b : b.toString(), encoder.encode(`#${i}`)),
    ),
  );
  assertEquals(replies.map((r) => decoder.decode(r)), replies.map((_, i) => `#${i}`));
  // A large one (1 MiB), byte for byte.
  const big = crypto.getRandomValues(new Uint8Array(65_536));
  const large = new Uint8Array(1 << 20).map((_, i) => big[i % big.length]);
  assertEquals(await echoes[0].request(cluster.keys[2].peerId, large), large);
  // RPC broadcast: each validator's answer.
  const all = await echoes[0].broadcast(encoder.encode("everyone"));
  assertEquals([...all.keys()].sort(), [b.toString(), cluster.keys[2].peerId.toString()].sort());
  for (const reply of all.values()) {
    assert(reply instanceof Uint8Array);
    assertEquals(decoder.decode(reply), "everyone");
  }
  assertEquals(echoes[0].protocol, "/app/echo/1.0.0");
  assertEquals(echoes[0].kind, "rpc");
});

Deno.test("RPC: the requester sees each failure as a typed error", async () => {
  const { cluster, handles } = await meshed(2, (net, i) => ({
    strict: net.register("/app/strict/1.0.0", { kind: "rpc", timeout: 400 }),
    small: net.register("/app/small/1.0.0", { kind: "rpc", maxMessageSize: 16 }),
    only: i === 1 ? net.register("/app/only-b/1.0.0", { kind: "rpc" }) : undefined,
  }));
  await using _ = cluster;
  const b = cluster.keys[1].peerId;
  const bEvents = new EventReader(handles[1].strict.events);
  const client = handles[0].strict;

  // The responder refuses: REMOTE_ERROR with its message.
  const rejecting = client.request(b, encoder.encode("no"), { timeout: 2_000 });
  const req = await bEvents.find(
    (ev: RpcHandleEvent) => ev.type === "request" ? ev : undefined,
    "the request",
  );
  assertEquals(req.peer.toString(), cluster.keys[0].peerId.toString());
  assertEquals(decoder.decode(req.request), "no");
  await req.reject("not today");
  const remote = await assertRejectsCode(rejecting, "REMOTE_ERROR");
  assert(remote.message.includes("not today"), remote.message);

  // No answer: TIMEOUT, after the protocol's default (400 ms) or the call's.
  let start = performance.now();
  await assertRejectsCode(client.request(b, encoder.encode("silence")), "TIMEOUT");
  const took = performance.now() - start;
  assert(took >= 390 && took < 3_000, `the protocol's timeout: ${took} ms`);
  start = performance.now();
  await assertRejectsCode(client.request(b, encoder.encode("x"), { timeout: 50 }), "TIMEOUT");
  assert(performance.now() - start < 350, "the call's timeout wins");

  // Cancelled: ABORTED, before and during the request.
  await assertRejectsCode(
    client.request(b, encoder.encode("x"), { signal: AbortSignal.abort() }),
    "ABORTED",
  );
  const controller = new AbortController();
  const cancelled = client.request(b, encoder.encode("x"), { signal: controller.signal });
  setTimeout(() => controller.abort(), 20);
  await assertRejectsCode(cancelled, "ABORTED");

  // Sizes: the request over the limit fails before it leaves.
  await assertRejectsCode(handles[0].small.request(b, new Uint8Array(17)), "FRAME_TOO_LARGE");

  // A protocol the peer does not serve.
  await assertRejectsCode(
    handles[1].only!.request(cluster.keys[0].peerId, encoder.encode("x")),
    "UNSUPPORTED_PROTOCOL",
  );

  // Peers: not connected, not a peer id.
  const stranger = ValidatorKeys.generate().peerId;
  await assertRejectsCode(client.request(stranger, encoder.encode("x")), "NOT_CONNECTED");
  await assertRejectsCode(
    client.request(stranger.toString(), encoder.encode("x")),
    "NOT_CONNECTED",
  );
  await assertRejectsCode(client.request("not-a-peer-id", encoder.encode("x")), "BAD_ADDRESS");
});

// ---- DirectSend -------------------------------------------------------------------

Deno.test("DirectSend: messages to one peer arrive in order, with a PeerId or its string form", async () => {
  const { cluster, handles: chats } = await meshed(
    2,
    (net) => net.register("/app/chat/1.0.0", { kind: "direct-send", priority: "high" }),
  );
  await using _ = cluster;
  const b = cluster.keys[1].peerId;
  const sends = Array.from(
    { length: 200 },
    (_, i) => chats[0].sendTo(i % 2 ? b : b.toString(), encoder.encode(`m${i}`)),
  );
  await Promise.all(sends);
  const got: string[] = [];
  while (got.length < 200) {
    const ev = await chats[1].receive({ signal: AbortSignal.timeout(5_000) });
    assert(ev !== undefined && ev.type === "message");
    assertEquals(ev.peer.toString(), cluster.keys[0].peerId.toString());
    got.push(decoder.decode(ev.message));
  }
  assertEquals(got, got.map((_, i) => `m${i}`));
  assertEquals(chats[0].kind, "direct-send");
  assertEquals(chats[0].protocol, "/app/chat/1.0.0");
  assert(chats[0].events === chats[0].events, "one consumer: the same iterable each time");
});

Deno.test("DirectSend: each failure is a typed error, and nothing is sent", async () => {
  const { cluster, handles: chats } = await meshed(
    2,
    (net) => net.register("/app/chat/1.0.0", { kind: "direct-send", maxMessageSize: 1024 }),
  );
  await using _ = cluster;
  const b = cluster.keys[1].peerId;
  await assertRejectsCode(chats[0].sendTo(b, new Uint8Array(1025)), "FRAME_TOO_LARGE");
  const stranger = ValidatorKeys.generate().peerId;
  await assertRejectsCode(chats[0].sendTo(stranger, new Uint8Array(1)), "NOT_CONNECTED");
  await assertRejectsCode(chats[0].sendTo("12D3KooWnope", new Uint8Array(1)), "BAD_ADDRESS");
  // What fits goes through; nothing of the refused ones arrives.
  await chats[0].sendTo(b, new Uint8Array(1024));
  const ev = await chats[1].receive({ signal: AbortSignal.timeout(5_000) });
  assertEquals(ev?.message.length, 1024);
  const more = await chats[1].receive({ signal: AbortSignal.timeout(100) }).catch(() => "none");
  assertEquals(more, "none");
  assertEquals(refused(cluster, 0, "/app/chat/1.0.0", "too_large_out"), 1);
});

// ---- events ------------------------------------------------------------------------

Deno.test("events: new-peer and lost-peer reach every handle, with the right peer and reason", async () => {
  const cluster = memoryCluster(4);
  await using _ = cluster;
  const [a, b, c, d] = cluster.nets;
  const chat = a.register("/app/chat/1.0.0", { kind: "direct-send" });
  const echo = a.register("/app/echo/1.0.0", { kind: "rpc" });
  const chatEvents = new EventReader(chat.events);
  const echoEvents = new EventReader(echo.events);
  await a.start();
  assertEquals(await chatEvents.drain(50), [], "no peer yet");

  // B comes: both handles hear of it.
  await b.start();
  for (const reader of [chatEvents, echoEvents] as EventReader<DirectSendHandleEvent>[]) {
    const ev = await reader.find(
      (ev) => ev.type === "new-peer" && ev.peer.equals(b.peerId) ? ev : undefined,
      "new-peer B",
    );
    assertEquals(ev.info.peerId.toString(), b.peerId.toString());
    assertEquals(ev.info.profile, "validator");
  }
  await Promise.all([c.start(), d.start()]);
  await cluster.settledMesh();
  await chatEvents.drain(50);
  await echoEvents.drain(50);

  // B stops: remote_closed.
  await b.stop();
  for (const reader of [chatEvents, echoEvents] as EventReader<DirectSendHandleEvent>[]) {
    const ev = await reader.find(
      (ev) => ev.type === "lost-peer" ? ev : undefined,
      "lost-peer B",
    );
    assert(ev.type === "lost-peer");
    assertEquals(ev.peer.toString(), b.peerId.toString());
    assertEquals(ev.reason, "remote_closed");
  }
  // C leaves the set: stale.
  await a.updateValidatorSet(cluster.infos.filter((_, i) => i !== 2));
  const stale = await chatEvents.find((ev) => ev.type === "lost-peer" ? ev : undefined, "lost C");
  assert(stale.type === "lost-peer");
  assertEquals([stale.peer.toString(), stale.reason], [c.peerId.toString(), "stale"]);
  // D is disconnected on request: requested.
  await a.manager.disconnect(d.peerId);
  const requested = await chatEvents.find(
    (ev) => ev.type === "lost-peer" ? ev : undefined,
    "lost D",
  );
  assert(requested.type === "lost-peer");
  assertEquals([requested.peer.toString(), requested.reason], [d.peerId.toString(), "requested"]);
  // D is still a validator: the connectivity manager brings it back.
  const back = await chatEvents.find(
    (ev) => ev.type === "new-peer" ? ev : undefined,
    "D back",
  );
  assertEquals(back.peer.toString(), d.peerId.toString());
});

// ---- consensus ---------------------------------------------------------------------

const vote = {
  message: {
    case: "vote" as const,
    value: { slot: 1n, height: 1n, blockHash: new Uint8Array(32).fill(7) },
  },
};

Deno.test("consensus: sendTo and broadcast of a ConsensusMsg arrive decoded", async () => {
  const { cluster, handles } = await meshed(3, (net) => net.consensus);
  await using _ = cluster;
  const readers = handles.map((h) => new EventReader<ConsensusEvent>(h.events));
  const [a, b, c] = cluster.keys.map((k) => k.peerId);
  const message = (ev: ConsensusEvent) => ev.type === "message" ? ev : undefined;

  await handles[0].sendTo(b.toString(), vote);
  const got = await readers[1].find(message, "the vote at B");
  assertEquals(got.peer.toString(), a.toString());
  assert(got.message.message.case === "vote");
  assertEquals(got.message.message.value.slot, 1n);
  assertEquals(got.message.message.value.height, 1n);
  assertEquals(got.message.message.value.blockHash, new Uint8Array(32).fill(7));

  const proposal = {
    message: {
      case: "proposal" as const,
      value: {
        block: {
          height: 2n,
          slot: 2n,
          parentHash: new Uint8Array(32),
          proposer: a.bytes,
          transactions: [encoder.encode("tx1"), encoder.encode("tx2")],
        },
        parentCert: { height: 1n, blockHash: new Uint8Array(32).fill(7), voters: [b.bytes] },
      },
    },
  };
  const results = await handles[0].broadcast(proposal);
  assertEquals([...results.keys()].sort(), [b.toString(), c.toString()].sort());
  for (const outcome of results.values()) assertEquals(outcome, undefined);
  for (const reader of readers.slice(1)) {
    const ev = await reader.find(message, "the proposal");
    assertEquals(ev.peer.toString(), a.toString());
    assert(ev.message.message.case === "proposal");
    const block = ev.message.message.value.block!;
    assertEquals([block.height, block.slot], [2n, 2n]);
    assertEquals(block.proposer, a.bytes);
    assertEquals(block.transactions.map((t) => decoder.decode(t)), ["tx1", "tx2"]);
    assertEquals(ev.message.message.value.parentCert?.voters, [b.bytes]);
  }
  assertEquals((await readers[0].drain(50)).filter((ev) => ev.type === "message"), []);
});

Deno.test("consensus: requestBlocks is answered with blocks; a refusal is REMOTE_ERROR", async () => {
  const { cluster, handles } = await meshed(2, (net) => net.consensus);
  await using _ = cluster;
  const b = cluster.keys[1].peerId;
  // B serves heights 1..10.
  void (async () => {
    for await (const ev of handles[1].events) {
      if (ev.type !== "block-request") continue;
      const { fromHeight, count } = ev.request;
      if (count > 100) {
        await ev.reject("too many blocks");
        continue;
      }
      const blocks = [];
      for (let h = fromHeight; h < fromHeight + BigInt(count) && h <= 10n; h++) {
        blocks.push({
          height: h,
          slot: h,
          parentHash: new Uint8Array(32),
          proposer: new Uint8Array(0),
          transactions: [],
        });
      }
      await ev.respond({ blocks });
    }
  })();
  const response = await handles[0].requestBlocks(b, { fromHeight: 4n, count: 3 });
  assertEquals(response.blocks.map((blk) => blk.height), [4n, 5n, 6n]);
  const tail = await handles[0].requestBlocks(b.toString(), { fromHeight: 9n, count: 5 });
  assertEquals(tail.blocks.map((blk) => blk.height), [9n, 10n]);
  const none = await handles[0].requestBlocks(b, { fromHeight: 11n, count: 5 }, { timeout: 1_000 });
  assertEquals(none.blocks, []);
  const err = await assertRejectsCode(
    handles[0].requestBlocks(b, { fromHeight: 1n, count: 1_000 }),
    "REMOTE_ERROR",
  );
  assert(err.message.includes("too many blocks"), err.message);
});

Deno.test("consensus: what does not decode is dropped and counted; the peer's next messages still arrive", async () => {
  // A speaks the consensus protocols raw (its own handles); B uses net.consensus.
  const { cluster, handles } = await meshed(2, (net, i) =>
    i === 0
      ? {
        raw: net.register(CONSENSUS_DIRECT_SEND, { kind: "direct-send", priority: "high" }),
        rawRpc: net.register(CONSENSUS_RPC, { kind: "rpc", priority: "high" }),
      }
      : { consensus: net.consensus });
  await using _ = cluster;
  const b = cluster.keys[1].peerId;
  const reader = new EventReader<ConsensusEvent>(handles[1].consensus!.events);
  const malformed = new Uint8Array([0x12, 0x05, 0x01]); // field 2 (vote): 5 bytes announced, 1 sent
  await handles[0].raw!.sendTo(b, malformed);
  await handles[0].raw!.sendTo(b, toBinary(ConsensusMsgSchema, create(ConsensusMsgSchema, vote)));
  const ev = await reader.find((ev) => ev.type === "message" ? ev : undefined, "the valid vote");
  assert(ev.message.message.case === "vote");
  assertEquals(ev.message.message.value.slot, 1n);
  assertEquals(refused(cluster, 1, CONSENSUS_DIRECT_SEND, "malformed"), 1);
  assertEquals((await reader.drain(50)).filter((e) => e.type === "message"), []);

  // A block request that does not decode: the requester is told, and it is counted.
  const err = await assertRejectsCode(
    handles[0].rawRpc!.request(b, malformed, { timeout: 2_000 }),
    "REMOTE_ERROR",
  );
  assert(err.message.includes("malformed"), err.message);
  assertEquals(refused(cluster, 1, CONSENSUS_RPC, "malformed"), 1);
  assertEquals((await reader.drain(50)).filter((e) => e.type === "block-request"), []);
});

Deno.test("consensus: a block response that does not decode fails requestBlocks with PROTOCOL_VIOLATION", async () => {
  const { cluster, handles } = await meshed(
    2,
    (net, i) =>
      i === 0 ? { consensus: net.consensus } : {
        rawRpc: net.register(CONSENSUS_RPC, { kind: "rpc", priority: "high" }),
      },
  );
  await using _ = cluster;
  void (async () => {
    while (true) {
      const req = await handles[1].rawRpc!.receive();
      if (req === undefined) return;
      await req.respond(new Uint8Array([0x0a, 0x09, 0x08])).catch(() => {});
    }
  })();
  await assertRejectsCode(
    handles[0].consensus!.requestBlocks(cluster.keys[1].peerId, { fromHeight: 1n, count: 1 }),
    "PROTOCOL_VIOLATION",
  );
});

// ---- mempool -----------------------------------------------------------------------

Deno.test("mempool: broadcastTransactions is acknowledged with the batch id and the accepted count", async () => {
  const { cluster, handles } = await meshed(2, (net) => net.mempool);
  await using _ = cluster;
  const [a, b] = cluster.keys.map((k) => k.peerId);
  const seen: bigint[] = [];
  void (async () => {
    for await (const ev of handles[1].events) {
      if (ev.type !== "transactions") continue;
      assertEquals(ev.peer.toString(), a.toString());
      seen.push(ev.batch.batchId);
      const txs = ev.batch.transactions.map((t) => decoder.decode(t));
      // Takes the transactions that start with "ok"; asks for a retry when any did not.
      const accepted = txs.filter((t) => t.startsWith("ok")).length;
      await ev.ack({ accepted, retry: accepted < txs.length });
    }
  })();
  const txs = (...names: string[]) => names.map((n) => encoder.encode(n));
  const first = await handles[0].broadcastTransactions(b, {
    transactions: txs("ok1", "ok2", "ok3"),
  });
  assertEquals([first.batchId, first.accepted, first.retry], [1n, 3, false]);
  const second = await handles[0].broadcastTransactions(b.toString(), {
    transactions: txs("ok4", "bad"),
  });
  assertEquals([second.batchId, second.accepted, second.retry], [2n, 1, true]);
  const chosen = await handles[0].broadcastTransactions(b, { batchId: 42n, transactions: [] });
  assertEquals([chosen.batchId, chosen.accepted], [42n, 0]);
  assertEquals(seen, [1n, 2n, 42n]);
  await assertRejectsCode(
    handles[0].broadcastTransactions(ValidatorKeys.generate().peerId, { transactions: [] }),
    "NOT_CONNECTED",
  );
});

Deno.test("mempool: an ack without counts says nothing was accepted; a batch that does not decode is refused and counted", async () => {
  const { cluster, handles } = await meshed(2, (net) => net.mempool);
  await using _ = cluster;
  const b = cluster.keys[1].peerId;
  void (async () => {
    for await (const ev of handles[1].events) {
      if (ev.type === "transactions") await ev.ack();
    }
  })();
  const ack = await handles[0].broadcastTransactions(b, {
    batchId: 7n,
    transactions: [encoder.encode("tx")],
  });
  assertEquals([ack.batchId, ack.accepted, ack.retry], [7n, 0, false]);
  // The mempool protocol is registered: a raw handle of the same id is refused.
  assertThrowsCode(
    () => cluster.nets[0].register(MEMPOOL_RPC, { kind: "rpc" }),
    "BAD_CONFIG",
  );
  // A third network speaks the mempool protocol raw, as B's peer.
  const keys = ValidatorKeys.generate();
  const infos = [...cluster.infos, keys.info()];
  await Promise.all(cluster.nets.map((n) => n.updateValidatorSet(infos)));
  const x = new ValidatorNetwork({
    networkId: "test",
    keys,
    validators: infos,
    memory: cluster.memory,
    timeouts: FAST,
    logger: quiet,
  });
  cluster.extra.push(x);
  const raw = x.register(MEMPOOL_RPC, { kind: "rpc" });
  await x.start();
  await x.connected(b, { timeout: 5_000 });
  const err = await assertRejectsCode(
    raw.request(b, new Uint8Array([0x12, 0x09]), { timeout: 2_000 }),
    "REMOTE_ERROR",
  );
  assert(err.message.includes("malformed"), err.message);
  assertEquals(refused(cluster, 1, MEMPOOL_RPC, "malformed"), 1);
});

// ---- ping ---------------------------------------------------------------------------

Deno.test("net.ping(peer) returns a positive round trip", async () => {
  const { cluster } = await meshed(2, () => undefined);
  await using _ = cluster;
  const [a, b] = cluster.nets;
  const rtt = await a.ping(b.peerId);
  assert(rtt > 0 && rtt < 1_000, `rtt ${rtt}`);
  assert((await b.ping(a.peerId.toString(), { timeout: 1_000 })) > 0);
  const pings = await Promise.all(Array.from({ length: 10 }, () => a.ping(b.peerId)));
  assert(pings.every((p) => p > 0));
  await assertRejectsCode(a.ping(ValidatorKeys.generate().peerId), "NOT_CONNECTED");
  await assertRejectsCode(a.ping(b.peerId, { signal: AbortSignal.abort() }), "ABORTED");
  // The ping protocol is the network's own.
  assertThrowsCode(() => a.register(PING_RPC, { kind: "rpc" }), "BAD_CONFIG");
});
