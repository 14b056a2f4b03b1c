/**
 * One conformance suite for every byte transport, run against TCP on
 * loopback and against the in-memory transport: mostly through the byte
 * methods the layers above use (read, write, closeWrite), and through the
 * Web Streams edge (readable, writable) where noted.
 */

import { MemoryNetwork } from "../memsocket/mod.ts";
import { Multiaddr } from "../netcore/multiaddr.ts";
import { NetworkError } from "../netcore/network_error.ts";
import type { Connection } from "../netcore/transport/connection.ts";
import { andThen } from "../netcore/transport/and_then.ts";
import { MemoryTransport } from "../netcore/transport/memory_transport.ts";
import { TcpTransport } from "../netcore/transport/tcp_transport.ts";
import type { Listener, Transport } from "../netcore/transport/transport.ts";
import { withTimeout } from "../netcore/transport/with_timeout.ts";
import { assert, assertEquals, assertRejectsCode } from "./_assert.ts";
import { readAll } from "./_bytes.ts";
import { acceptOne } from "./_pair.ts";
import { readAllFrom } from "./_streams.ts";

/** What the suite needs to know about a transport. */
interface Subject {
  name: string;
  /** A fresh transport (memory: on its own network). */
  make(): Transport;
  /** Where to listen, with port 0. */
  listenAddr: string;
  /** An address nothing listens on. */
  refusedAddr(transport: Transport): Promise<Multiaddr>;
  /** Most bytes a writer may get accepted while the peer reads nothing. */
  maxBuffered: number;
  /**
   * Whether `abort()` makes the peer's pending read reject. Deno exposes no
   * SO_LINGER, so an aborted TCP socket is closed with FIN and the peer
   * first sees an end of stream, then failing writes.
   */
  abortRejectsPeerRead: boolean;
}

const text = (s: string) => new TextEncoder().encode(s);
const str = (b: Uint8Array) => new TextDecoder().decode(b);

/** Writes `bytes` and half-closes, through the byte methods. */
async function writeAndClose(conn: Connection, bytes: Uint8Array): Promise<void> {
  await conn.write(bytes);
  await conn.closeWrite();
}

/** Writes `bytes` and half-closes, through the Web Streams edge. */
async function writeAndCloseStream(conn: Connection, bytes: Uint8Array): Promise<void> {
  const writer = conn.writable.getWriter();
  await writer.write(bytes);
  await writer.close();
}

/** Listens and hands every inbound connection to `handle`; `stop()` closes and waits for all. */
async function serve(
  transport: Transport,
  addr: string,
  handle: (conn: Connection) => Promise<void>,
): Promise<{ listener: Listener; stop(): Promise<void> }> {
  const listener = await transport.listen(Multiaddr.parse(addr));
  const handlers: Promise<void>[] = [];
  const loop = (async () => {
    for await (const conn of listener) {
      handlers.push(handle(conn).catch(() => conn.abort()));
    }
  })();
  return {
    listener,
    async stop() {
      await listener.close();
      await loop;
      await Promise.all(handlers);
    },
  };
}

/** Echoes through the byte methods: each chunk read is written back, then the end. */
const echo = async (conn: Connection) => {
  for (let chunk = await conn.read(); chunk !== null; chunk = await conn.read()) {
    await conn.write(chunk);
  }
  await conn.close();
};

/** Echoes through the Web Streams edge. */
const streamEcho = async (conn: Connection) => {
  await conn.readable.pipeTo(conn.writable);
  await conn.closed;
};

