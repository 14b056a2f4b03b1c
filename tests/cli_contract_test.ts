/**
 * The result lines every node prints are read back exactly by the parsers
 * that bench/compare.ts and the interop tests use.
 */

import {
  formatConnectLine,
  formatEchoLine,
  formatPerfLine,
  formatPingLine,
  numberOption,
  parseConnectLine,
  parseEchoLine,
  parseNodeArgs,
  parsePerfLine,
  parsePingLine,
  summarisePings,
} from "../protocols/cli_contract.ts";
import { assertEquals } from "./_assert.ts";

Deno.test("ping line: avg, p50 and p99 in microseconds round-trip through the parser", () => {
  const summary = summarisePings([0.1, 0.2, 0.3, 0.4]);
  assertEquals(summary.count, 4);
  assertEquals(Math.round(summary.avgUs), 250);
  assertEquals(formatPingLine(summary), "ping: 4 rtt avg 250.0 us p50 300.0 us p99 400.0 us");
  assertEquals(parsePingLine(`noise\n${formatPingLine(summary)}\n`), {
    count: 4,
    avgUs: 250,
    p50Us: 300,
    p99Us: 400,
  });
  // The percentiles are optional in the contract.
  assertEquals(parsePingLine("ping: 7 rtt avg 81.5 us"), {
    count: 7,
    avgUs: 81.5,
    p50Us: undefined,
    p99Us: undefined,
  });
  assertEquals(parsePingLine("pong: 7 rtt avg 81.5 us"), undefined);
});

Deno.test("perf line: MB is 10^6 bytes per second, each phase on its own", () => {
  const line = formatPerfLine(2_000_000, 1000, 3_000_000, 500);
  assertEquals(line, "perf: upload 2.00 MB/s download 6.00 MB/s");
  assertEquals(parsePerfLine(line), { uploadMBps: 2, downloadMBps: 6 });
});

Deno.test("connect and echo lines round-trip", () => {
  assertEquals(parseConnectLine(formatConnectLine(300, 2000)), { count: 300, perSecond: 150 });
  assertEquals(parseEchoLine(formatEchoLine(1024, 1.25)), { bytes: 1024, ms: 1.25 });
});

Deno.test("arguments: target, --name value and --name=value", () => {
  const args = parseNodeArgs(["perf", "/ip4/127.0.0.1/tcp/1", "--upload", "5", "--download=6"]);
  assertEquals(args.command, "perf");
  assertEquals(args.target, "/ip4/127.0.0.1/tcp/1");
  assertEquals([numberOption(args, "upload"), numberOption(args, "download")], [5, 6]);
  assertEquals(numberOption(args, "count", 1), 1);
  let threw = false;
  try {
    numberOption(parseNodeArgs(["ping", "x", "--count", "-3"]), "count");
  } catch {
    threw = true;
  }
  assertEquals(threw, true);
});
