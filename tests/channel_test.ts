/**
 * The bounded queues of `netcore/channel`: FIFO order (per key), round-robin
 * across keys (a flooding key cannot starve a quiet one), each drop policy
 * and its counter, the total bound (the longest key pays), backpressure that
 * wakes pushes in order, close and abort semantics, the metrics series, and
 * a fast-check property over random push/pop/abort sequences: per-key FIFO,
 * bounds never exceeded, every item accounted for exactly once, and
 * `enqueued = dequeued + dropped + depth` after every step.
 */

import fc from "fast-check";
import {
  BoundedQueue,
  type DropPolicy,
  KeyedQueue,
  type PushResult,
} from "../netcore/channel/mod.ts";
import { defaultRegistry, type Metrics, MetricsRegistry } from "../netcore/metrics.ts";
import { NetworkError } from "../netcore/network_error.ts";
import {
  assert,
  assertEquals,
  assertRejectsCode,
  assertThrows,
  assertThrowsCode,
} from "./_assert.ts";

/** A fresh scope with `network="test"` and a reader of its channel series. */
function testMetrics(): {
  metrics: Metrics;
  registry: MetricsRegistry;
  value(metric: string, labels: Record<string, string>): number;
  series(name: string): { depth: number; enqueued: number; dequeued: number; dropped: number };
} {
  const registry = new MetricsRegistry();
  const metrics = registry.scope({ network: "test" });
  const value = (metric: string, labels: Record<string, string>) => {
    const found = registry.find(`validator_network_channel_${metric}`);
    if (found === undefined) return 0;
    let sum = 0;
    for (const e of found.entries()) {
      if (Object.entries({ network: "test", ...labels }).every(([k, v]) => e.labels[k] === v)) {
        sum += e.value;
      }
    }
    return sum;
  };
  return {
    metrics,
    registry,
    value,
    series: (name) => ({
      depth: value("depth", { name }),
      enqueued: value("enqueued_total", { name }),
      dequeued: value("dequeued_total", { name }),
      dropped: value("dropped_total", { name }),
    }),
  };
}

/** Lets every settled promise's reactions run. */
async function settle(): Promise<void> {
  for (let i = 0; i < 5; i++) await Promise.resolve();
}

/** Records the order in which promises settle. */
function track<T>(order: string[], label: string, promise: Promise<T>): Promise<T> {
  return promise.then(
    (v) => {
      order.push(label);
      return v;
    },
    (err) => {
      order.push(`${label}!`);
      throw err;
    },
  );
}

// --- BoundedQueue ------------------------------------------------------------

Deno.test("BoundedQueue: FIFO, size, capacity, tryPush refuses when full", async () => {
  const { metrics } = testMetrics();
  const q = new BoundedQueue<number>(3, { name: "b", metrics });
  assertEquals(q.capacity, 3);
  assert(q.tryPush(1) && q.tryPush(2));
  await q.push(3);
  assertEquals(q.size, 3);
  assertEquals(q.tryPush(4), false, "full: refused, not waited");
  assertEquals([await q.pop(), await q.pop(), await q.pop()], [1, 2, 3]);
  assertEquals(q.size, 0);
});

Deno.test("BoundedQueue: a waiting pop takes the next push", async () => {
  const { metrics } = testMetrics();
  const q = new BoundedQueue<string>(1, { name: "b", metrics });
  const popped = q.pop();
  await q.push("x");
  assertEquals(await popped, "x");
  assertEquals(q.size, 0);
});

Deno.test("BoundedQueue: backpressure wakes waiting pushes in order", async () => {
  const { metrics } = testMetrics();
  const q = new BoundedQueue<string>(1, { name: "b", metrics });
  await q.push("a");
  const order: string[] = [];
  const pushes = ["b", "c", "d"].map((item) => track(order, item, q.push(item)));
  await settle();
  assertEquals(order, [], "all three wait while the queue is full");
  assertEquals(q.tryPush("late"), false, "tryPush does not jump the waiting pushes");
  const popped: (string | undefined)[] = [];
  for (let i = 0; i < 4; i++) {
    popped.push(await q.pop());
    await settle();
    assertEquals(order, ["b", "c", "d"].slice(0, Math.min(i + 1, 3)));
  }
  await Promise.all(pushes);
  assertEquals(popped, ["a", "b", "c", "d"]);
});

