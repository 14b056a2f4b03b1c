/**
 * Reads a byte stream in the units protocols think in (exactly N bytes, a
 * varint, whatever is there) and hands what it has buffered on to the next
 * layer, so negotiation, Noise and yamux can take turns on one stream without
 * losing bytes that arrived early.
 *
 * @module
 */

import { NetworkError } from "./network_error.ts";
import { ForwardingConnection } from "./transport/byte_connection.ts";
import type { ByteSource, Connection } from "./transport/connection.ts";
import { decodeVarint, MAX_VARINT_BYTES } from "./varint.ts";

const EMPTY = new Uint8Array(0);
/** The largest buffer {@linkcode ByteReader.reuseBuffer} grows to by default: a few socket reads. */
const DEFAULT_REUSED_BUFFER_MAX = 512 * 1024;
/** The buffer it starts with, so a short-lived connection allocates little. */
const FIRST_REUSED_BUFFER = 4 * 1024;

/**
 * A buffered reader over a {@linkcode ByteSource} (a connection's read
 * half), itself a `ByteSource` that yields what it buffered first.
 *
 * Returned arrays are views into the chunks the stream produced whenever the
 * requested bytes lie in one chunk, or in consecutive chunks that are
 * adjacent in one buffer (as a socket's reads are): no copy then.
 * Otherwise they are fresh arrays. Either way they belong to the caller.
 *
 * After {@linkcode ByteReader.reuseBuffer} that changes: reads land in one
 * buffer the reader keeps, and each array returned is only valid until the
 * next call.
 *
 * Time-outs are not its business: abort the connection under it and a
 * pending read rejects.
 *
 * @example
 * ```ts
 * import { ByteReader } from "./byte_reader.ts";
 * const chunks = [new Uint8Array([0, 3, 1]), new Uint8Array([2, 3])];
 * const reader = new ByteReader({
 *   read: () => Promise.resolve(chunks.shift() ?? null),
 *   readInto: () => Promise.resolve(null),
 *   cancelRead: () => {},
 * });
 * const header = await reader.readExactly(2);
 * const body = await reader.readExactly((header[0] << 8) | header[1]);
 * console.log(body); // Uint8Array [ 1, 2, 3 ]
 * ```
 */
export class ByteReader implements ByteSource {
  readonly #source: ByteSource;
  #chunk: Uint8Array = EMPTY;
  #offset = 0;
  /**
   * The buffer reads land in after `reuseBuffer()`. Then `#chunk` is always
   * its first `#chunk.length` bytes and the buffered ones start at `#offset`.
   */
  #reused: Uint8Array | undefined;
  /** How large `#reused` may grow. */
  #reusedMax = 0;
  /** The last read filled all the room it had: more was waiting, so grow. */
  #readFilledRoom = false;

  /** A reader of `source`, which it then reads alone. */
  constructor(source: ByteSource) {
    this.#source = source;
  }

  /** Bytes buffered and not yet returned. */
  get buffered(): number {
    return this.#chunk.length - this.#offset;
  }

