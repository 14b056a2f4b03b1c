/**
 * Libp2pNode, over the memory transport and over TCP on 127.0.0.1: streams
 * reach the handler of their protocol, failures stay on their stream, dials
 * check the `/p2p/` id, there is one connection per peer (reused by peer
 * id; a dial with `reuse: false` makes a new one that replaces it), the
 * protocols run between two nodes, and close() ends the peer's connection
 * too.
 */

import {
  assert,
  assertEquals,
  assertNetworkError,
  assertNotEquals,
  assertRejectsCode,
} from "./_assert.ts";
import { echoThrough, settlesWithin } from "./_streams.ts";
import { randomBytes, readAll } from "./_bytes.ts";
import { MemoryNetwork } from "../memsocket/mod.ts";
import { delay } from "../netcore/_async.ts";
import { Ed25519Identity } from "../netcore/identity/mod.ts";
import { Libp2pNode, type Libp2pNodeOptions } from "../netcore/peer/libp2p_node.ts";
import { MetricsRegistry } from "../netcore/metrics.ts";
import { Multiaddr } from "../netcore/multiaddr.ts";
import { getCryptoBackend } from "../netcore/noise/crypto.ts";
import { TrustedPeerSet } from "../netcore/noise/trusted_peers.ts";
import { MemoryTransport } from "../netcore/transport/memory_transport.ts";
import { type PeerConnection, validatorUpgrade } from "../netcore/upgrade/mod.ts";
import { ECHO_PROTOCOL, handleEcho } from "../protocols/echo.ts";
import { handlePerf, PERF_PROTOCOL, runPerf } from "../protocols/perf.ts";
import { handlePing, PING_PROTOCOL, Pinger } from "../protocols/ping.ts";

type Kind = "memory" | "tcp";

/** A listening node and a dial-only node on the same (fresh, for memory) network. */
async function twoNodes(
  kind: Kind,
  serverOptions: Libp2pNodeOptions = {},
  clientOptions: Libp2pNodeOptions = {},
): Promise<{ server: Libp2pNode; client: Libp2pNode }> {
  if (kind === "memory") {
    const network = new MemoryNetwork();
    const server = await Libp2pNode.create({
      ...serverOptions,
      listen: [Multiaddr.parse("/memory/0")],
      transports: [new MemoryTransport({ network })],
    });
    const client = await Libp2pNode.create({
      ...clientOptions,
      transports: [new MemoryTransport({ network })],
    });
    return { server, client };
  }
  const server = await Libp2pNode.create({
    ...serverOptions,
    listen: [Multiaddr.parse("/ip4/127.0.0.1/tcp/0")],
  });
  const client = await Libp2pNode.create(clientOptions);
  return { server, client };
}

/** Whether `x` (one node's) and `y` (the other node's) are the two ends of one connection. */
function sameConnection(x: PeerConnection, y: PeerConnection): boolean {
  return x.localAddr.toString() === y.remoteAddr.withoutPeerId().toString() &&
    x.remoteAddr.withoutPeerId().toString() === y.localAddr.toString();
}

/**
 * Waits (up to 1 s) until `server` holds the other end of `dialed`, the
 * client's connection, as its one connection to the client; returns it.
 */
async function serverEnd(
  server: Libp2pNode,
  client: Libp2pNode,
  dialed: PeerConnection,
): Promise<PeerConnection> {
  const matches = () => {
    const conns = server.connectionsTo(client.peerId);
    return conns.length === 1 && sameConnection(dialed, conns[0]);
  };
  for (let i = 0; i < 100 && !matches(); i++) await delay(10);
  const conns = server.connectionsTo(client.peerId);
  assert(
    matches(),
    `the server's end of connection ${dialed.id} (it holds ${conns.map((c) => c.id)})`,
  );
  return conns[0];
}

async function withNodes(
  kind: Kind,
  body: (server: Libp2pNode, client: Libp2pNode, addr: Multiaddr) => Promise<void>,
): Promise<void> {
  const { server, client } = await twoNodes(kind);
  try {
    await body(server, client, server.listenAddrs[0]);
  } finally {
    await client.close();
    await server.close();
  }
}