Deno.test("BoundedQueue: waiting pushes are bounded (LIMIT_EXCEEDED)", async () => {
  const { metrics } = testMetrics();
  const q = new BoundedQueue<number>(1, { name: "b", metrics, maxWaitingPushes: 2 });
  q.tryPush(0);
  const waiting = [q.push(1), q.push(2)];
  await assertRejectsCode(q.push(3), "LIMIT_EXCEEDED");
  q.close();
  for (const p of waiting) await assertRejectsCode(p, "CONNECTION_CLOSED");
});

Deno.test("BoundedQueue: close() rejects pushes, resolves waiting pops, drains the rest", async () => {
  const t = testMetrics();
  const idle = new BoundedQueue<number>(1, { name: "idle", metrics: t.metrics });
  const waitingPop = idle.pop();
  assertEquals(idle.close(), []);
  assertEquals(await waitingPop, undefined, "a pending pop ends with undefined");

  const q = new BoundedQueue<number>(2, { name: "b", metrics: t.metrics });
  await q.push(1);
  await q.push(2);
  const blocked = q.push(3);
  assertEquals(q.close(), [], "a graceful close discards nothing");
  assert(q.closed);
  const err = await assertRejectsCode(blocked, "CONNECTION_CLOSED");
  assertEquals(err.cause, undefined);
  await assertRejectsCode(q.push(4), "CONNECTION_CLOSED");
  assertThrowsCode(() => q.tryPush(4), "CONNECTION_CLOSED");
  const drained: number[] = [];
  for await (const n of q) drained.push(n);
  assertEquals(drained, [1, 2], "the consumer drains what was queued");
  assertEquals(await q.pop(), undefined);
  assertEquals(q.close(), [], "idempotent");
  assertEquals(t.series("b"), { depth: 0, enqueued: 2, dequeued: 2, dropped: 0 });
});

Deno.test("BoundedQueue: close(error) discards and returns the items, pops reject with it", async () => {
  const t = testMetrics();
  const idle = new BoundedQueue<number>(1, { name: "idle", metrics: t.metrics });
  const waitingPop = idle.pop();
  const reset = new NetworkError("CONNECTION_RESET", "peer went away");
  idle.close(reset);
  assertEquals(await waitingPop.catch((e) => e), reset, "a pending pop rejects with the error");

  const q = new BoundedQueue<number>(2, { name: "b", metrics: t.metrics });
  await q.push(1);
  await q.push(2);
  const blocked = q.push(3);
  assertEquals(q.close(reset), [1, 2]);
  const err = await assertRejectsCode(blocked, "CONNECTION_CLOSED");
  assertEquals(err.cause, reset, "the pusher learns why");
  assertEquals(await q.pop().catch((e) => e), reset, "later pops reject with the error");
  assertEquals(q.size, 0);
  assertEquals(t.series("b"), { depth: 0, enqueued: 2, dequeued: 0, dropped: 2 });
  assertEquals(t.value("dropped_total", { name: "b", reason: "closed" }), 2);

  const other = new BoundedQueue<number>(1, { name: "c", metrics: t.metrics });
  other.close(new TypeError("bug"));
  const wrapped = await assertRejectsCode(other.pop(), "CONNECTION_CLOSED");
  assert(wrapped.cause instanceof TypeError, "a plain error is wrapped, not lost");
});

Deno.test("BoundedQueue: abort via signal, waiting or before", async () => {
  const { metrics } = testMetrics();
  const q = new BoundedQueue<string>(1, { name: "b", metrics });
  await q.push("a");
  const controller = new AbortController();
  const order: string[] = [];
  const aborted = track(order, "b", q.push("b", { signal: controller.signal }));
  const kept = track(order, "c", q.push("c"));
  controller.abort();
  await assertRejectsCode(aborted, "ABORTED");
  assertEquals(await q.pop(), "a");
  await kept;
  assertEquals(await q.pop(), "c", "the aborted item never entered; the next push moved up");
  assertEquals(order, ["b!", "c"]);

  const timeout = new NetworkError("TIMEOUT", "deadline");
  const late = new AbortController();
  late.abort(timeout);
  const err = await assertRejectsCode(q.push("x", { signal: late.signal }), "TIMEOUT");
  assertEquals(err, timeout, "a NetworkError reason is passed through");
  await assertRejectsCode(q.pop({ signal: late.signal }), "TIMEOUT");

  const popAbort = new AbortController();
  const waitingPop = q.pop({ signal: popAbort.signal });
  popAbort.abort();
  await assertRejectsCode(waitingPop, "ABORTED");
  await q.push("d");
  assertEquals(q.size, 1, "an aborted pop takes nothing");
  assertEquals(await q.pop(), "d");
});

