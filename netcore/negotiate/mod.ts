/**
 * multistream-select 1.0, the protocol negotiation libp2p runs on every raw
 * connection (`/noise`), inside the secure channel (`/yamux/1.0.0`) and on
 * every substream (application protocols).
 *
 * - {@linkcode selectProtocol}: the dialer, proposing protocols in order;
 * - {@linkcode selectProtocolOptimistic}: the dialer without the round trip;
 * - {@linkcode handleProtocol}: the listener.
 *
 * @example
 * ```ts
 * import { handleProtocol, selectProtocol } from "./mod.ts";
 * const up = new TransformStream<Uint8Array, Uint8Array>();
 * const down = new TransformStream<Uint8Array, Uint8Array>();
 * const dialerSide = { readable: down.readable, writable: up.writable };
 * const listenerSide = { readable: up.readable, writable: down.writable };
 * const [dialed, handled] = await Promise.all([
 *   selectProtocol(dialerSide, ["/yamux/1.0.0"]),
 *   handleProtocol(listenerSide, ["/yamux/1.0.0", "/mplex/6.7.0"]),
 * ]);
 * console.log(dialed.protocol, handled.protocol); // "/yamux/1.0.0" "/yamux/1.0.0"
 * ```
 *
 * @module
 */

export * from "./options.ts";
export * from "./select_protocol.ts";
export * from "./select_protocol_optimistic.ts";
export * from "./handle_protocol.ts";
