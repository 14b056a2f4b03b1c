/**
 * Yamux stream multiplexing (`/yamux/1.0.0`): the frame codec, the session
 * and its streams.
 *
 * @module
 */

export * from "./frame.ts";
export * from "./frame_decoder.ts";
export * from "./yamux.ts";
export * from "./yamux_stream.ts";
