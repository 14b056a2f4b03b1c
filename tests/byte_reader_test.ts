/**
 * ByteReader: reads in protocol units over any ByteSource, returns views
 * when it can, maps the end and failure of the source to NetworkError codes,
 * is itself a ByteSource (buffered bytes first), and hands a connection on
 * to the next layer with what it read ahead (handOff).
 */

import fc from "fast-check";
import { ByteReader } from "../netcore/byte_reader.ts";
import { NetworkError } from "../netcore/network_error.ts";
import type { ByteSource } from "../netcore/transport/connection.ts";
import { encodeVarint } from "../netcore/varint.ts";
import { assert, assertEquals, assertRejectsCode } from "./_assert.ts";
import { memoryPair } from "./_pair.ts";
import { readAllFrom } from "./_streams.ts";

const list = (bytes: Uint8Array | null | undefined) =>
  bytes === undefined || bytes === null ? bytes : [...bytes];

/** A source that yields these arrays (by `read`) and then ends; records cancelRead. */
function chunks(...parts: number[][]) {
  const arrays = parts.map((p) => new Uint8Array(p));
  const queue = [...arrays];
  const state = { cancelled: false, reason: undefined as unknown, reads: 0 };
  const source: ByteSource = {
    read() {
      state.reads++;
      return Promise.resolve(queue.shift() ?? null);
    },
    readInto(buffer) {
      const next = queue.shift();
      if (next === undefined) return Promise.resolve(null);
      const n = Math.min(next.length, buffer.length);
      buffer.set(next.subarray(0, n));
      if (n < next.length) queue.unshift(next.subarray(n));
      return Promise.resolve(n);
    },
    cancelRead(reason) {
      state.cancelled = true;
      state.reason = reason;
    },
  };
  return { source, arrays, state };
}

/** A source under test control: push chunks, end it, fail it; records cancellation. */
function controlled() {
  const queue: (Uint8Array | null | Error)[] = [];
  let waiter: PromiseWithResolvers<void> | undefined;
  const state = { cancelled: false, reason: undefined as unknown };
  const wake = () => {
    waiter?.resolve();
    waiter = undefined;
  };
  const next = async (): Promise<Uint8Array | null> => {
    while (queue.length === 0) await (waiter ??= Promise.withResolvers()).promise;
    const item = queue[0];
    if (item === null) return null; // the end stays the end
    if (item instanceof Error) throw item; // as does a failure
    queue.shift();
    return item;
  };
  const source: ByteSource = {
    read: next,
    async readInto(buffer) {
      const chunk = await next();
      if (chunk === null) return null;
      const n = Math.min(chunk.length, buffer.length);
      buffer.set(chunk.subarray(0, n));
      if (n < chunk.length) queue.unshift(chunk.subarray(n));
      return n;
    },
    cancelRead(reason) {
      state.cancelled = true;
      state.reason = reason;
    },
  };
  return {
    source,
    state,
    push: (...bytes: number[]) => (queue.push(new Uint8Array(bytes)), wake()),
    end: () => (queue.push(null), wake()),
    fail: (err: Error) => (queue.push(err), wake()),
  };
}

Deno.test("ByteReader.readExactly: bytes within one chunk come back as a view of that chunk", async () => {
  const { source, arrays } = chunks([1, 2, 3, 4, 5, 6]);
  const reader = new ByteReader(source);
  const first = await reader.readExactly(2); // the chunk's first bytes, straight off the source
  const second = await reader.readExactly(3); // from what is buffered
  assertEquals(list(first), [1, 2]);
  assertEquals(list(second), [3, 4, 5]);
  for (const [view, offset] of [[first, 0], [second, 2]] as const) {
    if (view.buffer !== arrays[0].buffer || view.byteOffset !== offset) {
      throw new Error(`expected a view at offset ${offset} of the source chunk, got a copy`);
    }
  }
  assertEquals(reader.buffered, 1);
});

