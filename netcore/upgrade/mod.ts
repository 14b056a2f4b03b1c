/**
 * The upgrade pipeline: how a raw connection becomes a
 * {@linkcode PeerConnection}, for either security profile.
 *
 * Transitions, in order (as rust-libp2p's `core/src/transport/upgrade.rs`
 * writes them down). Each step takes only the type the step before it
 * yields, so the order cannot be broken: yamux runs only on an
 * authenticated channel, and streams exist only on a `PeerConnection`.
 *
 * ```text
 * libp2p profile (public peers, js-libp2p interop):
 *   Connection (TCP | memory)
 *     --multistream-select /noise (optimistic)--> Connection
 *     --Noise XX, signed libp2p identity--------> Libp2pNoiseConnection (SecureChannel, PeerId)
 *     --multistream-select /yamux/1.0.0 (skipped: early muxer negotiation)--> Connection
 *     --multiplex (yamux)-----------------------> PeerConnection
 *
 * validator profile (the validator set):
 *   Connection (TCP | memory)
 *     --Noise IK against the trusted set-------> ValidatorNoiseConnection (SecureChannel, PeerId)
 *     --multiplex (yamux)-----------------------> PeerConnection
 *
 * both:
 *   PeerConnection --openStream | acceptStream + multistream-select <protocol>--> ProtocolStream
 * ```
 *
 * @module
 */

export * from "./peer_connection.ts";
export * from "./libp2p_upgrade.ts";
export * from "./validator_upgrade.ts";
