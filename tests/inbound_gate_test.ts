/**
 * The inbound gate: what an inbound connection must get past before and
 * while it upgrades, every refusal counted in
 * `validator_network_inbound_refused_total{reason}`:
 *
 * - past `maxPending` (in total) or `maxPendingPerAddress` (one remote
 *   address), the pending connection that made the least progress is shed,
 *   a silent one before one that sent bytes, the oldest first (`shed`); the
 *   gate never refuses the newcomer for a full table;
 * - new connections per second per remote address beyond the bucket are
 *   closed at once (`rate_limit`);
 * - a connection silent for `firstMessageTimeout` is closed
 *   (`first_message_timeout`);
 *
 * then, through a listening `PeerManager`: the listener keeps accepting at
 * its cap, and 1,000 idle sockets plus 300 half-handshake sockets from
 * 127.0.0.1 over TCP delay a legitimate dial from 127.0.0.1 by no more than
 * its own handshake time.
 */

import { assert, assertEquals } from "./_assert.ts";
import { memoryPair, upgradeContext } from "./_pair.ts";
import { settlesWithin } from "./_streams.ts";
import { MemoryNetwork } from "../memsocket/mod.ts";
import { delay } from "../netcore/_async.ts";
import { Ed25519Identity } from "../netcore/identity/mod.ts";
import { Logger } from "../netcore/log.ts";
import { type Labels, MetricsRegistry } from "../netcore/metrics.ts";
import { Multiaddr } from "../netcore/multiaddr.ts";
import { NetworkError } from "../netcore/network_error.ts";
import { getCryptoBackend } from "../netcore/noise/crypto.ts";
import { TrustedPeerSet } from "../netcore/noise/trusted_peers.ts";
import { PeerManager, type PeerManagerOptions } from "../netcore/peer/peer_manager.ts";
import type { Connection } from "../netcore/transport/connection.ts";
import { InboundGate, type InboundLimits } from "../netcore/transport/inbound_gate.ts";
import { MemoryTransport } from "../netcore/transport/memory_transport.ts";
import type { SocketConnection } from "../netcore/transport/socket_connection.ts";
import { TcpTransport } from "../netcore/transport/tcp_transport.ts";
import { validatorUpgrade } from "../netcore/upgrade/mod.ts";

const quiet = new Logger({}, "off");
const REFUSED = "validator_network_inbound_refused_total";
const PENDING = "validator_network_pending_inbound_upgrades";

/** Sums the series of `name` whose labels include `labels`, without creating any. */
function metricValue(registry: MetricsRegistry, name: string, labels: Labels = {}): number {
  let total = 0;
  for (const entry of registry.find(name)?.entries() ?? []) {
    if (Object.entries(labels).every(([k, v]) => entry.labels[k] === v)) total += entry.value;
  }
  return total;
}

/** Polls `condition` every 5 ms for up to `ms`; fails with `what` otherwise. */
async function until(condition: () => boolean, what: string, ms = 3_000): Promise<void> {
  const end = performance.now() + ms;
  while (!condition()) {
    if (performance.now() > end) throw new Error(`timed out waiting for ${what}`);
    await delay(5);
  }
}

// ---- the gate alone -----------------------------------------------------------------

/** A gate over a fresh registry, and the inbound connections it was given. */
class GateFixture {
  readonly registry = new MetricsRegistry();
  readonly gate: InboundGate;
  readonly #pairs: SocketConnection[] = [];
  #port = 1000;

  constructor(limits: InboundLimits) {
    this.gate = new InboundGate(limits, this.registry.scope({ network: "gate" }));
  }

  refused(reason: string): number {
    return metricValue(this.registry, REFUSED, { network: "gate", reason });
  }

  get pendingGauge(): number {
    return metricValue(this.registry, PENDING, { network: "gate" });
  }

  /** A new inbound connection from `host`, offered to the gate. */
  arrive(host: string): Inbound {
    const [raw, peer] = memoryPair({ remoteAddr: `/ip4/${host}/tcp/${this.#port++}` });
    this.#pairs.push(raw, peer);
    return new Inbound(this.gate.admit(raw), raw, peer);
  }

  close(): void {
    this.gate.close(new NetworkError("CONNECTION_CLOSED", "test over"));
    for (const conn of this.#pairs) conn.abort();
  }
}

/** One inbound connection: what the gate admitted (undefined: refused), and the remote end. */
class Inbound {
  readonly admitted: Connection | undefined;
  readonly raw: SocketConnection;
  readonly peer: SocketConnection;

