/**
 * The internal async helpers: every cancellation and time-out surfaces as a
 * NetworkError, no timer outlives the operation it guards, and backoff follows
 * its documented formula.
 *
 * Timer leaks are checked two ways: by counting the timers armed through
 * `setTimeout` and not yet fired or cleared, and, for `Deadline`'s clear and
 * dispose, with Deno's op sanitizer switched on (it is off by default), which
 * fails a test that leaves a timer running.
 */

import fc from "fast-check";
import {
  abortable,
  abortError,
  backoff,
  BACKOFF_DEFAULTS,
  Deadline,
  delay,
} from "../netcore/_async.ts";
import { NetworkError } from "../netcore/network_error.ts";
import { assert, assertEquals, assertRejectsCode, assertThrowsCode } from "./_assert.ts";

/**
 * Counts timers armed through the global `setTimeout` until disposed. The
 * real functions do the work; this only keeps a set of live ids.
 */
function trackTimers(): { readonly live: number } & Disposable {
  type TimerId = ReturnType<typeof setTimeout>;
  const realSet = globalThis.setTimeout;
  const realClear = globalThis.clearTimeout;
  const live = new Set<TimerId>();
  const trackedSet = (fn: (...args: unknown[]) => void, ms?: number, ...args: unknown[]) => {
    const id = realSet(
      (...a: unknown[]) => {
        live.delete(id);
        fn(...a);
      },
      ms,
      ...args,
    );
    live.add(id);
    return id;
  };
  const trackedClear = (id?: TimerId) => {
    if (id !== undefined) live.delete(id);
    realClear(id);
  };
  globalThis.setTimeout = trackedSet as unknown as typeof setTimeout;
  globalThis.clearTimeout = trackedClear as unknown as typeof clearTimeout;
  return {
    get live() {
      return live.size;
    },
    [Symbol.dispose]() {
      globalThis.setTimeout = realSet;
      globalThis.clearTimeout = realClear;
    },
  };
}

const never = () => new Promise<never>(() => {});

// --- delay ---

Deno.test("delay resolves after about ms", async () => {
  const start = performance.now();
  await delay(30);
  const elapsed = performance.now() - start;
  if (elapsed < 25) throw new Error(`resolved after ${elapsed} ms`);
});

Deno.test("delay rejects with ABORTED when the signal fires, keeping the reason, and clears its timer", async () => {
  using timers = trackTimers();
  const controller = new AbortController();
  const waiting = delay(60_000, { signal: controller.signal });
  assertEquals(timers.live, 1);
  controller.abort("shutting down");
  const err = await assertRejectsCode(waiting, "ABORTED");
  assertEquals(err.cause, "shutting down");
  assertEquals(timers.live, 0);
});

Deno.test("delay with an already aborted signal rejects at once without arming a timer", async () => {
  using timers = trackTimers();
  const controller = new AbortController();
  controller.abort();
  const waiting = delay(60_000, { signal: controller.signal });
  assertEquals(timers.live, 0);
  await assertRejectsCode(waiting, "ABORTED");
});

Deno.test("delay passes a NetworkError reason through unchanged", async () => {
  const controller = new AbortController();
  const reason = new NetworkError("CONNECTION_CLOSED", "connection went away");
  const waiting = delay(60_000, { signal: controller.signal });
  controller.abort(reason);
  const err = await assertRejectsCode(waiting, "CONNECTION_CLOSED");
  if (err !== reason) throw new Error("expected the reason itself");
});

// --- abortError ---

Deno.test("abortError maps a TimeoutError to TIMEOUT and anything else to ABORTED", () => {
  const timedOut = new AbortController();
  const timeout = new DOMException("signal timed out", "TimeoutError");
  timedOut.abort(timeout);
  const a = abortError(timedOut.signal);
  assertEquals(a.code, "TIMEOUT");
  if (a.cause !== timeout) throw new Error("cause lost");

  const plain = new AbortController();
  plain.abort(); // the default reason is an AbortError DOMException
  const b = abortError(plain.signal);
  assertEquals(b.code, "ABORTED");
  if (!(b.cause instanceof DOMException) || b.cause.name !== "AbortError") {
    throw new Error("cause lost");
  }
});

// --- abortable ---

