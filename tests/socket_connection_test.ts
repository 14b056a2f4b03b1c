/**
 * SocketConnection, the bottom of every stack, over a memory socket pair and
 * over TCP: the write cork (writes of one turn leave in one socket write,
 * small chunks copied, large ones written from the caller's buffer, order
 * kept, backpressure), half-close after the corked bytes, failures, and the
 * read side (slab chunks that never overlap, readInto), and close() when
 * nobody reads.
 *
 * The socket under test is wrapped in a probe that records every call the
 * connection makes on it, so "one socket write" is counted, not inferred.
 */

import { setImmediate } from "node:timers";
import { Multiaddr } from "../netcore/multiaddr.ts";
import { NetworkError } from "../netcore/network_error.ts";
import { type Socket, SocketConnection } from "../netcore/transport/socket_connection.ts";
import { netAddrToMultiaddr } from "../netcore/transport/tcp_transport.ts";
import { assert, assertEquals, assertRejectsCode } from "./_assert.ts";
import { concat, randomBytes } from "./_bytes.ts";
import { memorySocketPair, socketConnection } from "./_pair.ts";
import { readAllFrom, settlesWithin } from "./_streams.ts";

/** A socket that records what the connection does with it, and can hold or fail writes. */
class ProbeSocket implements Socket {
  /** The arrays handed to `write`, as given (not copies). */
  readonly written: Uint8Array[] = [];
  /** Their contents at the time of the call. */
  readonly copies: Uint8Array[] = [];
  /** Calls in order: `write <n>`, `fin`, `close`, `reset`. */
  readonly events: string[] = [];
  /** Set to make every write from now on fail with this error. */
  failWith: Error | undefined;
  readonly reset?: () => void;
  readonly #inner: Socket;
  #gate: PromiseWithResolvers<void> | undefined;

  constructor(inner: Socket) {
    this.#inner = inner;
    if (inner.reset !== undefined) {
      this.reset = () => {
        this.events.push("reset");
        inner.reset!();
      };
    }
  }

  /** Socket writes so far. */
  get writes(): number {
    return this.copies.length;
  }

  /** Writes wait (after being recorded) until `release()`. */
  hold(): void {
    this.#gate ??= Promise.withResolvers();
  }

  release(): void {
    this.#gate?.resolve();
    this.#gate = undefined;
  }

  read(buffer: Uint8Array): Promise<number | null> {
    return this.#inner.read(buffer);
  }