function conformance(subject: Subject): void {
  const test = (name: string, fn: () => Promise<void>) =>
    Deno.test({ name: `${subject.name}: ${name}`, fn });

  test("dial, listen and echo through the byte methods", async () => {
    const transport = subject.make();
    const server = await serve(transport, subject.listenAddr, echo);
    assert(server.listener.addr.toString() !== subject.listenAddr, "port 0 is resolved");
    const conn = await transport.dial(server.listener.addr);
    assert(conn.remoteAddr.equals(server.listener.addr), "remoteAddr is the listener's");
    const [, back] = await Promise.all([writeAndClose(conn, text("hello")), readAllFrom(conn)]);
    assertEquals(str(back), "hello");
    await conn.closed;
    await server.stop();
  });

  test("dial, listen and echo through readable and writable", async () => {
    const transport = subject.make();
    const server = await serve(transport, subject.listenAddr, streamEcho);
    const conn = await transport.dial(server.listener.addr);
    const [, back] = await Promise.all([
      (async () => {
        const writer = conn.writable.getWriter();
        await writer.write(text("hello, "));
        await writer.write(text("streams"));
        await writer.close();
      })(),
      readAll(conn.readable),
    ]);
    assertEquals(str(back), "hello, streams");
    await conn.closed;
    await server.stop();
  });

  test("64 MiB arrive intact (SHA-256 compared)", async () => {
    const transport = subject.make();
    const size = 64 * 1024 * 1024;
    const server = await serve(transport, subject.listenAddr, async (conn) => {
      const received = new Uint8Array(size);
      // Straight into one buffer, with readInto.
      let offset = 0;
      while (offset < size) {
        const n = await conn.readInto(received.subarray(offset));
        if (n === null) break;
        offset += n;
      }
      assertEquals(offset, size, "bytes received");
      assertEquals(await conn.read(), null, "then the end");
      const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", received));
      await writeAndClose(conn, digest);
      await conn.close();
    });
    const data = new Uint8Array(size);
    for (let i = 0; i < size; i += 65536) crypto.getRandomValues(data.subarray(i, i + 65536));
    const expected = new Uint8Array(await crypto.subtle.digest("SHA-256", data));
    const conn = await transport.dial(server.listener.addr);
    const sending = (async () => {
      // Mixed sizes: small writes are copied into the cork, large ones written in place.
      const sizes = [65536, 100, 4096, 20_000, 1];
      for (let i = 0, k = 0; i < size; k++) {
        const n = Math.min(sizes[k % sizes.length], size - i);
        await conn.write(data.subarray(i, i + n));
        i += n;
      }
      await conn.closeWrite();
    })();
    const [, digest] = await Promise.all([sending, readAllFrom(conn)]);
    assertEquals([...digest], [...expected], "digest");
    await conn.closed;
    await server.stop();
  });

  test("backpressure: a peer that does not read stalls the writer", async () => {
    const transport = subject.make();
    const listener = await transport.listen(Multiaddr.parse(subject.listenAddr));
    const [conn, peer] = await Promise.all([transport.dial(listener.addr), acceptOne(listener)]);
    const chunk = new Uint8Array(65536);
    let accepted = 0;
    let pending: Promise<void> | undefined;
    while (accepted <= subject.maxBuffered) {
      const write = conn.write(chunk);
      const stalled = write !== undefined && await Promise.race([
        write.then(() => false),
        new Promise<boolean>((resolve) => setTimeout(() => resolve(true), 200)),
      ]);
      if (stalled) {
        pending = write;
        break;
      }
      accepted += chunk.length;
    }
    assert(pending !== undefined, `writer stalled (accepted ${accepted} bytes)`);
    assert(accepted > 0, "some bytes were accepted before the stall");
    assert(accepted <= subject.maxBuffered, `accepted ${accepted} <= ${subject.maxBuffered}`);
    // Once the peer reads, the stalled write completes and every byte arrives.
    const draining = readAllFrom(peer);
    await pending;
    await conn.closeWrite();
    assertEquals((await draining).length, accepted + chunk.length, "bytes received");
    await Promise.all([conn.close(), peer.close()]);
    await listener.close();
  });

  test("half-close: A ends its side, B reads to the end and still writes back", async () => {
    const transport = subject.make();
    const listener = await transport.listen(Multiaddr.parse(subject.listenAddr));
    const [a, b] = await Promise.all([transport.dial(listener.addr), acceptOne(listener)]);
    await writeAndClose(a, text("ping"));
    assertEquals(str(await readAllFrom(b)), "ping", "B read to the end");
    await writeAndClose(b, text("pong"));
    assertEquals(str(await readAllFrom(a)), "pong", "A read the reply");
    await Promise.all([a.closed, b.closed]);
    await listener.close();
  });

  test("half-close through the Web Streams edge: writable.close() ends the peer's readable", async () => {
    const transport = subject.make();
    const listener = await transport.listen(Multiaddr.parse(subject.listenAddr));
    const [a, b] = await Promise.all([transport.dial(listener.addr), acceptOne(listener)]);
    await writeAndCloseStream(a, text("ping"));
    assertEquals(str(await readAll(b.readable)), "ping", "B read to the end");
    await writeAndCloseStream(b, text("pong"));
    assertEquals(str(await readAll(a.readable)), "pong", "A read the reply");
    await Promise.all([a.closed, b.closed]);
    await listener.close();
  });

  test("close() is graceful: the peer reads everything, then its end", async () => {
    const transport = subject.make();
    const listener = await transport.listen(Multiaddr.parse(subject.listenAddr));
    const [a, b] = await Promise.all([transport.dial(listener.addr), acceptOne(listener)]);
    a.write(text("last "));
    const big = new Uint8Array(100_000).fill(0x61);
    a.write(big);
    a.write(text(" words"));
    const closing = a.close(); // in the same turn: everything corked goes first
    const got = await readAllFrom(b);
    const expected = `last ${str(big)} words`;
    assert(
      str(got) === expected,
      `the peer read ${got.length} of ${expected.length} bytes in order`,
    );
    await b.close();
    await closing;
    await Promise.all([a.closed, b.closed]);
    await listener.close();
  });

  test("abort is seen by the peer", async () => {
    const transport = subject.make();
    const listener = await transport.listen(Multiaddr.parse(subject.listenAddr));
    const [a, b] = await Promise.all([transport.dial(listener.addr), acceptOne(listener)]);
    b.write(text("never read")); // left unread in A
    await new Promise((resolve) => setTimeout(resolve, 20));
    a.abort(new Error("test abort"));
    await assertRejectsCode(a.read(), "CONNECTION_RESET", "CONNECTION_CLOSED");
    await assertRejectsCode(a.write(text("late")) ?? Promise.resolve(), "CONNECTION_RESET");
    await a.closed;
    if (subject.abortRejectsPeerRead) {
      await assertRejectsCode(b.read(), "CONNECTION_RESET");
    } else {
      try {
        assertEquals(await b.read(), null, "no data arrives after an abort");
      } catch (err) {
        assert(NetworkError.is(err, "CONNECTION_RESET"), `read failed with a reset: ${err}`);
      }
    }
    // Either way the peer cannot keep writing into a dropped connection.
    await assertRejectsCode(
      (async () => {
        for (let i = 0; i < 100; i++) {
          await b.write(text("anyone there?"));
          await new Promise((resolve) => setTimeout(resolve, 10));
        }
      })(),
      "CONNECTION_RESET",
      "CONNECTION_CLOSED",
    );
    b.abort();
    await b.closed;
    await listener.close();
  });

  test("dial to an address nobody listens on -> DIAL_REFUSED", async () => {
    const transport = subject.make();
    await assertRejectsCode(transport.dial(await subject.refusedAddr(transport)), "DIAL_REFUSED");
  });

  test("dial deadlines -> DIAL_TIMEOUT, a plain abort -> ABORTED", async () => {
    const transport = subject.make();
    const server = await serve(transport, subject.listenAddr, async (conn) => {
      // The dialer's deadline aborts its raw connection: this side sees it end.
      await readAllFrom(conn).catch(() => {});
      await conn.close();
    });
    const addr = server.listener.addr;
    const timedOut = AbortSignal.abort(new DOMException("deadline", "TimeoutError"));
    await assertRejectsCode(transport.dial(addr, { signal: timedOut }), "DIAL_TIMEOUT");
    await assertRejectsCode(transport.dial(addr, { signal: AbortSignal.abort() }), "ABORTED");
    // A dial that connects but whose upgrade hangs: the whole dial is bounded.
    const hanging = withTimeout(
      andThen(
        transport,
        (_conn, { signal }) =>
          new Promise<Connection>((_, reject) =>
            signal.addEventListener("abort", () => reject(signal.reason))
          ),
      ),
      100,
    );
    const started = performance.now();
    await assertRejectsCode(hanging.dial(addr), "DIAL_TIMEOUT");
    const elapsed = performance.now() - started;
    assert(elapsed >= 90 && elapsed < 2000, `timed out after ~100 ms (took ${elapsed})`);
    await server.stop();
  });

  test("closing the listener ends its iteration and refuses new dials", async () => {
    const transport = subject.make();
    const listener = await transport.listen(Multiaddr.parse(subject.listenAddr));
    const next = listener[Symbol.asyncIterator]().next();
    await new Promise((resolve) => setTimeout(resolve, 10));
    await listener.close();
    assertEquals((await next).done, true, "iteration ended");
    await assertRejectsCode(transport.dial(listener.addr), "DIAL_REFUSED");
  });

  test("500 concurrent connections each echo their own bytes", async () => {
    const transport = subject.make();
    const server = await serve(transport, subject.listenAddr, echo);
    const results = await Promise.all(
      Array.from({ length: 500 }, async (_, i) => {
        const conn = await transport.dial(server.listener.addr);
        const message = `connection ${i} `.repeat(20);
        const [, back] = await Promise.all([writeAndClose(conn, text(message)), readAllFrom(conn)]);
        await conn.closed;
        return str(back) === message;
      }),
    );
    assertEquals(results.filter((ok) => !ok).length, 0, "mismatched echoes");
    await server.stop();
  });
}

