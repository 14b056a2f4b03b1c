/**
 * A socket as a {@linkcode Connection}: the bottom of every stack, the same
 * code over a Deno TCP connection and over an in-memory socket.
 *
 * **Write coalescing happens here, and only here.** Writes issued in one turn
 * of the event loop are corked and leave in one socket write at the end of
 * the turn. So a layer never holds bytes back to join them with the next
 * layer's: a listener's protocol agreement and its Noise message 2, a
 * dialer's last handshake message and its first stream, a stream's
 * agreement and the handler's answer, a FIN and a GoAway, each written by
 * its own layer in the same turn, share one system call. Small chunks are
 * copied into the cork (the writer may reuse them at once); large ones are
 * written from the caller's buffer, which stays ours until the write's
 * promise resolves.
 *
 * Reads land in a slab: a buffer several reads long, each read filling the
 * part after the previous one, so chunks handed out never overlap (each
 * belongs to its reader) and consecutive chunks are usually adjacent in
 * memory, which lets `ByteReader` join a frame split across two reads
 * without copying. The read size adapts: it starts at 2 KiB, doubles (up to
 * `readChunkSize`) while reads come back full and halves (down to 16 KiB)
 * while they come back small. A reader that reuses one buffer (the Noise
 * channel) reads into it with `readInto` instead, and the slab is dropped
 * then.
 *
 * **Idle connections keep no buffers.** The cork's copy buffer starts at 4
 * KiB and grows (to 64 KiB) only while turns' small writes outgrow it; it is
 * kept from one turn to the next while the connection writes, and dropped
 * once it wrote nothing for about a second (`_idle_release.ts`): a process
 * with a thousand quiet connections does not hold a thousand of them.
 *
 * @module
 */

import { setImmediate } from "node:timers";
import type { Multiaddr } from "../multiaddr.ts";
import { NetworkError } from "../network_error.ts";
import { ByteConnection } from "./byte_connection.ts";
import { GracefulClose } from "./_graceful_close.ts";
import { forgetHolder, keptForReuse, releaseIdle } from "./_idle_release.ts";
import { ioError } from "./_io_error.ts";

/**
 * What {@linkcode SocketConnection} needs of a socket: the shape of a Deno
 * TCP connection (a `MemorySocket` has it too). Errors are Deno's I/O error
 * classes.
 *
 * @example
 * ```ts
 * import type { Socket } from "./socket_connection.ts";
 * const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
 * const socket: Socket = await Deno.connect({ hostname: "127.0.0.1", port: listener.addr.port });
 * socket.close();
 * listener.close();
 * ```
 */
export interface Socket {
  /** Reads into `buffer`: the count, or `null` at the peer's end. */
  read(buffer: Uint8Array): Promise<number | null>;
  /** Writes a prefix of `data`: the count written. */
  write(data: Uint8Array): Promise<number>;
  /** Half-closes (FIN). */
  closeWrite(): Promise<void>;
  /** Closes the socket. */
  close(): void;
  /** Resets the connection, if the socket can (TCP in Deno cannot: it closes). */
  reset?(): void;
}

/**
 * Options for a {@linkcode SocketConnection}. Defaults in {@linkcode SOCKET_CONNECTION_DEFAULTS}.
 * The transports take them for the connections they make.
 *
 * @example
 * ```ts
 * import type { SocketConnectionOptions } from "./socket_connection.ts";
 * import { TcpTransport } from "./tcp_transport.ts";
 * const options: SocketConnectionOptions = { closeGracePeriod: 1_000, readChunkSize: 65_536 };
 * const tcp = new TcpTransport(options);
 * ```
 */