Deno.test("BoundedQueue: rejects bad bounds and undefined items", () => {
  assertThrows(() => new BoundedQueue(0, { name: "b" }), RangeError);
  assertThrows(() => new BoundedQueue(1.5, { name: "b" }), RangeError);
  assertThrows(() => new BoundedQueue(Infinity, { name: "b" }), RangeError);
  const q = new BoundedQueue<number | undefined>(1, { name: "b" });
  assertThrows(() => q.tryPush(undefined), TypeError);
});

// --- KeyedQueue --------------------------------------------------------------

Deno.test("KeyedQueue: FIFO within a key", async () => {
  const { metrics } = testMetrics();
  const q = new KeyedQueue<string, number>(100, { name: "k", metrics });
  for (let i = 0; i < 50; i++) q.tryPush("a", i);
  const out: (number | undefined)[] = [];
  for (let i = 0; i < 50; i++) out.push(await q.pop());
  assertEquals(out, Array.from({ length: 50 }, (_, i) => i));
  assertEquals(q.keyCount, 0, "an empty key is forgotten");
});

Deno.test("KeyedQueue: round-robin, a key with 10,000 items does not starve a key with 1", async () => {
  const t = testMetrics();
  const q = new KeyedQueue<string, string>(10_000, { name: "k", metrics: t.metrics });
  for (let i = 0; i < 10_000; i++) assertEquals(q.tryPush("flood", `f${i}`).status, "queued");
  assertEquals(q.tryPush("quiet", "q0").status, "queued");
  const firstTwo = [await q.pop(), await q.pop()];
  assert(firstTwo.includes("q0"), `quiet's item in the first two pops: ${firstTwo}`);
  assertEquals(firstTwo, ["f0", "q0"]);

  // Three keys interleave one item each per round.
  const r = new KeyedQueue<string, string>(10, { name: "rr", metrics: t.metrics });
  for (const k of ["a", "b", "c"]) for (let i = 0; i < 3; i++) r.tryPush(k, `${k}${i}`);
  const out: (string | undefined)[] = [];
  for (let i = 0; i < 9; i++) out.push(await r.pop());
  assertEquals(out, ["a0", "b0", "c0", "a1", "b1", "c1", "a2", "b2", "c2"]);
});

Deno.test("KeyedQueue: keyOf decides which keys share a FIFO", async () => {
  type Key = { peer: string; protocol: string };
  const q = new KeyedQueue<Key, number>(2, {
    name: "k",
    metrics: testMetrics().metrics,
    keyOf: (k) => `${k.peer}/${k.protocol}`,
  });
  q.tryPush({ peer: "p", protocol: "rpc" }, 1);
  q.tryPush({ peer: "p", protocol: "rpc" }, 2);
  assertEquals(q.tryPush({ peer: "p", protocol: "rpc" }, 3).status, "dropped", "same key");
  assertEquals(q.tryPush({ peer: "p", protocol: "send" }, 4).status, "queued", "another key");
  assertEquals(q.sizeOf({ peer: "p", protocol: "rpc" }), 2);
  assertEquals(q.keyCount, 2);
  assertEquals([await q.pop(), await q.pop(), await q.pop()], [1, 4, 2]);

  const byString = new KeyedQueue<number, number>(1, { name: "s", metrics: testMetrics().metrics });
  byString.tryPush(7, 1);
  assertEquals(byString.sizeOf(7), 1, "default: String(key)");
});

Deno.test("KeyedQueue: drop-newest refuses the new item and counts key_full", async () => {
  const t = testMetrics();
  const q = new KeyedQueue<string, number>(2, { name: "k", metrics: t.metrics });
  assertEquals(q.policy, "drop-newest", "the default policy");
  q.tryPush("a", 1);
  await q.push("a", 2);
  assertEquals(q.tryPush("a", 3), { status: "dropped", reason: "key_full" });
  assertEquals(await q.push("a", 4), { status: "dropped", reason: "key_full" });
  assertEquals(q.tryPush("b", 5).status, "queued", "another key is unaffected");
  assertEquals(t.value("dropped_total", { name: "k", reason: "key_full" }), 2);
  assertEquals([await q.pop(), await q.pop(), await q.pop()], [1, 5, 2]);
  assertEquals(t.series("k"), { depth: 0, enqueued: 5, dequeued: 3, dropped: 2 });
});

