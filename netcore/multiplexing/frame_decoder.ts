/**
 * An incremental yamux frame decoder: feed it the chunks read from the
 * connection, in order, and it reports each header and each piece of data as
 * soon as it is complete, without copying data bodies.
 *
 * @module
 */

import { decodeFrameHeader, type FrameHeader, FrameType, HEADER_LENGTH } from "./frame.ts";

/**
 * What a {@linkcode FrameDecoder} reports to.
 *
 * @example
 * ```ts
 * import type { FrameHandler } from "./frame_decoder.ts";
 * const bodies: Uint8Array[] = [];
 * const handler: FrameHandler = {
 *   frame: (header) => console.log(header.type, header.streamId, header.length),
 *   data: (piece) => void bodies.push(piece), // views: keep them only if the chunk is yours
 * };
 * ```
 */
export interface FrameHandler {
  /**
   * A complete header. The object is reused for the next frame: copy what
   * must outlive the call. A Data frame with a non-zero length is followed by
   * {@linkcode FrameHandler.data} calls for its body.
   */
  frame(header: FrameHeader): void;
  /**
   * A piece of the current Data frame's body, a view into the chunk given to
   * {@linkcode FrameDecoder.decode} (it belongs to whoever the handler gives
   * it to). `remaining` is the number of body bytes still to come; 0 on the
   * last piece.
   */
  data(piece: Uint8Array, remaining: number): void;
}

/**
 * The decoder's state, as in a framed reader: reading a header (possibly
 * split across chunks) or the body of a Data frame.
 *
 * @example
 * ```ts
 * import { FrameDecoder, type FrameDecoderState } from "./frame_decoder.ts";
 * const state: FrameDecoderState = new FrameDecoder(1 << 20).state;
 * console.log(state); // "header"
 * ```
 */
export type FrameDecoderState = "header" | "body";

/**
 * Turns a byte stream into yamux frames.
 *
 * Bounded: at most 11 bytes of a split header are held; bodies are never
 * buffered. Errors (only `NetworkError`s, from
 * {@linkcode decodeFrameHeader}, or whatever the handler throws) leave the
 * decoder unusable; the connection is then closed.
 *
 * @example
 * ```ts
 * import { FrameDecoder } from "./frame_decoder.ts";
 * import { encodeFrameHeader, FrameType } from "./frame.ts";
 * const decoder = new FrameDecoder(1 << 20);
 * const bytes = encodeFrameHeader({ type: FrameType.Ping, flags: 1, streamId: 0, length: 9 });
 * decoder.decode(bytes.subarray(0, 5), { frame() {}, data() {} });
 * decoder.decode(bytes.subarray(5), {
 *   frame: (h) => console.log(h.type, h.length), // 2 9
 *   data() {},
 * });
 * ```
 */
export class FrameDecoder {
  readonly #maxDataLength: number;
  readonly #header: FrameHeader = { type: FrameType.Data, flags: 0, streamId: 0, length: 0 };
  /** The start of a header split across chunks (made the first time one is). */
  #partial: Uint8Array | undefined;
  #partialLength = 0;
  #remaining = 0;

  /**
   * A decoder between frames.
   *
   * @param maxDataLength the largest Data frame body accepted
   */
  constructor(maxDataLength: number) {
    this.#maxDataLength = maxDataLength;
  }

  /** Whether the decoder is between frames or inside one. */
  get state(): FrameDecoderState {
    return this.#remaining > 0 ? "body" : "header";
  }

  /** Whether the decoder stands exactly between two frames (a clean place for EOF). */
  get idle(): boolean {
    return this.#remaining === 0 && this.#partialLength === 0;
  }

  /**
   * Decodes `chunk`, calling `handler` for every header and data piece in it.
   *
   * @throws {NetworkError} `PROTOCOL_VIOLATION` for a malformed header
   */
  decode(chunk: Uint8Array, handler: FrameHandler): void {
    const end = chunk.length;
    let offset = 0;
    while (offset < end) {
      if (this.#remaining > 0) {
        const take = Math.min(this.#remaining, end - offset);
        this.#remaining -= take;
        handler.data(chunk.subarray(offset, offset + take), this.#remaining);
        offset += take;
        continue;
      }
      let header: FrameHeader;
      if (this.#partialLength === 0 && end - offset >= HEADER_LENGTH) {
        header = decodeFrameHeader(chunk, offset, this.#maxDataLength, this.#header);
        offset += HEADER_LENGTH;
      } else {
        // A header split across chunks: keep its start (at most 11 bytes).
        const take = Math.min(HEADER_LENGTH - this.#partialLength, end - offset);
        const partial = this.#partial ??= new Uint8Array(HEADER_LENGTH);
        partial.set(chunk.subarray(offset, offset + take), this.#partialLength);
        this.#partialLength += take;
        offset += take;
        if (this.#partialLength < HEADER_LENGTH) return;
        this.#partialLength = 0;
        header = decodeFrameHeader(partial, 0, this.#maxDataLength, this.#header);
      }
      if (header.type === FrameType.Data) this.#remaining = header.length;
      handler.frame(header);
    }
  }
}
