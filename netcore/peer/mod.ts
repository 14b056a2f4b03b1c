/**
 * The peer layer: the peer manager (connections, one per peer, events,
 * inbound limits), the simultaneous-dial rule, peer events, and the libp2p
 * node over it.
 *
 * @module
 */

export * from "./peer_manager.ts";
export * from "./peer_events.ts";
export * from "./simultaneous_dial.ts";
export * from "./libp2p_node.ts";