export interface SocketConnectionOptions {
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

/**
 * The defaults of {@linkcode SocketConnectionOptions}.
 *
 * @example
 * ```ts
 * import { SOCKET_CONNECTION_DEFAULTS } from "./socket_connection.ts";
 * console.log(SOCKET_CONNECTION_DEFAULTS.closeGracePeriod); // 5000
 * ```
 */
export const SOCKET_CONNECTION_DEFAULTS: Required<SocketConnectionOptions> = {
  closeGracePeriod: 5_000,
  readChunkSize: 262_144,
};

/** The size reads that come back small shrink back to, at the least. */
const MIN_READ = 16 * 1024;
/** First read size: a handshake's first messages are a few hundred bytes. */
const FIRST_READ = 2 * 1024;
/** A slab holds at most this many reads of the current size. */
const READS_PER_SLAB = 8;
/** Writes up to this size are copied into the cork; larger ones are written from the caller's buffer. */
const COPY_MAX = 16 * 1024;
/**
 * The cork's copy buffer: room for many small writes of one turn. It starts
 * at `FIRST_COPY_BUFFER` (a handshake message, a ping, a small message fit)
 * and grows fourfold, up to `COPY_BUFFER`, after each turn whose small
 * writes did not fit.
 */
const COPY_BUFFER = 64 * 1024;
const FIRST_COPY_BUFFER = 4 * 1024;
/** Bytes corked or being written above which writers are asked to wait. */
const HIGH_WATER = 1024 * 1024;
const EMPTY = new Uint8Array(0);

/**
 * A round's pieces (deferred ones made): several that together fit a copy
 * buffer are joined in one (a system call costs more than copying them:
 * the Noise channel's message of the turn beside a handshake message, say).
 */
function joinSmall(made: Uint8Array[]): Uint8Array[] {
  if (made.length < 2) return made;
  let total = 0;
  for (const piece of made) total += piece.length;
  if (total > COPY_BUFFER) return made;
  const joined = new Uint8Array(total);
  let at = 0;
  for (const piece of made) {
    joined.set(piece, at);
    at += piece.length;
  }
  return [joined];
}

/**
 * One end of a connection over a {@linkcode Socket}. `TcpTransport` and
 * `MemoryTransport` make these; construct one yourself only to wrap a socket
 * you opened.
 *
 * - `read()` ends (`null`) when the peer half-closes; rejects with
 *   `CONNECTION_RESET` when it resets.
 * - `closeWrite()` half-closes (after the corked bytes): the peer reads to
 *   its end and may still write back.
 * - `abort()` closes the socket at once; pending operations reject.
 *
 * @example
 * ```ts
 * import { Multiaddr } from "../multiaddr.ts";
 * import { SocketConnection } from "./socket_connection.ts";
 * const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
 * const raw = await Deno.connect({ hostname: "127.0.0.1", port: listener.addr.port });
 * const addr = Multiaddr.parse(`/ip4/127.0.0.1/tcp/${listener.addr.port}`);
 * const conn = new SocketConnection(raw, () => addr, () => addr);
 * conn.abort();
 * (await listener.accept()).close();
 * listener.close();
 * ```
 */
export class SocketConnection extends ByteConnection {
  /** Settles when the socket is released. Never rejects. */
  readonly closed: Promise<void>;

  readonly #socket: Socket;
  readonly #lifecycle: GracefulClose;
  readonly #closeGracePeriod: number;
  readonly #readChunkSize: number;
  // Turned into multiaddrs when first asked for: most connections never are.
  readonly #localAddrOf: () => Multiaddr;
  readonly #remoteAddrOf: () => Multiaddr;
  #localAddr: Multiaddr | undefined;
  #remoteAddr: Multiaddr | undefined;
  /** Why the connection was aborted or failed; pending and later operations reject with it. */
  #failure: NetworkError | undefined;

  // ---- read side ----
  #slab = EMPTY;
  #slabUsed = 0;
  /** Reads the next slab holds: one at first, doubling per slab up to READS_PER_SLAB. */
  #slabReads = 1;
  #readSize: number;
  /** Someone reads this connection (and so will see the peer's end). */
  #hasReader = false;
  /** The reader left: what arrives is dropped. */
  #discarding = false;