  /**
   * From now on, reads land in one buffer that this reader reuses, so a long
   * stream of reads allocates nothing; every array returned is then only
   * valid until the next call on this reader. For a caller that is done with
   * each array before it reads again, as the Noise channel is once it has
   * decrypted a message. The buffer starts at 4 KiB and doubles, up to
   * `maxSize`, while reads fill it (or to what a single read asks for).
   * Takes effect only over a source that can fill a buffer it does not own
   * (a TCP connection); over others, arrays stay the caller's.
   *
   * @example
   * ```ts
   * import { ByteReader } from "./byte_reader.ts";
   * import type { Connection } from "./transport/connection.ts";
   * // Length-prefixed messages, each used before the next read.
   * async function sizes(conn: Connection, count: number): Promise<number[]> {
   *   const reader = new ByteReader(conn);
   *   reader.reuseBuffer();
   *   const out: number[] = [];
   *   for (let i = 0; i < count; i++) {
   *     const header = await reader.readExactly(2);
   *     const length = (header[0] << 8) | header[1]; // read `header` before the next call
   *     out.push((await reader.readExactly(length)).length);
   *   }
   *   return out;
   * }
   * ```
   */
  reuseBuffer(maxSize = DEFAULT_REUSED_BUFFER_MAX): void {
    if (this.#reused !== undefined) return;
    const pending = this.#chunk.subarray(this.#offset);
    const reused = new Uint8Array(Math.max(Math.min(FIRST_REUSED_BUFFER, maxSize), pending.length));
    reused.set(pending);
    this.#reused = reused;
    this.#reusedMax = maxSize;
    this.#chunk = reused.subarray(0, pending.length);
    this.#offset = 0;
  }

  /**
   * Reads into the reused buffer until `n` bytes are buffered; false when
   * the stream ends first. The buffered bytes move to the front first (into
   * a larger buffer when it should grow) if `n` would not fit after them or
   * little room is left for the next read.
   */
  async #fillReused(n: number): Promise<boolean> {
    let reused = this.#reused!;
    const source = this.#source;
    let start = this.#offset;
    let end = this.#chunk.length;
    const grow = this.#readFilledRoom && reused.length < this.#reusedMax;
    if (grow || reused.length - start < n || reused.length - end < reused.length / 4) {
      const size = Math.max(n, grow ? Math.min(reused.length * 2, this.#reusedMax) : 0);
      if (size > reused.length) {
        const larger = new Uint8Array(size);
        larger.set(reused.subarray(start, end));
        this.#reused = reused = larger;
      } else if (start < end) {
        reused.copyWithin(0, start, end);
      }
      this.#readFilledRoom = false;
      end -= start;
      start = 0;
      this.#chunk = reused.subarray(0, end);
      this.#offset = 0;
    }
    while (end - start < n) {
      const room = reused.length - end;
      let count: number | null;
      try {
        count = await source.readInto(reused.subarray(end));
      } catch (err) {
        throw NetworkError.wrap(err, "CONNECTION_RESET", "read failed");
      }
      if (count === null) return false;
      if (count === room) this.#readFilledRoom = true;
      end += count;
      this.#chunk = reused.subarray(0, end);
    }
    return true;
  }

  /** The next non-empty chunk of the source; `undefined` at its end. */
  async #next(): Promise<Uint8Array | undefined> {
    while (true) {
      let chunk: Uint8Array | null;
      try {
        chunk = await this.#source.read();
      } catch (err) {
        throw NetworkError.wrap(err, "CONNECTION_RESET", "read failed");
      }
      if (chunk === null) return undefined;
      if (chunk.length > 0) return chunk;
    }
  }

  /** Pulls the next non-empty chunk into the buffer; false at end of stream. */
  async #fill(): Promise<boolean> {
    if (this.#reused !== undefined) return await this.#fillReused(1);
    const next = await this.#next();
    if (next === undefined) return false;
    this.#chunk = next;
    this.#offset = 0;
    return true;
  }

  /**
   * Whether the source ended with nothing left buffered: reads ahead (one
   * chunk) when nothing is buffered, so a reader can tell "another message
   * follows" from "the peer is done" between messages.
   */
  async atEnd(): Promise<boolean> {
    return this.buffered === 0 && !(await this.#fill());
  }

  /**
   * Exactly `n` bytes.
   *
   * @throws {NetworkError} `CONNECTION_CLOSED` when the stream ends first,
   *   `CONNECTION_RESET` when it errors
   */
  async readExactly(n: number): Promise<Uint8Array> {
    if (this.buffered < n && this.#reused !== undefined) {
      if (!await this.#fillReused(n)) {
        throw new NetworkError(
          "CONNECTION_CLOSED",
          `stream ended after ${this.buffered} of ${n} expected bytes`,
        );
      }
    } else if (this.buffered < n) {
      const copied = await this.#gather(n);
      if (copied !== undefined) return copied;
    }
    const view = this.#chunk.subarray(this.#offset, this.#offset + n);
    this.#offset += n;
    return view;
  }

  /**
   * Makes `n` bytes available: by widening the view over the buffered bytes
   * while the stream's chunks continue it in memory (then returns nothing
   * and they are buffered), else by copying them into one fresh array, which
   * it returns (and what is left of the last chunk stays buffered).
   */
  async #gather(n: number): Promise<Uint8Array | undefined> {
    let head = this.#chunk.subarray(this.#offset);
    while (head.length < n) {
      const next = await this.#next();
      if (next === undefined) {
        throw new NetworkError(
          "CONNECTION_CLOSED",
          `stream ended after ${head.length} of ${n} expected bytes`,
        );
      }
      if (head.length === 0) {
        head = next;
      } else if (next.buffer === head.buffer && next.byteOffset === head.byteOffset + head.length) {
        head = new Uint8Array(head.buffer, head.byteOffset, head.length + next.length);
      } else {
        this.#chunk = EMPTY;
        this.#offset = 0;
        return await this.#copyGather(head, next, n);
      }
      this.#chunk = head;
      this.#offset = 0;
    }
    return undefined;
  }

  /** `head`, then `next` and further chunks, copied until `n` bytes. */
  async #copyGather(head: Uint8Array, next: Uint8Array, n: number): Promise<Uint8Array> {
    const out = new Uint8Array(n);
    out.set(head);
    let filled = head.length;
    let chunk: Uint8Array | undefined = next;
    while (true) {
      const take = Math.min(n - filled, chunk.length);
      out.set(chunk.subarray(0, take), filled);
      filled += take;
      if (filled === n) {
        this.#chunk = chunk;
        this.#offset = take;
        return out;
      }
      chunk = await this.#next();
      if (chunk === undefined) {
        throw new NetworkError(
          "CONNECTION_CLOSED",
          `stream ended after ${filled} of ${n} expected bytes`,
        );
      }
    }
  }

