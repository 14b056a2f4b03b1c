/**
 * Discovery against its spec: signed peer records are gossiped (to a peer
 * as it connects, and on to the other peers when they are new); records
 * with a bad signature, a sequence number not newer than the one known, too
 * many addresses or bytes, or about a peer outside the eligible set are
 * ignored and counted in `validator_network_discovery_records_total{outcome}`
 * (invalid, stale, too_large, not_eligible); a push with more records than
 * `maxRecordsPerPush` resets only its own stream; new addresses go to
 * `onAddresses` (the connectivity manager); ten validators that know one
 * seed reach a full mesh.
 *
 * Bad records are sent raw, as a peer would: a stream of
 * `DISCOVERY_PROTOCOL` opened with `manager.openStream`, carrying envelopes
 * from `sealPeerRecord`, each behind its varint length, then closed.
 */

import { MemoryNetwork } from "../memsocket/mod.ts";
import { Ed25519Identity, type PeerId, sealPeerRecord } from "../netcore/identity/mod.ts";
import { Logger } from "../netcore/log.ts";
import { type Metrics, MetricsRegistry } from "../netcore/metrics.ts";
import { Multiaddr } from "../netcore/multiaddr.ts";
import { getCryptoBackend, type KeyPair } from "../netcore/noise/crypto.ts";
import { TrustedPeerSet } from "../netcore/noise/trusted_peers.ts";
import {
  ConnectivityManager,
  Discovery,
  DISCOVERY_PROTOCOL,
  type DiscoveryOptions,
  type PeerEvent,
  PeerManager,
} from "../netcore/peer/mod.ts";
import { MemoryTransport } from "../netcore/transport/memory_transport.ts";
import { validatorUpgrade } from "../netcore/upgrade/mod.ts";
import type { ProtocolStream } from "../netcore/upgrade/peer_connection.ts";
import { encodeVarint } from "../netcore/varint.ts";
import { assert, assertEquals, assertNetworkError } from "./_assert.ts";

// ---- fixtures -----------------------------------------------------------------

const quiet = new Logger({}, "off");

interface Validator {
  identity: Ed25519Identity;
  noise: KeyPair;
}

function validator(): Validator {
  return { identity: Ed25519Identity.generate(), noise: getCryptoBackend().dh.generateKeyPair() };
}

interface Node {
  v: Validator;
  peerId: PeerId;
  manager: PeerManager;
  trusted: TrustedPeerSet;
  metrics: Metrics;
  addr: Multiaddr;
}

async function startNode(network: MemoryNetwork, v: Validator = validator()): Promise<Node> {
  const trusted = new TrustedPeerSet();
  const metrics = new MetricsRegistry().scope({ network: "test" });
  const manager = await PeerManager.create({
    identity: v.identity,
    upgrade: validatorUpgrade(v.noise, {
      noise: { trustedPeers: trusted, networkId: "test" },
      yamux: { closeTimeout: 500 },
      metrics,
      logger: quiet,
    }),
    transports: [new MemoryTransport({ network, closeGracePeriod: 200 })],
    listen: [Multiaddr.parse("/memory/0")],
    isTrusted: (p) => trusted.staticKeyOf(p) !== undefined,
    metrics,
    logger: quiet,
  });
  return {
    v,
    peerId: v.identity.peerId,
    manager,
    trusted,
    metrics,
    addr: manager.listenAddrs[0].withoutPeerId(),
  };
}

/** `from` dials `to`; both trust each other. */
async function connect(from: Node, to: Node): Promise<void> {
  from.trusted.set(to.v.noise.publicKey, to.peerId);
  to.trusted.set(from.v.noise.publicKey, from.peerId);
  await from.manager.dial(to.peerId, [to.addr]);
  await waitFor(() => to.manager.isConnected(from.peerId), 1_000, "both ends connected");
}

/** What `onAddresses` heard. */
interface Heard {
  peer: string;
  addrs: string[];
}

