/**
 * The simultaneous-dial rule (Diem's `simultaneous_dial_tie_breaking`):
 * `keepNewConnection` on its six cases and on random ids (both ends, each
 * deciding alone, keep the same connection), then two `PeerManager`s that
 * dial each other at the same moment, many times with fresh random ids so
 * that both orders of the ids occur:
 *
 * - both end with exactly one connection, the same one on both sides
 *   (matched by its addresses, and by a stream opened on one side's
 *   connection arriving on the other side's);
 * - each `dial()` resolves with a connection to the peer;
 * - a stream opened during the race on the connection that loses fails,
 *   never silently: with a retriable `NetworkError`, and specifically
 *   `CONNECTION_REPLACED`, with a `lost-peer` of reason `replaced`;
 * - a dial that meets an open connection of the other direction is decided
 *   by the same rule, deterministically.
 */

import { assert, assertEquals, assertNetworkError } from "./_assert.ts";
import { settlesWithin } from "./_streams.ts";
import { MemoryNetwork } from "../memsocket/mod.ts";
import { delay } from "../netcore/_async.ts";
import { Ed25519Identity, type PeerId } from "../netcore/identity/mod.ts";
import { Logger } from "../netcore/log.ts";
import { type Labels, MetricsRegistry } from "../netcore/metrics.ts";
import { Multiaddr } from "../netcore/multiaddr.ts";
import { NetworkError } from "../netcore/network_error.ts";
import { getCryptoBackend } from "../netcore/noise/crypto.ts";
import { TrustedPeerSet } from "../netcore/noise/trusted_peers.ts";
import type { PeerEvent } from "../netcore/peer/peer_events.ts";
import { PeerManager } from "../netcore/peer/peer_manager.ts";
import { keepNewConnection } from "../netcore/peer/simultaneous_dial.ts";
import { MemoryTransport } from "../netcore/transport/memory_transport.ts";
import { TcpTransport } from "../netcore/transport/tcp_transport.ts";
import { type Direction, PeerConnection, validatorUpgrade } from "../netcore/upgrade/mod.ts";
import { ECHO_PROTOCOL, handleEcho } from "../protocols/echo.ts";

const quiet = new Logger({}, "off");
const WHICH_PROTOCOL = "/which-connection/1.0.0";

/** Byte order of two peer ids, computed here (not with the library's comparison). */
function greater(a: PeerId, b: PeerId): boolean {
  const hex = (p: PeerId) => Array.from(p.bytes, (x) => x.toString(16).padStart(2, "0")).join("");
  const [x, y] = [hex(a), hex(b)];
  assertEquals(x.length, y.length, "Ed25519 peer ids have one length");
  return x > y;
}

/** Two fresh peer ids, the smaller first. */
function orderedPair(): [PeerId, PeerId] {
  const a = Ed25519Identity.generate().peerId;
  const b = Ed25519Identity.generate().peerId;
  return greater(a, b) ? [b, a] : [a, b];
}

// ---- the rule ------------------------------------------------------------------

Deno.test("keepNewConnection: the six cases", () => {
  const [low, high] = orderedPair();
  // [self, remote, existing, incoming, keep the incoming one?, why]
  const cases: [PeerId, PeerId, Direction, Direction, boolean, string][] = [
    // Opposite directions: keep the connection whose dialer has the greater id.
    [low, high, "outbound", "inbound", true, "incoming dialed by high (remote) beats ours"],
    [high, low, "outbound", "inbound", false, "ours (dialed by high) beats incoming by low"],
    [low, high, "inbound", "outbound", false, "existing dialed by high (remote) beats ours"],
    [high, low, "inbound", "outbound", true, "ours (dialed by high) beats existing by low"],
    // Same direction twice: the newer one wins, whoever dialed.
    [low, high, "outbound", "outbound", true, "we dialed again"],
    [high, low, "inbound", "inbound", true, "the peer dialed again"],
  ];
  for (const [self, remote, existing, incoming, expected, why] of cases) {
    assertEquals(
      keepNewConnection(self, remote, existing, incoming),
      expected,
      `${self === low ? "low" : "high"} self, existing ${existing}, incoming ${incoming}: ${why}`,
    );
  }
  // Same direction twice holds for either order of the ids too.
  for (const dir of ["inbound", "outbound"] as const) {
    assertEquals(keepNewConnection(high, low, dir, dir), true, `high self, ${dir} twice`);
    assertEquals(keepNewConnection(low, high, dir, dir), true, `low self, ${dir} twice`);
  }
});

