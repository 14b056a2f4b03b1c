/**
 * One end of a TCP connection as a {@linkcode Connection}.
 *
 * Deno's own `conn.readable`/`conn.writable` close the whole socket when
 * either of them ends, which makes half-close impossible, so this module puts
 * the thinnest possible streams over `conn.read`/`conn.write` instead: a
 * source and a plain sink.
 *
 * Reads land in a slab: a buffer several reads long, each read filling the
 * part after the previous one. Chunks handed out never overlap, so each still
 * belongs to its reader alone, and consecutive chunks are usually adjacent in
 * memory, which lets `ByteReader` join a frame split across two reads without
 * copying. The read size adapts: it starts at 2 KiB, doubles (up to
 * `readChunkSize`) while reads come back full and halves (down to 16 KiB)
 * while they come back small, and slabs grow from one read to eight, so a
 * short-lived or chatty connection allocates little and a bulk one reads
 * large. (A reader that reuses one buffer, as the Noise channel does, reads
 * into it instead: see `readInto` in `_direct.ts`.)
 *
 * @module
 */

import { Multiaddr } from "../multiaddr.ts";
import { NetworkError } from "../network_error.ts";
import { registerDirectSink, registerDirectSource } from "./_direct.ts";
import { GracefulClose } from "./_graceful_close.ts";
import { ioError } from "./_io_error.ts";
import type { Connection } from "./connection.ts";

/** Options for a {@linkcode TcpConnection}. Defaults in {@linkcode TCP_CONNECTION_DEFAULTS}. */
export interface TcpConnectionOptions {
  /**
   * How long `close()` waits, after half-closing our side, for the peer to
   * end its side before releasing the socket anyway. Default 5_000 ms.
   */
  closeGracePeriod?: number;
  /**
   * Largest single read, in bytes; reads start at 2 KiB (or this, if
   * smaller) and grow toward it while they come back full. Default 262_144.
   */
  readChunkSize?: number;
}

/** The defaults of {@linkcode TcpConnectionOptions}. */
export const TCP_CONNECTION_DEFAULTS: Required<TcpConnectionOptions> = {
  closeGracePeriod: 5_000,
  readChunkSize: 262_144,
};

/** The size reads that come back small shrink back to, at the least. */
const MIN_READ = 16 * 1024;
/**
 * First read size (capped by `readChunkSize`): a handshake's first messages
 * are a few hundred bytes, and a connection that turns out bulky doubles it
 * on every full read.
 */
const FIRST_READ = 2 * 1024;
/** A slab holds at most this many reads of the current size. */
const READS_PER_SLAB = 8;

/**
 * The multiaddr of a Deno TCP address.
 *
 * @example
 * ```ts
 * import { netAddrToMultiaddr } from "./tcp_connection.ts";
 * const addr = netAddrToMultiaddr({ transport: "tcp", hostname: "::1", port: 80 });
 * console.log(addr.toString()); // "/ip6/::1/tcp/80"
 * ```
 */
export function netAddrToMultiaddr(addr: Deno.NetAddr): Multiaddr {
  const family = addr.hostname.includes(":") ? "ip6" : "ip4";
  return Multiaddr.parse(`/${family}/${addr.hostname}/tcp/${addr.port}`);
}

/**
 * A TCP connection. Made by {@linkcode TcpTransport}; construct one yourself
 * only to wrap a `Deno.TcpConn` you opened.
 *
 * - `readable` ends when the peer half-closes; errors with `CONNECTION_RESET`
 *   when it resets. Cancelling it stops reading but sends nothing.
 * - `writable.close()` half-closes (TCP FIN): the peer reads to its end and
 *   may still write back. `writable.abort()` aborts the connection.
 * - `abort()` closes the socket at once. The peer sees a reset (its reads
 *   reject) when bytes it sent were still unread here, as TCP sends RST then;
 *   otherwise it sees an end of stream and its next writes fail.
 *
 * @example
 * ```ts
 * import { TcpConnection } from "./tcp_connection.ts";
 * const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
 * const raw = await Deno.connect({ hostname: "127.0.0.1", port: listener.addr.port });
 * const conn = new TcpConnection(raw);
 * conn.abort();
 * (await listener.accept()).close();
 * listener.close();
 * ```
 */
export class TcpConnection implements Connection {
  /** Bytes from the peer. */
  readonly readable: ReadableStream<Uint8Array>;
  /** Bytes to the peer. */
  readonly writable: WritableStream<Uint8Array>;
  /** Settles when the socket is released. Never rejects. */
  readonly closed: Promise<void>;

  readonly #conn: Deno.TcpConn;
  // Turned into multiaddrs when first asked for: most connections never are.
  readonly #localNetAddr: Deno.NetAddr;
  readonly #remoteNetAddr: Deno.NetAddr;
  #localAddr: Multiaddr | undefined;
  #remoteAddr: Multiaddr | undefined;
  readonly #options: Required<TcpConnectionOptions>;
  readonly #lifecycle: GracefulClose;
  /** Why the connection was aborted locally; pending operations reject with it. */
  #abortReason: NetworkError | undefined;
  /** The buffer reads land in, and where its free part starts. */
  #slab = new Uint8Array(0);
  #slabUsed = 0;
  /** Reads the next slab holds: one at first, doubling per slab up to READS_PER_SLAB. */
  #slabReads = 1;
  #readSize: number;

