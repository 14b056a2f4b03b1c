/**
 * multistream-select 1.0, as the spec (multiformats/multistream-select, and
 * libp2p/specs connections/README.md) describes it: every message is a varint
 * length, then a UTF-8 line ending in `\n` that the length counts; both ends
 * open with `/multistream/1.0.0`; the listener echoes an accepted protocol and
 * answers `na` to one it does not speak.
 *
 * The peer under test talks to the real other side, or to a scripted peer
 * that writes and checks raw bytes. Every byte that crosses a pipe is
 * recorded chunk by chunk, so tests can check what went out in one write.
 */

import { ByteReader } from "../netcore/byte_reader.ts";
import { defaultRegistry } from "../netcore/metrics.ts";
import { NetworkError } from "../netcore/network_error.ts";
import type { Duplex } from "../netcore/transport/connection.ts";
import {
  handleProtocol,
  MULTISTREAM_PROTOCOL_ID,
  NEGOTIATE_DEFAULTS,
  selectProtocol,
  selectProtocolOptimistic,
} from "../netcore/negotiate/mod.ts";
import { assert, assertEquals, assertRejectsCode } from "./_assert.ts";
import { concat, toHex } from "./_bytes.ts";
import { msg } from "./_multistream.ts";
import { duplexPair } from "./_pipe.ts";

const utf8 = new TextEncoder();
const text = new TextDecoder();

/** A hand-driven peer: writes raw bytes, reads raw messages. */
class ScriptedPeer {
  readonly reader: ByteReader;
  readonly writer: WritableStreamDefaultWriter<Uint8Array>;
  constructor(duplex: Duplex) {
    this.reader = new ByteReader(duplex.readable);
    this.writer = duplex.writable.getWriter();
  }
  send(...parts: Uint8Array[]): Promise<void> {
    return this.writer.write(concat(parts));
  }
  async readLine(): Promise<string> {
    const length = await this.reader.readVarint(1 << 20);
    const body = await this.reader.readExactly(length);
    assertEquals(body[body.length - 1], 0x0a, "message ends in a newline");
    return text.decode(body.subarray(0, -1));
  }
}

async function readAll(readable: ReadableStream<Uint8Array>, n: number): Promise<string> {
  const reader = new ByteReader(readable);
  const bytes = await reader.readExactly(n);
  reader.release();
  return text.decode(bytes);
}

async function writeAll(writable: WritableStream<Uint8Array>, data: string): Promise<void> {
  const writer = writable.getWriter();
  await writer.write(utf8.encode(data));
  writer.releaseLock();
}

const HEADER = msg(MULTISTREAM_PROTOCOL_ID);
const NA = msg("na");

Deno.test("the header is /multistream/1.0.0, framed as varint 19 then the line", () => {
  assertEquals(toHex(HEADER), "13" + toHex(utf8.encode("/multistream/1.0.0\n")));
  assertEquals(toHex(NA), "036e610a", "the spec's own example of na");
});

Deno.test("dialer sends header and first proposal in one write; listener answers header and acceptance in one write", async () => {
  const { a, b, aToB, bToA } = duplexPair();
  const [dialed, handled] = await Promise.all([
    selectProtocol(a, ["/echo/1.0.0"]),
    handleProtocol(b, ["/echo/1.0.0"]),
  ]);
  assertEquals(dialed.protocol, "/echo/1.0.0");
  assertEquals(handled.protocol, "/echo/1.0.0");
  assertEquals(aToB.map(toHex), [toHex(concat([HEADER, msg("/echo/1.0.0")]))]);
  assertEquals(bToA.map(toHex), [toHex(concat([HEADER, msg("/echo/1.0.0")]))]);
});

Deno.test("deferAnswer: with the dialer's data already behind its proposal, the agreement is handed back unsent", async () => {
  const { a, b, bToA } = duplexPair();
  const dialer = new ScriptedPeer(a);
  await dialer.send(HEADER, msg("/noise"), utf8.encode("message 1"));
  const handled = await handleProtocol(b, ["/noise"], { deferAnswer: true });
  assertEquals(handled.protocol, "/noise");
  assertEquals(toHex(handled.unsentAnswer!), toHex(concat([HEADER, msg("/noise")])));
  assertEquals(bToA.length, 0, "nothing written");
  assertEquals(await readAll(handled.stream.readable, 9), "message 1");
});

Deno.test("deferAnswer: a dialer that waits for the answer gets it at once", async () => {
  const { a, b, bToA } = duplexPair();
  const dialer = new ScriptedPeer(a);
  await dialer.send(HEADER, msg("/noise"));
  const handled = await handleProtocol(b, ["/noise"], { deferAnswer: true });
  assertEquals(handled.unsentAnswer, undefined);
  assertEquals(bToA.map(toHex), [toHex(concat([HEADER, msg("/noise")]))]);
});

