/**
 * The baseline nodes bench/compare.ts measures ours against: raw TCP, and raw
 * TCP with perf's bytes sealed by node:crypto. Each moves exactly the bytes
 * asked for and prints the contract line, so their figures are comparable.
 */

import { assert, assertEquals } from "./_assert.ts";
import { type Implementation, runClient, startListener } from "../bench/_process.ts";
import {
  parsePerfLine,
  parsePingLine,
  parseRpcLine,
  parseSendLine,
} from "../protocols/cli_contract.ts";

// Not a multiple of a sealed frame's 65 519 bytes, so the last frame is short.
const UPLOAD = 3 * 1024 * 1024 + 17;
const DOWNLOAD = 2 * 1024 * 1024 + 5;

for (const impl of ["raw", "sealed"] as Implementation[]) {
  Deno.test(`${impl} node: perf returns the download asked for and prints the perf line`, async () => {
    await using node = await startListener(impl);
    const r = await runClient(impl, [
      "perf",
      node.multiaddr,
      "--upload",
      String(UPLOAD),
      "--download",
      String(DOWNLOAD),
    ], 30_000);
    assertEquals(r.code, 0, `${r.stdout}${r.stderr}`);
    const perf = parsePerfLine(r.stdout);
    assert(perf, `perf line: ${r.stdout}`);
    assert(perf.uploadMBps > 0 && perf.downloadMBps > 0, r.stdout);
  });
}

Deno.test("raw node: ping prints its line", async () => {
  await using node = await startListener("raw");
  const r = await runClient("raw", ["ping", node.multiaddr, "--count", "20"], 30_000);
  assertEquals(r.code, 0, `${r.stdout}${r.stderr}`);
  assertEquals(parsePingLine(r.stdout)?.count, 20);
});

Deno.test("a sealed client against a raw listener fails instead of reporting figures", async () => {
  // The raw listener answers in plaintext: the sealed reader must reject it.
  await using node = await startListener("raw");
  const r = await runClient("sealed", [
    "perf",
    node.multiaddr,
    "--upload",
    "1000",
    "--download",
    "100000",
  ], 30_000);
  assert(r.code !== 0, `exit ${r.code}: ${r.stdout}`);
  assertEquals(parsePerfLine(r.stdout), undefined);
});

// Requests larger than the reader's 256 KiB buffer make it grow.
for (
  const { count, concurrency, bytes } of [
    { count: 300, concurrency: 8, bytes: 64 },
    { count: 12, concurrency: 3, bytes: 300_000 },
  ]
) {
  Deno.test(`raw node: rpc of ${count} x ${bytes} B, ${concurrency} in flight, echoes each request`, async () => {
    await using node = await startListener("raw");
    const r = await runClient("raw", [
      "rpc",
      node.multiaddr,
      "--count",
      String(count),
      "--concurrency",
      String(concurrency),
      "--bytes",
      String(bytes),
    ], 30_000);
    assertEquals(r.code, 0, `${r.stdout}${r.stderr}`);
    const rpc = parseRpcLine(r.stdout);
    assert(rpc, `rpc line: ${r.stdout}`);
    assertEquals(rpc.count, count);
    assert(rpc.perSecond > 0 && rpc.p50Us > 0 && rpc.p99Us >= rpc.p50Us, r.stdout);
  });
}

// Empty messages, small ones many to a write, and ones split across reads.
for (
  const { count, bytes } of [
    { count: 1_000, bytes: 0 },
    { count: 20_000, bytes: 64 },
    { count: 40, bytes: 70_000 },
  ]
) {
  Deno.test(`raw node: send of ${count} x ${bytes} B is counted by the server`, async () => {
    await using node = await startListener("raw");
    const r = await runClient("raw", [
      "send",
      node.multiaddr,
      "--count",
      String(count),
      "--bytes",
      String(bytes),
    ], 30_000);
    assertEquals(r.code, 0, `${r.stdout}${r.stderr}`);
    const send = parseSendLine(r.stdout);
    assert(send, `send line: ${r.stdout}`);
    assertEquals(send.count, count);
    assert(send.perSecond > 0, r.stdout);
    assertEquals(send.MBps > 0, bytes > 0, r.stdout);
  });
}

Deno.test("a sealed client refuses rpc and send (only perf has a sealed form)", async () => {
  await using node = await startListener("raw");
  for (
    const args of [
      ["rpc", node.multiaddr, "--count", "5", "--bytes", "64"],
      ["send", node.multiaddr, "--count", "5", "--bytes", "64"],
    ]
  ) {
    const r = await runClient("sealed", args, 30_000);
    assertEquals(r.code, 2, `${r.stdout}${r.stderr}`);
    assert(r.stderr.includes("--sealed seals perf only"), r.stderr);
    assertEquals(r.stdout, "");
  }
});
