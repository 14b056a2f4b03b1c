/**
 * Buffers kept for reuse go once their holder was idle for a whole interval,
 * and not while it keeps using them (`netcore/transport/_idle_release.ts`).
 */

import {
  forgetHolder,
  IDLE_RELEASE_INTERVAL,
  keptForReuse,
  releaseIdle,
} from "../netcore/transport/_idle_release.ts";
import { assertEquals } from "./_assert.ts";

class Holder {
  released = 0;
  [releaseIdle](): void {
    this.released++;
  }
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

Deno.test("idle release: a holder used once is released after one to two intervals, once", async () => {
  const holder = new Holder();
  keptForReuse(holder);
  await sleep(IDLE_RELEASE_INTERVAL / 2);
  assertEquals(holder.released, 0);
  await sleep(2 * IDLE_RELEASE_INTERVAL);
  assertEquals(holder.released, 1);
  await sleep(IDLE_RELEASE_INTERVAL);
  assertEquals(holder.released, 1, "released once, then forgotten");
});

Deno.test("idle release: a holder used within every interval keeps its buffers; a forgotten one is never called", async () => {
  const busy = new Holder();
  const forgotten = new Holder();
  keptForReuse(forgotten);
  forgetHolder(forgotten);
  for (let i = 0; i < 8; i++) {
    keptForReuse(busy);
    await sleep(IDLE_RELEASE_INTERVAL / 3);
  }
  assertEquals(busy.released, 0);
  assertEquals(forgotten.released, 0);
  await sleep(2.5 * IDLE_RELEASE_INTERVAL);
  assertEquals(busy.released, 1);
});