  constructor(admitted: Connection | undefined, raw: SocketConnection, peer: SocketConnection) {
    this.admitted = admitted;
    this.raw = raw;
    this.peer = peer;
  }

  /** The remote end sends a byte, and the upgrade (the admitted connection) reads it. */
  async progress(): Promise<void> {
    assert(this.admitted !== undefined, "admitted");
    this.peer.write(new Uint8Array([0x13]));
    assertEquals(await this.admitted.read(), new Uint8Array([0x13]));
  }

  /** Whether the gate closed it (the connection under it ended). */
  async wasClosed(ms = 50): Promise<boolean> {
    return await settlesWithin(this.raw.closed, ms);
  }
}

Deno.test("gate: past maxPending it sheds a silent connection before one that sent bytes, the oldest first", async () => {
  const f = new GateFixture({
    maxPending: 3,
    maxPendingPerAddress: 100,
    firstMessageTimeout: 60_000,
  });
  try {
    const c1 = f.arrive("10.0.0.1");
    await c1.progress(); // the oldest, but it spoke
    await delay(2);
    const c2 = f.arrive("10.0.0.2");
    await delay(2);
    const c3 = f.arrive("10.0.0.3");
    assertEquals([f.gate.pending, f.pendingGauge, f.refused("shed")], [3, 3, 0]);

    await delay(2);
    const c4 = f.arrive("10.0.0.4");
    assert(c4.admitted !== undefined, "the newcomer is admitted, never refused for a full table");
    assertEquals(await c2.wasClosed(), true, "the oldest silent one is shed");
    assertEquals([await c1.wasClosed(0), await c3.wasClosed(0)], [false, false]);
    assertEquals([f.gate.pending, f.pendingGauge, f.refused("shed")], [3, 3, 1]);

    await delay(2);
    const c5 = f.arrive("10.0.0.5");
    assertEquals(await c3.wasClosed(), true, "then the next silent one");
    assertEquals(await c1.wasClosed(0), false, "the one that spoke stays");
    // Now every pending connection spoke: the oldest of them goes.
    await c4.progress();
    await c5.progress();
    await delay(2);
    const c6 = f.arrive("10.0.0.6");
    assertEquals(await c1.wasClosed(), true, "all spoke: the oldest is shed");
    assertEquals([await c4.wasClosed(0), await c5.wasClosed(0), await c6.wasClosed(0)], [
      false,
      false,
      false,
    ]);
    assertEquals([f.gate.pending, f.pendingGauge, f.refused("shed")], [3, 3, 3]);
    // The remote end of a shed connection sees it go.
    const err = await c1.peer.read().then((r) => r, (e: unknown) => e);
    assert(err === null || NetworkError.is(err), `the shed peer reads ${err}`);
    for (const c of [c4, c5, c6]) f.gate.release(c.admitted!);
    assertEquals([f.gate.pending, f.pendingGauge], [0, 0]);
  } finally {
    f.close();
  }
});

Deno.test("gate: past maxPendingPerAddress it sheds only among that address's connections", async () => {
  const f = new GateFixture({
    maxPending: 100,
    maxPendingPerAddress: 2,
    firstMessageTimeout: 60_000,
  });
  try {
    const a1 = f.arrive("10.0.0.1");
    await delay(2);
    const b1 = f.arrive("10.0.0.2"); // silent, older than a2: still not a candidate
    await delay(2);
    const a2 = f.arrive("10.0.0.1");
    await delay(2);
    const a3 = f.arrive("10.0.0.1");
    assertEquals(await a1.wasClosed(), true, "the address's oldest silent one");
    assertEquals([await b1.wasClosed(0), await a2.wasClosed(0), await a3.wasClosed(0)], [
      false,
      false,
      false,
    ]);
    assertEquals([f.refused("shed"), f.gate.pending], [1, 3]);
    // Another address has room of its own.
    const b2 = f.arrive("10.0.0.2");
    assertEquals([f.refused("shed"), f.gate.pending], [1, 4]);
    // The older a2 spoke: the silent a3 goes first.
    await a2.progress();
    await delay(2);
    const a4 = f.arrive("10.0.0.1");
    assertEquals(await a3.wasClosed(), true);
    assertEquals([await a2.wasClosed(0), await a4.wasClosed(0), await b2.wasClosed(0)], [
      false,
      false,
      false,
    ]);
    assertEquals([f.refused("shed"), f.gate.pending], [2, 4]);
    // A released connection frees its address's place.
    f.gate.release(a2.admitted!);
    f.arrive("10.0.0.1");
    assertEquals([f.refused("shed"), f.gate.pending], [2, 4]);
  } finally {
    f.close();
  }
});

Deno.test("gate: an address that opens connections faster than its bucket is refused at once", async () => {
  const f = new GateFixture({
    maxPending: 100,
    maxPendingPerAddress: 100,
    newConnectionsPerSecond: 10,
    newConnectionsBurst: 3,
    firstMessageTimeout: 60_000,
  });
  try {
    const burst = [f.arrive("10.0.0.1"), f.arrive("10.0.0.1"), f.arrive("10.0.0.1")];
    assert(burst.every((c) => c.admitted !== undefined), "the burst is admitted");
    const over = f.arrive("10.0.0.1");
    assertEquals(over.admitted, undefined, "the fourth is refused");
    assertEquals(await over.wasClosed(), true, "and closed");
    assertEquals([f.refused("rate_limit"), f.gate.pending, f.refused("shed")], [1, 3, 0]);
    // Other addresses have buckets of their own.
    assert(f.arrive("10.0.0.2").admitted !== undefined);
    assertEquals(f.arrive("10.0.0.1").admitted, undefined);
    assertEquals(f.refused("rate_limit"), 2);
    // The bucket refills at the sustained rate (10/s: two in 250 ms).
    await delay(250);
    assert(f.arrive("10.0.0.1").admitted !== undefined, "refilled");
    assert(f.arrive("10.0.0.1").admitted !== undefined, "refilled twice");
    assertEquals(f.arrive("10.0.0.1").admitted, undefined, "but not more");
    assertEquals([f.refused("rate_limit"), f.gate.pending], [3, 6]);
  } finally {
    f.close();
  }
});

Deno.test("gate: a connection silent past firstMessageTimeout is closed; one that spoke stays", async () => {
  const f = new GateFixture({ firstMessageTimeout: 50 });
  try {
    const silent = f.arrive("10.0.0.1");
    const spoke = f.arrive("10.0.0.1");
    await spoke.progress();
    assertEquals(await silent.wasClosed(20), false, "not before the deadline");
    assertEquals(await silent.wasClosed(500), true, "closed after it");
    assertEquals([f.refused("first_message_timeout"), f.gate.pending, f.pendingGauge], [1, 1, 1]);
    await delay(100);
    assertEquals(
      await spoke.wasClosed(0),
      false,
      "the one that spoke is past the deadline's reach",
    );
    f.gate.release(spoke.admitted!);
    f.gate.release(silent.admitted!); // released already: nothing changes
    assertEquals([f.gate.pending, f.pendingGauge], [0, 0]);
    // A connection released before its deadline leaves no timer behind (the sanitizer checks).
    const quick = f.arrive("10.0.0.1");
    f.gate.release(quick.admitted!);
    await delay(80);
    assertEquals(await quick.wasClosed(0), false, "a released connection is the upgrade's now");
    assertEquals(f.refused("first_message_timeout"), 1);
  } finally {
    f.close();
  }
});

Deno.test("gate: close() closes every pending connection", async () => {
  const f = new GateFixture({});
  const conns = [f.arrive("10.0.0.1"), f.arrive("10.0.0.2")];
  await conns[0].progress();
  f.gate.close(new NetworkError("CONNECTION_CLOSED", "listener closed"));
  assertEquals([f.gate.pending, f.pendingGauge], [0, 0]);
  for (const c of conns) assertEquals(await c.wasClosed(), true);
  f.close();
});

// ---- through a listening manager ------------------------------------------------------

/** A server and a client of the validator profile, on `kind`. */
async function validators(
  kind: "memory" | "tcp",
  serverOptions: PeerManagerOptions = {},
): Promise<{
  server: PeerManager;
  client: PeerManager;
  registry: MetricsRegistry;
  network: MemoryNetwork;
  firstMessage: () => Promise<Uint8Array>;
  close: () => Promise<void>;
}> {
  const network = new MemoryNetwork();
  const registry = new MetricsRegistry();
  const trusted = new TrustedPeerSet();
  const keys = new Map<
    string,
    ReturnType<ReturnType<typeof getCryptoBackend>["dh"]["generateKeyPair"]>
  >();
  const make = (name: string, listen: boolean, options: PeerManagerOptions = {}) => {
    const identity = Ed25519Identity.generate();
    const key = getCryptoBackend().dh.generateKeyPair();
    keys.set(name, key);
    trusted.set(key.publicKey, identity.peerId);
    const metrics = registry.scope({ network: name });
    return PeerManager.create({
      identity,
      upgrade: validatorUpgrade(key, {
        noise: { trustedPeers: trusted, networkId: "gate-test" },
        metrics,
        logger: quiet,
      }),
      listen: listen
        ? [Multiaddr.parse(kind === "memory" ? "/memory/0" : "/ip4/127.0.0.1/tcp/0")]
        : [],
      transports: [kind === "memory" ? new MemoryTransport({ network }) : new TcpTransport()],
      metrics,
      logger: quiet,
      ...options,
    });
  };
  const server = await make("server", true, serverOptions);
  const client = await make("client", false);
  /** The first handshake message the client sends the server, as it leaves. */
  const firstMessage = async () => {
    const [dialerEnd, listenerEnd] = memoryPair();
    const upgrade = validatorUpgrade(keys.get("client")!, {
      noise: { trustedPeers: trusted, networkId: "gate-test" },
      metrics: new MetricsRegistry().scope({ network: "capture" }),
      logger: quiet,
    });
    const cancel = new AbortController();
    const running = upgrade(
      dialerEnd,
      upgradeContext("dialer", cancel.signal, server.listenAddrs[0]),
    ).catch(() => undefined);
    const message = await listenerEnd.read();
    assert(message !== null && message.length > 8, "the first message");
    cancel.abort();
    dialerEnd.abort();
    listenerEnd.abort();
    await running;
    return message;
  };
  return {
    server,
    client,
    registry,
    network,
    firstMessage,
    close: async () => {
      await client.close();
      await server.close();
    },
  };
}

/** Dials the server and pings it; returns the time taken (ms), then disconnects both ends. */
async function dialAndPing(client: PeerManager, server: PeerManager): Promise<number> {
  const start = performance.now();
  const conn = await client.dial(server.peerId, server.listenAddrs);
  await conn.ping();
  const elapsed = performance.now() - start;
  await client.disconnect(server.peerId);
  await until(() => !server.isConnected(client.peerId), "the server to see the disconnect");
  return elapsed;
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)];
}

