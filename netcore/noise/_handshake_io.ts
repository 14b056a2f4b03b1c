/**
 * What both handshake profiles share around the Noise messages themselves:
 * the framed reads and writes on the raw connection, one deadline for the
 * whole handshake, and the rule that any failure aborts this one connection
 * and surfaces as a typed error. Internal to `netcore/noise`.
 *
 * @module
 */

import { Deadline } from "../_async.ts";
import { ByteReader } from "../byte_reader.ts";
import { NetworkError } from "../network_error.ts";
import type { Connection } from "../transport/connection.ts";
import type { UpgradeContext } from "../transport/transport.ts";
import { encodeFrame, type FrameBounds, readHandshakeFrame } from "./_frame.ts";

/** Framed handshake I/O on one connection. */
export interface HandshakeIo {
  /**
   * Sends one handshake message with its length prefix. It is corked with
   * whatever else is written in this turn (the dialer's last message leaves
   * with its first transport message).
   */
  send(message: Uint8Array): Promise<void>;
  /** Receives one handshake message whose length lies in `bounds`. */
  receive(bounds: FrameBounds): Promise<Uint8Array>;
}

/** The handshake's result, with the connection's reader kept for the channel. */
export interface HandshakeOutcome<T> {
  /** What the handshake steps returned. */
  value: T;
  /** The reader on the connection; may hold bytes sent right after the handshake. */
  reader: ByteReader;
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
): Promise<HandshakeOutcome<T>> {
  using deadline = new Deadline(timeoutMs, { what, signal: context.signal });
  // The deadline wakes whichever read or write the handshake is blocked on.
  const onExpiry = () => conn.abort(deadline.error);
  deadline.signal.addEventListener("abort", onExpiry, { once: true });
  const reader = new ByteReader(conn);
  const io: HandshakeIo = {
    async send(message) {
      const room = conn.write(encodeFrame(message));
      if (room !== undefined) await room;
    },
    receive: (bounds) => readHandshakeFrame(reader, bounds),
  };
  try {
    deadline.check();
    const value = await steps(io);
    deadline.check();
    return { value, reader };
  } catch (err) {
    const error = deadline.expired
      ? deadline.error
      : NetworkError.is(err, ...KEPT_CODES)
      ? err
      : new NetworkError(
        "HANDSHAKE_FAILED",
        `${what}: ${err instanceof Error ? err.message : String(err)}`,
        { cause: err },
      );
    deadline.signal.removeEventListener("abort", onExpiry);
    conn.abort(error);
    throw error;
  } finally {
    deadline.signal.removeEventListener("abort", onExpiry);
  }
}
