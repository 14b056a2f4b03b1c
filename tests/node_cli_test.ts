/**
 * The command-line validator node: `keygen` and `node --config`, as an
 * operator uses them (the contract of issue 11: key file mode 0600 and one
 * JSON line; config errors exit 2 naming the field; JSON logs on stdout;
 * `/metrics` and `/health`; a graceful stop on SIGTERM).
 */

import { assert, assertEquals } from "./_assert.ts";
import { freePort, NodeProcess, writeTestnet } from "../testnet/node_process.ts";

const CLI = new URL("../cli.ts", import.meta.url).pathname;

async function cli(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "--allow-all", CLI, ...args],
    env: { NO_COLOR: "1" },
    stdout: "piped",
    stderr: "piped",
  }).output();
  const text = new TextDecoder();
  return { code: out.code, stdout: text.decode(out.stdout), stderr: text.decode(out.stderr) };
}

Deno.test("keygen writes a 0600 key file and prints the public entry as one JSON line", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const { code, stdout } = await cli("keygen", "--out", `${dir}/a.key`);
    assertEquals(code, 0);
    const lines = stdout.trim().split("\n");
    assertEquals(lines.length, 1);
    const entry = JSON.parse(lines[0]);
    assertEquals(Object.keys(entry).sort(), ["noiseKey", "peerId"]);
    assert(entry.peerId.startsWith("12D3KooW"));
    assert(/^[0-9a-f]{64}$/.test(entry.noiseKey));
    assertEquals((await Deno.stat(`${dir}/a.key`)).mode! & 0o777, 0o600);
    const file = JSON.parse(await Deno.readTextFile(`${dir}/a.key`));
    assertEquals(file.peerId, entry.peerId);
    // Never overwrites a key.
    assertEquals((await cli("keygen", "--out", `${dir}/a.key`)).code, 1);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("node refuses a bad config at start with exit 2 and names the field", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const [v] = await writeTestnet({ dir, validators: 4 });
    const good = JSON.parse(await Deno.readTextFile(v.configPath));
    const cases: [string, (c: Record<string, unknown>) => void, string][] = [
      ["unknown field", (c) => (c.colour = "blue"), "colour"],
      ["bad listen address", (c) => (c.listen = ["/ip4/300.1.1.1/tcp/1"]), "listen[0]"],
      ["missing key file", (c) => (c.keyFile = "nope.key"), "keyFile"],
      [
        "duplicate validator",
        (c) => (c.validators = [...(c.validators as unknown[]), (c.validators as unknown[])[1]]),
        "validators[4].peerId",
      ],
      ["bad metrics address", (c) => (c.metrics = "localhost"), "metrics"],
      ["unknown limit", (c) => (c.limits = { maxPeers: 3 }), "limits.maxPeers"],
      ["missing networkId", (c) => delete c.networkId, "networkId"],
    ];
    for (const [name, mutate, field] of cases) {
      const config = structuredClone(good);
      mutate(config);
      const path = `${dir}/bad.json`;
      await Deno.writeTextFile(path, JSON.stringify(config));
      const { code, stderr } = await cli("node", "--config", path);
      assertEquals(code, 2, `${name}: ${stderr}`);
      assert(stderr.includes(field), `${name}: ${stderr}`);
    }
    await Deno.writeTextFile(`${dir}/unreadable.key`, "{}");
    const config = { ...good, keyFile: "unreadable.key" };
    await Deno.writeTextFile(`${dir}/bad.json`, JSON.stringify(config));
    const { code, stderr } = await cli("node", "--config", `${dir}/bad.json`);
    assertEquals(code, 2);
    assert(stderr.includes("keyFile"), stderr);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("node logs JSON lines, serves /metrics and /health, and stops on SIGTERM", async () => {
  const dir = await Deno.makeTempDir();
  const lines: Record<string, unknown>[] = [];
  try {
    const validators = await writeTestnet({
      dir,
      validators: 4,
      metrics: () => `127.0.0.1:${freePort()}`,
      timeouts: { backoffInitial: 100, backoffMax: 500 },
    });
    // Two of the four run: enough to see peers connect.
    const nodes = validators.slice(0, 2).map((v, i) =>
      new NodeProcess(v, { app: "consensus-demo", onLine: (l) => i === 0 && lines.push(l) })
    );
    try {
      await Promise.all(nodes.map((n) => n.start()));
      const deadline = Date.now() + 10_000;
      while (nodes[0].newPeers < 1 && Date.now() < deadline) {
        await new Promise((r) => setTimeout(r, 50));
      }
      const started = lines.find((l) => l.msg === "node started")!;
      assertEquals(started.self, validators[0].keys.peerId.toString());
      assertEquals(started.network, "demo-testnet");
      const newPeer = lines.find((l) => l.msg === "new peer");
      assert(newPeer !== undefined, "a new peer line");
      assertEquals(newPeer.peer, validators[1].keys.peerId.toString());
      const metrics = await nodes[0].scrape();
      assert(
        /^validator_network_connected_peers\{network="demo-testnet"[^}]*\} 1$/m.test(metrics),
        metrics,
      );
      const health = await nodes[0].health();
      assertEquals(health?.peers, 1);
      assertEquals(typeof health?.uptime, "number");
      const status = await nodes[0].kill("SIGTERM");
      assertEquals(status?.code, 0);
      assert(lines.some((l) => l.msg === "node stopped"));
    } finally {
      await Promise.all(nodes.map((n) => n.kill("SIGKILL")));
    }
    assertEquals(nodes.flatMap((n) => n.crashes), []);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
