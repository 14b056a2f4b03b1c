/**
 * The side door between layers (netcore/transport/_direct.ts): a layer that
 * holds a stream's lock may read and write through the stream's owner
 * directly. What goes through it must be exactly what the stream would
 * have carried: the same bytes, the same end, the same errors.
 */

import { ByteReader } from "../netcore/byte_reader.ts";
import { Multiaddr } from "../netcore/multiaddr.ts";
import { directSink, directSource } from "../netcore/transport/_direct.ts";
import { TcpTransport } from "../netcore/transport/tcp_transport.ts";
import { assert, assertEquals, assertRejectsCode } from "./_assert.ts";
import { randomBytes } from "./_bytes.ts";
import { acceptOne } from "./_pair.ts";

async function tcpPair() {
  const tcp = new TcpTransport();
  const listener = await tcp.listen(Multiaddr.parse("/ip4/127.0.0.1/tcp/0"));
  const [a, b] = await Promise.all([tcp.dial(listener.addr), acceptOne(listener)]);
  await listener.close();
  return [a, b] as const;
}

Deno.test("direct: TCP reads and writes through the side door carry the stream's bytes and end", async () => {
  const [a, b] = await tcpPair();
  const sink = directSink(a.writable), source = directSource(b.readable);
  assert(sink !== undefined && source !== undefined, "TCP registers both doors");
  const writer = a.writable.getWriter();
  const data = randomBytes(300_000);
  for (let at = 0; at < data.length; at += 70_000) {
    await sink.write(data.subarray(at, at + 70_000));
  }
  await writer.close();
  // A ByteReader on the locked stream goes through the door.
  const reader = new ByteReader(b.readable);
  assertEquals(await reader.readExactly(data.length), data);
  assertEquals(await reader.readSome(), undefined, "the peer's end");
  await b.close();
});

Deno.test("direct: a failure reaches the side door's reader as the stream's error", async () => {
  const [a, b] = await tcpPair();
  const source = directSource(b.readable)!;
  b.readable.getReader();
  const pending = source.read();
  b.abort();
  await assertRejectsCode(pending, "CONNECTION_RESET");
  a.abort();
});
