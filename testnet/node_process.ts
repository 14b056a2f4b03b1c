/**
 * A validator node in its own process (`cli.ts node`), as the demo and the
 * chaos run drive it: started, followed through its JSON log lines
 * (commits, peers), scraped over HTTP, killed and restarted.
 *
 * @module
 */

import { ValidatorKeys } from "../validator/validator_keys.ts";
import type { NodeConfig } from "../validator/node_config.ts";

const CLI = new URL("../cli.ts", import.meta.url).pathname;

/** One validator of a local testnet: its keys, files and address. */
export interface TestnetValidator {
  /** `node0`, `node1`, ... */
  name: string;
  /** Its keys. */
  keys: ValidatorKeys;
  /** Its config file. */
  configPath: string;
  /** Its listen address. */
  listen: string;
}

/** Options for {@linkcode writeTestnet}. */
export interface TestnetOptions {
  /** Where the files go. */
  dir: string;
  /** Validators. */
  validators: number;
  /** The host of validator `i`'s address. Default: 127.0.0.1 for all. */
  host?: (i: number) => string;
  /** The port of validator `i`. Default: a free port on loopback. */
  port?: (i: number) => number | Promise<number>;
  /** The HTTP address of validator `i`'s metrics. Default `127.0.0.1:0`. */
  metrics?: (i: number) => string;
  /** Timeouts of every node. */
  timeouts?: NodeConfig["timeouts"];
}

/** A free TCP port on loopback (free when asked: a race with others is possible). */
export function freePort(): number {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (listener.addr as Deno.NetAddr).port;
  listener.close();
  return port;
}

/**
 * Writes keys (mode 0600) and configs of a testnet of `validators` nodes
 * into `dir`.
 */
export async function writeTestnet(options: TestnetOptions): Promise<TestnetValidator[]> {
  const out: TestnetValidator[] = [];
  for (let i = 0; i < options.validators; i++) {
    const host = options.host?.(i) ?? "127.0.0.1";
    const port = options.port ? await options.port(i) : freePort();
    out.push({
      name: `node${i}`,
      keys: ValidatorKeys.generate(),
      configPath: `${options.dir}/node${i}.json`,
      listen: `/ip4/${host}/tcp/${port}`,
    });
  }
  const validators = out.map((v) => v.keys.info([v.listen]));
  for (const [i, v] of out.entries()) {
    await Deno.writeTextFile(`${options.dir}/${v.name}.key`, JSON.stringify(v.keys.toJSON()), {
      mode: 0o600,
    });
    await Deno.mkdir(`${options.dir}/${v.name}-data`, { recursive: true });
    const config: NodeConfig = {
      networkId: "demo-testnet",
      keyFile: `${v.name}.key`,
      listen: [v.listen],
      validators,
      metrics: options.metrics?.(i) ?? "127.0.0.1:0",
      dataDir: `${v.name}-data`,
      timeouts: options.timeouts,
    };
    await Deno.writeTextFile(v.configPath, JSON.stringify(config, null, 2));
  }
  return out;
}

/** A JSON log line of a node. */
export type LogLine = Record<string, unknown> & { msg?: string };

/** Options for {@linkcode NodeProcess.start}. */
export interface NodeProcessOptions {
  /** The app to run. Default `consensus-demo`. */
  app?: string;
  /** Runs the command through this prefix (e.g. `["ip", "netns", "exec", "ns0"]`). */
  prefix?: string[];
  /** The consensus-demo slot timeout, ms. */
  slotTimeout?: number;
  /** Called with every log line. */
  onLine?: (line: LogLine) => void;
}

/**
 * One node process. Its commits, across restarts, are kept by height:
 * a height committed twice with different hashes is a fork.
 */
