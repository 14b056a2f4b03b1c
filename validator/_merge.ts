/**
 * The events of a handle: peer changes merged with one or more protocols'
 * items.
 *
 * @module
 */

import type { PeerEvent, PeerEventStream } from "../netcore/peer/peer_events.ts";
import type { PeerChange } from "./protocol_handle.ts";

/** Reads one item; `undefined` once the source ended. */
export type ItemSource<T> = (signal: AbortSignal) => Promise<T | undefined>;

type Got<T> = { index: number; item: PeerEvent | T | undefined };

/**
 * Yields peer changes and the sources' items as they arrive, peer changes
 * first when several are ready; holds at most one pending item per source.
 * Ends when every source has ended (they end when their protocol closes).
 * Leaving early unsubscribes and cancels the pending reads, so no item is
 * taken and lost.
 */
export async function* mergeEvents<T>(
  peers: PeerEventStream,
  sources: readonly ItemSource<T>[],
): AsyncGenerator<PeerChange | T> {
  const stop = new AbortController();
  const never = new Promise<never>(() => {});
  const read = (index: number): Promise<Got<T>> =>
    index === 0
      ? peers.next().then((item) => ({ index, item }))
      : sources[index - 1](stop.signal).then(
        (item) => ({ index, item }),
        () => ({ index, item: undefined }),
      );
  const pending: Promise<Got<T>>[] = [read(0), ...sources.map((_, i) => read(i + 1))];
  let open = sources.length;
  try {
    while (open > 0) {
      const got = await Promise.race(pending);
      if (got.item === undefined) {
        // The peer events end when the network stops; the protocols still drain.
        pending[got.index] = never;
        if (got.index > 0) open--;
        continue;
      }
      pending[got.index] = read(got.index);
      yield got.index === 0 ? peerChange(got.item as PeerEvent) : got.item as T;
    }
  } finally {
    stop.abort();
    peers.close();
  }
}

function peerChange(e: PeerEvent): PeerChange {
  return e.type === "new-peer"
    ? { type: "new-peer", peer: e.peer.peerId, info: e.peer }
    : { type: "lost-peer", peer: e.peer.peerId, info: e.peer, reason: e.reason };
}
