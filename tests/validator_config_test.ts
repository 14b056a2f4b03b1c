/**
 * Configuration of a `ValidatorNetwork`, as the issue specifies it: every
 * refusal is a `NetworkError` with code `BAD_CONFIG` whose message starts
 * with the path of the field at fault (`networkId`, `listen[0]`,
 * `validators[1].noiseKey`, `limits.maxMessageSize`, `seeds[0]`, ...), thrown
 * by the constructor (or `updateValidatorSet`, `register`) before anything
 * runs. Key files: `ValidatorKeys.toJSON` / `fromJSON` round trip, and what
 * `fromJSON` refuses (`key file: ...`).
 */

import {
  LIMIT_DEFAULTS,
  MemoryNetwork,
  NetworkError,
  TIMEOUT_DEFAULTS,
  type ValidatorInfo,
  ValidatorKeys,
  ValidatorNetwork,
  type ValidatorNetworkOptions,
} from "../mod.ts";
import { assert, assertEquals, assertRejectsCode, assertThrowsCode } from "./_assert.ts";
import { quiet } from "./_validators.ts";

const me = ValidatorKeys.generate();
const other = ValidatorKeys.generate();
const third = ValidatorKeys.generate();
const memory = new MemoryNetwork();

/** A valid configuration: me and another validator. */
function base(): ValidatorNetworkOptions {
  return {
    keys: me,
    networkId: "testnet",
    listen: ["/memory/1"],
    validators: [me.info(["/memory/1"]), other.info(["/memory/2"])],
    memory,
    logger: quiet,
  };
}

/** Fails unless building a network with `changes` throws BAD_CONFIG starting with `path`. */
function assertBadConfig(changes: Record<string, unknown>, path: string, what: string): void {
  const options = { ...base(), ...changes } as ValidatorNetworkOptions;
  const err = assertThrowsCode(() => new ValidatorNetwork(options), "BAD_CONFIG", what);
  assert(
    err.message.startsWith(path),
    `${what}: the message names ${JSON.stringify(path)} first: ${JSON.stringify(err.message)}`,
  );
}

/** `base()`'s validators with `entry` (raw JSON) in place of the other validator's. */
function withEntry(entry: unknown): Record<string, unknown> {
  return { validators: [me.info(["/memory/1"]), entry] };
}

const good = other.info(["/memory/2"]);

Deno.test("config: a valid configuration builds, with the defaults filled in", async () => {
  await using net = new ValidatorNetwork(base());
  assertEquals(net.networkId, "testnet");
  assertEquals(net.profile, "validator");
  assertEquals(net.peerId.toString(), me.peerId.toString());
  assertEquals({ ...net.limits }, { ...LIMIT_DEFAULTS });
  assertEquals({ ...net.timeouts }, { ...TIMEOUT_DEFAULTS });
  assertEquals(net.validators.map(String).sort(), [me, other].map((k) => `${k.peerId}`).sort());
  // Given values replace the defaults; `dialGrace` may be 0.
  await using tuned = new ValidatorNetwork({
    ...base(),
    limits: { maxMessageSize: 1024, outboundQueue: 8 },
    timeouts: { rpc: 500, dialGrace: 0 },
    seeds: [`/memory/3/p2p/${other.peerId}`],
  });
  assertEquals(tuned.limits.maxMessageSize, 1024);
  assertEquals(tuned.limits.outboundQueue, 8);
  assertEquals(tuned.limits.inboundQueue, LIMIT_DEFAULTS.inboundQueue);
  assertEquals([tuned.timeouts.rpc, tuned.timeouts.dialGrace], [500, 0]);
  // Our own entry may be left out, and addresses may be empty (discovery finds them).
  await using minimal = new ValidatorNetwork({ ...base(), validators: [other.info()] });
  assertEquals(minimal.validators.length, 1);
  // Nothing runs before start.
  assertEquals(net.peers(), []);
  assertEquals(net.listenAddrs, []);
});

