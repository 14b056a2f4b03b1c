/**
 * The transport combinators: andThen (upgrades with roles, failures,
 * timeouts, concurrency), withTimeout and choice.
 */

import { MemoryNetwork } from "../memsocket/mod.ts";
import { Multiaddr } from "../netcore/multiaddr.ts";
import { NetworkError } from "../netcore/network_error.ts";
import { andThen } from "../netcore/transport/and_then.ts";
import { choice } from "../netcore/transport/choice.ts";
import { MemoryTransport } from "../netcore/transport/memory_transport.ts";
import type { Connection } from "../netcore/transport/connection.ts";
import { TcpTransport } from "../netcore/transport/tcp_transport.ts";
import type { Role, Transport, UpgradeContext } from "../netcore/transport/transport.ts";
import { withTimeout } from "../netcore/transport/with_timeout.ts";
import { assert, assertEquals, assertRejectsCode } from "./_assert.ts";

const memory = () => new MemoryTransport({ network: new MemoryNetwork() });
const text = (s: string) => new TextEncoder().encode(s);

/** A connection tagged by a toy upgrade that exchanges role names over the wire. */
type Greeted = Connection & { role: Role; peerRole: string };

/** Writes our role as one line and reads the peer's: a real exchange over the connection. */
async function greet(conn: Connection, { role }: UpgradeContext): Promise<Greeted> {
  const writer = conn.writable.getWriter();
  await writer.write(text(`${role}\n`));
  writer.releaseLock();
  const reader = conn.readable.getReader();
  let line = "";
  while (!line.endsWith("\n")) {
    const { value, done } = await reader.read();
    if (done) throw new Error("peer ended during the greeting");
    line += new TextDecoder().decode(value);
  }
  reader.releaseLock();
  return Object.assign(conn, { role, peerRole: line.trim() });
}

/** Collects what `onInboundError` reports; `next()` waits for the next one. */
function inboundErrors() {
  const seen: unknown[] = [];
  let waiter: PromiseWithResolvers<unknown> | undefined;
  return {
    seen,
    onInboundError(error: unknown) {
      seen.push(error);
      waiter?.resolve(error);
      waiter = undefined;
    },
    next(): Promise<unknown> {
      if (seen.length > 0) return Promise.resolve(seen.shift());
      waiter = Promise.withResolvers();
      return waiter.promise.then((e) => (seen.shift(), e));
    },
  };
}

for (
  const [name, make, listenAddr] of [
    ["memory", memory, "/memory/0"],
    ["tcp", () => new TcpTransport(), "/ip4/127.0.0.1/tcp/0"],
  ] as const
) {
  Deno.test(`andThen over ${name}: the upgrade runs on both ends with the right roles`, async () => {
    const transport = andThen(make() as Transport, greet);
    const listener = await transport.listen(Multiaddr.parse(listenAddr));
    const accepted = listener[Symbol.asyncIterator]().next();
    const dialed = await transport.dial(listener.addr);
    const inbound = await accepted;
    assert(!inbound.done, "an upgraded inbound connection");
    assertEquals([dialed.role, dialed.peerRole], ["dialer", "listener"], "dialer side");
    assertEquals([inbound.value.role, inbound.value.peerRole], ["listener", "dialer"], "listener");
    dialed.abort();
    inbound.value.abort();
    await listener.close();
  });
}

Deno.test("andThen: a failing upgrade closes the socket and reports HANDSHAKE_FAILED on both sides", async () => {
  const raw = memory();
  const rawConns: Connection[] = [];
  const failing = andThen(raw, (conn: Connection, { role }) => {
    rawConns.push(conn);
    return Promise.reject(new TypeError(`${role} does not like this peer`));
  });
  const errors = inboundErrors();
  const listener = await failing.listen(Multiaddr.parse("/memory/0"), errors);
  const iterating = listener[Symbol.asyncIterator]().next();
  const dialError = await assertRejectsCode(failing.dial(listener.addr), "HANDSHAKE_FAILED");
  assert(dialError.cause instanceof TypeError, "the cause is kept");
  const listenError = await errors.next();
  assert(NetworkError.is(listenError, "HANDSHAKE_FAILED"), `listener side: ${listenError}`);
  // Both raw sockets were aborted: their streams fail and they are released.
  assertEquals(rawConns.length, 2, "both ends ran the upgrade");
  await Promise.all(rawConns.map((c) => c.closed));
  for (const conn of rawConns) {
    // Aborted here with the upgrade's error, or reset by the peer's abort first.
    await assertRejectsCode(
      conn.readable.getReader().read(),
      "HANDSHAKE_FAILED",
      "CONNECTION_RESET",
    );
  }
  await listener.close();
  assertEquals((await iterating).done, true, "nothing was yielded");
});

Deno.test("andThen: a NetworkError thrown by the upgrade keeps its code", async () => {
  const guarded = andThen(memory(), () => {
    return Promise.reject(new NetworkError("UNAUTHORIZED", "unknown validator key"));
  });
  const errors = inboundErrors();
  const listener = await guarded.listen(Multiaddr.parse("/memory/0"), errors);
  const iterating = listener[Symbol.asyncIterator]().next();
  await assertRejectsCode(guarded.dial(listener.addr), "UNAUTHORIZED");
  assert(NetworkError.is(await errors.next(), "UNAUTHORIZED"), "listener side keeps the code");
  await listener.close();
  await iterating;
});

