/**
 * multistream-select 1.0, as the spec (multiformats/multistream-select, and
 * libp2p/specs connections/README.md) describes it: every message is a varint
 * length, then a UTF-8 line ending in `\n` that the length counts; both ends
 * open with `/multistream/1.0.0`; the listener echoes an accepted protocol and
 * answers `na` to one it does not speak.
 *
 * The peer under test talks to the real other side, or to a scripted peer
 * that writes and checks raw bytes, over in-memory connections. Where a test
 * checks what went out in one write, the pair records every write call
 * (`recordingPair`), or the socket under the connection records every socket
 * write (to see what the cork of one turn joined).
 */

import { setImmediate } from "node:timers";
import type { MemorySocket } from "../memsocket/mod.ts";
import { ByteReader } from "../netcore/byte_reader.ts";
import { defaultRegistry, type Labels, MetricsRegistry } from "../netcore/metrics.ts";
import { Multiaddr } from "../netcore/multiaddr.ts";
import { NetworkError } from "../netcore/network_error.ts";
import type { Connection } from "../netcore/transport/connection.ts";
import { TcpTransport } from "../netcore/transport/tcp_transport.ts";
import {
  handleProtocol,
  MULTISTREAM_PROTOCOL_ID,
  NEGOTIATE_DEFAULTS,
  selectProtocol,
  selectProtocolOptimistic,
} from "../netcore/negotiate/mod.ts";
import { assert, assertEquals, assertNetworkError, assertRejectsCode } from "./_assert.ts";
import { concat, toHex } from "./_bytes.ts";
import { msg } from "./_multistream.ts";
import { acceptOne, memoryPair, memorySocketPair, socketConnection } from "./_pair.ts";
import { recordingPair } from "./_pipe.ts";

const utf8 = new TextEncoder();
const text = new TextDecoder();

/** Resolves in the next turn of the event loop, after the cork of this one was written. */
function nextTurn(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}

/**
 * A hand-driven peer: writes raw bytes, reads raw messages. Each `send`
 * waits out the turn before writing, so it leaves in a socket write of its
 * own (the other side reads it as its own chunk), and what it provokes
 * happens after `send` returned.
 */
class ScriptedPeer {
  readonly reader: ByteReader;
  readonly conn: Connection;
  constructor(conn: Connection) {
    this.conn = conn;
    this.reader = new ByteReader(conn);
  }
  async send(...parts: Uint8Array[]): Promise<void> {
    await nextTurn();
    await this.conn.write(concat(parts));
  }
  async readLine(): Promise<string> {
    const length = await this.reader.readVarint(1 << 20);
    const body = await this.reader.readExactly(length);
    assertEquals(body[body.length - 1], 0x0a, "message ends in a newline");
    return text.decode(body.subarray(0, -1));
  }
}

/** Exactly `n` bytes read from `conn`, as text. */
async function readText(conn: Connection, n: number): Promise<string> {
  return text.decode(await new ByteReader(conn).readExactly(n));
}

/** Writes `data` on `conn`, waiting if it asks to. */
async function writeText(conn: Connection, data: string): Promise<void> {
  await conn.write(utf8.encode(data));
}

/** Copies of the bytes of every write call made on `socket` from now on. */
function recordSocketWrites(socket: MemorySocket): Uint8Array[] {
  const writes: Uint8Array[] = [];
  const write = socket.write.bind(socket);
  socket.write = (data: Uint8Array) => {
    writes.push(data.slice());
    return write(data);
  };
  return writes;
}

