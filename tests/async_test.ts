/**
 * The internal async helpers: every cancellation and time-out surfaces as a
 * NetworkError, no timer outlives the operation it guards, and backoff follows
 * its documented formula.
 *
 * Deno's test sanitizers stay on. They do not see timers (nor unref'd ones),
 * so timer leaks are checked by counting the timers armed through
 * `setTimeout` and not yet fired or cleared.
 */

import fc from "fast-check";
import {
  abortable,
  abortError,
  backoff,
  BACKOFF_DEFAULTS,
  deadline,
  deadlineSignal,
  delay,
} from "../netcore/_async.ts";
import { NetworkError } from "../netcore/network_error.ts";
import { assertEquals, assertRejectsCode } from "./_assert.ts";

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

// --- deadline ---

Deno.test("deadline returns the value when the promise wins", async () => {
  assertEquals(await deadline(delay(5).then(() => "pong"), 10_000), "pong");
});

Deno.test("deadline passes the promise's own rejection through", async () => {
  const failure = new NetworkError("CONNECTION_RESET", "reset");
  const err = await assertRejectsCode(
    deadline(Promise.reject(failure), 10_000),
    "CONNECTION_RESET",
  );
  if (err !== failure) throw new Error("expected the same error");
});

Deno.test("deadline rejects with TIMEOUT naming what timed out", async () => {
  const err = await assertRejectsCode(deadline(never(), 10, { what: "ping" }), "TIMEOUT");
  if (!err.message.includes("ping")) throw new Error(`message: ${err.message}`);
});

Deno.test("deadline rejects with the custom code when given one", async () => {
  await assertRejectsCode(deadline(never(), 10, { code: "DIAL_TIMEOUT" }), "DIAL_TIMEOUT");
});

Deno.test("deadline rejects with ABORTED when its parent signal fires first", async () => {
  const controller = new AbortController();
  const waiting = deadline(never(), 60_000, { signal: controller.signal });
  controller.abort();
  await assertRejectsCode(waiting, "ABORTED");
});

Deno.test("deadline leaves no timer armed once it settles, whichever way", async () => {
  using timers = trackTimers();
  await deadline(Promise.resolve(1), 60_000);
  assertEquals(timers.live, 0, "after resolving:");
  await deadline(Promise.reject(new Error("x")), 60_000).catch(() => {});
  assertEquals(timers.live, 0, "after rejecting:");
  await assertRejectsCode(deadline(never(), 5), "TIMEOUT");
  assertEquals(timers.live, 0, "after timing out:");
  const controller = new AbortController();
  const waiting = deadline(never(), 60_000, { signal: controller.signal });
  controller.abort();
  await assertRejectsCode(waiting, "ABORTED");
  assertEquals(timers.live, 0, "after the parent aborted:");
});

Deno.test("a settled deadline does not hold the process; an unwatched deadlineSignal never does", async () => {
  // The child settles a 60 s deadline, arms a 60 s deadlineSignal nobody
  // waits on, and must then exit at once. It also runs the JSDoc example:
  // a deadline that is awaited fires even when nothing else keeps the
  // process alive.
  const url = new URL("../netcore/_async.ts", import.meta.url).href;
  const script = `
    import { deadline, deadlineSignal } from ${JSON.stringify(url)};
    console.log(await deadline(Promise.resolve("settled"), 60_000));
    deadlineSignal(60_000);
    try {
      await deadline(new Promise(() => {}), 10, { what: "ping" });
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
  assertEquals(new TextDecoder().decode(output.stdout), "settled\nTIMEOUT\n");
  if (elapsed > 15_000) throw new Error(`child took ${elapsed} ms to exit`);
});

// --- deadlineSignal ---

Deno.test("deadlineSignal fires after ms with a NetworkError of the given code", async () => {
  const signal = deadlineSignal(10, { code: "HANDSHAKE_FAILED", what: "handshake" });
  assertEquals(signal.aborted, false);
  // Its timer is unref'd, so something else must keep the test alive: a
  // delay that the signal cuts short. The helper reports that error as is.
  const err = await assertRejectsCode(delay(60_000, { signal }), "HANDSHAKE_FAILED");
  if (err !== signal.reason) throw new Error("expected the signal's reason");
  if (!err.message.includes("handshake timed out after 10 ms")) {
    throw new Error(`message: ${err.message}`);
  }
});

Deno.test("deadlineSignal defaults to TIMEOUT", async () => {
  await assertRejectsCode(delay(60_000, { signal: deadlineSignal(5) }), "TIMEOUT");
});

Deno.test("deadlineSignal fires with the parent's reason when the parent fires first, and disarms", () => {
  using timers = trackTimers();
  const parent = new AbortController();
  const signal = deadlineSignal(60_000, { signal: parent.signal });
  assertEquals(timers.live, 1);
  parent.abort("caller gave up");
  assertEquals(signal.aborted, true);
  assertEquals(signal.reason, "caller gave up");
  assertEquals(timers.live, 0);
});

Deno.test("deadlineSignal with an already aborted parent is aborted and arms nothing lasting", () => {
  using timers = trackTimers();
  const parent = new AbortController();
  parent.abort("early");
  const signal = deadlineSignal(60_000, { signal: parent.signal });
  assertEquals(signal.aborted, true);
  assertEquals(signal.reason, "early");
  assertEquals(timers.live, 0);
});

Deno.test("deadlineSignal's timer is gone once it has fired", async () => {
  using timers = trackTimers();
  const signal = deadlineSignal(5);
  const keepAlive = delay(60_000, { signal }); // ref'd until the signal fires
  assertEquals(timers.live, 2);
  await assertRejectsCode(keepAlive, "TIMEOUT");
  assertEquals(timers.live, 0);
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
