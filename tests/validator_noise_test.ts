/**
 * The validator handshake: Noise_IK_25519_ChaChaPoly_SHA256 with mutual
 * authentication. The dialer finds the responder's static key in the
 * trusted set by the peer id of the address it dials; the responder admits
 * only trusted static keys (refusing an unknown one before the `ss` DH); the
 * dialer's timestamp defeats replays.
 */

import { Ed25519Identity, type PeerId } from "../netcore/identity/mod.ts";
import { MemoryNetwork } from "../memsocket/mod.ts";
import { Logger } from "../netcore/log.ts";
import { type Metrics, MetricsRegistry } from "../netcore/metrics.ts";
import { Multiaddr } from "../netcore/multiaddr.ts";
import { NetworkError } from "../netcore/network_error.ts";
import { type CryptoBackend, getCryptoBackend, type KeyPair } from "../netcore/noise/crypto.ts";
import { ReplayGuard } from "../netcore/noise/replay_guard.ts";
import { TrustedPeerSet } from "../netcore/noise/trusted_peers.ts";
import {
  validatorNoise,
  type ValidatorNoiseConnection,
  type ValidatorNoiseOptions,
} from "../netcore/noise/validator_noise.ts";
import { ByteReader } from "../netcore/byte_reader.ts";
import { andThen } from "../netcore/transport/and_then.ts";
import type { Connection } from "../netcore/transport/connection.ts";
import { MemoryTransport } from "../netcore/transport/memory_transport.ts";
import { TcpTransport } from "../netcore/transport/tcp_transport.ts";
import type { Transport } from "../netcore/transport/transport.ts";
import { assert, assertEquals, assertRejectsCode, assertThrows } from "./_assert.ts";
import { memoryPair, upgradeContext } from "./_pair.ts";
import { recordingPair } from "./_pipe.ts";

const encoder = new TextEncoder();
const decoder = new TextDecoder();
const dh = getCryptoBackend().dh;

/**
 * A fresh registry, seen as the components of network "test" see it, and a
 * logger whose lines are kept (parsed) instead of printed.
 */
function observed() {
  const logs: Record<string, unknown>[] = [];
  const logger = new Logger({}, "warn", (line) => logs.push(JSON.parse(line)));
  const registry = new MetricsRegistry();
  const metrics: Metrics = registry.scope({ network: "test" });
  /** A validator-profile series of `validator_network_noise_<name>_total`. */
  const count = (name: "handshakes" | "rejected", labels: Record<string, string>) =>
    registry.find(`validator_network_noise_${name}_total`)
      ?.get({ network: "test", profile: "validator", ...labels }) ?? 0;
  /** Every rejection counted, by reason. */
  const rejections = () => {
    const out: Record<string, number> = {};
    for (
      const { labels, value } of registry.find("validator_network_noise_rejected_total")
        ?.entries() ?? []
    ) {
      if (value > 0) out[labels.reason] = value;
    }
    return out;
  };
  return { registry, metrics, count, rejections, logger, logs };
}

interface Validator {
  /** Its static X25519 key. */
  key: KeyPair;
  /** Its peer id. */
  id: PeerId;
}

function validator(): Validator {
  return { key: dh.generateKeyPair(), id: Ed25519Identity.generate().peerId };
}

/** Two validators that trust each other, and an outsider nobody trusts. */
function validators() {
  const alice = validator();
  const bob = validator();
  const outsider = validator();
  const trusted = new TrustedPeerSet([[alice.key.publicKey, alice.id], [
    bob.key.publicKey,
    bob.id,
  ]]);
  return { alice, bob, outsider, trusted };
}

/** The address a dialer dials to reach `peer`. */
function addrOf(peer: Validator | PeerId, base = "/memory/2"): Multiaddr {
  const id = "id" in peer ? peer.id : peer;
  return Multiaddr.parse(`${base}/p2p/${id}`);
}

/** Runs a dialer (dialing `dialed`) and a responder upgrade on the two ends of a fresh pair. */
function handshake(
  dialer: { key: KeyPair; options: ValidatorNoiseOptions },
  responder: { key: KeyPair; options: ValidatorNoiseOptions },
  dialed: Multiaddr,
  pair: [Connection, Connection] = memoryPair(),
) {
  const [a, b] = pair;
  return {
    dial: validatorNoise(dialer.key, dialer.options)(
      a,
      upgradeContext("dialer", undefined, dialed),
    ),
    accept: validatorNoise(responder.key, responder.options)(b, upgradeContext("listener")),
    raw: pair,
  };
}

