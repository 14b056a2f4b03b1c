/**
 * A peer-to-peer network stack for blockchain validators, for Deno.
 *
 * It keeps authenticated, encrypted connections between nodes, keeps track of
 * peers, and gives consensus and mempool a small typed API to reach other
 * validators. The wire speaks libp2p where libp2p has a spec
 * (multistream-select 1.0, yamux, libp2p-noise XX, ping).
 *
 * Layers, lowest first, each re-exported here:
 * - errors, addresses, async helpers, metrics and logs (`netcore/`)
 * - transports: TCP and in-memory, and the combinators that stack upgrades
 *
 * @module
 */

export * from "./netcore/mod.ts";
