/**
 * The validator handshake: Noise_IK_25519_ChaChaPoly_SHA256 where the dialer
 * knows the responder's static key, the responder admits only trusted static
 * keys (refusing an unknown one before the `ss` DH), and the dialer's
 * timestamp defeats replays.
 */

import { MemoryNetwork } from "../memsocket/memory_network.ts";
import { MemoryTransport } from "../memsocket/memory_transport.ts";
import { defaultRegistry } from "../netcore/metrics.ts";
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
import { andThen } from "../netcore/transport/and_then.ts";
import type { Connection } from "../netcore/transport/connection.ts";
import { TcpTransport } from "../netcore/transport/tcp_transport.ts";
import type { Transport } from "../netcore/transport/transport.ts";
import { assert, assertEquals, assertRejectsCode } from "./_assert.ts";
import { memoryPair, upgradeContext } from "./_pair.ts";

const encoder = new TextEncoder();
const decoder = new TextDecoder();
const dh = getCryptoBackend().dh;

function rejections(reason: string): number {
  return defaultRegistry.find("network_noise_rejected_total")
    ?.get({ profile: "validator", reason }) ?? 0;
}

/** Two validators that trust each other, and an outsider. */
function validators() {
  const alice = dh.generateKeyPair();
  const bob = dh.generateKeyPair();
  const outsider = dh.generateKeyPair();
  const trusted = new TrustedPeerSet([[alice.publicKey, "alice"], [bob.publicKey, "bob"]]);
  return { alice, bob, outsider, trusted };
}

/** Runs a dialer and a responder upgrade on the two ends of a fresh pair. */
function handshake(
  dialer: { key: KeyPair; options: ValidatorNoiseOptions },
  responder: { key: KeyPair; options: ValidatorNoiseOptions },
  pair: [Connection, Connection] = memoryPair(),
) {
  const [a, b] = pair;
  return {
    dial: validatorNoise(dialer.key, dialer.options)(a, upgradeContext("dialer")),
    accept: validatorNoise(responder.key, responder.options)(b, upgradeContext("listener")),
    raw: pair,
  };
}

async function exchange(a: Connection, b: Connection): Promise<void> {
  const aw = a.writable.getWriter();
  await aw.write(encoder.encode("proposal"));
  const br = b.readable.getReader();
  assertEquals(decoder.decode((await br.read()).value), "proposal");
  const bw = b.writable.getWriter();
  await bw.write(encoder.encode("vote"));
  const ar = a.readable.getReader();
  assertEquals(decoder.decode((await ar.read()).value), "vote");
  for (const lock of [aw, bw, ar, br]) lock.releaseLock();
}

// ---- over real transports ----

