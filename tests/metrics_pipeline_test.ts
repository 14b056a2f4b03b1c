/**
 * The pipeline's metrics, driven by real nodes over the memory transport,
 * each test recording into a fresh registry through the components'
 * `metrics` options (`Libp2pNode`'s, `libp2pUpgrade`'s, `validatorUpgrade`'s,
 * `andThen`'s), scoped with a `network` label:
 *
 * - `validator_network_streams_open{protocol,direction}` rises when a
 *   stream's protocol is negotiated and falls when the yamux stream is
 *   released (closed both ways or reset); `validator_network_streams_total`
 *   counts it once; `validator_network_stream_bytes_total{direction="in"|"out"}`
 *   adds the stream's own byte counters when it ends. Failed negotiations
 *   count nowhere but in the failure counters.
 * - `validator_network_yamux_accept_queue_depth` is the inbound streams
 *   waiting to be taken.
 * - `validator_network_pending_inbound_upgrades` is the inbound connections
 *   being upgraded or upgraded and not yet taken.
 * - `validator_network_connected_peers{direction}` is the peers a node is
 *   connected to (one connection each), with
 *   `validator_network_peer_events_total{type,reason}` and
 *   `validator_network_dials_total{outcome}` beside it.
 * - Two nodes in one process on one registry, with different `network`
 *   labels, report apart; nothing goes to the default registry.
 */

import { assert, assertEquals, assertRejectsCode } from "./_assert.ts";
import { randomBytes } from "./_bytes.ts";
import { readAllFrom } from "./_streams.ts";
import { MemoryNetwork } from "../memsocket/mod.ts";
import { delay } from "../netcore/_async.ts";
import { Ed25519Identity } from "../netcore/identity/mod.ts";
import { Libp2pNode } from "../netcore/peer/libp2p_node.ts";
import { Logger } from "../netcore/log.ts";
import {
  defaultRegistry,
  type Labels,
  METRIC_PREFIX,
  type Metrics,
  MetricsRegistry,
} from "../netcore/metrics.ts";
import { Multiaddr } from "../netcore/multiaddr.ts";
import type { YamuxStreamStats } from "../netcore/multiplexing/yamux_stream.ts";
import { getCryptoBackend } from "../netcore/noise/crypto.ts";
import { TrustedPeerSet } from "../netcore/noise/trusted_peers.ts";
import { andThen } from "../netcore/transport/and_then.ts";
import { MemoryTransport } from "../netcore/transport/memory_transport.ts";
import { libp2pUpgrade, validatorUpgrade } from "../netcore/upgrade/mod.ts";

const PROTOCOL = "/metrics-test/1.0.0";
const NETWORK = "pipeline-test";

/**
 * The sum of the series of `name` in `registry` whose labels include
 * `labels` (0 when there is none), read without creating any series.
 */
function value(registry: MetricsRegistry, name: string, labels: Labels): number {
  let total = 0;
  for (const entry of registry.find(name)?.entries() ?? []) {
    if (Object.entries(labels).every(([k, v]) => entry.labels[k] === v)) total += entry.value;
  }
  return total;
}

/** A fresh registry and its scope for `network`, and a reader of its values in that network. */
function freshMetrics(network = NETWORK): {
  registry: MetricsRegistry;
  metrics: Metrics;
  get: (name: string, labels?: Labels) => number;
} {
  const registry = new MetricsRegistry();
  return {
    registry,
    metrics: registry.scope({ network }),
    get: (name, labels = {}) => value(registry, name, { network, ...labels }),
  };
}

/** Waits (up to 2 s) for `condition`; fails with `what` otherwise. */
async function until(condition: () => boolean, what: string): Promise<void> {
  for (let i = 0; i < 400 && !condition(); i++) await delay(5);
  assert(condition(), `timed out waiting for ${what}`);
}

async function twoNodes(
  serverMetrics: Metrics,
  clientMetrics = serverMetrics,
): Promise<{ server: Libp2pNode; client: Libp2pNode; network: MemoryNetwork }> {
  const network = new MemoryNetwork();
  const server = await Libp2pNode.create({
    listen: [Multiaddr.parse("/memory/0")],
    transports: [new MemoryTransport({ network })],
    metrics: serverMetrics,
  });
  const client = await Libp2pNode.create({
    transports: [new MemoryTransport({ network })],
    metrics: clientMetrics,
  });
  return { server, client, network };
}

/** The `validator_network_*` series of the default registry, as rendered. */
function defaultStackSeries(): string[] {
  return defaultRegistry.render().split("\n").filter((l) => l.startsWith(METRIC_PREFIX));
}

