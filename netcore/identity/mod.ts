/**
 * libp2p identities: Ed25519 key pairs, their serialized public keys, peer
 * ids, the libp2p-noise handshake payload that binds a Noise static key to an
 * identity, and signed envelopes with the peer records they carry.
 *
 * @example
 * ```ts
 * import { Ed25519Identity, PeerId } from "./mod.ts";
 * const me = Ed25519Identity.generate();
 * console.log(PeerId.parse(me.peerId.toString()).equals(me.peerId)); // true
 * ```
 *
 * @module
 */

export * from "./ed25519_identity.ts";
export * from "./peer_id.ts";
export * from "./public_key.ts";
export * from "./verify_ed25519.ts";
export * from "./noise_handshake_payload.ts";
export * from "./signed_envelope.ts";
export * from "./peer_record.ts";

// Types of other modules that the API above refers to.
export type {
  Multiaddr,
  MultiaddrComponent,
  MultiaddrProtocol,
  TcpEndpoint,
} from "../multiaddr.ts";
