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
import { memoryPair } from "./_pair.ts";
import { duplexPair } from "./_pipe.ts";

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

Deno.test("duplexPair carries and records each write; memoryPair connects /memory/1 to remoteAddr", async () => {
  const { a, b, aToB } = duplexPair();
  const writer = a.writable.getWriter();
  const chunk = fromHex("0102");
  await writer.write(chunk);
  await writer.close();
  assertEquals(await readAll(b.readable), fromHex("0102"));
  chunk[0] = 9; // the writer reuses its buffer: the record is a copy
  assertEquals(aToB, [fromHex("0102")]);

  const [x, y] = memoryPair({ bufferSize: undefined, remoteAddr: "/memory/5" });
  assertEquals([x.remoteAddr.toString(), y.remoteAddr.toString()], ["/memory/5", "/memory/1"]);
  const w = x.writable.getWriter();
  await w.write(new Uint8Array(1024));
  await w.close();
  assertEquals((await readAll(y.readable)).length, 1024);
  await Promise.all([x.close(), y.close()]);
});