Deno.test("listener: at its cap of pending upgrades it still accepts, shedding a silent connection", async () => {
  const cap = 8;
  const v = await validators("memory", {
    inbound: { maxPending: cap, maxPendingPerAddress: cap, firstMessageTimeout: 60_000 },
  });
  const raws: SocketConnection[] = [];
  try {
    const transport = new MemoryTransport({ network: v.network });
    const serverAddr = v.server.listenAddrs[0];
    const pending = () => metricValue(v.registry, PENDING, { network: "server" });
    for (let i = 0; i < cap; i++) {
      raws.push(await transport.dial(serverAddr));
      await until(() => pending() === i + 1, `silent connection ${i + 1} to be pending`);
      await delay(2);
    }
    // Each silent connection's end: settles when the server closes it.
    const ends = raws.map((raw) => raw.read().then(() => true, () => true));
    const elapsed = await dialAndPing(v.client, v.server);
    assert(elapsed < 1_000, `the dial took ${elapsed} ms`);
    assertEquals(metricValue(v.registry, REFUSED, { network: "server", reason: "shed" }), 1);
    assertEquals(await settlesWithin(ends[0], 500), true, "the oldest silent one was shed");
    for (let i = 1; i < cap; i++) {
      assertEquals(await settlesWithin(ends[i], 0), false, `silent connection ${i} stays`);
    }
    assertEquals(pending(), cap - 1, "the others wait on");
  } finally {
    for (const raw of raws) raw.abort();
    await v.close();
  }
});

