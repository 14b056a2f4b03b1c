/**
 * A side door between the stack's own layers, under their Web Streams.
 *
 * Every layer (TCP, the Noise channel, yamux) is a Web-Streams `Connection`,
 * and each chunk that crosses a stream costs promises, a deferred and a
 * backpressure update: about a kilobyte of garbage and a microsecond, per
 * chunk, per layer. A 32-byte ping crosses four of them each way. So a layer
 * that owns its streams' source or sink registers a direct reader or writer
 * for them here, and the layer above, once it holds the stream's lock (and
 * so is its only user), calls it instead of going through the stream. The
 * streams stay what every other user sees; the side door only skips their
 * machinery between layers that know each other.
 *
 * Rules for the caller: take the lock (`getReader()`/`getWriter()`) first and
 * keep it while using the side door; read or write one call at a time;
 * `close`, `abort` and `cancel` go through the stream as usual.
 *
 * Internal to the stack.
 *
 * @module
 */

/** Reads what the stream's source would enqueue next. */
export interface DirectSource {
  /**
   * The next chunk, or `undefined` at the end; rejects with the error the
   * stream would error with.
   */
  read(): Promise<Uint8Array | undefined>;
  /**
   * Reads what the source has into the caller's `buffer` (at least one byte,
   * at most its length) and resolves with the count, or `undefined` at the
   * end. Offered by sources that can fill a buffer they do not own (a
   * socket), so a reader that reuses one buffer allocates nothing per read.
   */
  readInto?(buffer: Uint8Array): Promise<number | undefined>;
}

/** Writes as the stream's sink would. */
export interface DirectSink {
  /**
   * Takes `chunk` (which the caller may reuse once this settles, or at once
   * when it returns `undefined`); a promise means "wait before writing more"
   * and rejects with the error the stream would error with.
   */
  write(chunk: Uint8Array): Promise<void> | undefined;
}

const sources = new WeakMap<ReadableStream<Uint8Array>, DirectSource>();
const sinks = new WeakMap<WritableStream<Uint8Array>, DirectSink>();

/** Registers `source` as the direct reader of `readable`. */
export function registerDirectSource(
  readable: ReadableStream<Uint8Array>,
  source: DirectSource,
): void {
  sources.set(readable, source);
}

/** Registers `sink` as the direct writer of `writable`. */
export function registerDirectSink(writable: WritableStream<Uint8Array>, sink: DirectSink): void {
  sinks.set(writable, sink);
}

/** The direct reader of `readable`, if its owner registered one. */
export function directSource(readable: ReadableStream<Uint8Array>): DirectSource | undefined {
  return sources.get(readable);
}

/** The direct writer of `writable`, if its owner registered one. */
export function directSink(writable: WritableStream<Uint8Array>): DirectSink | undefined {
  return sinks.get(writable);
}