Deno.test("abortable settles like the promise while the signal is quiet", async () => {
  const controller = new AbortController();
  assertEquals(await abortable(Promise.resolve(42), controller.signal), 42);
  const failure = new Error("inner");
  try {
    await abortable(Promise.reject(failure), controller.signal);
    throw new Error("should have rejected");
  } catch (err) {
    if (err !== failure) throw err;
  }
});

Deno.test("abortable without a signal is the promise itself", () => {
  const promise = Promise.resolve(1);
  if (abortable(promise, undefined) !== promise) throw new Error("expected the same promise");
});

Deno.test("abortable rejects when the signal fires first; a later rejection stays handled", async () => {
  const controller = new AbortController();
  let rejectInner!: (err: unknown) => void;
  const inner = new Promise<number>((_, reject) => (rejectInner = reject));
  const waiting = abortable(inner, controller.signal);
  controller.abort();
  await assertRejectsCode(waiting, "ABORTED");
  // Deno fails the test on an unhandled rejection; this one must be absorbed.
  rejectInner(new Error("late"));
  await delay(0);
});

Deno.test("abortable with an already aborted signal rejects, absorbing the promise's rejection", async () => {
  const controller = new AbortController();
  controller.abort(new NetworkError("LIMIT_EXCEEDED", "too many streams"));
  const inner = Promise.reject(new Error("also failed"));
  await assertRejectsCode(abortable(inner, controller.signal), "LIMIT_EXCEEDED");
  await delay(0);
});

Deno.test("abortable maps AbortSignal.timeout to TIMEOUT", async () => {
  await assertRejectsCode(abortable(never(), AbortSignal.timeout(5)), "TIMEOUT");
});

// --- Deadline ---

/** A test with the op sanitizer on: it fails if a timer outlives the test. */
const sanitized = (name: string, fn: () => void | Promise<void>) =>
  Deno.test({ name, fn, sanitizeOps: true, sanitizeResources: true });

Deno.test("Deadline fires after ms with TIMEOUT, naming what timed out", async () => {
  using deadline = new Deadline(10, { what: "ping" });
  assertEquals([deadline.expired, deadline.signal.aborted], [false, false]);
  deadline.check(); // not yet: no throw
  const started = performance.now();
  const err = await assertRejectsCode(delay(60_000, { signal: deadline.signal }), "TIMEOUT");
  const elapsed = performance.now() - started;
  assert(elapsed >= 8, `fired after ${elapsed} ms`);
  if (err !== deadline.signal.reason) throw new Error("expected the signal's reason");
  assert(err.message.includes("ping timed out after 10 ms"), `message: ${err.message}`);
  assertEquals(deadline.expired, true);
  if (deadline.error !== err) throw new Error("error is the reason the signal fired with");
});

Deno.test("Deadline fires with the given code", async () => {
  using deadline = new Deadline(5, { code: "HANDSHAKE_FAILED", what: "handshake" });
  const err = await assertRejectsCode(deadline.race(never()), "HANDSHAKE_FAILED");
  assert(err.message.includes("handshake timed out after 5 ms"), `message: ${err.message}`);
  assertEquals(deadline.error.code, "HANDSHAKE_FAILED");
});

Deno.test("Deadline defaults to TIMEOUT and to 'operation' in the message", async () => {
  using deadline = new Deadline(5);
  const err = await assertRejectsCode(deadline.race(never()), "TIMEOUT");
  assert(err.message.includes("operation timed out after 5 ms"), `message: ${err.message}`);
});

Deno.test("Deadline follows the caller's signal: it fires with the caller's reason", () => {
  const parent = new AbortController();
  using deadline = new Deadline(60_000, { signal: parent.signal });
  assertEquals(deadline.expired, false);
  parent.abort("caller gave up");
  assertEquals(deadline.signal.aborted, true);
  assertEquals(deadline.signal.reason, "caller gave up");
  assertEquals(deadline.expired, true);
  const err = assertThrowsCode(() => deadline.check(), "ABORTED");
  assertEquals(err.cause, "caller gave up");
  assertEquals(deadline.error.code, "ABORTED");
  // A NetworkError reason is passed through as is.
  const failing = new AbortController();
  const reason = new NetworkError("CONNECTION_CLOSED", "connection went away");
  using second = new Deadline(60_000, { signal: failing.signal });
  failing.abort(reason);
  if (second.error !== reason) throw new Error("expected the caller's NetworkError itself");
});

