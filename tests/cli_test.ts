/**
 * `cli.ts` as scripts use it: a `listen` subprocess prints its addresses, the
 * client commands print the contract lines of the module doc, usage errors
 * exit 2, network errors exit 1 with their code, SIGTERM stops the listener
 * with exit 0.
 */

import { assert, assertEquals } from "./_assert.ts";
import { nodeCommand, runClient, startListener } from "../bench/_process.ts";
import { Ed25519Identity } from "../netcore/identity/mod.ts";

/** Runs `cli.ts <args>` and returns its exit code and output. */
function cli(args: string[]) {
  return runClient("ours", args, 30_000);
}

function show(r: { code: number; stdout: string; stderr: string }): string {
  return `exit ${r.code}\nstdout: ${r.stdout}\nstderr: ${r.stderr}`;
}

const LISTENING = /^\/ip4\/127\.0\.0\.1\/tcp\/(\d+)\/p2p\/(12D3KooW[1-9A-HJ-NP-Za-km-z]+)$/;

Deno.test("cli listen: prints `listening <multiaddr>/p2p/<id>` and stops with exit 0 on SIGTERM", async () => {
  const node = await startListener("ours", { listen: "/ip4/127.0.0.1/tcp/0" });
  try {
    assertEquals(node.multiaddrs.length, 1);
    const m = node.multiaddr.match(LISTENING);
    assert(m, `listening line: ${node.multiaddr}`);
    assert(Number(m[1]) > 0, "port 0 is replaced by the bound port");
    assertEquals(node.peerId, m[2]);
  } finally {
    const code = await node.close();
    assertEquals(code, 0, `exit code after SIGTERM\n${node.stderr()}`);
  }
});

Deno.test("cli listen: one line per --listen address", async () => {
  await using node = await startListener("ours", { listen: "/ip4/127.0.0.1/tcp/0" });
  // startListener passes one --listen; run a second listener with two by hand.
  const [program, ...prefix] = nodeCommand("ours");
  const child = new Deno.Command(program, {
    args: [
      ...prefix,
      "listen",
      "--listen",
      "/ip4/127.0.0.1/tcp/0",
      "--listen",
      "/ip4/127.0.0.1/tcp/0",
    ],
    stdin: "null",
    stdout: "piped",
    stderr: "null",
    env: { NO_COLOR: "1" },
  }).spawn();
  const lines: string[] = [];
  let buffered = "";
  const reader = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
  while (lines.length < 2) {
    const { done, value } = await reader.read();
    if (done) break;
    buffered += value;
    const parts = buffered.split("\n");
    buffered = parts.pop()!;
    lines.push(...parts.filter((l) => l.length > 0));
  }
  child.kill("SIGTERM");
  reader.cancel().catch(() => {});
  const status = await child.status;
  assertEquals(status.code, 0);
  assertEquals(lines.length, 2, lines.join("\n"));
  const parsed = lines.map((l) => l.match(/^listening (\S+)$/)?.[1]?.match(LISTENING));
  assert(parsed.every((m) => m), lines.join("\n"));
  assertEquals(parsed[0]![2], parsed[1]![2], "one node, one peer id");
  assert(parsed[0]![1] !== parsed[1]![1], "two ports");
  assert(node.peerId !== parsed[0]![2], "every node has its own identity");
});