/** The error the writes on `stream` reject with, once they do (an empty write sends nothing). */
async function firstWriteFailure(stream: Connection): Promise<unknown> {
  for (let i = 0; i < 400; i++) {
    try {
      await stream.write(new Uint8Array(0));
    } catch (err) {
      return err;
    }
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
  throw new Error("writes never failed");
}

const HEADER = msg(MULTISTREAM_PROTOCOL_ID);
const NA = msg("na");

Deno.test("the header is /multistream/1.0.0, framed as varint 19 then the line", () => {
  assertEquals(toHex(HEADER), "13" + toHex(utf8.encode("/multistream/1.0.0\n")));
  assertEquals(toHex(NA), "036e610a", "the spec's own example of na");
});

Deno.test("dialer sends header and first proposal in one write; listener answers header and acceptance in one write", async () => {
  const { a, b, aToB, bToA } = recordingPair();
  const [dialed, handled] = await Promise.all([
    selectProtocol(a, ["/echo/1.0.0"]),
    handleProtocol(b, ["/echo/1.0.0"]),
  ]);
  assertEquals(dialed.protocol, "/echo/1.0.0");
  assertEquals(handled.protocol, "/echo/1.0.0");
  assertEquals(aToB.map(toHex), [toHex(concat([HEADER, msg("/echo/1.0.0")]))]);
  assertEquals(bToA.map(toHex), [toHex(concat([HEADER, msg("/echo/1.0.0")]))]);
});

Deno.test("a listener's agreement and what its caller writes next in the same turn leave in one socket write", async () => {
  const [dialerSocket, listenerSocket] = memorySocketPair();
  const socketWrites = recordSocketWrites(listenerSocket);
  const dialer = socketConnection(dialerSocket);
  const listener = socketConnection(listenerSocket);
  // The dialer's data follows its proposal, as Noise message 1 follows /noise.
  const { stream: dialed } = selectProtocolOptimistic(dialer, "/noise");
  await writeText(dialed, "message 1");
  const handled = await handleProtocol(listener, ["/noise"]);
  assertEquals(handled.protocol, "/noise");
  // Still the turn the agreement was written in: Noise message 2, say.
  assertEquals(handled.stream.write(utf8.encode("message 2")), undefined, "a small write is taken");
  assertEquals(await readText(handled.stream, 9), "message 1");
  assertEquals(await readText(dialed, 9), "message 2");
  assertEquals(socketWrites.map(toHex), [
    toHex(concat([HEADER, msg("/noise"), utf8.encode("message 2")])),
  ]);
  // A write in a later turn leaves in a socket write of its own.
  await writeText(handled.stream, "message 3");
  assertEquals(await readText(dialed, 9), "message 3");
  assertEquals(socketWrites.map(toHex).slice(1), [toHex(utf8.encode("message 3"))]);
  dialer.abort();
  listener.abort();
});

Deno.test("the agreement does not wait for its caller: with nothing written after it, it leaves by itself", async () => {
  const [dialerSocket, listenerSocket] = memorySocketPair();
  const socketWrites = recordSocketWrites(listenerSocket);
  const dialer = socketConnection(dialerSocket);
  const listener = socketConnection(listenerSocket);
  const [dialed, handled] = await Promise.all([
    selectProtocol(dialer, ["/noise"]),
    handleProtocol(listener, ["/noise"]),
  ]);
  assertEquals([dialed.protocol, handled.protocol], ["/noise", "/noise"]);
  assertEquals(socketWrites.map(toHex), [toHex(concat([HEADER, msg("/noise")]))]);
  dialer.abort();
  listener.abort();
});

Deno.test("with nothing read ahead, the negotiated stream is the very same connection", async () => {
  const [a, b] = memoryPair();
  const [dialed, handled] = await Promise.all([
    selectProtocol(a, ["/echo/1.0.0"]),
    handleProtocol(b, ["/echo/1.0.0"]),
  ]);
  assert(dialed.stream === a, "dialer stream is the original connection");
  assert(handled.stream === b, "listener stream is the original connection");
  await writeText(a, "ping");
  assertEquals(await readText(b, 4), "ping");
  a.abort();
  b.abort();
});

Deno.test("the listener accepts the first proposal it supports", async () => {
  const [a, b] = memoryPair();
  const [dialed, handled] = await Promise.all([
    selectProtocol(a, ["/yamux/1.0.0", "/mplex/6.7.0"]),
    handleProtocol(b, ["/mplex/6.7.0", "/yamux/1.0.0"]),
  ]);
  assertEquals([dialed.protocol, handled.protocol], ["/yamux/1.0.0", "/yamux/1.0.0"]);
});

Deno.test("after na the dialer falls back to its second protocol", async () => {
  const { a, b, aToB, bToA } = recordingPair();
  const [dialed, handled] = await Promise.all([
    selectProtocol(a, ["/noise/2", "/noise"]),
    handleProtocol(b, (p) => p === "/noise"),
  ]);
  assertEquals([dialed.protocol, handled.protocol], ["/noise", "/noise"]);
  assertEquals(aToB.map(toHex), [toHex(concat([HEADER, msg("/noise/2")])), toHex(msg("/noise"))]);
  assertEquals(bToA.map(toHex), [toHex(concat([HEADER, NA])), toHex(msg("/noise"))]);
});

Deno.test("when the listener supports none, both sides fail with typed errors", async () => {
  const [a, b] = memoryPair();
  const listening = handleProtocol(b, ["/c"]);
  const err = await assertRejectsCode(selectProtocol(a, ["/a", "/b"]), "UNSUPPORTED_PROTOCOL");
  assert(err.message.includes("/a, /b"), err.message);
  // The failed dialer's connection is the caller's to close.
  await a.closeWrite();
  await assertRejectsCode(listening, "CONNECTION_CLOSED");
});

Deno.test("a listener that answers our header with na does not speak multistream 1.0", async () => {
  const [a, b] = memoryPair();
  const peer = new ScriptedPeer(b);
  const selecting = selectProtocol(a, ["/a"]);
  assertEquals(await peer.readLine(), MULTISTREAM_PROTOCOL_ID);
  await peer.send(NA);
  await assertRejectsCode(selecting, "UNSUPPORTED_PROTOCOL");
});

Deno.test("a dialer with another multistream version gets na", async () => {
  const [a, b] = memoryPair();
  const peer = new ScriptedPeer(a);
  const handling = handleProtocol(b, ["/a"]);
  await peer.send(msg("/multistream/2.0.0"), msg("/a"));
  await assertRejectsCode(handling, "UNSUPPORTED_PROTOCOL");
  assertEquals(await peer.readLine(), "na");
});

Deno.test("a first message other than the header is a protocol violation", async () => {
  const [a, b] = memoryPair();
  const peer = new ScriptedPeer(a);
  const handling = handleProtocol(b, ["/a"]);
  await peer.send(msg("/a"));
  await assertRejectsCode(handling, "PROTOCOL_VIOLATION");
  const [a2, b2] = memoryPair();
  const listener = new ScriptedPeer(b2);
  const selecting = selectProtocol(a2, ["/a"]);
  await listener.send(msg("/a"), msg("/a"));
  await assertRejectsCode(selecting, "PROTOCOL_VIOLATION");
});

Deno.test("an answer that is neither the proposal nor na is a protocol violation", async () => {
  const [a, b] = memoryPair();
  const peer = new ScriptedPeer(b);
  const selecting = selectProtocol(a, ["/a", "/b"]);
  await peer.send(HEADER, msg("/b"));
  await assertRejectsCode(selecting, "PROTOCOL_VIOLATION");
});

Deno.test("ls is answered with the protocol list, one length-prefixed line each, then a newline", async () => {
  const [a, b] = memoryPair();
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
  const { a, b, aToB } = recordingPair();
  const { protocol, stream } = selectProtocolOptimistic(a, "/ipfs/ping/1.0.0");
  assertEquals(protocol, "/ipfs/ping/1.0.0");
  assertEquals(aToB.length, 0, "nothing is sent before the first write");
  const handling = handleProtocol(b, ["/ipfs/ping/1.0.0"]);
  await writeText(stream, "0123456789");
  assertEquals(aToB.map(toHex), [
    toHex(concat([HEADER, msg("/ipfs/ping/1.0.0"), utf8.encode("0123456789")])),
  ]);
  const handled = await handling;
  assert(handled.stream !== b, "the data read ahead is kept in a new connection");
  assertEquals(await readText(handled.stream, 10), "0123456789");
  await writeText(handled.stream, "pong");
  assertEquals(await readText(stream, 4), "pong");
  // Later writes pass straight through.
  await writeText(stream, "again");
  assertEquals(toHex(aToB[aToB.length - 1]), toHex(utf8.encode("again")));
  assertEquals(await readText(handled.stream, 5), "again");
});

Deno.test("optimistic: reading first sends the proposal alone, and waits for the answer", async () => {
  const { a, b, aToB } = recordingPair();
  const { stream } = selectProtocolOptimistic(a, "/x");
  const reading = readText(stream, 2);
  const peer = new ScriptedPeer(b);
  assertEquals(await peer.readLine(), MULTISTREAM_PROTOCOL_ID);
  assertEquals(await peer.readLine(), "/x");
  assertEquals(aToB.map(toHex), [toHex(concat([HEADER, msg("/x")]))]);
  await peer.send(HEADER, msg("/x"), utf8.encode("hi"));
  assertEquals(await reading, "hi");
});

Deno.test("optimistic: a refusal rejects reads and later writes", async () => {
  const [a, b] = memoryPair();
  const peer = new ScriptedPeer(b);
  const { stream } = selectProtocolOptimistic(a, "/x");
  await writeText(stream, "data");
  assertEquals(await peer.readLine(), MULTISTREAM_PROTOCOL_ID);
  assertEquals(await peer.readLine(), "/x");
  await peer.send(HEADER, NA);
  await assertRejectsCode(stream.read(), "UNSUPPORTED_PROTOCOL");
  await assertRejectsCode(() => writeText(stream, "more"), "UNSUPPORTED_PROTOCOL");
  await assertRejectsCode(stream.closeWrite(), "UNSUPPORTED_PROTOCOL");
  assertEquals(
    await peer.reader.readExactly(4),
    utf8.encode("data"),
    "only the first data went out",
  );
});

Deno.test("optimistic: the refusal reaches the writer even if nobody reads", async () => {
  const [a, b] = memoryPair();
  const handling = handleProtocol(b, ["/y"]).catch((err) => err);
  const { stream } = selectProtocolOptimistic(a, "/x");
  await writeText(stream, "data");
  assertNetworkError(await firstWriteFailure(stream), "UNSUPPORTED_PROTOCOL");
  await assertRejectsCode(() => writeText(stream, "more"), "UNSUPPORTED_PROTOCOL");
  await assertRejectsCode(stream.closeWrite(), "UNSUPPORTED_PROTOCOL");
  // The original connection is ours to close.
  await a.closeWrite();
  assert(NetworkError.is(await handling), "the listener fails with a NetworkError too");
});

Deno.test("read-ahead bytes are preserved: the peer's first data in the same chunk as its acceptance", async () => {
  const { a, b, aToB } = recordingPair();
  const peer = new ScriptedPeer(b);
  const selecting = selectProtocol(a, ["/a"]);
  await peer.send(HEADER, msg("/a"), utf8.encode("early bytes"));
  const { stream } = await selecting;
  assert(stream !== a, "a connection with the early bytes replaces the original");
  assertEquals(await readText(stream, 11), "early bytes");
  // Writes go straight to the original connection.
  await writeText(stream, "reply");
  assertEquals(toHex(aToB[aToB.length - 1]), toHex(utf8.encode("reply")));
  assertEquals(await peer.readLine(), MULTISTREAM_PROTOCOL_ID);
  assertEquals(await peer.readLine(), "/a");
  assertEquals(text.decode(await peer.reader.readExactly(5)), "reply");
});

Deno.test("answers split across chunks, one write per message as js-libp2p does, or one byte at a time", async () => {
  const [a, b] = memoryPair();
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
  const [a, b] = memoryPair();
  const peer = new ScriptedPeer(a);
  const handling = handleProtocol(b, ["/a"]);
  await peer.send(HEADER);
  assertEquals(await peer.readLine(), MULTISTREAM_PROTOCOL_ID);
  await peer.send(msg("/a"));
  assertEquals(await peer.readLine(), "/a");
  assertEquals((await handling).protocol, "/a");
});

Deno.test("a silent peer times out, within the deadline, and the connection is aborted", async () => {
  const [a, b] = memoryPair();
  const peer = new ScriptedPeer(b);
  const spoke = peer.readLine();
  const started = performance.now();
  await assertRejectsCode(selectProtocol(a, ["/a"], { timeout: 50 }), "TIMEOUT");
  const elapsed = performance.now() - started;
  assert(elapsed >= 45 && elapsed < 1000, `timed out after ${elapsed} ms`);
  assertEquals(await spoke, MULTISTREAM_PROTOCOL_ID, "the dialer did speak");
  assertEquals(await peer.readLine(), "/a");
  await assertRejectsCode(() => peer.readLine(), "CONNECTION_RESET");
  const [, silentDialer] = memoryPair();
  await assertRejectsCode(handleProtocol(silentDialer, ["/a"], { timeout: 20 }), "TIMEOUT");
});

Deno.test("the caller's signal aborts the negotiation", async () => {
  const [a] = memoryPair();
  const controller = new AbortController();
  const selecting = selectProtocol(a, ["/a"], { signal: controller.signal });
  controller.abort();
  await assertRejectsCode(selecting, "ABORTED");
  const [, b] = memoryPair();
  await assertRejectsCode(handleProtocol(b, ["/a"], { signal: AbortSignal.abort() }), "ABORTED");
});

Deno.test("an over-long line is refused from its length prefix", async () => {
  const [a, b] = memoryPair();
  const peer = new ScriptedPeer(a);
  const handling = handleProtocol(b, ["/a"]);
  assertEquals(NEGOTIATE_DEFAULTS.maxLineLength, 1024);
  await peer.send(HEADER, msg("/" + "x".repeat(1023))); // 1025 bytes with the newline
  await assertRejectsCode(handling, "FRAME_TOO_LARGE");
  // Exactly at the limit is fine.
  const [a2, b2] = memoryPair();
  const peer2 = new ScriptedPeer(a2);
  const long = "/" + "x".repeat(1022);
  const handling2 = handleProtocol(b2, [long]);
  await peer2.send(HEADER, msg(long));
  assertEquals((await handling2).protocol, long);
  // And the limit is configurable.
  const [a3, b3] = memoryPair();
  const peer3 = new ScriptedPeer(b3);
  const selecting = selectProtocol(a3, ["/a"], { maxLineLength: 10 });
  await peer3.send(HEADER);
  await assertRejectsCode(selecting, "FRAME_TOO_LARGE");
});

Deno.test("protocol ids outside ASCII are negotiated as UTF-8", async () => {
  const { a, b, aToB } = recordingPair();
  const [dialed, handled] = await Promise.all([
    selectProtocol(a, ["/échange/1.0.0"]),
    handleProtocol(b, ["/échange/1.0.0"]),
  ]);
  assertEquals(dialed.protocol, "/échange/1.0.0");
  assertEquals(handled.protocol, "/échange/1.0.0");
  assertEquals(aToB.map(toHex), [toHex(concat([HEADER, msg("/échange/1.0.0")]))]);
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
    const [a, b] = memoryPair();
    const peer = new ScriptedPeer(a);
    const handling = handleProtocol(b, ["/a"]);
    await peer.send(HEADER, message);
    await assertRejectsCode(handling, "PROTOCOL_VIOLATION");
  }
});