/** A validator node listening and one dialing over `kind`, each trusting the other's static key. */
function validatorNodes(kind: Kind): Promise<{ server: Libp2pNode; client: Libp2pNode }> {
  const { dh } = getCryptoBackend();
  const serverIdentity = Ed25519Identity.generate();
  const clientIdentity = Ed25519Identity.generate();
  const serverKey = dh.generateKeyPair();
  const clientKey = dh.generateKeyPair();
  const trustedPeers = new TrustedPeerSet([
    [serverKey.publicKey, serverIdentity.peerId],
    [clientKey.publicKey, clientIdentity.peerId],
  ]);
  const noise = { trustedPeers, networkId: "node-test" };
  return twoNodes(
    kind,
    { identity: serverIdentity, upgrade: validatorUpgrade(serverKey, { noise }) },
    { identity: clientIdentity, upgrade: validatorUpgrade(clientKey, { noise }) },
  );
}

for (const kind of ["memory", "tcp"] as const) {
  Deno.test(`node over ${kind}: listen addresses end in our /p2p/ id`, async () => {
    await withNodes(kind, (server, _client, addr) => {
      assertEquals(addr.peerId, server.peerId.toString());
      assert(
        kind === "tcp" ? /^\/ip4\/127\.0\.0\.1\/tcp\/\d+\/p2p\//.test(addr.toString()) : true,
        addr.toString(),
      );
      return Promise.resolve();
    });
  });

  Deno.test(`node over ${kind}: each handler gets the streams of its protocol`, async () => {
    await withNodes(kind, async (server, client, addr) => {
      const seen: { protocol: string; peer: string }[] = [];
      for (const protocol of ["/a/1.0.0", "/b/1.0.0"]) {
        server.handle(protocol, async (stream, conn) => {
          seen.push({ protocol: stream.protocol, peer: conn.remotePeer.toString() });
          const writer = stream.writable.getWriter();
          await writer.write(new TextEncoder().encode(stream.protocol));
          await writer.close();
        });
      }
      assertEquals(server.protocols.sort(), ["/a/1.0.0", "/b/1.0.0"]);

      const b = await client.newStream(addr, ["/b/1.0.0"]);
      assertEquals(b.protocol, "/b/1.0.0");
      assertEquals(new TextDecoder().decode(await readAll(b.readable)), "/b/1.0.0");
      await b.close();
      // The dialer offers in order of preference; the first one served wins.
      const a = await client.newStream(addr, ["/c/1.0.0", "/a/1.0.0", "/b/1.0.0"]);
      assertEquals(a.protocol, "/a/1.0.0");
      assertEquals(new TextDecoder().decode(await readAll(a.readable)), "/a/1.0.0");
      await a.close();

      const me = client.peerId.toString();
      assertEquals(seen, [{ protocol: "/b/1.0.0", peer: me }, { protocol: "/a/1.0.0", peer: me }]);
    });
  });

  Deno.test(`node over ${kind}: an unsupported protocol fails the stream, not the connection`, async () => {
    await withNodes(kind, async (server, client, addr) => {
      server.handle(ECHO_PROTOCOL, handleEcho);
      const conn = await client.dial(addr);
      await assertRejectsCode(() => conn.openStream(["/nope/1.0.0"]), "UNSUPPORTED_PROTOCOL");
      server.unhandle(ECHO_PROTOCOL);
      await assertRejectsCode(() => conn.openStream([ECHO_PROTOCOL]), "UNSUPPORTED_PROTOCOL");
      server.handle(ECHO_PROTOCOL, handleEcho);
      const data = randomBytes(1000);
      assertEquals(await echoThrough(await conn.openStream([ECHO_PROTOCOL]), data), data);
      assertEquals(client.connectionsTo(server.peerId), [conn]);
    });
  });

  Deno.test(`node over ${kind}: a handler that throws resets only its own stream`, async () => {
    await withNodes(kind, async (server, client, addr) => {
      server.handle(ECHO_PROTOCOL, handleEcho);
      server.handle("/boom/1.0.0", async (stream) => {
        // Read the request first so the failure comes after the stream is in use.
        await stream.readable.getReader().read();
        throw new Error("handler bug");
      });
      const conn = await client.dial(addr);
      const survivor = await conn.openStream([ECHO_PROTOCOL]);
      const survivorWriter = survivor.writable.getWriter();
      const survivorReader = survivor.readable.getReader();
      await survivorWriter.write(new Uint8Array([1, 2, 3]));

      const doomed = await conn.openStream(["/boom/1.0.0"]);
      const writer = doomed.writable.getWriter();
      await writer.write(new Uint8Array([9]));
      const reader = doomed.readable.getReader();
      const err = await reader.read().then(
        (r) => new Error(`read ${JSON.stringify(r)} instead of a reset`),
        (e) => e,
      );
      assertNetworkError(err, "CONNECTION_RESET");

      // The other stream on the same connection carries on.
      assertEquals((await survivorReader.read()).value, new Uint8Array([1, 2, 3]));
      await survivorWriter.write(new Uint8Array([4]));
      assertEquals((await survivorReader.read()).value, new Uint8Array([4]));
      await survivorWriter.close();
      assertEquals((await survivorReader.read()).done, true);
      assertEquals(await settlesWithin(conn.closed, 50), false);
    });
  });

  Deno.test(`node over ${kind}: dialing with the wrong /p2p/ id is UNAUTHORIZED`, async () => {
    await withNodes(kind, async (server, client, addr) => {
      server.handle(ECHO_PROTOCOL, handleEcho);
      const impostor = Ed25519Identity.generate().peerId.toString();
      const wrong = addr.withoutPeerId().withPeerId(impostor);
      await assertRejectsCode(() => client.dial(wrong), "UNAUTHORIZED");
      await assertRejectsCode(() => client.newStream(wrong, [ECHO_PROTOCOL]), "UNAUTHORIZED");
      assertEquals(client.connectionsTo(server.peerId), []);
      // The right id still works afterwards.
      const conn = await client.dial(addr);
      assertEquals(conn.remotePeer.toString(), server.peerId.toString());
    });
  });

  Deno.test(`node over ${kind}: concurrent dials to one peer share one connection`, async () => {
    await withNodes(kind, async (server, client, addr) => {
      const conns = await Promise.all([client.dial(addr), client.dial(addr), client.dial(addr)]);
      assert(conns[0] === conns[1] && conns[1] === conns[2], "one connection for all three");
      assertEquals(client.connectionsTo(server.peerId).length, 1);
    });
  });

  Deno.test(`node over ${kind}: connections are reused by peer id; reuse: false makes one that replaces it`, async () => {
    await withNodes(kind, async (server, client, addr) => {
      server.handle(ECHO_PROTOCOL, handleEcho);
      const first = await client.dial(addr);
      assertEquals(first.remotePeer.toString(), server.peerId.toString());
      assert(await client.dial(addr) === first, "a second dial reuses the connection");
      const stream = await client.newStream(addr, [ECHO_PROTOCOL]);
      assertEquals(client.connectionsTo(server.peerId), [first]);
      await stream.close();
      await serverEnd(server, client, first);

      const fresh = await client.dial(addr, { reuse: false });
      assert(fresh !== first, "reuse: false opens a new connection");
      assertEquals(client.connectionsTo(server.peerId), [fresh], "which replaces the open one");
      assertEquals(await settlesWithin(first.closed, 2_000), true, "the replaced one is closed");
      assert(await client.dial(addr) === fresh, "the new one is reused");
      // Without a /p2p/ id the node cannot know whom it reaches: it dials anew.
      const anonymous = await client.dial(addr.withoutPeerId());
      assert(anonymous !== first && anonymous !== fresh, "no peer id, no reuse");
      assertEquals(anonymous.remotePeer.toString(), server.peerId.toString());
      assertEquals(client.connectionsTo(server.peerId), [anonymous]);
      assertEquals(await settlesWithin(fresh.closed, 2_000), true);

      // The server tracks one connection under the client's id: the live one.
      const theirs = await serverEnd(server, client, anonymous);
      const data = randomBytes(1000);
      assertEquals(await echoThrough(await client.newStream(addr, [ECHO_PROTOCOL]), data), data);

      await anonymous.close();
      for (let i = 0; i < 100 && client.connectionsTo(server.peerId).length > 0; i++) {
        await delay(10);
      }
      assertEquals(client.connectionsTo(server.peerId), []);
      assertEquals(await settlesWithin(theirs.closed, 2_000), true);
    });
  });

  Deno.test(`node over ${kind}: every connection has an id of its own`, async () => {
    await withNodes(kind, async (server, client, addr) => {
      const dialed: PeerConnection[] = [];
      const accepted: PeerConnection[] = [];
      for (const reuse of [true, false, false]) {
        const conn = await client.dial(addr, { reuse });
        dialed.push(conn);
        accepted.push(await serverEnd(server, client, conn));
        assertEquals(client.connectionsTo(server.peerId), [conn], "one connection per peer");
      }
      const ids = [...dialed, ...accepted].map((c) => c.id);
      assert(ids.every((id) => Number.isInteger(id)), `${ids}`);
      assertEquals(new Set(ids).size, 6, `ids ${ids}`);
      assertEquals(client.connectionsTo(server.peerId).map((c) => c.id), [dialed[2].id]);
      assertEquals(server.connectionsTo(client.peerId).map((c) => c.id), [accepted[2].id]);
      // A connection made after one closed does not take its id.
      await dialed[2].close();
      const later = await client.dial(addr, { reuse: false });
      assert(!ids.includes(later.id), `id ${later.id} was used before: ${ids}`);
      const laterTheirs = await serverEnd(server, client, later);
      assert(!ids.includes(laterTheirs.id), `id ${laterTheirs.id} was used before: ${ids}`);
      assertEquals(client.connectionsTo(server.peerId).map((c) => c.id), [later.id]);
    });
  });

  Deno.test(`node over ${kind}: the libp2p profile (the default) yields libp2p PeerConnections`, async () => {
    await withNodes(kind, async (server, client, addr) => {
      const conn = await client.dial(addr);
      assertEquals([conn.profile, conn.direction], ["libp2p", "outbound"]);
      assert(conn.remotePeer.equals(server.peerId));
      assertEquals(conn.remoteAddr.peerId, server.peerId.toString());
      const inbound = await serverEnd(server, client, conn);
      assertEquals([inbound.profile, inbound.direction], ["libp2p", "inbound"]);
      assert(inbound.remotePeer.equals(client.peerId));
    });
  });

  Deno.test(`node over ${kind}: the validator profile: Noise IK against the trusted set, dialed by /p2p/ id`, async () => {
    const { server, client } = await validatorNodes(kind);
    try {
      server.handle(ECHO_PROTOCOL, handleEcho);
      const addr = server.listenAddrs[0];
      assertEquals(addr.peerId, server.peerId.toString());
      const conn = await client.dial(addr);
      assertEquals([conn.profile, conn.direction], ["validator", "outbound"]);
      assert(conn.remotePeer.equals(server.peerId));
      assertEquals(conn.remoteAddr.peerId, server.peerId.toString());
      const data = randomBytes(100_000);
      assertEquals(await echoThrough(await conn.openStream([ECHO_PROTOCOL]), data), data);
      const inbound = await serverEnd(server, client, conn);
      assertEquals([inbound.profile, inbound.direction], ["validator", "inbound"]);
      assert(inbound.remotePeer.equals(client.peerId));
      assert(await client.dial(addr) === conn, "reused by peer id like any connection");
      // A validator is dialed by its peer id: an address naming none, or one
      // outside the trusted set, is refused before anything is sent.
      await assertRejectsCode(() => client.dial(addr.withoutPeerId()), "BAD_ADDRESS");
      const stranger = Ed25519Identity.generate().peerId.toString();
      await assertRejectsCode(
        () => client.dial(addr.withoutPeerId().withPeerId(stranger)),
        "UNAUTHORIZED",
      );
      assertEquals(client.connectionsTo(server.peerId), [conn]);
    } finally {
      await client.close();
      await server.close();
    }
  });

  Deno.test(`node over ${kind}: dial() does not reuse a connection the peer sent GoAway on`, async () => {
    await withNodes(kind, async (server, client, addr) => {
      server.handle(ECHO_PROTOCOL, handleEcho);
      const old = await client.dial(addr);
      // A stream left open keeps the connection up after the peer's GoAway:
      // only the GoAway says it is going away.
      const open = await old.openStream([ECHO_PROTOCOL]);
      await open.write(new Uint8Array([1, 2, 3]));
      assertEquals(await open.read(), new Uint8Array([1, 2, 3]));
      assertEquals(old.goingAway, false);
      const theirs = await serverEnd(server, client, old);
      const closing = theirs.close();
      for (let i = 0; i < 100 && !old.goingAway; i++) await delay(10);
      assert(old.goingAway, "the peer's GoAway reached us");
      assertEquals(client.connectionsTo(server.peerId), [old], "still open while its stream is");

      const fresh = await client.dial(addr);
      assert(fresh !== old && fresh.id !== old.id, "a new connection, not the one going away");
      assertEquals(fresh.goingAway, false);
      // One connection per peer: the new one replaces the one going away, on both sides.
      assertEquals(client.connectionsTo(server.peerId), [fresh]);
      await serverEnd(server, client, fresh);
      assert(await client.dial(addr) === fresh, "the new one is reused");
      const data = randomBytes(1000);
      assertEquals(await echoThrough(await fresh.openStream([ECHO_PROTOCOL]), data), data);

      // The stream left on the old connection fails, retriably, instead of finishing.
      const err = await open.read().then((r) => new Error(`read ${r}`), (e: unknown) => e);
      assert(assertNetworkError(err, "CONNECTION_REPLACED").retriable);
      await closing;
      assertEquals(await settlesWithin(old.closed, 5_000), true);
      assertEquals(client.connectionsTo(server.peerId), [fresh]);
    });
  });

  Deno.test(`node over ${kind}: two nodes ping, run perf and echo`, async () => {
    await withNodes(kind, async (server, client, addr) => {
      server.handle(PING_PROTOCOL, (s) => handlePing(s));
      server.handle(PERF_PROTOCOL, (s) => handlePerf(s));
      server.handle(ECHO_PROTOCOL, (s) => handleEcho(s));

      const pinger = new Pinger(await client.newStream(addr, [PING_PROTOCOL]));
      for (let i = 0; i < 10; i++) {
        const rtt = await pinger.ping();
        assert(rtt >= 0 && rtt < 5_000, `rtt ${rtt}`);
      }
      await pinger.close();

      const perf = await runPerf(await client.newStream(addr, [PERF_PROTOCOL]), {
        upload: 1_000_000,
        download: 2_000_000,
      });
      assertEquals([perf.uploadBytes, perf.downloadBytes], [1_000_000, 2_000_000]);

      const data = randomBytes(1 << 20);
      const back = await echoThrough(await client.newStream(addr, [ECHO_PROTOCOL]), data);
      assertEquals(back.length, data.length);
      assertEquals(back, data);
      assertEquals(client.connectionsTo(server.peerId).length, 1);
    });
  });

  Deno.test(`node over ${kind}: close() closes every connection and the peer sees the end`, async () => {
    // A stream left open holds a graceful close back for closeTimeout: keep it short.
    const { server, client } = await twoNodes(kind, { upgrade: { yamux: { closeTimeout: 200 } } });
    try {
      server.handle(ECHO_PROTOCOL, handleEcho);
      const addr = server.listenAddrs[0];
      // The second replaces the first: a connection closed before, one open now.
      const conns: PeerConnection[] = [
        await client.dial(addr),
        await client.dial(addr, { reuse: false }),
      ];
      assertEquals(client.connectionsTo(server.peerId), [conns[1]]);
      const open = await conns[1].openStream([ECHO_PROTOCOL]);
      await server.close();
      for (const conn of conns) {
        assertEquals(await settlesWithin(conn.closed, 5_000), true);
      }
      assertEquals(client.connectionsTo(server.peerId), []);
      assertEquals(server.connectionsTo(client.peerId), []);
      // The stream that was open ends too, one way or the other.
      assertEquals(await settlesWithin(readAll(open.readable), 5_000), true);
      // A closed node dials no more and no longer listens.
      await assertRejectsCode(() => server.dial(addr), "CONNECTION_CLOSED");
      await assertRejectsCode(
        () => client.dial(addr, { reuse: false }),
        "DIAL_REFUSED",
        "CONNECTION_CLOSED",
        "CONNECTION_RESET",
        "HANDSHAKE_FAILED",
      );
    } finally {
      await client.close();
      await server.close();
    }
  });
}

