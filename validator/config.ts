/**
 * Limits and timeouts of a {@linkcode ValidatorNetwork}, their defaults
 * (those of the layers below), and validation of validator sets. Every
 * refusal is a `NetworkError` with code `BAD_CONFIG` whose message starts
 * with the field's path (`limits.maxMessageSize: ...`,
 * `validators[2].noiseKey: ...`).
 *
 * @module
 */

import { PeerId } from "../netcore/identity/peer_id.ts";
import { Multiaddr } from "../netcore/multiaddr.ts";
import { NetworkError } from "../netcore/network_error.ts";
import { staticKeyHex } from "../netcore/noise/trusted_peers.ts";
import { configError } from "./_config_error.ts";
import { fromHex } from "./_hex.ts";
import type { ValidatorInfo, ValidatorKeys } from "./validator_keys.ts";

/**
 * Limits of a validator network. Defaults in {@linkcode LIMIT_DEFAULTS}.
 *
 * @example
 * ```ts
 * import type { NetworkLimits } from "./config.ts";
 * const limits: NetworkLimits = { maxMessageSize: 8 * 1024 * 1024 };
 * console.log(limits.maxMessageSize); // 8388608
 * ```
 */
export interface NetworkLimits {
  /** Largest message (DirectSend) or request/response (RPC), bytes. Default 64 MiB. */
  maxMessageSize?: number;
  /** Messages one peer's outbound queue of a protocol holds before `sendTo` waits. Default 1024. */
  outboundQueue?: number;
  /** Bytes one peer's outbound queue of a protocol holds before `sendTo` waits. Default 16 MiB. */
  outboundBytes?: number;
  /** Messages from one peer waiting for the application before its stream stops being read. Default 1024. */
  inboundQueue?: number;
  /** RPCs in flight per peer and protocol, each way. Default 100. */
  maxConcurrentRpcs?: number;
  /** Inbound streams open at once on one connection. Default 1024. */
  maxStreamsPerConnection?: number;
  /** Connections from peers outside the validator set (libp2p profile). Default 100. */
  maxUnknownInbound?: number;
  /** Inbound connections upgrading at once. Default 256. */
  maxPendingInbound?: number;
  /** Inbound connections upgrading at once from one IP. Default 64. */
  maxPendingPerAddress?: number;
  /** New connections per second from one IP, sustained. Default 200. */
  newConnectionsPerSecond?: number;
  /** New connections from one IP in a burst. Default 2000. */
  newConnectionsBurst?: number;
  /** Failed health checks in a row before a peer is dropped. Default 3. */
  healthFailures?: number;
  /** Outbound dials in flight at once (the others wait their turn). Default 32. */
  maxConcurrentDials?: number;
}

/** The defaults of {@linkcode NetworkLimits}. */
export const LIMIT_DEFAULTS: Readonly<Required<NetworkLimits>> = {
  maxMessageSize: 64 * 1024 * 1024,
  outboundQueue: 1024,
  outboundBytes: 16 * 1024 * 1024,
  inboundQueue: 1024,
  maxConcurrentRpcs: 100,
  maxStreamsPerConnection: 1024,
  maxUnknownInbound: 100,
  maxPendingInbound: 256,
  maxPendingPerAddress: 64,
  newConnectionsPerSecond: 200,
  newConnectionsBurst: 2_000,
  healthFailures: 3,
  maxConcurrentDials: 32,
};

/**
 * Timeouts and intervals of a validator network, in ms. Defaults in
 * {@linkcode TIMEOUT_DEFAULTS}.
 *
 * @example
 * ```ts
 * import type { NetworkTimeouts } from "./config.ts";
 * const timeouts: NetworkTimeouts = { rpc: 2_000, backoffMax: 5_000 };
 * console.log(timeouts.rpc); // 2000
 * ```
 */
export interface NetworkTimeouts {
  /** A whole connection upgrade (handshake and muxer). Default 10_000. */
  handshake?: number;
  /** How long a new inbound connection may stay silent. Default 3_000. */
  firstMessage?: number;
  /** An RPC's deadline unless the protocol or the call says otherwise. Default 10_000. */
  rpc?: number;
  /** Health check interval. Default 10_000. */
  healthInterval?: number;
  /** How long a health ping may go unanswered. Default 20_000. */
  healthTimeout?: number;
  /** Backoff after the first failed dial of a validator. Default 2_000. */
  backoffInitial?: number;
  /** The longest backoff between dials of a validator. Default 60_000. */
  backoffMax?: number;
  /** How long the peer with the smaller id waits before dialing a new validator (the other dials at once). Default 0. */
  dialGrace?: number;
  /** How often discovery pushes everything it knows again. Default 30_000. */
  discoveryRefresh?: number;
}

/** The defaults of {@linkcode NetworkTimeouts}. */
export const TIMEOUT_DEFAULTS: Readonly<Required<NetworkTimeouts>> = {
  handshake: 10_000,
  firstMessage: 3_000,
  rpc: 10_000,
  healthInterval: 10_000,
  healthTimeout: 20_000,
  backoffInitial: 2_000,
  backoffMax: 60_000,
  dialGrace: 0,
  discoveryRefresh: 30_000,
};

function resolve<T extends Record<string, number>>(
  given: unknown,
  defaults: T,
  path: string,
  allowZero: ReadonlySet<string>,
): T {
  if (given === undefined) return { ...defaults };
  if (typeof given !== "object" || given === null || Array.isArray(given)) {
    throw new NetworkError("BAD_CONFIG", `${path}: expected an object`);
  }
  const out: Record<string, number> = { ...defaults };
  for (const [key, value] of Object.entries(given)) {
    if (!(key in defaults)) {
      throw new NetworkError(
        "BAD_CONFIG",
        `${path}.${key}: unknown field (known: ${Object.keys(defaults).join(", ")})`,
      );
    }
    if (value === undefined) continue;
    const min = allowZero.has(key) ? 0 : 1;
    if (typeof value !== "number" || !Number.isSafeInteger(value) || value < min) {
      throw new NetworkError(
        "BAD_CONFIG",
        `${path}.${key}: expected an integer >= ${min}, got ${JSON.stringify(value)}`,
      );
    }
    out[key] = value;
  }
  return out as T;
}