Deno.test("a peer that hangs up mid-message closes only the negotiation", async () => {
  const [a, b] = memoryPair();
  const peer = new ScriptedPeer(a);
  const handling = handleProtocol(b, ["/a"]);
  await peer.send(HEADER, new Uint8Array([10, 0x2f]));
  await peer.conn.closeWrite();
  await assertRejectsCode(handling, "CONNECTION_CLOSED");
});

Deno.test("the listener gives up after maxAttempts refusals", async () => {
  const [a, b] = memoryPair();
  const peer = new ScriptedPeer(a);
  const handling = handleProtocol(b, ["/a"], { maxAttempts: 3 });
  await peer.send(HEADER, msg("/b"), msg("/c"), msg("ls"), msg("/d"), msg("/a"));
  await assertRejectsCode(handling, "LIMIT_EXCEEDED");
  assertEquals(NEGOTIATE_DEFAULTS.maxAttempts, 16);
});

Deno.test("invalid protocol names of our own are caller bugs (TypeError/RangeError), and nothing is sent", async () => {
  const { a, aToB } = recordingPair();
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
  assertEquals(aToB.length, 0, "nothing written by rejected calls");
});

Deno.test("optimistic: cancelling the reads early still lets a refusal reach the writer", async () => {
  const [a, b] = memoryPair();
  const peer = new ScriptedPeer(b);
  const { stream } = selectProtocolOptimistic(a, "/x");
  stream.cancelRead("not interested in answers");
  await writeText(stream, "data");
  assertEquals(await peer.readLine(), MULTISTREAM_PROTOCOL_ID);
  await peer.send(HEADER, NA);
  assertNetworkError(await firstWriteFailure(stream), "UNSUPPORTED_PROTOCOL");
});

