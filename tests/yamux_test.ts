/**
 * The yamux session against the spec (hashicorp/yamux `spec.md`, libp2p/specs
 * `yamux/README.md`), two sessions talking over an in-memory connection.
 */

import type { MemorySocket } from "../memsocket/mod.ts";
import { Deadline, delay } from "../netcore/_async.ts";
import { Ed25519Identity } from "../netcore/identity/mod.ts";
import { Logger } from "../netcore/log.ts";
import { MetricsRegistry } from "../netcore/metrics.ts";
import { Multiaddr } from "../netcore/multiaddr.ts";
import {
  encodeFrameHeader,
  Flag,
  FrameType,
  GoAwayCode,
  HEADER_LENGTH,
  INITIAL_STREAM_WINDOW,
  Yamux,
  type YamuxOptions,
  type YamuxStream,
} from "../netcore/multiplexing/mod.ts";
import { ByteConnection } from "../netcore/transport/byte_connection.ts";
import type { Connection } from "../netcore/transport/connection.ts";
import type { SocketConnection } from "../netcore/transport/socket_connection.ts";
import { libp2pUpgrade, type PeerConnection } from "../netcore/upgrade/mod.ts";
import { assert, assertEquals, assertRejectsCode } from "./_assert.ts";
import { readAll } from "./_bytes.ts";
import { memoryPair, memorySocketPair, socketConnection, upgradeContext } from "./_pair.ts";
import { readAllFrom, settlesWithin } from "./_streams.ts";

/** Session failures are expected here; their warnings would only clutter the output. */
const quiet = new Logger({}, "off");

const encoder = new TextEncoder();
const decoder = new TextDecoder();

function connectionPair(latency = 0, bufferSize = 1 << 20): [SocketConnection, SocketConnection] {
  return memoryPair({ latency, bufferSize, closeGracePeriod: 1_000 });
}

interface Pair {
  client: Yamux;
  server: Yamux;
  close(): Promise<void>;
}

function sessionPair(
  clientOptions: Partial<YamuxOptions> = {},
  serverOptions: Partial<YamuxOptions> = {},
  latency = 0,
  bufferSize?: number,
): Pair {
  const [a, b] = connectionPair(latency, bufferSize);
  const client = Yamux.create(a, {
    role: "dialer",
    keepAliveInterval: 0,
    logger: quiet,
    ...clientOptions,
  });
  const server = Yamux.create(b, {
    role: "listener",
    keepAliveInterval: 0,
    logger: quiet,
    ...serverOptions,
  });
  client.start();
  server.start();
  return {
    client,
    server,
    async close() {
      await Promise.all([client.close(), server.close()]);
    },
  };
}

/** Serves every inbound stream by echoing it back, then half-closing. */
function serveEcho(muxer: Yamux): Promise<void> {
  return (async () => {
    for await (const stream of muxer) {
      stream.readable.pipeTo(stream.writable).catch(() => {});
    }
  })();
}

async function echoOnce(stream: YamuxStream, text: string): Promise<string> {
  const writer = stream.writable.getWriter();
  await writer.write(encoder.encode(text));
  await writer.close();
  return decoder.decode(await readAll(stream.readable));
}

Deno.test("yamux: open, accept and echo in both directions; dialer ids odd, listener ids even", async () => {
  const { client, server, close } = sessionPair();
  const serving = [serveEcho(server), serveEcho(client)];
  const fromClient = await client.openStream();
  const fromServer = await server.openStream();
  assertEquals([fromClient.id % 2, fromServer.id % 2], [1, 0]);
  assertEquals([fromClient.direction, fromServer.direction], ["outbound", "outbound"]);
  assertEquals(await echoOnce(fromClient, "hello from the dialer"), "hello from the dialer");
  assertEquals(await echoOnce(fromServer, "hello from the listener"), "hello from the listener");
  await Promise.all([fromClient.closed, fromServer.closed]);
  assertEquals([fromClient.state, fromServer.state], ["closed", "closed"]);
  await close();
  await Promise.all(serving);
});

Deno.test("yamux: 1000 concurrent streams all complete", async () => {
  const { client, server, close } = sessionPair(
    { maxUnackedOutboundStreams: 1000 },
    { acceptBacklog: 1000 },
  );
  const serving = serveEcho(server);
  const streams = await Promise.all(Array.from({ length: 1000 }, () => client.openStream()));
  const replies = await Promise.all(streams.map((s, i) => echoOnce(s, `message ${i}`.repeat(20))));
  for (let i = 0; i < replies.length; i++) assertEquals(replies[i], `message ${i}`.repeat(20));
  await Promise.all(streams.map((s) => s.closed));
  assertEquals([client.streamCount, server.streamCount], [0, 0]);
  await close();
  await serving;
});

function pattern(offset: number, length: number): Uint8Array {
  const out = new Uint8Array(length);
  for (let i = 0; i < length; i++) {
    const n = offset + i;
    out[i] = (n * 31 + (n >>> 13)) & 0xff;
  }
  return out;
}

Deno.test("yamux: 64 MiB on one stream arrive intact and in order", async () => {
  const { client, server, close } = sessionPair();
  const total = 64 * 1024 * 1024;
  const chunk = 1024 * 1024;
  const received = (async () => {
    for await (const stream of server) {
      let at = 0;
      for await (const piece of stream.readable) {
        const expected = pattern(at, piece.length);
        for (let i = 0; i < piece.length; i++) {
          if (piece[i] !== expected[i]) throw new Error(`byte ${at + i} corrupted`);
        }
        at += piece.length;
      }
      await stream.close();
      return at;
    }
  })();
  const stream = await client.openStream();
  const writer = stream.writable.getWriter();
  const buffer = new Uint8Array(chunk);
  for (let at = 0; at < total; at += chunk) {
    // The same buffer is reused once each write resolves, as the contract allows.
    buffer.set(pattern(at, chunk));
    await writer.write(buffer);
  }
  await writer.close();
  assertEquals(await received, total);
  await stream.closed;
  await close();
});