Deno.test("ByteReader.readExactly: bytes across separate chunks come back as one fresh copy", async () => {
  const { source, arrays } = chunks([1, 2], [3], [], [4, 5, 6]);
  const reader = new ByteReader(source);
  const got = await reader.readExactly(5);
  assertEquals(list(got), [1, 2, 3, 4, 5]);
  if (arrays.some((a) => a.buffer === got.buffer)) throw new Error("expected a copy");
  assertEquals(list(await reader.readExactly(1)), [6]);
  assertEquals(await reader.readSome(), undefined);
});

Deno.test("ByteReader.readExactly: chunks adjacent in one buffer are joined without a copy", async () => {
  const backing = new Uint8Array([9, 1, 2, 3, 4, 5, 6, 9]);
  const parts = [backing.subarray(1, 3), backing.subarray(3, 4), backing.subarray(4, 7)];
  const reader = new ByteReader({
    read: () => Promise.resolve(parts.shift() ?? null),
    readInto: () => Promise.reject(new Error("not used")),
    cancelRead: () => {},
  });
  const got = await reader.readExactly(5);
  assertEquals(list(got), [1, 2, 3, 4, 5]);
  assert(got.buffer === backing.buffer && got.byteOffset === 1, "a view of the shared buffer");
  assertEquals(list(await reader.readExactly(1)), [6]);
});

Deno.test("ByteReader.readExactly: a frame split across two socket reads is one view of the slab", async () => {
  const [a, b] = memoryPair();
  const reader = new ByteReader(b);
  const turn = () => new Promise((resolve) => setTimeout(resolve, 10));
  // The connection's first read has a slab of its own; the next ones share one.
  a.write(new Uint8Array([0xff]));
  assertEquals(list(await reader.readExactly(1)), [0xff]);
  const data = new Uint8Array(300).map((_, i) => i & 0xff);
  a.write(data.subarray(0, 100));
  await turn(); // a separate socket write, so a separate read
  a.write(data.subarray(100));
  const got = await reader.readExactly(300);
  assertEquals(list(got), list(data));
  // Both reads landed one after the other in the connection's slab: joined, not copied.
  assert(got.buffer.byteLength > 300, `a view of the slab, not a copy (${got.buffer.byteLength})`);
  a.abort();
  b.abort();
});

Deno.test("ByteReader.readExactly(0) returns no bytes without waiting for the source", async () => {
  const source = controlled();
  const reader = new ByteReader(source.source);
  assertEquals(list(await reader.readExactly(0)), []);
  reader.cancelRead();
});

Deno.test("ByteReader.readExactly: the source ending first is CONNECTION_CLOSED", async () => {
  const reader = new ByteReader(chunks([1, 2], [3]).source);
  const err = await assertRejectsCode(reader.readExactly(4), "CONNECTION_CLOSED");
  if (!err.message.includes("3 of 4")) {
    throw new Error(`message should say how far: ${err.message}`);
  }
  await assertRejectsCode(new ByteReader(chunks().source).readExactly(1), "CONNECTION_CLOSED");
});

Deno.test("ByteReader: a source error is CONNECTION_RESET, keeping the cause", async () => {
  const source = controlled();
  const reader = new ByteReader(source.source);
  source.push(1);
  const pending = reader.readExactly(3);
  const boom = new Error("peer aborted");
  source.fail(boom);
  const err = await assertRejectsCode(pending, "CONNECTION_RESET");
  if (err.cause !== boom) throw new Error("the source's error should be the cause");
});

Deno.test("ByteReader: a NetworkError from the source passes through unchanged", async () => {
  const source = controlled();
  const reader = new ByteReader(source.source);
  const original = new NetworkError("TIMEOUT", "keepalive missed");
  source.fail(original);
  const err = await assertRejectsCode(reader.readSome(), "TIMEOUT");
  if (err !== original) throw new Error("expected the same error object");
});

Deno.test("ByteReader.readSome: buffered bytes first, else the next chunk, up to max; undefined at end", async () => {
  const { source, arrays } = chunks([1, 2, 3, 4], [5, 6]);
  const reader = new ByteReader(source);
  const a = await reader.readSome(3);
  assertEquals(list(a), [1, 2, 3]);
  if (a!.buffer !== arrays[0].buffer) throw new Error("readSome should return a view");
  // One byte is buffered: readSome returns it rather than waiting for more.
  assertEquals(list(await reader.readSome(10)), [4]);
  assertEquals(list(await reader.readSome()), [5, 6]);
  assertEquals(await reader.readSome(), undefined);
  assertEquals(await reader.readSome(), undefined);
});

