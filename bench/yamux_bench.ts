/**
 * Yamux over an in-memory connection (memsocket): one-stream throughput,
 * 100-stream throughput, small-message round trip and ping, each next to the
 * raw connection's figure as a baseline.
 *
 * Run: `deno bench --allow-all bench/yamux_bench.ts`. Throughput in MB/s is
 * bytes per iteration / time per iteration (16 MiB per iteration).
 */

import { MemoryConnection } from "../memsocket/mod.ts";
import { Multiaddr } from "../netcore/multiaddr.ts";
import { Yamux, type YamuxStream } from "../netcore/multiplexing/mod.ts";
import type { Connection } from "../netcore/transport/connection.ts";
import { Ed25519Identity } from "../netcore/identity/mod.ts";
import { libp2pNoise } from "../netcore/noise/libp2p_noise.ts";
import { TcpTransport } from "../netcore/transport/tcp_transport.ts";

const TOTAL = 16 * 1024 * 1024;
const CHUNK = 256 * 1024;
const payload = new Uint8Array(CHUNK).fill(7);

function pair(): [Connection, Connection] {
  return MemoryConnection.pair(
    Multiaddr.parse("/memory/1"),
    Multiaddr.parse("/memory/2"),
    { bufferSize: 1 << 20 },
  );
}

// ---- raw baseline -----------------------------------------------------------

const [rawA, rawB] = pair();
const rawWriter = rawA.writable.getWriter();
const rawReader = rawB.readable.getReader();
const rawBackWriter = rawB.writable.getWriter();
const rawBackReader = rawA.readable.getReader();

async function drainRaw(bytes: number): Promise<void> {
  let got = 0;
  while (got < bytes) {
    const { value } = await rawReader.read();
    got += value!.length;
  }
}

Deno.bench("raw memsocket: 16 MiB one way", {
  group: "throughput",
  baseline: true,
}, async () => {
  const reading = drainRaw(TOTAL);
  for (let at = 0; at < TOTAL; at += CHUNK) await rawWriter.write(payload);
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
      const reader = stream.readable.getReader();
      const first = await reader.read();
      if (first.done) return;
      if (first.value[0] === 0x65 /* e */) {
        const writer = stream.writable.getWriter();
        await writer.write(first.value);
        while (true) {
          const { done, value } = await reader.read();
          if (done) break;
          await writer.write(value);
        }
        await writer.close();
      } else {
        while (!(await reader.read()).done) {
          // drain
        }
        await stream.writable.close();
      }
    })().catch(() => {});
  }
})();

async function sendOnStream(bytes: number): Promise<void> {
  const stream = await client.openStream();
  const writer = stream.writable.getWriter();
  for (let at = 0; at < bytes; at += CHUNK) {
    await writer.write(
      bytes - at >= CHUNK ? payload : payload.subarray(0, bytes - at),
    );
  }
  await writer.close();
  writer.releaseLock();
  await stream.readable.pipeTo(new WritableStream());
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
  await rawBackWriter.write(small);
  const { value } = await rawBackReader.read();
  await rawWriter.write(value!);
  await rawReader.read();
});

let echoStream: YamuxStream | undefined;
let echoWriter: WritableStreamDefaultWriter<Uint8Array>;
let echoReader: ReadableStreamDefaultReader<Uint8Array>;

Deno.bench(
  "yamux: 32-byte round trip on one stream",
  { group: "rtt" },
  async () => {
    if (echoStream === undefined) {
      echoStream = await client.openStream();
      echoWriter = echoStream.writable.getWriter();
      echoReader = echoStream.readable.getReader();
    }
    await echoWriter.write(small);
    let got = 0;
    while (got < small.length) got += (await echoReader.read()).value!.length;
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
  const chanWriter = chanA.writable.getWriter();
  const chanReader = chanB.readable.getReader();
  Deno.bench(`noise alone over ${kind}: 16 MiB`, {
    group: `noise ${kind}`,
    baseline: true,
  }, async () => {
    const reading = (async () => {
      let got = 0;
      while (got < TOTAL) got += (await chanReader.read()).value!.length;
    })();
    for (let at = 0; at < TOTAL; at += CHUNK) await chanWriter.write(payload);
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
        const reader = stream.readable.getReader();
        while (!(await reader.read()).done) {
          // drain
        }
        await stream.writable.close();
      })().catch(() => {});
    }
  })();
  Deno.bench(`noise+yamux over ${kind}: 16 MiB on one stream`, {
    group: `noise ${kind}`,
  }, async () => {
    const stream = await muxA.openStream();
    const writer = stream.writable.getWriter();
    for (let at = 0; at < TOTAL; at += CHUNK) await writer.write(payload);
    await writer.close();
    writer.releaseLock();
    await stream.readable.pipeTo(new WritableStream());
  });
  Deno.bench(
    `noise+yamux over ${kind}: ping()`,
    { group: `noise ${kind} rtt` },
    async () => {
      await muxA.ping();
    },
  );
}
