/**
 * Which connection two peers keep when they dial each other at once, or
 * when one reconnects before the other saw its old connection go: Diem's
 * rule (`network/src/peer_manager`: `simultaneous_dial_tie_breaking`), so
 * both ends, each deciding alone, keep the same one.
 *
 * @module
 */

import type { PeerId } from "../identity/peer_id.ts";
import type { Direction } from "../upgrade/peer_connection.ts";

/** Lexicographic order of the peer ids' bytes: negative, zero or positive. */
function compare(a: PeerId, b: PeerId): number {
  const x = a.bytes;
  const y = b.bytes;
  const n = Math.min(x.length, y.length);
  for (let i = 0; i < n; i++) {
    if (x[i] !== y[i]) return x[i] - y[i];
  }
  return x.length - y.length;
}

/**
 * Whether a new connection to `remote` replaces the existing one.
 *
 * - Two connections of the same direction: keep the new one. The peer (or
 *   we) dialed again, so the old one is stale, even if it looks alive here.
 * - Opposite directions (a simultaneous dial): keep the one whose dialer has
 *   the greater peer id. Both ends compare the same two ids, so both keep
 *   the same connection.
 *
 * @example
 * ```ts
 * import { Ed25519Identity } from "../identity/mod.ts";
 * import { keepNewConnection } from "./simultaneous_dial.ts";
 * const [a, b] = [Ed25519Identity.generate().peerId, Ed25519Identity.generate().peerId];
 * // Each side decides alone; they agree.
 * const onA = keepNewConnection(a, b, "outbound", "inbound"); // A dialed first, B's dial arrives
 * const onB = keepNewConnection(b, a, "outbound", "inbound"); // B dialed first, A's dial arrives
 * console.log(onA !== onB); // true: each keeps the same connection
 * ```
 */
export function keepNewConnection(
  self: PeerId,
  remote: PeerId,
  existing: Direction,
  incoming: Direction,
): boolean {
  if (existing === incoming) return true;
  // The incoming connection's dialer is the remote peer when it is inbound.
  const incomingDialer = incoming === "inbound" ? remote : self;
  const existingDialer = incoming === "inbound" ? self : remote;
  return compare(incomingDialer, existingDialer) > 0;
}