/**
 * `limits` with the defaults filled in.
 *
 * @throws {NetworkError} `BAD_CONFIG` for an unknown field or a value that is not a positive integer
 * @example
 * ```ts
 * import { resolveLimits } from "./config.ts";
 * console.log(resolveLimits({ maxConcurrentRpcs: 10 }).maxConcurrentRpcs); // 10
 * ```
 */
export function resolveLimits(limits: unknown): Required<NetworkLimits> {
  return resolve(limits, LIMIT_DEFAULTS, "limits", new Set());
}

/**
 * `timeouts` with the defaults filled in.
 *
 * @throws {NetworkError} `BAD_CONFIG` for an unknown field or a value that is not a positive integer
 * @example
 * ```ts
 * import { resolveTimeouts } from "./config.ts";
 * console.log(resolveTimeouts({}).rpc); // 10000
 * ```
 */
export function resolveTimeouts(timeouts: unknown): Required<NetworkTimeouts> {
  return resolve(timeouts, TIMEOUT_DEFAULTS, "timeouts", new Set(["dialGrace"]));
}

/**
 * A checked validator-set entry.
 *
 * @example
 * ```ts ignore
 * const v: ParsedValidator = parseValidatorSet([info], keys, "validators").values().next().value!;
 * ```
 */
export interface ParsedValidator {
  /** The validator. */
  readonly peerId: PeerId;
  /** Its Noise static public key. */
  readonly noiseKey: Uint8Array;
  /** Where it listens. */
  readonly addrs: readonly Multiaddr[];
}

const ENTRY_FIELDS = new Set(["peerId", "noiseKey", "addrs"]);

/**
 * Checks a validator set: each entry's peer id, Noise key and addresses
 * parse, no peer id or key appears twice, and our own entry (when present)
 * carries our Noise key. Keyed by peer id text.
 *
 * @throws {NetworkError} `BAD_CONFIG` naming the entry and field (`validators[1].peerId: ...`)
 * @example
 * ```ts
 * import { parseValidatorSet } from "./config.ts";
 * import { ValidatorKeys } from "./validator_keys.ts";
 * const me = ValidatorKeys.generate();
 * const set = parseValidatorSet([me.info(["/memory/1"])], me, "validators");
 * console.log(set.size); // 1
 * ```
 */
export function parseValidatorSet(
  entries: unknown,
  self: ValidatorKeys | undefined,
  path: string,
): Map<string, ParsedValidator> {
  if (!Array.isArray(entries)) throw new NetworkError("BAD_CONFIG", `${path}: expected an array`);
  const out = new Map<string, ParsedValidator>();
  const keys = new Set<string>();
  entries.forEach((entry: unknown, i) => {
    const at = `${path}[${i}]`;
    if (typeof entry !== "object" || entry === null || Array.isArray(entry)) {
      throw new NetworkError("BAD_CONFIG", `${at}: expected an object`);
    }
    const e = entry as Partial<ValidatorInfo> & Record<string, unknown>;
    for (const key of Object.keys(e)) {
      if (!ENTRY_FIELDS.has(key)) {
        throw new NetworkError("BAD_CONFIG", `${at}.${key}: unknown field`);
      }
    }
    let peerId: PeerId;
    try {
      if (typeof e.peerId !== "string") throw new Error("expected a string");
      peerId = PeerId.parse(e.peerId);
    } catch (err) {
      throw configError(err, `${at}.peerId`);
    }
    let noiseKey: Uint8Array;
    try {
      noiseKey = fromHex(e.noiseKey, "noiseKey");
      if (noiseKey.length !== 32) throw new Error("must be 32 bytes (64 hex digits)");
    } catch (err) {
      throw configError(err, `${at}.noiseKey`);
    }
    const addrsField = e.addrs ?? [];
    if (!Array.isArray(addrsField)) {
      throw new NetworkError("BAD_CONFIG", `${at}.addrs: expected an array of multiaddrs`);
    }
    const addrs = addrsField.map((text: unknown, j: number) => {
      try {
        if (typeof text !== "string") throw new Error("expected a string");
        const addr = Multiaddr.parse(text);
        if (addr.peerId !== undefined && addr.peerId !== peerId.toString()) {
          throw new Error(`its /p2p/ id is not ${peerId}`);
        }
        return addr.withoutPeerId();
      } catch (err) {
        throw configError(err, `${at}.addrs[${j}]`);
      }
    });
    const id = peerId.toString();
    const keyHex = staticKeyHex(noiseKey);
    if (out.has(id)) {
      throw new NetworkError("BAD_CONFIG", `${at}.peerId: duplicate validator ${id}`);
    }
    if (keys.has(keyHex)) {
      throw new NetworkError(
        "BAD_CONFIG",
        `${at}.noiseKey: duplicate key (another validator has it)`,
      );
    }
    if (self !== undefined && self.peerId.equals(peerId)) {
      if (keyHex !== staticKeyHex(self.noise.publicKey)) {
        throw new NetworkError(
          "BAD_CONFIG",
          `${at}.noiseKey: our own entry has another key than ours`,
        );
      }
    }
    keys.add(keyHex);
    out.set(id, { peerId, noiseKey, addrs });
  });
  return out;
}
