/**
 * A dial deadline that can be disarmed: unlike `deadlineSignal`, nothing is
 * left pending once the dial is over, so finished dials hold no timers.
 *
 * @module
 */

import { NetworkError } from "../network_error.ts";

/** A signal that fires with `DIAL_TIMEOUT` after `ms` or when `parent` fires, until cleared. */
export interface DialDeadline {
  /** Fires on the deadline (reason: a `DIAL_TIMEOUT` NetworkError) or with the parent's reason. */
  readonly signal: AbortSignal;
  /** Disarms the timer and detaches from the parent. */
  clear(): void;
}

/** Starts a {@linkcode DialDeadline} of `ms` for a dial described by `what`. */
export function dialDeadline(ms: number, what: string, parent?: AbortSignal): DialDeadline {
  const controller = new AbortController();
  const timer = setTimeout(
    () => controller.abort(new NetworkError("DIAL_TIMEOUT", `${what} timed out after ${ms} ms`)),
    ms,
  );
  const onParentAbort = () => controller.abort(parent!.reason);
  parent?.addEventListener("abort", onParentAbort, { once: true });
  if (parent?.aborted) onParentAbort();
  return {
    signal: controller.signal,
    clear() {
      clearTimeout(timer);
      parent?.removeEventListener("abort", onParentAbort);
    },
  };
}
