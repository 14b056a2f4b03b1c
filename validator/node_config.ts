/**
 * The command-line node's config file (`cli.ts node --config FILE`), JSON:
 *
 * ```json
 * {
 *   "networkId": "testnet",
 *   "keyFile": "node0.key",
 *   "listen": ["/ip4/127.0.0.1/tcp/7000"],
 *   "validators": [{ "peerId": "12D3KooW...", "noiseKey": "ab01...", "addrs": ["/ip4/127.0.0.1/tcp/7000"] }],
 *   "metrics": "127.0.0.1:9100",
 *   "seeds": ["/ip4/127.0.0.1/tcp/7001/p2p/12D3KooW..."],
 *   "limits": { "maxMessageSize": 16777216 },
 *   "timeouts": { "rpc": 5000 }
 * }
 * ```
 *
 * `keyFile` is relative to the config file's folder; the validator set
 * must hold our own entry, with our Noise key. Optional: `metrics`,
 * `seeds`, `limits`, `timeouts`, `profile` (`validator` or `libp2p`) and
 * `dataDir` (where an app keeps state across restarts; relative to the
 * config file's folder). Anything else is refused, with the field named.
 *
 * @module
 */

import { Multiaddr } from "../netcore/multiaddr.ts";
import { NetworkError } from "../netcore/network_error.ts";
import {
  type NetworkLimits,
  type NetworkTimeouts,
  parseValidatorSet,
  resolveLimits,
  resolveTimeouts,
} from "./config.ts";
import { configError } from "./_config_error.ts";
import { type ValidatorInfo, ValidatorKeys } from "./validator_keys.ts";
import type { ValidatorNetworkOptions } from "./validator_network.ts";

/**
 * A node config as the file holds it.
 *
 * @example
 * ```ts
 * import type { NodeConfig } from "./node_config.ts";
 * const config: NodeConfig = { networkId: "testnet", keyFile: "a.key", listen: [], validators: [] };
 * console.log(config.networkId); // "testnet"
 * ```
 */
export interface NodeConfig {
  /** The network's name. */
  networkId: string;
  /** The key file written by `cli.ts keygen`. */
  keyFile: string;
  /** Addresses to listen on. */
  listen: string[];
  /** The validator set, ours included. */
  validators: ValidatorInfo[];
  /** `host:port` of the HTTP server of `/metrics` and `/health`. Default: none. */
  metrics?: string;
  /** More addresses of validators, each ending in its `/p2p/` id. */
  seeds?: string[];
  /** Limits (see `NetworkLimits`). */
  limits?: NetworkLimits;
  /** Timeouts (see `NetworkTimeouts`). */
  timeouts?: NetworkTimeouts;
  /** The security profile. Default `validator`. */
  profile?: "validator" | "libp2p";
  /** Where an app keeps state across restarts. Default: none. */
  dataDir?: string;
}

const FIELDS: Record<keyof NodeConfig, boolean> = {
  networkId: true,
  keyFile: true,
  listen: true,
  validators: true,
  metrics: false,
  seeds: false,
  limits: false,
  timeouts: false,
  profile: false,
  dataDir: false,
};

function bad(field: string, message: string): NetworkError {
  return new NetworkError("BAD_CONFIG", `${field}: ${message}`);
}

function stringArray(value: unknown, field: string): string[] {
  if (!Array.isArray(value) || !value.every((v) => typeof v === "string")) {
    throw bad(field, "expected an array of strings");
  }
  return value;
}

/**
 * The `host` and `port` of a `metrics` address.
 *
 * @throws {NetworkError} `BAD_CONFIG` naming `metrics`
 * @example
 * ```ts
 * import { parseHostPort } from "./node_config.ts";
 * console.log(parseHostPort("127.0.0.1:9100")); // { hostname: "127.0.0.1", port: 9100 }
 * ```
 */
export function parseHostPort(text: string, field = "metrics"): { hostname: string; port: number } {
  const match = /^(.+):(\d{1,5})$/.exec(text);
  const port = match ? Number(match[2]) : NaN;
  if (match === null || port > 65535) {
    throw bad(field, `expected host:port, got ${JSON.stringify(text)}`);
  }
  const hostname = match[1].replace(/^\[(.*)\]$/, "$1");
  return { hostname, port };
}

/**
 * Checks a config's JSON: every field's type, the validator set, the
 * addresses, limits and timeouts. Does not read the key file.
 *
 * @throws {NetworkError} `BAD_CONFIG` whose message starts with the field
 * @example
 * ```ts
 * import { parseNodeConfig } from "./node_config.ts";
 * try {
 *   parseNodeConfig({ networkId: "t", keyFile: "k", listen: ["nope"], validators: [] });
 * } catch (err) {
 *   console.log((err as Error).message.startsWith("listen[0]")); // true
 * }
 * ```
 */