Deno.test("keepNewConnection: both ends, deciding alone in either order, keep the same connection", () => {
  // X is dialed by A (outbound on A, inbound on B); Y is dialed by B.
  for (let i = 0; i < 200; i++) {
    const a = Ed25519Identity.generate().peerId;
    const b = Ed25519Identity.generate().peerId;
    const expected = greater(a, b) ? "X" : "Y"; // the greater id's dial survives
    // On A: X first then Y arrives, or Y first then X completes.
    const onA1 = keepNewConnection(a, b, "outbound", "inbound") ? "Y" : "X";
    const onA2 = keepNewConnection(a, b, "inbound", "outbound") ? "X" : "Y";
    // On B: Y first then X arrives, or X first then Y completes.
    const onB1 = keepNewConnection(b, a, "outbound", "inbound") ? "X" : "Y";
    const onB2 = keepNewConnection(b, a, "inbound", "outbound") ? "Y" : "X";
    assertEquals([onA1, onA2, onB1, onB2], [expected, expected, expected, expected], `${a} ${b}`);
  }
});

// ---- two managers ---------------------------------------------------------------

type Profile = "libp2p" | "validator";
type Kind = "memory" | "tcp";

/** The sum of the series of `name` whose labels include `labels`, read without creating one. */
function metricValue(registry: MetricsRegistry, name: string, labels: Labels = {}): number {
  let total = 0;
  for (const entry of registry.find(name)?.entries() ?? []) {
    if (Object.entries(labels).every(([k, v]) => entry.labels[k] === v)) total += entry.value;
  }
  return total;
}

/** Two listening managers of `profile` over `kind`, serving echo and "which connection". */
async function twoManagers(
  profile: Profile,
  kind: Kind,
  registry: MetricsRegistry,
): Promise<[PeerManager, PeerManager]> {
  const network = new MemoryNetwork();
  const trusted = new TrustedPeerSet();
  const make = async (name: string) => {
    const identity = Ed25519Identity.generate();
    const metrics = registry.scope({ network: name });
    let upgrade;
    if (profile === "validator") {
      const key = getCryptoBackend().dh.generateKeyPair();
      trusted.set(key.publicKey, identity.peerId);
      upgrade = validatorUpgrade(key, { noise: { trustedPeers: trusted }, metrics, logger: quiet });
    }
    const manager = await PeerManager.create({
      identity,
      upgrade,
      listen: [Multiaddr.parse(kind === "memory" ? "/memory/0" : "/ip4/127.0.0.1/tcp/0")],
      transports: [kind === "memory" ? new MemoryTransport({ network }) : new TcpTransport()],
      metrics,
      logger: quiet,
    });
    manager.handle(ECHO_PROTOCOL, (stream) => handleEcho(stream));
    manager.handle(WHICH_PROTOCOL, async (stream, conn) => {
      // Answers with the id of the connection the stream arrived on.
      await stream.write(new TextEncoder().encode(`${conn.id}`));
      await stream.closeWrite();
    });
    return manager;
  };
  const a = await make("a");
  try {
    return [a, await make("b")];
  } catch (err) {
    await a.close();
    throw err;
  }
}

/** Whether `x` (on one side) and `y` (on the other) are the two ends of one connection. */
function sameConnection(x: PeerConnection, y: PeerConnection): boolean {
  return x.localAddr.toString() === y.remoteAddr.withoutPeerId().toString() &&
    x.remoteAddr.withoutPeerId().toString() === y.localAddr.toString();
}

/** A stream opened on a connection during the race and held open until `release`. */
interface Probe {
  side: "a" | "b";
  conn: PeerConnection;
  outcome: Promise<"ok" | unknown>;
}

function probe(
  side: "a" | "b",
  conn: PeerConnection,
  release: Promise<void>,
): Probe {
  const outcome = (async () => {
    const stream = await conn.openStream([ECHO_PROTOCOL]);
    await stream.write(new Uint8Array([7]));
    const echoed = await stream.read();
    if (echoed === null || echoed[0] !== 7) throw new Error(`echo returned ${echoed}`);
    await release;
    await stream.closeWrite();
    const end = await stream.read();
    if (end !== null) throw new Error(`more than the echo: ${end}`);
    return "ok" as const;
  })().catch((err: unknown) => err);
  return { side, conn, outcome };
}

