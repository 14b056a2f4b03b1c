/**
 * Structured logs: one JSON object per line with `ts`, `level`, `msg` and the
 * logger's and the call's fields; lines below the threshold are not written;
 * Error values become `{ name, message, code }`.
 */

import { Logger, type LogLevel } from "../netcore/log.ts";
import { NetworkError } from "../netcore/network_error.ts";
import { assertEquals } from "./_assert.ts";

/** A sink that keeps the lines it is given. */
function capture(): {
  lines: string[];
  sink: (line: string) => void;
  records: () => Record<string, unknown>[];
} {
  const lines: string[] = [];
  return {
    lines,
    sink: (line) => lines.push(line),
    records: () => lines.map((l) => JSON.parse(l)),
  };
}

/** A record without its timestamp, for exact comparison. */
function withoutTs(record: Record<string, unknown>): Record<string, unknown> {
  const { ts: _ts, ...rest } = record;
  return rest;
}

/** The fields in line order: the order is part of the format (ts, level, msg, then the rest). */
const inOrder = (record: Record<string, unknown>) => Object.entries(record);

const LEVELS: LogLevel[] = ["debug", "info", "warn", "error"];

function logAll(log: Logger): void {
  log.debug("d");
  log.info("i");
  log.warn("w");
  log.error("e");
}

Deno.test("log: lines below the threshold are dropped, the rest written", () => {
  const expected: Record<LogLevel, string[]> = {
    debug: ["d", "i", "w", "e"],
    info: ["i", "w", "e"],
    warn: ["w", "e"],
    error: ["e"],
    off: [],
  };
  for (const [threshold, msgs] of Object.entries(expected) as [LogLevel, string[]][]) {
    const out = capture();
    logAll(new Logger({}, threshold, out.sink));
    assertEquals(out.records().map((r) => r.msg), msgs, `threshold ${threshold}:`);
    assertEquals(
      out.records().map((r) => r.level),
      msgs.map((m) => LEVELS.find((l) => l[0] === m)),
      `threshold ${threshold}:`,
    );
  }
});

Deno.test("log: enabled() is true from the threshold up, and 'off' is never enabled", () => {
  for (const threshold of [...LEVELS, "off"] as LogLevel[]) {
    const log = new Logger({}, threshold, () => {});
    const enabled = LEVELS.filter((l) => log.enabled(l));
    const rank = LEVELS.indexOf(threshold);
    assertEquals(enabled, rank < 0 ? [] : LEVELS.slice(rank), `threshold ${threshold}:`);
    assertEquals(log.enabled("off"), false);
  }
});

Deno.test("log: each line is one JSON object with ts, level, msg and the fields", () => {
  const out = capture();
  const log = new Logger({ component: "noise" }, "debug", out.sink);
  const before = Date.now();
  log.info("handshake\ncomplete", { ms: 3, peer: "12D3KooW", ok: true, nested: { a: [1] } });
  const after = Date.now();
  assertEquals(out.lines.length, 1);
  if (out.lines[0].includes("\n")) throw new Error("a record must stay on one line");
  const record = JSON.parse(out.lines[0]);
  assertEquals(Object.keys(record)[0], "ts");
  assertEquals(
    inOrder(withoutTs(record)),
    inOrder({
      level: "info",
      msg: "handshake\ncomplete",
      component: "noise",
      ms: 3,
      peer: "12D3KooW",
      ok: true,
      nested: { a: [1] },
    }),
  );
  const ts = Date.parse(record.ts);
  if (!(record.ts === new Date(ts).toISOString() && ts >= before && ts <= after)) {
    throw new Error(`ts should be the ISO time of the call, got ${record.ts}`);
  }
});

Deno.test("log: child() adds fields, overrides same-named ones, keeps level and sink", () => {
  const out = capture();
  const parent = new Logger({ component: "swarm", node: "a" }, "info", out.sink);
  const child = parent.child({ component: "yamux", peer: "p1" });
  const grandchild = child.child({ stream: 3 });
  child.debug("below the inherited threshold");
  child.info("from child");
  grandchild.warn("from grandchild", { peer: "p2" });
  parent.info("from parent");
  assertEquals(
    out.records().map((r) => inOrder(withoutTs(r))),
    [
      { level: "info", msg: "from child", component: "yamux", node: "a", peer: "p1" },
      {
        level: "warn",
        msg: "from grandchild",
        component: "yamux",
        node: "a",
        peer: "p2",
        stream: 3,
      },
      { level: "info", msg: "from parent", component: "swarm", node: "a" },
    ].map(inOrder),
  );
});

Deno.test("log: Error fields are written as name, message and code", () => {
  const out = capture();
  const log = new Logger({}, "debug", out.sink);
  const cause = new Error("socket hang up");
  log.error("dial failed", {
    err: new NetworkError("DIAL_REFUSED", "nothing listens on /memory/7", { cause }),
    plain: new TypeError("bad"),
    addr: "/memory/7",
  });
  assertEquals(
    inOrder(withoutTs(out.records()[0])),
    inOrder({
      level: "error",
      msg: "dial failed",
      err: { name: "NetworkError", message: "nothing listens on /memory/7", code: "DIAL_REFUSED" },
      plain: { name: "TypeError", message: "bad" },
      addr: "/memory/7",
    }),
  );
});

Deno.test("log: the default level comes from NETWORK_LOG, else warn", () => {
  const saved = Deno.env.get("NETWORK_LOG");
  try {
    for (const [value, expected] of [["debug", "debug"], ["error", "error"], ["loud", "warn"]]) {
      Deno.env.set("NETWORK_LOG", value);
      const log = new Logger({}, undefined, () => {});
      const lowest = LEVELS.find((l) => log.enabled(l));
      assertEquals(lowest, expected, `NETWORK_LOG=${value}:`);
    }
    Deno.env.set("NETWORK_LOG", "off");
    assertEquals(LEVELS.some((l) => new Logger({}, undefined, () => {}).enabled(l)), false);
    Deno.env.delete("NETWORK_LOG");
    assertEquals(LEVELS.find((l) => new Logger({}, undefined, () => {}).enabled(l)), "warn");
  } finally {
    if (saved === undefined) Deno.env.delete("NETWORK_LOG");
    else Deno.env.set("NETWORK_LOG", saved);
  }
});

Deno.test("log: bigint, bytes and circular fields never throw at the caller; fixed keys win", () => {
  const out = capture();
  const log = new Logger({ level: "spoofed" }, "debug", out.sink);
  const circular: Record<string, unknown> = {};
  circular.self = circular;
  log.info("counts", { nonce: 2n ** 64n, key: new Uint8Array([1, 255]), msg: "spoofed" });
  log.warn("loop", { circular });
  const first = JSON.parse(out.lines[0]);
  assertEquals(first.level, "info");
  assertEquals(first.msg, "counts");
  assertEquals(first.nonce, "18446744073709551616");
  assertEquals(first.key, "0x01ff");
  const second = JSON.parse(out.lines[1]);
  assertEquals(second.msg, "loop");
  assertEquals(second.unserializable.includes("circular"), true);
});
