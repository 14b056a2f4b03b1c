/**
 * Structured logs: one JSON object a line on stderr, with a level, a message
 * and fields (peer id, protocol, address). The level comes from the
 * `NETWORK_LOG` environment variable (`debug`, `info`, `warn`, `error`, `off`;
 * default `warn`) when the process may read it.
 *
 * @module
 */

/**
 * Log levels, most verbose first.
 *
 * @example
 * ```ts
 * import { Logger, type LogLevel } from "./log.ts";
 * const level: LogLevel = "debug";
 * console.log(new Logger({}, level).enabled("info")); // true
 * ```
 */
export type LogLevel = "debug" | "info" | "warn" | "error" | "off";

const RANK: Record<LogLevel, number> = { debug: 10, info: 20, warn: 30, error: 40, off: 100 };

/**
 * Structured fields attached to a log line.
 *
 * @example
 * ```ts
 * import type { LogFields } from "./log.ts";
 * const fields: LogFields = { peer: "12D3KooW...", protocol: "/ipfs/ping/1.0.0", ms: 3 };
 * ```
 */
export type LogFields = Record<string, unknown>;

/**
 * Where log lines go; replaceable in tests.
 *
 * @example Collect lines in a test
 * ```ts
 * import { Logger, type LogSink } from "./log.ts";
 * const lines: string[] = [];
 * const sink: LogSink = (line) => lines.push(line);
 * new Logger({ component: "test" }, "info", sink).info("hello");
 * console.log(JSON.parse(lines[0]).msg); // "hello"
 * ```
 */
export type LogSink = (line: string) => void;

function envLevel(): LogLevel {
  try {
    const value = Deno.env.get("NETWORK_LOG");
    if (value !== undefined && value in RANK) return value as LogLevel;
  } catch {
    // no --allow-env: keep the default
  }
  return "warn";
}

const encoder = new TextEncoder();
const stderrSink: LogSink = (line) => {
  Deno.stderr.writeSync(encoder.encode(line + "\n"));
};

/**
 * A logger with fixed fields, e.g. the component and the peer id.
 *
 * @example
 * ```ts
 * import { Logger } from "./log.ts";
 * const log = new Logger({ component: "noise" }).child({ peer: "12D3KooW..." });
 * log.info("handshake complete", { ms: 3 });
 * ```
 */
export class Logger {
  readonly #fields: LogFields;
  readonly #level: LogLevel;
  readonly #sink: LogSink;

  /**
   * A logger that writes lines of `level` and above to `sink`.
   *
   * @param fields fields on every line
   * @param level threshold; default from `NETWORK_LOG`, else `warn`
   * @param sink where lines go; default stderr
   */
  constructor(fields: LogFields = {}, level: LogLevel = envLevel(), sink: LogSink = stderrSink) {
    this.#fields = fields;
    this.#level = level;
    this.#sink = sink;
  }

  /** A logger with more fixed fields. */
  child(fields: LogFields): Logger {
    return new Logger({ ...this.#fields, ...fields }, this.#level, this.#sink);
  }

  /** Whether lines of `level` are written; check before building costly fields. */
  enabled(level: LogLevel): boolean {
    return RANK[level] >= RANK[this.#level] && level !== "off";
  }

  /** Writes a `debug` line. */
  debug(msg: string, fields?: LogFields): void {
    this.#write("debug", msg, fields);
  }
  /** Writes an `info` line. */
  info(msg: string, fields?: LogFields): void {
    this.#write("info", msg, fields);
  }
  /** Writes a `warn` line. */
  warn(msg: string, fields?: LogFields): void {
    this.#write("warn", msg, fields);
  }
  /** Writes an `error` line. */
  error(msg: string, fields?: LogFields): void {
    this.#write("error", msg, fields);
  }

  #write(level: LogLevel, msg: string, fields?: LogFields): void {
    if (!this.enabled(level)) return;
    const ts = new Date().toISOString();
    const record: LogFields = { ts, level, msg };
    for (const source of [this.#fields, fields]) {
      if (source === undefined) continue;
      for (const [k, v] of Object.entries(source)) record[k] = loggable(v);
    }
    // Set again so no field overwrites them (their place in the line stays first).
    record.ts = ts;
    record.level = level;
    record.msg = msg;
    let line: string;
    try {
      line = JSON.stringify(record);
    } catch {
      // A circular field: say so rather than lose the line or throw at the caller.
      line = JSON.stringify({ ts: record.ts, level, msg, unserializable: Object.keys(record) });
    }
    this.#sink(line);
  }
}

function loggable(value: unknown): unknown {
  if (typeof value === "bigint") return value.toString();
  if (value instanceof Error) {
    return { name: value.name, message: value.message, code: (value as { code?: unknown }).code };
  }
  if (value instanceof Uint8Array) {
    return `0x${Array.from(value, (b) => b.toString(16).padStart(2, "0")).join("")}`;
  }
  return value;
}

/**
 * The root logger of the stack; components take `rootLogger.child({ component })`.
 *
 * @example
 * ```ts
 * import { rootLogger } from "./log.ts";
 * const log = rootLogger.child({ component: "consensus" });
 * if (log.enabled("debug")) log.debug("proposal sent", { round: 7 });
 * ```
 */
export const rootLogger: Logger = new Logger();