export class NodeProcess {
  /** The validator. */
  readonly validator: TestnetValidator;
  /** Hash of each committed height, from every run of this node. */
  readonly commits = new Map<number, string>();
  /** Heights committed with two different hashes (a fork, never expected). */
  readonly conflicts: string[] = [];
  /** `new peer` lines seen, over every run. */
  newPeers = 0;
  /** `lost peer` lines seen, over every run. */
  lostPeers = 0;
  /** Runs started. */
  starts = 0;
  /** Runs that ended other than by our kill or stop (crashes). */
  crashes: string[] = [];
  /** The highest height committed in the current run. */
  runHeight = 0;
  /** The highest height committed, over every run. */
  height = 0;
  /** The metrics address of the current run. */
  metrics: string | undefined;
  readonly #options: NodeProcessOptions;
  #child: Deno.ChildProcess | undefined;
  #exited: Promise<Deno.CommandStatus> | undefined;
  #expectExit = false;
  #started: PromiseWithResolvers<void> | undefined;
  #stderr: string[] = [];

  /** A node that is not running yet. */
  constructor(validator: TestnetValidator, options: NodeProcessOptions = {}) {
    this.validator = validator;
    this.#options = options;
  }

  /** Whether a run is going on. */
  get running(): boolean {
    return this.#child !== undefined;
  }