Deno.test("node: validator_network_connected_peers counts connected peers by direction", async () => {
  const registry = new MetricsRegistry();
  const metrics = registry.scope({ network: "node-test" });
  const { server, client } = await twoNodes("memory", { metrics }, { metrics });
  const gauge = registry.find("validator_network_connected_peers");
  assert(gauge !== undefined, "the gauge is registered when a node is made");
  const outbound = () => gauge.get({ network: "node-test", direction: "outbound" });
  const inbound = () => gauge.get({ network: "node-test", direction: "inbound" });
  try {
    assertEquals([outbound(), inbound()], [0, 0]);
    const first = await client.dial(server.listenAddrs[0]);
    assertEquals(outbound(), 1);
    for (let i = 0; i < 50 && inbound() === 0; i++) await delay(10);
    assertEquals(inbound(), 1);
    // A replacement is still one peer.
    const conn = await client.dial(server.listenAddrs[0], { reuse: false });
    assert(conn !== first);
    await serverEnd(server, client, conn);
    assertEquals([outbound(), inbound()], [1, 1]);
    await conn.close();
    for (let i = 0; i < 100 && (outbound() !== 0 || inbound() !== 0); i++) await delay(10);
    assertEquals([outbound(), inbound()], [0, 0]);
    assertNotEquals(server.peerId.toString(), client.peerId.toString());
  } finally {
    await client.close();
    await server.close();
  }
});