  // ---- write side: the cork ----
  /**
   * Corked pieces in order: copy buffers, large chunks of the callers', and
   * deferred pieces, made when they leave.
   */
  readonly #corked: (Uint8Array | (() => Uint8Array))[] = [];
  /** The copy buffer small writes go into, and how much of it is used. */
  #copy: Uint8Array | undefined;
  #copyUsed = 0;
  /** A copy buffer the socket is done with, for the next turn (dropped when idle). */
  #spareCopy: Uint8Array | undefined;
  /** The size of the next copy buffer made. */
  #copySize = FIRST_COPY_BUFFER;
  /** Bytes corked or being written. */
  #pending = 0;
  /** Resolves when the corked pieces are written (made only when someone waits). */
  #round: PromiseWithResolvers<void> | undefined;
  #flushScheduled = false;
  #flushing = false;
  #writeClosed = false;

  /**
   * Wraps `socket`, which this object then owns.
   *
   * @param socket an open socket
   * @param localAddr our address (asked for at most once)
   * @param remoteAddr the peer's address (asked for at most once)
   * @param options see {@linkcode SocketConnectionOptions}
   */
  constructor(
    socket: Socket,
    localAddr: () => Multiaddr,
    remoteAddr: () => Multiaddr,
    options: SocketConnectionOptions = {},
  ) {
    super();
    this.#socket = socket;
    this.#localAddrOf = localAddr;
    this.#remoteAddrOf = remoteAddr;
    this.#closeGracePeriod = options.closeGracePeriod ??
      SOCKET_CONNECTION_DEFAULTS.closeGracePeriod;
    this.#readChunkSize = options.readChunkSize ?? SOCKET_CONNECTION_DEFAULTS.readChunkSize;
    this.#readSize = Math.max(1, Math.min(FIRST_READ, this.#readChunkSize));
    this.#lifecycle = new GracefulClose({
      halfClose: () => {
        socket.closeWrite().catch(() => {
          // The peer already reset: nothing left to half-close.
        });
      },
      release: () => {
        this.#spareCopy = undefined;
        forgetHolder(this);
        try {
          socket.close();
        } catch {
          // Already closed (e.g. after an error).
        }
      },
    });
    this.closed = this.#lifecycle.closed;
  }

  /** Our address of this connection. */
  get localAddr(): Multiaddr {
    return this.#localAddr ??= this.#localAddrOf();
  }

  /** The peer's address of this connection. */
  get remoteAddr(): Multiaddr {
    return this.#remoteAddr ??= this.#remoteAddrOf();
  }

  // ---- reading ----

  /** The next chunk read (a view of the slab nobody else sees), `null` at the peer's end. */
  async read(): Promise<Uint8Array | null> {
    const size = this.#readSize;
    if (this.#slab.length - this.#slabUsed < size) {
      this.#slab = new Uint8Array(size * this.#slabReads);
      this.#slabReads = Math.min(this.#slabReads * 2, READS_PER_SLAB);
      this.#slabUsed = 0;
    }
    const view = this.#slab.subarray(this.#slabUsed, this.#slabUsed + size);
    const n = await this.#readSocket(view);
    if (n === null) return null;
    this.#slabUsed += n;
    if (n === size) {
      this.#readSize = Math.min(size * 2, Math.max(this.#readChunkSize, 1));
    } else if (n < size / 4 && size > MIN_READ) {
      this.#readSize = Math.max(size / 2, MIN_READ);
    }
    return view.subarray(0, n);
  }

  /**
   * One socket read into `buffer`: the count, `null` at the peer's end. A
   * reader that brings its own buffer has taken over: the slab is dropped
   * (chunks handed out keep their own views of it).
   */
  readInto(buffer: Uint8Array): Promise<number | null> {
    if (this.#slab !== EMPTY) {
      this.#slab = EMPTY;
      this.#slabUsed = 0;
    }
    return this.#readSocket(buffer);
  }

  /**
   * The socket read itself. Not an async function: an idle connection
   * always has a read pending, and an async frame would be held for each.
   */
  #readSocket(buffer: Uint8Array): Promise<number | null> {
    this.#hasReader = true;
    if (this.#failure !== undefined) return Promise.reject(this.#failure);
    let pending: Promise<number | null>;
    try {
      pending = this.#socket.read(buffer);
    } catch (err) {
      pending = Promise.reject(err);
    }
    return pending.then((n) => {
      if (n === null) this.#lifecycle.endRead();
      return n;
    }, (err) => {
      const error = this.#failure ?? ioError(err, "read failed", "CONNECTION_RESET");
      this.#lifecycle.endRead();
      // A reset connection is dead both ways: release it now.
      this.#fail(error);
      throw error;
    });
  }

  /**
   * Stops reading: what the peer sends from now on is read and dropped, so
   * its writes never stall on us.
   */
  cancelRead(): void {
    if (this.#hasReader && this.#discarding) return;
    this.#hasReader = true;
    this.#discarding = true;
    this.#lifecycle.endRead();
    void this.#discard();
  }

  async #discard(): Promise<void> {
    const scratch = new Uint8Array(MIN_READ);
    try {
      while (!this.#lifecycle.released && (await this.#socket.read(scratch)) !== null) {
        // dropped
      }
    } catch {
      // released or reset: nothing more will arrive
    }
  }

  // ---- writing: the cork ----

  /**
   * Corks `chunk` for the socket write at the end of this turn. Small chunks
   * are copied (returns `undefined`: reuse it at once); a large chunk is
   * written from its own buffer (returns a promise: keep it until then). A
   * promise is also returned while much is waiting to be written.
   */
  write(chunk: Uint8Array): Promise<void> | undefined {
    if (this.#failure !== undefined) return Promise.reject(this.#failure);
    if (this.#writeClosed) {
      return Promise.reject(new NetworkError("CONNECTION_CLOSED", "write after close"));
    }
    const length = chunk.length;
    if (length === 0) return undefined;
    this.#pending += length;
    let keep = false;
    if (length <= COPY_MAX) {
      this.#copyIn(chunk);
    } else {
      this.#copy = undefined;
      this.#corked.push(chunk);
      keep = true;
    }
    this.#scheduleFlush();
    if (!keep && this.#pending <= HIGH_WATER) return undefined;
    this.#round ??= Promise.withResolvers<void>();
    return this.#round.promise;
  }

  /** Holds the place of bytes `produce` makes when this turn's writes leave. */
  writeDeferred(produce: () => Uint8Array): void {
    if (this.#failure !== undefined) throw this.#failure;
    if (this.#writeClosed) throw new NetworkError("CONNECTION_CLOSED", "write after close");
    this.#copy = undefined;
    this.#corked.push(produce);
    this.#scheduleFlush();
  }

  #copyIn(chunk: Uint8Array): void {
    let copy = this.#copy;
    const used = this.#copyUsed;
    if (copy === undefined || copy.length - used < chunk.length) {
      // Larger copy buffers from now on when this one (or a fresh one) is
      // too small for the turn: fourfold, up to COPY_BUFFER (>= COPY_MAX).
      let size = this.#copySize;
      while (
        size < (copy === undefined ? chunk.length : used + chunk.length) && size < COPY_BUFFER
      ) {
        size *= 4;
      }
      this.#copySize = size = Math.min(size, COPY_BUFFER);
      if (copy !== undefined && used + chunk.length <= size) {
        // Grown in place: this turn's small writes stay one piece, one system call.
        const larger = new Uint8Array(size);
        larger.set(copy.subarray(0, used));
        copy = larger;
      } else {
        const spare = this.#spareCopy;
        this.#spareCopy = undefined;
        copy = spare !== undefined && spare.length >= size ? spare : new Uint8Array(size);
        this.#copyUsed = 0;
        this.#corked.push(copy.subarray(0, 0));
      }
      this.#copy = copy;
    }
    copy.set(chunk, this.#copyUsed);
    this.#copyUsed += chunk.length;
    // The corked view of the copy buffer grows with it.
    this.#corked[this.#corked.length - 1] = copy.subarray(0, this.#copyUsed);
  }

  #scheduleFlush(): void {
    if (this.#flushScheduled || this.#flushing) return;
    this.#flushScheduled = true;
    // At the end of this turn: every layer's writes of the turn are corked by then.
    setImmediate(() => {
      this.#flushScheduled = false;
      void this.#flush();
    });
  }

  /** Writes everything corked, round after round, until nothing is left. */
  async #flush(): Promise<void> {
    if (this.#flushing) return;
    this.#flushing = true;
    try {
      while (this.#corked.length > 0 && this.#failure === undefined) {
        const pieces = this.#corked.splice(0);
        const round = this.#round;
        this.#round = undefined;
        const copy = this.#copy;
        this.#copy = undefined;
        let written = 0;
        try {
          const made = pieces.map((piece) => {
            if (typeof piece !== "function") return piece;
            const bytes = piece();
            this.#pending += bytes.length;
            return bytes;
          });
          for (const piece of joinSmall(made)) {
            let offset = 0;
            while (offset < piece.length) {
              offset += await this.#socket.write(piece.subarray(offset));
            }
            written += piece.length;
          }
        } catch (err) {
          const error = this.#failure ?? ioError(err, "write failed", "CONNECTION_RESET");
          round?.reject(error);
          round?.promise.catch(() => {});
          this.#fail(error);
          return;
        }
        this.#pending -= written;
        if (copy !== undefined && copy.length === this.#copySize && !this.#lifecycle.released) {
          this.#spareCopy = copy;
          keptForReuse(this);
        }
        round?.resolve();
      }
      // Everything is written: a round made while the last write was under
      // way (by a closeWrite waiting for it) has nothing left to wait for.
      if (this.#corked.length === 0 && this.#failure === undefined) {
        const round = this.#round;
        this.#round = undefined;
        round?.resolve();
      }
    } finally {
      this.#flushing = false;
    }
  }

  /** Writes what is corked now, then half-closes (TCP FIN). */
  async closeWrite(): Promise<void> {
    if (this.#writeClosed) return;
    this.#writeClosed = true;
    if (this.#corked.length > 0 || this.#flushing) {
      this.#round ??= Promise.withResolvers<void>();
      const round = this.#round.promise;
      void this.#flush();
      await round.catch(() => {});
    }
    if (this.#failure === undefined) this.#lifecycle.closeWrite();
  }

  // ---- lifecycle ----

  /**
   * Half-closes our side (after the corked bytes), waits for the peer to end
   * its side or for the grace period, then releases the socket. If nobody
   * reads, the connection is drained so the peer's end can be seen.
   */
  async close(): Promise<void> {
    if (this.#lifecycle.released) return;
    await this.closeWrite();
    if (!this.#hasReader && !this.readableTaken) void this.#drain();
    await this.#lifecycle.readEnded(this.#closeGracePeriod);
    this.#lifecycle.release();
  }

  async #drain(): Promise<void> {
    try {
      while ((await this.read()) !== null) {
        // discard: the peer's end is what we wait for
      }
    } catch {
      // a failed read released the connection already
    }
  }

  /** Closes the socket at once; pending reads and writes reject with `reason`. */
  abort(reason?: unknown): void {
    if (this.#lifecycle.released) return;
    const error = reason instanceof NetworkError
      ? reason
      : new NetworkError("CONNECTION_RESET", "connection aborted locally", { cause: reason });
    this.#fail(error);
  }

  /** The cork's spare copy buffer goes: the connection wrote nothing for a while. */
  [releaseIdle](): void {
    this.#spareCopy = undefined;
    this.#copySize = FIRST_COPY_BUFFER;
  }

  /** Records `error`, fails waiting writers and releases the socket (a reset when it can). */
  #fail(error: NetworkError): void {
    this.#failure ??= error;
    const round = this.#round;
    this.#round = undefined;
    if (round !== undefined) {
      round.reject(error);
      round.promise.catch(() => {});
    }
    this.#corked.length = 0;
    if (!this.#lifecycle.released) {
      try {
        this.#socket.reset?.();
      } catch {
        // closed already
      }
    }
    this.#lifecycle.release();
  }
}