  async write(data: Uint8Array): Promise<number> {
    this.written.push(data);
    this.copies.push(data.slice());
    this.events.push(`write ${data.length}`);
    if (this.failWith !== undefined) throw this.failWith;
    while (this.#gate !== undefined) await this.#gate.promise;
    return await this.#inner.write(data);
  }

  closeWrite(): Promise<void> {
    this.events.push("fin");
    return this.#inner.closeWrite();
  }

  close(): void {
    this.events.push("close");
    this.#inner.close();
  }
}

/** A connection over a probed socket, and a plain connection at the other end. */
interface Subject {
  conn: SocketConnection;
  probe: ProbeSocket;
  peer: SocketConnection;
  /** Releases everything left open. */
  dispose(): Promise<void>;
}

interface SubjectOptions {
  /** Memory only: bytes each direction buffers. */
  bufferSize?: number;
  closeGracePeriod?: number;
}

function memorySubject(options: SubjectOptions = {}): Promise<Subject> {
  const [a, b] = memorySocketPair({ bufferSize: options.bufferSize });
  const probe = new ProbeSocket(a);
  const addr = Multiaddr.parse(a.localAddr);
  const remote = Multiaddr.parse(a.remoteAddr);
  const conn = new SocketConnection(probe, () => addr, () => remote, options);
  const peer = socketConnection(b, options);
  return Promise.resolve({
    conn,
    probe,
    peer,
    dispose() {
      conn.abort();
      peer.abort();
      return Promise.all([conn.closed, peer.closed]).then(() => {});
    },
  });
}

async function tcpSubject(options: SubjectOptions = {}): Promise<Subject> {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const [dialed, accepted] = await Promise.all([
    Deno.connect({ hostname: "127.0.0.1", port: listener.addr.port }),
    listener.accept(),
  ]);
  listener.close();
  dialed.setNoDelay(true);
  accepted.setNoDelay(true);
  const probe = new ProbeSocket(dialed);
  const conn = new SocketConnection(
    probe,
    () => netAddrToMultiaddr(dialed.localAddr),
    () => netAddrToMultiaddr(dialed.remoteAddr),
    options,
  );
  const peer = new SocketConnection(
    accepted,
    () => netAddrToMultiaddr(accepted.localAddr),
    () => netAddrToMultiaddr(accepted.remoteAddr),
    options,
  );
  return {
    conn,
    probe,
    peer,
    dispose() {
      conn.abort();
      peer.abort();
      return Promise.all([conn.closed, peer.closed]).then(() => {});
    },
  };
}

const subjects = [["memory", memorySubject], ["tcp", tcpSubject]] as const;

/**
 * The next turn of the event loop: an immediate queued after the cork's own
 * (immediates run in order), so what was corked before has been handed to
 * the socket by then.
 */
const nextTurn = () => new Promise((resolve) => setImmediate(resolve));
const bytes = (...values: number[]) => new Uint8Array(values);
const list = (b: Uint8Array | null) => b === null ? null : [...b];

/** Fails unless the bytes are equal, naming the first difference (quick on large arrays). */
function assertSameBytes(actual: Uint8Array, expected: Uint8Array, what = "bytes"): void {
  assertEquals(actual.length, expected.length, `${what}: length`);
  const at = actual.findIndex((b, i) => b !== expected[i]);
  assert(at === -1, `${what}: first difference at byte ${at}`);
}

/** Reads from `conn` until `n` bytes came, joined. */
async function readBytes(conn: SocketConnection, n: number): Promise<Uint8Array> {
  const chunks: Uint8Array[] = [];
  let got = 0;
  while (got < n) {
    const chunk = await conn.read();
    if (chunk === null) throw new Error(`the end after ${got} of ${n} bytes`);
    chunks.push(chunk.slice());
    got += chunk.length;
  }
  return concat(chunks);
}

for (const [kind, make] of subjects) {
  /** A write this large stalls in the socket while the peer reads nothing (memory: 1 KiB buffers). */
  const stalledSize = kind === "memory" ? 64 * 1024 : 64 * 1024 * 1024;
  const test = (name: string, fn: () => Promise<void>) =>
    Deno.test({ name: `SocketConnection over ${kind}: ${name}`, fn });

  test("small writes of one turn, from different callers, leave in ONE socket write", async () => {
    const s = await make();
    const results: (Promise<void> | undefined)[] = [];
    results.push(s.conn.write(bytes(1, 2)));
    // Another layer writing in a microtask of the same turn.
    queueMicrotask(() => results.push(s.conn.write(bytes(3))));
    // And a third caller after an await, still in this turn.
    const third = (async () => {
      await Promise.resolve();
      results.push(s.conn.write(bytes(4, 5, 6)));
    })();
    await third;
    assertEquals(s.probe.writes, 0, "nothing is written before the end of the turn");
    assertEquals(results, [undefined, undefined, undefined], "small chunks are taken at once");
    assertEquals(list(await readBytes(s.peer, 6)), [1, 2, 3, 4, 5, 6]);
    assertEquals(s.probe.writes, 1, "one socket write for the turn");
    assertEquals(list(s.probe.copies[0]), [1, 2, 3, 4, 5, 6]);
    await s.dispose();
  });

  test("writes in different turns are separate socket writes", async () => {
    const s = await make();
    s.conn.write(bytes(1));
    s.conn.write(bytes(2));
    assertEquals(list(await readBytes(s.peer, 2)), [1, 2]);
    s.conn.write(bytes(3));
    await nextTurn();
    s.conn.write(bytes(4));
    assertEquals(list(await readBytes(s.peer, 2)), [3, 4]);
    assertEquals(s.probe.copies.map((c) => [...c]), [[1, 2], [3], [4]]);
    await s.dispose();
  });

  test("small chunks are copied: the caller may reuse one at once", async () => {
    const s = await make();
    const chunk = new Uint8Array(16 * 1024).fill(7); // the largest size still copied
    assertEquals(s.conn.write(chunk), undefined);
    chunk.fill(8);
    assertEquals(s.conn.write(chunk), undefined);
    chunk.fill(9);
    const got = await readBytes(s.peer, 32 * 1024);
    assert(got.subarray(0, 16 * 1024).every((b) => b === 7), "the first write's bytes");
    assert(got.subarray(16 * 1024).every((b) => b === 8), "the second write's bytes");
    assert(s.probe.written.every((w) => w.buffer !== chunk.buffer), "never the caller's buffer");
    await s.dispose();
  });

  test("a large chunk (> 16 KiB) is written from the caller's buffer; its promise resolves once it went down", async () => {
    const s = await make();
    const big = randomBytes(16 * 1024 + 1);
    s.probe.hold();
    const write = s.conn.write(big);
    assert(write !== undefined, "a large chunk stays the caller's: the write returns a promise");
    let done = false;
    write.then(() => done = true);
    await nextTurn();
    await nextTurn();
    assertEquals(s.probe.writes, 1, "the socket write started");
    assert(s.probe.written[0].buffer === big.buffer, "written from the caller's buffer, no copy");
    assertEquals(done, false, "not resolved while the socket write is pending");
    s.probe.release();
    await write;
    assertSameBytes(await readBytes(s.peer, big.length), big);
    await s.dispose();
  });

  test("order is kept between small and large writes", async () => {
    const s = await make();
    const big1 = randomBytes(40_000);
    const big2 = randomBytes(100_000);
    const expected = concat([bytes(1), big1, bytes(2, 3), bytes(4), big2, bytes(5)]);
    const writes = [
      s.conn.write(bytes(1)),
      s.conn.write(big1),
      s.conn.write(bytes(2, 3)),
      s.conn.write(bytes(4)),
      s.conn.write(big2),
      s.conn.write(bytes(5)),
    ];
    // The next turn: more small and large writes after the first round.
    await nextTurn();
    const big3 = randomBytes(20_000);
    writes.push(s.conn.write(bytes(6)), s.conn.write(big3));
    const all = concat([expected, bytes(6), big3]);
    const [got] = await Promise.all([readBytes(s.peer, all.length), ...writes]);
    assertSameBytes(got, all, "in the order written");
    await s.dispose();
  });

  test("closeWrite() writes what is corked, then half-closes (FIN)", async () => {
    const s = await make();
    s.conn.write(bytes(1, 2));
    s.conn.write(randomBytes(20_000));
    s.conn.write(bytes(3));
    await s.conn.closeWrite();
    const fin = s.probe.events.indexOf("fin");
    assert(fin > 0, `the FIN came after the writes: ${s.probe.events}`);
    assert(s.probe.events.slice(fin + 1).every((e) => !e.startsWith("write")), "nothing after");
    const got = await readAllFrom(s.peer);
    assertEquals(got.length, 20_003, "the peer read every corked byte, then the end");
    assertEquals([got[0], got[1], got[20_002]], [1, 2, 3]);
    // The half-close is one way: the peer still writes back.
    s.peer.write(bytes(9));
    assertEquals(list(await s.conn.read()), [9]);
    await s.dispose();
  });

  test("closeWrite() while a socket write is still in progress waits for it, then half-closes", async () => {
    const s = await make({ bufferSize: 1024 });
    // Nobody reads the peer end yet: the socket write stalls once its buffers are full.
    const write = s.conn.write(new Uint8Array(stalledSize))!;
    assert(!(await settlesWithin(write, 50)), "the write is stalled in the socket");
    const closing = s.conn.closeWrite(); // nothing corked: the write under way goes first
    const reading = readAllFrom(s.peer);
    await write;
    assert(await settlesWithin(closing, 5_000), "closeWrite() settles once the write is done");
    assert(s.probe.events.includes("fin"), `the FIN was sent: ${s.probe.events.slice(-3)}`);
    assert(await settlesWithin(reading, 5_000), "the peer sees the end");
    assertEquals((await reading).length, stalledSize, "after every byte");
    await s.dispose();
  });

  test("a write after closeWrite() rejects with CONNECTION_CLOSED", async () => {
    const s = await make();
    await s.conn.closeWrite();
    await assertRejectsCode(s.conn.write(bytes(1)) ?? Promise.resolve(), "CONNECTION_CLOSED");
    await assertRejectsCode(
      s.conn.write(randomBytes(20_000)) ?? Promise.resolve(),
      "CONNECTION_CLOSED",
    );
    assertEquals(await s.peer.read(), null, "nothing was sent after the end");
    await s.dispose();
  });

  test("abort() rejects a write in progress and later ones", async () => {
    for (
      const [reason, code] of [
        [new NetworkError("PROTOCOL_VIOLATION", "bad peer"), "PROTOCOL_VIOLATION"],
        [new Error("shutting down"), "CONNECTION_RESET"],
      ] as const
    ) {
      const s = await make({ bufferSize: 1024 });
      // Nobody reads the peer end: the socket write stalls once its buffers are full.
      const pending = s.conn.write(new Uint8Array(stalledSize))!;
      assert(!(await settlesWithin(pending, 50)), "the write is stalled in the socket");
      s.conn.abort(reason);
      const err = await assertRejectsCode(pending, code);
      if (code === "CONNECTION_RESET") assert(err.cause === reason, "the reason is the cause");
      await assertRejectsCode(s.conn.write(bytes(1)) ?? Promise.resolve(), code);
      await s.conn.closed;
      await s.dispose();
    }
  });

  test("a failing socket write fails it and every later write with CONNECTION_RESET", async () => {
    const s = await make();
    s.probe.failWith = new Deno.errors.BrokenPipe("broken pipe");
    assertEquals(s.conn.write(bytes(1)), undefined, "a small write is taken");
    const large = s.conn.write(randomBytes(20_000))!;
    const err = await assertRejectsCode(large, "CONNECTION_RESET");
    assert(err.cause instanceof Deno.errors.BrokenPipe, "the socket's error is the cause");
    await assertRejectsCode(s.conn.write(bytes(2)) ?? Promise.resolve(), "CONNECTION_RESET");
    await assertRejectsCode(s.conn.write(randomBytes(20_000))!, "CONNECTION_RESET");
    await s.conn.closed; // the failed connection is released
    await s.dispose();
  });

  test("a failed small write fails the next write with CONNECTION_RESET", async () => {
    const s = await make();
    s.probe.failWith = new Deno.errors.ConnectionReset("reset by peer");
    assertEquals(s.conn.write(bytes(1)), undefined);
    await nextTurn();
    await nextTurn();
    assertEquals(s.probe.writes, 1, "the corked write was tried");
    await assertRejectsCode(s.conn.write(bytes(2)) ?? Promise.resolve(), "CONNECTION_RESET");
    await s.dispose();
  });

  test("read(): chunks are the caller's, later reads never overwrite earlier chunks", async () => {
    const s = await make();
    const sizes = Array.from({ length: 40 }, (_, i) => 100 + i * 37);
    const chunks: Uint8Array[] = [];
    for (const [i, size] of sizes.entries()) {
      s.peer.write(new Uint8Array(size).fill(i + 1));
      await nextTurn(); // one socket write each
      const chunk = await s.conn.read();
      assert(chunk !== null);
      chunks.push(chunk);
    }
    await s.peer.closeWrite();
    // Whatever is left (TCP may split a message across reads), then null at the peer's end.
    for (let chunk = await s.conn.read(); chunk !== null; chunk = await s.conn.read()) {
      chunks.push(chunk);
    }
    // Some chunks share a slab; none was overwritten by a later read.
    const joined = concat(chunks);
    let at = 0;
    for (const [i, size] of sizes.entries()) {
      const part = joined.subarray(at, at + size);
      assert(part.every((b) => b === i + 1), `message ${i} intact`);
      at += size;
    }
    assertEquals(at, joined.length);
    const buffers = new Set(chunks.map((c) => c.buffer));
    assert(buffers.size < chunks.length, "reads share slabs (else this test proves nothing)");
    for (const [i, a] of chunks.entries()) {
      for (const b of chunks.slice(i + 1)) {
        if (a.buffer !== b.buffer) continue;
        const disjoint = a.byteOffset + a.length <= b.byteOffset ||
          b.byteOffset + b.length <= a.byteOffset;
        assert(disjoint, "chunks of one slab do not overlap");
      }
    }
    await s.dispose();
  });

  test("readInto(): fills the caller's buffer, null at the peer's end", async () => {
    const s = await make();
    const data = randomBytes(10_000);
    s.peer.write(data);
    await s.peer.closeWrite();
    const buffer = new Uint8Array(3000);
    const got: Uint8Array[] = [];
    for (let n = await s.conn.readInto(buffer); n !== null; n = await s.conn.readInto(buffer)) {
      assert(n > 0 && n <= buffer.length, `a count within the buffer (${n})`);
      got.push(buffer.slice(0, n));
    }
    assertSameBytes(concat(got), data);
    await s.dispose();
  });

  test("close() with nobody reading drains the peer's bytes, sees its end and releases", async () => {
    const s = await make({ closeGracePeriod: 60_000 });
    s.peer.write(randomBytes(100_000)); // never read by conn
    await nextTurn();
    const closing = s.conn.close();
    // The peer finishes its side once it saw ours end.
    assertEquals(await s.peer.read(), null);
    await s.peer.closeWrite();
    assert(await settlesWithin(closing, 2_000), "released long before the grace period");
    assert(await settlesWithin(s.conn.closed, 100), "closed settled");
    assert(s.probe.events.includes("close"), `the socket was closed: ${s.probe.events}`);
    await s.peer.close();
    await s.dispose();
  });
}

// Memory only: a bounded peer buffer makes the socket write stall on demand.

Deno.test("SocketConnection: backpressure, a promise once about 1 MiB waits, resolved when written", async () => {
  const s = await memorySubject({ bufferSize: 64 * 1024 });
  const chunk = new Uint8Array(4096);
  let taken = 0;
  let waiting: Promise<void> | undefined;
  for (let i = 0; i < 1000 && waiting === undefined; i++) {
    waiting = s.conn.write(chunk.fill(i & 0xff));
    if (waiting === undefined) taken += chunk.length;
  }
  assert(waiting !== undefined, "the writer was asked to wait");
  assertEquals(taken, 1024 * 1024, "small writes are taken until 1 MiB is pending");
  // Across turns too: the socket is stalled (nobody reads the peer end).
  await nextTurn();
  await nextTurn();
  assert(s.conn.write(chunk) !== undefined, "still waiting in a later turn");
  assert(!(await settlesWithin(waiting, 50)), "nothing resolves while the peer reads nothing");
  const total = taken + 2 * chunk.length;
  const [got] = await Promise.all([readBytes(s.peer, total), waiting]);
  for (let i = 0; i < total / chunk.length - 1; i++) {
    if (got[i * chunk.length] !== (i & 0xff)) throw new Error(`chunk ${i} out of order`);
  }
  assertEquals(s.conn.write(chunk), undefined, "once written, writes are taken at once again");
  await s.dispose();
});