interface RoundResult {
  aGreater: boolean;
  dials: [PeerConnection | unknown, PeerConnection | unknown];
  finals: [PeerConnection, PeerConnection];
  probes: { side: "a" | "b"; winner: boolean; outcome: "ok" | unknown }[];
  events: [PeerEvent[], PeerEvent[]];
  /** What a stream opened on each side's final connection found on the other side. */
  crossIds: [number, number];
  /** Connections handed out during the race, not kept, and still open 1 s after it. */
  stragglers: number;
}

/** Polls `condition` every 5 ms for up to `ms`. */
async function until(condition: () => boolean, ms = 3_000): Promise<boolean> {
  const end = performance.now() + ms;
  while (!condition()) {
    if (performance.now() > end) return false;
    await delay(5);
  }
  return true;
}

/**
 * One simultaneous dial: both managers dial each other in the same turn;
 * every connection either side hands out (dial result or `new-peer`) gets a
 * stream at once; then both settle.
 */
async function simultaneousDial(profile: Profile, kind: Kind): Promise<RoundResult> {
  const registry = new MetricsRegistry();
  const [a, b] = await twoManagers(profile, kind, registry);
  const released = Promise.withResolvers<void>();
  const probes: Probe[] = [];
  const probed = new Set<PeerConnection>();
  const events: [PeerEvent[], PeerEvent[]] = [[], []];
  const watch = (side: "a" | "b", conn: PeerConnection | undefined) => {
    if (conn === undefined || probed.has(conn)) return;
    probed.add(conn);
    probes.push(probe(side, conn, released.promise));
  };
  try {
    const subscriptions = ([[a, b, "a", 0], [b, a, "b", 1]] as const).map(
      async ([self, other, side, i]) => {
        for await (const event of self.subscribe()) {
          events[i].push(event);
          if (event.type === "new-peer") watch(side, self.connection(other.peerId));
        }
      },
    );
    const dials = await Promise.all([
      a.dial(b.peerId, b.listenAddrs).catch((err: unknown) => err),
      b.dial(a.peerId, a.listenAddrs).catch((err: unknown) => err),
    ]);
    if (dials[0] instanceof PeerConnection) watch("a", dials[0]);
    if (dials[1] instanceof PeerConnection) watch("b", dials[1]);
    // Settled: one connection each, the two ends of one, for 50 ms in a row.
    const settled = () => {
      const [x, y] = [a.connection(b.peerId), b.connection(a.peerId)];
      return x !== undefined && y !== undefined && sameConnection(x, y);
    };
    let stable = false;
    for (let i = 0; i < 20 && !stable; i++) {
      assert(await until(settled), "both sides hold the two ends of one connection");
      const [x, y] = [a.connection(b.peerId), b.connection(a.peerId)];
      await delay(50);
      stable = a.connection(b.peerId) === x && b.connection(a.peerId) === y;
    }
    assert(stable, "the connections settle");
    const finals: [PeerConnection, PeerConnection] = [
      a.connection(b.peerId)!,
      b.connection(a.peerId)!,
    ];
    const which = async (from: PeerManager, to: PeerManager) => {
      const stream = await from.openStream(to.peerId, [WHICH_PROTOCOL]);
      const chunks: number[] = [];
      for (let c = await stream.read(); c !== null; c = await stream.read()) chunks.push(...c);
      await stream.close();
      return Number(new TextDecoder().decode(new Uint8Array(chunks)));
    };
    const crossIds: [number, number] = [await which(a, b), await which(b, a)];
    let stragglers = 0;
    for (const conn of probed) {
      if (conn !== finals[0] && conn !== finals[1] && !await settlesWithin(conn.closed, 1_000)) {
        stragglers++;
      }
    }
    released.resolve();
    const outcomes = await Promise.all(probes.map((p) => p.outcome));
    await a.close();
    await b.close();
    await Promise.all(subscriptions);
    return {
      aGreater: greater(a.peerId, b.peerId),
      dials,
      finals,
      probes: probes.map((p, i) => ({
        side: p.side,
        winner: p.conn === finals[p.side === "a" ? 0 : 1],
        outcome: outcomes[i],
      })),
      events,
      crossIds,
      stragglers,
    };
  } finally {
    released.resolve();
    await a.close();
    await b.close();
  }
}

