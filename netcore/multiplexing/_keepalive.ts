/**
 * Yamux pings: round-trip measurement and keepalive. From the spec: "Ping
 * ... used to measure RTT. It can also be used to heart-beat and do
 * keep-alives over TCP"; the opaque value is echoed with the ACK flag.
 * Internal to `netcore/multiplexing`.
 *
 * @module
 */

import { abortable, Deadline } from "../_async.ts";
import { NetworkError } from "../network_error.ts";

interface PendingPing {
  start: number;
  resolve: (ms: number) => void;
  reject: (err: NetworkError) => void;
}

/** Options of {@linkcode Pings}. */
export interface PingsOptions {
  /** Sends a Ping frame with the SYN flag and opaque value `id`. */
  send(id: number): void;
  /** Interval of keepalive pings in ms; 0 turns them off. */
  keepAliveInterval: number;
  /** How long a keepalive ping may stay unanswered, in ms. */
  pingTimeout: number;
  /**
   * When the peer last sent anything, in `performance.now()` time. A ping
   * whose answer is late while other frames arrive means a busy peer or a
   * deep queue, not a dead one.
   */
  lastReceived(): number;
  /** A keepalive ping went unanswered: the session is dead. */
  onDead(error: NetworkError): void;
}

/** The pings of one session: those in flight, the smoothed RTT, the keepalive timer. */
export class Pings {
  readonly #options: PingsOptions;
  /** Pings in flight (made with the first: most sessions of a quiet process have none). */
  #pending: Map<number, PendingPing> | undefined;
  #next = 1;
  #srtt = Number.NaN;
  #probing = false;
  #keepAliveTimer: ReturnType<typeof setInterval> | undefined;
  #keepAlivePending = false;
  #stopped: NetworkError | undefined;

  /** Nothing runs until {@linkcode Pings.start}. */
  constructor(options: PingsOptions) {
    this.#options = options;
  }

  /** The smoothed round-trip time in ms, once measured. */
  get rtt(): number | undefined {
    return Number.isNaN(this.#srtt) ? undefined : this.#srtt;
  }

  /**
   * The smoothed RTT for window auto-tuning, NaN until measured; the first
   * call starts the measurement, so a short-lived session sends no ping.
   */
  rttForTuning(): number {
    if (Number.isNaN(this.#srtt) && !this.#probing && this.#stopped === undefined) {
      this.#probing = true;
      this.ping().catch(() => {}).finally(() => {
        this.#probing = false;
      });
    }
    return this.#srtt;
  }

  /** Arms keepalive pings. */
  start(): void {
    const interval = this.#options.keepAliveInterval;
    if (interval > 0) this.#keepAliveTimer = setInterval(() => this.#keepAlive(), interval);
  }

  /**
   * Measures the round trip with a Ping frame.
   *
   * @throws {NetworkError} the session's error when it ends first; the
   *   signal's error when it fires
   */
  ping(signal?: AbortSignal): Promise<number> {
    if (this.#stopped !== undefined) return Promise.reject(this.#stopped);
    const id = this.#next;
    this.#next = (this.#next + 1) >>> 0 || 1;
    const { promise, resolve, reject } = Promise.withResolvers<number>();
    const pendingPings = this.#pending ??= new Map();
    pendingPings.set(id, { start: performance.now(), resolve, reject });
    this.#options.send(id);
    if (signal === undefined) return promise;
    signal.addEventListener("abort", () => pendingPings.delete(id), { once: true });
    return abortable(promise, signal);
  }

  /** The peer answered ping `id`. Unknown answers are ignored. */
  onAck(id: number): void {
    const pending = this.#pending?.get(id);
    if (pending === undefined) return;
    this.#pending!.delete(id);
    const rtt = performance.now() - pending.start;
    // Smoothed like TCP's SRTT (RFC 6298): new samples weigh 1/8.
    this.#srtt = Number.isNaN(this.#srtt) ? rtt : this.#srtt * 0.875 + rtt * 0.125;
    pending.resolve(rtt);
  }

  /** Stops keepalive; pings in flight and later ones fail with `error`. */
  stop(error: NetworkError): void {
    this.#stopKeepAlive();
    if (this.#stopped !== undefined) return;
    this.#stopped = error;
    for (const pending of this.#pending?.values() ?? []) pending.reject(error);
    this.#pending = undefined;
  }

  /** Stops keepalive pings only (a closing session still answers and measures). */
  stopKeepAlive(): void {
    this.#stopKeepAlive();
  }

  #stopKeepAlive(): void {
    if (this.#keepAliveTimer !== undefined) {
      clearInterval(this.#keepAliveTimer);
      this.#keepAliveTimer = undefined;
    }
  }

  async #keepAlive(): Promise<void> {
    if (this.#keepAlivePending || this.#stopped !== undefined) return;
    this.#keepAlivePending = true;
    const { pingTimeout } = this.#options;
    const deadline = new Deadline(pingTimeout, { what: "yamux keepalive ping" });
    const sent = performance.now();
    try {
      await this.ping(deadline.signal);
    } catch (err) {
      if (deadline.expired && this.#stopped === undefined && this.#options.lastReceived() <= sent) {
        this.#options.onDead(
          new NetworkError("TIMEOUT", `yamux: keepalive ping unanswered for ${pingTimeout} ms`, {
            cause: err,
          }),
        );
      }
    } finally {
      deadline.clear();
      this.#keepAlivePending = false;
    }
  }
}