async function exchange(a: Connection, b: Connection): Promise<void> {
  await a.write(encoder.encode("proposal"));
  assertEquals(decoder.decode((await b.read())!), "proposal");
  await b.write(encoder.encode("vote"));
  assertEquals(decoder.decode((await a.read())!), "vote");
}

// ---- over real transports ----

async function overTransport(raw: () => Transport, listenAddr: string): Promise<void> {
  const { alice, bob, trusted } = validators();
  const { metrics, count } = observed();
  const dialer = andThen(raw(), validatorNoise(alice.key, { trustedPeers: trusted, metrics }));
  const listening = andThen(raw(), validatorNoise(bob.key, { trustedPeers: trusted, metrics }));
  const listener = await listening.listen(Multiaddr.parse(listenAddr));
  const accepted = listener[Symbol.asyncIterator]().next();
  // andThen hands the dialed address, with its /p2p/ part, to the upgrade.
  const a = await dialer.dial(listener.addr.withPeerId(bob.id.toString()));
  const b = (await accepted).value as ValidatorNoiseConnection;
  await listener.close();
  assert(a.remotePeer.equals(bob.id), `the dialer sees ${a.remotePeer}`);
  assert(b.remotePeer.equals(alice.id), `the responder sees ${b.remotePeer}`);
  assertEquals(a.remoteStaticKey, bob.key.publicKey);
  assertEquals(b.remoteStaticKey, alice.key.publicKey);
  assertEquals(a.handshakeHash, b.handshakeHash);
  assertEquals(count("handshakes", { role: "dialer" }), 1);
  assertEquals(count("handshakes", { role: "listener" }), 1);
  await exchange(a, b);
  a.abort();
  b.abort();
}

Deno.test("IK over memsocket: trusted validators connect and talk", async () => {
  const network = new MemoryNetwork();
  await overTransport(() => new MemoryTransport({ network }), "/memory/0");
});

Deno.test("IK over TCP on loopback: trusted validators connect and talk", async () => {
  const tcp = new TcpTransport();
  await overTransport(() => tcp, "/ip4/127.0.0.1/tcp/0");
});

// ---- whom the dialer dials ----

Deno.test("the dialer finds the responder's key by the /p2p/ peer id of the dialed address", async () => {
  const { alice, bob, trusted } = validators();
  const { dial, accept } = handshake(
    { key: alice.key, options: { trustedPeers: trusted } },
    { key: bob.key, options: { trustedPeers: trusted } },
    addrOf(bob),
  );
  const [a, b] = await Promise.all([dial, accept]);
  assert(a.remotePeer.equals(bob.id));
  assertEquals(a.remoteStaticKey, bob.key.publicKey);
  a.abort();
  b.abort();
});

Deno.test("a dialed address without /p2p/ is a BAD_ADDRESS: nothing is sent, the connection is aborted", async () => {
  const { alice, trusted } = validators();
  const { metrics, count } = observed();
  for (const dialedAddr of [undefined, Multiaddr.parse("/memory/2")]) {
    const { a, b, aToB } = recordingPair();
    const err = await assertRejectsCode(
      validatorNoise(alice.key, { trustedPeers: trusted, metrics })(
        a,
        upgradeContext("dialer", undefined, dialedAddr),
      ),
      "BAD_ADDRESS",
    );
    assert(err.message.includes("peer id"), err.message);
    assertEquals(aToB.length, 0, `${dialedAddr}: nothing was written`);
    await assertRejectsCode(b.read(), "CONNECTION_RESET");
  }
  assertEquals(count("rejected", { reason: "bad_address" }), 2);
});

Deno.test("a peer not in the trusted set is refused with UNAUTHORIZED on the dialer, before anything is sent", async () => {
  const { alice, outsider, trusted } = validators();
  const { metrics, count } = observed();
  const { a, b, aToB } = recordingPair();
  const err = await assertRejectsCode(
    validatorNoise(alice.key, { trustedPeers: trusted, metrics })(
      a,
      upgradeContext("dialer", undefined, addrOf(outsider)),
    ),
    "UNAUTHORIZED",
  );
  assert(err.message.includes(outsider.id.toString()), err.message);
  assertEquals(aToB.length, 0, "nothing was written");
  await assertRejectsCode(b.read(), "CONNECTION_RESET");
  assertEquals(count("rejected", { reason: "unauthorized" }), 1);
  assertEquals(count("handshakes", { role: "dialer" }), 0);
});

