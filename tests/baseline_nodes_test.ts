/**
 * The baseline nodes bench/compare.ts measures ours against: raw TCP, and raw
 * TCP with perf's bytes sealed by node:crypto. Each moves exactly the bytes
 * asked for and prints the contract line, so their figures are comparable.
 */

import { assert, assertEquals } from "./_assert.ts";
import { type Implementation, runClient, startListener } from "../bench/_process.ts";
import { parsePerfLine, parsePingLine } from "../protocols/cli_contract.ts";

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