/** A started discovery on `node` that records `onAddresses`. */
function discoveryOf(
  node: Node,
  options: Partial<DiscoveryOptions> = {},
): { discovery: Discovery; heard: Heard[] } {
  const heard: Heard[] = [];
  const { onAddresses, ...rest } = options;
  const discovery = new Discovery({
    manager: node.manager,
    identity: node.v.identity,
    refreshInterval: 60_000,
    metrics: node.metrics,
    logger: quiet,
    onAddresses: (peer, addrs) => {
      heard.push({ peer: peer.toString(), addrs: addrs.map(String) });
      onAddresses?.(peer, addrs);
    },
    ...rest,
  });
  discovery.start();
  return { discovery, heard };
}

function recordsCounted(node: Node, outcome: string): number {
  return node.metrics.counter(
    "validator_network_discovery_records_total",
    "Peer records received, by outcome (new, invalid, too_large, not_eligible, stale)",
    ["outcome"],
  ).get({ outcome });
}

/** Every record outcome counted on `node`, zeros left out. */
function outcomes(node: Node): Record<string, number> {
  const metric = node.metrics.counter(
    "validator_network_discovery_records_total",
    "Peer records received, by outcome (new, invalid, too_large, not_eligible, stale)",
    ["outcome"],
  );
  const out: Record<string, number> = {};
  for (const { labels, value } of metric.entries()) if (value > 0) out[labels.outcome] = value;
  return out;
}

function pushesIn(node: Node, outcome?: string): number {
  const metric = node.metrics.counter(
    "validator_network_discovery_pushes_total",
    "Discovery pushes, by direction (in/out) and outcome",
    ["direction", "outcome"],
  );
  let n = 0;
  for (const { labels, value } of metric.entries()) {
    if (labels.direction === "in" && (outcome === undefined || labels.outcome === outcome)) {
      n += value;
    }
  }
  return n;
}

/** A records message: the type byte (1), then each envelope behind its varint length. */
function framed(envelopes: readonly Uint8Array[]): Uint8Array {
  const parts = [new Uint8Array([1]), ...envelopes.flatMap((e) => [encodeVarint(e.length), e])];
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const part of parts) {
    out.set(part, at);
    at += part.length;
  }
  return out;
}

/**
 * Sends `envelopes` to `to` as one push from `from`, waits until `to`
 * finished reading it, and returns how the listener ended its side: `null`
 * (it confirmed the push) or the error (it reset the stream).
 */
async function push(from: Node, to: Node, envelopes: readonly Uint8Array[]): Promise<unknown> {
  const before = pushesIn(to);
  const stream = await from.manager.openStream(to.peerId, [DISCOVERY_PROTOCOL]);
  const room = stream.write(framed(envelopes));
  if (room !== undefined) await room;
  await stream.closeWrite();
  await waitFor(() => pushesIn(to) > before, 1_000, "the push read");
  return await answerOf(stream);
}

/** Reads the listener's side of a push to its end: `null` (it confirmed) or the error. */
async function answerOf(stream: ProtocolStream): Promise<unknown> {
  try {
    while ((await stream.read()) !== null) { /* nothing else comes */ }
    return null;
  } catch (err) {
    return err;
  }
}

function addrs(...texts: string[]): Multiaddr[] {
  return texts.map((t) => Multiaddr.parse(t));
}

function manyAddrs(n: number): Multiaddr[] {
  return Array.from(
    { length: n },
    (_, i) => Multiaddr.parse(`/ip4/10.0.${i >> 8}.${i & 255}/tcp/4001`),
  );
}

/** The index of `needle` in `haystack`, or -1. */
function indexOf(haystack: Uint8Array, needle: Uint8Array): number {
  outer: for (let i = 0; i + needle.length <= haystack.length; i++) {
    for (let j = 0; j < needle.length; j++) if (haystack[i + j] !== needle[j]) continue outer;
    return i;
  }
  return -1;
}