// ---- who may connect ----

Deno.test("a dialer with the wrong responder key fails the handshake", async () => {
  const { alice, bob, outsider, trusted } = validators();
  // The dialer believes bob's key is the outsider's.
  const mistaken = new TrustedPeerSet([[alice.key.publicKey, alice.id], [
    outsider.key.publicKey,
    bob.id,
  ]]);
  const { dial, accept } = handshake(
    { key: alice.key, options: { trustedPeers: mistaken } },
    { key: bob.key, options: { trustedPeers: trusted } },
    addrOf(bob),
  );
  await assertRejectsCode(accept, "HANDSHAKE_FAILED");
  await assertRejectsCode(dial, "HANDSHAKE_FAILED");
});

/** A backend that counts DH operations, to see which ones a refusal skipped. */
function countingBackend(): { backend: CryptoBackend; dhCalls: () => number } {
  const inner = getCryptoBackend();
  let calls = 0;
  const backend: CryptoBackend = {
    name: inner.name,
    dh: {
      name: inner.dh.name,
      dhLen: inner.dh.dhLen,
      generateKeyPair: () => inner.dh.generateKeyPair(),
      keyPairFromPrivate: (key) => inner.dh.keyPairFromPrivate(key),
      dh(privateKey, publicKey) {
        calls++;
        return inner.dh.dh(privateKey, publicKey);
      },
    },
    cipher: (name) => inner.cipher(name),
    hash: (name) => inner.hash(name),
  };
  return { backend, dhCalls: () => calls };
}

Deno.test("an unknown dialer is refused with UNAUTHORIZED right after es, before the ss DH", async () => {
  const { bob, outsider, trusted } = validators();
  const counting = countingBackend();
  const { metrics, count, rejections, logger, logs } = observed();
  // The outsider knows bob's key; bob does not know the outsider's.
  const outsiderView = new TrustedPeerSet([[bob.key.publicKey, bob.id]]);
  const { dial, accept } = handshake(
    { key: outsider.key, options: { trustedPeers: outsiderView } },
    {
      key: bob.key,
      options: { trustedPeers: trusted, backend: counting.backend, metrics, logger },
    },
    addrOf(bob),
  );
  const err = await assertRejectsCode(accept, "UNAUTHORIZED");
  assert(err.message.includes("not trusted"), err.message);
  assertEquals(counting.dhCalls(), 1, "only es was computed: no ss, no ee, no se");
  assertEquals(rejections(), { unknown_peer: 1 });
  // Logged with the refused key.
  const keyHex = Array.from(outsider.key.publicKey, (b) => b.toString(16).padStart(2, "0")).join(
    "",
  );
  assertEquals(logs.map((l) => [l.level, l.reason, l.staticKey]), [[
    "warn",
    "unknown_peer",
    keyHex,
  ]]);
  assertEquals(count("handshakes", { role: "listener" }), 0);
  await assertRejectsCode(dial, "HANDSHAKE_FAILED");
});

Deno.test("the trusted set is read live: a key removed is refused by the next handshake", async () => {
  const { alice, bob, trusted } = validators();
  const { logger } = observed();
  const run = () =>
    handshake(
      { key: alice.key, options: { trustedPeers: trusted, logger } },
      { key: bob.key, options: { trustedPeers: trusted, logger } },
      addrOf(bob),
    );
  const first = run();
  const [a, b] = await Promise.all([first.dial, first.accept]);
  a.abort();
  b.abort();
  // The responder no longer trusts the dialer.
  trusted.delete(alice.key.publicKey);
  const second = run();
  await assertRejectsCode(second.accept, "UNAUTHORIZED");
  await assertRejectsCode(second.dial, "HANDSHAKE_FAILED");
  // The dialer no longer trusts the responder: it refuses to dial it at all.
  trusted.set(alice.key.publicKey, alice.id);
  trusted.delete(bob.key.publicKey);
  const third = run();
  await assertRejectsCode(third.dial, "UNAUTHORIZED");
  await assertRejectsCode(third.accept, "HANDSHAKE_FAILED");
  // A new epoch's set, as a whole: both back in, and it works again.
  trusted.replace([[alice.key.publicKey, alice.id], [bob.key.publicKey, bob.id]]);
  const fourth = run();
  const [c, d] = await Promise.all([fourth.dial, fourth.accept]);
  assert(d.remotePeer.equals(alice.id));
  c.abort();
  d.abort();
});

