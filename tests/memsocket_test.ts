/**
 * The in-memory network (memsocket/, a leaf): listeners, sockets shaped like
 * Deno's TCP connections with bounded buffers, Deno's own error classes, and
 * the fault hooks (latency, cut connections, partitions that refuse or drop,
 * healing, the backlog). Then the same network as a transport, through
 * netcore's `MemoryTransport`, whose connections are the production
 * `SocketConnection`.
 */

import { type MemoryListener, MemoryNetwork, MemorySocket } from "../memsocket/mod.ts";
import { Multiaddr } from "../netcore/multiaddr.ts";
import type { Connection } from "../netcore/transport/connection.ts";
import { MemoryTransport } from "../netcore/transport/memory_transport.ts";
import { assert, assertEquals, assertRejects, assertRejectsCode, assertThrows } from "./_assert.ts";
import { randomBytes } from "./_bytes.ts";
import { acceptOne } from "./_pair.ts";
import { readAllFrom, settlesWithin } from "./_streams.ts";

const bytes = (...values: number[]) => new Uint8Array(values);

/** A listener and one connected pair on a fresh network. */
async function socketPair(
  options: { bufferSize?: number } = {},
): Promise<{ network: MemoryNetwork; listener: MemoryListener; a: MemorySocket; b: MemorySocket }> {
  const network = new MemoryNetwork();
  const listener = network.listen("/memory/0");
  const a = await network.connect(listener.addr, options);
  const b = (await listener.accept())!;
  return { network, listener, a, b };
}

/** Reads once into a fresh buffer: the bytes, or null at the end. */
async function readOnce(socket: MemorySocket, size = 65536): Promise<number[] | null> {
  const buffer = new Uint8Array(size);
  const n = await socket.read(buffer);
  return n === null ? null : [...buffer.subarray(0, n)];
}

/** Time from writing one byte on `from` until `to` reads it. */
async function socketOneWayMs(from: MemorySocket, to: MemorySocket): Promise<number> {
  const started = performance.now();
  await from.write(bytes(1));
  await readOnce(to);
  return performance.now() - started;
}

// --- memsocket: listeners ---

Deno.test("MemoryNetwork.listen: port 0 picks a free port; a taken port is AddrInUse; close frees it", () => {
  const network = new MemoryNetwork();
  const first = network.listen("/memory/0");
  const second = network.listen(0);
  assert(/^\/memory\/\d+$/.test(first.addr), `an address: ${first.addr}`);
  assert(first.port !== second.port, "distinct ports");
  assertEquals(first.addr, `/memory/${first.port}`);
  assertThrows(() => network.listen(first.addr), Deno.errors.AddrInUse);
  assertThrows(() => network.listen(first.port), Deno.errors.AddrInUse);
  // A Multiaddr names the same port.
  assertThrows(() => network.listen(Multiaddr.parse(first.addr)), Deno.errors.AddrInUse);
  assertThrows(() => network.listen("/ip4/127.0.0.1/tcp/1"), TypeError);
  first.close();
  const again = network.listen(first.addr);
  assertEquals(again.port, first.port);
  again.close();
  second.close();
});

Deno.test("MemoryNetwork.connect: nothing listening, another network, a closed listener: ConnectionRefused", async () => {
  const network = new MemoryNetwork();
  await assertRejects(() => network.connect("/memory/4242"), Deno.errors.ConnectionRefused);
  const listener = network.listen("/memory/0");
  await assertRejects(
    () => new MemoryNetwork().connect(listener.addr),
    Deno.errors.ConnectionRefused,
    undefined,
    "networks are isolated",
  );
  listener.close();
  await assertRejects(() => network.connect(listener.addr), Deno.errors.ConnectionRefused);
});

