/**
 * Byte-array helpers the layers share: equality, and one-byte-per-character
 * strings (map keys, ASCII protocol lines). Internal to the stack.
 *
 * @module
 */

/**
 * Whether `a` and `b` hold the same bytes. Not constant-time: for keys and
 * ids, never for secrets an attacker may probe.
 *
 * @example
 * ```ts
 * import { equalBytes } from "./_bytes.ts";
 * console.log(equalBytes(new Uint8Array([1, 2]), new Uint8Array([1, 2]))); // true
 * ```
 */
export function equalBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/** Bytes per `String.fromCharCode.apply` call: far below any engine's argument limit. */
const APPLY_CHUNK = 4096;

/**
 * The string with one character (code 0-255) per byte: an exact, reversible
 * key for a map, or an ASCII line without a TextDecoder call.
 *
 * @example
 * ```ts
 * import { latin1 } from "./_bytes.ts";
 * console.log(latin1(new TextEncoder().encode("/noise"))); // "/noise"
 * ```
 */
export function latin1(bytes: Uint8Array): string {
  // apply() takes the array as it is; a spread would iterate it.
  if (bytes.length <= APPLY_CHUNK) {
    return String.fromCharCode.apply(null, bytes as unknown as number[]);
  }
  let text = "";
  for (let at = 0; at < bytes.length; at += APPLY_CHUNK) {
    text += String.fromCharCode.apply(
      null,
      bytes.subarray(at, at + APPLY_CHUNK) as unknown as number[],
    );
  }
  return text;
}

/**
 * A few large buffers kept for reuse, so a bulk writer allocates none per
 * write: a buffer taken goes back once its user is done with it (the layer
 * below resolved the write that held it). Only buffers the pool made come
 * back; others are left to the garbage collector.
 *
 * @example
 * ```ts
 * import { BufferPool } from "./_bytes.ts";
 * const pool = new BufferPool(4, 64 * 1024);
 * const frame = pool.take(70_000);
 * pool.give(frame);
 * console.log(pool.take(60_000).buffer === frame.buffer); // true
 * ```
 */
export class BufferPool {
  readonly #kept: ArrayBuffer[] = [];
  readonly #made = new WeakSet<ArrayBuffer>();
  readonly #maxKept: number;
  readonly #minSize: number;
  readonly #maxBytes: number;
  /** Bytes of the buffers kept. */
  #keptBytes = 0;

  /**
   * Keeps at most `maxKept` buffers and `maxBytes` bytes of them (default:
   * no byte bound), each buffer at least `minSize` bytes.
   */
  constructor(maxKept: number, minSize: number, maxBytes = Number.POSITIVE_INFINITY) {
    this.#maxKept = maxKept;
    this.#minSize = minSize;
    this.#maxBytes = maxBytes;
  }

  /** A view of exactly `length` bytes (contents undefined) over a kept or new buffer. */
  take(length: number): Uint8Array {
    const kept = this.#kept;
    for (let i = kept.length - 1; i >= 0; i--) {
      if (kept[i].byteLength >= length) {
        const buffer = kept[i];
        kept[i] = kept[kept.length - 1];
        kept.pop();
        this.#keptBytes -= buffer.byteLength;
        return new Uint8Array(buffer, 0, length);
      }
    }
    const buffer = new ArrayBuffer(Math.max(length, this.#minSize));
    this.#made.add(buffer);
    return new Uint8Array(buffer, 0, length);
  }

  /** Gives back a view `take` returned; anything else is ignored. */
  give(view: Uint8Array): void {
    const buffer = view.buffer as ArrayBuffer;
    if (
      this.#made.has(buffer) && this.#kept.length < this.#maxKept &&
      this.#keptBytes + buffer.byteLength <= this.#maxBytes
    ) {
      this.#kept.push(buffer);
      this.#keptBytes += buffer.byteLength;
    }
  }
}
