/**
 * The shared test helpers fail where the per-file helpers they replaced
 * failed: an assertion that cannot fail would hide every bug it is meant to
 * catch.
 */

import { AssertionError } from "node:assert";
import { NetworkError } from "../netcore/network_error.ts";
import {
  assert,
  assertEquals,
  assertNotEquals,
  assertRejects,
  assertRejectsCode,
  assertThrows,
  assertThrowsCode,
} from "./_assert.ts";
import { concat, fromHex, readAll, toHex } from "./_bytes.ts";
import { msg } from "./_multistream.ts";
import { memoryPair, memorySocketPair, socketConnection } from "./_pair.ts";
import { recordingPair } from "./_pipe.ts";
import { echoThrough, readAllFrom, settlesWithin } from "./_streams.ts";

/** Fails unless `fn` throws an AssertionError whose message includes `includes`. */
function fails(fn: () => unknown, includes = ""): void {
  try {
    fn();
  } catch (err) {
    if (err instanceof AssertionError && err.message.includes(includes)) return;
    throw new Error(`expected an AssertionError including ${JSON.stringify(includes)}, got ${err}`);
  }
  throw new Error("expected an AssertionError, nothing was thrown");
}

/** The async form of {@linkcode fails}. */
async function failsAsync(fn: () => Promise<unknown>, includes = ""): Promise<void> {
  try {
    await fn();
  } catch (err) {
    if (err instanceof AssertionError && err.message.includes(includes)) return;
    throw new Error(`expected an AssertionError including ${JSON.stringify(includes)}, got ${err}`);
  }
  throw new Error("expected an AssertionError, nothing was thrown");
}

const closed = () => new NetworkError("CONNECTION_CLOSED", "closed");

Deno.test("assert and assertEquals: deep, strict, typed arrays by content and class", () => {
  assert(1);
  fails(() => assert(0, "the case"), "the case");
  assertEquals({ a: [1, { b: 2n }] }, { a: [1, { b: 2n }] });
  assertEquals(new Uint8Array([1, 2]).subarray(1), new Uint8Array([2]));
  fails(() => assertEquals(new Uint8Array([1, 2]), new Uint8Array([1, 3])));
  fails(() => assertEquals<unknown>(new Uint8Array([1]), [1]));
  fails(() => assertEquals({ a: undefined }, {}));
  fails(() => assertEquals<unknown>(1, "1"));
  fails(() => assertEquals(new Map([[1, 2]]), new Map([[1, 3]])));
  assertNotEquals([1], [2]);
  fails(() => assertNotEquals([1], [1]));
});

Deno.test("assertThrows and assertRejects check the class, the message and name the case", async () => {
  assertThrows(
    () => {
      throw new TypeError("bad name");
    },
    TypeError,
    "bad",
  );
  fails(() => assertThrows(() => {}, TypeError, undefined, "case 7"), "case 7");
  fails(() =>
    assertThrows(() => {
      throw new RangeError("x");
    }, TypeError)
  );
  fails(() =>
    assertThrows(
      () => {
        throw new TypeError("x");
      },
      TypeError,
      "y",
    )
  );
  await assertRejects(() => Promise.reject(new TypeError("x")), TypeError);
  await failsAsync(
    () => assertRejects(() => Promise.resolve(), undefined, undefined, "case 8"),
    "case 8",
  );
});

Deno.test("assertThrowsCode and assertRejectsCode accept only a NetworkError with a listed code", async () => {
  assertThrowsCode(() => {
    throw closed();
  }, "CONNECTION_CLOSED");
  assertThrowsCode(() => {
    throw closed();
  }, ["TIMEOUT", "CONNECTION_CLOSED"]);
  fails(() =>
    assertThrowsCode(
      () => {
        throw closed();
      },
      "TIMEOUT",
      "case 9",
    ), "case 9");
  fails(() =>
    assertThrowsCode(() => {
      throw new Error("CONNECTION_CLOSED");
    }, "CONNECTION_CLOSED")
  );
  fails(() => assertThrowsCode(() => {}, "CONNECTION_CLOSED"), "nothing was thrown");

  const err = await assertRejectsCode(Promise.reject(closed()), "CONNECTION_CLOSED");
  assertEquals(err.code, "CONNECTION_CLOSED");
  await assertRejectsCode(() => Promise.reject(closed()), "TIMEOUT", "CONNECTION_CLOSED");
  await failsAsync(() => assertRejectsCode(Promise.reject(closed()), "TIMEOUT"));
  await failsAsync(() => assertRejectsCode(Promise.resolve(), "CONNECTION_CLOSED"));
});

Deno.test("hex: round trips, spaces between digits allowed, anything else refused", () => {
  assertEquals(toHex(new Uint8Array([0, 0x0f, 0xff])), "000fff");
  assertEquals(fromHex("80 01"), new Uint8Array([0x80, 0x01]));
  assertEquals(fromHex("AbCd"), new Uint8Array([0xab, 0xcd]));
  assertEquals(fromHex(""), new Uint8Array(0));
  assertThrows(() => fromHex("abc"), Error, "not hex");
  assertThrows(() => fromHex("zz"), Error, "not hex");
});

