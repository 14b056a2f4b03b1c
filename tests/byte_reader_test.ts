/**
 * ByteReader: reads in protocol units over a chunked stream, returns views
 * when it can, maps the end and failure of the stream to NetworkError codes,
 * and hands leftover bytes to the next layer on release().
 */

import fc from "fast-check";
import { ByteReader } from "../netcore/byte_reader.ts";
import { NetworkError } from "../netcore/network_error.ts";
import { encodeVarint } from "../netcore/varint.ts";
import { registerDirectSource } from "../netcore/transport/_direct.ts";
import { assertEquals, assertRejectsCode } from "./_assert.ts";

const list = (bytes: Uint8Array | undefined) => bytes === undefined ? undefined : [...bytes];

/** A stream that yields these chunks and then ends. */
function chunks(
  ...parts: number[][]
): { stream: ReadableStream<Uint8Array>; arrays: Uint8Array[] } {
  const arrays = parts.map((p) => new Uint8Array(p));
  return { stream: ReadableStream.from(arrays), arrays };
}

/** A stream under test control: push chunks, end it, fail it; records cancellation. */
function controlled() {
  let controller!: ReadableStreamDefaultController<Uint8Array>;
  const state: { cancelled: boolean; reason: unknown } = { cancelled: false, reason: undefined };
  const stream = new ReadableStream<Uint8Array>({
    start(c) {
      controller = c;
    },
    cancel(reason) {
      state.cancelled = true;
      state.reason = reason;
    },
  });
  return {
    stream,
    state,
    push: (...bytes: number[]) => controller.enqueue(new Uint8Array(bytes)),
    end: () => controller.close(),
    fail: (err: unknown) => controller.error(err),
  };
}

async function drain(stream: ReadableStream<Uint8Array>): Promise<number[][]> {
  const out: number[][] = [];
  for await (const chunk of stream) out.push([...chunk]);
  return out;
}

Deno.test("ByteReader.readExactly: bytes within one chunk come back as a view of that chunk", async () => {
  const { stream, arrays } = chunks([1, 2, 3, 4, 5, 6]);
  const reader = new ByteReader(stream);
  const first = await reader.readExactly(2); // the chunk's first bytes, straight off the stream
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

Deno.test("ByteReader.readExactly: bytes across chunks come back as one fresh copy", async () => {
  const { stream, arrays } = chunks([1, 2], [3], [], [4, 5, 6]);
  const reader = new ByteReader(stream);
  const got = await reader.readExactly(5);
  assertEquals(list(got), [1, 2, 3, 4, 5]);
  if (arrays.some((a) => a.buffer === got.buffer)) throw new Error("expected a copy");
  assertEquals(list(await reader.readExactly(1)), [6]);
  assertEquals(await reader.readSome(), undefined);
});

Deno.test("ByteReader.readExactly(0) returns no bytes without waiting for the stream", async () => {
  const source = controlled();
  const reader = new ByteReader(source.stream);
  assertEquals(list(await reader.readExactly(0)), []);
  await reader.cancel();
});

Deno.test("ByteReader.readExactly: the stream ending first is CONNECTION_CLOSED", async () => {
  const reader = new ByteReader(chunks([1, 2], [3]).stream);
  const err = await assertRejectsCode(reader.readExactly(4), "CONNECTION_CLOSED");
  if (!err.message.includes("3 of 4")) {
    throw new Error(`message should say how far: ${err.message}`);
  }
  await assertRejectsCode(new ByteReader(chunks().stream).readExactly(1), "CONNECTION_CLOSED");
});

Deno.test("ByteReader: a stream error is CONNECTION_RESET, keeping the cause", async () => {
  const source = controlled();
  const reader = new ByteReader(source.stream);
  source.push(1);
  const pending = reader.readExactly(3);
  const boom = new Error("peer aborted");
  source.fail(boom);
  const err = await assertRejectsCode(pending, "CONNECTION_RESET");
  if (err.cause !== boom) throw new Error("the stream's error should be the cause");
});

Deno.test("ByteReader: a NetworkError from the stream passes through unchanged", async () => {
  const source = controlled();
  const reader = new ByteReader(source.stream);
  const original = new NetworkError("TIMEOUT", "keepalive missed");
  source.fail(original);
  const err = await assertRejectsCode(reader.readSome(), "TIMEOUT");
  if (err !== original) throw new Error("expected the same error object");
});

Deno.test("ByteReader.readSome: buffered bytes first, else the next chunk, up to max; undefined at end", async () => {
  const { stream, arrays } = chunks([1, 2, 3, 4], [5, 6]);
  const reader = new ByteReader(stream);
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
  const reader = new ByteReader(source.stream);
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
        const reader = new ByteReader(chunks(...parts).stream);
        for (const v of values) assertEquals(await reader.readVarint(), v);
        assertEquals(await reader.readSome(), undefined);
      },
    ),
    { numRuns: 200 },
  );
});

