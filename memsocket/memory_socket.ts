/**
 * One end of an in-memory connection, shaped like a Deno TCP connection
 * (`read` into a buffer, `write` returning a count, `closeWrite`, `close`),
 * so the stack's socket layer runs over it exactly as over TCP.
 *
 * @module
 */

import { Pipe } from "./_pipe.ts";

/**
 * One end of a connection of a {@linkcode MemoryNetwork}: two bounded pipes,
 * one per direction. Errors are Deno's I/O error classes, as a TCP socket's
 * are: `ConnectionReset` when the connection was reset or cut,
 * `BrokenPipe` on a write after our own half-close, `BadResource` on use
 * after `close()`.
 *
 * @example
 * ```ts
 * import { MemoryNetwork } from "./memory_network.ts";
 * const network = new MemoryNetwork();
 * const listener = network.listen("/memory/0");
 * const client = await network.connect(listener.addr);
 * const server = (await listener.accept())!;
 * await client.write(new Uint8Array([1, 2, 3]));
 * const buffer = new Uint8Array(8);
 * console.log(await server.read(buffer)); // 3
 * client.close();
 * server.close();
 * listener.close();
 * ```
 */
export class MemorySocket {
  /** Our address, `/memory/<port>`. */
  readonly localAddr: string;
  /** The peer's address, `/memory/<port>`. */
  readonly remoteAddr: string;
  /** Settles when this end is closed, reset or cut. */
  readonly closed: Promise<void>;

  readonly #inbound: Pipe;
  readonly #outbound: Pipe;
  readonly #closedSignal = Promise.withResolvers<void>();
  #peer: MemorySocket | undefined;
  /** We closed or reset this end: using it is a bad resource, as a closed socket. */
  #isClosed = false;
  #released = false;

  private constructor(inbound: Pipe, outbound: Pipe, localAddr: string, remoteAddr: string) {
    this.#inbound = inbound;
    this.#outbound = outbound;
    this.localAddr = localAddr;
    this.remoteAddr = remoteAddr;
    this.closed = this.#closedSignal.promise;
  }

  /**
   * Two connected ends. Each direction buffers at most `bufferSize` bytes
   * and delivers each piece `latency()` ms after it was written.
   */
  static pair(
    aAddr: string,
    bAddr: string,
    bufferSize: number,
    latency: () => number = () => 0,
  ): [MemorySocket, MemorySocket] {
    const aToB = new Pipe(bufferSize, latency);
    const bToA = new Pipe(bufferSize, latency);
    const a = new MemorySocket(bToA, aToB, aAddr, bAddr);
    const b = new MemorySocket(aToB, bToA, bAddr, aAddr);
    a.#peer = b;
    b.#peer = a;
    return [a, b];
  }

  /** Bytes we wrote that the peer has not read yet. */
  get bufferedOutbound(): number {
    return this.#outbound.buffered;
  }

  /** Reads into `buffer`: the count, or `null` at the peer's end. */
  read(buffer: Uint8Array): Promise<number | null> {
    if (this.#isClosed) return Promise.reject(new Deno.errors.BadResource("socket is closed"));
    return this.#inbound.read(buffer);
  }

  /** Writes as much of `data` as fits, waiting while nothing fits: the count written. */
  write(data: Uint8Array): Promise<number> {
    if (this.#isClosed) return Promise.reject(new Deno.errors.BadResource("socket is closed"));
    return this.#outbound.write(data);
  }

  /** Half-closes: the peer reads to the end of what we wrote, then sees the end. */
  closeWrite(): Promise<void> {
    this.#outbound.end();
    return Promise.resolve();
  }

  /**
   * Closes this end. The peer reads what we wrote, then the end; its
   * further writes fail with `ConnectionReset`, as they would into a closed
   * TCP socket.
   */
  close(): void {
    if (this.#isClosed) return;
    this.#isClosed = true;
    this.#release();
    this.#inbound.error(new Deno.errors.ConnectionReset("the peer closed the connection"));
    this.#outbound.end();
  }

  /** Resets the connection: both ends' pending and later reads and writes fail. */
  reset(): void {
    if (this.#isClosed) return;
    this.#isClosed = true;
    this.#fail(
      new Deno.errors.ConnectionReset("connection reset locally"),
      new Deno.errors.ConnectionReset("connection reset by peer"),
    );
  }

  /** A network fault: the connection dies under both ends, each sees a reset. */
  cut(): void {
    const error = new Deno.errors.ConnectionReset("connection cut");
    this.#fail(error, error);
  }

  /** Holds or releases delivery in both directions (a partition stalls, it does not reset). */
  hold(held: boolean): void {
    this.#inbound.hold(held);
    this.#outbound.hold(held);
  }

  #fail(local: Error, remote: Error): void {
    this.#inbound.error(local);
    this.#outbound.error(remote);
    this.#release();
    if (this.#peer !== undefined) this.#peer.#release();
  }

  #release(): void {
    if (this.#released) return;
    this.#released = true;
    this.#closedSignal.resolve();
  }
}