Deno.test("ByteReader.readSome waits for data rather than returning an empty array", async () => {
  const source = controlled();
  const reader = new ByteReader(source.source);
  const pending = reader.readSome();
  source.push(); // an empty chunk is not data
  source.push(7, 8);
  assertEquals(list(await pending), [7, 8]);
  source.end();
  assertEquals(await reader.readSome(), undefined);
});

Deno.test("ByteReader.readVarint: decodes varints split at every chunk boundary", async () => {
  await fc.assert(
    fc.asyncProperty(
      fc.array(fc.maxSafeNat(), { minLength: 1, maxLength: 8 }),
      fc.array(fc.integer({ min: 1, max: 5 }), { minLength: 1, maxLength: 40 }),
      async (values, cuts) => {
        const all = values.flatMap((v) => [...encodeVarint(v)]);
        const parts: number[][] = [];
        for (let i = 0, c = 0; i < all.length; c++) {
          const size = cuts[c % cuts.length];
          parts.push(all.slice(i, i + size));
          i += size;
        }
        const reader = new ByteReader(chunks(...parts).source);
        for (const v of values) assertEquals(await reader.readVarint(), v);
        assertEquals(await reader.readSome(), undefined);
      },
    ),
    { numRuns: 200 },
  );
});

Deno.test("ByteReader.readVarint: the spec's bounds hold on a stream too", async () => {
  await assertRejectsCode(
    new ByteReader(chunks([0x80], [0x00]).source).readVarint(),
    "PROTOCOL_VIOLATION",
  );
  const tooLong = new Array(10).fill(0x80);
  await assertRejectsCode(
    new ByteReader(chunks(tooLong).source).readVarint(),
    "PROTOCOL_VIOLATION",
  );
  await assertRejectsCode(
    new ByteReader(chunks([0xac], [0x02]).source).readVarint(299),
    "FRAME_TOO_LARGE",
  );
  assertEquals(await new ByteReader(chunks([0xac], [0x02]).source).readVarint(300), 300);
  await assertRejectsCode(
    new ByteReader(chunks([0x80, 0x80]).source).readVarint(),
    "CONNECTION_CLOSED",
  );
});

Deno.test("ByteReader.readVarint refuses an oversized length before its last byte arrives", async () => {
  const source = controlled();
  const reader = new ByteReader(source.source);
  source.push(0xff, 0xff); // already more than 1024, with more bytes promised
  await assertRejectsCode(reader.readVarint(1024), "FRAME_TOO_LARGE");
  reader.cancelRead();
});

// --- the reader as a ByteSource ---

Deno.test("ByteReader.read: the buffered bytes first (as a view), then the source's chunks, null at the end", async () => {
  const { source, arrays } = chunks([1, 2, 3, 4, 5], [6], [7, 8]);
  const reader = new ByteReader(source);
  assertEquals(list(await reader.readExactly(2)), [1, 2]);
  const buffered = await reader.read();
  assertEquals(list(buffered), [3, 4, 5]);
  assert(buffered!.buffer === arrays[0].buffer, "the buffered bytes are not copied");
  assertEquals(reader.buffered, 0);
  const next = await reader.read();
  assert(next === arrays[1], "then the source's chunk itself");
  assertEquals(list(await reader.read()), [7, 8]);
  assertEquals(await reader.read(), null);
  assertEquals(await reader.read(), null);
});

Deno.test("ByteReader.readInto: buffered bytes first, at most the buffer's length, then the source", async () => {
  const { source } = chunks([1, 2, 3, 4, 5, 6], [7, 8, 9]);
  const reader = new ByteReader(source);
  assertEquals(list(await reader.readExactly(1)), [1]);
  const buffer = new Uint8Array(3);
  assertEquals(await reader.readInto(buffer), 3);
  assertEquals(list(buffer), [2, 3, 4]);
  assertEquals(reader.buffered, 2);
  assertEquals(await reader.readInto(buffer), 2, "what is buffered, without waiting for more");
  assertEquals(list(buffer.subarray(0, 2)), [5, 6]);
  assertEquals(await reader.readInto(buffer), 3, "then the source fills the buffer");
  assertEquals(list(buffer), [7, 8, 9]);
  assertEquals(await reader.readInto(buffer), null);
});

