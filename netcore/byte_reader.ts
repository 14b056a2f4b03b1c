/**
 * Reads a byte stream in the units protocols think in (exactly N bytes, a
 * varint, whatever is there) and hands what it has buffered on to the next
 * layer, so negotiation, Noise and yamux can take turns on one stream without
 * losing bytes that arrived early.
 *
 * @module
 */

import { NetworkError } from "./network_error.ts";
import { type DirectSource, directSource } from "./transport/_direct.ts";
import { decodeVarint, MAX_VARINT_BYTES } from "./varint.ts";

const EMPTY = new Uint8Array(0);
/** The largest buffer {@linkcode ByteReader.reuseBuffer} grows to by default: a few socket reads. */
const DEFAULT_REUSED_BUFFER_MAX = 512 * 1024;
/** The buffer it starts with, so a short-lived connection allocates little. */
const FIRST_REUSED_BUFFER = 4 * 1024;

/**
 * What a stream returned by `release()` wraps: the bytes read ahead and the
 * reader on the source. A `ByteReader` made on such a stream before anyone
 * pulled from it takes both over and reads the source directly, so handing a
 * stream from layer to layer (negotiation, Noise, a protocol handler) adds no
 * stream hop per read.
 */
interface Handoff {
  pending: Uint8Array | undefined;
  readonly reader: ReadableStreamDefaultReader<Uint8Array>;
  /** The source's side door (`transport/_direct.ts`), when it has one. */
  readonly direct: DirectSource | undefined;
  pulled: boolean;
}

const handoffs = new WeakMap<ReadableStream<Uint8Array>, Handoff>();

/**
 * A buffered reader over a `ReadableStream<Uint8Array>`.
 *
 * Returned arrays are views into the chunks the stream produced whenever the
 * requested bytes lie in one chunk, or in consecutive chunks that are
 * adjacent in one buffer (as a TCP connection's reads are): no copy then.
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
 * const stream = ReadableStream.from([new Uint8Array([0, 3, 1]), new Uint8Array([2, 3])]);
 * const reader = new ByteReader(stream);
 * const header = await reader.readExactly(2);
 * const body = await reader.readExactly((header[0] << 8) | header[1]);
 * console.log(body); // Uint8Array [ 1, 2, 3 ]
 * ```
 */
export class ByteReader {
  readonly #source: ReadableStream<Uint8Array>;
  readonly #reader: ReadableStreamDefaultReader<Uint8Array>;
  /** The lock on `#source` when `#reader` is a handed-off source reader. */
  readonly #lock: ReadableStreamDefaultReader<Uint8Array> | undefined;
  /** The source's side door: read through it, not through the stream. */
  readonly #direct: DirectSource | undefined;
  #chunk: Uint8Array = EMPTY;
  #offset = 0;
  #released = false;
  /**
   * The buffer reads land in after `reuseBuffer()`. Then `#chunk` is always
   * its first `#chunk.length` bytes and the buffered ones start at `#offset`.
   */
  #reused: Uint8Array | undefined;
  /** How large `#reused` may grow. */
  #reusedMax = 0;
  /** The last read filled all the room it had: more was waiting, so grow. */
  #readFilledRoom = false;

  /** Locks `readable` for this reader until {@linkcode ByteReader.release}. */
  constructor(readable: ReadableStream<Uint8Array>) {
    this.#source = readable;
    const handoff = handoffs.get(readable);
    if (handoff !== undefined && !handoff.pulled && !readable.locked) {
      // Hold the released stream locked, but read its source directly.
      this.#lock = readable.getReader();
      this.#reader = handoff.reader;
      this.#direct = handoff.direct;
      this.#chunk = handoff.pending ?? EMPTY;
      handoff.pending = undefined;
    } else {
      // Locked first: the side door is only ours once nobody else can read.
      this.#reader = readable.getReader();
      this.#direct = directSource(readable);
    }
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
   * ```ts ignore
   * reader.reuseBuffer();
   * const message = await reader.readExactly(length); // valid until the next read
   * ```
   */
  reuseBuffer(maxSize = DEFAULT_REUSED_BUFFER_MAX): void {
    if (this.#reused !== undefined || this.#direct?.readInto === undefined) return;
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
    const readInto = this.#direct!.readInto!;
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
      let count: number | undefined;
      try {
        count = await readInto(reused.subarray(end));
      } catch (err) {
        throw NetworkError.wrap(err, "CONNECTION_RESET", "read failed");
      }
      if (count === undefined) return false;
      if (count === room) this.#readFilledRoom = true;
      end += count;
      this.#chunk = reused.subarray(0, end);
    }
    return true;
  }

  /** The next non-empty chunk of the stream; `undefined` at its end. */
  async #next(): Promise<Uint8Array | undefined> {
    const direct = this.#direct;
    while (direct !== undefined) {
      let chunk: Uint8Array | undefined;
      try {
        chunk = await direct.read();
      } catch (err) {
        throw NetworkError.wrap(err, "CONNECTION_RESET", "read failed");
      }
      if (chunk === undefined || chunk.length > 0) return chunk;
    }
    while (true) {
      let result: ReadableStreamReadResult<Uint8Array>;
      try {
        result = await this.#reader.read();
      } catch (err) {
        throw NetworkError.wrap(err, "CONNECTION_RESET", "read failed");
      }
      if (result.done) return undefined;
      if (result.value.length > 0) return result.value;
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
   * An unsigned varint, at most `max`.
   *
   * @throws {NetworkError} `FRAME_TOO_LARGE` above `max`, `PROTOCOL_VIOLATION`
   *   for a malformed varint, `CONNECTION_CLOSED` when the stream ends first
   */
  async readVarint(max = Number.MAX_SAFE_INTEGER): Promise<number> {
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
   * Gives up the stream: returns a `ReadableStream` that yields the buffered
   * bytes first and then the rest of the source, for the next layer. The
   * reader must not be used afterwards. Cancelling the returned stream cancels
   * the source. With nothing buffered it is the source itself, unwrapped.
   */
  release(): ReadableStream<Uint8Array> {
    if (this.#released) throw new TypeError("ByteReader already released");
    this.#released = true;
    if (this.buffered === 0) {
      // A handed-off source reader stays with the released stream, which
      // reads through it; otherwise the source itself goes back unlocked.
      (this.#lock ?? this.#reader).releaseLock();
      return this.#source;
    }
    const handoff: Handoff = {
      pending: this.#chunk.subarray(this.#offset),
      reader: this.#reader,
      direct: this.#direct,
      pulled: false,
    };
    this.#chunk = EMPTY;
    this.#offset = 0;
    const reader = this.#reader;
    const released = new ReadableStream<Uint8Array>({
      async pull(controller) {
        handoff.pulled = true;
        if (handoff.pending !== undefined) {
          controller.enqueue(handoff.pending);
          handoff.pending = undefined;
          return;
        }
        try {
          const { done, value } = await reader.read();
          if (done) controller.close();
          else controller.enqueue(value);
        } catch (err) {
          controller.error(err);
        }
      },
      cancel(reason) {
        return reader.cancel(reason);
      },
    }, { highWaterMark: 0 });
    handoffs.set(released, handoff);
    return released;
  }

  /** Cancels the source stream. */
  async cancel(reason?: unknown): Promise<void> {
    await this.#reader.cancel(reason).catch(() => {});
  }
}
