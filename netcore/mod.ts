/**
 * The core of the stack, lowest layer first: errors and helpers, addresses,
 * transports and their combinators, identities, Noise, negotiation, yamux,
 * and the libp2p upgrade pipeline with a node on top of it.
 *
 * @module
 */

export * from "./network_error.ts";
export * from "./varint.ts";
export * from "./base58.ts";
export * from "./byte_reader.ts";
export * from "./metrics.ts";
export * from "./log.ts";
export * from "./multiaddr.ts";
export * from "./transport/mod.ts";
export * from "./identity/mod.ts";
export * from "./proto/mod.ts";
export * from "./noise/mod.ts";
export * from "./negotiate/mod.ts";
export * from "./multiplexing/mod.ts";
export * from "./upgrade/mod.ts";
export * from "./libp2p_node.ts";