async function overTransport(raw: () => Transport, listenAddr: string): Promise<void> {
  const { alice, bob, trusted } = validators();
  const dialer = andThen(
    raw(),
    validatorNoise(alice, { trustedPeers: trusted, remoteStaticKey: bob.publicKey }),
  );
  const listening = andThen(raw(), validatorNoise(bob, { trustedPeers: trusted }));
  const listener = await listening.listen(Multiaddr.parse(listenAddr));
  const accepted = listener[Symbol.asyncIterator]().next();
  const a = await dialer.dial(listener.addr);
  const b = (await accepted).value as ValidatorNoiseConnection;
  await listener.close();
  assertEquals(a.remotePeer, "bob");
  assertEquals(b.remotePeer, "alice");
  assertEquals(a.remoteStaticKey, bob.publicKey);
  assertEquals(b.remoteStaticKey, alice.publicKey);
  assertEquals(a.handshakeHash, b.handshakeHash);
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

Deno.test("the dialer's responder key may be looked up by the dialed address", async () => {
  const { alice, bob, trusted } = validators();
  const keys = new Map([["/memory/2", bob.publicKey]]);
  const { dial, accept } = handshake(
    {
      key: alice,
      options: { trustedPeers: trusted, remoteStaticKey: (addr) => keys.get(addr.toString()) },
    },
    { key: bob, options: { trustedPeers: trusted } },
  );
  const [a, b] = await Promise.all([dial, accept]);
  assertEquals(a.remotePeer, "bob");
  a.abort();
  b.abort();
  // No key known for the address: the dial fails before sending anything.
  const [raw] = memoryPair();
  await assertRejectsCode(
    validatorNoise(alice, { trustedPeers: trusted, remoteStaticKey: () => undefined })(
      raw,
      upgradeContext("dialer"),
    ),
    "HANDSHAKE_FAILED",
  );
});

// ---- who may connect ----

Deno.test("a dialer with the wrong responder key fails the handshake", async () => {
  const { alice, bob, outsider, trusted } = validators();
  const { dial, accept } = handshake(
    { key: alice, options: { trustedPeers: trusted, remoteStaticKey: outsider.publicKey } },
    { key: bob, options: { trustedPeers: trusted } },
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
  const before = rejections("unknown_peer");
  const { dial, accept } = handshake(
    { key: outsider, options: { mode: "accept-any-dialer", remoteStaticKey: bob.publicKey } },
    { key: bob, options: { trustedPeers: trusted, backend: counting.backend } },
  );
  const err = await assertRejectsCode(accept, "UNAUTHORIZED");
  assert(err.message.includes("not trusted"), err.message);
  assertEquals(counting.dhCalls(), 1, "only es was computed: no ss, no ee, no se");
  assertEquals(rejections("unknown_peer"), before + 1);
  await assertRejectsCode(dial, "HANDSHAKE_FAILED");
});

Deno.test("the trusted set is read live: a key removed is refused by the next handshake", async () => {
  const { alice, bob, trusted } = validators();
  const first = handshake(
    { key: alice, options: { trustedPeers: trusted, remoteStaticKey: bob.publicKey } },
    { key: bob, options: { trustedPeers: trusted } },
  );
  const [a, b] = await Promise.all([first.dial, first.accept]);
  a.abort();
  b.abort();
  trusted.delete(alice.publicKey);
  const second = handshake(
    { key: alice, options: { trustedPeers: trusted, remoteStaticKey: bob.publicKey } },
    { key: bob, options: { trustedPeers: trusted } },
  );
  await assertRejectsCode(second.accept, "UNAUTHORIZED");
  await assertRejectsCode(second.dial, "HANDSHAKE_FAILED");
});

Deno.test('"accept-any-dialer" mode admits an unknown key (for public full nodes)', async () => {
  const { bob, outsider, trusted } = validators();
  const { dial, accept } = handshake(
    { key: outsider, options: { mode: "accept-any-dialer", remoteStaticKey: bob.publicKey } },
    { key: bob, options: { mode: "accept-any-dialer", trustedPeers: trusted } },
  );
  const [a, b] = await Promise.all([dial, accept]);
  assertEquals(b.remotePeer, undefined, "an anonymous dialer has no name");
  assertEquals(b.remoteStaticKey, outsider.publicKey);
  await exchange(a, b);
  a.abort();
  b.abort();
});

Deno.test('"mutual" mode without a trusted set is a configuration error', () => {
  let threw = false;
  try {
    validatorNoise(dh.generateKeyPair());
  } catch (err) {
    threw = err instanceof TypeError;
  }
  assert(threw);
});

// ---- replays and clocks ----

/** A pair whose dialer-to-responder bytes are also recorded. */
function tappedPair(): { pair: [Connection, Connection]; sent: Uint8Array[] } {
  const [dialerEnd, relayA] = memoryPair();
  const [relayB, responderEnd] = memoryPair();
  const sent: Uint8Array[] = [];
  relayA.readable.pipeThrough(
    new TransformStream<Uint8Array, Uint8Array>({
      transform(chunk, controller) {
        sent.push(chunk.slice());
        controller.enqueue(chunk);
      },
    }),
  ).pipeTo(relayB.writable).catch(() => relayA.abort());
  relayB.readable.pipeTo(relayA.writable).catch(() => relayB.abort());
  return { pair: [dialerEnd, responderEnd], sent };
}

Deno.test("a replayed first message is refused with UNAUTHORIZED (reason replay)", async () => {
  const { alice, bob, trusted } = validators();
  const responder = validatorNoise(bob, { trustedPeers: trusted });
  const tap = tappedPair();
  const [a, b] = await Promise.all([
    validatorNoise(alice, { trustedPeers: trusted, remoteStaticKey: bob.publicKey })(
      tap.pair[0],
      upgradeContext("dialer"),
    ),
    responder(tap.pair[1], upgradeContext("listener")),
  ]);
  a.abort();
  b.abort();
  const captured = new Uint8Array(tap.sent.reduce((n, c) => n + c.length, 0));
  let offset = 0;
  for (const c of tap.sent) captured.set(c, offset), offset += c.length;
  assertEquals(captured.length, 2 + 104, "the dialer sent exactly one 104-byte message");

  const before = rejections("replay");
  const [attacker, victim] = memoryPair();
  const accepting = responder(victim, upgradeContext("listener"));
  await attacker.writable.getWriter().write(captured);
  const err = await assertRejectsCode(accepting, "UNAUTHORIZED");
  assert(err.message.includes("not newer"), err.message);
  assertEquals(rejections("replay"), before + 1);
  // Refused before answering: the attacker's end is reset without a message 2.
  await assertRejectsCode(attacker.readable.getReader().read(), "CONNECTION_RESET");
});

Deno.test("two dials in the same millisecond are not mistaken for a replay", async () => {
  const { alice, bob, trusted } = validators();
  const frozen = () => 1_700_000_000_000;
  const dialer = validatorNoise(alice, {
    trustedPeers: trusted,
    remoteStaticKey: bob.publicKey,
    clock: frozen,
  });
  const responder = validatorNoise(bob, {
    trustedPeers: trusted,
    clock: frozen,
    replayGuard: new ReplayGuard(),
  });
  for (let i = 0; i < 3; i++) {
    const [x, y] = memoryPair();
    const [a, b] = await Promise.all([
      dialer(x, upgradeContext("dialer")),
      responder(y, upgradeContext("listener")),
    ]);
    a.abort();
    b.abort();
  }
});

Deno.test("a timestamp outside the clock window is refused with UNAUTHORIZED (reason clock_skew)", async () => {
  for (const offset of [-120_000, +120_000]) {
    const { alice, bob, trusted } = validators();
    const before = rejections("clock_skew");
    const { dial, accept } = handshake(
      {
        key: alice,
        options: {
          trustedPeers: trusted,
          remoteStaticKey: bob.publicKey,
          clock: () => Date.now() + offset,
        },
      },
      { key: bob, options: { trustedPeers: trusted, maxClockSkew: 60_000 } },
    );
    const err = await assertRejectsCode(accept, "UNAUTHORIZED");
    assert(err.message.includes("off our clock"), err.message);
    assertEquals(rejections("clock_skew"), before + 1);
    await assertRejectsCode(dial, "HANDSHAKE_FAILED");
  }
  // Inside the window: accepted.
  const { alice, bob, trusted } = validators();
  const { dial, accept } = handshake(
    {
      key: alice,
      options: {
        trustedPeers: trusted,
        remoteStaticKey: bob.publicKey,
        clock: () => Date.now() - 30_000,
      },
    },
    { key: bob, options: { trustedPeers: trusted, maxClockSkew: 60_000 } },
  );
  const [a, b] = await Promise.all([dial, accept]);
  a.abort();
  b.abort();
});

Deno.test("the prologue binds the network: a handshake across networks fails", async () => {
  const { alice, bob, trusted } = validators();
  const { dial, accept } = handshake(
    {
      key: alice,
      options: { trustedPeers: trusted, remoteStaticKey: bob.publicKey, networkId: "testnet" },
    },
    { key: bob, options: { trustedPeers: trusted, networkId: "mainnet" } },
  );
  await assertRejectsCode(accept, "HANDSHAKE_FAILED");
  await assertRejectsCode(dial, "HANDSHAKE_FAILED");
});

// ---- malformed messages ----

/** Message 1 of a real dialer, captured, for tampering. */
async function capturedMessage1(
  alice: KeyPair,
  bob: KeyPair,
  trusted: TrustedPeerSet,
): Promise<Uint8Array> {
  const [x, y] = memoryPair();
  validatorNoise(alice, { trustedPeers: trusted, remoteStaticKey: bob.publicKey })(
    x,
    upgradeContext("dialer"),
  ).catch(() => {});
  const reader = y.readable.getReader();
  const { value } = await reader.read();
  x.abort();
  return value!.slice();
}

Deno.test("tampered, truncated, oversized and out-of-order first messages fail with HANDSHAKE_FAILED", async () => {
  const { alice, bob, trusted } = validators();
  const message1 = await capturedMessage1(alice, bob, trusted);
  assertEquals(message1.length, 106);
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
    const accepting = validatorNoise(bob, { trustedPeers: trusted, handshakeTimeout: 1_000 })(
      y,
      upgradeContext("listener"),
    );
    const writer = x.writable.getWriter();
    await writer.write(bytes);
    if (thenClose) await writer.close();
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
    const dialing = validatorNoise(alice, {
      trustedPeers: trusted,
      remoteStaticKey: bob.publicKey,
    })(x, upgradeContext("dialer"));
    const reader = y.readable.getReader();
    await reader.read(); // message 1
    await y.writable.getWriter().write(reply);
    await assertRejectsCode(dialing, "HANDSHAKE_FAILED").catch((e) => {
      throw new Error(`${what}: ${e.message}`);
    });
  }
});

Deno.test("a dialer that goes silent mid-handshake: TIMEOUT, and its connection is reset", async () => {
  const { bob, trusted } = validators();
  const [x, y] = memoryPair();
  const started = performance.now();
  const accepting = validatorNoise(bob, { trustedPeers: trusted, handshakeTimeout: 150 })(
    y,
    upgradeContext("listener"),
  );
  await x.writable.getWriter().write(new Uint8Array([0, 104])); // a length, then silence
  await assertRejectsCode(accepting, "TIMEOUT");
  const elapsed = performance.now() - started;
  assert(elapsed >= 140 && elapsed < 2_000, `timed out after ${elapsed} ms`);
  await assertRejectsCode(x.readable.getReader().read(), "CONNECTION_RESET");
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
