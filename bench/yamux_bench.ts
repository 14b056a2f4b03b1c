/**
 * Yamux over an in-memory connection (memsocket): one-stream throughput,
 * 100-stream throughput, small-message round trip and ping, each next to the
 * raw connection's figure as a baseline.
 *
 * Run: `deno bench --allow-all bench/yamux_bench.ts`. Throughput in MB/s is
 * bytes per iteration / time per iteration (16 MiB per iteration).
 */

import { MemorySocket } from "../memsocket/mod.ts";
import { Multiaddr } from "../netcore/multiaddr.ts";
import { Yamux, type YamuxStream } from "../netcore/multiplexing/mod.ts";
import type { ByteSource, Connection } from "../netcore/transport/connection.ts";
import { Ed25519Identity } from "../netcore/identity/mod.ts";
import { libp2pNoise } from "../netcore/noise/libp2p_noise.ts";
import { SocketConnection } from "../netcore/transport/socket_connection.ts";
import { TcpTransport } from "../netcore/transport/tcp_transport.ts";

const TOTAL = 16 * 1024 * 1024;
const CHUNK = 256 * 1024;
const payload = new Uint8Array(CHUNK).fill(7);

/** Two connected in-memory connections: memsocket sockets under the production `SocketConnection`. */
function pair(): [Connection, Connection] {
  const [a, b] = MemorySocket.pair("/memory/1", "/memory/2", 1 << 20);
  const addrA = Multiaddr.parse(a.localAddr);
  const addrB = Multiaddr.parse(b.localAddr);
  return [
    new SocketConnection(a, () => addrA, () => addrB),
    new SocketConnection(b, () => addrB, () => addrA),
  ];
}

/** Reads `bytes` bytes from `source`. */
async function drain(source: ByteSource, bytes: number): Promise<void> {
  let got = 0;
  while (got < bytes) {
    const chunk = await source.read();
    if (chunk === null) throw new Error("ended early");
    got += chunk.length;
  }
}

/** Reads `source` to its end. */
async function drainToEnd(source: ByteSource): Promise<void> {
  while ((await source.read()) !== null) {
    // discard
  }
}

// ---- raw baseline -----------------------------------------------------------

const [rawA, rawB] = pair();

Deno.bench("raw memsocket: 16 MiB one way", {
  group: "throughput",
  baseline: true,
}, async () => {
  const reading = drain(rawB, TOTAL);
  for (let at = 0; at < TOTAL; at += CHUNK) await rawA.write(payload);
  await reading;
});

// ---- yamux sessions -------------------------------------------------------------

const [a, b] = pair();
const client = Yamux.create(a, { role: "dialer", keepAliveInterval: 0 });
const server = Yamux.create(b, { role: "listener", keepAliveInterval: 0 });
client.start();
server.start();

/** Inbound streams: 'sink' drains to the end; 'echo' echoes. Decided by the first byte. */
(async () => {
  for await (const stream of server) {
    (async () => {
      const first = await stream.read();
      if (first === null) return;
      if (first[0] === 0x65 /* e */) {
        for (let chunk: Uint8Array | null = first; chunk !== null; chunk = await stream.read()) {
          await stream.write(chunk);
        }
      } else {
        await drainToEnd(stream);
      }
      await stream.closeWrite();
    })().catch(() => {});
  }
})();

async function sendOnStream(bytes: number): Promise<void> {
  const stream = await client.openStream();
  for (let at = 0; at < bytes; at += CHUNK) {
    await stream.write(bytes - at >= CHUNK ? payload : payload.subarray(0, bytes - at));
  }
  await stream.closeWrite();
  await drainToEnd(stream);
  await stream.closed;
}

Deno.bench("yamux: 16 MiB on one stream", { group: "throughput" }, async () => {
  await sendOnStream(TOTAL);
});

Deno.bench(
  "yamux: 16 MiB over 100 concurrent streams",
  { group: "throughput" },
  async () => {
    await Promise.all(
      Array.from({ length: 100 }, () => sendOnStream(TOTAL / 100)),
    );
  },
);

// ---- round trips ------------------------------------------------------------

const small = new TextEncoder().encode("e".repeat(32));

Deno.bench("raw memsocket: 32-byte round trip", {
  group: "rtt",
  baseline: true,
}, async () => {
  await rawB.write(small);
  const back = await rawA.read();
  await rawA.write(back!);
  await rawB.read();
});

let echoStream: YamuxStream | undefined;

Deno.bench(
  "yamux: 32-byte round trip on one stream",
  { group: "rtt" },
  async () => {
    echoStream ??= await client.openStream();
    await echoStream.write(small);
    await drain(echoStream, small.length);
  },
);

Deno.bench("yamux: ping()", { group: "rtt" }, async () => {
  await client.ping();
});

// ---- through Noise (libp2p-noise XX, native crypto) --------------------------

const identityA = Ed25519Identity.generate();
const identityB = Ed25519Identity.generate();
const noiseA = libp2pNoise(identityA);
const noiseB = libp2pNoise(identityB);
const signal = new AbortController().signal;

async function tcpPair(): Promise<[Connection, Connection]> {
  const tcp = new TcpTransport();
  const listener = await tcp.listen(Multiaddr.parse("/ip4/127.0.0.1/tcp/0"));
  const accepted = listener[Symbol.asyncIterator]().next();
  const dialed = await tcp.dial(listener.addr);
  const inbound = (await accepted).value!;
  await listener.close();
  return [dialed, inbound];
}

for (const kind of ["memory", "tcp"] as const) {
  const [rawDial, rawListen] = kind === "memory" ? pair() : await tcpPair();
  const [secureA, secureB] = await Promise.all([
    noiseA(rawDial, { role: "dialer", signal }),
    noiseB(rawListen, { role: "listener", signal }),
  ]);
  // The secure channel alone: the ceiling for yamux on top of it.
  const [plainA, plainB] = kind === "memory" ? pair() : await tcpPair();
  const [chanA, chanB] = await Promise.all([
    noiseA(plainA, { role: "dialer", signal }),
    noiseB(plainB, { role: "listener", signal }),
  ]);
  Deno.bench(`noise alone over ${kind}: 16 MiB`, {
    group: `noise ${kind}`,
    baseline: true,
  }, async () => {
    const reading = drain(chanB, TOTAL);
    for (let at = 0; at < TOTAL; at += CHUNK) await chanA.write(payload);
    await reading;
  });

  const muxA = Yamux.create(secureA, { role: "dialer", keepAliveInterval: 0 });
  const muxB = Yamux.create(secureB, {
    role: "listener",
    keepAliveInterval: 0,
  });
  muxA.start();
  muxB.start();
  (async () => {
    for await (const stream of muxB) {
      (async () => {
        await drainToEnd(stream);
        await stream.closeWrite();
      })().catch(() => {});
    }
  })();
  Deno.bench(`noise+yamux over ${kind}: 16 MiB on one stream`, {
    group: `noise ${kind}`,
  }, async () => {
    const stream = await muxA.openStream();
    for (let at = 0; at < TOTAL; at += CHUNK) await stream.write(payload);
    await stream.closeWrite();
    await drainToEnd(stream);
  });
  Deno.bench(
    `noise+yamux over ${kind}: ping()`,
    { group: `noise ${kind} rtt` },
    async () => {
      await muxA.ping();
    },
  );
}