Deno.test("listener over TCP: a socket silent past firstMessageTimeout is closed and counted", async () => {
  const v = await validators("tcp", { inbound: { firstMessageTimeout: 100 } });
  const { hostname, port } = v.server.listenAddrs[0].tcpEndpoint()!;
  const socket = await Deno.connect({ hostname, port });
  try {
    const start = performance.now();
    const ended = await socket.read(new Uint8Array(16)).then((n) => n, (e: unknown) => e);
    const elapsed = performance.now() - start;
    assert(ended === null || ended instanceof Error, `read ${ended}`);
    assert(elapsed >= 80 && elapsed < 1_500, `closed after ${elapsed} ms`);
    assertEquals(
      metricValue(v.registry, REFUSED, { network: "server", reason: "first_message_timeout" }),
      1,
    );
    // A peer that speaks is served.
    assert((await dialAndPing(v.client, v.server)) < 1_000);
  } finally {
    socket.close();
    await v.close();
  }
});

Deno.test("listener: an address over its rate of new connections is refused at once and counted", async () => {
  const v = await validators("memory", {
    inbound: { newConnectionsPerSecond: 1, newConnectionsBurst: 2, firstMessageTimeout: 60_000 },
  });
  const raws: SocketConnection[] = [];
  try {
    const transport = new MemoryTransport({ network: v.network });
    for (let i = 0; i < 3; i++) raws.push(await transport.dial(v.server.listenAddrs[0]));
    const third = raws[2].read().then(() => true, () => true);
    assertEquals(await settlesWithin(third, 1_000), true, "the third is closed at once");
    assertEquals(await settlesWithin(raws[0].read(), 50), false, "the first two wait");
    assertEquals(metricValue(v.registry, REFUSED, { network: "server", reason: "rate_limit" }), 1);
  } finally {
    for (const raw of raws) raw.abort();
    await v.close();
  }
});

