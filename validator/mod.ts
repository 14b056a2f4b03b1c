/**
 * The validator network: what a validator node builds from its config
 * ({@linkcode ValidatorNetwork}), its keys ({@linkcode ValidatorKeys}),
 * protocol handles over DirectSend and RPC, the consensus and mempool
 * handles with their messages (protobuf on the wire), config validation,
 * and the command-line node's config file.
 *
 * @example
 * ```ts
 * import { ValidatorKeys } from "./mod.ts";
 * const keys = ValidatorKeys.generate();
 * console.log(keys.info(["/ip4/127.0.0.1/tcp/7000"]).addrs); // [ "/ip4/127.0.0.1/tcp/7000" ]
 * ```
 *
 * @module
 */

export * from "./validator_network.ts";
export * from "./validator_keys.ts";
export * from "./protocol_handle.ts";
export * from "./config.ts";
export * from "./consensus.ts";
export * from "./mempool.ts";
export { PING_RPC } from "./ping.ts";
export * from "./messages.ts";
