/**
 * The Web Streams edge of a {@linkcode Connection}, written once: every
 * layer implements the byte methods, and extends {@linkcode ByteConnection}
 * to get `readable` and `writable` made over them on first use.
 *
 * @module
 */

import type { Multiaddr } from "../multiaddr.ts";
import type { ByteSink, ByteSource, Connection } from "./connection.ts";

/**
 * A `ReadableStream` that pulls from `source` one chunk at a time (nothing is
 * read ahead of the consumer); cancelling it cancels the source's reading.
 *
 * @example
 * ```ts
 * import { readableOf } from "./byte_connection.ts";
 * const chunks = [new Uint8Array([1]), null];
 * const readable = readableOf({
 *   read: () => Promise.resolve(chunks.shift() ?? null),
 *   readInto: () => Promise.resolve(null),
 *   cancelRead: () => {},
 * });
 * for await (const chunk of readable) console.log(chunk); // Uint8Array [ 1 ]
 * ```
 */
export function readableOf(source: ByteSource): ReadableStream<Uint8Array> {
  return new ReadableStream<Uint8Array>({
    async pull(controller) {
      const chunk = await source.read();
      if (chunk === null) controller.close();
      else controller.enqueue(chunk);
    },
    cancel: (reason) => source.cancelRead(reason),
  }, { highWaterMark: 0 });
}

/**
 * A `WritableStream` over `sink`: `close()` half-closes, `abort()` calls
 * `onAbort` (which aborts the connection or resets the stream).
 *
 * @example
 * ```ts
 * import { writableOf } from "./byte_connection.ts";
 * const writable = writableOf({
 *   write: (chunk) => void console.log(chunk.length),
 *   closeWrite: () => Promise.resolve(),
 * }, () => {});
 * const writer = writable.getWriter();
 * await writer.write(new Uint8Array(3)); // 3
 * await writer.close();
 * ```
 */
export function writableOf(
  sink: ByteSink,
  onAbort: (reason: unknown) => void,
): WritableStream<Uint8Array> {
  return new WritableStream<Uint8Array>({
    write: (chunk) => sink.write(chunk),
    close: () => sink.closeWrite(),
    abort: (reason) => onAbort(reason),
  });
}

/**
 * A {@linkcode Connection} whose Web Streams are made over its byte methods.
 * Subclasses implement the byte path and the lifecycle.
 *
 * @example Every layer's connection has the Web Streams edge
 * ```ts
 * import type { ByteConnection } from "./byte_connection.ts";
 * async function text(conn: ByteConnection): Promise<string> {
 *   return await new Response(conn.readable).text();
 * }
 * ```
 */
export abstract class ByteConnection implements Connection {
  #readable: ReadableStream<Uint8Array> | undefined;
  #writable: WritableStream<Uint8Array> | undefined;

  /** Our address of this connection. */
  abstract readonly localAddr: Multiaddr;
  /** The peer's address of this connection. */
  abstract readonly remoteAddr: Multiaddr;
  /** Settles (never rejects) when the connection is released. */
  abstract readonly closed: Promise<void>;
  /** The next chunk from the peer; `null` at its end. */
  abstract read(): Promise<Uint8Array | null>;
  /** Reads into `buffer`: the count, or `null` at the peer's end. */
  abstract readInto(buffer: Uint8Array): Promise<number | null>;
  /** The caller reads no more. */
  abstract cancelRead(reason?: unknown): void;
  /** Hands `chunk` over; a promise means wait (see {@linkcode ByteSink.write}). */
  abstract write(chunk: Uint8Array): Promise<void> | undefined;
  /** Half-closes after what was written. */
  abstract closeWrite(): Promise<void>;
  /** Half-closes, waits for the peer's end (or a grace period), releases. */
  abstract close(): Promise<void>;
  /** Drops the connection at once. */
  abstract abort(reason?: unknown): void;

  /** The read half as a Web Stream, made on first use. */
  get readable(): ReadableStream<Uint8Array> {
    return this.#readable ??= readableOf(this);
  }

  /** The write half as a Web Stream, made on first use. */
  get writable(): WritableStream<Uint8Array> {
    return this.#writable ??= writableOf(this, (reason) => this.abort(reason));
  }

  /** Whether someone took the Web Stream of the read half (and so reads through it). */
  protected get readableTaken(): boolean {
    return this.#readable !== undefined;
  }
}

/**
 * A {@linkcode Connection} that forwards everything to another one: the base
 * of the layers that change one part of a connection and keep the rest (a
 * reader that read ahead, a negotiation in progress, a negotiated stream).
 *
 * @example
 * ```ts
 * import { ForwardingConnection } from "./byte_connection.ts";
 * class Counting extends ForwardingConnection {
 *   written = 0;
 *   override write(chunk: Uint8Array) {
 *     this.written += chunk.length;
 *     return super.write(chunk);
 *   }
 * }
 * ```
 */
export class ForwardingConnection extends ByteConnection {
  /** The connection forwarded to. */
  protected readonly inner: Connection;

  /** The inner connection's deferred write, when it has one. */
  readonly writeDeferred: ((produce: () => Uint8Array) => void) | undefined;

  /** Forwards to `inner`. */
  constructor(inner: Connection) {
    super();
    this.inner = inner;
    this.writeDeferred = inner.writeDeferred?.bind(inner);
  }

  /** The inner connection's local address. */
  get localAddr(): Multiaddr {
    return this.inner.localAddr;
  }
  /** The inner connection's remote address. */
  get remoteAddr(): Multiaddr {
    return this.inner.remoteAddr;
  }
  /** Settles when the inner connection is released. */
  get closed(): Promise<void> {
    return this.inner.closed;
  }
  /** Reads from the inner connection. */
  read(): Promise<Uint8Array | null> {
    return this.inner.read();
  }
  /** Reads into `buffer` from the inner connection. */
  readInto(buffer: Uint8Array): Promise<number | null> {
    return this.inner.readInto(buffer);
  }
  /** Stops reading the inner connection. */
  cancelRead(reason?: unknown): void {
    this.inner.cancelRead(reason);
  }
  /** Writes to the inner connection. */
  write(chunk: Uint8Array): Promise<void> | undefined {
    return this.inner.write(chunk);
  }
  /** Half-closes the inner connection. */
  closeWrite(): Promise<void> {
    return this.inner.closeWrite();
  }
  /** Closes the inner connection. */
  close(): Promise<void> {
    return this.inner.close();
  }
  /** Aborts the inner connection. */
  abort(reason?: unknown): void {
    this.inner.abort(reason);
  }
}
