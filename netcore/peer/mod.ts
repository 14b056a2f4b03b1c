/**
 * The peer layer: the peer manager (connections, one per peer, events,
 * inbound limits), the simultaneous-dial rule, peer events, the
 * connectivity manager (a connection to every eligible peer, with backoff),
 * the health checker, discovery (signed peer records gossiped), and the
 * libp2p node over the peer manager.
 *
 * @module
 */

export * from "./peer_manager.ts";
export * from "./peer_events.ts";
export * from "./simultaneous_dial.ts";
export * from "./connectivity_manager.ts";
export * from "./health_checker.ts";
export * from "./discovery.ts";
export * from "./libp2p_node.ts";