Deno.test("Deadline with an already aborted caller's signal is expired and arms no lasting timer", () => {
  using timers = trackTimers();
  const parent = new AbortController();
  parent.abort("early");
  const deadline = new Deadline(60_000, { signal: parent.signal });
  assertEquals(deadline.expired, true);
  assertEquals(deadline.signal.reason, "early");
  assertEquals(timers.live, 0);
  assertThrowsCode(() => deadline.check(), "ABORTED");
});

sanitized(
  "Deadline.clear() disarms the timer: the test leaks nothing and the signal never fires",
  async () => {
    using timers = trackTimers();
    const deadline = new Deadline(5);
    assertEquals(timers.live, 1, "armed");
    deadline.clear();
    assertEquals(timers.live, 0, "cleared");
    deadline.clear(); // idempotent
    await delay(20);
    assertEquals(deadline.expired, false, "a cleared deadline never fires");
    deadline.check();
  },
);

sanitized("Deadline with `using` is cleared at the end of its block", () => {
  using timers = trackTimers();
  let signal: AbortSignal;
  {
    using deadline = new Deadline(60_000);
    signal = deadline.signal;
    assertEquals(timers.live, 1, "armed inside the block");
  }
  assertEquals(timers.live, 0, "cleared by dispose");
  assertEquals(signal.aborted, false);
});

sanitized("Deadline.clear() detaches from the caller's signal", () => {
  const parent = new AbortController();
  const deadline = new Deadline(60_000, { signal: parent.signal });
  deadline.clear();
  parent.abort("too late");
  assertEquals(deadline.expired, false, "the caller's signal no longer reaches a cleared deadline");
});

sanitized("Deadline whose caller's signal fired leaves no timer once cleared", () => {
  using timers = trackTimers();
  const parent = new AbortController();
  const deadline = new Deadline(60_000, { signal: parent.signal });
  parent.abort();
  assertEquals(deadline.expired, true);
  deadline.clear();
  assertEquals(timers.live, 0);
});

sanitized("Deadline.race: the value or the promise's own rejection when it wins", async () => {
  using timers = trackTimers();
  {
    using deadline = new Deadline(60_000);
    assertEquals(await deadline.race(delay(5).then(() => "pong")), "pong");
    const failure = new NetworkError("CONNECTION_RESET", "reset");
    const err = await assertRejectsCode(deadline.race(Promise.reject(failure)), "CONNECTION_RESET");
    if (err !== failure) throw new Error("expected the same error");
    assertEquals(deadline.expired, false);
  }
  assertEquals(timers.live, 0, "nothing left armed");
});

Deno.test("Deadline.race rejects with the deadline's error when it passes first; a late rejection stays handled", async () => {
  using deadline = new Deadline(10, { code: "DIAL_TIMEOUT", what: "dial" });
  let rejectInner!: (err: unknown) => void;
  const inner = new Promise<never>((_, reject) => (rejectInner = reject));
  const err = await assertRejectsCode(deadline.race(inner), "DIAL_TIMEOUT");
  if (err !== deadline.error) throw new Error("expected the deadline's error");
  rejectInner(new Error("late")); // Deno fails the test on an unhandled rejection
  await delay(0);
  // Once expired, race rejects at once.
  await assertRejectsCode(deadline.race(Promise.resolve(1)), "DIAL_TIMEOUT");
});

Deno.test("Deadline.race rejects with ABORTED when the caller's signal fires first", async () => {
  const parent = new AbortController();
  using deadline = new Deadline(60_000, { signal: parent.signal });
  const waiting = deadline.race(never());
  parent.abort();
  await assertRejectsCode(waiting, "ABORTED");
});

Deno.test("Deadline.check throws the deadline's error once it passed", async () => {
  using deadline = new Deadline(5, { code: "TIMEOUT", what: "negotiation" });
  deadline.check();
  await delay(20);
  const err = assertThrowsCode(() => deadline.check(), "TIMEOUT");
  assert(err.message.includes("negotiation"), err.message);
});

