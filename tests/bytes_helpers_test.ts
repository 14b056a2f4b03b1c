/** The shared byte helpers: equality, and one character per byte at any length. */

import { assert, assertEquals } from "./_assert.ts";
import { BufferPool, equalBytes, latin1 } from "../netcore/_bytes.ts";

Deno.test("equalBytes: same bytes, different lengths, one byte off", () => {
  assert(equalBytes(new Uint8Array([1, 2, 3]), Uint8Array.of(1, 2, 3)));
  assert(equalBytes(new Uint8Array(0), new Uint8Array(0)));
  assert(!equalBytes(Uint8Array.of(1, 2), Uint8Array.of(1, 2, 3)));
  assert(!equalBytes(Uint8Array.of(1, 2, 3), Uint8Array.of(1, 2, 4)));
});

Deno.test("latin1: one character per byte, code = byte, also past one apply() chunk", () => {
  for (const length of [0, 1, 255, 4096, 4097, 10_000]) {
    const bytes = new Uint8Array(length).map((_, i) => (i * 7) & 0xff);
    const text = latin1(bytes);
    assertEquals(text.length, length);
    for (let i = 0; i < length; i++) {
      if (text.charCodeAt(i) !== bytes[i]) throw new Error(`length ${length}: char ${i} differs`);
    }
  }
  assertEquals(latin1(new TextEncoder().encode("/ipfs/ping/1.0.0")), "/ipfs/ping/1.0.0");
});

Deno.test("BufferPool: a buffer given back is taken again for any length it fits; others are made", () => {
  const pool = new BufferPool(4, 1024);
  const a = pool.take(100);
  assertEquals(a.length, 100);
  assertEquals(a.buffer.byteLength, 1024, "at least minSize");
  pool.give(a);
  assert(pool.take(1000).buffer === a.buffer, "reused");
  const b = pool.take(5000);
  assertEquals(b.buffer.byteLength, 5000);
  // A view the pool did not make is ignored.
  pool.give(new Uint8Array(8192));
  assert(pool.take(2000).buffer !== b.buffer);
});

Deno.test("BufferPool keeps at most maxKept buffers and maxBytes bytes of them", () => {
  const byCount = new BufferPool(2, 16);
  const made = [byCount.take(16), byCount.take(16), byCount.take(16)];
  for (const view of made) byCount.give(view);
  const again = [byCount.take(16), byCount.take(16), byCount.take(16)];
  assertEquals(again.filter((v) => made.some((m) => m.buffer === v.buffer)).length, 2);

  const byBytes = new BufferPool(10, 1000, 2500);
  const big = [byBytes.take(1000), byBytes.take(1000), byBytes.take(1000)];
  for (const view of big) byBytes.give(view);
  const reused = [byBytes.take(1000), byBytes.take(1000), byBytes.take(1000)];
  assertEquals(reused.filter((v) => big.some((m) => m.buffer === v.buffer)).length, 2);
  // Taking a kept buffer frees its part of the budget.
  const first = reused.find((v) => big.some((m) => m.buffer === v.buffer))!;
  byBytes.give(first);
  assert(byBytes.take(900).buffer === first.buffer);
});
