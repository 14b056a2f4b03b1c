// What memory costs here, the figures behind three choices the README
// explains (`deno bench --allow-read bench/alloc_bench.ts`):
//
// - small received messages as views of a shared 2 KiB block
//   (`protocols/_message_buffers.ts`) rather than an ArrayBuffer each;
// - node:crypto's output buffer per `update()` of a 64 KiB Noise message,
//   allocated alone (in a bulk transfer's process it costs several times
//   more: fresh memory under its garbage);
// - the priority benches writing their bulk message before sending it: the
//   first read of a buffer never written faults every page.

import { Buffer } from "node:buffer";

const SMALL = 64;
const BLOCK = 2048;
/** The plaintext of a full Noise message. */
const NOISE_PLAINTEXT = 65535 - 16;
const LARGE = 64 * 1024 * 1024;
const FRAME = 256 * 1024;

// Keep a few results alive so the allocations are not optimized away.
const kept: unknown[] = [];
function keep(value: unknown, i: number): void {
  if ((i & 255) === 0) kept.push(value);
  if (kept.length > 4096) kept.length = 0;
}

let i = 0;
Deno.bench({
  name: "a 64-byte message in an ArrayBuffer of its own",
  group: "small message",
  baseline: true,
  fn() {
    keep(new Uint8Array(SMALL), i++);
  },
});

let block = new ArrayBuffer(BLOCK);
let used = 0;
Deno.bench({
  name: "a 64-byte message as a view of a shared 2 KiB block",
  group: "small message",
  fn() {
    if (used + SMALL > BLOCK) {
      block = new ArrayBuffer(BLOCK);
      used = 0;
    }
    keep(new Uint8Array(block, used, SMALL), i++);
    used += SMALL;
  },
});

Deno.bench({
  name: "Buffer.allocUnsafe of a Noise message's plaintext (node:crypto's update() output)",
  group: "noise output",
  fn() {
    keep(Buffer.allocUnsafe(NOISE_PLAINTEXT), i++);
  },
});

const frame = new Uint8Array(FRAME);
/** Copies `source` into `frame` a frame at a time, as yamux does with a large write. */
function copyInFrames(source: Uint8Array): void {
  for (let at = 0; at < source.length; at += FRAME) {
    frame.set(source.subarray(at, Math.min(source.length, at + FRAME)));
  }
}

Deno.bench({
  name: "64 MiB copied into frames from a buffer never written",
  group: "64 MiB bulk message",
  baseline: true,
  n: 10,
  fn(b) {
    const message = new Uint8Array(LARGE);
    b.start();
    copyInFrames(message);
    b.end();
  },
});

Deno.bench({
  name: "64 MiB copied into frames from a buffer written first",
  group: "64 MiB bulk message",
  n: 10,
  fn(b) {
    const message = new Uint8Array(LARGE).fill(0x5a);
    b.start();
    copyInFrames(message);
    b.end();
  },
});
