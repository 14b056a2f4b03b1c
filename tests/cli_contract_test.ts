/**
 * The result lines every node prints are read back exactly by the parsers
 * that bench/compare.ts and the interop tests use.
 */

import {
  formatConnectLine,
  formatEchoLine,
  formatPerfLine,
  formatPingLine,
  formatRpcLine,
  formatSendLine,
  numberOption,
  parseConnectLine,
  parseEchoLine,
  parseNodeArgs,
  parsePerfLine,
  parsePingLine,
  parseRpcLine,
  parseSendLine,
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

Deno.test("rpc line: requests per second over the run, latency percentiles as ping's", () => {
  // 4 requests in 2 ms: 2000 req/s; p50 and p99 pick as summarisePings does.
  const line = formatRpcLine([0.4, 0.1, 0.3, 0.2], 2);
  assertEquals(line, "rpc: 4 requests 2000.0 req/s p50 300.0 us p99 400.0 us");
  assertEquals(parseRpcLine(`noise\n${line}\n`), {
    count: 4,
    perSecond: 2000,
    p50Us: 300,
    p99Us: 400,
  });
  assertEquals(
    formatRpcLine([], 0),
    "rpc: 0 requests 0.0 req/s p50 0.0 us p99 0.0 us",
  );
  assertEquals(parseRpcLine("rpc: 4 requests 2000.0 req/s"), undefined);
  assertEquals(parseRpcLine("send: 4 messages 2000.0 msg/s 0.13 MB/s"), undefined);
});

Deno.test("send line: messages per second and N * B / 10^6 MB per second", () => {
  // 100 000 messages of 64 bytes in 400 ms.
  const line = formatSendLine(100_000, 64, 400);
  assertEquals(line, "send: 100000 messages 250000.0 msg/s 16.00 MB/s");
  assertEquals(parseSendLine(`listening x\n${line}\n`), {
    count: 100_000,
    perSecond: 250_000,
    MBps: 16,
  });
  // 2 000 messages of 64 KiB in 250 ms.
  assertEquals(
    parseSendLine(formatSendLine(2000, 65536, 250)),
    { count: 2000, perSecond: 8000, MBps: 524.29 },
  );
  assertEquals(parseSendLine("send: 5 messages"), undefined);
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
