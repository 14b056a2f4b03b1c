/**
 * The Web-Streams connection every layer passes up: a raw socket, an
 * in-memory pipe, a Noise channel and a yamux substream all have this shape,
 * so any upgrade can stack on any of them.
 *
 * @module
 */

import type { Multiaddr } from "../multiaddr.ts";

/**
 * A byte duplex made of the two Web Streams.
 *
 * Chunk ownership, which lets every layer avoid copies:
 * - a chunk read from `readable` belongs to the reader; the producer never
 *   touches it again;
 * - a chunk passed to `writable.write()` may be reused by the caller once the
 *   returned promise resolves, and not before.
 *
 * @example
 * ```ts
 * import type { Duplex } from "./connection.ts";
 * async function echoOnce(d: Duplex) {
 *   const reader = d.readable.getReader();
 *   const writer = d.writable.getWriter();
 *   const { value } = await reader.read();
 *   if (value) await writer.write(value);
 * }
 * ```
 */
export interface Duplex {
  /** Bytes from the peer. Ends when the peer half-closes; errors on abort. */
  readonly readable: ReadableStream<Uint8Array>;
  /** Bytes to the peer. `close()` half-closes; `abort()` resets. */
  readonly writable: WritableStream<Uint8Array>;
}

/**
 * What every connection-like thing has, whether or not it is a byte duplex:
 * addresses and a lifecycle. A raw {@linkcode Connection} has it, and so does a
 * multiplexed connection that yields substreams instead of bytes. Transports
 * are generic over it.
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
  /** Settles when the connection is fully released, whichever way. */
  readonly closed: Promise<void>;
}

/**
 * One end of a connection: a {@linkcode Duplex} with addresses and lifecycle.
 *
 * `close()` is graceful: it half-closes our side (the peer's readable ends
 * after the bytes already written), then waits for the peer to finish its side
 * or for a grace period, and releases the resource. `abort(reason)` drops the
 * connection at once; the peer sees an error (a reset), not a clean end.
 *
 * @example
 * ```ts
 * import type { Connection } from "./connection.ts";
 * async function hello(conn: Connection) {
 *   const writer = conn.writable.getWriter();
 *   await writer.write(new TextEncoder().encode("hello"));
 *   writer.releaseLock();
 *   await conn.close();
 * }
 * ```
 */
export interface Connection extends Duplex, ConnectionLifecycle {
  /** Half-closes our side, waits for the peer's, then releases everything. */
  close(): Promise<void>;
}