Deno.test("config: networkId, keys, listen and profile", () => {
  assertBadConfig({ networkId: "" }, "networkId", "empty networkId");
  assertBadConfig({ networkId: undefined }, "networkId", "no networkId");
  assertBadConfig({ networkId: 7 }, "networkId", "a number as networkId");
  assertBadConfig({ keys: undefined }, "keys", "no keys");
  assertBadConfig({ keys: { peerId: me.peerId } }, "keys", "not ValidatorKeys");
  assertBadConfig({ listen: ["/ip4/127.0.0.1/tcp/99999"] }, "listen[0]", "a port out of range");
  assertBadConfig({ listen: ["/memory/1", "not a multiaddr"] }, "listen[1]", "not a multiaddr");
  assertBadConfig({ listen: ["/ip4/1.2.3/tcp/1"] }, "listen[0]", "a bad IPv4 address");
  assertBadConfig({ profile: "tls" }, "profile", "an unknown profile");
  const err = assertThrowsCode(
    () => new ValidatorNetwork(null as unknown as ValidatorNetworkOptions),
    "BAD_CONFIG",
  );
  assert(err.message.startsWith("options"), err.message);
});

Deno.test("config: each field of a validator entry is checked", async () => {
  assertBadConfig({ validators: "all of them" }, "validators", "not an array");
  assertBadConfig(withEntry("12D3KooW..."), "validators[1]", "an entry that is not an object");
  assertBadConfig(withEntry(null), "validators[1]", "a null entry");
  // peerId
  assertBadConfig(
    withEntry({ ...good, peerId: "12D3KooWnot-a-peer-id" }),
    "validators[1].peerId",
    "bad peerId",
  );
  assertBadConfig(withEntry({ ...good, peerId: "" }), "validators[1].peerId", "empty peerId");
  assertBadConfig(withEntry({ ...good, peerId: 42 }), "validators[1].peerId", "a number as peerId");
  assertBadConfig(
    withEntry({ noiseKey: good.noiseKey, addrs: [] }),
    "validators[1].peerId",
    "no peerId",
  );
  // noiseKey
  const shortKey = good.noiseKey.slice(0, 62);
  assertBadConfig(withEntry({ ...good, noiseKey: shortKey }), "validators[1].noiseKey", "31 bytes");
  assertBadConfig(
    withEntry({ ...good, noiseKey: good.noiseKey + "00" }),
    "validators[1].noiseKey",
    "33 bytes",
  );
  assertBadConfig(
    withEntry({ ...good, noiseKey: "zz".repeat(32) }),
    "validators[1].noiseKey",
    "not hex",
  );
  assertBadConfig(
    withEntry({ ...good, noiseKey: good.noiseKey.slice(1) }),
    "validators[1].noiseKey",
    "odd length",
  );
  assertBadConfig(withEntry({ ...good, noiseKey: "" }), "validators[1].noiseKey", "empty key");
  assertBadConfig(
    withEntry({ peerId: good.peerId, addrs: [] }),
    "validators[1].noiseKey",
    "no key",
  );
  // addrs
  assertBadConfig(
    withEntry({ ...good, addrs: ["/memory/2", "/ip4/10.0.0.1/udp/1"] }),
    "validators[1].addrs[1]",
    "udp",
  );
  assertBadConfig(
    withEntry({ ...good, addrs: ["garbage"] }),
    "validators[1].addrs[0]",
    "not a multiaddr",
  );
  assertBadConfig(
    withEntry({ ...good, addrs: [7] }),
    "validators[1].addrs[0]",
    "a number as address",
  );
  assertBadConfig(
    withEntry({ ...good, addrs: [`/memory/2/p2p/${third.peerId}`] }),
    "validators[1].addrs[0]",
    "an address of another peer",
  );
  assertBadConfig(
    withEntry({ ...good, addrs: "/memory/2" }),
    "validators[1].addrs",
    "addrs not an array",
  );
  // Unknown fields.
  assertBadConfig(withEntry({ ...good, stake: 100 }), "validators[1].stake", "an unknown field");
  assertBadConfig(
    withEntry({ ...good, peerID: good.peerId }),
    "validators[1].peerID",
    "a misspelt field",
  );
  // Upper-case hex is a key too; an address naming the validator itself is fine.
  await using fine = new ValidatorNetwork({
    ...base(),
    ...withEntry({
      ...good,
      noiseKey: good.noiseKey.toUpperCase(),
      addrs: [`/memory/2/p2p/${other.peerId}`],
    }),
  });
  assertEquals(fine.validators.length, 2);
});