Deno.test("KeyedQueue: drop-oldest evicts the key's oldest, returns it, counts key_full", async () => {
  const t = testMetrics();
  const q = new KeyedQueue<string, string>(2, {
    name: "k",
    metrics: t.metrics,
    policy: "drop-oldest",
  });
  q.tryPush("a", "a1");
  q.tryPush("a", "a2");
  assertEquals(q.tryPush("a", "a3"), {
    status: "evicted",
    reason: "key_full",
    key: "a",
    value: "a1",
  });
  assertEquals((await q.push("a", "a4")).status, "evicted");
  assertEquals(q.size, 2);
  assertEquals([await q.pop(), await q.pop()], ["a3", "a4"], "the freshest two are kept, in order");
  assertEquals(t.value("dropped_total", { name: "k", reason: "key_full" }), 2);
  assertEquals(t.series("k"), { depth: 0, enqueued: 4, dequeued: 2, dropped: 2 });
});

Deno.test("KeyedQueue: backpressure waits per key, wakes in order, other keys flow", async () => {
  const t = testMetrics();
  const q = new KeyedQueue<string, string>(1, {
    name: "k",
    metrics: t.metrics,
    policy: "backpressure",
  });
  assertEquals(await q.push("a", "a0"), { status: "queued" });
  assertEquals(q.tryPush("a", "x"), { status: "full" }, "tryPush would wait: full");
  const order: string[] = [];
  const waiting = ["a1", "a2", "a3"].map((v) => track(order, v, q.push("a", v)));
  assertEquals(await q.push("b", "b0"), { status: "queued" }, "key b is not blocked by a");
  await settle();
  assertEquals(order, []);
  const out: (string | undefined)[] = [];
  for (let i = 0; i < 5; i++) {
    out.push(await q.pop());
    await settle();
  }
  assertEquals(order, ["a1", "a2", "a3"]);
  for (const p of waiting) assertEquals(await p, { status: "queued" });
  assertEquals(out, ["a0", "b0", "a1", "a2", "a3"]);
  assertEquals(t.series("k"), { depth: 0, enqueued: 5, dequeued: 5, dropped: 0 });
  assertEquals(q.keyCount, 0);
});

Deno.test("KeyedQueue: waiting pushes per key are bounded (LIMIT_EXCEEDED)", async () => {
  const q = new KeyedQueue<string, number>(1, {
    name: "k",
    metrics: testMetrics().metrics,
    policy: "backpressure",
    maxWaitingPushesPerKey: 1,
  });
  q.tryPush("a", 0);
  const waiting = q.push("a", 1);
  await assertRejectsCode(q.push("a", 2), "LIMIT_EXCEEDED");
  assertEquals(q.tryPush("b", 3).status, "queued", "another key has its own bound");
  assertEquals(await q.pop(), 0);
  assertEquals(await waiting, { status: "queued" });
});

Deno.test("KeyedQueue: total bound, drop-newest: the longest key loses its newest", async () => {
  const t = testMetrics();
  const q = new KeyedQueue<string, string>(10, {
    name: "k",
    metrics: t.metrics,
    totalCapacity: 4,
  });
  for (let i = 0; i < 4; i++) q.tryPush("flood", `f${i}`);
  assertEquals(q.tryPush("quiet", "q0"), {
    status: "evicted",
    reason: "total_full",
    key: "flood",
    value: "f3",
  });
  assertEquals(q.size, 4);
  assertEquals(q.tryPush("flood", "f4"), { status: "dropped", reason: "total_full" });
  q.tryPush("quiet", "q1"); // evicts f2: flood (2 left after) still held more than quiet (1)
  assertEquals([q.sizeOf("flood"), q.sizeOf("quiet")], [2, 2]);
  assertEquals(q.tryPush("quiet", "q2"), { status: "dropped", reason: "total_full" }, "a tie");
  const out: (string | undefined)[] = [];
  for (let i = 0; i < 4; i++) out.push(await q.pop());
  assertEquals(out, ["f0", "q0", "f1", "q1"]);
  assertEquals(t.value("dropped_total", { name: "k", reason: "total_full" }), 4);
  assertEquals(t.series("k"), { depth: 0, enqueued: 8, dequeued: 4, dropped: 4 });
});