const SETUPS: { profile: Profile; kind: Kind; rounds: number }[] = [
  { profile: "libp2p", kind: "memory", rounds: 40 },
  { profile: "validator", kind: "memory", rounds: 30 },
  { profile: "libp2p", kind: "tcp", rounds: 10 },
];

for (const { profile, kind, rounds } of SETUPS) {
  const setup = `${profile} over ${kind}, ${rounds} rounds`;

  Deno.test(`simultaneous dial (${setup}): both end with one connection, the same one`, async () => {
    const orders = new Set<boolean>();
    for (let i = 0; i < rounds; i++) {
      const r = await simultaneousDial(profile, kind);
      orders.add(r.aGreater);
      const [x, y] = r.finals;
      assert(sameConnection(x, y), `round ${i}: the two ends of one connection`);
      assertEquals(r.stragglers, 0, `round ${i}: the connections not kept are closed`);
      // A stream opened on each side's connection arrives on the other side's.
      assertEquals(r.crossIds, [y.id, x.id], `round ${i}: streams cross on the kept connection`);
      // The kept one is the one the greater id dialed.
      const dialer = x.direction === "outbound" ? "a" : "b";
      assertEquals(dialer, r.aGreater ? "a" : "b", `round ${i}: the greater id's dial is kept`);
      assertEquals(y.direction, x.direction === "outbound" ? "inbound" : "outbound");
      // Each side's subscriber ends on a new-peer for the kept connection.
      for (const [side, events, conn] of [["a", r.events[0], x], ["b", r.events[1], y]] as const) {
        const last = events.filter((e) => e.type === "new-peer").at(-1);
        assertEquals(last?.peer.connectionId, conn.id, `round ${i}: ${side}'s last new-peer`);
      }
    }
    assertEquals(orders.size, 2, "both orders of the peer ids occurred");
  });

  Deno.test(`simultaneous dial (${setup}): streams on the losing connection fail, never silently, retriably`, async () => {
    let losers = 0;
    for (let i = 0; i < rounds; i++) {
      const r = await simultaneousDial(profile, kind);
      for (const p of r.probes) {
        if (p.winner) {
          assertEquals(p.outcome, "ok", `round ${i}: a stream on ${p.side}'s kept connection`);
          continue;
        }
        losers++;
        const err = assertNetworkError(p.outcome);
        assert(err.retriable, `round ${i}: ${p.side}'s loser stream failed with ${err.code}`);
      }
    }
    assert(losers > 0, "some stream was opened on a losing connection");
  });

  // The side that replaces a connection knows why: its streams fail with
  // CONNECTION_REPLACED and its lost-peer says replaced. The other side, if
  // it had adopted that connection, only sees its streams reset and the
  // connection closed (its own winner arrives next).
  Deno.test(`simultaneous dial (${setup}): loser streams fail with CONNECTION_REPLACED where it was replaced, reset on the other side; lost-peer says replaced or remote_closed`, async () => {
    let losers = 0;
    const seen: string[] = [];
    for (let i = 0; i < rounds; i++) {
      const r = await simultaneousDial(profile, kind);
      for (const p of r.probes) {
        if (p.winner) continue;
        losers++;
        seen.push(
          `round ${i} ${p.side}: ${NetworkError.is(p.outcome) ? p.outcome.code : p.outcome}`,
        );
      }
      const sides = [["a", r.events[0], r.finals[0]], ["b", r.events[1], r.finals[1]]] as const;
      for (const [side, events, kept] of sides) {
        for (const event of events) {
          // The kept connection's own lost-peer comes from the close at the end.
          if (event.type !== "lost-peer" || event.peer.connectionId === kept.id) continue;
          seen.push(
            `round ${i} ${side}: lost-peer ${event.reason} ${event.error?.code ?? ""}`.trimEnd(),
          );
        }
      }
    }
    assert(losers > 0, "some stream was opened on a losing connection");
    // What else they got, with how often (the round left out).
    const wrong: Record<string, number> = {};
    for (const s of seen) {
      if (
        s.endsWith(": CONNECTION_REPLACED") ||
        s.endsWith(": CONNECTION_RESET") ||
        s.endsWith(": lost-peer replaced CONNECTION_REPLACED") ||
        s.endsWith(": lost-peer remote_closed")
      ) {
        continue;
      }
      const key = s.replace(/^round \d+ /, "");
      wrong[key] = (wrong[key] ?? 0) + 1;
    }
    assertEquals(wrong, {}, `of ${seen.length} loser streams and lost-peer events`);
  });

  Deno.test(`simultaneous dial (${setup}): both dials resolve with a connection to the peer`, async () => {
    for (let i = 0; i < rounds; i++) {
      const r = await simultaneousDial(profile, kind);
      const [fa, fb] = r.finals;
      for (const [side, dial, peer] of [["a", r.dials[0], fa], ["b", r.dials[1], fb]] as const) {
        if (!(dial instanceof PeerConnection)) {
          throw new Error(
            `round ${i}: ${side}'s dial rejected (${
              NetworkError.is(dial) ? dial.code : dial
            }) though it ends connected to the peer`,
          );
        }
        assert(dial.remotePeer.equals(peer.remotePeer), `round ${i}: ${side}`);
      }
    }
  });
}