Deno.test("config: duplicates and our own entry", () => {
  assertBadConfig(
    { validators: [me.info(), other.info(["/memory/2"]), other.info(["/memory/3"])] },
    "validators[2].peerId",
    "a duplicate peer id",
  );
  assertBadConfig(
    { validators: [me.info(), other.info(), { ...third.info(), noiseKey: other.info().noiseKey }] },
    "validators[2].noiseKey",
    "a duplicate noise key",
  );
  assertBadConfig(
    { validators: [{ ...me.info(), noiseKey: third.info().noiseKey }, other.info()] },
    "validators[0].noiseKey",
    "our own entry with another key",
  );
});

Deno.test("config: limits and timeouts", () => {
  assertBadConfig(
    { limits: { maxMessageSize: 1024, maxMesageSize: 1 } },
    "limits.maxMesageSize",
    "unknown",
  );
  assertBadConfig({ limits: { outboundQueue: -1 } }, "limits.outboundQueue", "negative");
  assertBadConfig({ limits: { inboundQueue: 0 } }, "limits.inboundQueue", "zero");
  assertBadConfig(
    { limits: { maxConcurrentRpcs: 1.5 } },
    "limits.maxConcurrentRpcs",
    "not an integer",
  );
  assertBadConfig({ limits: { maxMessageSize: "64MiB" } }, "limits.maxMessageSize", "a string");
  assertBadConfig({ limits: { healthFailures: NaN } }, "limits.healthFailures", "NaN");
  assertBadConfig({ limits: { outboundBytes: Infinity } }, "limits.outboundBytes", "Infinity");
  assertBadConfig({ limits: { maxUnknownInbound: 2 ** 53 } }, "limits.maxUnknownInbound", "unsafe");
  assertBadConfig({ limits: [1, 2] }, "limits", "an array");
  assertBadConfig({ limits: 5 }, "limits", "a number");
  assertBadConfig({ timeouts: { rpcTimeout: 1_000 } }, "timeouts.rpcTimeout", "unknown");
  assertBadConfig({ timeouts: { rpc: 0 } }, "timeouts.rpc", "zero");
  assertBadConfig({ timeouts: { handshake: -5 } }, "timeouts.handshake", "negative");
  assertBadConfig({ timeouts: { backoffMax: 0.5 } }, "timeouts.backoffMax", "not an integer");
  assertBadConfig({ timeouts: { dialGrace: -1 } }, "timeouts.dialGrace", "negative grace");
  assertBadConfig({ timeouts: null }, "timeouts", "null");
  // Every limit and timeout is known.
  for (const key of Object.keys(LIMIT_DEFAULTS)) {
    assertBadConfig({ limits: { [key]: 0 } }, `limits.${key}`, `limits.${key} = 0`);
  }
  for (const key of Object.keys(TIMEOUT_DEFAULTS)) {
    if (key === "dialGrace") continue;
    assertBadConfig({ timeouts: { [key]: 0 } }, `timeouts.${key}`, `timeouts.${key} = 0`);
  }
});

Deno.test("config: seeds end in a validator's /p2p/ id", () => {
  assertBadConfig({ seeds: ["/memory/3"] }, "seeds[0]", "no /p2p/");
  assertBadConfig(
    { seeds: [`/memory/3/p2p/${other.peerId}`, `/memory/4/p2p/${third.peerId}`] },
    "seeds[1]",
    "a seed of a non-validator",
  );
  assertBadConfig({ seeds: ["/memory/x/p2p/abc"] }, "seeds[0]", "not a multiaddr");
  assertBadConfig({ seeds: "/memory/3" }, "seeds", "not an array");
});

Deno.test("config: register() refuses a protocol twice and bad options", async () => {
  await using net = new ValidatorNetwork(base());
  net.register("/app/chat/1.0.0", { kind: "direct-send" });
  const cases: [string, () => unknown, string][] = [
    ["the same protocol again", () => net.register("/app/chat/1.0.0", { kind: "rpc" }), "protocol"],
    ["no leading slash", () => net.register("app/x/1.0.0", { kind: "rpc" }), "protocol"],
    ["an unknown kind", () => net.register("/app/x/1", { kind: "pubsub" as "rpc" }), "kind"],
    [
      "an unknown priority",
      () => net.register("/app/y/1", { kind: "rpc", priority: "urgent" as "high" }),
      "priority",
    ],
    [
      "a zero maxMessageSize",
      () => net.register("/app/z/1", { kind: "rpc", maxMessageSize: 0 }),
      "maxMessageSize",
    ],
    [
      "the consensus protocol, taken by a raw handle first",
      () => {
        net.register("/validator/consensus/direct-send/1.0.0", { kind: "direct-send" });
        return net.consensus;
      },
      "protocol",
    ],
  ];
  for (const [what, fn, path] of cases) {
    const err = assertThrowsCode(fn, "BAD_CONFIG", what);
    assert(err.message.startsWith(path), `${what}: ${err.message}`);
  }
  // The typed handles are made once.
  assert(net.mempool === net.mempool);
});