Deno.test("ByteReader.cancelRead drops what is buffered and cancels the source's reading", async () => {
  const { source, state } = chunks([1, 2, 3, 4]);
  const reader = new ByteReader(source);
  await reader.readExactly(1);
  assertEquals(reader.buffered, 3);
  reader.cancelRead("bye");
  assertEquals(reader.buffered, 0);
  assertEquals([state.cancelled, state.reason], [true, "bye"]);
});

// --- handOff ---

const text = (s: string) => new TextEncoder().encode(s);
const bytes = (...values: number[]) => new Uint8Array(values);
const str = (b: Uint8Array) => new TextDecoder().decode(b);

Deno.test("ByteReader.handOff with nothing buffered returns the connection itself", async () => {
  const [a, b] = memoryPair();
  a.write(text("hello"));
  await a.closeWrite();
  const reader = new ByteReader(b);
  assertEquals(str(await reader.readExactly(5)), "hello");
  assertEquals(reader.buffered, 0);
  assert(reader.handOff(b) === b, "expected the connection itself");
  assertEquals(await b.read(), null);
  await b.close();
  await a.close();
});

Deno.test("ByteReader.handOff yields the buffered bytes first, then the rest of the connection", async () => {
  const [a, b] = memoryPair();
  a.write(text("hello world")); // one socket write: the reader gets it in one read
  const reader = new ByteReader(b);
  assertEquals(str(await reader.readExactly(5)), "hello");
  assertEquals(reader.buffered, 6);
  const next = reader.handOff(b);
  assert(next !== b, "the buffered bytes would be lost");
  a.write(text(", again"));
  await a.closeWrite();
  assertEquals(str(await readAllFrom(next)), " world, again");
  await Promise.all([next.close(), a.close()]);
});

Deno.test("ByteReader.handOff: the handed-off connection's readable yields the buffered bytes first", async () => {
  const [a, b] = memoryPair();
  a.write(text("abcdef"));
  const reader = new ByteReader(b);
  assertEquals(str(await reader.readExactly(2)), "ab");
  const next = reader.handOff(b);
  a.write(text("gh"));
  await a.closeWrite();
  const parts: string[] = [];
  for await (const chunk of next.readable) parts.push(str(chunk));
  assertEquals(parts.join(""), "cdefgh");
  assertEquals(parts[0], "cdef", "the buffered bytes come as they were buffered");
  await Promise.all([next.close(), a.close()]);
});

Deno.test("ByteReader.handOff: readInto reads the buffered bytes first", async () => {
  const [a, b] = memoryPair();
  a.write(text("12345"));
  const reader = new ByteReader(b);
  await reader.readExactly(1);
  const next = reader.handOff(b);
  const buffer = new Uint8Array(10);
  assertEquals(await next.readInto(buffer), 4);
  assertEquals(str(buffer.subarray(0, 4)), "2345");
  a.write(text("678"));
  assertEquals(await next.readInto(buffer), 3);
  assertEquals(str(buffer.subarray(0, 3)), "678");
  a.abort();
  next.abort();
});

Deno.test("ByteReader.handOff: writes, addresses and the lifecycle are the connection's", async () => {
  const [a, b] = memoryPair();
  a.write(text("xyz"));
  const reader = new ByteReader(b);
  await reader.readExactly(1);
  const next = reader.handOff(b);
  assert(next.localAddr.equals(b.localAddr) && next.remoteAddr.equals(b.remoteAddr), "addresses");
  assert(next.closed === b.closed, "closed is the connection's");
  // Writes go down the connection.
  await next.write(text("reply"));
  await next.closeWrite();
  assertEquals(str(await readAllFrom(a)), "reply");
  await assertRejectsCode(Promise.resolve().then(() => b.write(text("more"))), "CONNECTION_CLOSED");
  // abort() aborts the connection under it.
  next.abort(new NetworkError("PROTOCOL_VIOLATION", "bad frame"));
  await b.closed;
  await assertRejectsCode(b.read(), "PROTOCOL_VIOLATION");
  await a.close();
});