Deno.test("MemoryListener: accept() yields dialed sockets in order, with matching addresses", async () => {
  const network = new MemoryNetwork();
  const listener = network.listen("/memory/0");
  const first = await network.connect(listener.addr);
  const second = await network.connect(Multiaddr.parse(listener.addr)); // via toString
  assertEquals(first.remoteAddr, listener.addr);
  assert(first.localAddr !== second.localAddr, "each dialer end has its own address");
  const a = (await listener.accept())!;
  const b = (await listener.accept())!;
  assertEquals([a.remoteAddr, b.remoteAddr], [first.localAddr, second.localAddr], "in order");
  assertEquals(a.localAddr, listener.addr);
  await first.write(bytes(1));
  assertEquals(await readOnce(a), [1], "the accepted end is the dialed socket's peer");
  for (const s of [first, second, a, b]) s.close();
  listener.close();
});

Deno.test("MemoryListener: async iteration ends, and a pending accept() gives null, once closed", async () => {
  const network = new MemoryNetwork();
  const listener = network.listen("/memory/0");
  const seen: MemorySocket[] = [];
  const iterating = (async () => {
    for await (const socket of listener) seen.push(socket);
  })();
  const dialed = await network.connect(listener.addr);
  await new Promise((resolve) => setTimeout(resolve, 5));
  assertEquals(seen.length, 1, "the iteration yielded the connection");
  listener.close();
  assert(await settlesWithin(iterating, 1_000), "the iteration ended");
  assertEquals(await listener.accept(), null);
  const other = network.listen("/memory/0");
  const pending = other.accept();
  other.close();
  assertEquals(await pending, null);
  dialed.close();
  seen[0].close();
});

Deno.test("MemoryListener: the backlog refuses dials beyond it until one is accepted", async () => {
  const network = new MemoryNetwork();
  const listener = network.listen("/memory/0", { backlog: 2 });
  const queued = [await network.connect(listener.addr), await network.connect(listener.addr)];
  await assertRejects(() => network.connect(listener.addr), Deno.errors.ConnectionRefused);
  const accepted = (await listener.accept())!;
  const third = await network.connect(listener.addr); // room again
  for (const s of [...queued, accepted, third]) s.close();
  listener.close();
});

Deno.test("MemoryListener.close resets the sockets it queued and never handed out", async () => {
  const network = new MemoryNetwork();
  const listener = network.listen("/memory/0");
  const dialed = await network.connect(listener.addr);
  listener.close();
  await assertRejects(() => dialed.read(new Uint8Array(8)), Deno.errors.ConnectionReset);
  await dialed.closed;
});

Deno.test("MemoryNetwork.default is one shared network", async () => {
  const listener = MemoryNetwork.default.listen("/memory/0");
  const dialed = await MemoryNetwork.default.connect(listener.addr);
  const accepted = (await listener.accept())!;
  assertEquals(accepted.remoteAddr, dialed.localAddr);
  dialed.close();
  accepted.close();
  listener.close();
});

// --- memsocket: sockets ---

Deno.test("MemorySocket: writes are copied, reads fill the caller's buffer, partly if it is small", async () => {
  const [a, b] = MemorySocket.pair("/memory/1", "/memory/2", 1024);
  assertEquals([a.localAddr, a.remoteAddr, b.localAddr, b.remoteAddr], [
    "/memory/1",
    "/memory/2",
    "/memory/2",
    "/memory/1",
  ]);
  const data = bytes(1, 2, 3, 4, 5);
  assertEquals(await a.write(data), 5);
  data.fill(9); // the socket took a copy
  assertEquals(await readOnce(b, 3), [1, 2, 3]);
  assertEquals(await readOnce(b, 3), [4, 5]);
  a.close();
  b.close();
});

Deno.test("MemorySocket.closeWrite: the peer reads to the end, then null; it may still write back", async () => {
  const { listener, a, b } = await socketPair();
  await a.write(bytes(1, 2));
  await a.closeWrite();
  assertEquals(await readOnce(b), [1, 2]);
  assertEquals(await readOnce(b), null);
  await assertRejects(() => a.write(bytes(3)), Deno.errors.BrokenPipe, undefined, "after FIN");
  await b.write(bytes(7));
  assertEquals(await readOnce(a), [7], "half-closed only one way");
  a.close();
  b.close();
  listener.close();
});

