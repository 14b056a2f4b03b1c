/**
 * The connection every layer passes up: a socket, a Noise channel, a yamux
 * substream and a negotiated protocol stream all have this shape, so any
 * upgrade stacks on any of them.
 *
 * Layers talk to each other through the byte methods ({@linkcode ByteSource}
 * and {@linkcode ByteSink}: read, read into a buffer, write, half-close);
 * the Web Streams `readable` and `writable` are the edge for everyone else,
 * made on first use over the same methods. Use one or the other for each
 * direction, not both.
 *
 * @module
 */

import type { Multiaddr } from "../multiaddr.ts";

/**
 * The read half of the byte path. One read at a time.
 *
 * @example
 * ```ts
 * import type { ByteSource } from "./connection.ts";
 * async function drain(source: ByteSource): Promise<number> {
 *   let total = 0;
 *   for (let chunk = await source.read(); chunk !== null; chunk = await source.read()) {
 *     total += chunk.length;
 *   }
 *   return total;
 * }
 * ```
 */
export interface ByteSource {
  /**
   * The next chunk from the peer, which then belongs to the caller; `null`
   * at the peer's clean end (its half-close).
   *
   * @throws {NetworkError} `CONNECTION_RESET` when the connection failed,
   *   or the error it was aborted with
   */
  read(): Promise<Uint8Array | null>;
  /**
   * Reads what is there into `buffer` (at least one byte, at most its
   * length) and resolves with the count; `null` at the peer's end. For a
   * reader that reuses one buffer: a socket reads into it without
   * allocating.
   *
   * @throws {NetworkError} as {@linkcode ByteSource.read}
   */
  readInto(buffer: Uint8Array): Promise<number | null>;
  /**
   * The caller will read no more: what arrives from now on is dropped (a
   * yamux stream resets, unless the peer already finished sending).
   */
  cancelRead(reason?: unknown): void;
}

/**
 * The write half of the byte path.
 *
 * @example
 * ```ts
 * import type { ByteSink } from "./connection.ts";
 * async function send(sink: ByteSink, chunks: Uint8Array[]) {
 *   for (const chunk of chunks) await sink.write(chunk);
 *   await sink.closeWrite();
 * }
 * ```
 */
export interface ByteSink {
  /**
   * Hands `chunk` to the layer for the peer. A promise means "wait before
   * writing more" (backpressure) and that `chunk` stays the layer's until it
   * resolves; `undefined` means it was taken and may be reused at once.
   * Writes issued in one turn of the event loop leave in one socket write
   * (see `SocketConnection`).
   *
   * @throws {NetworkError} `CONNECTION_CLOSED` after `closeWrite()`,
   *   `CONNECTION_RESET` when the connection failed (a promise rejects)
   */
  write(chunk: Uint8Array): Promise<void> | undefined;
  /**
   * Optional: holds a place among the turn's writes, and when they leave
   * (in one socket write) calls `produce` and writes its bytes there. For a
   * layer that frames the turn's small writes as one piece only once the
   * turn is over: the Noise channel seals them in one message instead of
   * one each. A connection without it (a yamux stream) takes writes one by
   * one.
   *
   * @throws {NetworkError} `CONNECTION_CLOSED` after `closeWrite()`,
   *   `CONNECTION_RESET` when the connection failed
   */
  writeDeferred?(produce: () => Uint8Array): void;
  /** Half-closes after the bytes already written: the peer's reads end after them. */
  closeWrite(): Promise<void>;
}

/**
 * What every connection-like thing has, whether or not it carries bytes
 * itself: addresses and a lifecycle. A socket has it, and so does a
 * multiplexed connection that yields substreams instead of bytes.
 * Transports are generic over it.
 *
 * @example
 * ```ts
 * import type { ConnectionLifecycle } from "./connection.ts";
 * function describe(c: ConnectionLifecycle): string {
 *   return `${c.localAddr} -> ${c.remoteAddr}`;
 * }
 * ```
 */
export interface ConnectionLifecycle {
  /** Our address of this connection. */
  readonly localAddr: Multiaddr;
  /** The peer's address of this connection. */
  readonly remoteAddr: Multiaddr;
  /** Graceful close; resolves when everything is released. */
  close(): Promise<void>;
  /** Drops the connection at once; pending operations reject. */
  abort(reason?: unknown): void;
  /** Settles (never rejects) when the connection is fully released, whichever way. */
  readonly closed: Promise<void>;
}

/**
 * One end of a byte connection: the byte path, its Web Streams edge, and a
 * lifecycle.
 *
 * `close()` is graceful: it half-closes our side (the peer's reads end
 * after the bytes already written), then waits for the peer to finish its
 * side or for a grace period, and releases. `abort(reason)` drops the
 * connection at once; pending operations reject with `reason`.
 *
 * Chunk ownership, which lets every layer avoid copies: a chunk read belongs
 * to the reader; a chunk written may be reused by the caller once the write
 * says so (see {@linkcode ByteSink.write}; for `writable.write()`, once its
 * promise resolves).
 *
 * @example
 * ```ts
 * import type { Connection } from "./connection.ts";
 * async function hello(conn: Connection) {
 *   await conn.write(new TextEncoder().encode("hello"));
 *   await conn.close();
 * }
 * ```
 */
export interface Connection extends ByteSource, ByteSink, ConnectionLifecycle {
  /** The read half as a Web Stream, made on first use. Ends at the peer's end. */
  readonly readable: ReadableStream<Uint8Array>;
  /** The write half as a Web Stream, made on first use. `close()` half-closes; `abort()` aborts. */
  readonly writable: WritableStream<Uint8Array>;
}