Deno.test("yamux: backpressure: an unread stream stalls its writer; the receiver holds at most the window", async () => {
  const { client, server, close } = sessionPair();
  const inbound = server[Symbol.asyncIterator]().next();
  const stream = await client.openStream();
  const writer = stream.writable.getWriter();
  let accepted = 0;
  const piece = new Uint8Array(64 * 1024);
  const writing = (async () => {
    for (let i = 0; i < 64; i++) {
      await writer.write(piece);
      accepted += piece.length;
    }
    await writer.close();
  })();
  const { value: remote } = await inbound;
  assert(remote !== undefined);
  for (let i = 0; i < 200 && remote.stats().bufferedBytes < INITIAL_STREAM_WINDOW; i++) {
    await delay(10);
  }
  await delay(50);
  // 4 MiB offered; the peer granted 256 KiB and nobody reads.
  assert(accepted <= INITIAL_STREAM_WINDOW, `writer accepted ${accepted} bytes`);
  const stats = remote.stats();
  assertEquals(stats.bufferedBytes, INITIAL_STREAM_WINDOW, "receiver buffered");
  assert(stats.bufferedBytes <= stats.receiveWindow);
  assertEquals(stream.stats().sendWindow, 0, "sender window");
  // Reading releases the writer.
  const all = await readAll(remote.readable);
  await writing;
  assertEquals(all.length, 64 * piece.length);
  await remote.close();
  await close();
});

/** A connection whose writes can be held: a held write waits (a promise) and goes through on release. */
class GatedConnection extends ByteConnection {
  /** Write calls made while held. */
  heldWrites = 0;
  readonly #inner: Connection;
  #held = false;
  #waiting: { chunk: Uint8Array; done: PromiseWithResolvers<void> }[] = [];