Deno.test("MemorySocket.close: the peer reads what was written, then the end; then its writes reset", async () => {
  const { listener, a, b } = await socketPair();
  await a.write(bytes(1));
  a.close();
  await a.closed;
  await assertRejects(
    () => a.read(new Uint8Array(1)),
    Deno.errors.BadResource,
    undefined,
    "own read",
  );
  await assertRejects(() => a.write(bytes(1)), Deno.errors.BadResource, undefined, "own write");
  assertEquals(await readOnce(b), [1]);
  assertEquals(await readOnce(b), null);
  await assertRejects(() => b.write(bytes(2)), Deno.errors.ConnectionReset);
  b.close();
  listener.close();
});

Deno.test("MemorySocket.reset: both ends' pending and later reads and writes fail with ConnectionReset", async () => {
  const { listener, a, b } = await socketPair();
  const pendingRead = b.read(new Uint8Array(8));
  await a.write(bytes(1)); // queued, never read: dropped by the reset
  a.reset();
  await assertRejects(
    () => pendingRead.then(() => b.read(new Uint8Array(8))),
    Deno.errors.ConnectionReset,
  );
  await assertRejects(() => b.write(bytes(1)), Deno.errors.ConnectionReset);
  await Promise.all([a.closed, b.closed]);
  listener.close();
});

Deno.test("MemorySocket: bounded buffers, a write takes what fits and the next waits for the reader (bufferedOutbound)", async () => {
  const { listener, a, b } = await socketPair({ bufferSize: 1024 });
  assertEquals(await a.write(new Uint8Array(4096)), 1024, "a partial write, as a socket's");
  assertEquals(a.bufferedOutbound, 1024);
  let written: number | undefined;
  const next = a.write(new Uint8Array(4096)).then((n) => written = n);
  await new Promise((resolve) => setTimeout(resolve, 20));
  assertEquals(written, undefined, "stalled while the buffer is full");
  assertEquals(await readOnce(b, 1000), new Array(1000).fill(0));
  await next;
  assert(written! > 0 && written! <= 1000, `the room the reader made (${written})`);
  assertEquals(a.bufferedOutbound, 24 + written!);
  a.close();
  b.close();
  listener.close();
});

// --- memsocket: faults ---

Deno.test("latency: per address and for the whole network, added to each piece", async () => {
  const { network, listener, a, b } = await socketPair();
  assert(await socketOneWayMs(a, b) < 20, "no latency by default");
  network.setLatency(40, listener.addr);
  const perAddress = await socketOneWayMs(a, b);
  assert(perAddress >= 38 && perAddress < 400, `per-address latency (${perAddress} ms)`);
  network.setLatency(30);
  const both = await socketOneWayMs(b, a);
  assert(both >= 65 && both < 500, `network + address latency add up (${both} ms)`);
  network.setLatency(0, listener.addr);
  network.setLatency(0);
  assert(await socketOneWayMs(a, b) < 20, "latency removed");
  // A pair made directly takes its latency function.
  const [x, y] = MemorySocket.pair("/memory/1", "/memory/2", 1024, () => 30);
  const direct = await socketOneWayMs(x, y);
  assert(direct >= 28 && direct < 400, `MemorySocket.pair latency (${direct} ms)`);
  for (const s of [a, b, x, y]) s.close();
  listener.close();
});

Deno.test("cut(socket): both ends see ConnectionReset", async () => {
  const { network, listener, a, b } = await socketPair();
  const aRead = a.read(new Uint8Array(8));
  const bRead = b.read(new Uint8Array(8));
  network.cut(a);
  await assertRejects(() => aRead, Deno.errors.ConnectionReset);
  await assertRejects(() => bRead, Deno.errors.ConnectionReset);
  await assertRejects(() => b.write(bytes(1)), Deno.errors.ConnectionReset);
  await Promise.all([a.closed, b.closed]);
  listener.close();
});

