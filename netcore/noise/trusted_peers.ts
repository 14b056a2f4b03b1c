/**
 * The set of static Noise keys a validator accepts connections from. An
 * interface, so the peer manager can keep its own live view (for instance the
 * current validator set of an epoch) and the handshake reads it at the moment
 * of each handshake.
 *
 * @module
 */

/**
 * Who a static X25519 key belongs to, for the keys we trust.
 *
 * @example
 * ```ts
 * import type { TrustedPeers } from "./trusted_peers.ts";
 * const nobody: TrustedPeers = { get: () => undefined };
 * console.log(nobody.get(new Uint8Array(32))); // undefined
 * ```
 */
export interface TrustedPeers {
  /**
   * The peer's name or peer id for `staticKey`, or `undefined` when the key is
   * not trusted. Called once per inbound handshake, inside the handshake:
   * keep it fast and synchronous.
   */
  get(staticKey: Uint8Array): string | undefined;
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
 * handshakes run: a key removed here is refused by the next handshake.
 *
 * @example
 * ```ts
 * import { TrustedPeerSet } from "./trusted_peers.ts";
 * const key = new Uint8Array(32).fill(1);
 * const trusted = new TrustedPeerSet([[key, "validator-1"]]);
 * console.log(trusted.get(key)); // "validator-1"
 * trusted.delete(key);
 * console.log(trusted.get(key)); // undefined
 * ```
 */
export class TrustedPeerSet implements TrustedPeers {
  readonly #peers = new Map<string, string>();

  /** A set holding `entries` (static key, name) to start with. */
  constructor(entries: Iterable<readonly [Uint8Array, string]> = []) {
    for (const [key, name] of entries) this.set(key, name);
  }

  /** How many keys are trusted. */
  get size(): number {
    return this.#peers.size;
  }

  /** The name of `staticKey`, if trusted. */
  get(staticKey: Uint8Array): string | undefined {
    return this.#peers.get(staticKeyHex(staticKey));
  }

  /** Trusts `staticKey` (32 bytes) as `name`, replacing any previous name. */
  set(staticKey: Uint8Array, name: string): this {
    if (staticKey.length !== 32) throw new RangeError("a static X25519 key has 32 bytes");
    this.#peers.set(staticKeyHex(staticKey), name);
    return this;
  }

  /** Stops trusting `staticKey`; whether it was trusted. */
  delete(staticKey: Uint8Array): boolean {
    return this.#peers.delete(staticKeyHex(staticKey));
  }

  /** Replaces the whole set at once (e.g. on a new epoch's validator set). */
  replace(entries: Iterable<readonly [Uint8Array, string]>): void {
    const next = new TrustedPeerSet(entries); // validates every key before touching ours
    this.#peers.clear();
    for (const [hex, name] of next.#peers) this.#peers.set(hex, name);
  }
}
