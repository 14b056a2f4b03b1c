/**
 * The few async helpers the stack needs from `@std/async` (which lives on JSR,
 * unreachable here): `delay`, `deadline`, `abortable` and exponential backoff
 * with jitter. Internal: other modules import them, users do not.
 *
 * Every helper reports cancellation and time-outs as {@linkcode NetworkError}
 * so callers see one error type.
 *
 * @module
 */

import { NetworkError, type NetworkErrorCode } from "./network_error.ts";

/** Options taking an optional `AbortSignal`. */
export interface SignalOptions {
  /** Cancels the wait; the promise rejects with the signal's reason. */
  signal?: AbortSignal;
}

/**
 * The error to reject with when `signal` fired: its reason if that is already
 * a `NetworkError` (e.g. a `TIMEOUT` from {@linkcode deadline}), otherwise an
 * `ABORTED` error that keeps the reason as cause.
 */
export function abortError(signal: AbortSignal): NetworkError {
  const reason = signal.reason;
  if (reason instanceof NetworkError) return reason;
  if (reason instanceof DOMException && reason.name === "TimeoutError") {
    return new NetworkError("TIMEOUT", "operation timed out", { cause: reason });
  }
  return new NetworkError("ABORTED", "operation aborted", { cause: reason });
}

/**
 * Resolves after `ms` milliseconds, or rejects early when `signal` fires.
 *
 * @example
 * ```ts
 * import { delay } from "./_async.ts";
 * await delay(5);
 * ```
 */
export function delay(ms: number, options: SignalOptions = {}): Promise<void> {
  const { signal } = options;
  if (signal?.aborted) return Promise.reject(abortError(signal));
  return new Promise((resolve, reject) => {
    const onAbort = () => {
      clearTimeout(timer);
      reject(abortError(signal!));
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener("abort", onAbort);
      resolve();
    }, ms);
    signal?.addEventListener("abort", onAbort, { once: true });
  });
}

/**
 * Settles like `promise`, or rejects with `signal`'s reason as a
 * `NetworkError` if it fires first. The underlying work is not cancelled by
 * this helper; pass the same signal into it when it can take one.
 *
 * @example
 * ```ts
 * import { abortable } from "./_async.ts";
 * const value = await abortable(Promise.resolve(1), AbortSignal.timeout(100));
 * ```
 */
export function abortable<T>(promise: Promise<T>, signal: AbortSignal | undefined): Promise<T> {
  if (signal === undefined) return promise;
  if (signal.aborted) {
    promise.catch(() => {}); // the caller stopped waiting; a late rejection is not unhandled
    return Promise.reject(abortError(signal));
  }
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => {
      promise.catch(() => {});
      reject(abortError(signal));
    };
    signal.addEventListener("abort", onAbort, { once: true });
    promise.then(
      (value) => {
        signal.removeEventListener("abort", onAbort);
        resolve(value);
      },
      (err) => {
        signal.removeEventListener("abort", onAbort);
        reject(err);
      },
    );
  });
}

/** Options for {@linkcode deadline}. */
export interface DeadlineOptions extends SignalOptions {
  /** The code of the error thrown on time-out. Default `"TIMEOUT"`. */
  code?: NetworkErrorCode;
  /** What timed out, for the error message. Default `"operation"`. */
  what?: string;
}

/**
 * A signal that fires after `ms` with a `NetworkError` of `code` as reason, or
 * when `parent` fires. Use it to give a whole multi-step operation (a
 * handshake, a request) one deadline.
 *
 * @example
 * ```ts
 * import { deadlineSignal } from "./_async.ts";
 * const signal = deadlineSignal(1000, { what: "handshake", code: "HANDSHAKE_FAILED" });
 * ```
 */
export function deadlineSignal(ms: number, options: DeadlineOptions = {}): AbortSignal {
  // Unref so an armed deadline never keeps the process (or a test) alive.
  return timeoutSignal(ms, options, false);
}

/**
 * The signal behind {@linkcode deadlineSignal} and {@linkcode deadline}. The
 * timer is cleared as soon as the signal fires, whether by time-out or by the
 * parent, so a finished operation leaves no timer behind.
 */
function timeoutSignal(ms: number, options: DeadlineOptions, keepAlive: boolean): AbortSignal {
  const { code = "TIMEOUT", what = "operation", signal } = options;
  const controller = new AbortController();
  const timer = setTimeout(
    () => controller.abort(new NetworkError(code, `${what} timed out after ${ms} ms`)),
    ms,
  );
  if (!keepAlive) Deno.unrefTimer(timer);
  const combined = signal === undefined
    ? controller.signal
    : AbortSignal.any([controller.signal, signal]);
  if (combined.aborted) clearTimeout(timer);
  else combined.addEventListener("abort", () => clearTimeout(timer), { once: true });
  return combined;
}

/**
 * Settles like `promise`, or rejects with a `NetworkError` (`TIMEOUT` unless
 * another code is given) after `ms` milliseconds.
 *
 * @example
 * ```ts
 * import { deadline } from "./_async.ts";
 * import { NetworkError } from "./network_error.ts";
 * try {
 *   await deadline(new Promise(() => {}), 10, { what: "ping" });
 * } catch (err) {
 *   console.log(NetworkError.is(err, "TIMEOUT")); // true
 * }
 * ```
 */
export async function deadline<T>(
  promise: Promise<T>,
  ms: number,
  options: DeadlineOptions = {},
): Promise<T> {
  const done = new AbortController();
  const parent = options.signal === undefined
    ? done.signal
    : AbortSignal.any([options.signal, done.signal]);
  // Someone awaits this one, so its timer keeps the process alive until it
  // fires or the promise settles (aborting `done` clears it).
  const signal = timeoutSignal(ms, { ...options, signal: parent }, true);
  try {
    return await abortable(promise, signal);
  } finally {
    done.abort();
  }
}

/** Options for {@linkcode backoff}. Defaults in {@linkcode BACKOFF_DEFAULTS}. */
export interface BackoffOptions {
  /** First delay in ms. Default 100. */
  minDelay?: number;
  /** Largest delay in ms. Default 30_000. */
  maxDelay?: number;
  /** Growth per attempt. Default 2. */
  multiplier?: number;
  /** Fraction of each delay that is random, 0..1. Default 0.5. */
  jitter?: number;
  /** Random source in [0, 1), for tests. Default `Math.random`. */
  random?: () => number;
}

/** The defaults of {@linkcode BackoffOptions}. */
export const BACKOFF_DEFAULTS: Required<BackoffOptions> = {
  minDelay: 100,
  maxDelay: 30_000,
  multiplier: 2,
  jitter: 0.5,
  random: Math.random,
};

/**
 * An endless sequence of retry delays: exponential growth from `minDelay`
 * capped at `maxDelay`, each with a random part so that peers reconnecting
 * after a common outage do not retry in lock step.
 *
 * @example
 * ```ts
 * import { backoff } from "./_async.ts";
 * const delays = backoff({ minDelay: 10, maxDelay: 100, jitter: 0 });
 * console.log([...Array(5)].map(() => delays.next().value)); // [10, 20, 40, 80, 100]
 * ```
 */
export function* backoff(options: BackoffOptions = {}): Generator<number, never> {
  const { minDelay, maxDelay, multiplier, jitter, random } = { ...BACKOFF_DEFAULTS, ...options };
  let base = minDelay;
  while (true) {
    const capped = Math.min(base, maxDelay);
    yield Math.round(capped * (1 - jitter) + capped * jitter * random());
    base = Math.min(base * multiplier, maxDelay);
  }
}