Deno.test("cut(address) resets every connection of that listener, and only those", async () => {
  const network = new MemoryNetwork();
  const target = network.listen("/memory/0");
  const other = network.listen("/memory/0");
  const toTarget = [await network.connect(target.addr), await network.connect(target.addr)];
  const accepted = [(await target.accept())!, (await target.accept())!];
  const toOther = await network.connect(other.addr);
  const otherEnd = (await other.accept())!;
  network.cut(target.addr);
  for (const socket of [...toTarget, ...accepted]) {
    await assertRejects(() => socket.read(new Uint8Array(1)), Deno.errors.ConnectionReset);
  }
  await toOther.write(bytes(1));
  assertEquals(await readOnce(otherEnd), [1], "the other listener's connection is alive");
  toOther.close();
  otherEnd.close();
  target.close();
  other.close();
});

Deno.test("partition 'refuse': dials are refused until healed; open connections stay up", async () => {
  const { network, listener, a, b } = await socketPair();
  network.partition(listener.addr); // "refuse" is the default
  await assertRejects(() => network.connect(listener.addr), Deno.errors.ConnectionRefused);
  network.partition(listener.addr, "refuse");
  await assertRejects(() => network.connect(listener.addr), Deno.errors.ConnectionRefused);
  await a.write(bytes(5));
  assertEquals(await readOnce(b), [5], "the open connection works");
  network.heal(listener.addr);
  const healed = await network.connect(listener.addr);
  for (const s of [a, b, healed, (await listener.accept())!]) s.close();
  listener.close();
});

Deno.test("partition 'drop': dials hang until their signal fires, and succeed once healed", async () => {
  const network = new MemoryNetwork();
  const listener = network.listen("/memory/0");
  network.partition(listener.addr, "drop");
  const controller = new AbortController();
  const dialing = network.connect(listener.addr, { signal: controller.signal });
  assert(!(await settlesWithin(dialing, 50)), "the dial hangs");
  controller.abort("gave up");
  let reason: unknown;
  await dialing.catch((err) => reason = err);
  assertEquals(reason, "gave up", "rejects with the signal's reason");
  await assertRejects(() => network.connect(listener.addr, { signal: AbortSignal.abort() }));
  network.heal(listener.addr);
  const dialed = await network.connect(listener.addr);
  dialed.close();
  (await listener.accept())!.close();
  listener.close();
});

Deno.test("partition 'drop' stalls open connections (no reset) until healed, then they deliver", async () => {
  const { network, listener, a, b } = await socketPair();
  network.partition(listener.addr, "drop");
  await a.write(bytes(1, 2));
  await b.write(bytes(3));
  const aRead = readOnce(a);
  const bRead = readOnce(b);
  assert(!(await settlesWithin(bRead, 50)), "nothing is delivered a -> b");
  assert(!(await settlesWithin(aRead, 10)), "nothing is delivered b -> a");
  network.heal(listener.addr);
  assertEquals(await bRead, [1, 2], "delivered after the heal, not reset");
  assertEquals(await aRead, [3]);
  a.close();
  b.close();
  listener.close();
});

// --- through MemoryTransport (netcore) ---

async function setup(options: { bufferSize?: number; closeGracePeriod?: number } = {}) {
  const network = new MemoryNetwork();
  const transport = new MemoryTransport({ network, ...options });
  const listener = await transport.listen(Multiaddr.parse("/memory/0"));
  const [a, b] = await Promise.all([transport.dial(listener.addr), acceptOne(listener)]);
  return { network, transport, listener, a, b };
}

/** Time from writing one byte on `from` until `to` reads it. */
async function oneWayMs(from: Connection, to: Connection): Promise<number> {
  const started = performance.now();
  await from.write(bytes(1));
  await to.read();
  return performance.now() - started;
}

