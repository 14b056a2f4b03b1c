/**
 * Yamux flow control: each stream's send window (what the peer lets us
 * send) and receive window (what we let the peer send), with window
 * auto-tuning within a budget shared by the session's streams.
 *
 * From the spec: "Each stream has a window of 256 KiB ... a Window Update
 * frame ... is used to indicate that the sender is able to receive more
 * data"; "the sender must not send more than the window allows". Internal
 * to `netcore/multiplexing`.
 *
 * @module
 */

import { NetworkError } from "../network_error.ts";
import { INITIAL_STREAM_WINDOW, MAX_WINDOW } from "./frame.ts";

/**
 * The bytes of receive window all streams of a session may hold together:
 * auto-tuning grows a window only within it.
 */
export class WindowBudget {
  readonly #max: number;
  #used = 0;
  readonly #onGrown: (bytes: number) => void;

  /** A budget of `max` bytes; `onGrown` hears of every growth granted. */
  constructor(max: number, onGrown: (bytes: number) => void) {
    this.#max = max;
    this.#onGrown = onGrown;
  }

  /** Takes a new stream's initial window (always granted). */
  open(bytes: number): void {
    this.#used += bytes;
  }

  /** Asks to grow a window by `bytes`; returns how many are granted. */
  grow(bytes: number): number {
    const granted = Math.max(0, Math.min(bytes, this.#max - this.#used));
    this.#used += granted;
    if (granted > 0) this.#onGrown(granted);
    return granted;
  }

  /** Gives back a stream's window when it goes away. */
  release(bytes: number): void {
    this.#used -= bytes;
  }
}

/** What the peer lets us send on one stream. */
export class SendWindow {
  #available = INITIAL_STREAM_WINDOW;
  #waiter: PromiseWithResolvers<void> | undefined;

  /** Bytes we may send now. */
  get available(): number {
    return this.#available;
  }

  /** We sent `n` bytes. */
  take(n: number): void {
    this.#available -= n;
  }

  /**
   * The peer granted `delta` more bytes.
   *
   * @throws {NetworkError} `PROTOCOL_VIOLATION` when the window would pass 2^32 - 1
   */
  grant(delta: number, streamId: number): void {
    if (this.#available + delta > MAX_WINDOW) {
      throw new NetworkError(
        "PROTOCOL_VIOLATION",
        `yamux: stream ${streamId} send window overflows 2^32 - 1`,
      );
    }
    this.#available += delta;
    if (this.#waiter !== undefined && this.#available > 0) {
      const waiter = this.#waiter;
      this.#waiter = undefined;
      waiter.resolve();
    }
  }

  /** Resolves when the window opens (rejects with the error given to `fail`). */
  opened(): Promise<void> {
    this.#waiter ??= Promise.withResolvers<void>();
    return this.#waiter.promise;
  }

  /** Wakes a waiting writer with `error`. */
  fail(error: NetworkError): void {
    const waiter = this.#waiter;
    this.#waiter = undefined;
    if (waiter !== undefined) {
      waiter.reject(error);
      waiter.promise.catch(() => {});
    }
  }
}

/**
 * What we let the peer send on one stream. Invariant:
 * `credit + buffered <= window`, so what the peer can make us hold is
 * bounded by the window we granted.
 */
export class ReceiveWindow {
  #window: number;
  #credit: number;
  #buffered = 0;
  #lastUpdate = performance.now();
  readonly #max: number;
  readonly #budget: WindowBudget;

  /** A window of `initial` bytes, allowed to grow to `max` within `budget`. */
  constructor(initial: number, max: number, budget: WindowBudget) {
    this.#window = initial;
    this.#credit = initial;
    this.#max = max;
    this.#budget = budget;
    budget.open(initial);
  }

  /** The window currently granted (what auto-tuning grows). */
  get window(): number {
    return this.#window;
  }

  /** Bytes the peer may still send before our next window update. */
  get credit(): number {
    return this.#credit;
  }

  /** Bytes received and not yet consumed by the application. */
  get buffered(): number {
    return this.#buffered;
  }

  /**
   * A Data frame of `length` bytes is announced.
   *
   * @throws {NetworkError} `PROTOCOL_VIOLATION` when it exceeds the credit
   */
  announce(length: number, streamId: number): void {
    if (length > this.#credit) {
      throw new NetworkError(
        "PROTOCOL_VIOLATION",
        `yamux: stream ${streamId} received ${length} bytes with a window of ${this.#credit}`,
      );
    }
    this.#credit -= length;
  }

  /** `n` bytes of an announced frame are held for the application. */
  hold(n: number): void {
    this.#buffered += n;
  }

  /** Held bytes were dropped (the stream was reset or its reader left). */
  dropAll(): void {
    this.#buffered = 0;
  }

  /**
   * The application consumed `n` held bytes. Returns the window update to
   * send (0 for none): what was consumed, once that is at least half the
   * window (fewer, larger updates). Auto-tuning: when half a window was
   * consumed in less than two round trips, the window, not the link,
   * limited the transfer, so the window doubles (up to the maximum and the
   * budget), as QUIC implementations and rust-yamux do. `clock.rtt()` (NaN
   * while unknown) is asked only when an update is due: asking may start a
   * ping.
   */
  consumed(n: number, clock: { rtt(): number }): number {
    this.#buffered -= n;
    let grant = this.#window - this.#credit - this.#buffered;
    if (grant < this.#window / 2) return 0;
    const now = performance.now();
    const roundTrip = clock.rtt();
    if (roundTrip > 0 && now - this.#lastUpdate < 2 * roundTrip) {
      const wanted = Math.min(this.#window, this.#max - this.#window);
      if (wanted > 0) {
        const granted = this.#budget.grow(wanted);
        this.#window += granted;
        grant += granted;
      }
    }
    this.#lastUpdate = now;
    this.#credit += grant;
    return grant;
  }

  /** The stream is gone: its window goes back to the budget. */
  close(): void {
    this.#budget.release(this.#window);
  }
}