conformance({
  name: "tcp",
  make: () => new TcpTransport(),
  listenAddr: "/ip4/127.0.0.1/tcp/0",
  async refusedAddr(transport) {
    // Bind a free port, then free it again: nothing listens there now.
    const listener = await transport.listen(Multiaddr.parse("/ip4/127.0.0.1/tcp/0"));
    await listener.close();
    return listener.addr;
  },
  // Loopback socket buffers grow with autotuning (about 4 MiB measured here).
  maxBuffered: 16 * 1024 * 1024,
  abortRejectsPeerRead: false,
});

conformance({
  name: "memory",
  make: () => new MemoryTransport({ network: new MemoryNetwork() }),
  listenAddr: "/memory/0",
  refusedAddr: () => Promise.resolve(Multiaddr.parse("/memory/4242")),
  // 256 KiB of pipe buffer, plus the one 64 KiB chunk being split into it.
  maxBuffered: 256 * 1024 + 64 * 1024,
  abortRejectsPeerRead: true,
});

// TCP specifics that the shared suite has no words for.

Deno.test("tcp: dns addresses are resolved by the dial; unsupported addresses are BAD_ADDRESS", async () => {
  const tcp = new TcpTransport();
  const server = await serve(tcp, "/ip4/127.0.0.1/tcp/0", echo);
  const port = server.listener.addr.tcpEndpoint()!.port;
  const conn = await tcp.dial(Multiaddr.parse(`/dns4/localhost/tcp/${port}`));
  const [, back] = await Promise.all([writeAndClose(conn, text("by name")), readAllFrom(conn)]);
  assertEquals(str(back), "by name");
  await conn.closed;
  assert(!tcp.supports(Multiaddr.parse("/memory/1")), "memory is not TCP");
  await assertRejectsCode(tcp.dial(Multiaddr.parse("/memory/1")), "BAD_ADDRESS");
  await assertRejectsCode(tcp.listen(Multiaddr.parse("/memory/1")), "BAD_ADDRESS");
  await server.stop();
});

Deno.test("tcp: the listener's signal closes it", async () => {
  const controller = new AbortController();
  const listener = await new TcpTransport().listen(Multiaddr.parse("/ip4/127.0.0.1/tcp/0"), {
    signal: controller.signal,
  });
  const next = listener[Symbol.asyncIterator]().next();
  controller.abort();
  assertEquals((await next).done, true, "iteration ended");
});