/** The process's open-file limit, from the shell (Deno cannot raise it). */
async function openFileLimit(): Promise<number> {
  const out = await new Deno.Command("sh", { args: ["-c", "ulimit -n"], stdout: "piped" }).output();
  const text = new TextDecoder().decode(out.stdout).trim();
  return text === "unlimited" ? Infinity : Number(text);
}

Deno.test({
  name:
    "listener over TCP: 1,000 idle and 300 half-handshake sockets from 127.0.0.1 do not delay a legitimate dial from 127.0.0.1",
  fn: async () => {
    // Both ends of every attack socket live in this process: two descriptors
    // each, plus ~300 for the rest. When the limit is lower (Deno cannot raise
    // it), the attack is scaled down to fit, keeping its proportions.
    const limit = await openFileLimit();
    const scale = Math.min(1, (limit - 300) / (2 * 1_300));
    const idleCount = Math.floor(1_000 * scale);
    const halfCount = Math.floor(300 * scale);
    assert(idleCount + halfCount >= 200, `ulimit -n ${limit} leaves too few sockets for the test`);

    // The defaults: 256 pending, 64 per address, 3 s of silence, 200/s burst 2,000.
    const v = await validators("tcp");
    const { hostname, port } = v.server.listenAddrs[0].tcpEndpoint()!;
    assertEquals(hostname, "127.0.0.1");
    const sockets: Deno.TcpConn[] = [];
    const refused = (reason: string) =>
      metricValue(v.registry, REFUSED, { network: "server", reason });
    const pending = () => metricValue(v.registry, PENDING, { network: "server" });
    try {
      // Quiet: the legitimate dial and ping, after a warm-up.
      await dialAndPing(v.client, v.server);
      const quiet = median([
        await dialAndPing(v.client, v.server),
        await dialAndPing(v.client, v.server),
        await dialAndPing(v.client, v.server),
      ]);

      // The attack from the same address: idle sockets, then sockets that
      // send the first bytes of a real first handshake message and stop.
      const partial = (await v.firstMessage()).slice(0, 5);
      const open = async (count: number, speak: boolean) => {
        for (let i = 0; i < count; i += 100) {
          const batch = await Promise.all(
            Array.from(
              { length: Math.min(100, count - i) },
              () => Deno.connect({ hostname, port }),
            ),
          );
          sockets.push(...batch);
          if (speak) await Promise.all(batch.map((s) => s.write(partial).catch(() => 0)));
        }
      };
      await open(idleCount, false);
      await open(halfCount, true);
      const total = idleCount + halfCount;
      // Every attack socket was accepted and admitted: pending, or shed to make room.
      await until(
        () => pending() + refused("shed") + refused("first_message_timeout") >= total,
        `the listener to accept ${total} sockets (pending ${pending()}, shed ${refused("shed")})`,
        10_000,
      );
      assert(refused("shed") > 0, "the caps were reached: the gate shed");
      assert(pending() <= 256, `pending ${pending()} within maxPending`);
      assertEquals(refused("rate_limit"), 0, "within the burst");

      const attacked = [
        await dialAndPing(v.client, v.server),
        await dialAndPing(v.client, v.server),
        await dialAndPing(v.client, v.server),
      ];
      const bound = Math.min(1_000, 3 * quiet + 200);
      assert(
        median(attacked) <= bound && Math.max(...attacked) < 1_000,
        `dial+ping under attack ${attacked.map((t) => t.toFixed(1))} ms vs ${
          quiet.toFixed(1)
        } ms quiet (bound ${bound.toFixed(1)} ms; ${idleCount} idle, ${halfCount} half)`,
      );
    } finally {
      for (const socket of sockets) {
        try {
          socket.close();
        } catch {
          // closed already
        }
      }
      await v.close();
    }
  },
});