function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

async function waitFor(condition: () => boolean, ms: number, what: string): Promise<void> {
  const start = performance.now();
  while (!condition()) {
    if (performance.now() - start > ms) throw new Error(`timed out after ${ms} ms: ${what}`);
    await delay(5);
  }
}

/**
 * A node under test (`a`, discovery running, eligible set `eligible`) and a
 * raw sender `s` connected to it (it serves the protocol, reading and
 * dropping what `a` pushes).
 */
async function rawPair(options: Partial<DiscoveryOptions> = {}) {
  const network = new MemoryNetwork();
  const [a, s] = await Promise.all([startNode(network), startNode(network)]);
  const eligible = new Set<string>([s.peerId.toString()]);
  s.manager.handle(DISCOVERY_PROTOCOL, async (stream) => {
    while ((await stream.read()) !== null) { /* drop */ }
    await stream.closeWrite(); // "arrived"
  });
  const { discovery, heard } = discoveryOf(a, {
    isEligible: (p) => eligible.has(p.toString()),
    ...options,
  });
  await connect(s, a);
  // a's own record goes to s as it connects: let that settle.
  await delay(20);
  return {
    network,
    a,
    s,
    discovery,
    heard,
    eligible,
    async close() {
      await discovery.close();
      await Promise.all([a.manager.close(), s.manager.close()]);
    },
  };
}

// ---- refused records ------------------------------------------------------------------

Deno.test("Discovery ignores and counts a record whose signature does not verify (invalid)", async () => {
  const t = await rawPair();
  try {
    const e = Ed25519Identity.generate();
    const x = Ed25519Identity.generate();
    t.eligible.add(e.peerId.toString());
    // A flipped bit of the signature (the envelope's last field).
    const flipped = sealPeerRecord(e, { seq: 1n, addrs: addrs("/ip4/10.0.0.1/tcp/1") });
    flipped[flipped.length - 1] ^= 1;
    // x's record, re-labelled with e's public key: claims to be e, signed by x.
    const relabelled = sealPeerRecord(x, { seq: 1n, addrs: addrs("/ip4/10.0.0.2/tcp/1") });
    const at = indexOf(relabelled, x.publicKey);
    assert(at >= 0, "x's key is in its envelope");
    relabelled.set(e.publicKey, at);
    // e's record with an address changed after signing.
    const edited = sealPeerRecord(e, { seq: 2n, addrs: addrs("/ip4/10.0.0.3/tcp/1") });
    const addrAt = indexOf(edited, Multiaddr.parse("/ip4/10.0.0.3/tcp/1").bytes);
    edited[addrAt + 4] ^= 0x01; // 10.0.0.3 -> 10.0.0.2

    await push(t.s, t.a, [flipped, relabelled, edited]);
    assertEquals(outcomes(t.a), { invalid: 3 });
    assertEquals(t.discovery.addresses(e.peerId), undefined);
    assertEquals(t.heard.filter((h) => h.peer === e.peerId.toString()), []);

    // The genuine record still gets in.
    const genuine = sealPeerRecord(e, { seq: 1n, addrs: addrs("/ip4/10.0.0.1/tcp/1") });
    await push(t.s, t.a, [genuine]);
    assertEquals(recordsCounted(t.a, "new"), 1);
    assertEquals(t.discovery.addresses(e.peerId)?.map(String), ["/ip4/10.0.0.1/tcp/1"]);
  } finally {
    await t.close();
  }
});

