/**
 * What both handshake profiles share around the Noise messages themselves:
 * the framed reads and writes on the raw connection, one deadline for the
 * whole handshake, and the rule that any failure aborts this one connection
 * and surfaces as a typed error. Internal to `netcore/noise`.
 *
 * @module
 */

import { abortError } from "../_async.ts";
import { ByteReader } from "../byte_reader.ts";
import { NetworkError } from "../network_error.ts";
import type { Connection } from "../transport/connection.ts";
import type { UpgradeContext } from "../transport/transport.ts";
import { encodeFrame, type FrameBounds, readHandshakeFrame } from "./_frame.ts";

/** Framed handshake I/O on one connection. */
export interface HandshakeIo {
  /** Sends one handshake message with its length prefix. */
  send(message: Uint8Array): Promise<void>;
  /**
   * Frames the handshake's last message without sending it: it is returned
   * as `unsent` for the secure channel to send with its first transport
   * message (see `SecureChannelInit.unsent`).
   */
  hold(message: Uint8Array): void;
  /** Receives one handshake message whose length lies in `bounds`. */
  receive(bounds: FrameBounds): Promise<Uint8Array>;
}

/**
 * Bytes of another protocol that share the handshake's first round trip: the
 * dialer's optimistic multistream-select proposal of `/noise`, sent in front
 * of the first handshake message, whose answer is read before the first
 * handshake message from the peer; or the listener's agreement to it, sent in
 * front of message 2.
 */
export interface HandshakePreamble {
  /** Sent in the same write as, and in front of, our first handshake message. */
  send: Uint8Array;
  /**
   * Reads and checks the peer's answer to `send` before our first receive;
   * throws a `NetworkError` to refuse (its code is kept when it is
   * `UNSUPPORTED_PROTOCOL`). None for a listener's deferred agreement.
   */
  receive?(reader: ByteReader): Promise<void>;
}

/** The handshake's result, with the connection's reader and writer kept for the channel. */
export interface HandshakeOutcome<T> {
  /** What the handshake steps returned. */
  value: T;
  /** The reader on the raw readable; may hold bytes sent right after the handshake. */
  reader: ByteReader;
  /** The writer on the raw writable. */
  writer: WritableStreamDefaultWriter<Uint8Array>;
  /** The held last message, framed, if the steps held one. */
  unsent?: Uint8Array;
}

/** Codes a handshake failure keeps; anything else becomes `HANDSHAKE_FAILED`. */
const KEPT_CODES = [
  "HANDSHAKE_FAILED",
  "UNAUTHORIZED",
  "TIMEOUT",
  "ABORTED",
  "UNSUPPORTED_PROTOCOL",
] as const;

/**
 * Runs `steps` on `conn` within `timeoutMs` (and `context.signal`). On any
 * failure the connection is aborted (so a pending read wakes up) and a
 * `NetworkError` is thrown: `TIMEOUT` when the deadline passed, `ABORTED` when
 * the caller cancelled, `UNAUTHORIZED` as the steps threw it, and
 * `HANDSHAKE_FAILED` (with the cause) for everything else, including a peer
 * that closed or reset the connection mid-handshake.
 */
export async function runHandshake<T>(
  conn: Connection,
  context: UpgradeContext,
  timeoutMs: number,
  what: string,
  steps: (io: HandshakeIo) => Promise<T>,
  preamble?: HandshakePreamble,
): Promise<HandshakeOutcome<T>> {
  const controller = new AbortController();
  const onTimeout = () =>
    controller.abort(new NetworkError("TIMEOUT", `${what} timed out after ${timeoutMs} ms`));
  // Not unref'd: a pending handshake is work in progress (over an in-memory
  // pipe nothing else may keep the process alive), and the timer is cleared
  // the moment the handshake settles.
  const timer = setTimeout(onTimeout, timeoutMs);
  const onCancel = () => controller.abort(context.signal.reason);
  context.signal.addEventListener("abort", onCancel, { once: true });
  // The abort wakes whichever read or write the handshake is blocked on.
  const onAbort = () => conn.abort(abortError(controller.signal));
  controller.signal.addEventListener("abort", onAbort, { once: true });
  if (context.signal.aborted) onCancel();

  const reader = new ByteReader(conn.readable);
  const writer = conn.writable.getWriter();
  let toSend = preamble?.send;
  let toReceive = preamble?.receive === undefined ? undefined : preamble;
  let unsent: Uint8Array | undefined;
  const io: HandshakeIo = {
    hold(message) {
      unsent = encodeFrame(message);
    },
    async send(message) {
      const frame = encodeFrame(message);
      if (toSend === undefined) return await writer.write(frame);
      const joined = new Uint8Array(toSend.length + frame.length);
      joined.set(toSend);
      joined.set(frame, toSend.length);
      toSend = undefined;
      await writer.write(joined);
    },
    async receive(bounds) {
      if (toReceive !== undefined) {
        const answer = toReceive;
        toReceive = undefined;
        await answer.receive!(reader);
      }
      return await readHandshakeFrame(reader, bounds);
    },
  };
  try {
    if (controller.signal.aborted) throw abortError(controller.signal);
    const value = await steps(io);
    if (controller.signal.aborted) throw abortError(controller.signal);
    return { value, reader, writer, unsent };
  } catch (err) {
    const error = controller.signal.aborted
      ? abortError(controller.signal)
      : NetworkError.is(err, ...KEPT_CODES)
      ? err
      : new NetworkError(
        "HANDSHAKE_FAILED",
        `${what}: ${err instanceof Error ? err.message : String(err)}`,
        { cause: err },
      );
    controller.signal.removeEventListener("abort", onAbort);
    conn.abort(error);
    throw error;
  } finally {
    clearTimeout(timer);
    context.signal.removeEventListener("abort", onCancel);
    controller.signal.removeEventListener("abort", onAbort);
  }
}
