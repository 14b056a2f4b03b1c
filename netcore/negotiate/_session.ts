/**
 * What every negotiation shares: the connection's reader, one deadline for
 * the whole negotiation, and the bookkeeping of its end. Internal to
 * `netcore/negotiate`.
 *
 * @module
 */

import { abortError } from "../_async.ts";
import { ByteReader } from "../byte_reader.ts";
import { defaultMetrics } from "../metrics.ts";
import { NetworkError } from "../network_error.ts";
import type { Connection } from "../transport/connection.ts";
import type { Role } from "../transport/transport.ts";
import { decodeLine } from "./_message.ts";
import { NEGOTIATE_DEFAULTS, type NegotiateOptions } from "./options.ts";

/** The options with defaults filled in. */
export type ResolvedOptions = Required<Omit<NegotiateOptions, "signal">> & {
  signal?: AbortSignal;
};

/** Fills in {@linkcode NEGOTIATE_DEFAULTS} and checks the numbers. */
export function resolveOptions(options: NegotiateOptions = {}): ResolvedOptions {
  const resolved = {
    ...NEGOTIATE_DEFAULTS,
    ...options,
    metrics: options.metrics ?? defaultMetrics,
  };
  for (const key of ["timeout", "maxLineLength", "maxAttempts"] as const) {
    const value = resolved[key];
    if (!Number.isSafeInteger(value) || value < 0) {
      throw new RangeError(`${key} must be a non-negative integer, got ${value}`);
    }
  }
  return resolved;
}

/** The reader, the deadline and the end of one negotiation. */
export class Session {
  readonly #conn: Connection;
  readonly #reader: ByteReader;
  readonly #options: ResolvedOptions;
  readonly #role: Role;
  /** The deadline's timer and the listener on the caller's signal, while armed. */
  #timer: ReturnType<typeof setTimeout> | undefined;
  #onAbort: (() => void) | undefined;
  /** The deadline's (or the caller's signal's) error, once it fired. */
  #expired: NetworkError | undefined;
  #done = false;

  /** Reads `conn` from now on; arms nothing yet. */
  constructor(conn: Connection, role: Role, options: ResolvedOptions) {
    this.#conn = conn;
    this.#reader = new ByteReader(conn);
    this.#role = role;
    this.#options = options;
  }

  /** The reader, for optimistic mode to read through after agreement. */
  get reader(): ByteReader {
    return this.#reader;
  }

  /** Bytes the peer sent that are not read yet. */
  get buffered(): number {
    return this.#reader.buffered;
  }

  /**
   * Starts the deadline and follows the caller's signal. Either one ends
   * the negotiation by aborting the connection with its error, which the
   * pending read or write then rejects with: a plain timer, no
   * `AbortController` or promise race per read (a stream per request makes
   * this per request), and a connection whose negotiation failed is of no
   * use anyway.
   */
  arm(): void {
    const { timeout, signal } = this.#options;
    if (signal?.aborted) {
      this.#expired = abortError(signal);
      return;
    }
    this.#timer = setTimeout(
      () =>
        this.#expire(
          new NetworkError("TIMEOUT", `protocol negotiation timed out after ${timeout} ms`),
        ),
      timeout,
    );
    if (signal !== undefined) {
      const onAbort = () => this.#expire(abortError(signal));
      this.#onAbort = onAbort;
      signal.addEventListener("abort", onAbort, { once: true });
    }
  }

  #expire(error: NetworkError): void {
    if (this.#done || this.#expired !== undefined) return;
    this.#expired = error;
    this.#clear();
    this.#conn.abort(error);
  }

  #clear(): void {
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    this.#timer = undefined;
    if (this.#onAbort !== undefined) {
      this.#options.signal?.removeEventListener("abort", this.#onAbort);
    }
    this.#onAbort = undefined;
  }

  /**
   * Writes `bytes` (ours: no one touches them afterwards). Resolves at once
   * when the connection took them, so an answer written here and the next
   * layer's first bytes share a socket write.
   */
  async write(bytes: Uint8Array): Promise<void> {
    if (this.#expired !== undefined) throw this.#expired;
    try {
      const room = this.#conn.write(bytes);
      if (room !== undefined) await room;
    } catch (err) {
      throw this.#expired ?? NetworkError.wrap(err, "CONNECTION_RESET", "negotiation write failed");
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
    if (this.#expired !== undefined) throw this.#expired;
    let line: Uint8Array;
    try {
      const length = await this.#reader.readVarint(this.#options.maxLineLength);
      if (length === 0) {
        throw new NetworkError("PROTOCOL_VIOLATION", "empty negotiation message");
      }
      line = await this.#reader.readExactly(length);
    } catch (err) {
      throw this.#expired ?? err;
    }
    return decodeLine(line);
  }

  /** Stops the deadline (optimistic mode, once agreed, reads on through the reader). */
  disarm(): void {
    this.#done = true;
    this.#clear();
  }

  /**
   * Ends the negotiation in agreement: the connection to speak the protocol
   * on (the very same object when nothing was read ahead).
   */
  succeed(): Connection {
    this.disarm();
    return this.#reader.handOff(this.#conn);
  }

  /** Ends the negotiation in failure (counted) and returns `err` for the caller to throw. */
  fail(err: unknown): unknown {
    if (this.#done) return err;
    this.disarm();
    this.#options.metrics.counter(
      "validator_network_negotiation_failures_total",
      "multistream-select negotiations that failed, by our role and error code",
      ["role", "code"],
    ).labels({ role: this.#role, code: NetworkError.is(err) ? err.code : "BUG" }).inc();
    return err;
  }
}
