/**
 * Our stack against js-libp2p (issue 4, "Interop"), both ways over loopback
 * TCP: our in-process {@linkcode Libp2pNode} dials a js-libp2p listener
 * process, and a js-libp2p client process dials our node. Each side must
 * authenticate the other's peer id, ping, echo 8 MiB intact, carry 100
 * concurrent echo streams on one connection, and see a close by the other
 * side as a clean end.
 *
 * Installs the pinned js-libp2p packages on first use (see `_js_peer.ts`).
 */

import { echoThrough, settlesWithin } from "../_streams.ts";
import { assert, assertEquals, assertRejectsCode } from "../_assert.ts";
import { randomBytes, sha256Hex } from "../_bytes.ts";
import { parseEchoLine, parsePerfLine, parsePingLine } from "../../protocols/cli_contract.ts";
import { Ed25519Identity } from "../../netcore/identity/mod.ts";
import { Libp2pNode } from "../../netcore/peer/libp2p_node.ts";
import { Multiaddr } from "../../netcore/multiaddr.ts";
import { NetworkError } from "../../netcore/network_error.ts";
import { ByteConnection } from "../../netcore/transport/byte_connection.ts";
import type { Connection } from "../../netcore/transport/connection.ts";
import type { PeerConnection } from "../../netcore/upgrade/mod.ts";
import { ECHO_PROTOCOL, handleEcho } from "../../protocols/echo.ts";
import { handlePerf, PERF_PROTOCOL, runPerf } from "../../protocols/perf.ts";
import { handlePing, PING_PROTOCOL, Pinger } from "../../protocols/ping.ts";
import { type ClientResult, runJsClient, startJsPeer } from "./_js_peer.ts";

const EIGHT_MIB = 8 * 1024 * 1024;

function show(r: ClientResult): string {
  return `exit ${r.code}\nstdout: ${r.stdout}\nstderr: ${r.stderr}`;
}

// ---- our node dials js-libp2p -------------------------------------------------

Deno.test("ours -> js: the connection authenticates js's peer id; a wrong /p2p/ id is UNAUTHORIZED", async () => {
  await using peer = await startJsPeer();
  const node = await Libp2pNode.create();
  try {
    const addr = Multiaddr.parse(peer.multiaddr);
    const impostor = Ed25519Identity.generate().peerId.toString();
    await assertRejectsCode(
      () => node.dial(addr.withoutPeerId().withPeerId(impostor)),
      "UNAUTHORIZED",
    );
    const conn = await node.dial(addr);
    assertEquals(conn.remotePeer.toString(), peer.peerId);
    // js answers "na" to a protocol it does not serve; the connection stays.
    await assertRejectsCode(() => conn.openStream(["/nope/1.0.0"]), "UNSUPPORTED_PROTOCOL");
    const fallback = await conn.openStream(["/nope/1.0.0", PING_PROTOCOL]);
    assertEquals(fallback.protocol, PING_PROTOCOL);
    await fallback.close();
    // Without a /p2p/ id in the address the handshake still tells us who it is.
    const anonymous = await node.dial(addr.withoutPeerId());
    assertEquals(anonymous.remotePeer.toString(), peer.peerId);
    await anonymous.close();
  } finally {
    await node.close();
  }
  assertEquals(await peer.close(), 0, peer.stderr());
});

Deno.test("ours -> js: ping, perf, 8 MiB echoed intact, 100 concurrent echo streams on one connection", async () => {
  await using peer = await startJsPeer();
  const node = await Libp2pNode.create();
  try {
    const addr = Multiaddr.parse(peer.multiaddr);
    const conn = await node.dial(addr);

    // libp2p ping against @libp2p/ping's handler, and a yamux-level ping.
    const pinger = new Pinger(await conn.openStream([PING_PROTOCOL]));
    for (let i = 0; i < 10; i++) {
      const rtt = await pinger.ping();
      assert(rtt >= 0 && rtt < 5_000, `rtt ${rtt}`);
    }
    await pinger.close();
    assert((await conn.ping()) >= 0, "yamux ping answered");

    const perf = await runPerf(await conn.openStream([PERF_PROTOCOL]), {
      upload: 2_000_000,
      download: 3_000_000,
    });
    assertEquals([perf.uploadBytes, perf.downloadBytes], [2_000_000, 3_000_000]);

    const data = randomBytes(EIGHT_MIB);
    const back = await echoThrough(await conn.openStream([ECHO_PROTOCOL]), data);
    assertEquals(back.length, EIGHT_MIB);
    assertEquals(await sha256Hex(back), await sha256Hex(data));

    // Past js-libp2p's default of 64 outbound streams per protocol (the js
    // node raises its limits to 1024).
    const payloads = Array.from({ length: 100 }, () => randomBytes(16 * 1024));
    const results = await Promise.all(
      payloads.map(async (p) => await echoThrough(await conn.openStream([ECHO_PROTOCOL]), p)),
    );
    for (const [i, r] of results.entries()) assertEquals(r, payloads[i], `stream ${i}`);
    assertEquals(node.connectionsTo(conn.remotePeer), [conn]);
  } finally {
    await node.close();
  }
  assertEquals(await peer.close(), 0, peer.stderr());
});