Deno.test("with nothing read ahead, the negotiated stream is the very same duplex", async () => {
  const { a, b } = duplexPair();
  const [dialed, handled] = await Promise.all([
    selectProtocol(a, ["/echo/1.0.0"]),
    handleProtocol(b, ["/echo/1.0.0"]),
  ]);
  assert(dialed.stream === a, "dialer stream is the original duplex");
  assert(handled.stream === b, "listener stream is the original duplex");
  await Promise.all([writeAll(a.writable, "ping"), readAll(b.readable, 4)]).then(([, got]) =>
    assertEquals(got, "ping")
  );
});

Deno.test("the listener accepts the first proposal it supports", async () => {
  const { a, b } = duplexPair();
  const [dialed, handled] = await Promise.all([
    selectProtocol(a, ["/yamux/1.0.0", "/mplex/6.7.0"]),
    handleProtocol(b, ["/mplex/6.7.0", "/yamux/1.0.0"]),
  ]);
  assertEquals([dialed.protocol, handled.protocol], ["/yamux/1.0.0", "/yamux/1.0.0"]);
});

Deno.test("after na the dialer falls back to its second protocol", async () => {
  const { a, b, aToB, bToA } = duplexPair();
  const [dialed, handled] = await Promise.all([
    selectProtocol(a, ["/noise/2", "/noise"]),
    handleProtocol(b, (p) => p === "/noise"),
  ]);
  assertEquals([dialed.protocol, handled.protocol], ["/noise", "/noise"]);
  assertEquals(aToB.map(toHex), [toHex(concat([HEADER, msg("/noise/2")])), toHex(msg("/noise"))]);
  assertEquals(bToA.map(toHex), [toHex(concat([HEADER, NA])), toHex(msg("/noise"))]);
});

Deno.test("when the listener supports none, both sides fail with typed errors", async () => {
  const { a, b } = duplexPair();
  const listening = handleProtocol(b, ["/c"]);
  const err = await assertRejectsCode(selectProtocol(a, ["/a", "/b"]), "UNSUPPORTED_PROTOCOL");
  assert(err.message.includes("/a, /b"), err.message);
  // The failed dialer's duplex is unlocked again: the caller closes it.
  assert(!a.readable.locked && !a.writable.locked, "locks released");
  await a.writable.close();
  await assertRejectsCode(listening, "CONNECTION_CLOSED");
});

Deno.test("a listener that answers our header with na does not speak multistream 1.0", async () => {
  const { a, b } = duplexPair();
  const peer = new ScriptedPeer(b);
  const selecting = selectProtocol(a, ["/a"]);
  assertEquals(await peer.readLine(), MULTISTREAM_PROTOCOL_ID);
  await peer.send(NA);
  await assertRejectsCode(selecting, "UNSUPPORTED_PROTOCOL");
});

Deno.test("a dialer with another multistream version gets na", async () => {
  const { a, b } = duplexPair();
  const peer = new ScriptedPeer(a);
  const handling = handleProtocol(b, ["/a"]);
  await peer.send(msg("/multistream/2.0.0"), msg("/a"));
  await assertRejectsCode(handling, "UNSUPPORTED_PROTOCOL");
  assertEquals(await peer.readLine(), "na");
});

Deno.test("a first message other than the header is a protocol violation", async () => {
  const { a, b } = duplexPair();
  const peer = new ScriptedPeer(a);
  const handling = handleProtocol(b, ["/a"]);
  await peer.send(msg("/a"));
  await assertRejectsCode(handling, "PROTOCOL_VIOLATION");
  const { a: a2, b: b2 } = duplexPair();
  const listener = new ScriptedPeer(b2);
  const selecting = selectProtocol(a2, ["/a"]);
  await listener.send(msg("/a"), msg("/a"));
  await assertRejectsCode(selecting, "PROTOCOL_VIOLATION");
});

Deno.test("an answer that is neither the proposal nor na is a protocol violation", async () => {
  const { a, b } = duplexPair();
  const peer = new ScriptedPeer(b);
  const selecting = selectProtocol(a, ["/a", "/b"]);
  await peer.send(HEADER, msg("/b"));
  await assertRejectsCode(selecting, "PROTOCOL_VIOLATION");
});