Deno.test("Discovery ignores and counts a record whose seq is not newer (stale)", async () => {
  const t = await rawPair();
  try {
    const e = Ed25519Identity.generate();
    t.eligible.add(e.peerId.toString());
    const id = e.peerId.toString();
    await push(t.s, t.a, [sealPeerRecord(e, { seq: 5n, addrs: addrs("/ip4/10.0.0.5/tcp/1") })]);
    assertEquals(outcomes(t.a), { new: 1 });
    assertEquals(t.heard, [{ peer: id, addrs: ["/ip4/10.0.0.5/tcp/1"] }]);

    await push(t.s, t.a, [
      sealPeerRecord(e, { seq: 5n, addrs: addrs("/ip4/10.0.0.55/tcp/1") }), // equal
      sealPeerRecord(e, { seq: 4n, addrs: addrs("/ip4/10.0.0.4/tcp/1") }), // older
    ]);
    assertEquals(outcomes(t.a), { new: 1, stale: 2 });
    assertEquals(t.discovery.addresses(e.peerId)?.map(String), ["/ip4/10.0.0.5/tcp/1"]);
    assertEquals(t.heard.length, 1);

    await push(t.s, t.a, [sealPeerRecord(e, { seq: 6n, addrs: addrs("/ip4/10.0.0.6/tcp/1") })]);
    assertEquals(outcomes(t.a), { new: 2, stale: 2 });
    assertEquals(t.discovery.addresses(e.peerId)?.map(String), ["/ip4/10.0.0.6/tcp/1"]);
    assertEquals(t.heard.at(-1), { peer: id, addrs: ["/ip4/10.0.0.6/tcp/1"] });
  } finally {
    await t.close();
  }
});

Deno.test("Discovery ignores and counts a record larger than maxRecordBytes (too_large)", async () => {
  const t = await rawPair({ maxRecordBytes: 300 });
  try {
    const e = Ed25519Identity.generate();
    t.eligible.add(e.peerId.toString());
    const big = sealPeerRecord(e, { seq: 1n, addrs: manyAddrs(20) }); // under maxAddrs (32)
    assert(big.length > 300, `${big.length} bytes`);
    await push(t.s, t.a, [big]);
    assertEquals(outcomes(t.a), { too_large: 1 });
    assertEquals(t.discovery.addresses(e.peerId), undefined);
    assertEquals(t.heard, []);
    // The connection is unharmed, and a record within the limit gets in.
    const small = sealPeerRecord(e, { seq: 2n, addrs: manyAddrs(2) });
    assert(small.length <= 300);
    await push(t.s, t.a, [small]);
    assertEquals(outcomes(t.a), { too_large: 1, new: 1 });
    assertEquals(t.a.manager.isConnected(t.s.peerId), true);
  } finally {
    await t.close();
  }
});

Deno.test("Discovery ignores and counts a record with more than maxAddrs addresses (too_large)", async () => {
  const t = await rawPair({ maxAddrs: 4 });
  try {
    const e = Ed25519Identity.generate();
    const f = Ed25519Identity.generate();
    t.eligible.add(e.peerId.toString());
    t.eligible.add(f.peerId.toString());
    await push(t.s, t.a, [
      sealPeerRecord(e, { seq: 1n, addrs: manyAddrs(5) }),
      sealPeerRecord(f, { seq: 1n, addrs: manyAddrs(4) }), // at the limit: fine
    ]);
    assertEquals(outcomes(t.a), { too_large: 1, new: 1 });
    assertEquals(t.discovery.addresses(e.peerId), undefined);
    assertEquals(t.discovery.addresses(f.peerId)?.length, 4);
    assertEquals(t.heard.map((h) => h.peer), [f.peerId.toString()]);
  } finally {
    await t.close();
  }
});