Deno.test("ByteReader.readVarint: the spec's bounds hold on a stream too", async () => {
  await assertRejectsCode(
    new ByteReader(chunks([0x80], [0x00]).stream).readVarint(),
    "PROTOCOL_VIOLATION",
  );
  const tooLong = new Array(10).fill(0x80);
  await assertRejectsCode(
    new ByteReader(chunks(tooLong).stream).readVarint(),
    "PROTOCOL_VIOLATION",
  );
  await assertRejectsCode(
    new ByteReader(chunks([0xac], [0x02]).stream).readVarint(299),
    "FRAME_TOO_LARGE",
  );
  assertEquals(await new ByteReader(chunks([0xac], [0x02]).stream).readVarint(300), 300);
  await assertRejectsCode(
    new ByteReader(chunks([0x80, 0x80]).stream).readVarint(),
    "CONNECTION_CLOSED",
  );
});

Deno.test("ByteReader.readVarint refuses an oversized length before its last byte arrives", async () => {
  const source = controlled();
  const reader = new ByteReader(source.stream);
  source.push(0xff, 0xff); // already more than 1024, with more bytes promised
  await assertRejectsCode(reader.readVarint(1024), "FRAME_TOO_LARGE");
  await reader.cancel();
});

Deno.test("ByteReader.release with nothing buffered returns the source stream itself", async () => {
  const { stream } = chunks([1, 2], [3, 4]);
  const reader = new ByteReader(stream);
  assertEquals(list(await reader.readExactly(2)), [1, 2]);
  const released = reader.release();
  if (released !== stream) throw new Error("expected the original stream");
  assertEquals(await drain(released), [[3, 4]]);
});

Deno.test("ByteReader.release yields the buffered bytes first, then the rest of the source", async () => {
  const source = controlled();
  const reader = new ByteReader(source.stream);
  source.push(1, 2, 3, 4, 5);
  assertEquals(list(await reader.readExactly(2)), [1, 2]);
  assertEquals(reader.buffered, 3);
  const released = reader.release();
  if (released === source.stream) throw new Error("buffered bytes would be lost");
  source.push(6);
  source.push(7, 8);
  source.end();
  assertEquals(await drain(released), [[3, 4, 5], [6], [7, 8]]);
});

Deno.test("ByteReader.release: a source error reaches the next layer", async () => {
  const source = controlled();
  const reader = new ByteReader(source.stream);
  source.push(1, 2);
  await reader.readExactly(1);
  const next = reader.release().getReader();
  assertEquals(list((await next.read()).value), [2]);
  const boom = new Error("reset");
  source.fail(boom);
  let thrown: unknown;
  try {
    await next.read();
  } catch (err) {
    thrown = err;
  }
  if (thrown !== boom) throw new Error(`expected the source's error, got ${thrown}`);
});

Deno.test("ByteReader.release: cancelling the released stream cancels the source", async () => {
  const source = controlled();
  const reader = new ByteReader(source.stream);
  source.push(1, 2);
  await reader.readExactly(1);
  const released = reader.release();
  await released.cancel("done");
  assertEquals(source.state, { cancelled: true, reason: "done" });
});

Deno.test("ByteReader.release twice is a TypeError", () => {
  const reader = new ByteReader(chunks([1]).stream);
  reader.release();
  let thrown: unknown;
  try {
    reader.release();
  } catch (err) {
    thrown = err;
  }
  if (!(thrown instanceof TypeError)) throw new Error(`expected TypeError, got ${thrown}`);
});

Deno.test("ByteReader.cancel cancels the source and ends a pending read as CONNECTION_CLOSED", async () => {
  const source = controlled();
  const reader = new ByteReader(source.stream);
  const pending = reader.readExactly(4);
  await reader.cancel("bye");
  assertEquals(source.state, { cancelled: true, reason: "bye" });
  await assertRejectsCode(pending, "CONNECTION_CLOSED");
  await reader.cancel(); // a second cancel is harmless
});

