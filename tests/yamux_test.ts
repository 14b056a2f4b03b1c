/**
 * The yamux session against the spec (hashicorp/yamux `spec.md`, libp2p/specs
 * `yamux/README.md`), two sessions talking over an in-memory connection.
 */

import { defaultRegistry } from "../netcore/metrics.ts";
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
import type { Connection } from "../netcore/transport/connection.ts";
import { Logger } from "../netcore/log.ts";
import { deadline, delay } from "../netcore/_async.ts";
import { assert, assertEquals, assertRejectsCode } from "./_assert.ts";
import { readAll } from "./_bytes.ts";
import { memoryPair } from "./_pair.ts";

/** Session failures are expected here; their warnings would only clutter the output. */
const quiet = new Logger({}, "off");

const encoder = new TextEncoder();
const decoder = new TextDecoder();

function connectionPair(latency = 0, bufferSize = 1 << 20): [Connection, Connection] {
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
  const refused = defaultRegistry.find("yamux_streams_refused_total");
  const before = refused?.get({ reason: "inbound_limit" }) ?? 0;
  const { client, server, close } = sessionPair({}, { maxInboundStreams: 2 });
  const serving = serveEcho(server);
  const first = await client.openStream();
  const second = await client.openStream();
  const third = await client.openStream();
  await assertRejectsCode(third.readable.getReader().read(), "CONNECTION_RESET");
  assertEquals(
    defaultRegistry.find("yamux_streams_refused_total")!.get({ reason: "inbound_limit" }),
    before + 1,
  );
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
  assertEquals(await peer.nextFrame(), { type: FrameType.Data, flags: Flag.ACK, id: 1, length: 4 });
  // A listener that waits to read before answering acknowledges at once.
  await peer.write(synFrame(3));
  const { value: waiting } = await peer.muxer[Symbol.asyncIterator]().next();
  const pending = waiting!.readable.getReader().read();
  assertEquals(await peer.nextFrame(), {
    type: FrameType.WindowUpdate,
    flags: Flag.ACK,
    id: 3,
    length: 0,
  });
  peer.muxer.abort();
  await pending.catch(() => {});
  peer.raw.abort();
});

Deno.test("yamux: the raw wire: bytes prepended to the next write lead it, or go alone by the end of the turn", async () => {
  const peer = rawPeer();
  await peer.write(synFrame(1, 3));
  const inbound = peer.muxer[Symbol.asyncIterator]();
  const { value: stream } = await inbound.next();
  stream!.prependToNextWrite(new Uint8Array(7));
  await stream!.writable.getWriter().write(new Uint8Array(4));
  assertEquals(await peer.nextFrame(), { type: FrameType.Data, flags: Flag.ACK, id: 1, length: 7 });
  assertEquals(await peer.nextFrame(), { type: FrameType.Data, flags: 0, id: 1, length: 4 });
  // Nothing written after it: the prepended bytes go out on their own.
  await peer.write(synFrame(3));
  const { value: quiet } = await inbound.next();
  quiet!.prependToNextWrite(new Uint8Array(5));
  assertEquals(await peer.nextFrame(), { type: FrameType.Data, flags: Flag.ACK, id: 3, length: 5 });
  // And before a FIN.
  await peer.write(synFrame(5));
  const { value: closing } = await inbound.next();
  closing!.prependToNextWrite(new Uint8Array(2));
  await closing!.writable.close();
  assertEquals(await peer.nextFrame(), { type: FrameType.Data, flags: Flag.ACK, id: 5, length: 2 });
  assertEquals(await peer.nextFrame(), {
    type: FrameType.WindowUpdate,
    flags: Flag.FIN,
    id: 5,
    length: 0,
  });
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

Deno.test("yamux: keepalive pings run periodically; an unanswered one aborts the session with TIMEOUT", async () => {
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

  // A peer that never answers pings.
  const [a, b] = connectionPair();
  const muxer = Yamux.create(b, {
    role: "listener",
    keepAliveInterval: 20,
    pingTimeout: 50,
    logger: quiet,
  });
  muxer.start();
  const draining = a.readable.pipeTo(new WritableStream()).catch(() => {});
  await muxer.closed;
  assertEquals(muxer.error?.code, "TIMEOUT");
  a.abort();
  await draining;
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
  const pings = 100_000;
  const flood = new Uint8Array(pings * HEADER_LENGTH);
  for (let i = 0; i < pings; i++) {
    flood.set(
      encodeFrameHeader({ type: FrameType.Ping, flags: Flag.SYN, streamId: 0, length: i }),
      i * HEADER_LENGTH,
    );
  }
  await peer.write(flood).catch(() => {});
  await deadline(peer.muxer.closed, 5_000, { what: "the flooded session to end" });
  assertEquals(peer.muxer.error?.code, "LIMIT_EXCEEDED");
  peer.raw.abort();
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
function connectionFromJs(end: JsMessageStream): Connection {
  const closed = Promise.withResolvers<void>();
  const readable = new ReadableStream<Uint8Array>({
    start(controller) {
      // js-libp2p may reuse what it emits: copy into a chunk we own.
      end.addEventListener("message", (evt) => controller.enqueue(jsBytes(evt).slice()));
      const finish = () => {
        try {
          controller.close();
        } catch {
          // already closed
        }
      };
      end.addEventListener("remoteCloseWrite", finish);
      end.addEventListener("close", () => {
        finish();
        closed.resolve();
      });
    },
  });
  const writable = new WritableStream<Uint8Array>({
    async write(chunk) {
      if (!end.send(chunk.slice())) await end.onDrain();
    },
    close: () => end.close(),
    abort: () => end.abort(new Error("aborted")),
  });
  const addr = Multiaddr.parse("/memory/9");
  return {
    readable,
    writable,
    localAddr: addr,
    remoteAddr: addr,
    close: () => end.close(),
    abort: () => end.abort(new Error("aborted")),
    closed: closed.promise,
  };
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
  const ours = Yamux.create(connectionFromJs(outbound as unknown as JsMessageStream), {
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