  /** Starts a run; resolves once the node logged `node started`. */
  async start(timeout = 30_000): Promise<void> {
    if (this.#child !== undefined) return;
    const args = [
      ...(this.#options.prefix ?? []),
      Deno.execPath(),
      "run",
      "--allow-net",
      "--allow-read",
      "--allow-write",
      "--allow-env",
      "--allow-sys",
      CLI,
      "node",
      "--config",
      this.validator.configPath,
      "--app",
      this.#options.app ?? "consensus-demo",
      ...(this.#options.slotTimeout ? ["--slot-timeout", String(this.#options.slotTimeout)] : []),
    ];
    const child = new Deno.Command(args[0], {
      args: args.slice(1),
      stdout: "piped",
      stderr: "piped",
      stdin: "null",
    }).spawn();
    this.#child = child;
    this.#expectExit = false;
    this.runHeight = 0;
    this.metrics = undefined;
    this.starts++;
    this.#started = Promise.withResolvers();
    const reading = Promise.all([this.#readLines(child.stdout), this.#readStderr(child.stderr)]);
    this.#exited = child.status.then(async (status) => {
      await reading;
      if (this.#child === child) this.#child = undefined;
      if (!this.#expectExit) {
        this.crashes.push(
          `${this.validator.name} exited with ${status.code}: ${
            this.#stderr.slice(-5).join(" | ")
          }`,
        );
      }
      this.#started?.reject(new Error(`${this.validator.name} exited before it started`));
      return status;
    });
    const timer = setTimeout(
      () => this.#started?.reject(new Error(`${this.validator.name} did not start in time`)),
      timeout,
    );
    try {
      await this.#started.promise;
    } finally {
      clearTimeout(timer);
    }
  }

  async #readLines(stream: ReadableStream<Uint8Array>): Promise<void> {
    let rest = "";
    for await (const chunk of stream.pipeThrough(new TextDecoderStream())) {
      rest += chunk;
      let nl: number;
      while ((nl = rest.indexOf("\n")) >= 0) {
        const text = rest.slice(0, nl);
        rest = rest.slice(nl + 1);
        let line: LogLine;
        try {
          line = JSON.parse(text);
        } catch {
          continue;
        }
        this.#onLine(line);
      }
    }
  }

  async #readStderr(stream: ReadableStream<Uint8Array>): Promise<void> {
    for await (const chunk of stream.pipeThrough(new TextDecoderStream())) {
      this.#stderr.push(...chunk.split("\n").filter((l) => l.length > 0));
      if (this.#stderr.length > 200) this.#stderr.splice(0, this.#stderr.length - 200);
    }
  }

  #onLine(line: LogLine): void {
    switch (line.msg) {
      case "node started":
        this.metrics = line.metrics as string | undefined;
        this.#started?.resolve();
        break;
      case "commit": {
        const height = Number(line.height);
        const hash = String(line.hash);
        const known = this.commits.get(height);
        if (known !== undefined && known !== hash) {
          this.conflicts.push(`${this.validator.name} height ${height}: ${known} then ${hash}`);
        }
        this.commits.set(height, hash);
        this.runHeight = Math.max(this.runHeight, height);
        this.height = Math.max(this.height, height);
        break;
      }
      case "new peer":
        this.newPeers++;
        break;
      case "lost peer":
        this.lostPeers++;
        break;
    }
    this.#options.onLine?.(line);
  }

  /** The node's `/metrics` text (empty when it cannot be read). */
  async scrape(): Promise<string> {
    if (this.metrics === undefined) return "";
    try {
      const res = await fetch(`http://${this.metrics}/metrics`, {
        signal: AbortSignal.timeout(5_000),
      });
      return await res.text();
    } catch {
      return "";
    }
  }

  /** The node's `/health` JSON (undefined when it cannot be read). */
  async health(): Promise<Record<string, unknown> | undefined> {
    if (this.metrics === undefined) return undefined;
    try {
      const res = await fetch(`http://${this.metrics}/health`, {
        signal: AbortSignal.timeout(5_000),
      });
      return await res.json();
    } catch {
      return undefined;
    }
  }

  /** Sends `signal` and waits for the exit. SIGKILL for a crash, SIGTERM for a stop. */
  async kill(
    signal: Deno.Signal = "SIGKILL",
    timeout = 15_000,
  ): Promise<Deno.CommandStatus | undefined> {
    const child = this.#child;
    if (child === undefined) return undefined;
    this.#expectExit = true;
    try {
      child.kill(signal);
    } catch {
      // already gone
    }
    const timer = setTimeout(() => {
      try {
        child.kill("SIGKILL");
      } catch {
        // already gone
      }
    }, timeout);
    try {
      return await this.#exited;
    } finally {
      clearTimeout(timer);
    }
  }
}

/** The value of a Prometheus series in `text` whose labels include all of `labels` (summed). */
export function metricValue(
  text: string,
  name: string,
  labels: Record<string, string> = {},
): number {
  let sum = 0;
  for (const line of text.split("\n")) {
    if (!line.startsWith(name)) continue;
    const rest = line.slice(name.length);
    if (rest[0] !== "{" && rest[0] !== " ") continue;
    if (!Object.entries(labels).every(([k, v]) => rest.includes(`${k}="${v}"`))) continue;
    const value = Number(line.slice(line.lastIndexOf(" ") + 1));
    if (Number.isFinite(value)) sum += value;
  }
  return sum;
}

/**
 * A quantile (0..1) of a Prometheus histogram in `text`, from its
 * cumulative buckets summed over the series matching `labels` (the upper
 * bound of the bucket it falls in); undefined without observations.
 */
export function histogramQuantile(
  text: string,
  name: string,
  q: number,
  labels: Record<string, string> = {},
): number | undefined {
  const buckets = new Map<number, number>();
  for (const line of text.split("\n")) {
    if (!line.startsWith(`${name}_bucket{`)) continue;
    if (!Object.entries(labels).every(([k, v]) => line.includes(`${k}="${v}"`))) continue;
    const le = /le="([^"]+)"/.exec(line)?.[1];
    if (le === undefined) continue;
    const bound = le === "+Inf" ? Infinity : Number(le);
    buckets.set(bound, (buckets.get(bound) ?? 0) + Number(line.slice(line.lastIndexOf(" ") + 1)));
  }
  const sorted = [...buckets].sort((a, b) => a[0] - b[0]);
  const total = sorted.at(-1)?.[1] ?? 0;
  if (total === 0) return undefined;
  for (const [bound, count] of sorted) if (count >= q * total) return bound;
  return Infinity;
}