  constructor(inner: Connection) {
    super();
    this.#inner = inner;
  }
  hold(): void {
    this.#held = true;
  }
  /** Passes the held chunks on, in order, and lets their writers go on. */
  async release(): Promise<void> {
    this.#held = false;
    for (const { chunk, done } of this.#waiting.splice(0)) {
      await this.#inner.write(chunk);
      done.resolve();
    }
  }
  write(chunk: Uint8Array): Promise<void> | undefined {
    if (!this.#held) return this.#inner.write(chunk);
    this.heldWrites++;
    const done = Promise.withResolvers<void>();
    this.#waiting.push({ chunk, done });
    return done.promise;
  }
  get localAddr(): Multiaddr {
    return this.#inner.localAddr;
  }
  get remoteAddr(): Multiaddr {
    return this.#inner.remoteAddr;
  }
  get closed(): Promise<void> {
    return this.#inner.closed;
  }
  read(): Promise<Uint8Array | null> {
    return this.#inner.read();
  }
  readInto(buffer: Uint8Array): Promise<number | null> {
    return this.#inner.readInto(buffer);
  }
  cancelRead(reason?: unknown): void {
    this.#inner.cancelRead(reason);
  }
  closeWrite(): Promise<void> {
    return this.#inner.closeWrite();
  }
  close(): Promise<void> {
    return this.#inner.close();
  }
  abort(reason?: unknown): void {
    this.#inner.abort(reason);
  }
}

Deno.test("yamux: write scheduler: a stream writer waits while the connection below asks to wait; nothing is lost", async () => {
  const [a, b] = connectionPair();
  const gate = new GatedConnection(a);
  const client = Yamux.create(gate, { role: "dialer", keepAliveInterval: 0, logger: quiet });
  // A window far larger than the scheduler's 1 MiB high-water mark: only the
  // connection below can hold the writer back.
  const window = 16 << 20;
  const server = Yamux.create(b, {
    role: "listener",
    keepAliveInterval: 0,
    logger: quiet,
    initialStreamWindow: window,
    maxStreamWindow: window,
  });
  client.start();
  server.start();
  const total = 4 << 20;
  const piece = 64 * 1024;
  const stream = await client.openStream();
  await stream.write(pattern(0, piece));
  const { value: remote } = await server[Symbol.asyncIterator]().next();
  assert(remote !== undefined);
  while (stream.stats().sendWindow < total) await delay(1);

  gate.hold();
  let accepted = piece;
  const writing = (async () => {
    for (let at = piece; at < total; at += piece) {
      await stream.write(pattern(at, piece));
      accepted += piece;
    }
    await stream.closeWrite();
  })();
  await delay(50);
  // One write reached the connection, which asked to wait: the scheduler
  // writes nothing more until it may, and queues up to its high-water mark.
  assertEquals(gate.heldWrites, 1);
  assert(accepted >= 1 << 20 && accepted < 2 << 20, `writer accepted ${accepted} bytes`);
  assert(stream.stats().sendWindow > 0, "the window did not stop the writer");
  assertEquals(await settlesWithin(writing, 0), false);

  const releasing = gate.release();
  const received = await readAllFrom(remote);
  await Promise.all([writing, releasing]);
  assertEquals(received.length, total);
  assertEquals(received, pattern(0, total));
  await remote.close();
  await Promise.all([client.close(), server.close()]);
});

Deno.test("yamux: window updates and auto-tuning: the window grows under load on a slow link", async () => {
  // 10 ms each way: 256 KiB per 20 ms round trip would cap a stream at ~13 MB/s.
  const { client, server, close } = sessionPair({}, {}, 10, 64 << 20);
  const total = 16 * 1024 * 1024;
  const received = (async () => {
    for await (const stream of server) {
      const data = await readAll(stream.readable);
      const window = stream.stats().receiveWindow;
      await stream.close();
      return { length: data.length, window };
    }
  })();
  // No ping before the transfer: the first window update measures the round trip.
  assertEquals(server.rtt, undefined);
  const stream = await client.openStream();
  const writer = stream.writable.getWriter();
  const started = performance.now();
  for (let at = 0; at < total; at += 1 << 20) await writer.write(new Uint8Array(1 << 20));
  await writer.close();
  const result = await received;
  const seconds = (performance.now() - started) / 1000;
  assertEquals(result?.length, total);
  assert(result!.window > INITIAL_STREAM_WINDOW, `window stayed at ${result?.window}`);
  assert(server.rtt !== undefined && server.rtt >= 19, `rtt ${server.rtt}`);
  // Without tuning this takes 64 round trips (> 1.2 s).
  assert(seconds < 1.2, `took ${seconds.toFixed(2)} s`);
  await stream.closed;
  await close();
});

Deno.test("yamux: auto-tuning never grows past maxStreamWindow", async () => {
  const { client, server, close } = sessionPair({}, { maxStreamWindow: INITIAL_STREAM_WINDOW }, 5);
  const received = (async () => {
    for await (const stream of server) {
      const data = await readAll(stream.readable);
      const window = stream.stats().receiveWindow;
      await stream.close();
      return { length: data.length, window };
    }
  })();
  await server.ping();
  const stream = await client.openStream();
  const writer = stream.writable.getWriter();
  for (let i = 0; i < 4; i++) await writer.write(new Uint8Array(1 << 20));
  await writer.close();
  assertEquals(await received, { length: 4 << 20, window: INITIAL_STREAM_WINDOW });
  await close();
});

Deno.test("yamux: auto-tuning grows windows only within the connection budget, given back when a stream ends", async () => {
  const metrics = new MetricsRegistry().scope({ network: "yamux-budget" });
  const grown = () => metrics.counter("validator_network_yamux_window_grown_bytes_total", "").get();
  // Room for one stream's initial window and two more of its size: the
  // first growth doubles 256 KiB to 512 KiB, the second would double it
  // again but gets only what is left.
  const budget = 3 * INITIAL_STREAM_WINDOW;
  const { client, server, close } = sessionPair(
    {},
    { maxConnectionWindow: budget, metrics },
    10,
    64 << 20,
  );
  const windows = (async () => {
    const seen: number[] = [];
    for await (const stream of server) {
      await readAllFrom(stream);
      seen.push(stream.stats().receiveWindow);
      await stream.close();
      if (seen.length === 2) return seen;
    }
    return seen;
  })();
  // One stream after the other: the second may grow as far as the first
  // only if the first gave its window back.
  for (let i = 0; i < 2; i++) {
    const stream = await client.openStream();
    for (let at = 0; at < 8 << 20; at += 1 << 20) await stream.write(new Uint8Array(1 << 20));
    await stream.closeWrite();
    assertEquals(await readAllFrom(stream), new Uint8Array(0));
    await stream.closed;
  }
  assertEquals(await windows, [budget, budget]);
  assertEquals(grown(), 2 * (budget - INITIAL_STREAM_WINDOW));
  await close();
});

Deno.test("yamux: half-close both ways: FIN ends the peer's readable, the other direction goes on", async () => {
  const { client, server, close } = sessionPair();
  const serving = (async () => {
    for await (const stream of server) {
      const request = decoder.decode(await readAll(stream.readable));
      assertEquals(stream.state, "remoteClose");
      const writer = stream.writable.getWriter();
      await writer.write(encoder.encode(`got ${request}`));
      await writer.close();
      await stream.closed;
      assertEquals(stream.state, "closed");
      return;
    }
  })();
  const stream = await client.openStream();
  const writer = stream.writable.getWriter();
  await writer.write(encoder.encode("request"));
  await writer.close();
  assertEquals(stream.state, "localClose");
  assertEquals(decoder.decode(await readAll(stream.readable)), "got request");
  await stream.closed;
  assertEquals(stream.state, "closed");
  await serving;
  await close();
});

Deno.test("yamux: a reset is seen by the peer: its reads and writes fail with CONNECTION_RESET", async () => {
  const { client, server, close } = sessionPair();
  const inbound = server[Symbol.asyncIterator]().next();
  const stream = await client.openStream();
  const w = stream.writable.getWriter();
  await w.write(encoder.encode("x"));
  w.releaseLock();
  const { value: remote } = await inbound;
  assert(remote !== undefined);
  const reader = remote.readable.getReader();
  assertEquals(decoder.decode((await reader.read()).value), "x");
  stream.abort(new Error("changed my mind"));
  await assertRejectsCode(reader.read(), "CONNECTION_RESET");
  await assertRejectsCode(
    remote.writable.getWriter().write(encoder.encode("late")),
    "CONNECTION_RESET",
  );
  await remote.closed;
  assertEquals([stream.state, remote.state], ["reset", "reset"]);
  // The session is fine.
  const serving = serveEcho(server);
  assertEquals(await echoOnce(await client.openStream(), "still here"), "still here");
  await close();
  await serving;
});

Deno.test("yamux: GoAway on close: new streams are refused, existing ones finish", async () => {
  const { client, server } = sessionPair();
  const inbound = server[Symbol.asyncIterator]().next();
  const stream = await client.openStream();
  const { value: remote } = await inbound;
  assert(remote !== undefined);
  const serverClosed = server.close();
  while (client.remoteGoAway === undefined) await delay(1);
  assertEquals(client.remoteGoAway, GoAwayCode.NormalTermination);
  await assertRejectsCode(client.openStream(), "CONNECTION_CLOSED");
  assertEquals(server.state, "closing");
  // The existing stream still works both ways.
  remote.readable.pipeTo(remote.writable).catch(() => {});
  assertEquals(await echoOnce(stream, "finishing"), "finishing");
  await serverClosed;
  await client.closed;
  assertEquals([server.state, client.state, server.error, client.error?.code], [
    "closed",
    "closed",
    undefined,
    undefined,
  ]);
});

Deno.test("yamux: inbound stream limit: the excess stream is reset and counted; the connection survives", async () => {
  const metrics = new MetricsRegistry().scope({ network: "yamux-test" });
  const refused = (reason: string) =>
    metrics.counter("validator_network_yamux_streams_refused_total", "", ["reason"]).get({
      reason,
    });
  const { client, server, close } = sessionPair({}, { maxInboundStreams: 2, metrics });
  const serving = serveEcho(server);
  const first = await client.openStream();
  const second = await client.openStream();
  const third = await client.openStream();
  await assertRejectsCode(third.readable.getReader().read(), "CONNECTION_RESET");
  assertEquals(refused("inbound_limit"), 1);
  assertEquals(await echoOnce(first, "one"), "one");
  await first.closed;
  // A slot is free again.
  assertEquals(await echoOnce(await client.openStream(), "four"), "four");
  assertEquals(await echoOnce(second, "two"), "two");
  await close();
  await serving;
});

Deno.test("yamux: unacknowledged outbound streams are limited: LIMIT_EXCEEDED", async () => {
  // The server never takes streams from its iterator, so it never ACKs.
  const { client, close } = sessionPair({ maxUnackedOutboundStreams: 2 });
  await client.openStream();
  await client.openStream();
  await assertRejectsCode(client.openStream(), "LIMIT_EXCEEDED");
  await close();
});

Deno.test("yamux: the accept backlog is bounded; streams opened before iteration are not lost", async () => {
  const { client, server, close } = sessionPair({}, { acceptBacklog: 2 });
  const streams = [await client.openStream(), await client.openStream(), await client.openStream()];
  await assertRejectsCode(streams[2].readable.getReader().read(), "CONNECTION_RESET");
  const serving = serveEcho(server);
  assertEquals(await echoOnce(streams[0], "a"), "a");
  assertEquals(await echoOnce(streams[1], "b"), "b");
  await close();
  await serving;
});

/** A raw peer: writes frames by hand, reads what the session sends. */
/** A SYN opening stream `id`: a window update, or a data frame with `body` zero bytes. */
function synFrame(id: number, body = 0): Uint8Array {
  if (body === 0) {
    return encodeFrameHeader({
      type: FrameType.WindowUpdate,
      flags: Flag.SYN,
      streamId: id,
      length: 0,
    });
  }
  const frame = new Uint8Array(HEADER_LENGTH + body);
  frame.set(
    encodeFrameHeader({ type: FrameType.Data, flags: Flag.SYN, streamId: id, length: body }),
  );
  return frame;
}

function rawPeer(options: Partial<YamuxOptions> = {}, bufferSize?: number) {
  const [a, b] = connectionPair(0, bufferSize);
  const muxer = Yamux.create(b, {
    role: "listener",
    keepAliveInterval: 0,
    logger: quiet,
    ...options,
  });
  muxer.start();
  const writer = a.writable.getWriter();
  const reader = a.readable.getReader();
  let buffered = new Uint8Array(0);
  return {
    muxer,
    raw: a,
    write: (bytes: Uint8Array) => writer.write(bytes),
    /** The next frame header the session sent (bodies skipped). */
    async nextFrame(): Promise<
      { type: number; flags: number; id: number; length: number } | undefined
    > {
      while (buffered.length < HEADER_LENGTH) {
        const { done, value } = await reader.read().catch(() => ({ done: true, value: undefined }));
        if (done || value === undefined) return undefined;
        const next = new Uint8Array(buffered.length + value.length);
        next.set(buffered);
        next.set(value, buffered.length);
        buffered = next;
      }
      const view = new DataView(buffered.buffer, buffered.byteOffset);
      const frame = {
        type: view.getUint8(1),
        flags: view.getUint16(2),
        id: view.getUint32(4),
        length: view.getUint32(8),
      };
      const skip = HEADER_LENGTH + (frame.type === FrameType.Data ? frame.length : 0);
      buffered = buffered.subarray(Math.min(skip, buffered.length));
      return frame;
    },
    /** The next frame that is not a Ping (session-level, checked by tests of their own). */
    async nextStreamFrame(): Promise<
      { type: number; flags: number; id: number; length: number } | undefined
    > {
      while (true) {
        const frame = await this.nextFrame();
        if (frame === undefined || frame.type !== FrameType.Ping) return frame;
      }
    },
  };
}

Deno.test("yamux: a peer sending data past the window gets GoAway(protocol error); PROTOCOL_VIOLATION", async () => {
  const peer = rawPeer();
  await peer.write(
    encodeFrameHeader({ type: FrameType.WindowUpdate, flags: Flag.SYN, streamId: 1, length: 0 }),
  );
  const tooMuch = INITIAL_STREAM_WINDOW + 1;
  const frame = new Uint8Array(HEADER_LENGTH + tooMuch);
  frame.set(encodeFrameHeader({ type: FrameType.Data, flags: 0, streamId: 1, length: tooMuch }));
  await peer.write(frame).catch(() => {});
  let goAway: { length: number } | undefined;
  while (true) {
    const next = await peer.nextFrame();
    if (next === undefined || next.type === FrameType.GoAway) {
      goAway = next;
      break;
    }
  }
  assertEquals(goAway?.length, GoAwayCode.ProtocolError);
  await peer.muxer.closed;
  assertEquals(peer.muxer.error?.code, "PROTOCOL_VIOLATION");
  assertEquals(peer.muxer.state, "closed");
  peer.raw.abort();
});

Deno.test("yamux: ping measures the round trip; pings from the peer are answered", async () => {
  const { client, server, close } = sessionPair({}, {}, 5);
  const rtt = await client.ping();
  assert(rtt >= 9 && rtt < 500, `rtt ${rtt}`);
  const back = await server.ping();
  assert(back >= 9 && back < 500, `rtt ${back}`);
  assert(client.rtt !== undefined && client.rtt >= 9);
  await close();
});

Deno.test("yamux: the raw wire: a stream's SYN rides on its first data frame, in open order", async () => {
  const peer = rawPeer({ role: "dialer" });
  const stream = await peer.muxer.openStream();
  const writer = stream.writable.getWriter();
  await writer.write(new Uint8Array(5));
  assertEquals(await peer.nextFrame(), { type: FrameType.Data, flags: Flag.SYN, id: 1, length: 5 });
  // Opened first, written second: the first stream's SYN goes out on its own, before.
  const quiet = await peer.muxer.openStream();
  const busy = await peer.muxer.openStream();
  await busy.writable.getWriter().write(new Uint8Array(2));
  assertEquals(await peer.nextFrame(), {
    type: FrameType.WindowUpdate,
    flags: Flag.SYN,
    id: quiet.id,
    length: 0,
  });
  assertEquals(await peer.nextFrame(), {
    type: FrameType.Data,
    flags: Flag.SYN,
    id: busy.id,
    length: 2,
  });
  // A stream nobody writes to is announced all the same, once this turn of the event loop ends.
  const idle = await peer.muxer.openStream();
  assertEquals(await peer.nextFrame(), {
    type: FrameType.WindowUpdate,
    flags: Flag.SYN,
    id: idle.id,
    length: 0,
  });
  // Later frames carry no SYN.
  await writer.write(new Uint8Array(1));
  assertEquals(await peer.nextFrame(), { type: FrameType.Data, flags: 0, id: 1, length: 1 });
  peer.muxer.abort();
  peer.raw.abort();
});

Deno.test("yamux: the raw wire: the ACK rides on the listener's first answer", async () => {
  const peer = rawPeer();
  await peer.write(synFrame(1, 3));
  const { value: stream } = await peer.muxer[Symbol.asyncIterator]().next();
  const reader = stream!.readable.getReader();
  assertEquals((await reader.read()).value?.length, 3);
  await stream!.writable.getWriter().write(new Uint8Array(4));
  assertEquals(await peer.nextStreamFrame(), {
    type: FrameType.Data,
    flags: Flag.ACK,
    id: 1,
    length: 4,
  });
  // A listener that waits to read before answering acknowledges at once.
  await peer.write(synFrame(3));
  const { value: waiting } = await peer.muxer[Symbol.asyncIterator]().next();
  const pending = waiting!.readable.getReader().read();
  assertEquals(await peer.nextStreamFrame(), {
    type: FrameType.WindowUpdate,
    flags: Flag.ACK,
    id: 3,
    length: 0,
  });
  peer.muxer.abort();
  await pending.catch(() => {});
  peer.raw.abort();
});

Deno.test("yamux: the raw wire: a short exchange sends no ping; the RTT is measured when a window update asks for it", async () => {
  const peer = rawPeer();
  await peer.write(synFrame(1, 3));
  const { value: stream } = await peer.muxer[Symbol.asyncIterator]().next();
  assert(stream !== undefined);
  assertEquals((await stream.read())?.length, 3);
  await stream.write(new Uint8Array(4));
  await stream.closeWrite();
  // Our own ping marks the end: whatever the session sent comes before its answer.
  await peer.write(
    encodeFrameHeader({ type: FrameType.Ping, flags: Flag.SYN, streamId: 0, length: 77 }),
  );
  const frames = [];
  while (true) {
    const frame = await peer.nextFrame();
    assert(frame !== undefined, "the session answers our ping");
    frames.push(frame);
    if (frame.type === FrameType.Ping && frame.flags === Flag.ACK) break;
  }
  assertEquals(frames, [
    { type: FrameType.Data, flags: Flag.ACK, id: 1, length: 4 },
    { type: FrameType.WindowUpdate, flags: Flag.FIN, id: 1, length: 0 },
    { type: FrameType.Ping, flags: Flag.ACK, id: 0, length: 77 },
  ]);
  assertEquals(peer.muxer.rtt, undefined);
  peer.muxer.abort();
  peer.raw.abort();
});

Deno.test("yamux: the raw wire: SYN opens, ACK acknowledges when accepted, ping is echoed with ACK", async () => {
  const peer = rawPeer();
  await peer.write(
    encodeFrameHeader({ type: FrameType.Ping, flags: Flag.SYN, streamId: 0, length: 0xabcdef }),
  );
  assertEquals(await peer.nextFrame(), {
    type: FrameType.Ping,
    flags: Flag.ACK,
    id: 0,
    length: 0xabcdef,
  });
  await peer.write(
    encodeFrameHeader({ type: FrameType.WindowUpdate, flags: Flag.SYN, streamId: 1, length: 0 }),
  );
  const { value: stream } = await peer.muxer[Symbol.asyncIterator]().next();
  assertEquals(stream?.id, 1);
  assertEquals(await peer.nextFrame(), {
    type: FrameType.WindowUpdate,
    flags: Flag.ACK,
    id: 1,
    length: 0,
  });
  // Ack a SYN for a stream with the listener's own parity: a protocol violation.
  await peer.write(
    encodeFrameHeader({ type: FrameType.WindowUpdate, flags: Flag.SYN, streamId: 2, length: 0 }),
  );
  await peer.muxer.closed;
  assertEquals(peer.muxer.error?.code, "PROTOCOL_VIOLATION");
  peer.raw.abort();
});

Deno.test("yamux: keepalive pings run periodically while they are answered", async () => {
  // A raw peer that answers pings and counts them.
  const peer = rawPeer({ keepAliveInterval: 20 });
  let pings = 0;
  const started = performance.now();
  while (performance.now() - started < 150) {
    const frame = await peer.nextFrame();
    assert(frame !== undefined);
    if (frame.type === FrameType.Ping && frame.flags === Flag.SYN) {
      pings++;
      await peer.write(
        encodeFrameHeader({
          type: FrameType.Ping,
          flags: Flag.ACK,
          streamId: 0,
          length: frame.length,
        }),
      );
    }
  }
  // One every 20 ms.
  assert(pings >= 4, `${pings} pings in 150 ms`);
  assert(peer.muxer.rtt !== undefined);
  assertEquals(peer.muxer.state, "open");
  peer.muxer.abort();
  peer.raw.abort();
});

Deno.test("yamux: keepalive: an unanswered ping aborts the session with TIMEOUT and GoAway(internal error)", async () => {
  const peer = rawPeer({ keepAliveInterval: 20, pingTimeout: 50 });
  // A stream is open, its reader waiting, when the peer stops answering.
  await peer.write(synFrame(1));
  const { value: stream } = await peer.muxer[Symbol.asyncIterator]().next();
  assert(stream !== undefined);
  const reading = stream.read();
  reading.catch(() => {});
  const frames: { type: number; flags: number; id: number; length: number }[] = [];
  while (true) {
    const frame = await peer.nextFrame();
    if (frame === undefined) break;
    frames.push(frame);
    if (frame.type === FrameType.GoAway) break;
  }
  const pings = frames.filter((f) => f.type === FrameType.Ping && f.flags === Flag.SYN);
  // The keepalive waits for its answer: one ping, not one every 20 ms.
  assertEquals(pings.length, 1, JSON.stringify(frames));
  assertEquals(frames.at(-1), {
    type: FrameType.GoAway,
    flags: 0,
    id: 0,
    length: GoAwayCode.InternalError,
  });
  await peer.muxer.closed;
  assertEquals([peer.muxer.state, peer.muxer.error?.code], ["closed", "TIMEOUT"]);
  await assertRejectsCode(reading, "TIMEOUT");
  peer.raw.abort();
});

Deno.test("yamux: keepalive: a late answer is not death while other frames arrive; silence is", async () => {
  const peer = rawPeer({ keepAliveInterval: 20, pingTimeout: 50 });
  // The peer never answers our pings but keeps sending its own, as a busy
  // peer whose answer waits behind a deep queue still sends something.
  for (let i = 1; i <= 15; i++) {
    await peer.write(
      encodeFrameHeader({ type: FrameType.Ping, flags: Flag.SYN, streamId: 0, length: i }),
    );
    await new Promise((r) => setTimeout(r, 20));
  }
  // 300 ms: six ping timeouts passed, with traffic in each.
  assertEquals(peer.muxer.state, "open");
  // Silence: the next unanswered ping ends the session.
  const start = performance.now();
  await peer.muxer.closed;
  assert(performance.now() - start < 1000);
  assertEquals(peer.muxer.error?.code, "TIMEOUT");
  peer.raw.abort();
});

Deno.test("yamux: the peer aborting the connection ends open streams with CONNECTION_RESET", async () => {
  const { client, server } = sessionPair();
  const inbound = server[Symbol.asyncIterator]().next();
  const stream = await client.openStream();
  await inbound;
  server.abort();
  await assertRejectsCode(stream.readable.getReader().read(), "CONNECTION_RESET");
  await client.closed;
  assertEquals(client.state, "closed");
});

Deno.test("yamux: window updates on the wire grant what the application consumed, never more", async () => {
  const peer = rawPeer();
  await peer.write(
    encodeFrameHeader({ type: FrameType.WindowUpdate, flags: Flag.SYN, streamId: 1, length: 0 }),
  );
  const dataFrame = (length: number) => {
    const frame = new Uint8Array(HEADER_LENGTH + length);
    frame.set(encodeFrameHeader({ type: FrameType.Data, flags: 0, streamId: 1, length }));
    return frame;
  };
  // The whole initial window, then nothing until we are granted more.
  await peer.write(dataFrame(INITIAL_STREAM_WINDOW));
  const { value: stream } = await peer.muxer[Symbol.asyncIterator]().next();
  assert(stream !== undefined);
  const reader = stream.readable.getReader();
  let read = 0;
  while (read < INITIAL_STREAM_WINDOW) read += (await reader.read()).value!.length;
  // The raw peer never answers the ping the first window update sends, so no RTT and no auto-tuning:
  // grants are exactly what was consumed.
  let granted = 0;
  while (granted < INITIAL_STREAM_WINDOW / 2) {
    const frame = await peer.nextFrame();
    assert(frame !== undefined);
    if (frame.type === FrameType.WindowUpdate && frame.id === 1) granted += frame.length;
  }
  assert(granted <= read, `granted ${granted} after ${read} consumed`);
  assertEquals(stream.stats().receiveWindow, INITIAL_STREAM_WINDOW);
  // Using exactly the new credit is fine.
  await peer.write(dataFrame(granted));
  let more = 0;
  while (more < granted) more += (await reader.read()).value!.length;
  assertEquals(peer.muxer.state, "open");
  peer.muxer.abort();
  peer.raw.abort();
});

Deno.test("yamux: a peer that floods pings without reading the answers is dropped with LIMIT_EXCEEDED", async () => {
  const peer = rawPeer({}, 16 * 1024);
  // The answers fill the socket's buffer (16 KiB), then the connection's cork
  // (its 1 MiB high-water mark: about 87 000 answers), then the session's
  // queue of control frames (64 Ki frames): 300 000 pings overflow all three.
  const pings = 300_000;
  const flood = new Uint8Array(pings * HEADER_LENGTH);
  for (let i = 0; i < pings; i++) {
    flood.set(
      encodeFrameHeader({ type: FrameType.Ping, flags: Flag.SYN, streamId: 0, length: i }),
      i * HEADER_LENGTH,
    );
  }
  await peer.write(flood).catch(() => {});
  using limit = new Deadline(5_000, { what: "the flooded session to end" });
  await limit.race(peer.muxer.closed);
  assertEquals(peer.muxer.error?.code, "LIMIT_EXCEEDED");
  peer.raw.abort();
});

// ---- over a socket: corking ---------------------------------------------------

/** Records every write call of `socket` (on a real socket, each is one system call). */
function recordWrites(socket: MemorySocket): Uint8Array[] {
  const writes: Uint8Array[] = [];
  const write = socket.write.bind(socket);
  socket.write = (data: Uint8Array) => {
    writes.push(data.slice());
    return write(data);
  };
  return writes;
}

/** The Noise transport messages in one socket write (each behind its 2-byte length). */
function noiseMessages(bytes: Uint8Array): number {
  let count = 0;
  for (let at = 0; at < bytes.length; count++) at += 2 + ((bytes[at] << 8) | bytes[at + 1]);
  return count;
}

Deno.test("yamux over a socket: an inbound stream's protocol agreement and the handler's first answer leave in one socket write", async () => {
  const [dialerSocket, listenerSocket] = memorySocketPair();
  const dialerWrites = recordWrites(dialerSocket);
  const listenerWrites = recordWrites(listenerSocket);
  const options = { yamux: { keepAliveInterval: 0 }, logger: quiet };
  const [dialer, listener]: PeerConnection[] = await Promise.all([
    libp2pUpgrade(Ed25519Identity.generate(), options)(
      socketConnection(dialerSocket),
      upgradeContext("dialer"),
    ),
    libp2pUpgrade(Ed25519Identity.generate(), options)(
      socketConnection(listenerSocket),
      upgradeContext("listener"),
    ),
  ]);
  const protocol = "/echo/1.0.0";
  const serving = (async () => {
    for await (const inbound of listener) {
      const stream = await listener.acceptStream(inbound, [protocol]);
      // The handler answers as soon as it has the request.
      const request = await stream.read();
      assert(request !== null);
      await stream.write(request);
      assertEquals(await stream.read(), null);
      await stream.closeWrite();
      return;
    }
  })();
  // The handshake's last messages are out.
  await delay(20);
  const [dialerBefore, listenerBefore] = [dialerWrites.length, listenerWrites.length];

  // Optimistic: the proposal leaves with the request.
  const stream = await dialer.openStream([protocol], { negotiateFully: false });
  await stream.write(encoder.encode("request"));
  let answer = "";
  while (answer.length < "request".length) {
    const chunk = await stream.read();
    assert(chunk !== null, `the stream ended after ${JSON.stringify(answer)}`);
    answer += decoder.decode(chunk);
  }
  assertEquals([answer, stream.protocol], ["request", protocol]);
  const listenerSent = listenerWrites.slice(listenerBefore);
  const dialerSent = dialerWrites.slice(dialerBefore);
  // Written by different layers and calls (the agreement by acceptStream,
  // the answer by the handler, each in its own yamux frame), they left
  // together, sealed in one Noise message.
  assertEquals(listenerSent.length, 1, "socket writes of the listener");
  assertEquals(noiseMessages(listenerSent[0]), 1, "the agreement and the answer in one message");
  assertEquals(dialerSent.length, 1, "socket writes of the dialer");

  await stream.closeWrite();
  assertEquals(await stream.read(), null);
  await serving;
  await Promise.all([dialer.close(), listener.close()]);
});

// ---- interop with js-libp2p ----------------------------------------------------

/** A js-libp2p `MessageStream` end (the few members used here). */
interface JsMessageStream {
  addEventListener(type: string, fn: (evt: Event) => void): void;
  send(data: Uint8Array): boolean;
  onDrain(): Promise<void>;
  close(): Promise<void>;
  abort(err: Error): void;
}

function jsBytes(evt: Event): Uint8Array {
  const data = (evt as Event & { data: Uint8Array | { subarray(): Uint8Array } }).data;
  return data instanceof Uint8Array ? data : data.subarray();
}

/** One end of js-libp2p's in-memory connection pair as our `Connection`. */
class JsConnection extends ByteConnection {
  readonly localAddr = Multiaddr.parse("/memory/9");
  readonly remoteAddr = Multiaddr.parse("/memory/9");
  readonly closed: Promise<void>;
  readonly #end: JsMessageStream;
  readonly #queue: Uint8Array[] = [];
  #partial: Uint8Array | undefined;
  #ended = false;
  #waiting: PromiseWithResolvers<void> | undefined;