Deno.test("ls is answered with the protocol list, one length-prefixed line each, then a newline", async () => {
  const { a, b } = duplexPair();
  const peer = new ScriptedPeer(a);
  const handling = handleProtocol(b, ["/a/1", "/b/2"]);
  await peer.send(HEADER, msg("ls"));
  assertEquals(await peer.readLine(), MULTISTREAM_PROTOCOL_ID);
  // Outer message: varint of the body length, then the body.
  const length = await peer.reader.readVarint();
  const body = await peer.reader.readExactly(length);
  assertEquals(toHex(body), toHex(concat([msg("/a/1"), msg("/b/2"), utf8.encode("\n")])));
  // ls does not end the negotiation: a proposal still can.
  await peer.send(msg("/b/2"));
  assertEquals(await peer.readLine(), "/b/2");
  assertEquals((await handling).protocol, "/b/2");
});

Deno.test("optimistic: header, proposal and the first data leave in one write", async () => {
  const { a, b, aToB } = duplexPair();
  const { protocol, stream } = selectProtocolOptimistic(a, "/ipfs/ping/1.0.0");
  assertEquals(protocol, "/ipfs/ping/1.0.0");
  assertEquals(aToB.length, 0, "nothing is sent before the first write");
  const handling = handleProtocol(b, ["/ipfs/ping/1.0.0"]);
  await writeAll(stream.writable, "0123456789");
  assertEquals(aToB.map(toHex), [
    toHex(concat([HEADER, msg("/ipfs/ping/1.0.0"), utf8.encode("0123456789")])),
  ]);
  const handled = await handling;
  assert(handled.stream !== b, "the data read ahead is kept in a new readable");
  assertEquals(await readAll(handled.stream.readable, 10), "0123456789");
  await writeAll(handled.stream.writable, "pong");
  assertEquals(await readAll(stream.readable, 4), "pong");
  // Later writes pass straight through.
  await writeAll(stream.writable, "again");
  assertEquals(toHex(aToB[aToB.length - 1]), toHex(utf8.encode("again")));
});

Deno.test("optimistic: reading first sends the proposal alone, and waits for the answer", async () => {
  const { a, b, aToB } = duplexPair();
  const { stream } = selectProtocolOptimistic(a, "/x");
  const reading = readAll(stream.readable, 2);
  const peer = new ScriptedPeer(b);
  assertEquals(await peer.readLine(), MULTISTREAM_PROTOCOL_ID);
  assertEquals(await peer.readLine(), "/x");
  assertEquals(aToB.map(toHex), [toHex(concat([HEADER, msg("/x")]))]);
  await peer.send(HEADER, msg("/x"), utf8.encode("hi"));
  assertEquals(await reading, "hi");
});

Deno.test("optimistic: a refusal errors the readable and rejects later writes", async () => {
  const { a, b } = duplexPair();
  const peer = new ScriptedPeer(b);
  const { stream } = selectProtocolOptimistic(a, "/x");
  const writer = stream.writable.getWriter();
  await writer.write(utf8.encode("data"));
  assertEquals(await peer.readLine(), MULTISTREAM_PROTOCOL_ID);
  assertEquals(await peer.readLine(), "/x");
  await peer.send(HEADER, NA);
  await assertRejectsCode(stream.readable.getReader().read(), "UNSUPPORTED_PROTOCOL");
  await assertRejectsCode(writer.write(utf8.encode("more")), "UNSUPPORTED_PROTOCOL");
  assert(!a.readable.locked && !a.writable.locked, "the original duplex is unlocked");
});

Deno.test("optimistic: the refusal reaches the writer even if nobody reads", async () => {
  const { a, b } = duplexPair();
  const handling = handleProtocol(b, ["/y"]).catch((err) => err);
  const { stream } = selectProtocolOptimistic(a, "/x");
  const writer = stream.writable.getWriter();
  await writer.write(utf8.encode("data"));
  await assertRejectsCode(writer.closed, "UNSUPPORTED_PROTOCOL");
  await assertRejectsCode(writer.write(utf8.encode("more")), "UNSUPPORTED_PROTOCOL");
  await a.writable.close();
  assert(NetworkError.is(await handling), "the listener fails with a NetworkError too");
});

Deno.test("read-ahead bytes are preserved: the peer's first data in the same chunk as its acceptance", async () => {
  const { a, b } = duplexPair();
  const peer = new ScriptedPeer(b);
  const selecting = selectProtocol(a, ["/a"]);
  await peer.send(HEADER, msg("/a"), utf8.encode("early bytes"));
  const { stream } = await selecting;
  assert(stream !== a, "a readable with the early bytes replaces the original");
  assert(stream.writable === a.writable, "writes go straight to the original writable");
  assertEquals(await readAll(stream.readable, 11), "early bytes");
});