  /**
   * Fills `buffer` with the stream's next `buffer.length` bytes (a copy: the
   * caller owns the buffer, whatever the chunks it came in).
   *
   * @throws {NetworkError} `CONNECTION_CLOSED` when the stream ends first,
   *   `CONNECTION_RESET` when it errors
   */
  async readFully(buffer: Uint8Array): Promise<void> {
    const n = buffer.length;
    // What is buffered is copied without waiting (often all of it).
    let filled = Math.min(n, this.buffered);
    buffer.set(this.#chunk.subarray(this.#offset, this.#offset + filled));
    this.#offset += filled;
    while (filled < n) {
      const chunk = await this.readSome(n - filled);
      if (chunk === undefined) {
        throw new NetworkError(
          "CONNECTION_CLOSED",
          `stream ended after ${filled} of ${n} expected bytes`,
        );
      }
      buffer.set(chunk, filled);
      filled += chunk.length;
    }
  }

  /**
   * Up to `max` bytes: what is buffered, or else the next chunk. `undefined`
   * at the end of the stream.
   */
  async readSome(max = Number.POSITIVE_INFINITY): Promise<Uint8Array | undefined> {
    if (this.buffered === 0 && !(await this.#fill())) return undefined;
    const take = Math.min(max, this.buffered);
    const view = this.#chunk.subarray(this.#offset, this.#offset + take);
    this.#offset += take;
    return view;
  }

  /**
   * Fills `buffer` from what is buffered, without waiting, when enough is
   * buffered; false (nothing consumed) when more must be read first: the
   * synchronous path of {@linkcode ByteReader.readFully} for a loop over
   * many small messages.
   *
   * @example
   * ```ts
   * import { ByteReader } from "./byte_reader.ts";
   * async function fill(reader: ByteReader, buffer: Uint8Array): Promise<void> {
   *   if (!reader.tryReadFully(buffer)) await reader.readFully(buffer);
   * }
   * ```
   */
  tryReadFully(buffer: Uint8Array): boolean {
    const n = buffer.length;
    if (this.buffered < n) return false;
    buffer.set(this.#chunk.subarray(this.#offset, this.#offset + n));
    this.#offset += n;
    return true;
  }

  /**
   * An unsigned varint, at most `max`, when it is buffered whole, without
   * waiting; `undefined` (nothing consumed) when more must be read first:
   * the synchronous path of {@linkcode ByteReader.readVarint}.
   *
   * @example
   * ```ts
   * import { ByteReader } from "./byte_reader.ts";
   * async function length(reader: ByteReader): Promise<number> {
   *   return reader.tryReadVarint(1 << 20) ?? await reader.readVarint(1 << 20);
   * }
   * ```
   *
   * @throws {NetworkError} `FRAME_TOO_LARGE` above `max`, `PROTOCOL_VIOLATION`
   *   for a malformed varint
   */
  tryReadVarint(max = Number.MAX_SAFE_INTEGER): number | undefined {
    if (this.buffered === 0) return undefined;
    const decoded = decodeVarint(this.#chunk, this.#offset, max);
    if (decoded === undefined) return undefined;
    this.#offset += decoded.length;
    return decoded.value;
  }

  /**
   * An unsigned varint, at most `max`.
   *
   * @throws {NetworkError} `FRAME_TOO_LARGE` above `max`, `PROTOCOL_VIOLATION`
   *   for a malformed varint, `CONNECTION_CLOSED` when the stream ends first
   */
  async readVarint(max = Number.MAX_SAFE_INTEGER): Promise<number> {
    const whole = this.tryReadVarint(max);
    if (whole !== undefined) return whole;
    const bytes = new Uint8Array(MAX_VARINT_BYTES);
    for (let i = 0; i < MAX_VARINT_BYTES; i++) {
      if (this.buffered === 0 && !(await this.#fill())) {
        throw new NetworkError("CONNECTION_CLOSED", "stream ended inside a varint");
      }
      bytes[i] = this.#chunk[this.#offset++];
      const decoded = decodeVarint(bytes.subarray(0, i + 1), 0, max);
      if (decoded !== undefined) return decoded.value;
    }
    throw new NetworkError("PROTOCOL_VIOLATION", `varint longer than ${MAX_VARINT_BYTES} bytes`);
  }

  /**
   * The next chunk: what is buffered, else the source's next chunk (the
   * caller owns it; a copy in `reuseBuffer` mode). `null` at the end.
   */
  async read(): Promise<Uint8Array | null> {
    if (this.buffered > 0) {
      const view = this.#chunk.subarray(this.#offset);
      this.#offset = this.#chunk.length;
      return this.#reused === undefined ? view : view.slice();
    }
    if (this.#reused !== undefined) {
      const some = await this.readSome();
      return some === undefined ? null : some.slice();
    }
    return (await this.#next()) ?? null;
  }

  /** Copies what is buffered into `buffer`, else reads into it from the source. */
  readInto(buffer: Uint8Array): Promise<number | null> {
    const buffered = this.buffered;
    if (buffered === 0) return this.#source.readInto(buffer);
    const n = Math.min(buffered, buffer.length);
    buffer.set(this.#chunk.subarray(this.#offset, this.#offset + n));
    this.#offset += n;
    return Promise.resolve(n);
  }

  /** Drops what is buffered and stops reading the source. */
  cancelRead(reason?: unknown): void {
    this.#chunk = EMPTY;
    this.#offset = 0;
    this.#source.cancelRead(reason);
  }

  /**
   * Hands `conn` (whose read half this reader reads) on to the next layer:
   * `conn` itself when nothing is buffered, else a connection that reads
   * what this reader buffered first, then the rest through it. The caller
   * must not use the reader afterwards.
   */
  handOff<C extends Connection>(conn: C): Connection {
    if (this.buffered === 0) return conn;
    return new ReadAheadConnection(conn, this);
  }
}

/** A connection whose reads go through a {@linkcode ByteReader} that read ahead. */
class ReadAheadConnection extends ForwardingConnection {
  readonly #reader: ByteReader;

  constructor(conn: Connection, reader: ByteReader) {
    super(conn);
    this.#reader = reader;
  }

  override read(): Promise<Uint8Array | null> {
    return this.#reader.read();
  }
  override readInto(buffer: Uint8Array): Promise<number | null> {
    return this.#reader.readInto(buffer);
  }
  override cancelRead(reason?: unknown): void {
    this.#reader.cancelRead(reason);
  }
}