Deno.test("Discovery ignores and counts a record of a peer outside the eligible set (not_eligible)", async () => {
  const t = await rawPair();
  try {
    const x = Ed25519Identity.generate();
    const record = sealPeerRecord(x, { seq: 1n, addrs: addrs("/ip4/10.0.0.9/tcp/1") });
    await push(t.s, t.a, [record]);
    assertEquals(outcomes(t.a), { not_eligible: 1 });
    assertEquals(t.discovery.addresses(x.peerId), undefined);
    assertEquals(t.heard, []);
    assert(!t.discovery.records().some((r) => r.peerId.equals(x.peerId)));
    // Once eligible, the same record is taken.
    t.eligible.add(x.peerId.toString());
    await push(t.s, t.a, [record]);
    assertEquals(outcomes(t.a), { not_eligible: 1, new: 1 });
    assertEquals(t.heard, [{ peer: x.peerId.toString(), addrs: ["/ip4/10.0.0.9/tcp/1"] }]);
  } finally {
    await t.close();
  }
});

Deno.test("Discovery checks each record of a push alone: bad ones around good ones", async () => {
  const t = await rawPair({ maxAddrs: 4 });
  try {
    const [e, f, x] = [0, 1, 2].map(() => Ed25519Identity.generate());
    t.eligible.add(e.peerId.toString());
    t.eligible.add(f.peerId.toString());
    const forged = sealPeerRecord(e, { seq: 3n, addrs: addrs("/ip4/10.0.0.1/tcp/1") });
    forged[forged.length - 1] ^= 0x80;
    await push(t.s, t.a, [
      forged,
      sealPeerRecord(e, { seq: 2n, addrs: addrs("/ip4/10.0.0.2/tcp/1") }),
      sealPeerRecord(x, { seq: 1n, addrs: addrs("/ip4/10.0.0.3/tcp/1") }),
      sealPeerRecord(e, { seq: 1n, addrs: addrs("/ip4/10.0.0.4/tcp/1") }),
      sealPeerRecord(f, { seq: 1n, addrs: manyAddrs(5) }),
      sealPeerRecord(f, { seq: 2n, addrs: addrs("/ip4/10.0.0.5/tcp/1") }),
    ]);
    assertEquals(outcomes(t.a), {
      invalid: 1,
      new: 2,
      not_eligible: 1,
      stale: 1,
      too_large: 1,
    });
    assertEquals(pushesIn(t.a, "ok"), 1);
    assertEquals(t.heard, [
      { peer: e.peerId.toString(), addrs: ["/ip4/10.0.0.2/tcp/1"] },
      { peer: f.peerId.toString(), addrs: ["/ip4/10.0.0.5/tcp/1"] },
    ]);
  } finally {
    await t.close();
  }
});

Deno.test("Discovery resets only the stream of a push with more than maxRecordsPerPush records", async () => {
  const t = await rawPair({ maxRecordsPerPush: 3 });
  const events: PeerEvent[] = [];
  const sub = t.a.manager.subscribe();
  const watching = (async () => {
    for await (const event of sub) events.push(event);
  })();
  try {
    const ids = Array.from({ length: 5 }, () => Ed25519Identity.generate());
    for (const id of ids) t.eligible.add(id.peerId.toString());
    const records = ids.map((id, i) =>
      sealPeerRecord(id, { seq: 1n, addrs: addrs(`/ip4/10.0.1.${i}/tcp/1`) })
    );
    // A stream opened alongside, before, to see it survive.
    const other = await t.s.manager.openStream(t.a.peerId, [DISCOVERY_PROTOCOL]);

    const answer = await push(t.s, t.a, records.slice(0, 4));
    assertEquals(pushesIn(t.a, "LIMIT_EXCEEDED"), 1);
    assertNetworkError(answer, "CONNECTION_RESET", "REMOTE_ERROR", "CONNECTION_CLOSED");

    // The connection and the other stream are unharmed.
    assertEquals(t.a.manager.isConnected(t.s.peerId), true);
    assertEquals(events, []);
    const before = pushesIn(t.a, "ok");
    const room = other.write(framed([records[4]]));
    if (room !== undefined) await room;
    await other.closeWrite();
    await waitFor(() => pushesIn(t.a, "ok") > before, 1_000, "the other push read");
    assertEquals(await answerOf(other), null);
    assert(t.discovery.addresses(ids[4].peerId) !== undefined, "the other push's record taken");
    // A push of exactly maxRecordsPerPush records is fine.
    const more = Array.from({ length: 3 }, () => Ed25519Identity.generate());
    for (const id of more) t.eligible.add(id.peerId.toString());
    const full = more.map((id) => sealPeerRecord(id, { seq: 1n, addrs: [] }));
    assertEquals(await push(t.s, t.a, full), null);
    assert(more.every((id) => t.discovery.addresses(id.peerId) !== undefined));
    assertEquals(events, []);
  } finally {
    sub.close();
    await watching;
    await t.close();
  }
});