Deno.test("cli clients: ping, echo, perf and connect print their contract lines", async () => {
  await using node = await startListener("ours", { listen: "/ip4/127.0.0.1/tcp/0" });
  const addr = node.multiaddr;

  const ping = await cli(["ping", addr, "--count", "10"]);
  assertEquals(ping.code, 0, show(ping));
  assert(
    /^ping: 10 rtt avg \d+(\.\d+)? us p50 \d+(\.\d+)? us p99 \d+(\.\d+)? us$/m.test(ping.stdout),
    show(ping),
  );

  const echo = await cli(["echo", addr, "--bytes", "300000"]);
  assertEquals(echo.code, 0, show(echo));
  assert(/^echo: 300000 bytes in \d+(\.\d+)? ms$/m.test(echo.stdout), show(echo));

  const perf = await cli(["perf", addr, "--upload", "1000000", "--download", "2000000"]);
  assertEquals(perf.code, 0, show(perf));
  const p = perf.stdout.match(
    /^perf: upload (\d+(?:\.\d+)?) MB\/s download (\d+(?:\.\d+)?) MB\/s$/m,
  );
  assert(p && Number(p[1]) > 0 && Number(p[2]) > 0, show(perf));

  const connect = await cli(["connect", addr, "--count", "5"]);
  assertEquals(connect.code, 0, show(connect));
  const c = connect.stdout.match(/^connect: 5 connections (\d+(?:\.\d+)?)\/s$/m);
  assert(c && Number(c[1]) > 0, show(connect));

  // The listener served all of that and still stops cleanly.
  assertEquals(await node.close(), 0, node.stderr());
});

Deno.test("cli: bad usage exits 2 and prints the usage", async () => {
  const cases = [
    [],
    ["fly"],
    ["ping"],
    ["echo", "/ip4/127.0.0.1/tcp/1"],
    ["perf", "/ip4/127.0.0.1/tcp/1", "--upload", "10"],
    ["ping", "/ip4/127.0.0.1/tcp/1", "--count", "many"],
    ["ping", "/ip4/127.0.0.1/tcp/1", "--count"],
    ["ping", "/ip4/127.0.0.1/tcp/1", "/ip4/127.0.0.1/tcp/2"],
  ];
  const results = await Promise.all(cases.map((args) => cli(args)));
  for (const [i, r] of results.entries()) {
    assertEquals(r.code, 2, `${JSON.stringify(cases[i])}: ${show(r)}`);
    assert(r.stderr.includes("usage:"), `${JSON.stringify(cases[i])}: ${show(r)}`);
    assertEquals(r.stdout, "");
  }
});

Deno.test("cli: an unreachable address exits 1 with error (DIAL_REFUSED)", async () => {
  // A port that was just free: bind it, note it, release it.
  const probe = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (probe.addr as Deno.NetAddr).port;
  probe.close();
  const r = await cli(["ping", `/ip4/127.0.0.1/tcp/${port}`, "--count", "1"]);
  assertEquals(r.code, 1, show(r));
  assert(/^error \(DIAL_REFUSED\): /m.test(r.stderr), show(r));
  assertEquals(r.stdout, "");
});

Deno.test("cli: a malformed multiaddr exits 1 with error (BAD_ADDRESS)", async () => {
  const r = await cli(["ping", "127.0.0.1:4001"]);
  assertEquals(r.code, 1, show(r));
  assert(/^error \(BAD_ADDRESS\): /m.test(r.stderr), show(r));
});

Deno.test("cli: a dial to the listener under another peer id exits 1 with error (UNAUTHORIZED)", async () => {
  await using node = await startListener("ours", { listen: "/ip4/127.0.0.1/tcp/0" });
  const impostor = Ed25519Identity.generate().peerId.toString();
  const wrong = node.multiaddr.replace(/\/p2p\/[^/]+$/, `/p2p/${impostor}`);
  const r = await cli(["ping", wrong, "--count", "1"]);
  assertEquals(r.code, 1, show(r));
  assert(/^error \(UNAUTHORIZED\): /m.test(r.stderr), show(r));
});

// Scripts send SIGTERM as soon as they read the listening line; the listener
// must already handle it (it once printed first and died with 143 now and then).
Deno.test({
  name: "cli listen: a SIGTERM sent right after the listening line still exits 0",
  fn: async () => {
    const [program, ...prefix] = nodeCommand("ours");
    const codes: number[] = [];
    for (let i = 0; i < 10; i++) {
      const child = new Deno.Command(program, {
        args: [...prefix, "listen"],
        stdin: "null",
        stdout: "piped",
        stderr: "null",
      }).spawn();
      const reader = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
      const first = await reader.read();
      assert(first.value?.startsWith("listening "), String(first.value));
      child.kill("SIGTERM");
      reader.cancel().catch(() => {});
      codes.push((await child.status).code);
    }
    assertEquals(codes, Array(10).fill(0));
  },
});
