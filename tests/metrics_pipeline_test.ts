/**
 * The pipeline's per-protocol and queue metrics, driven by real nodes over
 * the memory transport:
 *
 * - `libp2p_streams_open{protocol,direction}` rises when a stream's protocol
 *   is negotiated and falls when the yamux stream is released (closed both
 *   ways or reset); `libp2p_streams_total{protocol,direction}` counts it once;
 *   `libp2p_stream_bytes_total{protocol,direction="in"|"out"}` adds the
 *   stream's own byte counters when it ends. Failed negotiations count nowhere.
 * - `yamux_accept_queue_depth` is the inbound streams waiting to be taken.
 * - `transport_pending_inbound_upgrades` is the inbound connections being
 *   upgraded or upgraded and not yet taken.
 *
 * The registry is process-wide, so every check reads a delta from a baseline.
 */

import { assert, assertEquals, assertRejectsCode } from "./_assert.ts";
import { randomBytes, readAll } from "./_bytes.ts";
import { MemoryNetwork, MemoryTransport } from "../memsocket/mod.ts";
import { delay } from "../netcore/_async.ts";
import { Ed25519Identity } from "../netcore/identity/mod.ts";
import { Libp2pNode } from "../netcore/libp2p_node.ts";
import { libp2pUpgrade } from "../netcore/libp2p_upgrade.ts";
import { defaultRegistry, type Labels } from "../netcore/metrics.ts";
import { Multiaddr } from "../netcore/multiaddr.ts";
import type { YamuxStreamStats } from "../netcore/multiplexing/yamux_stream.ts";
import { andThen } from "../netcore/transport/and_then.ts";

const PROTOCOL = "/metrics-test/1.0.0";

function value(name: string, labels: Labels = {}): number {
  return defaultRegistry.find(name)?.get(labels) ?? 0;
}

/** The current value of `name{labels}`, and later how far it moved. */
function watch(name: string, labels: Labels = {}): () => number {
  const base = value(name, labels);
  return () => value(name, labels) - base;
}

/** The sum over every series of `name`. */
function sum(name: string): number {
  let total = 0;
  for (const { value } of defaultRegistry.find(name)?.entries() ?? []) total += value;
  return total;
}

/** Waits (up to 2 s) for `condition`; fails with `what` otherwise. */
async function until(condition: () => boolean, what: string): Promise<void> {
  for (let i = 0; i < 400 && !condition(); i++) await delay(5);
  assert(condition(), `timed out waiting for ${what}`);
}

async function twoNodes(): Promise<
  { server: Libp2pNode; client: Libp2pNode; network: MemoryNetwork }
> {
  const network = new MemoryNetwork();
  const server = await Libp2pNode.create({
    listen: [Multiaddr.parse("/memory/0")],
    transports: [new MemoryTransport({ network })],
  });
  const client = await Libp2pNode.create({ transports: [new MemoryTransport({ network })] });
  return { server, client, network };
}

Deno.test("a negotiated stream is open while it lives, counted once, and its bytes added when it ends", async () => {
  const { server, client } = await twoNodes();
  try {
    const request = randomBytes(100_000);
    const response = randomBytes(30_000);
    const handlerStarted = Promise.withResolvers<void>();
    const serverStats = Promise.withResolvers<YamuxStreamStats>();
    server.handle(PROTOCOL, async (stream) => {
      handlerStarted.resolve();
      assertEquals((await readAll(stream.readable)).length, request.length);
      const writer = stream.writable.getWriter();
      await writer.write(response);
      await writer.close();
      await stream.closed;
      serverStats.resolve(stream.stream.stats());
    });
    const openOut = watch("libp2p_streams_open", { protocol: PROTOCOL, direction: "outbound" });
    const openIn = watch("libp2p_streams_open", { protocol: PROTOCOL, direction: "inbound" });
    const totalOut = watch("libp2p_streams_total", { protocol: PROTOCOL, direction: "outbound" });
    const totalIn = watch("libp2p_streams_total", { protocol: PROTOCOL, direction: "inbound" });
    const bytesIn = watch("libp2p_stream_bytes_total", { protocol: PROTOCOL, direction: "in" });
    const bytesOut = watch("libp2p_stream_bytes_total", { protocol: PROTOCOL, direction: "out" });

    const stream = await client.newStream(server.listenAddrs[0], [PROTOCOL]);
    assertEquals([openOut(), totalOut()], [1, 1], "the dialer's stream, once negotiated");
    await handlerStarted.promise;
    assertEquals([openIn(), totalIn()], [1, 1], "the listener's stream, once negotiated");
    assertEquals([bytesIn(), bytesOut()], [0, 0], "bytes are added when the stream ends");

    const writer = stream.writable.getWriter();
    const reading = readAll(stream.readable);
    await writer.write(request);
    await writer.close();
    assertEquals((await reading).length, response.length);
    await stream.closed;
    const clientStats = stream.stream.stats();
    const serverSide = await serverStats.promise;

    assertEquals([openOut(), openIn()], [0, 0], "released on both sides");
    assertEquals([totalOut(), totalIn()], [1, 1], "counted once");
    // The stream's own counters: the payload plus the multistream-select lines.
    assertEquals(clientStats.bytesSent, serverSide.bytesReceived);
    assertEquals(serverSide.bytesSent, clientStats.bytesReceived);
    const overhead = clientStats.bytesSent - request.length;
    assert(overhead > 0 && overhead < 100, `negotiation overhead ${overhead}`);
    assertEquals(
      serverSide.bytesSent - response.length,
      overhead,
      "each side sends the same lines",
    );
    // Both nodes live in this process, so each direction sums both ends.
    assertEquals(bytesOut(), clientStats.bytesSent + serverSide.bytesSent);
    assertEquals(bytesIn(), clientStats.bytesReceived + serverSide.bytesReceived);
  } finally {
    await client.close();
    await server.close();
  }
});