Deno.test("concat joins in order; readAll joins a stream's chunks", async () => {
  assertEquals(
    concat([new Uint8Array([1]), new Uint8Array(0), new Uint8Array([2, 3])]),
    fromHex("010203"),
  );
  assertEquals(
    await readAll(ReadableStream.from([fromHex("01"), fromHex("0203")])),
    fromHex("010203"),
  );
});

Deno.test("msg frames a multistream line as the spec's own na example", () => {
  assertEquals(toHex(msg("na")), "036e610a");
  assertEquals(toHex(msg("x".repeat(127)).subarray(0, 2)), "8001");
});

Deno.test("recordingPair carries each write and records a copy of it, one entry per write call", async () => {
  const { a, b, aToB, bToA } = recordingPair();
  const chunk = fromHex("0102");
  assertEquals(a.write(chunk), undefined, "a small write is taken at once");
  chunk[0] = 9; // the writer reuses its buffer: the record is a copy
  await a.write(fromHex("03"));
  await a.closeWrite();
  assertEquals(await readAllFrom(b), fromHex("010203"));
  // Two writes of one turn leave in one socket write, but are recorded apart.
  assertEquals(aToB, [fromHex("0102"), fromHex("03")]);
  assertEquals(bToA, [], "only what b wrote is in bToA");
  await b.write(fromHex("04"));
  assertEquals(bToA, [fromHex("04")]);
  assertEquals(aToB.length, 2, "b's writes are not recorded as a's");
  a.abort();
  b.abort();
});

Deno.test("memoryPair connects /memory/1 to remoteAddr; undefined options keep the defaults", async () => {
  const [x, y] = memoryPair({
    bufferSize: undefined,
    closeGracePeriod: undefined,
    readChunkSize: undefined,
    remoteAddr: "/memory/5",
  });
  assertEquals([x.remoteAddr.toString(), y.remoteAddr.toString()], ["/memory/5", "/memory/1"]);
  assertEquals([x.localAddr.toString(), y.localAddr.toString()], ["/memory/1", "/memory/5"]);
  await x.write(new Uint8Array(1024));
  await x.closeWrite();
  assertEquals((await readAllFrom(y)).length, 1024);
  await y.closeWrite();
  assertEquals(await x.read(), null);
  await Promise.all([x.close(), y.close()]);
});

Deno.test("memorySocketPair and socketConnection: the connection writes through the socket given", async () => {
  const [s, t] = memorySocketPair({ bufferSize: 4 });
  const conn = socketConnection(s);
  assertEquals(conn.remoteAddr.toString(), t.localAddr);
  await conn.write(fromHex("0102030405"));
  await new Promise((resolve) => setTimeout(resolve, 10));
  // Only 4 bytes fit in the socket's buffer: the peer has not read them yet.
  assertEquals(s.bufferedOutbound, 4);
  const buffer = new Uint8Array(8);
  assertEquals(await t.read(buffer), 4);
  conn.abort();
  t.close();
});

Deno.test("readAllFrom joins every chunk until the end, and fails when the connection fails", async () => {
  const [a, b] = memoryPair();
  await a.write(fromHex("01"));
  await new Promise((resolve) => setTimeout(resolve, 1));
  await a.write(fromHex("0203"));
  await a.closeWrite();
  assertEquals(await readAllFrom(b), fromHex("010203"));
  const [c, d] = memoryPair();
  const reading = readAllFrom(d);
  await c.write(fromHex("01"));
  c.abort(new NetworkError("CONNECTION_RESET", "gone"));
  await assertRejectsCode(reading, "CONNECTION_RESET");
  a.abort();
  b.abort();
  d.abort();
});

Deno.test("echoThrough returns what came back, and fails when the connection fails", async () => {
  const data = fromHex("0102030405");
  // A faithful echo.
  const [a, b] = memoryPair();
  const echoing = (async () => {
    for (let chunk = await b.read(); chunk !== null; chunk = await b.read()) await b.write(chunk);
    await b.closeWrite();
  })();
  assertEquals(await echoThrough(a, data), data);
  await echoing;
  // A peer that answers something else: what it sent is what comes back.
  const [c, d] = memoryPair();
  const lying = (async () => {
    await readAllFrom(d);
    await d.write(fromHex("ff"));
    await d.closeWrite();
  })();
  assertEquals(await echoThrough(c, data), fromHex("ff"));
  await lying;
  // A peer that resets.
  const [e, f] = memoryPair();
  const resetting = (async () => {
    await f.read();
    f.abort(new NetworkError("CONNECTION_RESET", "gone"));
  })();
  await assertRejectsCode(echoThrough(e, data), "CONNECTION_RESET", "CONNECTION_CLOSED");
  await resetting;
  for (const conn of [a, b, c, d, e]) conn.abort();
});

Deno.test("settlesWithin: true for a promise that settles either way in time, false otherwise", async () => {
  assertEquals(await settlesWithin(Promise.resolve(), 50), true);
  assertEquals(await settlesWithin(Promise.reject(new Error("x")), 50), true);
  assertEquals(await settlesWithin(new Promise(() => {}), 20), false);
});
