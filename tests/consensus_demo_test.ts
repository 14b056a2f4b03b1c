/**
 * The consensus demo app: four validators over a memory network commit one
 * chain, keep committing with one of them stopped, and the stopped one,
 * started again with the same keys and data directory, catches up.
 */

import { MemoryNetwork } from "../memsocket/mod.ts";
import { Logger } from "../netcore/log.ts";
import { ConsensusDemo } from "../validator/apps/consensus_demo.ts";
import { CONSENSUS_RPC } from "../validator/consensus.ts";
import { ValidatorKeys } from "../validator/validator_keys.ts";
import type { ValidatorInfo } from "../validator/validator_keys.ts";
import { ValidatorNetwork } from "../validator/validator_network.ts";
import { assert, assertEquals, assertThrows } from "./_assert.ts";

const NETWORK = "consensus-demo-test";
const quiet = new Logger({}, "error");

interface Node {
  readonly net: ValidatorNetwork;
  readonly demo: ConsensusDemo;
  /** The `commit` lines the demo logged, parsed. */
  readonly commits: { height: number; hash: string }[];
}

function spawn(
  keys: ValidatorKeys,
  validators: ValidatorInfo[],
  listen: string,
  memory: MemoryNetwork,
  dataDir: string,
): Node {
  const net = new ValidatorNetwork({
    keys,
    networkId: NETWORK,
    validators,
    memory,
    listen: [listen],
    logger: quiet,
    timeouts: { backoffInitial: 100, backoffMax: 1000 },
  });
  const commits: { height: number; hash: string }[] = [];
  const logger = new Logger({}, "info", (line) => {
    const record = JSON.parse(line);
    if (record.msg === "commit") commits.push({ height: record.height, hash: record.hash });
  });
  const metrics = net.metrics.scope({ network: NETWORK });
  const demo = new ConsensusDemo({
    net,
    logger,
    metrics,
    slotTimeout: 300,
    dataDir,
    blockInterval: 0,
  });
  return { net, demo, commits };
}

