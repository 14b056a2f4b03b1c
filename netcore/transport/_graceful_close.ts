/**
 * The lifecycle a {@linkcode Connection} shares with a TCP socket, written
 * once for every transport that owns a resource: half-close, the peer's end,
 * and the release that follows both (or a grace period, or an abort).
 *
 * @module
 */

/**
 * Where a connection is in its lifecycle:
 * - `open`: both directions carry bytes;
 * - `writeClosed`: we half-closed (sent our end); the peer may still write;
 * - `readEnded`: the peer's side ended (or we stopped reading); we may still
 *   write;
 * - `released`: the resource is freed. Terminal.
 *
 * `open` moves to `writeClosed` or `readEnded`; either moves to `released`
 * when the other direction ends too (from `readEnded` without a separate
 * half-close). Any state moves to `released` on `release()`.
 */
export type GracefulCloseState = "open" | "writeClosed" | "readEnded" | "released";

/** What a transport does at the two lifecycle edges it owns. */
export interface GracefulCloseHooks {
  /**
   * Sends our end of the byte stream (a TCP FIN). Called at most once, never
   * after `release`, and not at all when the peer's side ended first.
   */
  halfClose(): void;
  /**
   * Frees the resource (which ends our side too). Called exactly once, the
   * first time it is released.
   */
  release(): void;
}

/**
 * The lifecycle state of one connection end. It runs only on open/close
 * edges: reads and writes never pass through it.
 *
 * @example
 * ```ts
 * import { GracefulClose } from "./_graceful_close.ts";
 * const lifecycle = new GracefulClose({
 *   halfClose: () => console.log("FIN"),
 *   release: () => console.log("released"),
 * });
 * lifecycle.closeWrite(); // FIN
 * lifecycle.endRead(); // released
 * await lifecycle.closed;
 * ```
 */
export class GracefulClose {
  /** Settles when the connection is released. Never rejects. */
  readonly closed: Promise<void>;

  readonly #hooks: GracefulCloseHooks;
  #state: GracefulCloseState = "open";
  /** Made only while `readEnded` waits (most connections never do). */
  #readEnd: PromiseWithResolvers<void> | undefined;
  readonly #release = Promise.withResolvers<void>();

  /** @param hooks what to do on half-close and on release */
  constructor(hooks: GracefulCloseHooks) {
    this.#hooks = hooks;
    this.closed = this.#release.promise;
  }

  /** Whether the resource is released. */
  get released(): boolean {
    return this.#state === "released";
  }

  /**
   * Our side is done writing: half-close, or, when the peer's side already
   * ended, release at once (closing the resource ends our side too, so the
   * half-close would be a wasted system call).
   */
  closeWrite(): void {
    if (this.#state === "writeClosed" || this.#state === "released") return;
    if (this.#state === "readEnded") {
      this.release();
      return;
    }
    this.#state = "writeClosed";
    this.#hooks.halfClose();
  }

  /** The peer's side ended (or we stopped reading): release if ours is done too. */
  endRead(): void {
    if (this.#state === "readEnded" || this.#state === "released") return;
    const writeClosed = this.#state === "writeClosed";
    this.#state = "readEnded";
    this.#readEnd?.resolve();
    if (writeClosed) this.release();
  }

  /** Frees the resource now, whatever the state. Idempotent. */
  release(): void {
    if (this.#state === "released") return;
    this.#state = "released";
    this.#hooks.release();
    this.#readEnd?.resolve();
    this.#release.resolve();
  }

  /**
   * Waits until the peer's side ended (or we stopped reading), or at most
   * `gracePeriod` ms, whichever is first.
   */
  async readEnded(gracePeriod: number): Promise<void> {
    if (this.#state === "readEnded" || this.#state === "released") return;
    this.#readEnd ??= Promise.withResolvers<void>();
    const grace = Promise.withResolvers<void>();
    const timer = setTimeout(grace.resolve, gracePeriod);
    try {
      await Promise.race([this.#readEnd.promise, grace.promise]);
    } finally {
      clearTimeout(timer);
    }
  }
}