Deno.test("KeyedQueue: total bound, drop-oldest: the longest key loses its oldest", async () => {
  const t = testMetrics();
  const q = new KeyedQueue<string, string>(10, {
    name: "k",
    metrics: t.metrics,
    policy: "drop-oldest",
    totalCapacity: 3,
  });
  for (let i = 0; i < 3; i++) q.tryPush("flood", `f${i}`);
  assertEquals(q.tryPush("quiet", "q0"), {
    status: "evicted",
    reason: "total_full",
    key: "flood",
    value: "f0",
  });
  assertEquals(q.tryPush("flood", "f3"), {
    status: "evicted",
    reason: "total_full",
    key: "flood",
    value: "f1",
  }, "the longest key pushing evicts its own oldest");
  const out: (string | undefined)[] = [];
  for (let i = 0; i < 3; i++) out.push(await q.pop());
  assertEquals(out, ["f2", "q0", "f3"]);

  const one = new KeyedQueue<string, string>(5, {
    name: "one",
    metrics: t.metrics,
    policy: "drop-oldest",
    totalCapacity: 1,
  });
  one.tryPush("a", "a0");
  assertEquals(one.tryPush("b", "b0").status, "evicted");
  assertEquals(one.keyCount, 1, "a key emptied by eviction is forgotten");
  assertEquals(await one.pop(), "b0");
});

Deno.test("KeyedQueue: total bound under backpressure hands room to waiting keys in turn", async () => {
  const t = testMetrics();
  const q = new KeyedQueue<string, string>(2, {
    name: "k",
    metrics: t.metrics,
    policy: "backpressure",
    totalCapacity: 2,
  });
  q.tryPush("a", "a0");
  q.tryPush("a", "a1");
  assertEquals(q.tryPush("b", "b0").status, "full", "the total is full");
  const order: string[] = [];
  const waiting = [
    track(order, "b0", q.push("b", "b0")),
    track(order, "a2", q.push("a", "a2")),
    track(order, "c0", q.push("c", "c0")),
  ];
  const out: (string | undefined)[] = [];
  for (let i = 0; i < 5; i++) {
    out.push(await q.pop());
    await settle();
    assert(q.size <= 2);
  }
  await Promise.all(waiting);
  assertEquals(order, ["b0", "a2", "c0"], "admitted in turn, not all to the flooding key");
  assertEquals(out, ["a0", "a1", "b0", "a2", "c0"]);
  assertEquals(t.series("k"), { depth: 0, enqueued: 5, dequeued: 5, dropped: 0 });
});

Deno.test("KeyedQueue: close() rejects waiting pushes, drains the rest round-robin", async () => {
  const t = testMetrics();
  const q = new KeyedQueue<string, number>(1, {
    name: "k",
    metrics: t.metrics,
    policy: "backpressure",
  });
  q.tryPush("a", 1);
  q.tryPush("b", 2);
  const blocked = q.push("a", 3);
  assertEquals(q.close(), []);
  await assertRejectsCode(blocked, "CONNECTION_CLOSED");
  await assertRejectsCode(q.push("c", 4), "CONNECTION_CLOSED");
  assertThrowsCode(() => q.tryPush("c", 4), "CONNECTION_CLOSED");
  const drained: number[] = [];
  for await (const n of q) drained.push(n);
  assertEquals(drained, [1, 2]);
  assertEquals(q.keyCount, 0);

  const idle = new KeyedQueue<string, number>(1, { name: "idle", metrics: t.metrics });
  const waitingPop = idle.pop();
  idle.close();
  assertEquals(await waitingPop, undefined);
});

Deno.test("KeyedQueue: close(error) returns the discarded items with keys; pops reject", async () => {
  const t = testMetrics();
  const q = new KeyedQueue<string, number>(2, { name: "k", metrics: t.metrics });
  q.tryPush("a", 1);
  q.tryPush("a", 2);
  q.tryPush("b", 3);
  const reset = new NetworkError("CONNECTION_RESET", "gone");
  assertEquals(q.close(reset), [["a", 1], ["a", 2], ["b", 3]]);
  assertEquals(await q.pop().catch((e) => e), reset);
  assertEquals([q.size, q.keyCount], [0, 0]);
  assertEquals(t.value("dropped_total", { name: "k", reason: "closed" }), 3);
  assertEquals(t.series("k"), { depth: 0, enqueued: 3, dequeued: 0, dropped: 3 });

  const idle = new KeyedQueue<string, number>(1, { name: "idle", metrics: t.metrics });
  const waitingPop = idle.pop();
  idle.close(reset);
  assertEquals(await waitingPop.catch((e) => e), reset);
});

