/**
 * One end of an in-memory connection: two bounded pipes, one each way.
 *
 * @module
 */

import type { Multiaddr } from "../netcore/multiaddr.ts";
import { NetworkError } from "../netcore/network_error.ts";
import type { Connection } from "../netcore/transport/connection.ts";
import { GracefulClose } from "../netcore/transport/_graceful_close.ts";
import { Pipe } from "./_pipe.ts";

/** Options for in-memory connections. Defaults in {@linkcode MEMORY_CONNECTION_DEFAULTS}. */
export interface MemoryConnectionOptions {
  /**
   * Unread bytes each direction holds before the writer waits. Default
   * 262_144 (256 KiB).
   */
  bufferSize?: number;
  /**
   * How long `close()` waits, after half-closing our side, for the peer to
   * end its side before releasing anyway. Default 5_000 ms.
   */
  closeGracePeriod?: number;
}

/** The defaults of {@linkcode MemoryConnectionOptions}. */
export const MEMORY_CONNECTION_DEFAULTS: Required<MemoryConnectionOptions> = {
  bufferSize: 262_144,
  closeGracePeriod: 5_000,
};

/**
 * One end of an in-memory connection, with the semantics of a TCP socket:
 * `writable.close()` half-closes, `abort()` resets (the peer's reads and
 * writes reject with `CONNECTION_RESET`), a writer waits while the peer does
 * not read. Written chunks are copied, so callers may reuse their buffers at
 * once. Made by {@linkcode MemoryTransport}, or in pairs by
 * {@linkcode MemoryConnection.pair}.
 *
 * @example
 * ```ts
 * import { MemoryConnection } from "./memory_connection.ts";
 * import { Multiaddr } from "../netcore/multiaddr.ts";
 *
 * const [a, b] = MemoryConnection.pair(Multiaddr.parse("/memory/1"), Multiaddr.parse("/memory/2"));
 * const writer = a.writable.getWriter();
 * await writer.write(new Uint8Array([7]));
 * await writer.close();
 * for await (const chunk of b.readable) console.log(chunk); // Uint8Array [ 7 ]
 * ```
 */
export class MemoryConnection implements Connection {
  /** Our address of this connection. */
  readonly localAddr: Multiaddr;
  /** The peer's address of this connection. */
  readonly remoteAddr: Multiaddr;
  /** Bytes from the peer. */
  readonly readable: ReadableStream<Uint8Array>;
  /** Bytes to the peer. */
  readonly writable: WritableStream<Uint8Array>;
  /** Settles when this end is released. Never rejects. */
  readonly closed: Promise<void>;

  readonly #inbound: Pipe;
  readonly #outbound: Pipe;
  readonly #closeGracePeriod: number;
  #peer: MemoryConnection | undefined;
  readonly #lifecycle: GracefulClose;

  private constructor(
    inbound: Pipe,
    outbound: Pipe,
    localAddr: Multiaddr,
    remoteAddr: Multiaddr,
    closeGracePeriod: number,
  ) {
    this.#inbound = inbound;
    this.#outbound = outbound;
    this.localAddr = localAddr;
    this.remoteAddr = remoteAddr;
    this.#closeGracePeriod = closeGracePeriod;
    this.#lifecycle = new GracefulClose({
      halfClose: () => outbound.end(),
      release: () => {
        // Like a closed socket: what the peer writes from now on is refused.
        inbound.error(new NetworkError("CONNECTION_RESET", "the peer closed the connection"));
        outbound.end();
      },
    });
    this.closed = this.#lifecycle.closed;
    this.readable = new ReadableStream<Uint8Array>({
      pull: async (controller) => {
        let chunk: Uint8Array | null;
        try {
          chunk = await inbound.read();
        } catch (err) {
          this.#lifecycle.endRead();
          throw err;
        }
        if (chunk === null) {
          this.#lifecycle.endRead();
          controller.close();
        } else {
          controller.enqueue(chunk);
        }
      },
      cancel: () => {
        inbound.discard();
        this.#lifecycle.endRead();
      },
    }, { highWaterMark: 0 });
    this.writable = new WritableStream<Uint8Array>({
      write: (chunk) => outbound.write(chunk),
      close: () => this.#lifecycle.closeWrite(),
      abort: (reason) => this.abort(reason),
    });
  }

  /**
   * Two connected ends: what `a` writes `b` reads and back.
   *
   * @param aAddr the address of end `a` (end `b`'s `remoteAddr`)
   * @param bAddr the address of end `b`
   * @param options buffer size and close grace period
   * @param latency the delivery delay in ms, asked for each chunk written
   */
  static pair(
    aAddr: Multiaddr,
    bAddr: Multiaddr,
    options: MemoryConnectionOptions = {},
    latency: () => number = () => 0,
  ): [MemoryConnection, MemoryConnection] {
    const { bufferSize, closeGracePeriod } = { ...MEMORY_CONNECTION_DEFAULTS, ...options };
    const aToB = new Pipe(bufferSize, latency);
    const bToA = new Pipe(bufferSize, latency);
    const a = new MemoryConnection(bToA, aToB, aAddr, bAddr, closeGracePeriod);
    const b = new MemoryConnection(aToB, bToA, bAddr, aAddr, closeGracePeriod);
    a.#peer = b;
    b.#peer = a;
    return [a, b];
  }

  /** Unread bytes on their way from us to the peer. */
  get bufferedOutbound(): number {
    return this.#outbound.buffered;
  }

  /**
   * Half-closes our side (after queued writes when nobody holds the
   * writable), waits for the peer's end or the grace period, then releases.
   * If nobody reads `readable`, it is drained so the peer's end can be seen.
   */
  close(): Promise<void> {
    return this.#lifecycle.close(this, this.#closeGracePeriod);
  }

  /**
   * Drops the connection: our pending operations reject with `reason` (as a
   * `NetworkError`), the peer's with `CONNECTION_RESET`.
   */
  abort(reason?: unknown): void {
    if (this.#lifecycle.released) return;
    const local = reason instanceof NetworkError
      ? reason
      : new NetworkError("CONNECTION_RESET", "connection aborted locally", { cause: reason });
    this.#reset(local, new NetworkError("CONNECTION_RESET", "connection reset by peer"));
  }

  /** Resets both ends, as a cut wire would: both see `CONNECTION_RESET`. */
  cut(): void {
    const error = new NetworkError("CONNECTION_RESET", "connection cut");
    this.#reset(error, error);
  }

  #reset(local: NetworkError, remote: NetworkError): void {
    if (this.#lifecycle.released) return;
    this.#inbound.error(local);
    this.#outbound.error(remote);
    this.#lifecycle.release();
    const peer = this.#peer;
    if (peer !== undefined) peer.#lifecycle.release();
  }
}