Deno.test("a cleared Deadline does not hold the process; a pending one keeps it alive until it fires", async () => {
  // The child clears one 60 s deadline, disposes another, and must then exit
  // at once. A deadline that is awaited fires even when nothing else keeps
  // the process alive (the JSDoc example).
  const url = new URL("../netcore/_async.ts", import.meta.url).href;
  const script = `
    import { Deadline } from ${JSON.stringify(url)};
    new Deadline(60_000).clear();
    { using d = new Deadline(60_000); }
    const parent = new AbortController();
    const followed = new Deadline(60_000, { signal: parent.signal });
    parent.abort();
    followed.clear();
    try {
      using d = new Deadline(10, { what: "ping" });
      await d.race(new Promise(() => {}));
    } catch (err) {
      console.log(err.code);
    }
  `;
  const start = performance.now();
  const output = await new Deno.Command(Deno.execPath(), {
    args: ["eval", "--no-config", script],
    stdout: "piped",
    stderr: "piped",
    signal: AbortSignal.timeout(30_000),
  }).output();
  const elapsed = performance.now() - start;
  const stderr = new TextDecoder().decode(output.stderr);
  assertEquals(output.code, 0, stderr);
  assertEquals(new TextDecoder().decode(output.stdout), "TIMEOUT\n");
  if (elapsed > 15_000) throw new Error(`child took ${elapsed} ms to exit`);
});

// --- backoff ---

const take = (gen: Generator<number>, n: number) =>
  Array.from({ length: n }, () => gen.next().value);

Deno.test("backoff without jitter: minDelay, times multiplier each attempt, capped at maxDelay", () => {
  assertEquals(take(backoff({ minDelay: 10, maxDelay: 100, jitter: 0 }), 7), [
    10,
    20,
    40,
    80,
    100,
    100,
    100,
  ]);
  assertEquals(take(backoff({ minDelay: 1, maxDelay: 1000, multiplier: 3, jitter: 0 }), 8), [
    1,
    3,
    9,
    27,
    81,
    243,
    729,
    1000,
  ]);
  // The documented defaults: 100 ms doubling up to 30 s.
  assertEquals(BACKOFF_DEFAULTS.minDelay, 100);
  assertEquals(BACKOFF_DEFAULTS.maxDelay, 30_000);
  assertEquals(BACKOFF_DEFAULTS.multiplier, 2);
  assertEquals(BACKOFF_DEFAULTS.jitter, 0.5);
  assertEquals(take(backoff({ jitter: 0 }), 11), [
    100,
    200,
    400,
    800,
    1600,
    3200,
    6400,
    12800,
    25600,
    30000,
    30000,
  ]);
});

Deno.test("backoff with jitter: the random part spans the jitter fraction of each delay", () => {
  // random() = 0 gives the low end, capped * (1 - jitter).
  assertEquals(take(backoff({ minDelay: 100, maxDelay: 1000, jitter: 0.5, random: () => 0 }), 5), [
    50,
    100,
    200,
    400,
    500,
  ]);
  // random() = 0.5 gives the middle.
  assertEquals(take(backoff({ minDelay: 100, jitter: 0.2, random: () => 0.5 }), 3), [90, 180, 360]);
  // jitter 1 makes the whole delay random.
  assertEquals(take(backoff({ minDelay: 100, jitter: 1, random: () => 0.25 }), 3), [25, 50, 100]);
});

Deno.test("backoff with jitter stays within [capped * (1 - jitter), capped] for any random draw", () => {
  fc.assert(
    fc.property(
      fc.integer({ min: 1, max: 1000 }),
      fc.integer({ min: 1, max: 100_000 }),
      fc.integer({ min: 1, max: 4 }),
      fc.double({ min: 0, max: 1, noNaN: true }),
      fc.array(fc.double({ min: 0, max: 1, maxExcluded: true, noNaN: true }), {
        minLength: 1,
        maxLength: 30,
      }),
      (minDelay, maxDelay, multiplier, jitter, draws) => {
        let i = 0;
        const delays = backoff({ minDelay, maxDelay, multiplier, jitter, random: () => draws[i] });
        const plain = backoff({ minDelay, maxDelay, multiplier, jitter: 0 });
        for (; i < draws.length; i++) {
          const d = delays.next().value;
          const capped = Math.min(minDelay * multiplier ** i, maxDelay);
          assertEquals(plain.next().value, Math.round(capped));
          const low = Math.round(capped * (1 - jitter));
          const high = Math.round(capped);
          if (!(d >= low && d <= high)) {
            throw new Error(`attempt ${i}: ${d} outside [${low}, ${high}]`);
          }
        }
      },
    ),
    { numRuns: 300 },
  );
});
