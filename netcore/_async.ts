/**
 * The few async helpers the stack needs from `@std/async` (which lives on JSR,
 * unreachable here): `delay`, `abortable`, one `Deadline` and exponential backoff
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
 * a `NetworkError` (e.g. a `TIMEOUT` from a {@linkcode Deadline}), otherwise an
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

/** Options for {@linkcode Deadline}. */
export interface DeadlineOptions extends SignalOptions {
  /** The code of the error the signal fires with at the deadline. Default `"TIMEOUT"`. */
  code?: NetworkErrorCode;
  /** What timed out, for the error message. Default `"operation"`. */
  what?: string;
}

/**
 * One deadline for a multi-step operation (a handshake, a negotiation, a
 * request): `signal` fires with a `NetworkError` (`TIMEOUT` unless another
 * code is given) after `ms`, or with the reason of the caller's `signal` if
 * that fires first. Every timeout of the stack is one of these.
 *
 * Unlike `AbortSignal.timeout`, the timer is cleared as soon as the
 * operation ends (`clear()`, or `using`), so a finished operation leaves no
 * timer behind, and a timed-out one fails with the stack's own error. The
 * timer keeps the process alive while it runs: a pending deadline is work
 * in progress.
 *
 * @example
 * ```ts
 * import { Deadline } from "./_async.ts";
 * import { NetworkError } from "./network_error.ts";
 * {
 *   using deadline = new Deadline(10, { what: "ping" });
 *   try {
 *     await deadline.race(new Promise(() => {}));
 *   } catch (err) {
 *     console.log(NetworkError.is(err, "TIMEOUT")); // true
 *   }
 * }
 * ```
 */
export class Deadline implements Disposable {
  /** Fires at the deadline or when the caller's signal fires, whichever is first. */
  readonly signal: AbortSignal;
  readonly #controller = new AbortController();
  readonly #timer: ReturnType<typeof setTimeout>;
  readonly #parent: AbortSignal | undefined;
  readonly #onParentAbort: (() => void) | undefined;

  /**
   * Arms a deadline `ms` from now.
   *
   * @param ms milliseconds until the deadline
   * @param options the error's code and wording, and a caller's signal to follow
   */
  constructor(ms: number, options: DeadlineOptions = {}) {
    const { code = "TIMEOUT", what = "operation", signal: parent } = options;
    const controller = this.#controller;
    this.signal = controller.signal;
    this.#timer = setTimeout(
      () => controller.abort(new NetworkError(code, `${what} timed out after ${ms} ms`)),
      ms,
    );
    if (parent !== undefined) {
      if (parent.aborted) {
        controller.abort(parent.reason);
      } else {
        this.#parent = parent;
        this.#onParentAbort = () => {
          clearTimeout(this.#timer);
          controller.abort(parent.reason);
        };
        parent.addEventListener("abort", this.#onParentAbort, { once: true });
      }
    }
    if (controller.signal.aborted) this.clear();
  }

  /** Whether the deadline passed or the caller cancelled. */
  get expired(): boolean {
    return this.signal.aborted;
  }

  /** The error to fail with once {@linkcode Deadline.expired}. */
  get error(): NetworkError {
    return abortError(this.signal);
  }

  /** Throws {@linkcode Deadline.error} if the deadline already passed. */
  check(): void {
    if (this.signal.aborted) throw abortError(this.signal);
  }

  /**
   * Settles like `promise`, or rejects with {@linkcode Deadline.error} when
   * the signal fires first. The work behind `promise` is not cancelled by
   * this: give it the signal, or abort what it waits on.
   */
  race<T>(promise: Promise<T>): Promise<T> {
    return abortable(promise, this.signal);
  }

  /** Disarms the timer and detaches from the caller's signal. Idempotent. */
  clear(): void {
    clearTimeout(this.#timer);
    if (this.#onParentAbort !== undefined) {
      this.#parent!.removeEventListener("abort", this.#onParentAbort);
    }
  }

  /** {@linkcode Deadline.clear}, for `using`. */
  [Symbol.dispose](): void {
    this.clear();
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