Deno.test("ours -> js: our close is clean for js, and js stopping is clean for us", async () => {
  await using peer = await startJsPeer();
  const node = await Libp2pNode.create();
  try {
    const addr = Multiaddr.parse(peer.multiaddr);

    // We close: js carries on serving.
    const first = await node.dial(addr);
    const pinger = new Pinger(await first.openStream([PING_PROTOCOL]));
    await pinger.ping();
    await pinger.close();
    await first.close();
    assert(await settlesWithin(first.closed, 5_000), "our close settles");
    assertEquals(node.connectionsTo(first.remotePeer), []);

    // js stops (SIGTERM, node.stop()): our connection ends, with no error
    // escaping anywhere, and js exits 0.
    const second = await node.dial(addr);
    assert(second !== first, "a new connection after the first closed");
    const again = new Pinger(await second.openStream([PING_PROTOCOL]));
    await again.ping();
    await again.close();
    // An echo stream still open, with a read waiting, when js goes away.
    const open = await second.openStream([ECHO_PROTOCOL]);
    const writer = open.writable.getWriter();
    const reader = open.readable.getReader();
    await writer.write(new Uint8Array([1, 2, 3]));
    assertEquals((await reader.read()).value, new Uint8Array([1, 2, 3]));
    // Handled at once: it must fail or end while js stops.
    const pending = reader.read().then((r) => r, (err) => err);
    assertEquals(await peer.close(), 0, peer.stderr());
    assert(await settlesWithin(second.closed, 5_000), "js's close reaches our connection");
    assert(await settlesWithin(pending, 1_000), "the waiting read ends too");
    const outcome = await pending;
    assert(
      outcome instanceof Error
        ? NetworkError.is(outcome, "CONNECTION_CLOSED", "CONNECTION_RESET")
        : outcome.done,
      `the read ends or fails as closed, got ${outcome}`,
    );
    await writer.write(new Uint8Array([4])).catch(() => {/* the stream is gone */});
    writer.releaseLock();
    assertEquals(node.connectionsTo(second.remotePeer), []);
    await assertRejectsCode(
      () => second.openStream([PING_PROTOCOL]),
      "CONNECTION_CLOSED",
      "CONNECTION_RESET",
    );
  } finally {
    await node.close();
  }
});

// ---- js-libp2p dials our node -------------------------------------------------

/** A stream whose bytes read are counted; everything else passes straight through. */
class CountingReads extends ByteConnection {
  readonly #inner: Connection;
  readonly #onRead: (bytes: number) => void;

