/** The shared byte helpers: equality, and one character per byte at any length. */

import { assert, assertEquals } from "./_assert.ts";
import { equalBytes, latin1 } from "../netcore/_bytes.ts";

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