Deno.test("a negotiated stream is open while it lives, counted once, and its bytes added when it ends", async () => {
  const { metrics, get } = freshMetrics();
  const { server, client } = await twoNodes(metrics);
  try {
    const request = randomBytes(100_000);
    const response = randomBytes(30_000);
    const handlerStarted = Promise.withResolvers<void>();
    const serverStats = Promise.withResolvers<YamuxStreamStats>();
    server.handle(PROTOCOL, async (stream) => {
      handlerStarted.resolve();
      assertEquals((await readAllFrom(stream)).length, request.length);
      await stream.write(response);
      await stream.closeWrite();
      await stream.closed;
      serverStats.resolve(stream.stream.stats());
    });
    const open = (direction: string) =>
      get("validator_network_streams_open", { protocol: PROTOCOL, direction });
    const total = (direction: string) =>
      get("validator_network_streams_total", { protocol: PROTOCOL, direction });
    const bytes = (direction: string) =>
      get("validator_network_stream_bytes_total", { protocol: PROTOCOL, direction });

    const stream = await client.newStream(server.listenAddrs[0], [PROTOCOL]);
    assertEquals([open("outbound"), total("outbound")], [1, 1], "the dialer's stream, negotiated");
    await handlerStarted.promise;
    assertEquals([open("inbound"), total("inbound")], [1, 1], "the listener's stream, negotiated");
    assertEquals([bytes("in"), bytes("out")], [0, 0], "bytes are added when the stream ends");

    const reading = readAllFrom(stream);
    await stream.write(request);
    await stream.closeWrite();
    assertEquals((await reading).length, response.length);
    await stream.closed;
    const clientStats = stream.stream.stats();
    const serverSide = await serverStats.promise;

    assertEquals([open("outbound"), open("inbound")], [0, 0], "released on both sides");
    assertEquals([total("outbound"), total("inbound")], [1, 1], "counted once");
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
    // Both nodes record into this scope, so each direction sums both ends.
    assertEquals(bytes("out"), clientStats.bytesSent + serverSide.bytesSent);
    assertEquals(bytes("in"), clientStats.bytesReceived + serverSide.bytesReceived);
  } finally {
    await client.close();
    await server.close();
  }
});

Deno.test("a reset stream leaves the open gauge on both sides and still adds its bytes", async () => {
  const { metrics, get } = freshMetrics();
  const { server, client } = await twoNodes(metrics);
  try {
    const received = Promise.withResolvers<void>();
    const serverDone = Promise.withResolvers<void>();
    server.handle(PROTOCOL, async (stream) => {
      await stream.read();
      received.resolve();
      await stream.read().catch(() => {});
      await stream.closed;
      serverDone.resolve();
    });
    const open = (direction: string) =>
      get("validator_network_streams_open", { protocol: PROTOCOL, direction });

    const stream = await client.newStream(server.listenAddrs[0], [PROTOCOL]);
    await stream.write(randomBytes(5_000));
    await received.promise;
    assertEquals([open("outbound"), open("inbound")], [1, 1]);
    stream.abort(new Error("give up"));
    await stream.closed;
    await serverDone.promise;
    assertEquals([open("outbound"), open("inbound")], [0, 0]);
    const bytesOut = get("validator_network_stream_bytes_total", {
      protocol: PROTOCOL,
      direction: "out",
    });
    assert(bytesOut >= 5_000, `bytes out ${bytesOut}`);
  } finally {
    await client.close();
    await server.close();
  }
});

Deno.test("a failed negotiation counts no stream, only the failure", async () => {
  const { metrics, get } = freshMetrics();
  const { server, client } = await twoNodes(metrics);
  try {
    server.handle(PROTOCOL, () => {});
    const conn = await client.dial(server.listenAddrs[0]);
    await assertRejectsCode(() => conn.openStream(["/nope/1.0.0"]), "UNSUPPORTED_PROTOCOL");
    await until(
      () =>
        get("validator_network_inbound_streams_total", {
          protocol: "",
          outcome: "negotiation_failed",
        }) === 1,
      "the server to count the failure",
    );
    assertEquals(
      get("validator_network_negotiation_failures_total", {
        role: "dialer",
        code: "UNSUPPORTED_PROTOCOL",
      }),
      1,
      "the dialer's failure",
    );
    assertEquals(
      get("validator_network_negotiation_failures_total", { role: "listener" }),
      1,
      "the listener's failure",
    );
    assertEquals(get("validator_network_streams_total"), 0);
    assertEquals(get("validator_network_streams_open"), 0);
  } finally {
    await client.close();
    await server.close();
  }
});