Deno.test("a reset stream leaves the open gauge on both sides and still adds its bytes", async () => {
  const { server, client } = await twoNodes();
  try {
    const received = Promise.withResolvers<void>();
    const serverDone = Promise.withResolvers<void>();
    server.handle(PROTOCOL, async (stream) => {
      const reader = stream.readable.getReader();
      await reader.read();
      received.resolve();
      await reader.read().catch(() => {});
      await stream.closed;
      serverDone.resolve();
    });
    const openOut = watch("libp2p_streams_open", { protocol: PROTOCOL, direction: "outbound" });
    const openIn = watch("libp2p_streams_open", { protocol: PROTOCOL, direction: "inbound" });
    const bytesOut = watch("libp2p_stream_bytes_total", { protocol: PROTOCOL, direction: "out" });

    const stream = await client.newStream(server.listenAddrs[0], [PROTOCOL]);
    await stream.writable.getWriter().write(randomBytes(5_000));
    await received.promise;
    assertEquals([openOut(), openIn()], [1, 1]);
    stream.abort(new Error("give up"));
    await stream.closed;
    await serverDone.promise;
    assertEquals([openOut(), openIn()], [0, 0]);
    assert(bytesOut() >= 5_000, `bytes out ${bytesOut()}`);
  } finally {
    await client.close();
    await server.close();
  }
});

Deno.test("a failed negotiation counts no stream", async () => {
  const { server, client } = await twoNodes();
  try {
    server.handle(PROTOCOL, () => {});
    const opened = sum("libp2p_streams_total");
    const open = sum("libp2p_streams_open");
    const failed = watch("libp2p_inbound_streams_total", {
      protocol: "",
      outcome: "negotiation_failed",
    });
    const conn = await client.dial(server.listenAddrs[0]);
    await assertRejectsCode(() => conn.openStream(["/nope/1.0.0"]), "UNSUPPORTED_PROTOCOL");
    await until(() => failed() === 1, "the server to count the failure");
    assertEquals(sum("libp2p_streams_total"), opened);
    assertEquals(sum("libp2p_streams_open"), open);
  } finally {
    await client.close();
    await server.close();
  }
});

Deno.test("yamux_accept_queue_depth counts inbound streams until they are taken or dropped", async () => {
  const network = new MemoryNetwork();
  const identity = Ed25519Identity.generate();
  // A bare upgraded listener: nothing takes its streams until the test does.
  const transport = andThen(new MemoryTransport({ network }), libp2pUpgrade(identity));
  const listener = await transport.listen(Multiaddr.parse("/memory/0"));
  const client = await Libp2pNode.create({ transports: [new MemoryTransport({ network })] });
  try {
    const depth = watch("yamux_accept_queue_depth");
    const accepting = listener[Symbol.asyncIterator]().next();
    const conn = await client.dial(listener.addr.withPeerId(identity.peerId.toString()));
    const accepted = await accepting;
    assert(!accepted.done);
    const serverConn = accepted.value;

    const first = conn.openStream([PROTOCOL]);
    const second = conn.openStream([PROTOCOL]);
    second.catch(() => {});
    await until(() => depth() === 2, "two queued streams");
    const inbound = serverConn[Symbol.asyncIterator]();
    const taken = await inbound.next();
    assert(!taken.done);
    assertEquals(depth(), 1, "taking a stream dequeues it");

    const served = await serverConn.acceptStream(taken.value, [PROTOCOL]);
    assertEquals((await first).protocol, PROTOCOL);
    assertEquals(served.protocol, PROTOCOL);

    // Closing the session drops the stream still queued.
    const closing = serverConn.close();
    await until(() => depth() === 0, "the queue to be dropped");
    await assertRejectsCode(() => second, "CONNECTION_RESET", "CONNECTION_CLOSED");
    served.abort();
    await closing;
  } finally {
    await client.close();
    await listener.close();
  }
});

Deno.test("transport_pending_inbound_upgrades counts upgrades running and upgraded connections not taken", async () => {
  const network = new MemoryNetwork();
  const identity = Ed25519Identity.generate();
  const transport = andThen(new MemoryTransport({ network }), libp2pUpgrade(identity));
  const listener = await transport.listen(Multiaddr.parse("/memory/0"));
  const addr = listener.addr.withPeerId(identity.peerId.toString());
  const client = await Libp2pNode.create({ transports: [new MemoryTransport({ network })] });
  const raw = new MemoryTransport({ network });
  try {
    const pending = watch("transport_pending_inbound_upgrades");
    const inbound = listener[Symbol.asyncIterator]();
    const first = inbound.next();

    // A peer that connects and never speaks: its upgrade stays running.
    const silent = await raw.dial(listener.addr);
    await until(() => pending() === 1, "the silent peer's upgrade");

    // An upgrade that completes while someone waits is handed out at once.
    await client.dial(addr);
    const taken = await first;
    assert(!taken.done);
    await until(() => pending() === 1, "the first connection to be taken");

    // One that completes while nobody waits stays pending until taken.
    await client.dial(addr, { reuse: false });
    await until(() => pending() === 2, "the upgraded, untaken connection");
    const second = await inbound.next();
    assert(!second.done);
    assertEquals(pending(), 1);

    silent.abort(new Error("gone"));
    await until(() => pending() === 0, "the failed upgrade");
    taken.value.abort();
    second.value.abort();
  } finally {
    await client.close();
    await listener.close();
  }
});