Deno.test("ByteReader.handOff: close() closes the connection under it, gracefully", async () => {
  const [a, b] = memoryPair({ closeGracePeriod: 60_000 });
  a.write(text("ab"));
  const reader = new ByteReader(b);
  await reader.readExactly(1);
  const next = reader.handOff(b);
  next.write(text("bye"));
  const closing = next.close();
  assertEquals(str(await readAllFrom(a)), "bye", "the peer reads what was written, then the end");
  await a.closeWrite();
  assertEquals(str(await readAllFrom(next)), "b");
  await closing;
  await b.closed;
  await a.close();
});

Deno.test("ByteReader.handOff: a failure of the connection reaches the next layer's read", async () => {
  const [a, b] = memoryPair();
  a.write(text("12"));
  const reader = new ByteReader(b);
  await reader.readExactly(1);
  const next = reader.handOff(b);
  assertEquals(str((await next.read())!), "2");
  const pending = next.read();
  a.abort();
  await assertRejectsCode(pending, "CONNECTION_RESET");
  await b.closed;
});

Deno.test("ByteReader.handOff: cancelRead on the next layer cancels the reader's source", async () => {
  const { source, state } = chunks([1, 2, 3]);
  const reader = new ByteReader(source);
  await reader.readExactly(1);
  const [x, y] = memoryPair();
  const next = reader.handOff(x); // reads through the reader, writes and closes through x
  next.cancelRead("done");
  assertEquals([state.cancelled, state.reason], [true, "done"]);
  assertEquals(reader.buffered, 0, "what was buffered is dropped");
  x.abort();
  y.abort();
  await x.closed;
});

// --- reuseBuffer ---

/**
 * A source whose owner fills callers' buffers (as a socket does):
 * `readInto` copies at most `maxRead` bytes of `data` per call (`read`
 * hands out as much in a fresh array), then ends or fails.
 */
function fillingSource(data: Uint8Array, maxRead: number, failAtEnd?: Error) {
  let at = 0;
  const reads: number[] = [];
  const readInto = (buffer: Uint8Array): Promise<number | null> => {
    if (at === data.length) return failAtEnd ? Promise.reject(failAtEnd) : Promise.resolve(null);
    const n = Math.min(maxRead, buffer.length, data.length - at);
    buffer.set(data.subarray(at, at + n));
    at += n;
    reads.push(n);
    return Promise.resolve(n);
  };
  const source: ByteSource = {
    read: async () => {
      const buffer = new Uint8Array(maxRead);
      const n = await readInto(buffer);
      return n === null ? null : buffer.subarray(0, n);
    },
    readInto,
    cancelRead: () => {},
  };
  return { source, reads };
}

/** `count` length-prefixed records of varied sizes, and the records themselves. */
function records(count: number): { wire: Uint8Array; bodies: Uint8Array[] } {
  const bodies: Uint8Array[] = [];
  let total = 0;
  for (let i = 0; i < count; i++) {
    const body = new Uint8Array(1 + (i * 7919) % 5000).map((_, j) => (i * 31 + j) & 0xff);
    bodies.push(body);
    total += 2 + body.length;
  }
  const wire = new Uint8Array(total);
  let at = 0;
  for (const body of bodies) {
    wire[at] = body.length >> 8;
    wire[at + 1] = body.length & 0xff;
    wire.set(body, at + 2);
    at += 2 + body.length;
  }
  return { wire, bodies };
}

