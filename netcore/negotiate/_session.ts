/**
 * One negotiation's hold on a duplex: the locks on both halves, the deadline,
 * and the two ways out. `succeed` hands the stream on with any read-ahead
 * bytes; `fail` releases the locks so the caller can close the stream, which
 * is then mid-message and must not be reused: negotiation never leaves a
 * half-read stream behind silently.
 *
 * @module
 */

import { abortError } from "../_async.ts";
import { ByteReader } from "../byte_reader.ts";
import { defaultRegistry } from "../metrics.ts";
import { NetworkError } from "../network_error.ts";
import type { Duplex } from "../transport/connection.ts";
import type { Role } from "../transport/transport.ts";
import { decodeLine } from "./_message.ts";
import { NEGOTIATE_DEFAULTS, type NegotiateOptions } from "./options.ts";

const failures = defaultRegistry.counter(
  "netcore_negotiation_failures_total",
  "multistream-select negotiations that failed, by our role and error code",
  ["role", "code"],
);

/** The options with defaults filled in. */
export type ResolvedOptions = Required<Omit<NegotiateOptions, "signal">> & {
  signal?: AbortSignal;
};

/** Fills in {@linkcode NEGOTIATE_DEFAULTS} and checks the numbers. */
export function resolveOptions(options: NegotiateOptions = {}): ResolvedOptions {
  const resolved = { ...NEGOTIATE_DEFAULTS, ...options };
  for (const key of ["timeout", "maxLineLength", "maxAttempts"] as const) {
    const value = resolved[key];
    if (!Number.isSafeInteger(value) || value < 0) {
      throw new RangeError(`${key} must be a non-negative integer, got ${value}`);
    }
  }
  return resolved;
}

/** The locks, the deadline and the line reader of one negotiation. */
export class Session {
  readonly #duplex: Duplex;
  readonly #reader: ByteReader;
  /**
   * Taken at the first write: a listener whose answer rides on later data
   * (`deferAnswer`, the handler's first write) never writes here, and a
   * writer's lock costs on release (two error objects).
   */
  #writer: WritableStreamDefaultWriter<Uint8Array> | undefined;
  readonly #maxLineLength: number;
  readonly #role: Role;
  #failed: Promise<never> | undefined;
  #timer: ReturnType<typeof setTimeout> | undefined;
  #signal: AbortSignal | undefined;
  #onAbort: (() => void) | undefined;
  #done = false;

  /**
   * Takes the lock on the readable half of `duplex` (the writable's is taken
   * at the first write); arms nothing yet.
   */
  constructor(duplex: Duplex, role: Role, options: ResolvedOptions) {
    if (duplex.writable.locked) throw new TypeError("the duplex's writable is locked");
    this.#reader = new ByteReader(duplex.readable);
    this.#duplex = duplex;
    this.#role = role;
    this.#maxLineLength = options.maxLineLength;
  }

  /** The reader, for optimistic mode to pass data through after negotiation. */
  get reader(): ByteReader {
    return this.#reader;
  }

  /** The writer, for optimistic mode to pass data through after negotiation. */
  get writer(): WritableStreamDefaultWriter<Uint8Array> {
    return this.#writer ??= this.#duplex.writable.getWriter();
  }

  /** Bytes the peer sent that are not read yet. */
  get buffered(): number {
    return this.#reader.buffered;
  }

  /**
   * Starts the deadline and follows the caller's signal. Every pending read
   * or write then loses the race to the first of them to fire.
   */
  arm(options: ResolvedOptions): void {
    const { timeout, signal } = options;
    let fail!: (err: NetworkError) => void;
    this.#failed = new Promise<never>((_, reject) => fail = reject);
    // Nobody may be racing at the moment it fires; that is not unhandled.
    this.#failed.catch(() => {});
    const timer = setTimeout(() => {
      fail(new NetworkError("TIMEOUT", `protocol negotiation timed out after ${timeout} ms`));
    }, timeout);
    // An armed deadline must not keep the process (or a test) alive.
    Deno.unrefTimer(timer);
    this.#timer = timer;
    if (signal !== undefined) {
      if (signal.aborted) {
        fail(abortError(signal));
      } else {
        this.#signal = signal;
        this.#onAbort = () => fail(abortError(signal));
        signal.addEventListener("abort", this.#onAbort, { once: true });
      }
    }
  }

  #race<T>(promise: Promise<T>): Promise<T> {
    return this.#failed === undefined ? promise : Promise.race([promise, this.#failed]);
  }

  /** Writes `bytes` (ours: no one touches them afterwards). */
  async write(bytes: Uint8Array): Promise<void> {
    try {
      await this.#race(this.writer.write(bytes));
    } catch (err) {
      throw NetworkError.wrap(err, "CONNECTION_RESET", "negotiation write failed");
    }
  }

  /**
   * Reads one message as a line without its `\n`.
   *
   * @throws {NetworkError} `FRAME_TOO_LARGE` above the line limit,
   *   `PROTOCOL_VIOLATION` for a malformed message, `CONNECTION_CLOSED` or
   *   `CONNECTION_RESET` when the stream ends or fails, `TIMEOUT`, `ABORTED`
   */
  async readLine(): Promise<string> {
    const length = await this.#race(this.#reader.readVarint(this.#maxLineLength));
    if (length === 0) {
      throw new NetworkError("PROTOCOL_VIOLATION", "empty negotiation message");
    }
    return decodeLine(await this.#race(this.#reader.readExactly(length)));
  }

  #disarm(): void {
    this.#done = true;
    clearTimeout(this.#timer);
    if (this.#onAbort !== undefined) this.#signal!.removeEventListener("abort", this.#onAbort);
  }

  /**
   * Ends the negotiation in agreement: releases both locks and returns the
   * duplex to speak the protocol on (the very same object when nothing was
   * read ahead).
   */
  succeed(): Duplex {
    this.#disarm();
    this.#writer?.releaseLock();
    const readable = this.#reader.release();
    return readable === this.#duplex.readable
      ? this.#duplex
      : { readable, writable: this.#duplex.writable };
  }

  /** Stops the deadline only, for optimistic mode which keeps the locks. */
  disarm(): void {
    this.#disarm();
  }

  /**
   * Ends the negotiation in failure: drops what was read ahead, releases both
   * locks (a pending read rejects, and is already handled), and returns `err`
   * for the caller to throw.
   */
  fail(err: unknown): unknown {
    if (this.#done) return err;
    this.#disarm();
    failures.labels({ role: this.#role, code: NetworkError.is(err) ? err.code : "BUG" }).inc();
    try {
      // Dropping the buffered bytes makes release() give the source back
      // itself, unlocked, so the caller can cancel it.
      const buffered = this.#reader.buffered;
      if (buffered > 0) this.#reader.readSome(buffered).catch(() => {});
      this.#reader.release();
    } catch {
      // Already released: nothing left to give back.
    }
    this.#writer?.releaseLock();
    return err;
  }
}
