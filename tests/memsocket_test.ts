/**
 * The in-memory network's own behaviour and its fault hooks: latency, cut
 * connections, partitions (refusing and dropping) and healing.
 */

import { type MemoryConnection, MemoryNetwork, MemoryTransport } from "../memsocket/mod.ts";
import { Multiaddr } from "../netcore/multiaddr.ts";
import { assert, assertEquals, assertRejectsCode } from "./_assert.ts";
import { acceptOne } from "./_pair.ts";

async function setup(options: { bufferSize?: number } = {}) {
  const network = new MemoryNetwork();
  const transport = new MemoryTransport({ network, ...options });
  const listener = await transport.listen(Multiaddr.parse("/memory/0"));
  const [a, b] = await Promise.all([transport.dial(listener.addr), acceptOne(listener)]);
  return { network, transport, listener, a, b };
}

/** Time from writing one byte on `from` until `to` reads it. */
async function oneWayMs(from: MemoryConnection, to: MemoryConnection): Promise<number> {
  const writer = from.writable.getWriter();
  const reader = to.readable.getReader();
  const started = performance.now();
  await writer.write(new Uint8Array([1]));
  await reader.read();
  writer.releaseLock();
  reader.releaseLock();
  return performance.now() - started;
}

Deno.test("listeners: port 0 picks a free port, a taken port is ADDRESS_IN_USE, networks are isolated", async () => {
  const network = new MemoryNetwork();
  const transport = new MemoryTransport({ network });
  const first = await transport.listen(Multiaddr.parse("/memory/0"));
  const second = await transport.listen(Multiaddr.parse("/memory/0"));
  assert(!first.addr.equals(second.addr), "distinct ports");
  await assertRejectsCode(transport.listen(first.addr), "ADDRESS_IN_USE");
  await assertRejectsCode(transport.listen(Multiaddr.parse("/ip4/127.0.0.1/tcp/1")), "BAD_ADDRESS");
  const elsewhere = new MemoryTransport({ network: new MemoryNetwork() });
  await assertRejectsCode(elsewhere.dial(first.addr), "DIAL_REFUSED");
  await first.close();
  const again = await transport.listen(first.addr); // freed by close
  await Promise.all([second.close(), again.close()]);
});

Deno.test("the default network is shared by transports given none", async () => {
  const listener = await new MemoryTransport().listen(Multiaddr.parse("/memory/0"));
  const conn = await new MemoryTransport().dial(listener.addr);
  const inbound = await acceptOne(listener);
  assert(inbound.remoteAddr.equals(conn.localAddr), "addresses match across the pair");
  conn.abort();
  await listener.close();
});

Deno.test("writes are copied: the writer may reuse its buffer once write resolves", async () => {
  const { a, b, listener } = await setup();
  const writer = a.writable.getWriter();
  const buffer = new Uint8Array([1, 2, 3]);
  await writer.write(buffer);
  buffer.fill(9);
  await writer.write(buffer);
  await writer.close();
  const got: number[] = [];
  for await (const chunk of b.readable) got.push(...chunk);
  assertEquals(got, [1, 2, 3, 9, 9, 9]);
  await b.close();
  await listener.close();
});

Deno.test("buffers are bounded: big writes are split and wait for the reader", async () => {
  const { a, b, listener } = await setup({ bufferSize: 1024 });
  const writer = a.writable.getWriter();
  let done = false;
  const writing = writer.write(new Uint8Array(4096)).then(() => done = true);
  await new Promise((resolve) => setTimeout(resolve, 20));
  assertEquals([done, a.bufferedOutbound], [false, 1024], "stalled with one buffer full");
  const reader = b.readable.getReader();
  let received = 0;
  while (received < 4096) {
    const { value } = await reader.read();
    assert(value !== undefined && value.length <= 1024, "chunks no larger than the buffer");
    received += value.length;
  }
  await writing;
  a.abort();
  await listener.close();
});

Deno.test("latency: per address and for the whole network, added to each chunk", async () => {
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
  await listener.close();
});

Deno.test("cut: both ends of a connection see CONNECTION_RESET", async () => {
  const { network, listener, a, b } = await setup();
  const aRead = a.readable.getReader().read();
  const bRead = b.readable.getReader().read();
  network.cut(a);
  await assertRejectsCode(aRead, "CONNECTION_RESET");
  await assertRejectsCode(bRead, "CONNECTION_RESET");
  await assertRejectsCode(b.writable.getWriter().write(new Uint8Array(1)), "CONNECTION_RESET");
  await Promise.all([a.closed, b.closed]);
  await listener.close();
});

Deno.test("cut by address resets every connection to that listener, and only those", async () => {
  const network = new MemoryNetwork();
  const transport = new MemoryTransport({ network });
  const target = await transport.listen(Multiaddr.parse("/memory/0"));
  const other = await transport.listen(Multiaddr.parse("/memory/0"));
  const toTarget = await Promise.all([transport.dial(target.addr), transport.dial(target.addr)]);
  const toOther = await transport.dial(other.addr);
  network.cut(target.addr);
  await Promise.all(toTarget.map((c) => c.closed));
  for (const conn of toTarget) {
    await assertRejectsCode(conn.readable.getReader().read(), "CONNECTION_RESET");
  }
  const writer = toOther.writable.getWriter();
  await writer.write(new Uint8Array([1])); // still alive
  toOther.abort();
  await Promise.all([target.close(), other.close()]);
});

Deno.test("partition: refused dials until healed; existing connections stay up", async () => {
  const { network, transport, listener, a, b } = await setup();
  network.partition(listener.addr);
  await assertRejectsCode(transport.dial(listener.addr), "DIAL_REFUSED");
  const writer = a.writable.getWriter();
  await writer.write(new Uint8Array([5]));
  assertEquals([...(await b.readable.getReader().read()).value!], [5], "old connection works");
  network.heal(listener.addr);
  const healed = await transport.dial(listener.addr);
  healed.abort();
  a.abort();
  await listener.close();
});

Deno.test("partition in drop mode: dials hang until their deadline -> DIAL_TIMEOUT", async () => {
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

Deno.test("a cancelled readable drops incoming bytes; the writer is not blocked", async () => {
  const { listener, a, b } = await setup({ bufferSize: 16 });
  await b.readable.cancel();
  const writer = a.writable.getWriter();
  for (let i = 0; i < 10; i++) await writer.write(new Uint8Array(64));
  assertEquals(a.bufferedOutbound, 0, "nothing piles up");
  a.abort();
  await listener.close();
});

Deno.test("closing a listener resets connections it accepted but never handed out", async () => {
  const network = new MemoryNetwork();
  const transport = new MemoryTransport({ network });
  const listener = await transport.listen(Multiaddr.parse("/memory/0"));
  const conn = await transport.dial(listener.addr);
  await listener.close();
  await assertRejectsCode(conn.readable.getReader().read(), "CONNECTION_RESET");
  await conn.closed;
});