Deno.test("KeyedQueue: abort via signal, waiting push or pop", async () => {
  const q = new KeyedQueue<string, string>(1, {
    name: "k",
    metrics: testMetrics().metrics,
    policy: "backpressure",
  });
  q.tryPush("a", "a0");
  const controller = new AbortController();
  const aborted = q.push("a", "a1", { signal: controller.signal });
  const kept = q.push("a", "a2");
  controller.abort();
  await assertRejectsCode(aborted, "ABORTED");
  assertEquals(await q.pop(), "a0");
  assertEquals(await kept, { status: "queued" });
  assertEquals(await q.pop(), "a2");
  assertEquals(q.keyCount, 0);

  const alone = new AbortController();
  const lone = q.push("z", "z0"); // queued at once: z is empty
  assertEquals(await lone, { status: "queued" });
  const waits = q.push("z", "z1", { signal: alone.signal });
  alone.abort();
  await assertRejectsCode(waits, "ABORTED");
  assertEquals(await q.pop(), "z0");
  assertEquals(q.keyCount, 0, "a key whose only waiting push gave up is forgotten");

  const popAbort = new AbortController();
  const waitingPop = q.pop({ signal: popAbort.signal });
  popAbort.abort();
  await assertRejectsCode(waitingPop, "ABORTED");
  const pre = new AbortController();
  pre.abort();
  await assertRejectsCode(q.push("y", "y0", { signal: pre.signal }), "ABORTED");
  assertEquals(q.size, 0);
});

Deno.test("KeyedQueue: rejects bad options and undefined items", () => {
  assertThrows(() => new KeyedQueue(0, { name: "k" }), RangeError);
  assertThrows(() => new KeyedQueue(1, { name: "k", totalCapacity: 0 }), RangeError);
  assertThrows(() => new KeyedQueue(1, { name: "k", maxWaitingPushesPerKey: -1 }), RangeError);
  assertThrows(
    () => new KeyedQueue(1, { name: "k", policy: "lifo" as DropPolicy }),
    RangeError,
  );
  const q = new KeyedQueue<string, number | undefined>(1, { name: "k" });
  assertThrows(() => q.tryPush("a", undefined), TypeError);
});

// --- Metrics -----------------------------------------------------------------

Deno.test("metrics: the four series, per scope and name, with the network label", async () => {
  const t = testMetrics();
  const q = new KeyedQueue<string, number>(1, { name: "inbound", metrics: t.metrics });
  q.tryPush("a", 1);
  q.tryPush("a", 2); // dropped
  q.tryPush("b", 3);
  await q.pop();
  const text = t.registry.render();
  for (
    const line of [
      "# TYPE validator_network_channel_depth gauge",
      'validator_network_channel_depth{network="test",name="inbound"} 1',
      'validator_network_channel_enqueued_total{network="test",name="inbound"} 3',
      'validator_network_channel_dequeued_total{network="test",name="inbound"} 1',
      'validator_network_channel_dropped_total{network="test",name="inbound",reason="key_full"} 1',
    ]
  ) {
    assert(text.includes(line), `missing ${line} in\n${text}`);
  }

  // Queues of one name in one scope share their series: the depth adds up.
  const b1 = new BoundedQueue<number>(4, { name: "events", metrics: t.metrics });
  const b2 = new BoundedQueue<number>(4, { name: "events", metrics: t.metrics });
  b1.tryPush(1);
  b2.tryPush(2);
  b2.tryPush(3);
  assertEquals(t.series("events"), { depth: 3, enqueued: 3, dequeued: 0, dropped: 0 });

  // Another scope of the same registry reports apart.
  const other = t.registry.scope({ network: "other" });
  new BoundedQueue<number>(4, { name: "events", metrics: other }).tryPush(9);
  assertEquals(t.series("events").depth, 3);
  assertEquals(
    t.registry.find("validator_network_channel_depth")!.get({ network: "other", name: "events" }),
    1,
  );

  // Without metrics: defaultMetrics (network="default").
  const name = `default_${crypto.randomUUID()}`;
  new BoundedQueue<number>(1, { name }).tryPush(1);
  assertEquals(
    defaultRegistry.find("validator_network_channel_depth")!.get({ network: "default", name }),
    1,
  );
});

Deno.test("metrics: series are resolved once per (scope, name), not per item or queue", () => {
  const registry = new MetricsRegistry();
  const scope = registry.scope({ network: "test" });
  let declared = 0;
  const counting: Metrics = {
    counter: (...args) => (declared++, scope.counter(...args)),
    gauge: (...args) => (declared++, scope.gauge(...args)),
    histogram: (...args) => (declared++, scope.histogram(...args)),
  };
  const q = new KeyedQueue<number, number>(8, { name: "k", metrics: counting });
  const afterFirst = declared;
  assertEquals(afterFirst, 4, "four metrics declared for the first queue of a scope");
  for (let i = 0; i < 100; i++) q.tryPush(i % 3, i);
  new KeyedQueue<number, number>(8, { name: "k", metrics: counting });
  new BoundedQueue<number>(8, { name: "other", metrics: counting });
  assertEquals(declared, afterFirst, "no more lookups for more items, queues or names");
});