Deno.test("Discovery.close returns even when a peer never confirms a push", async () => {
  const network = new MemoryNetwork();
  const [a, s] = await Promise.all([startNode(network), startNode(network)]);
  // s reads a's pushes but never ends its side.
  const release = Promise.withResolvers<void>();
  s.manager.handle(DISCOVERY_PROTOCOL, async (stream) => {
    while ((await stream.read()) !== null) { /* drop */ }
    await release.promise;
  });
  const { discovery } = discoveryOf(a);
  let closing: Promise<void> | undefined;
  try {
    await connect(s, a); // a pushes its record to s, which dialed it
    await delay(50);
    closing = discovery.close();
    let timer: ReturnType<typeof setTimeout> | undefined;
    const closed = await Promise.race([
      closing.then(() => true),
      new Promise<boolean>((resolve) => timer = setTimeout(() => resolve(false), 1_000)),
    ]);
    clearTimeout(timer);
    assert(closed, "Discovery.close() still waiting after 1 s on a push the peer never confirmed");
  } finally {
    release.resolve();
    await discovery.close();
    await Promise.all([a.manager.close(), s.manager.close()]);
    await closing;
  }
});

// ---- addresses and gossip --------------------------------------------------------------

Deno.test("Discovery gives a new record's addresses to onAddresses, which feeds the connectivity manager", async () => {
  const network = new MemoryNetwork();
  const [a, s, b] = await Promise.all([startNode(network), startNode(network), startNode(network)]);
  // a knows b is eligible but not where it is; b trusts a.
  b.trusted.set(a.v.noise.publicKey, a.peerId);
  const connectivity = new ConnectivityManager({
    manager: a.manager,
    trustedPeers: a.trusted,
    backoff: { initial: 60_000 },
    metrics: a.metrics,
    logger: quiet,
  });
  connectivity.start();
  connectivity.setEligible([
    { peerId: a.peerId, noiseKey: a.v.noise.publicKey, addrs: [] },
    { peerId: s.peerId, noiseKey: s.v.noise.publicKey, addrs: [] },
    { peerId: b.peerId, noiseKey: b.v.noise.publicKey, addrs: [] },
  ]);
  const { discovery, heard } = discoveryOf(a, {
    isEligible: (p) => connectivity.state(p) !== undefined,
    onAddresses: (peer, found) => connectivity.addAddresses(peer, found),
  });
  try {
    s.trusted.set(a.v.noise.publicKey, a.peerId);
    await s.manager.dial(a.peerId, [a.addr]);
    assertEquals(a.manager.isConnected(b.peerId), false);
    // s relays b's record (signed by b).
    await push(s, a, [sealPeerRecord(b.v.identity, { seq: 1n, addrs: [b.addr] })]);
    assertEquals(heard, [{ peer: b.peerId.toString(), addrs: [`${b.addr}`] }]);
    assertEquals(connectivity.addresses(b.peerId).map(String), [`${b.addr}`]);
    await waitFor(() => a.manager.isConnected(b.peerId), 1_000, "a dialed b at its new address");
  } finally {
    await discovery.close();
    await connectivity.close();
    await Promise.all([a, s, b].map((n) => n.manager.close()));
  }
});

