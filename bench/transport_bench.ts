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

import { MemoryNetwork } from "../memsocket/mod.ts";
import { Multiaddr } from "../netcore/multiaddr.ts";
import type { Connection } from "../netcore/transport/connection.ts";
import { MemoryTransport } from "../netcore/transport/memory_transport.ts";
import { TcpTransport } from "../netcore/transport/tcp_transport.ts";
import type { Transport } from "../netcore/transport/transport.ts";

const MIB = 1024 * 1024;
const BULK = 16 * MIB;
const CHUNK = new Uint8Array(64 * 1024);
const SMALL = new Uint8Array(64);

/** Reads `BULK` bytes, then acknowledges with one byte, forever. */
async function sink(conn: Connection): Promise<void> {
  let count = 0;
  for (let chunk = await conn.read(); chunk !== null; chunk = await conn.read()) {
    count += chunk.length;
    while (count >= BULK) {
      count -= BULK;
      await conn.write(new Uint8Array([1]));
    }
  }
}

/** Echoes every chunk back. */
async function echo(conn: Connection): Promise<void> {
  for (let chunk = await conn.read(); chunk !== null; chunk = await conn.read()) {
    await conn.write(chunk);
  }
  await conn.closeWrite();
}

/** Listens with `handler`, dials once and returns the client's end. */
async function connect(
  transport: Transport,
  addr: string,
  handler: (conn: Connection) => Promise<void>,
): Promise<Connection> {
  const listener = await transport.listen(Multiaddr.parse(addr));
  (async () => {
    for await (const conn of listener) handler(conn).catch(() => conn.abort());
  })();
  return await transport.dial(listener.addr);
}

/** The byte path every layer above uses: a promise from `write` means wait. */
async function bulk(conn: Connection): Promise<void> {
  for (let sent = 0; sent < BULK; sent += CHUNK.length) {
    await conn.write(CHUNK);
  }
  const ack = await conn.read();
  if (ack?.[0] !== 1) throw new Error("no acknowledgement");
}

async function roundTrip(conn: Connection): Promise<void> {
  await conn.write(SMALL);
  let received = 0;
  while (received < SMALL.length) {
    const chunk = await conn.read();
    if (chunk === null) throw new Error("echo ended");
    received += chunk.length;
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
