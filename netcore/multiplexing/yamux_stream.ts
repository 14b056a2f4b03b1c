/**
 * One yamux substream, shaped like a {@linkcode Connection} so that protocol
 * negotiation and application protocols run on it as on any connection.
 *
 * @module
 */

import type { Multiaddr } from "../multiaddr.ts";
import type { Connection } from "../transport/connection.ts";
import type { StreamCore, StreamState, YamuxStreamStats } from "./_stream_core.ts";

export type { StreamState, YamuxStreamStats } from "./_stream_core.ts";

/**
 * A yamux substream: a Web-Streams duplex with a lifecycle.
 *
 * - `readable` yields the peer's data as views into the chunks read from the
 *   connection (they belong to the reader); it ends when the peer sends FIN
 *   and errors with `CONNECTION_RESET` when the peer resets the stream.
 *   Cancelling it resets the stream (yamux cannot stop one direction alone)
 *   unless the peer already finished sending.
 * - `writable`: each write is sent as Data frames of at most the session's
 *   `maxFrameSize`, waiting for window when the peer's reader is slow
 *   (backpressure). The chunk may be reused once the write resolves.
 *   `writable.close()` half-closes (FIN); `writable.abort()` resets (RST).
 * - `close()` half-closes, then waits for the peer's FIN (or the session's
 *   `streamCloseTimeout`, after which it resets).
 * - `abort(reason)` resets at once.
 * - `closed` settles (never rejects) when both sides have closed or the
 *   stream was reset.
 *
 * Streams come from {@linkcode Yamux.openStream} and from iterating a
 * {@linkcode Yamux}.
 *
 * @example
 * ```ts ignore
 * const stream = await muxer.openStream();
 * stream.protocol = "/echo/1.0.0";
 * const writer = stream.writable.getWriter();
 * await writer.write(new TextEncoder().encode("hello"));
 * await writer.close();
 * for await (const chunk of stream.readable) console.log(chunk);
 * await stream.closed;
 * ```
 */
export class YamuxStream implements Connection {
  readonly #core: StreamCore;
  /** The session, whose addresses are the stream's. */
  readonly #session: Pick<Connection, "localAddr" | "remoteAddr">;

  /** Created by the session; applications get streams from {@linkcode Yamux}. */
  constructor(core: StreamCore, session: Pick<Connection, "localAddr" | "remoteAddr">) {
    this.#core = core;
    this.#session = session;
  }

  /** Our address of the connection the stream runs on. */
  get localAddr(): Multiaddr {
    return this.#session.localAddr;
  }

  /** The peer's address of the connection the stream runs on. */
  get remoteAddr(): Multiaddr {
    return this.#session.remoteAddr;
  }

  /** The yamux stream id: odd when the dialer opened it, even for the listener. */
  get id(): number {
    return this.#core.id;
  }

  /** `"outbound"` when we opened the stream, `"inbound"` when the peer did. */
  get direction(): "outbound" | "inbound" {
    return this.#core.outbound ? "outbound" : "inbound";
  }

  /** The protocol negotiated on the stream, once the application sets it. */
  get protocol(): string | undefined {
    return this.#core.protocol;
  }
  set protocol(value: string | undefined) {
    this.#core.protocol = value;
  }

  /** Bytes from the peer. */
  get readable(): ReadableStream<Uint8Array> {
    return this.#core.readable;
  }

  /** Bytes to the peer. */
  get writable(): WritableStream<Uint8Array> {
    return this.#core.writable;
  }

  /** Settles (never rejects) when the stream is closed both ways or reset. */
  get closed(): Promise<void> {
    return this.#core.closed;
  }

  /** The half-close state, with the spec's names. */
  get state(): StreamState {
    return this.#core.state;
  }

  /** Flow-control state (windows, buffered bytes) and the data bytes sent and received so far. */
  stats(): YamuxStreamStats {
    return this.#core.stats();
  }

  /**
   * Holds `bytes` to go out in front of the next bytes written, in the same
   * write to the connection (a protocol agreement before the first answer,
   * say). They go out on their own instead when the stream's reader waits,
   * on close, or at the end of this turn of the event loop if nothing was
   * written by then.
   */
  prependToNextWrite(bytes: Uint8Array): void {
    this.#core.deferLeadingData(bytes);
  }

  /** Half-closes our side (FIN) after queued writes, then waits for the peer's FIN. */
  close(): Promise<void> {
    return this.#core.close();
  }

  /** Resets the stream (RST); pending reads and writes reject. */
  abort(reason?: unknown): void {
    this.#core.abort(reason);
  }
}