Deno.test("reuseBuffer: records read through one reused buffer arrive intact", async () => {
  const { wire, bodies } = records(300);
  // Reads of 3 001 bytes split records and headers everywhere; a 16 KiB
  // buffer forces many moves of a partial record to the front.
  const { source } = fillingSource(wire, 3001);
  const reader = new ByteReader(source);
  reader.reuseBuffer(16 * 1024);
  const buffers = new Set<ArrayBufferLike>();
  for (const body of bodies) {
    const header = await reader.readExactly(2);
    const length = (header[0] << 8) | header[1];
    const got = await reader.readExactly(length);
    buffers.add(got.buffer);
    assertEquals(list(got), list(body));
  }
  assertEquals(await reader.readSome(), undefined);
  // 4 KiB, grown to 8 and then 16 KiB: never a buffer per read.
  assertEquals(
    [...buffers].map((b) => b.byteLength),
    [4 * 1024, 8 * 1024, 16 * 1024],
    "every record is a view of the reused buffer",
  );
});

Deno.test("reuseBuffer: a read larger than the buffer grows it once", async () => {
  const big = new Uint8Array(10_000).map((_, i) => i & 0xff);
  const { source } = fillingSource(big, 4096);
  const reader = new ByteReader(source);
  reader.reuseBuffer(1024);
  assertEquals(list(await reader.readExactly(10)), list(big.subarray(0, 10)));
  assertEquals(list(await reader.readExactly(9_000)), list(big.subarray(10, 9_010)));
  assertEquals(list(await reader.readSome()), list(big.subarray(9_010)));
});

Deno.test("reuseBuffer: bytes buffered before the switch are read first", async () => {
  const data = new Uint8Array(100).map((_, i) => i);
  const { source, reads } = fillingSource(data, 64);
  const reader = new ByteReader(source);
  // A varint read before the switch buffers the whole first read.
  assertEquals(await reader.readVarint(), 0);
  assertEquals(reads, [64]);
  reader.reuseBuffer(32);
  assertEquals(list(await reader.readExactly(99)), list(data.subarray(1)));
});

Deno.test("reuseBuffer: the end inside a read is CONNECTION_CLOSED, a failure CONNECTION_RESET", async () => {
  const short = new ByteReader(fillingSource(new Uint8Array(5), 5).source);
  short.reuseBuffer();
  await assertRejectsCode(() => short.readExactly(6), "CONNECTION_CLOSED");
  const failing = new ByteReader(fillingSource(new Uint8Array(5), 5, new Error("reset")).source);
  failing.reuseBuffer();
  assertEquals((await failing.readExactly(5)).length, 5);
  await assertRejectsCode(() => failing.readSome(), "CONNECTION_RESET");
});

Deno.test("reuseBuffer: the buffer starts small and doubles, up to its limit, while reads fill it", async () => {
  const data = new Uint8Array(4 * 1024 * 1024).map((_, i) => (i * 13) & 0xff);
  const { source } = fillingSource(data, 1024 * 1024);
  const reader = new ByteReader(source);
  reader.reuseBuffer(128 * 1024);
  const sizes: number[] = [];
  for (let at = 0; at < data.length; at += 1000) {
    const got = await reader.readExactly(Math.min(1000, data.length - at));
    if (sizes.at(-1) !== got.buffer.byteLength) sizes.push(got.buffer.byteLength);
    assertEquals(got[0], data[at]);
  }
  assertEquals(sizes, [4 * 1024, 8 * 1024, 16 * 1024, 32 * 1024, 64 * 1024, 128 * 1024]);
});

Deno.test("reuseBuffer over a socket connection: reads land in the reader's buffer, records intact", async () => {
  const { wire, bodies } = records(300);
  const [a, b] = memoryPair();
  const writing = (async () => {
    // Writes of odd sizes in separate turns: socket reads split records everywhere.
    for (let at = 0; at < wire.length; at += 7001) {
      await a.write(wire.slice(at, at + 7001));
      await new Promise((resolve) => setTimeout(resolve, 0));
    }
    await a.closeWrite();
  })();
  const reader = new ByteReader(b);
  reader.reuseBuffer(16 * 1024);
  const buffers = new Set<ArrayBufferLike>();
  for (const body of bodies) {
    const header = await reader.readExactly(2);
    const got = await reader.readExactly((header[0] << 8) | header[1]);
    buffers.add(got.buffer);
    assertEquals(list(got), list(body));
  }
  assertEquals(await reader.readSome(), undefined);
  await writing;
  // readInto into one buffer (grown 4 -> 8 -> 16 KiB), never the connection's slab.
  assertEquals([...buffers].map((x) => x.byteLength), [4 * 1024, 8 * 1024, 16 * 1024]);
  await Promise.all([a.close(), b.close()]);
});

