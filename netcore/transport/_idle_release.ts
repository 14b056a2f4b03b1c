/**
 * Buffers kept for reuse, dropped once their holder went idle. A busy
 * connection keeps its write buffers between turns so that it allocates
 * none per write; an idle one should not keep them at all: a process with
 * a thousand connections, each of which once wrote something, would
 * otherwise hold a thousand sets of buffers (64 KiB of cork, 16 KiB and
 * more of Noise and yamux frames each) for nothing.
 *
 * Holders report each use with {@linkcode keptForReuse}; one timer for the
 * whole process (unref'd: it never keeps the process alive, and it stops
 * when no holder is left) calls `[releaseIdle]()` on every holder that kept
 * buffers through a whole {@linkcode IDLE_RELEASE_INTERVAL} without using
 * them, so a buffer outlives its last use by one to two intervals. A
 * holder that is used again after that allocates afresh, once. Internal to
 * the stack.
 *
 * @module
 */

/**
 * The method a holder implements: drops what it keeps for reuse (it is
 * idle), so the next use allocates again. A symbol, so that it stays out of
 * the holders' public API.
 */
export const releaseIdle: unique symbol = Symbol("releaseIdle");

/** Something that keeps buffers for reuse and can drop them. */
export interface IdleReleasable {
  /** Drops what is kept for reuse. */
  [releaseIdle](): void;
}

/** How often idle holders are looked for, in ms. */
export const IDLE_RELEASE_INTERVAL = 1_000;

/** Holders keeping buffers, with the sweep count at their last use. */
const holders = new Map<IdleReleasable, number>();
let sweeps = 0;
let timer: ReturnType<typeof setInterval> | undefined;

/**
 * Notes that `holder` used its kept buffers now and keeps them: it is
 * released once a whole interval passes without another call.
 *
 * @example
 * ```ts
 * import { keptForReuse, releaseIdle } from "./_idle_release.ts";
 * class Writer {
 *   #spare: Uint8Array | undefined;
 *   write(): void {
 *     this.#spare ??= new Uint8Array(64 * 1024);
 *     keptForReuse(this);
 *   }
 *   [releaseIdle](): void {
 *     this.#spare = undefined;
 *   }
 * }
 * new Writer().write();
 * ```
 */
export function keptForReuse(holder: IdleReleasable): void {
  holders.set(holder, sweeps);
  if (timer === undefined) {
    timer = setInterval(sweep, IDLE_RELEASE_INTERVAL);
    Deno.unrefTimer(timer);
  }
}

/**
 * Forgets `holder` without releasing it (it dropped its buffers itself,
 * e.g. on close).
 */
export function forgetHolder(holder: IdleReleasable): void {
  holders.delete(holder);
}

function sweep(): void {
  sweeps++;
  for (const [holder, lastUse] of holders) {
    // Used before the previous sweep and not since: a whole interval idle.
    if (lastUse < sweeps - 1) {
      holders.delete(holder);
      holder[releaseIdle]();
    }
  }
  if (holders.size === 0) {
    clearInterval(timer);
    timer = undefined;
  }
}