async function waitFor(what: string, condition: () => boolean, ms = 5_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

/** Whether the shorter of each pair of chains is a prefix of the longer. */
function consistent(nodes: readonly Node[]): boolean {
  const chains = nodes.map((n) => n.demo.chain());
  return chains.every((a) =>
    chains.every((b) => a.slice(0, b.length).every((hash, i) => hash === b[i]))
  );
}

/** Four validators with their networks started and connected, demos started. */
async function cluster(): Promise<{
  nodes: Node[];
  restart(i: number): Promise<void>;
  close(): Promise<void>;
}> {
  const memory = new MemoryNetwork();
  const keys = Array.from({ length: 4 }, () => ValidatorKeys.generate());
  const addrs = keys.map((_, i) => `/memory/${i + 1}`);
  const validators = keys.map((k, i) => k.info([addrs[i]]));
  const dirs = await Promise.all(keys.map(() => Deno.makeTempDir({ prefix: "consensus_demo_" })));
  const nodes = keys.map((k, i) => spawn(k, validators, addrs[i], memory, dirs[i]));
  const close = async () => {
    await Promise.all(nodes.map((n) => n.demo.stop()));
    await Promise.all(nodes.map((n) => n.net.stop()));
    await Promise.all(dirs.map((d) => Deno.remove(d, { recursive: true })));
  };
  try {
    await Promise.all(nodes.map((n) => n.net.start()));
    for (const n of nodes) {
      for (const k of keys) if (!k.peerId.equals(n.net.peerId)) await n.net.connected(k.peerId);
    }
  } catch (err) {
    await close();
    throw err;
  }
  for (const n of nodes) n.demo.start();
  return {
    nodes,
    // The same keys and data directory, a new network and an empty chain.
    async restart(i) {
      await nodes[i].demo.stop();
      await nodes[i].net.stop();
      nodes[i] = spawn(keys[i], validators, addrs[i], memory, dirs[i]);
      await nodes[i].net.start();
      nodes[i].demo.start();
    },
    close,
  };
}

Deno.test("consensus demo: 4 validators commit, survive a stop, and the restarted one catches up", async () => {
  const { nodes, restart, close } = await cluster();
  try {
    await waitFor("height 10 everywhere", () => nodes.every((n) => n.demo.height >= 10));
    assert(consistent(nodes), "the four chains differ");
    for (const n of nodes) {
      // The log and the gauge say what the chain says.
      const chain = n.demo.chain();
      assertEquals(n.commits.map((c) => c.hash), chain.slice(0, n.commits.length));
      assertEquals(n.commits.map((c) => c.height), chain.map((_, i) => i + 1));
      assertEquals(n.demo.headHash, chain.at(-1));
      const gauge = n.net.metrics.find("consensus_demo_committed_height")!;
      assertEquals(gauge.get({ network: NETWORK }), n.demo.height);
    }

    // One stops (3 of 4 are still a quorum): the others go on.
    await nodes[3].demo.stop();
    await nodes[3].net.stop();
    const live = nodes.slice(0, 3);
    const before = Math.max(...live.map((n) => n.demo.height));
    await waitFor(
      "5 more heights without node 3",
      () => live.every((n) => n.demo.height >= before + 5),
    );
    assert(consistent(live), "the three chains differ");

    // It comes back with an empty chain and catches up.
    await restart(3);
    const target = Math.max(...live.map((n) => n.demo.height));
    await waitFor("node 3 to catch up", () => nodes[3].demo.height >= target, 8_000);
    assert(consistent(nodes), "the restarted node's chain differs");
    // It takes part again: the four keep committing.
    const now = Math.max(...nodes.map((n) => n.demo.height));
    await waitFor("the four to go on", () => nodes.every((n) => n.demo.height >= now + 3));
    assert(consistent(nodes), "the chains differ at the end");
  } finally {
    await close();
  }
});

Deno.test("consensus demo: a validator restarted past height 100 fetches blocks in pages", async () => {
  const { nodes, restart, close } = await cluster();
  try {
    await waitFor("height 110", () => nodes.every((n) => n.demo.height >= 110), 10_000);
    await restart(0);
    const target = Math.max(...nodes.slice(1).map((n) => n.demo.height));
    await waitFor("node 0 to catch up", () => nodes[0].demo.height >= target);
    assert(consistent(nodes), "the restarted node's chain differs");
    // 110 blocks or more, at most 100 a response: two requests at least.
    const requests = nodes[0].net.metrics.find("validator_network_messages_total")!
      .get({ network: NETWORK, protocol: CONSENSUS_RPC, direction: "out" });
    assert(requests >= 2, `${requests} block requests`);
    // Its persisted vote is below the heights it will vote at: it votes again.
    const votes = () =>
      nodes[0].net.metrics.find("consensus_demo_votes_total")!.get({ network: NETWORK });
    await waitFor("node 0 to vote", () => votes() > 0);
  } finally {
    await close();
  }
});

Deno.test("consensus demo: a persisted vote is never contradicted", async () => {
  const keys = ValidatorKeys.generate();
  const dataDir = await Deno.makeTempDir({ prefix: "consensus_demo_" });
  const options = { networkId: NETWORK, validators: [keys.info()], logger: quiet };
  try {
    // Alone, it is its own quorum: it commits.
    {
      await using net = new ValidatorNetwork({ ...options, keys });
      const metrics = net.metrics.scope({ network: NETWORK });
      const demo = new ConsensusDemo({
        net,
        logger: quiet,
        metrics,
        slotTimeout: 50,
        dataDir,
        blockInterval: 0,
      });
      await net.start();
      demo.start();
      await waitFor("height 3", () => demo.height >= 3);
      await demo.stop();
    }
    // Restarted with an empty chain, it has voted at heights it no longer
    // holds: it must not vote there again, so it cannot commit.
    {
      await using net = new ValidatorNetwork({ ...options, keys });
      const metrics = net.metrics.scope({ network: NETWORK });
      const demo = new ConsensusDemo({
        net,
        logger: quiet,
        metrics,
        slotTimeout: 50,
        dataDir,
        blockInterval: 0,
      });
      await net.start();
      demo.start();
      await new Promise((resolve) => setTimeout(resolve, 300));
      assertEquals(demo.height, 0);
      assertEquals(net.metrics.find("consensus_demo_votes_total")!.get({ network: NETWORK }), 0);
      await demo.stop();
    }
    // A vote file that does not parse stops it from starting.
    await Deno.writeTextFile(`${dataDir}/vote.json`, `{"height": "x"}`);
    await using net = new ValidatorNetwork({ ...options, keys });
    const broken = new ConsensusDemo({ net, logger: quiet, metrics: net.metrics, dataDir });
    assertThrows(() => broken.start(), Error, "vote.json");
    await broken.stop();
  } finally {
    await Deno.remove(dataDir, { recursive: true });
  }
});
