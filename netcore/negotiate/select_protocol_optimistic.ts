/**
 * The dialer side of multistream-select 1.0 without the round trip, for a
 * dialer with a single protocol it expects the listener to speak.
 *
 * @module
 */

import { NetworkError } from "../network_error.ts";
import { ForwardingConnection } from "../transport/byte_connection.ts";
import type { Connection } from "../transport/connection.ts";
import { checkProtocolName, encodeMessages, expectMultistreamHeader, NA } from "./_message.ts";
import { resolveOptions, Session } from "./_session.ts";
import { MULTISTREAM_PROTOCOL_ID, type Negotiated, type NegotiateOptions } from "./options.ts";

/**
 * Where an optimistic negotiation stands:
 * - `idle`: nothing sent yet;
 * - `proposed`: header and proposal sent (with the first data, if written
 *   first), answer not read yet;
 * - `agreed`: the listener echoed the protocol (terminal);
 * - `failed`: refused, malformed answer, deadline or abort (terminal).
 */
type State = "idle" | "proposed" | "agreed" | "failed";

/**
 * One optimistic stream: a connection over `conn` that proposes with its
 * first write and checks the answer before its first read.
 */
class OptimisticStream extends ForwardingConnection {
  readonly #session: Session;
  readonly #protocol: string;
  #state: State = "idle";
  #answer: Promise<void> | undefined;
  #failure: unknown;
  #rejectFailed!: (err: unknown) => void;
  readonly #failed: Promise<never>;
  /** Set when the reader cancelled before agreement: cancel once agreed. */
  #cancelled: { reason: unknown } | undefined;

  constructor(conn: Connection, session: Session, protocol: string) {
    super(conn);
    this.#session = session;
    this.#protocol = protocol;
    this.#failed = new Promise<never>((_, reject) => this.#rejectFailed = reject);
    this.#failed.catch(() => {});
  }

  /**
   * Sends header and proposal, followed by `data` in the same chunk, and
   * starts reading the answer: the listener sends it at once, and a refusal
   * must reach the writer even if nobody reads.
   */
  #propose(data?: Uint8Array): Promise<void> {
    this.#state = "proposed";
    this.#session.arm();
    const sent = this.#session.write(
      encodeMessages([MULTISTREAM_PROTOCOL_ID, this.#protocol], data),
    );
    this.#answer = this.#readAnswer(sent);
    this.#answer.catch(() => {});
    return sent;
  }

  async #readAnswer(sent: Promise<void>): Promise<void> {
    try {
      await sent;
      const header = await this.#session.readLine();
      expectMultistreamHeader(header);
      const answer = await this.#session.readLine();
      if (answer === NA) {
        throw new NetworkError("UNSUPPORTED_PROTOCOL", `the listener refused ${this.#protocol}`);
      }
      if (answer !== this.#protocol) {
        throw new NetworkError(
          "PROTOCOL_VIOLATION",
          `proposed ${this.#protocol}, the listener answered ${JSON.stringify(answer)}`,
        );
      }
      this.#state = "agreed";
      this.#session.disarm();
      if (this.#cancelled !== undefined) this.#session.reader.cancelRead(this.#cancelled.reason);
    } catch (err) {
      this.#fail(err);
      throw err;
    }
  }

  #fail(err: unknown): void {
    if (this.#state === "failed") return;
    this.#state = "failed";
    this.#failure = err;
    this.#session.fail(err);
    this.#rejectFailed(err);
  }

  /** Resolves once agreed; proposes first if nothing was written yet. */
  #negotiated(): Promise<void> {
    if (this.#state === "idle") this.#propose().catch(() => {});
    return this.#answer!;
  }

  override async read(): Promise<Uint8Array | null> {
    if (this.#state !== "agreed") await this.#negotiated();
    return await this.#session.reader.read();
  }

  override async readInto(buffer: Uint8Array): Promise<number | null> {
    if (this.#state !== "agreed") await this.#negotiated();
    return await this.#session.reader.readInto(buffer);
  }

  override cancelRead(reason?: unknown): void {
    // Before agreement the answer still has to be read, so that the writer
    // learns of a refusal; only the data after it is unwanted.
    if (this.#state === "idle" || this.#state === "proposed") this.#cancelled = { reason };
    else if (this.#state === "agreed") this.#session.reader.cancelRead(reason);
  }

  override write(chunk: Uint8Array): Promise<void> | undefined {
    if (this.#state === "agreed") return this.inner.write(chunk);
    if (this.#state === "failed") return Promise.reject(this.#failure);
    // The proposal's buffer takes a copy of the chunk: the caller may reuse it at once.
    if (this.#state === "idle") return this.#propose(chunk);
    return this.#beforeAgreement(() => this.inner.write(chunk));
  }

  override async closeWrite(): Promise<void> {
    if (this.#state === "failed") throw this.#failure;
    if (this.#state === "idle") await this.#propose();
    if (this.#state === "agreed") return await this.inner.closeWrite();
    await this.#beforeAgreement(() => this.inner.closeWrite());
  }

  /** A write or close before agreement: a failed negotiation ends it. */
  async #beforeAgreement(operation: () => Promise<void> | undefined): Promise<void> {
    try {
      const pending = operation();
      if (pending !== undefined) await Promise.race([pending, this.#failed]);
    } catch (err) {
      throw NetworkError.wrap(err, "CONNECTION_RESET", "write failed");
    }
  }
}

/**
 * Selects `protocol` without waiting for the listener (optimistic, or lazy,
 * negotiation): returns at once, and the negotiation happens on the stream.
 *
 * The header and the proposal leave together with the first chunk written, in
 * one write. The listener's answer is read as soon as the proposal is out
 * (reading first sends the proposal alone), and before any byte reaches the
 * reader. A refusal, a malformed answer or the deadline (counted from the
 * proposal) surfaces on the stream: reads and writes reject with the same
 * {@linkcode NetworkError} (`UNSUPPORTED_PROTOCOL` for a refusal), and the
 * caller closes or aborts the connection.
 *
 * The returned stream wraps `conn` (a pass-through once agreed); closing its
 * write half before writing sends the proposal first; cancelling its reads
 * cancels `conn`'s, after the answer when it is still due.
 *
 * @param conn the stream to negotiate on, usually a fresh substream
 * @param protocol the one protocol we want to speak
 * @throws {TypeError} for an invalid protocol name (a bug)
 * @example
 * ```ts
 * import { selectProtocolOptimistic } from "./select_protocol_optimistic.ts";
 * import type { Connection } from "../transport/connection.ts";
 * async function ping(substream: Connection): Promise<Uint8Array | null> {
 *   const { stream } = selectProtocolOptimistic(substream, "/ipfs/ping/1.0.0");
 *   await stream.write(crypto.getRandomValues(new Uint8Array(32))); // leaves with the proposal
 *   return await stream.read(); // rejects with UNSUPPORTED_PROTOCOL if the listener refused
 * }
 * ```
 */
export function selectProtocolOptimistic(
  conn: Connection,
  protocol: string,
  options?: NegotiateOptions,
): Negotiated {
  const resolved = resolveOptions(options);
  checkProtocolName(protocol, resolved.maxLineLength);
  const session = new Session(conn, "dialer", resolved);
  return { protocol, stream: new OptimisticStream(conn, session, protocol) };
}