// ---- a dial that meets an open connection of the other direction ------------

for (const dialerIs of ["greater", "smaller"] as const) {
  Deno.test(`a new dial against an open connection of the other direction: the ${dialerIs} id dials back`, async () => {
    const registry = new MetricsRegistry();
    const [p, q] = await twoManagers("libp2p", "memory", registry);
    // `first` dials, then `second` dials back while the first connection is open.
    const secondGreater = dialerIs === "greater";
    const [first, second] = greater(q.peerId, p.peerId) === secondGreater ? [p, q] : [q, p];
    const secondName = first === p ? "b" : "a";
    try {
      const events = second.subscribe();
      const original = await first.dial(second.peerId, second.listenAddrs);
      assert(await until(() => second.isConnected(first.peerId)), "the first connection arrives");
      const theirs = second.connection(first.peerId)!;
      assert(sameConnection(original, theirs));
      // Taken now: a new-peer not yet taken would be cancelled by its lost-peer.
      const announced = await events.next();
      assertEquals([announced?.type, announced?.peer.connectionId], ["new-peer", theirs.id]);
      // A stream held open on the first connection, from the second side.
      const held = await second.openStream(first.peerId, [ECHO_PROTOCOL]);
      await held.write(new Uint8Array([1]));
      assertEquals(await held.read(), new Uint8Array([1]));

      const back = await second.dialAddress(first.listenAddrs[0]);
      const refused = () =>
        metricValue(registry, "validator_network_connections_refused_total", {
          network: secondName,
          reason: "replaced",
        });
      if (secondGreater) {
        // Its own dial wins: the inbound connection is replaced, here at once.
        assert(back !== theirs, "the new connection");
        assertEquals(back.direction, "outbound");
        assert(second.connection(first.peerId) === back);
        const err = await held.read().then((r) => r, (e: unknown) => e);
        assertNetworkError(err, "CONNECTION_REPLACED");
        assert((err as NetworkError).retriable);
        assertEquals(refused(), 0);
        const seen = [await events.next(), await events.next()];
        assertEquals(seen.map((e) => [e?.type, e?.peer.connectionId]), [
          ["lost-peer", theirs.id],
          ["new-peer", back.id],
        ]);
        const lost = seen[0]!;
        assert(lost.type === "lost-peer");
        assertEquals([lost.reason, lost.error?.code], ["replaced", "CONNECTION_REPLACED"]);
      } else {
        // The open connection, dialed by the greater id, stays; the new one is refused.
        assert(back === theirs, "dialAddress returns the connection the peer is reached by");
        assertEquals(refused(), 1);
        await held.write(new Uint8Array([2]));
        assertEquals(await held.read(), new Uint8Array([2]));
        await held.closeWrite();
        assertEquals(await held.read(), null);
      }
      // Both ends agree on one connection.
      assert(
        await until(() => {
          const [x, y] = [first.connection(second.peerId), second.connection(first.peerId)];
          return x !== undefined && y !== undefined && sameConnection(x, y);
        }),
        "both ends hold the same connection",
      );
      assert(second.connection(first.peerId) === (secondGreater ? back : theirs));
      events.close();
    } finally {
      await p.close();
      await q.close();
    }
  });
}