Deno.test("reuseBuffer: views are reused, read() hands out copies that later reads leave intact", async () => {
  const [a, b] = memoryPair();
  const reader = new ByteReader(b);
  reader.reuseBuffer(16); // one 16-byte buffer, never grown
  const first = new Uint8Array(16).map((_, i) => i + 1);
  a.write(first);
  assertEquals(list(await reader.readExactly(1)), [1]);
  const copy = await reader.read(); // the 15 bytes buffered, as a copy
  assertEquals(list(copy), list(first.subarray(1)));
  a.write(new Uint8Array(16).fill(0xee));
  const view = await reader.readExactly(16); // fills the whole reused buffer again
  assert(view.every((x) => x === 0xee));
  assertEquals(list(copy), list(first.subarray(1)), "the copy is not overwritten by later reads");
  a.write(bytes(9));
  const fresh = await reader.read(); // nothing buffered: read from the source, copied
  assertEquals(list(fresh), [9]);
  assert(fresh!.buffer !== view.buffer, "read() never returns the reused buffer");
  await a.closeWrite();
  assertEquals(await reader.read(), null);
  await Promise.all([a.close(), b.close()]);
});

Deno.test("readFully fills the buffer across chunks (a copy), leaves the rest buffered, and fails CONNECTION_CLOSED at an early end", async () => {
  const { source, arrays } = chunks([1, 2], [3, 4, 5], [6]);
  const reader = new ByteReader(source);
  assertEquals(list(await reader.readSome(1)), [1]);
  const buffer = new Uint8Array(3);
  await reader.readFully(buffer); // 2 buffered, then the next chunk
  assertEquals([...buffer], [2, 3, 4]);
  arrays[1].fill(0);
  assertEquals([...buffer], [2, 3, 4], "a copy, not a view");
  assertEquals(reader.buffered, 1);
  await assertRejectsCode(() => reader.readFully(new Uint8Array(3)), "CONNECTION_CLOSED");
});

Deno.test("tryReadVarint and tryReadFully take only what is buffered whole, consuming nothing otherwise", async () => {
  // A varint of 300 (0xac 0x02) split across chunks, then 3 bytes, then 2 of 4.
  const { source } = chunks([0xac], [0x02, 7, 8, 9], [1, 2]);
  const reader = new ByteReader(source);
  assertEquals(reader.tryReadVarint(), undefined, "nothing buffered yet");
  await reader.atEnd(); // buffers the first chunk: half a varint
  assertEquals([reader.tryReadVarint(), reader.buffered], [undefined, 1], "half a varint stays");
  assertEquals(await reader.readVarint(), 300);
  const three = new Uint8Array(3);
  assert(reader.tryReadFully(three));
  assertEquals([...three], [7, 8, 9]);
  await reader.atEnd();
  const four = new Uint8Array(4);
  assert(!reader.tryReadFully(four), "2 of 4 buffered");
  assertEquals(reader.buffered, 2);
  await assertRejectsCode(() => reader.readFully(four), "CONNECTION_CLOSED");
});

Deno.test("tryReadVarint enforces the bound and minimal encoding as readVarint does", async () => {
  const { source } = chunks([...encodeVarint(1000)], [0x80, 0x00]);
  const reader = new ByteReader(source);
  await reader.atEnd();
  let error: unknown;
  try {
    reader.tryReadVarint(999);
  } catch (err) {
    error = err;
  }
  assert(NetworkError.is(error, "FRAME_TOO_LARGE"), String(error));
  const again = new ByteReader(chunks([0x80, 0x00]).source);
  await again.atEnd();
  try {
    again.tryReadVarint();
    error = undefined;
  } catch (err) {
    error = err;
  }
  assert(NetworkError.is(error, "PROTOCOL_VIOLATION"), String(error));
});