Deno.test("answers split across chunks, one write per message as js-libp2p does, or one byte at a time", async () => {
  const { a, b } = duplexPair();
  const peer = new ScriptedPeer(b);
  const selecting = selectProtocol(a, ["/a", "/b"]);
  assertEquals(await peer.readLine(), MULTISTREAM_PROTOCOL_ID);
  assertEquals(await peer.readLine(), "/a");
  await peer.send(HEADER);
  await peer.send(NA);
  assertEquals(await peer.readLine(), "/b");
  for (const byte of msg("/b")) await peer.send(new Uint8Array([byte]));
  assertEquals((await selecting).protocol, "/b");
});

Deno.test("the listener sends its header at once to a dialer that waits for it", async () => {
  const { a, b } = duplexPair();
  const peer = new ScriptedPeer(a);
  const handling = handleProtocol(b, ["/a"]);
  await peer.send(HEADER);
  assertEquals(await peer.readLine(), MULTISTREAM_PROTOCOL_ID);
  await peer.send(msg("/a"));
  assertEquals(await peer.readLine(), "/a");
  assertEquals((await handling).protocol, "/a");
});

Deno.test("a silent peer times out, within the deadline, and the duplex is unlocked", async () => {
  const { a, b } = duplexPair();
  const peer = new ScriptedPeer(b);
  // Deadlines are unref'd (a real socket keeps the process alive, a pipe
  // does not): hold the event loop open meanwhile.
  const keepAlive = setTimeout(() => {}, 5000);
  const started = performance.now();
  await assertRejectsCode(selectProtocol(a, ["/a"], { timeout: 50 }), "TIMEOUT");
  const elapsed = performance.now() - started;
  assert(elapsed >= 45 && elapsed < 1000, `timed out after ${elapsed} ms`);
  assert(!a.readable.locked && !a.writable.locked, "locks released");
  assertEquals(await peer.readLine(), MULTISTREAM_PROTOCOL_ID, "the dialer did speak");
  const { b: silentDialer } = duplexPair();
  await assertRejectsCode(handleProtocol(silentDialer, ["/a"], { timeout: 20 }), "TIMEOUT");
  clearTimeout(keepAlive);
});

Deno.test("the caller's signal aborts the negotiation", async () => {
  const { a } = duplexPair();
  const controller = new AbortController();
  const selecting = selectProtocol(a, ["/a"], { signal: controller.signal });
  controller.abort();
  await assertRejectsCode(selecting, "ABORTED");
  await assertRejectsCode(handleProtocol(a, ["/a"], { signal: AbortSignal.abort() }), "ABORTED");
});

Deno.test("an over-long line is refused from its length prefix", async () => {
  const { a, b } = duplexPair();
  const peer = new ScriptedPeer(a);
  const handling = handleProtocol(b, ["/a"]);
  assertEquals(NEGOTIATE_DEFAULTS.maxLineLength, 1024);
  await peer.send(HEADER, msg("/" + "x".repeat(1023))); // 1025 bytes with the newline
  await assertRejectsCode(handling, "FRAME_TOO_LARGE");
  // Exactly at the limit is fine.
  const { a: a2, b: b2 } = duplexPair();
  const peer2 = new ScriptedPeer(a2);
  const long = "/" + "x".repeat(1022);
  const handling2 = handleProtocol(b2, [long]);
  await peer2.send(HEADER, msg(long));
  assertEquals((await handling2).protocol, long);
  // And the limit is configurable.
  const { a: a3, b: b3 } = duplexPair();
  const peer3 = new ScriptedPeer(b3);
  const selecting = selectProtocol(a3, ["/a"], { maxLineLength: 10 });
  await peer3.send(HEADER);
  await assertRejectsCode(selecting, "FRAME_TOO_LARGE");
});

Deno.test("protocol ids outside ASCII are negotiated as UTF-8", async () => {
  const { a, b } = duplexPair();
  const [dialed, handled] = await Promise.all([
    selectProtocol(a, ["/échange/1.0.0"]),
    handleProtocol(b, ["/échange/1.0.0"]),
  ]);
  assertEquals(dialed.protocol, "/échange/1.0.0");
  assertEquals(handled.protocol, "/échange/1.0.0");
});