Deno.test("Discovery pushes a changed record on at once: it reaches a third node", async () => {
  const network = new MemoryNetwork();
  const [a, b, c] = await Promise.all([startNode(network), startNode(network), startNode(network)]);
  let advertised = addrs("/ip4/10.1.0.1/tcp/7000");
  const runs = [
    discoveryOf(a, { advertise: () => advertised }),
    discoveryOf(b),
    discoveryOf(c),
  ];
  try {
    // A line: a - b - c; a and c never connect.
    await connect(a, b);
    await connect(c, b);
    const cHeardA = () => runs[2].heard.filter((h) => h.peer === a.peerId.toString());
    await waitFor(() => cHeardA().length === 1, 1_000, "c learns a's first record through b");
    assertEquals(cHeardA()[0].addrs, ["/ip4/10.1.0.1/tcp/7000"]);
    assertEquals(a.manager.isConnected(c.peerId), false);

    await delay(150); // every gossip timer of the start has fired by now

    advertised = addrs("/ip4/10.1.0.2/tcp/7000", "/ip4/10.1.0.3/tcp/7000");
    const t0 = performance.now();
    runs[0].discovery.refresh();
    // refreshInterval is a minute: only a push on change gets there this soon.
    await waitFor(() => cHeardA().length === 2, 1_000, "c learns a's new record through b");
    assert(performance.now() - t0 < 500, "pushed on at once");
    assertEquals(cHeardA()[1].addrs, ["/ip4/10.1.0.2/tcp/7000", "/ip4/10.1.0.3/tcp/7000"]);
    assertEquals(
      runs[2].discovery.addresses(a.peerId)?.map(String),
      ["/ip4/10.1.0.2/tcp/7000", "/ip4/10.1.0.3/tcp/7000"],
    );
    assertEquals(runs[1].discovery.addresses(a.peerId)?.length, 2);
  } finally {
    for (const { discovery } of runs) await discovery.close();
    await Promise.all([a, b, c].map((n) => n.manager.close()));
  }
});

Deno.test("Discovery: 10 validators that know one seed reach a full mesh", async () => {
  const N = 10;
  const network = new MemoryNetwork();
  const vals = Array.from({ length: N }, () => validator());
  const nodes = await Promise.all(vals.map((v) => startNode(network, v)));
  const stacks = nodes.map((node) => {
    const connectivity = new ConnectivityManager({
      manager: node.manager,
      trustedPeers: node.trusted,
      backoff: { initial: 100, max: 1_000 },
      metrics: node.metrics,
      logger: quiet,
    });
    const { discovery } = discoveryOf(node, {
      isEligible: (p) => connectivity.state(p) !== undefined,
      onAddresses: (p, found) => connectivity.addAddresses(p, found),
      refreshInterval: 60_000, // no periodic refresh here: pushes on connect and on change do it
    });
    return { connectivity, discovery };
  });
  try {
    // Everyone knows the set; only the seed's address is known.
    const seed = nodes[0];
    const set = nodes.map((n) => ({
      peerId: n.peerId,
      noiseKey: n.v.noise.publicKey,
      addrs: n === seed ? [seed.addr] : [],
    }));
    for (const { connectivity } of stacks) {
      connectivity.start();
      connectivity.setEligible(set);
    }
    await waitFor(
      () => nodes.every((n) => n.manager.peers().length === N - 1),
      10_000,
      "full mesh",
    );
    for (const [i, node] of nodes.entries()) {
      assertEquals(stacks[i].discovery.records().length, N, "every record known");
      for (const other of nodes) {
        if (other === node) continue;
        assert(node.manager.isConnected(other.peerId));
        assert(
          stacks[i].connectivity.addresses(other.peerId).some((a) => a.equals(other.addr)),
          "addresses learned through discovery",
        );
      }
    }
  } finally {
    for (const { discovery, connectivity } of stacks) {
      await discovery.close();
      await connectivity.close();
    }
    await Promise.all(nodes.map((n) => n.manager.close()));
  }
});