Deno.test("TrustedPeerSet: static key <-> peer id, one key per peer, checked keys", () => {
  const alice = validator(), bob = validator();
  const set = new TrustedPeerSet([[alice.key.publicKey, alice.id]]);
  assertEquals(set.size, 1);
  assert(set.get(alice.key.publicKey)?.equals(alice.id));
  assertEquals(set.staticKeyOf(alice.id), alice.key.publicKey);
  assertEquals(set.get(bob.key.publicKey), undefined);
  assertEquals(set.staticKeyOf(bob.id), undefined);
  // Alice under a new key: the old one is forgotten.
  const rotated = dh.generateKeyPair().publicKey;
  set.set(rotated, alice.id);
  assertEquals(set.size, 1);
  assertEquals(set.get(alice.key.publicKey), undefined);
  assertEquals(set.staticKeyOf(alice.id), rotated);
  // The set keeps its own copy of a key.
  const key = bob.key.publicKey.slice();
  set.set(key, bob.id);
  key.fill(0);
  assertEquals(set.staticKeyOf(bob.id), bob.key.publicKey);
  assertEquals(
    [...set.entries()].map(([k, id]) => [k, id.toString()]),
    [[rotated, alice.id.toString()], [bob.key.publicKey, bob.id.toString()]],
  );
  assert(set.delete(rotated));
  assert(!set.delete(rotated));
  assertEquals(set.staticKeyOf(alice.id), undefined);
  assertThrows(() => set.set(new Uint8Array(31), alice.id), RangeError);
  // replace() checks every key before it touches the set.
  assertThrows(() => set.replace([[new Uint8Array(33), alice.id]]), RangeError);
  assertEquals(set.size, 1);
});

// ---- replays and clocks ----

Deno.test("a replayed first message is refused with UNAUTHORIZED (reason replay)", async () => {
  const { alice, bob, trusted } = validators();
  const { metrics, rejections, logger } = observed();
  const responder = validatorNoise(bob.key, { trustedPeers: trusted, metrics, logger });
  const tap = recordingPair();
  const [a, b] = await Promise.all([
    validatorNoise(alice.key, { trustedPeers: trusted })(
      tap.a,
      upgradeContext("dialer", undefined, addrOf(bob)),
    ),
    responder(tap.b, upgradeContext("listener")),
  ]);
  a.abort();
  b.abort();
  assertEquals(tap.aToB.length, 1, "the dialer wrote one message");
  const captured = tap.aToB[0];
  assertEquals(captured.length, 2 + 104, "the dialer sent exactly one 104-byte message");

  const [attacker, victim] = memoryPair();
  const accepting = responder(victim, upgradeContext("listener"));
  await attacker.write(captured);
  const err = await assertRejectsCode(accepting, "UNAUTHORIZED");
  assert(err.message.includes("not newer"), err.message);
  assertEquals(rejections(), { replay: 1 });
  // Refused before answering: the attacker's end is reset without a message 2.
  await assertRejectsCode(attacker.read(), "CONNECTION_RESET");
});

Deno.test("two dials in the same millisecond are not mistaken for a replay", async () => {
  const { alice, bob, trusted } = validators();
  const frozen = () => 1_700_000_000_000;
  const dialer = validatorNoise(alice.key, { trustedPeers: trusted, clock: frozen });
  const responder = validatorNoise(bob.key, {
    trustedPeers: trusted,
    clock: frozen,
    replayGuard: new ReplayGuard(),
  });
  for (let i = 0; i < 3; i++) {
    const [x, y] = memoryPair();
    const [a, b] = await Promise.all([
      dialer(x, upgradeContext("dialer", undefined, addrOf(bob))),
      responder(y, upgradeContext("listener")),
    ]);
    a.abort();
    b.abort();
  }
});