  constructor(end: JsMessageStream) {
    super();
    this.#end = end;
    const closed = Promise.withResolvers<void>();
    this.closed = closed.promise;
    // js-libp2p may reuse what it emits: copy into a chunk we own.
    end.addEventListener("message", (evt) => {
      this.#queue.push(jsBytes(evt).slice());
      this.#wake();
    });
    end.addEventListener("remoteCloseWrite", () => this.#finish());
    end.addEventListener("close", () => {
      this.#finish();
      closed.resolve();
    });
  }

  #finish(): void {
    this.#ended = true;
    this.#wake();
  }

  #wake(): void {
    const waiting = this.#waiting;
    this.#waiting = undefined;
    waiting?.resolve();
  }

  async read(): Promise<Uint8Array | null> {
    while (true) {
      const partial = this.#partial;
      if (partial !== undefined) {
        this.#partial = undefined;
        return partial;
      }
      const next = this.#queue.shift();
      if (next !== undefined) return next;
      if (this.#ended) return null;
      this.#waiting ??= Promise.withResolvers<void>();
      await this.#waiting.promise;
    }
  }

  async readInto(buffer: Uint8Array): Promise<number | null> {
    const chunk = await this.read();
    if (chunk === null) return null;
    const n = Math.min(buffer.length, chunk.length);
    buffer.set(chunk.subarray(0, n));
    if (n < chunk.length) this.#partial = chunk.subarray(n);
    return n;
  }

  cancelRead(): void {
    this.#queue.length = 0;
    this.#partial = undefined;
  }

  write(chunk: Uint8Array): Promise<void> | undefined {
    // Sent as a copy: the chunk is ours again at once, unless js asks us to wait.
    return this.#end.send(chunk.slice()) ? undefined : this.#end.onDrain();
  }

  closeWrite(): Promise<void> {
    // js's in-memory connection has no half-close.
    return this.#end.close();
  }

  close(): Promise<void> {
    return this.#end.close();
  }

  abort(): void {
    this.#end.abort(new Error("aborted"));
  }
}

Deno.test("interop: @chainsafe/libp2p-yamux 8 (js-libp2p) and ours: streams both ways, 8 MiB, pings, GoAway", async () => {
  const { yamux } = await import("@chainsafe/libp2p-yamux");
  const { multiaddrConnectionPair } = await import("@libp2p/utils");
  const { defaultLogger } = await import("@libp2p/logger");
  const [outbound, inbound] = multiaddrConnectionPair();
  // The factory's typings vary across js-libp2p releases; only its behaviour matters here.
  // deno-lint-ignore no-explicit-any
  const js: any = (yamux({ enableKeepAlive: false }) as any)({ logger: defaultLogger() })
    .createStreamMuxer(inbound as never);
  const ours = Yamux.create(new JsConnection(outbound as unknown as JsMessageStream), {
    role: "dialer",
    keepAliveInterval: 0,
    logger: quiet,
  });
  ours.start();

  // js echoes what we open.
  js.addEventListener("stream", (evt: CustomEvent) => {
    const stream = evt.detail as JsMessageStream;
    stream.addEventListener("message", (e) => stream.send(jsBytes(e)));
    stream.addEventListener("remoteCloseWrite", () => stream.close().catch(() => {}));
  });
  const first = await ours.openStream();
  assertEquals(await echoOnce(first, "hello js-libp2p"), "hello js-libp2p");
  await first.closed;

  // 8 MiB through js's echo: windows and updates agree both ways.
  const bulk = await ours.openStream();
  const total = 8 << 20;
  const reading = (async () => {
    let at = 0;
    for await (const piece of bulk.readable) {
      const expected = pattern(at, piece.length);
      for (let i = 0; i < piece.length; i++) {
        if (piece[i] !== expected[i]) throw new Error(`byte ${at + i} corrupted`);
      }
      at += piece.length;
    }
    return at;
  })();
  const writer = bulk.writable.getWriter();
  for (let at = 0; at < total; at += 1 << 20) await writer.write(pattern(at, 1 << 20));
  await writer.close();
  assertEquals(await reading, total);

  // Pings both ways.
  assert((await ours.ping()) >= 0);
  assert((await js.ping()) >= 0);

  // js opens a stream to us; we echo.
  const serving = serveEcho(ours);
  const jsStream = await js.createStream();
  const got: number[] = [];
  const ended = new Promise<void>((resolve) => {
    jsStream.addEventListener("remoteCloseWrite", () => resolve());
  });
  jsStream.addEventListener("message", (e: Event) => got.push(...jsBytes(e)));
  jsStream.send(encoder.encode("hello from js-libp2p"));
  await jsStream.close();
  await ended;
  assertEquals(decoder.decode(Uint8Array.from(got)), "hello from js-libp2p");
  assertEquals(jsStream.streamId % 2, 0, "the listener's stream ids are even");

  // Our GoAway closes js's side too.
  await ours.close();
  await serving;
  assertEquals([ours.state, ours.error, js.status], ["closed", undefined, "closed"]);
});