Deno.test("a message without its trailing newline, with two lines, empty, or not UTF-8, is a protocol violation", async () => {
  const bad = [
    concat([new Uint8Array([2]), utf8.encode("/a")]), // missing newline
    concat([new Uint8Array([5]), utf8.encode("/a\n/b")]), // newline inside
    concat([new Uint8Array([6]), utf8.encode("/a\n/b\n")]), // two lines in one message
    new Uint8Array([0]), // empty
    new Uint8Array([3, 0xc3, 0x28, 0x0a]), // invalid UTF-8
  ];
  for (const message of bad) {
    const { a, b } = duplexPair();
    const peer = new ScriptedPeer(a);
    const handling = handleProtocol(b, ["/a"]);
    await peer.send(HEADER, message);
    await assertRejectsCode(handling, "PROTOCOL_VIOLATION");
  }
});

Deno.test("a peer that hangs up mid-message closes only the negotiation", async () => {
  const { a, b } = duplexPair();
  const peer = new ScriptedPeer(a);
  const handling = handleProtocol(b, ["/a"]);
  await peer.send(HEADER, new Uint8Array([10, 0x2f]));
  await peer.writer.close();
  await assertRejectsCode(handling, "CONNECTION_CLOSED");
});

Deno.test("the listener gives up after maxAttempts refusals", async () => {
  const { a, b } = duplexPair();
  const peer = new ScriptedPeer(a);
  const handling = handleProtocol(b, ["/a"], { maxAttempts: 3 });
  await peer.send(HEADER, msg("/b"), msg("/c"), msg("ls"), msg("/d"), msg("/a"));
  await assertRejectsCode(handling, "LIMIT_EXCEEDED");
  assertEquals(NEGOTIATE_DEFAULTS.maxAttempts, 16);
});

Deno.test("invalid protocol names of our own are caller bugs (TypeError/RangeError)", async () => {
  const { a } = duplexPair();
  for (const names of [[], [""], ["na"], ["ls"], ["/a\n"], [MULTISTREAM_PROTOCOL_ID]]) {
    let thrown: unknown;
    try {
      await selectProtocol(a, names);
    } catch (err) {
      thrown = err;
    }
    assert(thrown instanceof TypeError, `${JSON.stringify(names)} -> ${thrown}`);
  }
  let thrown: unknown;
  try {
    selectProtocolOptimistic(a, "/" + "x".repeat(2000));
  } catch (err) {
    thrown = err;
  }
  assert(thrown instanceof RangeError, `long name -> ${thrown}`);
  assert(!a.readable.locked && !a.writable.locked, "nothing locked by rejected calls");
});

Deno.test("optimistic: cancelling the readable early still lets a refusal reach the writer", async () => {
  const { a, b } = duplexPair();
  const peer = new ScriptedPeer(b);
  const { stream } = selectProtocolOptimistic(a, "/x");
  await stream.readable.cancel("not interested in answers");
  const writer = stream.writable.getWriter();
  await writer.write(utf8.encode("data"));
  assertEquals(await peer.readLine(), MULTISTREAM_PROTOCOL_ID);
  await peer.send(HEADER, NA);
  await assertRejectsCode(writer.closed, "UNSUPPORTED_PROTOCOL");
});

Deno.test("failures are counted by role and code", async () => {
  const metric = defaultRegistry.find("netcore_negotiation_failures_total");
  assert(metric !== undefined, "the counter is registered");
  const before = metric.get({ role: "listener", code: "PROTOCOL_VIOLATION" });
  const { a, b } = duplexPair();
  const peer = new ScriptedPeer(a);
  const handling = handleProtocol(b, ["/a"]);
  await peer.send(msg("hello"));
  await assertRejectsCode(handling, "PROTOCOL_VIOLATION");
  assertEquals(metric.get({ role: "listener", code: "PROTOCOL_VIOLATION" }), before + 1);
});

Deno.test("over a real TCP loopback connection, both ways", async () => {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  try {
    const accepting = listener.accept();
    const client = await Deno.connect({ hostname: "127.0.0.1", port: listener.addr.port });
    const server = await accepting;
    try {
      const [dialed, handled] = await Promise.all([
        selectProtocol(client, ["/noise/2", "/noise"]),
        handleProtocol(server, ["/noise"]),
      ]);
      assertEquals([dialed.protocol, handled.protocol], ["/noise", "/noise"]);
      const { stream } = selectProtocolOptimistic(dialed.stream, "/ipfs/ping/1.0.0");
      const inner = handleProtocol(handled.stream, ["/ipfs/ping/1.0.0"]);
      await writeAll(stream.writable, "x".repeat(32));
      const pinged = await inner;
      assertEquals(await readAll(pinged.stream.readable, 32), "x".repeat(32));
      await writeAll(pinged.stream.writable, "y".repeat(32));
      assertEquals(await readAll(stream.readable, 32), "y".repeat(32));
    } finally {
      client.close();
      server.close();
    }
  } finally {
    listener.close();
  }
});