Deno.test("a timestamp outside the clock window is refused with UNAUTHORIZED (reason clock_skew)", async () => {
  for (const offset of [-120_000, +120_000]) {
    const { alice, bob, trusted } = validators();
    const { metrics, rejections, logger } = observed();
    const { dial, accept } = handshake(
      { key: alice.key, options: { trustedPeers: trusted, clock: () => Date.now() + offset } },
      { key: bob.key, options: { trustedPeers: trusted, maxClockSkew: 60_000, metrics, logger } },
      addrOf(bob),
    );
    const err = await assertRejectsCode(accept, "UNAUTHORIZED");
    assert(err.message.includes("off our clock"), err.message);
    assertEquals(rejections(), { clock_skew: 1 }, `offset ${offset}`);
    await assertRejectsCode(dial, "HANDSHAKE_FAILED");
  }
  // Inside the window: accepted.
  const { alice, bob, trusted } = validators();
  const { dial, accept } = handshake(
    { key: alice.key, options: { trustedPeers: trusted, clock: () => Date.now() - 30_000 } },
    { key: bob.key, options: { trustedPeers: trusted, maxClockSkew: 60_000 } },
    addrOf(bob),
  );
  const [a, b] = await Promise.all([dial, accept]);
  a.abort();
  b.abort();
});

Deno.test("the prologue binds the network: a handshake across networks fails", async () => {
  const { alice, bob, trusted } = validators();
  const { dial, accept } = handshake(
    { key: alice.key, options: { trustedPeers: trusted, networkId: "testnet" } },
    { key: bob.key, options: { trustedPeers: trusted, networkId: "mainnet" } },
    addrOf(bob),
  );
  await assertRejectsCode(accept, "HANDSHAKE_FAILED");
  await assertRejectsCode(dial, "HANDSHAKE_FAILED");
});

// ---- metrics ----

Deno.test("handshakes and refusals are counted as validator_network_noise_* with the network label of the registry given", async () => {
  const { alice, bob, outsider, trusted } = validators();
  const { registry, metrics, count, logger } = observed();
  const ok = handshake(
    { key: alice.key, options: { trustedPeers: trusted, metrics } },
    { key: bob.key, options: { trustedPeers: trusted, metrics } },
    addrOf(bob),
  );
  const [a, b] = await Promise.all([ok.dial, ok.accept]);
  a.abort();
  b.abort();
  const refused = handshake(
    {
      key: outsider.key,
      options: { trustedPeers: new TrustedPeerSet([[bob.key.publicKey, bob.id]]) },
    },
    { key: bob.key, options: { trustedPeers: trusted, metrics, logger } },
    addrOf(bob),
  );
  await assertRejectsCode(refused.accept, "UNAUTHORIZED");
  await refused.dial.catch(() => {});
  assertEquals(count("handshakes", { role: "dialer" }), 1);
  assertEquals(count("handshakes", { role: "listener" }), 1);
  assertEquals(count("rejected", { reason: "unknown_peer" }), 1);
  const text = registry.render();
  for (
    const line of [
      'validator_network_noise_handshakes_total{network="test",profile="validator",role="dialer"} 1',
      'validator_network_noise_handshakes_total{network="test",profile="validator",role="listener"} 1',
      'validator_network_noise_rejected_total{network="test",profile="validator",reason="unknown_peer"} 1',
    ]
  ) {
    assert(text.includes(line), `missing ${line} in\n${text}`);
  }
});

// ---- malformed messages ----

/** Message 1 of a real dialer, captured, for tampering. */
async function capturedMessage1(
  alice: Validator,
  bob: Validator,
  trusted: TrustedPeerSet,
): Promise<Uint8Array> {
  const [x, y] = memoryPair();
  validatorNoise(alice.key, { trustedPeers: trusted })(
    x,
    upgradeContext("dialer", undefined, addrOf(bob)),
  ).catch(() => {});
  const message = await new ByteReader(y).readExactly(2 + 104);
  x.abort();
  return message.slice();
}

Deno.test("tampered, truncated, oversized and out-of-order first messages fail with HANDSHAKE_FAILED", async () => {
  const { alice, bob, trusted } = validators();
  const message1 = await capturedMessage1(alice, bob, trusted);
  assertEquals([message1[0], message1[1]], [0, 104]);
  const flipped = (at: number) => {
    const m = message1.slice();
    m[at] ^= 0x01;
    return m;
  };
  const cases: [string, Uint8Array, boolean][] = [
    ["bit flip in e", flipped(2 + 5), false],
    ["bit flip in the encrypted static key", flipped(2 + 32 + 10), false],
    ["bit flip in the static key's tag", flipped(2 + 32 + 40), false],
    ["bit flip in the encrypted timestamp", flipped(2 + 80 + 3), false],
    ["truncated, then the stream ends", message1.subarray(0, 60), true],
    ["oversized length prefix", new Uint8Array([0, 105, ...message1.subarray(2), 0]), false],
    [
      "a 48-byte message 2 where message 1 belongs",
      new Uint8Array([0, 48, ...new Uint8Array(48)]),
      false,
    ],
    ["the largest possible length", new Uint8Array([0xff, 0xff]), false],
  ];
  for (const [what, bytes, thenClose] of cases) {
    const [x, y] = memoryPair();
    const accepting = validatorNoise(bob.key, { trustedPeers: trusted, handshakeTimeout: 1_000 })(
      y,
      upgradeContext("listener"),
    );
    await x.write(bytes);
    if (thenClose) await x.closeWrite();
    const err = await assertRejectsCode(accepting, "HANDSHAKE_FAILED").catch((e) => {
      throw new Error(`${what}: ${e.message}`);
    });
    assert(!NetworkError.is(err, "TIMEOUT"), what);
    x.abort();
  }
});