Deno.test("MemoryTransport listeners: port 0 picks a free port, a taken port is ADDRESS_IN_USE, networks are isolated", async () => {
  const network = new MemoryNetwork();
  const transport = new MemoryTransport({ network });
  const first = await transport.listen(Multiaddr.parse("/memory/0"));
  const second = await transport.listen(Multiaddr.parse("/memory/0"));
  assert(!first.addr.equals(second.addr), "distinct ports");
  await assertRejectsCode(transport.listen(first.addr), "ADDRESS_IN_USE");
  await assertRejectsCode(transport.listen(Multiaddr.parse("/ip4/127.0.0.1/tcp/1")), "BAD_ADDRESS");
  await assertRejectsCode(transport.dial(Multiaddr.parse("/ip4/127.0.0.1/tcp/1")), "BAD_ADDRESS");
  const elsewhere = new MemoryTransport({ network: new MemoryNetwork() });
  await assertRejectsCode(elsewhere.dial(first.addr), "DIAL_REFUSED");
  await first.close();
  const again = await transport.listen(first.addr); // freed by close
  await Promise.all([second.close(), again.close()]);
});

Deno.test("MemoryTransport: the default network is shared by transports given none", async () => {
  const listener = await new MemoryTransport().listen(Multiaddr.parse("/memory/0"));
  const conn = await new MemoryTransport().dial(listener.addr);
  const inbound = await acceptOne(listener);
  assert(inbound.remoteAddr.equals(conn.localAddr), "addresses match across the pair");
  assert(conn.remoteAddr.equals(listener.addr), "the dialer's remote address is the listener's");
  conn.abort();
  inbound.abort();
  await listener.close();
});

Deno.test("MemoryTransport: a /p2p/ suffix is ignored when dialing", async () => {
  const transport = new MemoryTransport({ network: new MemoryNetwork() });
  const listener = await transport.listen(Multiaddr.parse("/memory/0"));
  const peerId = "12D3KooWD3eckifWpRn9wQpMG9R9hX3sD158z7EqHWmweQAJU5SA";
  const withPeer = Multiaddr.parse(`${listener.addr}/p2p/${peerId}`);
  const [conn, inbound] = await Promise.all([transport.dial(withPeer), acceptOne(listener)]);
  assert(conn.remoteAddr.equals(listener.addr), "connected to the listener");
  conn.abort();
  inbound.abort();
  await listener.close();
});

Deno.test("MemoryTransport: writes are copied, the writer may reuse its buffer once write returns", async () => {
  const { a, b, listener } = await setup();
  const writer = a.writable.getWriter();
  const buffer = bytes(1, 2, 3);
  await writer.write(buffer);
  buffer.fill(9);
  await writer.write(buffer);
  await writer.close();
  const got: number[] = [];
  for await (const chunk of b.readable) got.push(...chunk);
  assertEquals(got, [1, 2, 3, 9, 9, 9]);
  await Promise.all([a.close(), b.close()]);
  await listener.close();
});

Deno.test("MemoryTransport: buffers are bounded, a big write waits for the reader, reads are at most one buffer", async () => {
  const { a, b, listener } = await setup({ bufferSize: 1024 });
  const write = a.write(new Uint8Array(64 * 1024))!;
  assert(!(await settlesWithin(write, 50)), "stalled while the peer reads nothing");
  let received = 0;
  while (received < 64 * 1024) {
    const chunk = await b.read();
    assert(chunk !== null && chunk.length <= 1024, "chunks no larger than the buffer");
    received += chunk.length;
  }
  await write;
  a.abort();
  b.abort();
  await listener.close();
});

Deno.test("MemoryTransport: readChunkSize bounds every read; closeGracePeriod bounds close()", async () => {
  const network = new MemoryNetwork();
  const transport = new MemoryTransport({ network, readChunkSize: 100, closeGracePeriod: 50 });
  const listener = await transport.listen(Multiaddr.parse("/memory/0"));
  const [a, b] = await Promise.all([transport.dial(listener.addr), acceptOne(listener)]);
  a.write(randomBytes(10_000));
  let received = 0;
  while (received < 10_000) {
    const chunk = await b.read();
    assert(chunk !== null && chunk.length <= 100, `a read of at most 100 bytes (${chunk?.length})`);
    received += chunk.length;
  }
  // b never ends its side: a's close() gives up waiting after the grace period.
  const started = performance.now();
  await a.close();
  const elapsed = performance.now() - started;
  assert(elapsed >= 40 && elapsed < 2_000, `released after the grace period (${elapsed} ms)`);
  b.abort();
  await listener.close();
});