/** The value of `name{labels}` in `registry`, read without creating the series. */
function valueOf(registry: MetricsRegistry, name: string, labels: Labels): number {
  for (const entry of registry.find(name)?.entries() ?? []) {
    if (Object.entries(labels).every(([k, v]) => entry.labels[k] === v)) return entry.value;
  }
  return 0;
}

Deno.test("failures are counted by role and code, in the metrics given (default: network=default)", async () => {
  const name = "validator_network_negotiation_failures_total";
  const registry = new MetricsRegistry();
  const metrics = registry.scope({ network: "negotiate-test" });
  const listenerViolations = { role: "listener", code: "PROTOCOL_VIOLATION" };
  const defaultBefore = valueOf(defaultRegistry, name, {
    network: "default",
    ...listenerViolations,
  });

  const [a, b] = memoryPair();
  const peer = new ScriptedPeer(a);
  const handling = handleProtocol(b, ["/a"], { metrics });
  await peer.send(msg("hello"));
  await assertRejectsCode(handling, "PROTOCOL_VIOLATION");
  assertEquals(valueOf(registry, name, { network: "negotiate-test", ...listenerViolations }), 1);

  const [c, d] = memoryPair();
  const listener = new ScriptedPeer(d);
  const selecting = selectProtocol(c, ["/a"], { metrics });
  await listener.send(HEADER, NA);
  await assertRejectsCode(selecting, "UNSUPPORTED_PROTOCOL");
  assertEquals(
    valueOf(registry, name, {
      network: "negotiate-test",
      role: "dialer",
      code: "UNSUPPORTED_PROTOCOL",
    }),
    1,
  );
  assertEquals(
    valueOf(defaultRegistry, name, { network: "default", ...listenerViolations }),
    defaultBefore,
    "nothing counted in the default registry",
  );

  // Without metrics, failures go to the default registry, network="default".
  const [e, f] = memoryPair();
  const dialer = new ScriptedPeer(e);
  const defaultHandling = handleProtocol(f, ["/a"]);
  await dialer.send(msg("hello"));
  await assertRejectsCode(defaultHandling, "PROTOCOL_VIOLATION");
  assertEquals(
    valueOf(defaultRegistry, name, { network: "default", ...listenerViolations }),
    defaultBefore + 1,
  );
});

Deno.test("over a real TCP loopback connection, both ways", async () => {
  const transport = new TcpTransport();
  const listener = await transport.listen(Multiaddr.parse("/ip4/127.0.0.1/tcp/0"));
  try {
    const [client, server] = await Promise.all([
      transport.dial(listener.addr),
      acceptOne(listener),
    ]);
    try {
      const [dialed, handled] = await Promise.all([
        selectProtocol(client, ["/noise/2", "/noise"]),
        handleProtocol(server, ["/noise"]),
      ]);
      assertEquals([dialed.protocol, handled.protocol], ["/noise", "/noise"]);
      const { stream } = selectProtocolOptimistic(dialed.stream, "/ipfs/ping/1.0.0");
      const inner = handleProtocol(handled.stream, ["/ipfs/ping/1.0.0"]);
      await writeText(stream, "x".repeat(32));
      const pinged = await inner;
      assertEquals(await readText(pinged.stream, 32), "x".repeat(32));
      await writeText(pinged.stream, "y".repeat(32));
      assertEquals(await readText(stream, 32), "y".repeat(32));
    } finally {
      client.abort();
      server.abort();
    }
  } finally {
    await listener.close();
  }
});
