/**
 * The interop harness itself works: a js-libp2p listener started from a test
 * serves ping, echo and perf to a js-libp2p client over loopback TCP, using
 * only the node CLI contract (the same lines our `cli.ts` prints).
 */

import {
  parseConnectLine,
  parseEchoLine,
  parsePerfLine,
  parsePingLine,
} from "../../protocols/cli_contract.ts";
import { runClientOk, startListener } from "../../bench/_process.ts";
import { runJsClient, startJsPeer } from "./_js_peer.ts";
import { assert } from "../_assert.ts";

async function ok(args: string[]): Promise<string> {
  const r = await runJsClient(args);
  assert(r.code === 0, `js client ${args[0]} exited ${r.code}:\n${r.stdout}${r.stderr}`);
  return r.stdout;
}

Deno.test("js-libp2p peer: listens on loopback with an Ed25519 peer id", async () => {
  await using peer = await startJsPeer();
  assert(/^\/ip4\/127\.0\.0\.1\/tcp\/\d+\/p2p\/12D3KooW\w+$/.test(peer.multiaddr), peer.multiaddr);
  // Ed25519 keys are inlined with the identity multihash: base58 "12D3KooW...".
  assert(peer.peerId?.startsWith("12D3KooW"), `peer id ${peer.peerId}`);
});

Deno.test("js-libp2p peer: js client pings, echoes, runs perf and connects", async () => {
  await using peer = await startJsPeer();

  const ping = parsePingLine(await ok(["ping", peer.multiaddr, "--count", "20"]));
  assert(ping?.count === 20, `ping line: ${JSON.stringify(ping)}`);
  assert(ping.avgUs > 0, "a round trip takes time");

  const echo = parseEchoLine(await ok(["echo", peer.multiaddr, "--bytes", "300000"]));
  assert(echo?.bytes === 300000, `echo line: ${JSON.stringify(echo)}`);

  const perf = parsePerfLine(
    await ok(["perf", peer.multiaddr, "--upload", "2000000", "--download", "3000000"]),
  );
  assert(perf && perf.uploadMBps > 0 && perf.downloadMBps > 0, `perf: ${JSON.stringify(perf)}`);

  const connect = parseConnectLine(await ok(["connect", peer.multiaddr, "--count", "5"]));
  assert(connect?.count === 5 && connect.perSecond > 0, `connect: ${JSON.stringify(connect)}`);
});

Deno.test("js-libp2p peer: 128 concurrent echo streams on one connection", async () => {
  await using peer = await startJsPeer();
  const args = ["echo", peer.multiaddr, "--bytes", "4096", "--streams", "128"];
  const echo = parseEchoLine(await ok(args));
  assert(echo?.bytes === 4096 * 128, `echo line: ${JSON.stringify(echo)}`);
});

Deno.test("js-libp2p peer: a dial to the wrong peer id fails with a non-zero exit", async () => {
  await using peer = await startJsPeer();
  await using other = await startJsPeer();
  const wrong = peer.multiaddr.replace(/\/p2p\/.*$/, `/p2p/${other.peerId}`);
  const r = await runJsClient(["ping", wrong, "--count", "1"]);
  assert(r.code !== 0, `dialing with the wrong peer id must fail:\n${r.stdout}`);
  assert(r.stderr.includes("error:"), `clear message expected, got: ${r.stderr}`);
});

Deno.test("js-libp2p peer: stops cleanly on SIGTERM", async () => {
  const peer = await startJsPeer();
  const code = await peer.close();
  assert(code === 0, `exit code ${code}\n${peer.stderr()}`);
});

Deno.test("raw baseline: speaks the same contract (ping, echo, perf, connect)", async () => {
  await using node = await startListener("raw");
  assert(/^\/ip4\/127\.0\.0\.1\/tcp\/\d+$/.test(node.multiaddr), node.multiaddr);
  const run = (args: string[]) => runClientOk("raw", [args[0], node.multiaddr, ...args.slice(1)]);
  assert(parsePingLine(await run(["ping", "--count", "50"]))?.count === 50, "raw ping");
  assert(parseEchoLine(await run(["echo", "--bytes", "100000"]))?.bytes === 100000, "raw echo");
  const perf = parsePerfLine(await run(["perf", "--upload", "1000000", "--download", "2000000"]));
  assert(perf && perf.uploadMBps > 0 && perf.downloadMBps > 0, "raw perf");
  assert(parseConnectLine(await run(["connect", "--count", "10"]))?.count === 10, "raw connect");
});