  constructor(inner: Connection, onRead: (bytes: number) => void) {
    super();
    this.#inner = inner;
    this.#onRead = onRead;
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
  async read(): Promise<Uint8Array | null> {
    const chunk = await this.#inner.read();
    if (chunk !== null) this.#onRead(chunk.length);
    return chunk;
  }
  async readInto(buffer: Uint8Array): Promise<number | null> {
    const n = await this.#inner.readInto(buffer);
    if (n !== null) this.#onRead(n);
    return n;
  }
  cancelRead(reason?: unknown): void {
    this.#inner.cancelRead(reason);
  }
  write(chunk: Uint8Array): Promise<void> | undefined {
    return this.#inner.write(chunk);
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

/** Our listener on 127.0.0.1 with ping, perf and echo, noting every inbound stream's connection. */
async function ourListener() {
  const node = await Libp2pNode.create({ listen: [Multiaddr.parse("/ip4/127.0.0.1/tcp/0")] });
  const streams: { protocol: string; conn: PeerConnection; bytes: number }[] = [];
  node.handle(PING_PROTOCOL, async (stream, conn) => {
    streams.push({ protocol: stream.protocol, conn, bytes: 0 });
    await handlePing(stream);
  });
  node.handle(PERF_PROTOCOL, async (stream, conn) => {
    streams.push({ protocol: stream.protocol, conn, bytes: 0 });
    await handlePerf(stream);
  });
  node.handle(ECHO_PROTOCOL, async (stream, conn) => {
    const entry = { protocol: stream.protocol, conn, bytes: 0 };
    streams.push(entry);
    await handleEcho(new CountingReads(stream, (n) => entry.bytes += n));
  });
  return { node, addr: node.listenAddrs[0].toString(), streams };
}

Deno.test("js -> ours: js pings, runs perf, echoes 8 MiB intact; both sides know each other's id", async () => {
  const { node, addr, streams } = await ourListener();
  try {
    // js-libp2p checks the peer it reached against the dialed /p2p/ id: the
    // right one succeeds, another one fails.
    const ping = await runJsClient(["ping", addr, "--count", "10"]);
    assertEquals(ping.code, 0, show(ping));
    assertEquals(parsePingLine(ping.stdout)?.count, 10, show(ping));

    const impostor = Ed25519Identity.generate().peerId.toString();
    const wrong = await runJsClient([
      "ping",
      addr.replace(/\/p2p\/[^/]+$/, `/p2p/${impostor}`),
      "--count",
      "1",
    ]);
    assert(wrong.code !== 0, `js must refuse our node under another id: ${show(wrong)}`);
    // js names the key it authenticated: ours.
    assert(wrong.stderr.includes(`error:`), show(wrong));
    assert(wrong.stderr.includes(node.peerId.toString()), show(wrong));

    // The js client verifies every byte that comes back.
    const echo = await runJsClient(["echo", addr, "--bytes", String(EIGHT_MIB)]);
    assertEquals(echo.code, 0, show(echo));
    assertEquals(parseEchoLine(echo.stdout)?.bytes, EIGHT_MIB, show(echo));

    const perfRun = await runJsClient([
      "perf",
      addr,
      "--upload",
      "2000000",
      "--download",
      "3000000",
    ]);
    assertEquals(perfRun.code, 0, show(perfRun));
    const perf = parsePerfLine(perfRun.stdout);
    assert(perf && perf.uploadMBps > 0 && perf.downloadMBps > 0, show(perfRun));

    const echoed = streams.filter((s) => s.protocol === ECHO_PROTOCOL);
    assertEquals(echoed.map((s) => s.bytes), [EIGHT_MIB]);
    const pings = streams.filter((s) => s.protocol === PING_PROTOCOL);
    assertEquals(pings.length, 1, "the wrong-id dial never reached a handler");
    for (const { conn } of streams) {
      const id = conn.remotePeer.toString();
      assert(id.startsWith("12D3KooW") && id !== node.peerId.toString(), id);
    }
    // The js client exited: every connection it made has ended on our side.
    for (const { conn } of streams) {
      assert(await settlesWithin(conn.closed, 5_000), "js's exit closes our end");
    }
  } finally {
    await node.close();
  }
});

Deno.test("js -> ours: 100 concurrent echo streams on one connection, then a clean end", async () => {
  const { node, addr, streams } = await ourListener();
  try {
    const r = await runJsClient(["echo", addr, "--bytes", "16384", "--streams", "100"]);
    assertEquals(r.code, 0, show(r));
    assertEquals(parseEchoLine(r.stdout)?.bytes, 16384 * 100, show(r));
    assertEquals(streams.length, 100);
    assert(streams.every((s) => s.bytes === 16384), "every stream carried its bytes");
    const conns = new Set(streams.map((s) => s.conn));
    assertEquals(conns.size, 1, "all on one connection");
    const [conn] = conns;
    assert(await settlesWithin(conn.closed, 5_000), "js's close reaches our connection");
    assertEquals(node.connectionsTo(conn.remotePeer), []);
  } finally {
    await node.close();
  }
});

Deno.test("js -> ours: our node closing ends a js client's connection with an error, not a hang", async () => {
  const { node, addr, streams } = await ourListener();
  let closed = false;
  try {
    // js connects 5 times in a row (a ping on each, closing each itself).
    const r = await runJsClient(["connect", addr, "--count", "5"]);
    assertEquals(r.code, 0, show(r));
    assertEquals(streams.length, 5);

    // A js client in the middle of a long ping run when our node closes.
    const running = runJsClient(["ping", addr, "--count", "100000000"], 20_000);
    for (let i = 0; i < 1_000 && streams.length < 6; i++) {
      await new Promise((res) => setTimeout(res, 10));
    }
    assertEquals(streams.length, 6, "the js ping stream reached our handler");
    const start = performance.now();
    await node.close();
    closed = true;
    const closeMs = performance.now() - start;
    const result = await running;
    assertEquals(result.code, 1, `a ping run cut short fails: ${show(result)}`);
    assert(result.stderr.includes("error:"), show(result));
    assert(closeMs < 6_000, `close took ${closeMs} ms`);
  } finally {
    if (!closed) await node.close();
  }
});
