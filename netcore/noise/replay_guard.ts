/**
 * Anti-replay memory for the validator handshake: the dialer's first Noise
 * message carries a timestamp, and the responder accepts it only if it is
 * newer than the last one accepted from the same static key. (Diem's
 * `AntiReplayTimestamps` had the same job.)
 *
 * @module
 */

import { staticKeyHex } from "./trusted_peers.ts";

/**
 * Options for {@linkcode ReplayGuard}. Defaults in {@linkcode REPLAY_GUARD_DEFAULTS}.
 *
 * @example
 * ```ts
 * import { ReplayGuard } from "./replay_guard.ts";
 * const guard = new ReplayGuard({ capacity: 1024 });
 * ```
 */
export interface ReplayGuardOptions {
  /**
   * How many static keys to remember. Default 65_536. Beyond it the key
   * accepted longest ago is forgotten, and its timestamp raises a floor that
   * every forgotten or new key must exceed, so forgetting never re-opens a
   * replay.
   */
  capacity?: number;
}

/**
 * The defaults of {@linkcode ReplayGuardOptions}.
 *
 * @example
 * ```ts
 * import { REPLAY_GUARD_DEFAULTS } from "./replay_guard.ts";
 * console.log(REPLAY_GUARD_DEFAULTS.capacity); // 65536
 * ```
 */
export const REPLAY_GUARD_DEFAULTS: Required<ReplayGuardOptions> = { capacity: 65_536 };

/**
 * The last accepted handshake timestamp per static key, bounded in memory.
 *
 * @example
 * ```ts
 * import { ReplayGuard } from "./replay_guard.ts";
 * const guard = new ReplayGuard();
 * const key = new Uint8Array(32).fill(7);
 * console.log(guard.isFresh(key, 1000)); // true
 * guard.accept(key, 1000);
 * console.log(guard.isFresh(key, 1000)); // false: a replay
 * console.log(guard.isFresh(key, 1001)); // true
 * ```
 */
export class ReplayGuard {
  readonly #capacity: number;
  /** Insertion order is acceptance order: the first entry is the oldest. */
  readonly #last = new Map<string, number>();
  /** The largest timestamp among forgotten keys. */
  #floor = Number.NEGATIVE_INFINITY;

  /** A guard remembering at most `options.capacity` keys. */
  constructor(options: ReplayGuardOptions = {}) {
    this.#capacity = options.capacity ?? REPLAY_GUARD_DEFAULTS.capacity;
    if (!(this.#capacity >= 1)) throw new RangeError("ReplayGuard capacity must be at least 1");
  }

  /** How many keys are remembered. */
  get size(): number {
    return this.#last.size;
  }

  /** Whether `timestamp` is newer than anything accepted from `staticKey`. */
  isFresh(staticKey: Uint8Array, timestamp: number): boolean {
    const last = this.#last.get(staticKeyHex(staticKey)) ?? this.#floor;
    return timestamp > last;
  }

  /** Records `timestamp` as the last accepted from `staticKey`. */
  accept(staticKey: Uint8Array, timestamp: number): void {
    const key = staticKeyHex(staticKey);
    this.#last.delete(key);
    this.#last.set(key, timestamp);
    while (this.#last.size > this.#capacity) {
      const [oldest, stamp] = this.#last.entries().next().value!;
      this.#last.delete(oldest);
      if (stamp > this.#floor) this.#floor = stamp;
    }
  }

  /**
   * Checks and records in one step.
   *
   * @returns false, recording nothing, when `timestamp` is not fresh
   */
  checkAndAccept(staticKey: Uint8Array, timestamp: number): boolean {
    if (!this.isFresh(staticKey, timestamp)) return false;
    this.accept(staticKey, timestamp);
    return true;
  }
}