Deno.test("MemoryTransport: backlog refuses dials beyond it with DIAL_REFUSED", async () => {
  const network = new MemoryNetwork();
  const transport = new MemoryTransport({ network, backlog: 1 });
  const listener = await transport.listen(Multiaddr.parse("/memory/0"));
  const queued = await transport.dial(listener.addr);
  await assertRejectsCode(transport.dial(listener.addr), "DIAL_REFUSED");
  const accepted = await acceptOne(listener);
  const next = await transport.dial(listener.addr);
  for (const c of [queued, accepted, next]) c.abort();
  await listener.close();
});

Deno.test("MemoryTransport: latency per address and for the whole network", async () => {
  const { network, listener, a, b } = await setup();
  assert(await oneWayMs(a, b) < 20, "no latency by default");
  network.setLatency(40, listener.addr);
  const perAddress = await oneWayMs(a, b);
  assert(perAddress >= 38 && perAddress < 400, `per-address latency (${perAddress} ms)`);
  network.setLatency(30);
  const both = await oneWayMs(b, a);
  assert(both >= 65 && both < 500, `network + address latency add up (${both} ms)`);
  network.setLatency(0, listener.addr);
  network.setLatency(0);
  assert(await oneWayMs(a, b) < 20, "latency removed");
  a.abort();
  b.abort();
  await listener.close();
});

Deno.test("MemoryTransport: cut, both ends of a connection see CONNECTION_RESET", async () => {
  const { network, listener, a, b } = await setup();
  const aRead = a.read();
  const bRead = b.read();
  network.cut(listener.addr);
  await assertRejectsCode(aRead, "CONNECTION_RESET");
  await assertRejectsCode(bRead, "CONNECTION_RESET");
  await assertRejectsCode(b.write(bytes(1)) ?? Promise.resolve(), "CONNECTION_RESET");
  await Promise.all([a.closed, b.closed]);
  await listener.close();
});

Deno.test("MemoryTransport: cut by address resets every connection to that listener, and only those", async () => {
  const network = new MemoryNetwork();
  const transport = new MemoryTransport({ network });
  const target = await transport.listen(Multiaddr.parse("/memory/0"));
  const other = await transport.listen(Multiaddr.parse("/memory/0"));
  const toTarget = await Promise.all([transport.dial(target.addr), transport.dial(target.addr)]);
  const toOther = await transport.dial(other.addr);
  const otherEnd = await acceptOne(other);
  network.cut(target.addr);
  // As over TCP, a connection learns of the reset when it next reads, and is then released.
  for (const conn of toTarget) await assertRejectsCode(conn.read(), "CONNECTION_RESET");
  await Promise.all(toTarget.map((c) => c.closed));
  toOther.write(bytes(1));
  assertEquals([...(await otherEnd.read())!], [1], "still alive");
  toOther.abort();
  otherEnd.abort();
  await Promise.all([target.close(), other.close()]);
});

Deno.test("MemoryTransport: partition, refused dials until healed; existing connections stay up", async () => {
  const { network, transport, listener, a, b } = await setup();
  network.partition(listener.addr);
  await assertRejectsCode(transport.dial(listener.addr), "DIAL_REFUSED");
  a.write(bytes(5));
  assertEquals([...(await b.read())!], [5], "old connection works");
  network.heal(listener.addr);
  const healed = await transport.dial(listener.addr);
  for (const c of [healed, await acceptOne(listener), a, b]) c.abort();
  await listener.close();
});