  /**
   * Wraps `conn`, which this object then owns.
   *
   * @param conn an open TCP connection
   * @param options see {@linkcode TcpConnectionOptions}
   */
  constructor(conn: Deno.TcpConn, options: TcpConnectionOptions = {}) {
    this.#conn = conn;
    this.#options = { ...TCP_CONNECTION_DEFAULTS, ...options };
    this.#localNetAddr = conn.localAddr;
    this.#remoteNetAddr = conn.remoteAddr;
    this.#readSize = Math.max(1, Math.min(FIRST_READ, this.#options.readChunkSize));
    this.#lifecycle = new GracefulClose({
      halfClose: () => {
        try {
          conn.closeWrite();
        } catch {
          // The peer already reset: nothing left to half-close.
        }
      },
      release: () => {
        try {
          conn.close();
        } catch {
          // Already closed by Deno (e.g. after an error).
        }
      },
    });
    this.closed = this.#lifecycle.closed;
    // Not a byte stream: enqueueing into one transfers (detaches) the chunk's
    // whole buffer, which would take the rest of the slab with it.
    this.readable = new ReadableStream<Uint8Array>({
      pull: (controller) => this.#pull(controller),
      cancel: () => this.#lifecycle.endRead(),
    }, { highWaterMark: 0 });
    this.writable = new WritableStream<Uint8Array>({
      write: (chunk) => this.#write(chunk),
      close: () => this.#lifecycle.closeWrite(),
      abort: (reason) => this.abort(reason),
    });
    registerDirectSource(this.readable, {
      read: () => this.#read(),
      readInto: (buffer) => this.#readInto(buffer),
    });
    registerDirectSink(this.writable, { write: (chunk) => this.#write(chunk) });
  }

  /** Our address of this connection. */
  get localAddr(): Multiaddr {
    return this.#localAddr ??= netAddrToMultiaddr(this.#localNetAddr);
  }

  /** The peer's address of this connection. */
  get remoteAddr(): Multiaddr {
    return this.#remoteAddr ??= netAddrToMultiaddr(this.#remoteNetAddr);
  }

  async #pull(controller: ReadableStreamDefaultController<Uint8Array>): Promise<void> {
    const chunk = await this.#read();
    if (chunk === undefined) controller.close();
    else controller.enqueue(chunk);
  }

  /** The next chunk read, `undefined` at the peer's end. */
  async #read(): Promise<Uint8Array | undefined> {
    const size = this.#readSize;
    if (this.#slab.length - this.#slabUsed < size) {
      this.#slab = new Uint8Array(size * this.#slabReads);
      this.#slabReads = Math.min(this.#slabReads * 2, READS_PER_SLAB);
      this.#slabUsed = 0;
    }
    const view = this.#slab.subarray(this.#slabUsed, this.#slabUsed + size);
    const n = await this.#readInto(view);
    if (n === undefined) return undefined;
    this.#slabUsed += n;
    if (n === size) {
      this.#readSize = Math.min(size * 2, Math.max(this.#options.readChunkSize, 1));
    } else if (n < size / 4 && size > MIN_READ) {
      this.#readSize = Math.max(size / 2, MIN_READ);
    }
    return view.subarray(0, n);
  }

  /** One socket read into `buffer`: the count, `undefined` at the peer's end. */
  async #readInto(buffer: Uint8Array): Promise<number | undefined> {
    let n: number | null;
    try {
      n = await this.#conn.read(buffer);
    } catch (err) {
      const error = this.#abortReason ?? ioError(err, "TCP read failed", "CONNECTION_RESET");
      this.#lifecycle.endRead();
      // A reset connection is dead both ways: release it now.
      this.#lifecycle.release();
      throw error;
    }
    if (n === null) {
      this.#lifecycle.endRead();
      return undefined;
    }
    return n;
  }

  async #write(chunk: Uint8Array): Promise<void> {
    if (this.#abortReason) throw this.#abortReason;
    try {
      let written = 0;
      while (written < chunk.length) {
        written += await this.#conn.write(chunk.subarray(written));
      }
    } catch (err) {
      throw this.#abortReason ?? ioError(err, "TCP write failed", "CONNECTION_RESET");
    }
  }

  /**
   * Half-closes our side (after the writes already queued when nobody holds
   * the writable), waits for the peer to end its side or for the grace
   * period, then releases the socket. If nobody reads `readable`, it is
   * drained so the peer's end can be seen.
   */
  close(): Promise<void> {
    return this.#lifecycle.close(this, this.#options.closeGracePeriod);
  }

  /** Closes the socket at once; pending reads and writes here reject with `reason`. */
  abort(reason?: unknown): void {
    if (this.#lifecycle.released) return;
    this.#abortReason = reason instanceof NetworkError
      ? reason
      : new NetworkError("CONNECTION_RESET", "connection aborted locally", { cause: reason });
    this.#lifecycle.release();
  }
}