// --- Property ----------------------------------------------------------------

interface Item {
  readonly key: number;
  readonly seq: number;
}

type Command =
  | { readonly op: "push"; readonly key: number; readonly abortable: boolean }
  | { readonly op: "tryPush"; readonly key: number }
  | { readonly op: "pop" }
  | { readonly op: "abort"; readonly which: number };

const KEYS = 4;

const commandArb: fc.Arbitrary<Command> = fc.oneof(
  fc.record({
    op: fc.constant("push" as const),
    key: fc.integer({ min: 0, max: KEYS - 1 }),
    abortable: fc.boolean(),
  }),
  fc.record({ op: fc.constant("tryPush" as const), key: fc.integer({ min: 0, max: KEYS - 1 }) }),
  fc.record({ op: fc.constant("pop" as const) }),
  fc.record({ op: fc.constant("abort" as const), which: fc.nat() }),
);

const configArb = fc.record({
  policy: fc.constantFrom<DropPolicy>("drop-newest", "drop-oldest", "backpressure"),
  perKey: fc.integer({ min: 1, max: 4 }),
  total: fc.oneof(fc.constant(Infinity), fc.integer({ min: 1, max: 8 })),
  closeWithError: fc.boolean(),
});

Deno.test("property: per-key FIFO, bounds, round-robin, every item accounted for once", async () => {
  await fc.assert(
    fc.asyncProperty(
      configArb,
      fc.array(commandArb, { maxLength: 150, size: "max" }),
      async (config, cmds) => {
        const t = testMetrics();
        const q = new KeyedQueue<number, Item>(config.perKey, {
          name: "prop",
          metrics: t.metrics,
          policy: config.policy,
          totalCapacity: config.total,
          maxWaitingPushesPerKey: 3,
        });
        let seq = 0;
        const taken = new Set<Item>(); // the queue took them (queued, or dropped by policy)
        const dropped = new Set<Item>(); // refused or evicted, as the push results said
        const popped = new Set<Item>();
        const lastPopped = new Array<number>(KEYS).fill(-1);
        const waits = new Array<number>(KEYS).fill(0);
        const pending: Promise<void>[] = [];
        const controllers: AbortController[] = [];

        const record = (item: Item, result: PushResult<number, Item>) => {
          taken.add(item);
          if (result.status === "dropped") dropped.add(item);
          if (result.status === "evicted") {
            assertEquals(result.key, result.value.key, "the evicted item's key is reported");
            assert(
              taken.has(result.value) && !dropped.has(result.value) && !popped.has(result.value),
            );
            dropped.add(result.value);
          }
        };
        const check = () => {
          let sum = 0;
          for (let k = 0; k < KEYS; k++) {
            assert(q.sizeOf(k) <= config.perKey, "per-key bound");
            sum += q.sizeOf(k);
          }
          assertEquals(sum, q.size);
          assert(q.size <= config.total, "total bound");
          const s = t.series("prop");
          assertEquals(s.depth, q.size);
          assertEquals(s.enqueued, s.dequeued + s.dropped + s.depth, "conservation (metrics)");
          assertEquals(s.dequeued, popped.size);
        };

        for (const cmd of cmds) {
          if (cmd.op === "push") {
            const item = { key: cmd.key, seq: seq++ };
            const controller = cmd.abortable ? new AbortController() : undefined;
            if (controller !== undefined) controllers.push(controller);
            // Recorded synchronously when it settles at once (drop policies),
            // else when the waiting push is admitted.
            pending.push(
              q.push(cmd.key, item, { signal: controller?.signal }).then(
                (result) => record(item, result),
                (err) =>
                  assert(NetworkError.is(err, "ABORTED", "LIMIT_EXCEEDED", "CONNECTION_CLOSED")),
              ),
            );
            await settle();
          } else if (cmd.op === "tryPush") {
            const item = { key: cmd.key, seq: seq++ };
            const result = q.tryPush(cmd.key, item);
            if (result.status === "full") assertEquals(config.policy, "backpressure");
            else record(item, result);
          } else if (cmd.op === "abort") {
            if (controllers.length > 0) controllers[cmd.which % controllers.length].abort();
            await settle();
          } else if (q.size > 0) {
            const before = Array.from({ length: KEYS }, (_, k) => q.sizeOf(k));
            const item = (await q.pop())!;
            assert(item.seq > lastPopped[item.key], "FIFO within a key");
            lastPopped[item.key] = item.seq;
            assert(!popped.has(item) && !dropped.has(item), "popped once, never after a drop");
            popped.add(item);
            for (let k = 0; k < KEYS; k++) {
              if (k === item.key || before[k] === 0) waits[k] = 0;
              else assert(++waits[k] <= KEYS - 1, `key ${k} skipped ${waits[k]} times in a row`);
            }
            await settle();
          }
          for (let k = 0; k < KEYS; k++) if (q.sizeOf(k) === 0) waits[k] = 0;
          check();
        }

        const remaining = q.size;
        const discarded = q.close(config.closeWithError ? new Error("end") : undefined);
        await Promise.all(pending);
        const left = new Set<Item>(discarded.map(([, item]) => item));
        if (!config.closeWithError) {
          assertEquals(discarded, []);
          for await (const item of q) left.add(item);
        }
        assertEquals(left.size, remaining);
        // Every item the queue took is exactly one of: popped, dropped, left.
        for (const item of taken) {
          const places = [popped.has(item), dropped.has(item), left.has(item)].filter(Boolean);
          assertEquals(places.length, 1, `item ${item.key}/${item.seq} in ${places.length} places`);
        }
        assertEquals(taken.size, popped.size + dropped.size + left.size, "conservation (items)");
        const s = t.series("prop");
        assertEquals(s.enqueued, taken.size);
        assertEquals(s.dropped, dropped.size + (config.closeWithError ? remaining : 0));
        assertEquals(s.depth, 0);
      },
    ),
    { numRuns: 300 },
  );
});