Deno.test("MemoryTransport: partition in drop mode, dials hang until their deadline -> DIAL_TIMEOUT", async () => {
  const network = new MemoryNetwork();
  const transport = new MemoryTransport({ network, connectTimeout: 50 });
  const listener = await transport.listen(Multiaddr.parse("/memory/0"));
  network.partition(listener.addr, "drop");
  const started = performance.now();
  await assertRejectsCode(transport.dial(listener.addr), "DIAL_TIMEOUT");
  assert(performance.now() - started >= 45, "waited for the connect timeout");
  const controller = new AbortController();
  const dialing = transport.dial(listener.addr, { signal: controller.signal });
  controller.abort();
  await assertRejectsCode(dialing, "ABORTED");
  network.heal(listener.addr);
  (await transport.dial(listener.addr)).abort();
  await listener.close();
});

Deno.test("MemoryTransport: partition in drop mode stalls an open connection until healed", async () => {
  const { network, listener, a, b } = await setup();
  network.partition(listener.addr, "drop");
  a.write(bytes(7, 8));
  const reading = b.read();
  assert(!(await settlesWithin(reading, 50)), "nothing arrives during the partition");
  network.heal(listener.addr);
  assertEquals([...(await reading)!], [7, 8], "the bytes arrive after the heal");
  a.abort();
  b.abort();
  await listener.close();
});

Deno.test("MemoryTransport: a cancelled readable drops incoming bytes; the writer is not blocked", async () => {
  const { listener, a, b } = await setup({ bufferSize: 16 });
  await b.readable.cancel();
  // 64 KiB into a 16-byte buffer nobody reads: the write finishes only if the bytes are dropped.
  const write = a.write(new Uint8Array(64 * 1024))!;
  assert(await settlesWithin(write, 2_000), "the writer is not blocked");
  a.abort();
  b.abort();
  await listener.close();
});

Deno.test("MemoryTransport: closing a listener resets connections it accepted but never handed out", async () => {
  const network = new MemoryNetwork();
  const transport = new MemoryTransport({ network });
  const listener = await transport.listen(Multiaddr.parse("/memory/0"));
  const conn = await transport.dial(listener.addr);
  await listener.close();
  await assertRejectsCode(conn.read(), "CONNECTION_RESET");
  await conn.closed;
});

Deno.test("MemoryTransport: an echo through the Web Streams edge", async () => {
  const { listener, a, b } = await setup();
  const echoing = b.readable.pipeTo(b.writable);
  const [back] = await Promise.all([
    readAllFrom(a),
    (async () => {
      a.write(bytes(1, 2, 3));
      await a.closeWrite();
    })(),
  ]);
  assertEquals([...back], [1, 2, 3]);
  await echoing;
  await Promise.all([a.closed, b.closed]);
  await listener.close();
});

Deno.test("MemorySocket: large writes land in buffers the pipe reuses; each piece read is the one written, even with the writer's buffer refilled at once", async () => {
  const [a, b] = MemorySocket.pair("/memory/1", "/memory/2", 256 * 1024);
  const sizes = [16 * 1024, 70_000, 100_000, 20_000, 65_536, 200_000, 17_000, 16_384];
  const expected: number[] = [];
  const reading = (async () => {
    const got: number[] = [];
    const buffer = new Uint8Array(7_000);
    while (true) {
      const n = await b.read(buffer);
      if (n === null) return got;
      for (let i = 0; i < n; i++) got.push(buffer[i]);
    }
  })();
  const scratch = new Uint8Array(200_000);
  for (let round = 0; round < 6; round++) {
    for (const [i, size] of sizes.entries()) {
      const fill = (round * sizes.length + i) & 0xff;
      let at = 0;
      while (at < size) {
        scratch.fill(fill, 0, size - at);
        at += await a.write(scratch.subarray(0, size - at));
        scratch.fill(0xee); // the writer reuses its buffer as soon as the write resolved
      }
      for (let k = 0; k < size; k++) expected.push(fill);
    }
  }
  await a.closeWrite();
  const got = await reading;
  assertEquals(got.length, expected.length);
  assertEquals(got.findIndex((x, i) => x !== expected[i]), -1);
  b.close();
});