Deno.test("a tampered or unexpected reply fails the dialer with HANDSHAKE_FAILED", async () => {
  const { alice, bob, trusted } = validators();
  for (
    const [what, reply] of [
      ["random 48 bytes", new Uint8Array([0, 48, ...crypto.getRandomValues(new Uint8Array(48))])],
      ["a 104-byte message", new Uint8Array([0, 104, ...new Uint8Array(104)])],
    ] as const
  ) {
    const [x, y] = memoryPair();
    const dialing = validatorNoise(alice.key, { trustedPeers: trusted })(
      x,
      upgradeContext("dialer", undefined, addrOf(bob)),
    );
    await new ByteReader(y).readExactly(2 + 104); // message 1
    await y.write(reply);
    await assertRejectsCode(dialing, "HANDSHAKE_FAILED").catch((e) => {
      throw new Error(`${what}: ${e.message}`);
    });
  }
});

Deno.test("a dialer that goes silent mid-handshake: TIMEOUT, and its connection is reset", async () => {
  const { bob, trusted } = validators();
  const { metrics, rejections } = observed();
  const [x, y] = memoryPair();
  const started = performance.now();
  const accepting = validatorNoise(bob.key, {
    trustedPeers: trusted,
    handshakeTimeout: 150,
    metrics,
  })(
    y,
    upgradeContext("listener"),
  );
  await x.write(new Uint8Array([0, 104])); // a length, then silence
  await assertRejectsCode(accepting, "TIMEOUT");
  const elapsed = performance.now() - started;
  assert(elapsed >= 140 && elapsed < 2_000, `timed out after ${elapsed} ms`);
  assertEquals(rejections(), { timeout: 1 });
  await assertRejectsCode(x.read(), "CONNECTION_RESET");
});

Deno.test("a responder that never answers: TIMEOUT on the dialer, and its connection is reset", async () => {
  const { alice, bob, trusted } = validators();
  const [x, y] = memoryPair();
  const dialing = validatorNoise(alice.key, { trustedPeers: trusted, handshakeTimeout: 150 })(
    x,
    upgradeContext("dialer", undefined, addrOf(bob)),
  );
  const reader = new ByteReader(y);
  await reader.readExactly(2 + 104); // message 1, then silence
  await assertRejectsCode(dialing, "TIMEOUT");
  await assertRejectsCode(reader.readExactly(1), "CONNECTION_RESET");
});

Deno.test("the upgrade context's signal cancels the handshake with ABORTED", async () => {
  const { bob, trusted } = validators();
  const [, y] = memoryPair();
  const controller = new AbortController();
  const accepting = validatorNoise(bob.key, { trustedPeers: trusted })(
    y,
    upgradeContext("listener", controller.signal),
  );
  controller.abort(new Error("shutting down"));
  await assertRejectsCode(accepting, "ABORTED");
});

Deno.test("the replay memory is bounded, and forgetting a key never re-opens its replays", () => {
  const guard = new ReplayGuard({ capacity: 2 });
  const [k1, k2, k3] = [1, 2, 3].map((n) => new Uint8Array(32).fill(n));
  assert(guard.checkAndAccept(k1, 100));
  assert(guard.checkAndAccept(k2, 200));
  assert(!guard.checkAndAccept(k2, 200), "the same timestamp again is a replay");
  assert(guard.checkAndAccept(k3, 300));
  assertEquals(guard.size, 2, "k1, accepted longest ago, was forgotten");
  assert(!guard.isFresh(k1, 100), "k1's old timestamp stays refused after it was forgotten");
  assert(guard.isFresh(k1, 101));
  assert(!guard.isFresh(new Uint8Array(32).fill(9), 50), "nothing below the floor passes");
});
