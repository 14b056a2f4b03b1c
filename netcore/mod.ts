/**
 * The core of the stack: errors, addresses, transports and their upgrades.
 *
 * @module
 */

export * from "./network_error.ts";
export * from "./varint.ts";
export * from "./base58.ts";
export * from "./byte_reader.ts";
export * from "./metrics.ts";
export * from "./log.ts";
