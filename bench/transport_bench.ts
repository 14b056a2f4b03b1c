/**
 * Raw transport throughput and latency, the baseline later layers (Noise,
 * yamux) are measured against.
 *
 * - throughput: 16 MiB per iteration in 64 KiB writes, acknowledged by the
 *   receiver with one byte once it has read them all;
 * - round trip: 64 bytes out, echoed back.
 *
 * Run: `deno bench --allow-net bench/transport_bench.ts`
 */

import { MemoryNetwork, MemoryTransport } from "../memsocket/mod.ts";
import { Multiaddr } from "../netcore/multiaddr.ts";
import type { Connection } from "../netcore/transport/connection.ts";
import { TcpTransport } from "../netcore/transport/tcp_transport.ts";
import type { Transport } from "../netcore/transport/transport.ts";

const MIB = 1024 * 1024;
const BULK = 16 * MIB;
const CHUNK = new Uint8Array(64 * 1024);
const SMALL = new Uint8Array(64);

/** Reads `BULK` bytes, then acknowledges with one byte, forever. */
async function sink(conn: Connection): Promise<void> {
  const writer = conn.writable.getWriter();
  let count = 0;
  for await (const chunk of conn.readable) {
    count += chunk.length;
    while (count >= BULK) {
      count -= BULK;
      await writer.write(new Uint8Array([1]));
    }
  }
}

/** Echoes every chunk back. */
async function echo(conn: Connection): Promise<void> {
  await conn.readable.pipeTo(conn.writable);
}

interface Pair {
  writer: WritableStreamDefaultWriter<Uint8Array>;
  reader: ReadableStreamDefaultReader<Uint8Array>;
}

/** Listens with `handler`, dials once and returns the client's reader and writer. */
async function connect(
  transport: Transport,
  addr: string,
  handler: (conn: Connection) => Promise<void>,
): Promise<Pair> {
  const listener = await transport.listen(Multiaddr.parse(addr));
  (async () => {
    for await (const conn of listener) handler(conn).catch(() => conn.abort());
  })();
  const conn = await transport.dial(listener.addr);
  return {
    writer: conn.writable.getWriter(),
    reader: conn.readable.getReader(),
  };
}

async function bulk({ writer, reader }: Pair): Promise<void> {
  for (let sent = 0; sent < BULK; sent += CHUNK.length) {
    await writer.write(CHUNK);
  }
  const { value } = await reader.read();
  if (value?.[0] !== 1) throw new Error("no acknowledgement");
}

async function roundTrip({ writer, reader }: Pair): Promise<void> {
  await writer.write(SMALL);
  let received = 0;
  while (received < SMALL.length) {
    const { value, done } = await reader.read();
    if (done) throw new Error("echo ended");
    received += value.length;
  }
}

const tcp = new TcpTransport();
const memory = new MemoryTransport({ network: new MemoryNetwork() });
const tcpBulk = await connect(tcp, "/ip4/127.0.0.1/tcp/0", sink);
const memoryBulk = await connect(memory, "/memory/0", sink);
const tcpEcho = await connect(tcp, "/ip4/127.0.0.1/tcp/0", echo);
const memoryEcho = await connect(memory, "/memory/0", echo);

Deno.bench({
  name: "tcp: 16 MiB in 64 KiB writes",
  group: "throughput",
  baseline: true,
  fn: async () => await bulk(tcpBulk),
});
Deno.bench({
  name: "memory: 16 MiB in 64 KiB writes",
  group: "throughput",
  fn: async () => await bulk(memoryBulk),
});
Deno.bench({
  name: "tcp: 64-byte round trip",
  group: "round trip",
  baseline: true,
  fn: async () => await roundTrip(tcpEcho),
});
Deno.bench({
  name: "memory: 64-byte round trip",
  group: "round trip",
  fn: async () => await roundTrip(memoryEcho),
});
