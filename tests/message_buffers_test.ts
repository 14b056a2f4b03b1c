// The receiver's message buffers (protocols/_message_buffers.ts): small
// messages share blocks without overlapping, large ones come back after
// release().

import { MessageBuffers, SMALL_BLOCK, SMALL_MESSAGE_MAX } from "../protocols/_message_buffers.ts";
import { assert, assertEquals } from "./_assert.ts";

Deno.test("small messages are disjoint views of shared blocks, never crossing a block's end", () => {
  const buffers = new MessageBuffers(1 << 20);
  const taken: Uint8Array[] = [];
  // Lengths 0..128, over and over: many blocks, every kind of boundary.
  for (let i = 0; i < 2000; i++) {
    const length = i % (SMALL_MESSAGE_MAX + 1);
    const { bytes, release } = buffers.take(length);
    assertEquals(bytes.length, length);
    assert(bytes.byteOffset + bytes.length <= SMALL_BLOCK);
    assertEquals(bytes.buffer.byteLength, SMALL_BLOCK);
    release(); // does nothing for a small message: its bytes stay
    bytes.fill(i & 0xff);
    taken.push(bytes);
  }
  // Each kept its own bytes: no two views overlap.
  taken.forEach((bytes, i) => assert(bytes.every((b) => b === (i & 0xff)), `message ${i}`));
  const blocks = new Set(taken.map((bytes) => bytes.buffer));
  assert(blocks.size > 1 && blocks.size < taken.length / 10, `${blocks.size} blocks`);
});

Deno.test("a message over the small size has a buffer of its own; a large one's comes back after release", () => {
  const buffers = new MessageBuffers(1 << 20);
  const medium = buffers.take(SMALL_MESSAGE_MAX + 1).bytes;
  assertEquals([medium.byteOffset, medium.buffer.byteLength], [0, SMALL_MESSAGE_MAX + 1]);
  const first = buffers.take(100_000);
  const buffer = first.bytes.buffer;
  first.release();
  first.release(); // a second release does nothing
  assertEquals(buffers.take(70_000).bytes.buffer, buffer, "the 128 KiB buffer again");
  assert(buffers.take(70_000).bytes.buffer !== buffer, "given out once");
});