Deno.test("andThen: an upgrade past its timeout sees its signal fire and fails with TIMEOUT", async () => {
  const signals: AbortSignal[] = [];
  const slow = andThen(memory(), (_conn: Connection, { signal }) => {
    signals.push(signal);
    return new Promise<Connection>(() => {}); // ignores the signal: the combinator must not
  }, { timeout: 50 });
  const errors = inboundErrors();
  const listener = await slow.listen(Multiaddr.parse("/memory/0"), errors);
  const iterating = listener[Symbol.asyncIterator]().next();
  const started = performance.now();
  await assertRejectsCode(slow.dial(listener.addr), "TIMEOUT");
  assert(performance.now() - started < 1000, "the timeout bounds the dial");
  assert(NetworkError.is(await errors.next(), "TIMEOUT"), "listener side times out too");
  assertEquals(signals.map((s) => s.aborted), [true, true], "both upgrades were signalled");
  await listener.close();
  await iterating;
});

Deno.test("andThen: a slow inbound upgrade does not block the others", async () => {
  let first = true;
  const release = Promise.withResolvers<void>();
  const transport = andThen(memory(), async (conn: Connection, { role }) => {
    if (role === "listener" && first) {
      first = false;
      await release.promise; // the first peer stalls its handshake
    }
    return conn;
  });
  const listener = await transport.listen(Multiaddr.parse("/memory/0"));
  const iterator = listener[Symbol.asyncIterator]();
  const slowPeer = await transport.dial(listener.addr);
  const fastPeer = await transport.dial(listener.addr);
  const firstYielded = await iterator.next();
  assert(!firstYielded.done, "a connection was yielded");
  assert(
    firstYielded.value.remoteAddr.equals(fastPeer.localAddr),
    "the fast peer's connection came first",
  );
  release.resolve();
  const second = await iterator.next();
  assert(!second.done && second.value.remoteAddr.equals(slowPeer.localAddr), "then the slow one");
  for (const c of [slowPeer, fastPeer, firstYielded.value, second.value]) c.abort();
  await listener.close();
});

Deno.test("andThen: a cancelled dial aborts the upgrade in progress", async () => {
  const raws: Connection[] = [];
  const transport = andThen(memory(), (conn: Connection, { signal }) => {
    raws.push(conn);
    return new Promise<Connection>((_, reject) =>
      signal.addEventListener("abort", () => reject(signal.reason))
    );
  });
  const listener = await transport.listen(Multiaddr.parse("/memory/0"), {
    onInboundError: () => {},
  });
  const iterating = listener[Symbol.asyncIterator]().next();
  const controller = new AbortController();
  const dialing = transport.dial(listener.addr, { signal: controller.signal });
  await new Promise((resolve) => setTimeout(resolve, 10));
  controller.abort();
  await assertRejectsCode(dialing, "ABORTED");
  await raws[0].closed;
  await listener.close();
  await iterating;
});

Deno.test("withTimeout: bounds the whole dial with DIAL_TIMEOUT; fast dials pass", async () => {
  const network = new MemoryNetwork();
  const raw = new MemoryTransport({ network });
  const listener = await raw.listen(Multiaddr.parse("/memory/0"));
  const bounded = withTimeout(raw, 50);
  const conn = await bounded.dial(listener.addr);
  conn.abort();
  network.partition(listener.addr, "drop"); // dials now hang, like SYNs into a black hole
  const started = performance.now();
  await assertRejectsCode(bounded.dial(listener.addr), "DIAL_TIMEOUT");
  const elapsed = performance.now() - started;
  assert(elapsed >= 45 && elapsed < 1000, `fired after ~50 ms (took ${elapsed})`);
  await assertRejectsCode(
    bounded.dial(listener.addr, { signal: AbortSignal.abort() }),
    "ABORTED",
  );
  await listener.close();
});

Deno.test("choice: routes by address, BAD_ADDRESS when no transport fits", async () => {
  const mem = memory();
  const tcp = new TcpTransport();
  const both = choice(mem, tcp);
  assert(both.supports(Multiaddr.parse("/memory/1")), "memory supported");
  assert(both.supports(Multiaddr.parse("/ip4/127.0.0.1/tcp/1")), "tcp supported");
  const memListener = await both.listen(Multiaddr.parse("/memory/0"));
  const tcpListener = await both.listen(Multiaddr.parse("/ip4/127.0.0.1/tcp/0"));
  assert(memListener.addr.memoryPort() !== undefined, "memory listener");
  assert(tcpListener.addr.tcpEndpoint() !== undefined, "tcp listener");
  const viaMem = await both.dial(memListener.addr);
  const viaTcp = await both.dial(tcpListener.addr);
  assert(viaMem.remoteAddr.memoryPort() !== undefined, "dialed over memory");
  assertEquals(viaTcp.remoteAddr.tcpEndpoint()?.port, tcpListener.addr.tcpEndpoint()?.port);
  viaMem.abort();
  viaTcp.abort();
  const onlyMemory = choice(mem);
  assert(!onlyMemory.supports(Multiaddr.parse("/ip4/127.0.0.1/tcp/1")), "tcp not supported");
  await assertRejectsCode(onlyMemory.dial(Multiaddr.parse("/ip4/127.0.0.1/tcp/1")), "BAD_ADDRESS");
  await assertRejectsCode(
    onlyMemory.listen(Multiaddr.parse("/dns4/localhost/tcp/0")),
    "BAD_ADDRESS",
  );
  await memListener.close();
  await tcpListener.close();
});
