/**
 * The dialer side of multistream-select 1.0 without the round trip, for a
 * dialer with a single protocol it expects the listener to speak.
 *
 * @module
 */

import { NetworkError } from "../network_error.ts";
import type { Duplex } from "../transport/connection.ts";
import { checkProtocolName, encodeMessages, expectMultistreamHeader, NA } from "./_message.ts";
import { type ResolvedOptions, resolveOptions, Session } from "./_session.ts";
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

/** The state machine behind one optimistic stream. */
class OptimisticSelect {
  readonly #session: Session;
  readonly #protocol: string;
  readonly #options: ResolvedOptions;
  #state: State = "idle";
  #answer: Promise<void> | undefined;
  #failure: unknown;
  #rejectFailed!: (err: unknown) => void;
  readonly #failed: Promise<never>;
  #writable: WritableStreamDefaultController | undefined;
  /** Set when the reader cancelled before agreement: cancel once agreed. */
  #cancelled: { reason: unknown } | undefined;

  constructor(session: Session, protocol: string, options: ResolvedOptions) {
    this.#session = session;
    this.#protocol = protocol;
    this.#options = options;
    this.#failed = new Promise<never>((_, reject) => this.#rejectFailed = reject);
    this.#failed.catch(() => {});
  }

  /**
   * Sends header and proposal, followed by `data` in the same write, and
   * starts reading the answer: the listener sends it at once, and a refusal
   * must reach the writer even if nobody reads.
   */
  #propose(data?: Uint8Array): Promise<void> {
    this.#state = "proposed";
    this.#session.arm(this.#options);
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
      if (this.#cancelled !== undefined) {
        await this.#session.reader.cancel(this.#cancelled.reason);
      }
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
    this.#writable?.error(err);
  }

  /** Resolves once agreed; proposes first if nothing was written yet. */
  #negotiated(): Promise<void> {
    if (this.#state === "idle") this.#propose().catch(() => {});
    return this.#answer!;
  }

  readonly readable: ReadableStream<Uint8Array> = new ReadableStream<Uint8Array>({
    pull: async (controller) => {
      if (this.#state !== "agreed") await this.#negotiated();
      const chunk = await this.#session.reader.readSome();
      if (chunk === undefined) controller.close();
      else controller.enqueue(chunk);
    },
    cancel: async (reason) => {
      // Before agreement the answer still has to be read, so that the writer
      // learns of a refusal; only the data after it is unwanted.
      if (this.#state === "idle" || this.#state === "proposed") this.#cancelled = { reason };
      else if (this.#state === "agreed") await this.#session.reader.cancel(reason);
    },
  }, { highWaterMark: 0 });

  readonly writable: WritableStream<Uint8Array> = new WritableStream<Uint8Array>({
    start: (controller) => {
      this.#writable = controller;
    },
    write: async (chunk) => {
      if (this.#state === "failed") throw this.#failure;
      // The proposal's buffer takes a copy of the chunk, so the caller may
      // reuse it as soon as this resolves, as the Duplex contract says.
      if (this.#state === "idle") return await this.#propose(chunk);
      await this.#data(this.#session.writer.write(chunk));
    },
    close: async () => {
      if (this.#state === "failed") throw this.#failure;
      if (this.#state === "idle") await this.#propose();
      await this.#data(this.#session.writer.close());
    },
    abort: (reason) => this.#session.writer.abort(reason),
  });

  /** A data write or close: until agreement, a failed negotiation ends it. */
  async #data(operation: Promise<void>): Promise<void> {
    try {
      await (this.#state === "agreed" ? operation : Promise.race([operation, this.#failed]));
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
 * proposal) surfaces on the stream: the readable errors and writes reject
 * with the same {@linkcode NetworkError} (`UNSUPPORTED_PROTOCOL` for a
 * refusal), and both halves of `duplex` are unlocked for the caller to close.
 *
 * The returned stream wraps `duplex` (a pass-through once agreed); closing
 * its writable before writing sends the proposal first; cancelling its
 * readable cancels `duplex.readable`, after the answer when it is still due.
 *
 * @param duplex the stream to negotiate on, usually a fresh substream
 * @param protocol the one protocol we want to speak
 * @throws {TypeError} for an invalid protocol name (a bug)
 * @example
 * ```ts ignore
 * import { selectProtocolOptimistic } from "./select_protocol_optimistic.ts";
 * import type { Duplex } from "../transport/connection.ts";
 * declare const substream: Duplex;
 * const { stream } = selectProtocolOptimistic(substream, "/ipfs/ping/1.0.0");
 * const writer = stream.writable.getWriter();
 * await writer.write(crypto.getRandomValues(new Uint8Array(32))); // one write, with the proposal
 * ```
 */
export function selectProtocolOptimistic(
  duplex: Duplex,
  protocol: string,
  options?: NegotiateOptions,
): Negotiated {
  const resolved = resolveOptions(options);
  checkProtocolName(protocol, resolved.maxLineLength);
  const select = new OptimisticSelect(new Session(duplex, "dialer", resolved), protocol, resolved);
  return { protocol, stream: { readable: select.readable, writable: select.writable } };
}