type BoundedCommand =
  | { readonly op: "push"; readonly abortable: boolean }
  | { readonly op: "tryPush" }
  | { readonly op: "pop" }
  | { readonly op: "abort"; readonly which: number };

const boundedCommandArb: fc.Arbitrary<BoundedCommand> = fc.oneof(
  fc.record({ op: fc.constant("push" as const), abortable: fc.boolean() }),
  fc.record({ op: fc.constant("tryPush" as const) }),
  fc.record({ op: fc.constant("pop" as const) }),
  fc.record({ op: fc.constant("abort" as const), which: fc.nat() }),
);

Deno.test("property: BoundedQueue keeps FIFO order and its bound, loses nothing", async () => {
  await fc.assert(
    fc.asyncProperty(
      fc.integer({ min: 1, max: 5 }),
      fc.array(boundedCommandArb, { maxLength: 100, size: "max" }),
      async (capacity, cmds) => {
        const t = testMetrics();
        const q = new BoundedQueue<number>(capacity, { name: "prop", metrics: t.metrics });
        let seq = 0;
        const queued: number[] = []; // in the order the queue took them
        const popped: number[] = [];
        const pending: Promise<void>[] = [];
        const controllers: AbortController[] = [];
        for (const cmd of cmds) {
          if (cmd.op === "push") {
            const n = seq++;
            const controller = cmd.abortable ? new AbortController() : undefined;
            if (controller !== undefined) controllers.push(controller);
            pending.push(
              q.push(n, { signal: controller?.signal }).then(
                () => void queued.push(n),
                (err) => assert(NetworkError.is(err, "ABORTED", "CONNECTION_CLOSED")),
              ),
            );
          } else if (cmd.op === "tryPush") {
            const n = seq++;
            if (q.tryPush(n)) queued.push(n);
          } else if (cmd.op === "abort") {
            if (controllers.length > 0) controllers[cmd.which % controllers.length].abort();
          } else if (q.size > 0) {
            popped.push((await q.pop())!);
          }
          await settle();
          assert(q.size <= capacity, "bound");
          const s = t.series("prop");
          assertEquals(s.depth, q.size);
          assertEquals(s.enqueued, s.dequeued + s.depth, "conservation (metrics)");
        }
        q.close();
        await Promise.all(pending);
        for await (const n of q) popped.push(n);
        assertEquals(popped, queued, "every item taken comes out once, in the order taken");
        // Pushes are issued in `seq` order and none overtakes another (a
        // tryPush does not jump waiting pushes; an aborted one just leaves).
        for (let i = 1; i < popped.length; i++) assert(popped[i] > popped[i - 1], "FIFO");
      },
    ),
    { numRuns: 300 },
  );
});