Deno.test("node: a handler that throws synchronously resets its stream too", async () => {
  await withNodes("memory", async (server, client, addr) => {
    server.handle("/sync-boom/1.0.0", () => {
      throw new Error("synchronous handler bug");
    });
    server.handle(ECHO_PROTOCOL, handleEcho);
    const conn = await client.dial(addr);
    const doomed = await conn.openStream(["/sync-boom/1.0.0"]);
    const err = await readAll(doomed.readable).then(
      (bytes) => new Error(`read ${bytes.length} bytes and an end instead of a reset`),
      (e) => e,
    );
    assertNetworkError(err, "CONNECTION_RESET");
    const data = randomBytes(100);
    assertEquals(await echoThrough(await conn.openStream([ECHO_PROTOCOL]), data), data);
  });
});

// A dial in flight while close() runs must not be adopted by the closed node
// (nothing would ever close it).
Deno.test({
  name: "node: a dial in flight when close() runs does not outlive the node",
  fn: async () => {
    const { server, client } = await twoNodes("tcp");
    try {
      const dialing = client.dial(server.listenAddrs[0]);
      await client.close();
      const outcome = await dialing.then((conn) => conn, (err) => err);
      if (outcome instanceof Error) {
        assertNetworkError(outcome, "CONNECTION_CLOSED", "ABORTED");
      } else {
        assertEquals(await settlesWithin(outcome.closed, 1_000), true);
      }
      assertEquals(client.connectionsTo(server.peerId), []);
    } finally {
      await server.close();
    }
  },
});