/**
 * A stream whose owner fills callers' buffers (as a TCP connection does):
 * `readInto` copies at most `maxRead` bytes of `data` per call (`read` hands
 * out as much in a fresh array), then ends or fails.
 */
function fillingSource(data: Uint8Array, maxRead: number, failAtEnd?: Error) {
  let at = 0;
  const reads: number[] = [];
  const stream = new ReadableStream<Uint8Array>({
    pull(controller) {
      controller.error(new Error("the stream path must not be used once the side door is"));
    },
  });
  const readInto = (buffer: Uint8Array): Promise<number | undefined> => {
    if (at === data.length) {
      return failAtEnd ? Promise.reject(failAtEnd) : Promise.resolve(undefined);
    }
    const n = Math.min(maxRead, buffer.length, data.length - at);
    buffer.set(data.subarray(at, at + n));
    at += n;
    reads.push(n);
    return Promise.resolve(n);
  };
  registerDirectSource(stream, {
    read: async () => {
      const buffer = new Uint8Array(maxRead);
      const n = await readInto(buffer);
      return n === undefined ? undefined : buffer.subarray(0, n);
    },
    readInto,
  });
  return { stream, reads };
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
  const { stream } = fillingSource(wire, 3001);
  const reader = new ByteReader(stream);
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
  const { stream } = fillingSource(big, 4096);
  const reader = new ByteReader(stream);
  reader.reuseBuffer(1024);
  assertEquals(list(await reader.readExactly(10)), list(big.subarray(0, 10)));
  assertEquals(list(await reader.readExactly(9_000)), list(big.subarray(10, 9_010)));
  assertEquals(list(await reader.readSome()), list(big.subarray(9_010)));
});

Deno.test("reuseBuffer: bytes buffered before the switch are read first", async () => {
  const data = new Uint8Array(100).map((_, i) => i);
  const { stream, reads } = fillingSource(data, 64);
  const reader = new ByteReader(stream);
  // A varint read before the switch buffers the whole first read.
  assertEquals(await reader.readVarint(), 0);
  assertEquals(reads, [64]);
  reader.reuseBuffer(32);
  assertEquals(list(await reader.readExactly(99)), list(data.subarray(1)));
});

Deno.test("reuseBuffer: the end inside a read is CONNECTION_CLOSED, a failure CONNECTION_RESET", async () => {
  const short = new ByteReader(fillingSource(new Uint8Array(5), 5).stream);
  short.reuseBuffer();
  await assertRejectsCode(() => short.readExactly(6), "CONNECTION_CLOSED");
  const failing = new ByteReader(fillingSource(new Uint8Array(5), 5, new Error("reset")).stream);
  failing.reuseBuffer();
  assertEquals((await failing.readExactly(5)).length, 5);
  await assertRejectsCode(() => failing.readSome(), "CONNECTION_RESET");
});

Deno.test("reuseBuffer: over a source that cannot fill buffers, arrays stay the caller's", async () => {
  const { stream, arrays } = chunks([1, 2, 3], [4, 5]);
  const reader = new ByteReader(stream);
  reader.reuseBuffer();
  const first = await reader.readExactly(3);
  const second = await reader.readExactly(2);
  assertEquals(first.buffer, arrays[0].buffer);
  assertEquals(list(first), [1, 2, 3]);
  assertEquals(list(second), [4, 5]);
});

Deno.test("reuseBuffer: the buffer starts small and doubles, up to its limit, while reads fill it", async () => {
  const data = new Uint8Array(4 * 1024 * 1024).map((_, i) => (i * 13) & 0xff);
  const { stream } = fillingSource(data, 1024 * 1024);
  const reader = new ByteReader(stream);
  reader.reuseBuffer(128 * 1024);
  const sizes: number[] = [];
  for (let at = 0; at < data.length; at += 1000) {
    const got = await reader.readExactly(Math.min(1000, data.length - at));
    if (sizes.at(-1) !== got.buffer.byteLength) sizes.push(got.buffer.byteLength);
    assertEquals(got[0], data[at]);
  }
  assertEquals(sizes, [4 * 1024, 8 * 1024, 16 * 1024, 32 * 1024, 64 * 1024, 128 * 1024]);
});
