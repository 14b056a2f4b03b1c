/**
 * Ed25519 signature verification (RFC 8032).
 *
 * @module
 */

import { ed25519Verify } from "./_ed25519.ts";

/**
 * Whether `signature` is a valid Ed25519 signature of `data` by the raw
 * 32-byte `publicKey`. Malformed input (wrong lengths, a key that is not a
 * curve point) yields `false`; it never throws.
 *
 * @example
 * ```ts
 * import { Ed25519Identity, verifyEd25519 } from "./mod.ts";
 * const me = Ed25519Identity.generate();
 * const data = new TextEncoder().encode("hello");
 * console.log(verifyEd25519(me.publicKey, data, me.sign(data))); // true
 * ```
 */
export function verifyEd25519(
  publicKey: Uint8Array,
  data: Uint8Array,
  signature: Uint8Array,
): boolean {
  return ed25519Verify(publicKey, data, signature);
}