Deno.test("validator_network_yamux_accept_queue_depth counts inbound streams until they are taken or dropped", async () => {
  const network = new MemoryNetwork();
  const identity = Ed25519Identity.generate();
  const { metrics, get } = freshMetrics();
  const depth = () => get("validator_network_yamux_accept_queue_depth");
  // A bare upgraded listener: nothing takes its streams until the test does.
  const transport = andThen(new MemoryTransport({ network }), libp2pUpgrade(identity, { metrics }));
  const listener = await transport.listen(Multiaddr.parse("/memory/0"));
  const client = await Libp2pNode.create({
    transports: [new MemoryTransport({ network })],
    metrics: new MetricsRegistry().scope({ network: "client" }),
  });
  try {
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
    assertEquals(
      get("validator_network_streams_total", { protocol: PROTOCOL, direction: "inbound" }),
      1,
      "the upgrade's metrics reach its connections' streams",
    );
    assertEquals(get("validator_network_noise_handshakes_total", { role: "listener" }), 1);

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

Deno.test("validator_network_pending_inbound_upgrades counts upgrades running and upgraded connections not taken", async () => {
  const network = new MemoryNetwork();
  const identity = Ed25519Identity.generate();
  const { metrics, get } = freshMetrics();
  const pending = () => get("validator_network_pending_inbound_upgrades");
  const transport = andThen(
    new MemoryTransport({ network }),
    libp2pUpgrade(identity, { metrics }),
    { metrics },
  );
  const listener = await transport.listen(Multiaddr.parse("/memory/0"));
  const addr = listener.addr.withPeerId(identity.peerId.toString());
  const client = await Libp2pNode.create({
    transports: [new MemoryTransport({ network })],
    metrics: new MetricsRegistry().scope({ network: "client" }),
  });
  const raw = new MemoryTransport({ network });
  try {
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

    // One that completes while nobody waits stays pending until taken (the
    // client's new connection replaces its first one; the bare listener
    // yields it all the same).
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

Deno.test("validator nodes record handshakes, refusals, connections and streams in the metrics given", async () => {
  const network = new MemoryNetwork();
  const backend = getCryptoBackend();
  const { metrics, get } = freshMetrics();
  const trusted = new TrustedPeerSet();
  // The refusal below is logged as a warning: not in the test output.
  const quiet = new Logger({}, "off");
  const validator = async (listen: boolean, trust = true) => {
    const identity = Ed25519Identity.generate();
    const keys = backend.dh.generateKeyPair();
    if (trust) trusted.set(keys.publicKey, identity.peerId);
    return await Libp2pNode.create({
      identity,
      listen: listen ? [Multiaddr.parse("/memory/0")] : [],
      transports: [new MemoryTransport({ network })],
      upgrade: validatorUpgrade(keys, { noise: { trustedPeers: trusted }, metrics, logger: quiet }),
      metrics,
      logger: quiet,
    });
  };
  const server = await validator(true);
  const client = await validator(false);
  const intruder = await validator(false, false);
  try {
    server.handle(PROTOCOL, async (stream) => {
      await stream.write(await readAllFrom(stream));
      await stream.closeWrite();
    });
    const stream = await client.newStream(server.listenAddrs[0], [PROTOCOL]);
    await stream.write(randomBytes(1000));
    await stream.closeWrite();
    assertEquals((await readAllFrom(stream)).length, 1000);
    await stream.closed;

    const handshakes = (role: string) =>
      get("validator_network_noise_handshakes_total", { profile: "validator", role });
    await until(() => handshakes("listener") === 1, "the listener's handshake");
    assertEquals(handshakes("dialer"), 1);
    assertEquals(get("validator_network_connected_peers", { direction: "outbound" }), 1);
    assertEquals(get("validator_network_connected_peers", { direction: "inbound" }), 1);
    assertEquals(get("validator_network_peer_events_total", { type: "new-peer" }), 2, "one a side");
    assertEquals(get("validator_network_dials_total", { outcome: "ok" }), 1);
    for (const direction of ["outbound", "inbound"]) {
      assertEquals(
        get("validator_network_streams_total", { protocol: PROTOCOL, direction }),
        1,
        `${direction} streams`,
      );
    }
    assert(get("validator_network_yamux_bytes_total", { direction: "out" }) > 2000);

    // A validator outside the trusted set is refused, and the refusal counted.
    await assertRejectsCode(() => intruder.dial(server.listenAddrs[0]), "HANDSHAKE_FAILED");
    await until(
      () =>
        get("validator_network_noise_rejected_total", {
          profile: "validator",
          reason: "unknown_peer",
        }) === 1,
      "the refusal to be counted",
    );
    assertEquals(handshakes("listener"), 1, "no handshake completed with the intruder");
    assertEquals(get("validator_network_dials_total", { outcome: "HANDSHAKE_FAILED" }), 1);
    assertEquals(get("validator_network_connected_peers"), 2, "the intruder is no peer");
  } finally {
    await intruder.close();
    await client.close();
    await server.close();
  }
});

Deno.test("two nodes in one process with different network labels on one registry report separately", async () => {
  const registry = new MetricsRegistry();
  const alpha = (name: string, labels: Labels = {}) =>
    value(registry, name, { network: "alpha", ...labels });
  const beta = (name: string, labels: Labels = {}) =>
    value(registry, name, { network: "beta", ...labels });
  const defaultBefore = defaultStackSeries();
  const { server, client } = await twoNodes(
    registry.scope({ network: "alpha" }),
    registry.scope({ network: "beta" }),
  );
  try {
    const serverStats = Promise.withResolvers<YamuxStreamStats>();
    server.handle(PROTOCOL, async (stream) => {
      await readAllFrom(stream);
      await stream.write(randomBytes(3_000));
      await stream.closeWrite();
      await stream.closed;
      serverStats.resolve(stream.stream.stats());
    });
    const stream = await client.newStream(server.listenAddrs[0], [PROTOCOL]);
    await stream.write(randomBytes(7_000));
    await stream.closeWrite();
    assertEquals((await readAllFrom(stream)).length, 3_000);
    await stream.closed;
    const clientStats = stream.stream.stats();
    const serverSide = await serverStats.promise;

    const streams = "validator_network_streams_total";
    assertEquals(beta(streams, { direction: "outbound" }), 1, "the client's stream, in beta");
    assertEquals(alpha(streams, { direction: "inbound" }), 1, "the server's stream, in alpha");
    assertEquals(beta(streams, { direction: "inbound" }), 0);
    assertEquals(alpha(streams, { direction: "outbound" }), 0);

    const bytes = "validator_network_stream_bytes_total";
    assertEquals(beta(bytes, { direction: "out" }), clientStats.bytesSent);
    assertEquals(beta(bytes, { direction: "in" }), clientStats.bytesReceived);
    assertEquals(alpha(bytes, { direction: "out" }), serverSide.bytesSent);
    assertEquals(alpha(bytes, { direction: "in" }), serverSide.bytesReceived);

    const connections = "validator_network_connected_peers";
    assertEquals(beta(connections, { direction: "outbound" }), 1);
    assertEquals(alpha(connections, { direction: "inbound" }), 1);
    assertEquals(beta(connections, { direction: "inbound" }), 0);
    assertEquals(alpha(connections, { direction: "outbound" }), 0);

    const handshakes = "validator_network_noise_handshakes_total";
    await until(() => alpha(handshakes, { role: "listener" }) === 1, "the server's handshake");
    assertEquals(beta(handshakes, { role: "dialer" }), 1);
    assertEquals(alpha(handshakes, { role: "dialer" }), 0);
    assertEquals(beta(handshakes, { role: "listener" }), 0);
    assert(alpha("validator_network_yamux_frames_total", { direction: "in" }) > 0);
    assert(beta("validator_network_yamux_frames_total", { direction: "in" }) > 0);

    // The label is rendered, every stack metric carries it, and nothing
    // went to the default registry.
    const text = registry.render();
    assert(
      text.includes(
        `validator_network_streams_total{network="alpha",protocol="${PROTOCOL}",direction="inbound"} 1`,
      ),
      text,
    );
    assert(
      text.includes(
        `validator_network_streams_total{network="beta",protocol="${PROTOCOL}",direction="outbound"} 1`,
      ),
      text,
    );
    for (const line of text.split("\n")) {
      if (line === "") continue;
      if (line.startsWith("# ")) {
        assert(line.split(" ")[2].startsWith(METRIC_PREFIX), `a stack metric: ${line}`);
      } else {
        assert(/\{network="(alpha|beta)"/.test(line), `a series with its network: ${line}`);
      }
    }
    assertEquals(defaultStackSeries(), defaultBefore, "the default registry did not move");
  } finally {
    await client.close();
    await server.close();
  }
});
