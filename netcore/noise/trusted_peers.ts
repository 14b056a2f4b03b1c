/**
 * The set of static Noise keys a validator accepts connections from, each
 * mapped to the peer id of its owner. An interface, so the peer manager can
 * keep its own live view (the validator set of the current epoch) and the
 * handshake reads it at the moment of each handshake.
 *
 * @module
 */

import type { PeerId } from "../identity/peer_id.ts";

/**
 * Who a static X25519 key belongs to, for the keys we trust, and the other
 * way round.
 *
 * @example
 * ```ts
 * import type { TrustedPeers } from "./trusted_peers.ts";
 * const nobody: TrustedPeers = { get: () => undefined, staticKeyOf: () => undefined };
 * console.log(nobody.get(new Uint8Array(32))); // undefined
 * ```
 */
export interface TrustedPeers {
  /**
   * The peer id of `staticKey`, or `undefined` when the key is not trusted.
   * Called once per inbound handshake, inside the handshake: keep it fast
   * and synchronous.
   */
  get(staticKey: Uint8Array): PeerId | undefined;
  /** The static key of `peer`, or `undefined` when the peer is not trusted. */
  staticKeyOf(peer: PeerId): Uint8Array | undefined;
}

const HEX = Array.from({ length: 256 }, (_, i) => i.toString(16).padStart(2, "0"));

/**
 * Lower-case hex of a key, as used in logs and as the map key of
 * {@linkcode TrustedPeerSet}.
 *
 * @example
 * ```ts
 * import { staticKeyHex } from "./trusted_peers.ts";
 * console.log(staticKeyHex(new Uint8Array([0, 255]))); // "00ff"
 * ```
 */
export function staticKeyHex(key: Uint8Array): string {
  let out = "";
  for (const b of key) out += HEX[b];
  return out;
}

/**
 * A `Map`-backed {@linkcode TrustedPeers} that can be updated while
 * handshakes run: a key removed here is refused by the next handshake. One
 * key per peer: trusting a peer under a new key forgets its old one.
 *
 * @example
 * ```ts
 * import { TrustedPeerSet } from "./trusted_peers.ts";
 * import { Ed25519Identity } from "../identity/mod.ts";
 * const validator = Ed25519Identity.generate().peerId;
 * const key = new Uint8Array(32).fill(1);
 * const trusted = new TrustedPeerSet([[key, validator]]);
 * console.log(trusted.get(key)?.equals(validator)); // true
 * trusted.delete(key);
 * console.log(trusted.get(key)); // undefined
 * ```
 */
export class TrustedPeerSet implements TrustedPeers {
  readonly #byKey = new Map<string, { key: Uint8Array; peer: PeerId }>();
  readonly #keyByPeer = new Map<string, string>();

  /** A set holding `entries` (static key, peer id) to start with. */
  constructor(entries: Iterable<readonly [Uint8Array, PeerId]> = []) {
    for (const [key, peer] of entries) this.set(key, peer);
  }

  /** How many keys are trusted. */
  get size(): number {
    return this.#byKey.size;
  }

  /** The peer id of `staticKey`, if trusted. */
  get(staticKey: Uint8Array): PeerId | undefined {
    return this.#byKey.get(staticKeyHex(staticKey))?.peer;
  }

  /** The static key of `peer`, if trusted. */
  staticKeyOf(peer: PeerId): Uint8Array | undefined {
    const hex = this.#keyByPeer.get(peer.toString());
    return hex === undefined ? undefined : this.#byKey.get(hex)?.key;
  }

  /** Trusts `staticKey` (32 bytes) as `peer`'s, replacing what either had before. */
  set(staticKey: Uint8Array, peer: PeerId): this {
    if (staticKey.length !== 32) throw new RangeError("a static X25519 key has 32 bytes");
    const hex = staticKeyHex(staticKey);
    const id = peer.toString();
    const oldKey = this.#keyByPeer.get(id);
    if (oldKey !== undefined) this.#byKey.delete(oldKey);
    const oldPeer = this.#byKey.get(hex)?.peer.toString();
    if (oldPeer !== undefined) this.#keyByPeer.delete(oldPeer);
    this.#byKey.set(hex, { key: staticKey.slice(), peer });
    this.#keyByPeer.set(id, hex);
    return this;
  }

  /** Stops trusting `staticKey`; whether it was trusted. */
  delete(staticKey: Uint8Array): boolean {
    const hex = staticKeyHex(staticKey);
    const entry = this.#byKey.get(hex);
    if (entry === undefined) return false;
    this.#byKey.delete(hex);
    this.#keyByPeer.delete(entry.peer.toString());
    return true;
  }

  /** Replaces the whole set at once (a new epoch's validator set). */
  replace(entries: Iterable<readonly [Uint8Array, PeerId]>): void {
    const next = new TrustedPeerSet(entries); // validates every key before touching ours
    this.#byKey.clear();
    this.#keyByPeer.clear();
    for (const [hex, entry] of next.#byKey) this.#byKey.set(hex, entry);
    for (const [id, hex] of next.#keyByPeer) this.#keyByPeer.set(id, hex);
  }

  /** Every trusted (static key, peer id) pair. */
  *entries(): IterableIterator<[Uint8Array, PeerId]> {
    for (const { key, peer } of this.#byKey.values()) yield [key.slice(), peer];
  }
}
