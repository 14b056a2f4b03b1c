/**
 * Libp2pNode, over the memory transport and over TCP on 127.0.0.1: streams
 * reach the handler of their protocol, failures stay on their stream, dials
 * check the `/p2p/` id, connections are reused by peer, the protocols run
 * between two nodes, and close() ends the peer's connection too.
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
import { MemoryNetwork, MemoryTransport } from "../memsocket/mod.ts";
import { Ed25519Identity } from "../netcore/identity/mod.ts";
import { Libp2pNode, type Libp2pNodeOptions } from "../netcore/libp2p_node.ts";
import type { Libp2pConnection } from "../netcore/libp2p_upgrade.ts";
import { defaultRegistry } from "../netcore/metrics.ts";
import { Multiaddr } from "../netcore/multiaddr.ts";
import { ECHO_PROTOCOL, handleEcho } from "../protocols/echo.ts";
import { handlePerf, PERF_PROTOCOL, runPerf } from "../protocols/perf.ts";
import { handlePing, PING_PROTOCOL, Pinger } from "../protocols/ping.ts";

type Kind = "memory" | "tcp";

/** A listening node and a dial-only node on the same (fresh, for memory) network. */
async function twoNodes(
  kind: Kind,
  serverOptions: Libp2pNodeOptions = {},
): Promise<{ server: Libp2pNode; client: Libp2pNode }> {
  if (kind === "memory") {
    const network = new MemoryNetwork();
    const server = await Libp2pNode.create({
      ...serverOptions,
      listen: [Multiaddr.parse("/memory/0")],
      transports: [new MemoryTransport({ network })],
    });
    const client = await Libp2pNode.create({ transports: [new MemoryTransport({ network })] });
    return { server, client };
  }
  const server = await Libp2pNode.create({
    ...serverOptions,
    listen: [Multiaddr.parse("/ip4/127.0.0.1/tcp/0")],
  });
  const client = await Libp2pNode.create();
  return { server, client };
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
          seen.push({ protocol: stream.protocol, peer: conn.remotePeerId.toString() });
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
      assertEquals(conn.remotePeerId.toString(), server.peerId.toString());
    });
  });

  Deno.test(`node over ${kind}: concurrent dials to one peer share one connection`, async () => {
    await withNodes(kind, async (server, client, addr) => {
      const conns = await Promise.all([client.dial(addr), client.dial(addr), client.dial(addr)]);
      assert(conns[0] === conns[1] && conns[1] === conns[2], "one connection for all three");
      assertEquals(client.connectionsTo(server.peerId).length, 1);
    });
  });

  Deno.test(`node over ${kind}: connections are reused by peer id unless reuse is false`, async () => {
    await withNodes(kind, async (server, client, addr) => {
      server.handle(ECHO_PROTOCOL, handleEcho);
      const first = await client.dial(addr);
      assertEquals(first.remotePeerId.toString(), server.peerId.toString());
      assert(await client.dial(addr) === first, "a second dial reuses the connection");
      const stream = await client.newStream(addr, [ECHO_PROTOCOL]);
      assertEquals(client.connectionsTo(server.peerId).length, 1);
      await stream.close();

      const fresh = await client.dial(addr, { reuse: false });
      assert(fresh !== first, "reuse: false opens a new connection");
      assertEquals(client.connectionsTo(server.peerId).length, 2);
      // Without a /p2p/ id the node cannot know whom it reaches: it dials anew.
      const anonymous = await client.dial(addr.withoutPeerId());
      assert(anonymous !== first && anonymous !== fresh, "no peer id, no reuse");
      assertEquals(anonymous.remotePeerId.toString(), server.peerId.toString());
      assertEquals(client.connectionsTo(server.peerId).length, 3);

      // The server tracks them under the client's id.
      for (let i = 0; i < 50 && server.connectionsTo(client.peerId).length < 3; i++) {
        await new Promise((r) => setTimeout(r, 10));
      }
      assertEquals(server.connectionsTo(client.peerId).length, 3);

      await fresh.close();
      await anonymous.close();
      assertEquals(client.connectionsTo(server.peerId), [first]);
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
      const conns: Libp2pConnection[] = [
        await client.dial(addr),
        await client.dial(addr, { reuse: false }),
      ];
      const open = await conns[0].openStream([ECHO_PROTOCOL]);
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

Deno.test("node: libp2p_connections_open counts connections by direction", async () => {
  const gauge = defaultRegistry.find("libp2p_connections_open");
  assert(gauge !== undefined, "the gauge is registered when the node module loads");
  const outbound = () => gauge.get({ direction: "outbound" });
  const inbound = () => gauge.get({ direction: "inbound" });
  await withNodes("memory", async (server, client, addr) => {
    const [out0, in0] = [outbound(), inbound()];
    const conn = await client.dial(addr);
    assertEquals(outbound(), out0 + 1);
    for (let i = 0; i < 50 && inbound() === in0; i++) await new Promise((r) => setTimeout(r, 10));
    assertEquals(inbound(), in0 + 1);
    await conn.close();
    for (let i = 0; i < 100 && (outbound() !== out0 || inbound() !== in0); i++) {
      await new Promise((r) => setTimeout(r, 10));
    }
    assertEquals([outbound(), inbound()], [out0, in0]);
    assertNotEquals(server.peerId.toString(), client.peerId.toString());
  });
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