Deno.test("config: an invalid validator set update is refused and changes nothing", async () => {
  await using net = new ValidatorNetwork(base());
  await net.start();
  const before = net.validators.map(String).sort();
  const bad: ValidatorInfo[] = [me.info(), { ...other.info(), noiseKey: "00" }];
  const err = await assertRejectsCode(net.updateValidatorSet(bad), "BAD_CONFIG");
  assert(err.message.startsWith("validators[1].noiseKey"), err.message);
  await assertRejectsCode(
    net.updateValidatorSet([me.info(), { ...other.info(), extra: 1 } as ValidatorInfo]),
    "BAD_CONFIG",
  );
  assertEquals(net.validators.map(String).sort(), before);
  await net.updateValidatorSet([me.info(), third.info()]);
  assertEquals(net.validators.map(String).sort(), [me, third].map((k) => `${k.peerId}`).sort());
});

Deno.test("keys: info() is a JSON-safe validator-set entry", () => {
  const info = me.info(["/ip4/127.0.0.1/tcp/7000", `/memory/5/p2p/${me.peerId}`]);
  assertEquals(info, JSON.parse(JSON.stringify(info)));
  assertEquals(info.peerId, me.peerId.toString());
  assert(/^[0-9a-f]{64}$/.test(info.noiseKey), info.noiseKey);
  assertEquals(info.addrs, ["/ip4/127.0.0.1/tcp/7000", "/memory/5"]);
  assertEquals(me.info().addrs, []);
  assertThrowsCode(() => me.info(["/ip4/127.0.0.1/tcp"]), ["BAD_ADDRESS", "BAD_CONFIG"]);
  assert(info.noiseKey !== other.info().noiseKey);
});

Deno.test("keys: toJSON / fromJSON round trip through JSON text", () => {
  const file = me.toJSON();
  assertEquals(file.type, "validator-keys");
  assertEquals(file.peerId, me.peerId.toString());
  const again = ValidatorKeys.fromJSON(JSON.parse(JSON.stringify(file)));
  assert(again.peerId.equals(me.peerId));
  assertEquals(again.noise.publicKey, me.noise.publicKey);
  assertEquals(again.noise.privateKey, me.noise.privateKey);
  assertEquals(again.info(["/memory/1"]), me.info(["/memory/1"]));
  assertEquals(again.toJSON(), file);
  // Upper-case hex, and no peerId (it is for humans), are accepted.
  const upper = ValidatorKeys.fromJSON({
    type: "validator-keys",
    identity: file.identity.toUpperCase(),
    noise: file.noise.toUpperCase(),
  });
  assert(upper.peerId.equals(me.peerId));
});

Deno.test("keys: fromJSON refuses what is wrong, naming the field", () => {
  const file = { ...me.toJSON() } as Record<string, unknown>;
  const cases: [string, unknown, string][] = [
    ["not an object", "validator-keys", "key file"],
    ["null", null, "key file"],
    ["an array", [file], "key file"],
    ["the wrong type", { ...file, type: "libp2p-key" }, "key file: type"],
    ["no type", { ...file, type: undefined }, "key file: type"],
    [
      "a peerId that is not the identity's",
      { ...file, peerId: other.peerId.toString() },
      "key file: peerId",
    ],
    ["identity not hex", { ...file, identity: "xyz" }, "key file: identity"],
    ["identity missing", { ...file, identity: undefined }, "key file: identity"],
    ["identity not a key", { ...file, identity: "0801" }, "key file: identity"],
    ["noise not hex", { ...file, noise: "g".repeat(64) }, "key file: noise"],
    ["noise too short", { ...file, noise: "ab".repeat(31) }, "key file: noise"],
    ["noise missing", { ...file, noise: undefined }, "key file: noise"],
  ];
  for (const [what, json, path] of cases) {
    const err = assertThrowsCode(() => ValidatorKeys.fromJSON(json), "BAD_CONFIG", what);
    assert(err.message.startsWith(path), `${what}: ${JSON.stringify(err.message)}`);
    assert(err instanceof NetworkError);
  }
});