export function parseNodeConfig(json: unknown): NodeConfig {
  if (typeof json !== "object" || json === null || Array.isArray(json)) {
    throw bad("config", "expected a JSON object");
  }
  const raw = json as Record<string, unknown>;
  for (const key of Object.keys(raw)) {
    if (!(key in FIELDS)) {
      throw bad(key, `unknown field (known: ${Object.keys(FIELDS).join(", ")})`);
    }
  }
  for (const [key, required] of Object.entries(FIELDS)) {
    if (required && raw[key] === undefined) throw bad(key, "missing");
  }
  if (typeof raw.networkId !== "string" || raw.networkId.length === 0) {
    throw bad("networkId", "expected a non-empty string");
  }
  if (typeof raw.keyFile !== "string" || raw.keyFile.length === 0) {
    throw bad("keyFile", "expected a path");
  }
  const listen = stringArray(raw.listen, "listen");
  listen.forEach((a, i) => {
    try {
      Multiaddr.parse(a);
    } catch (err) {
      throw configError(err, `listen[${i}]`);
    }
  });
  parseValidatorSet(raw.validators, undefined, "validators");
  if (raw.metrics !== undefined) {
    if (typeof raw.metrics !== "string") throw bad("metrics", "expected host:port");
    parseHostPort(raw.metrics);
  }
  const seeds = raw.seeds === undefined ? undefined : stringArray(raw.seeds, "seeds");
  seeds?.forEach((a, i) => {
    try {
      if (Multiaddr.parse(a).peerId === undefined) throw new Error("must end in /p2p/<peer id>");
    } catch (err) {
      throw configError(err, `seeds[${i}]`);
    }
  });
  resolveLimits(raw.limits);
  resolveTimeouts(raw.timeouts);
  if (raw.profile !== undefined && raw.profile !== "validator" && raw.profile !== "libp2p") {
    throw bad("profile", `expected "validator" or "libp2p"`);
  }
  if (raw.dataDir !== undefined && typeof raw.dataDir !== "string") {
    throw bad("dataDir", "expected a path");
  }
  return raw as unknown as NodeConfig;
}

/** A config file, read and checked, with the keys and the network's options. */
export interface LoadedNodeConfig {
  /** The config. */
  config: NodeConfig;
  /** The keys of `keyFile`. */
  keys: ValidatorKeys;
  /** `dataDir`, resolved against the config's folder. */
  dataDir: string | undefined;
  /** Options for `new ValidatorNetwork(...)` (add a logger and metrics). */
  options: ValidatorNetworkOptions;
}

function resolvePath(base: string, path: string): string {
  return path.startsWith("/") ? path : `${base}/${path}`;
}

/**
 * Reads and checks the config file at `path` and its key file; our own
 * entry must be in the validator set, with our key.
 *
 * @throws {NetworkError} `BAD_CONFIG` naming the field (`config` when the
 *   file cannot be read or is not JSON, `keyFile` when the key file cannot)
 * @example
 * ```ts ignore
 * const { options } = await loadNodeConfig("testnet/node0.json");
 * const net = new ValidatorNetwork({ ...options, logger });
 * ```
 */
export async function loadNodeConfig(path: string): Promise<LoadedNodeConfig> {
  let text: string;
  try {
    text = await Deno.readTextFile(path);
  } catch (err) {
    throw configError(err, `config: cannot read ${path}`);
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (err) {
    throw configError(err, `config: ${path} is not JSON`);
  }
  const config = parseNodeConfig(json);
  const base = path.includes("/") ? path.slice(0, path.lastIndexOf("/")) || "/" : ".";
  const keyPath = resolvePath(base, config.keyFile);
  let keyText: string;
  try {
    keyText = await Deno.readTextFile(keyPath);
  } catch (err) {
    throw configError(err, `keyFile: cannot read ${keyPath}`);
  }
  let keys: ValidatorKeys;
  try {
    keys = ValidatorKeys.fromJSON(JSON.parse(keyText));
  } catch (err) {
    throw configError(err, `keyFile: ${keyPath}`);
  }
  const set = parseValidatorSet(config.validators, keys, "validators");
  if (!set.has(keys.peerId.toString())) {
    throw bad("validators", `our own entry (${keys.peerId}) is missing`);
  }
  return {
    config,
    keys,
    dataDir: config.dataDir === undefined ? undefined : resolvePath(base, config.dataDir),
    options: {
      keys,
      networkId: config.networkId,
      listen: config.listen,
      validators: config.validators,
      seeds: config.seeds,
      limits: config.limits,
      timeouts: config.timeouts,
      profile: config.profile,
    },
  };
}
