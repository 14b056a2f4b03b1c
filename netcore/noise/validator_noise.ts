/**
 * The validator handshake: `Noise_IK_25519_ChaChaPoly_SHA256`, after the idea
 * of Libra/Diem's network noise. The dialer already knows the responder's
 * static X25519 key (from the validator set), so the handshake takes one
 * round trip and the responder can refuse a dialer it does not trust before
 * doing the second DH:
 *
 * ```text
 * IK:
 *   <- s
 *   ...
 *   -> e, es, s, ss          (payload: 8-byte big-endian u64 timestamp, ms since the epoch)
 *   <- e, ee, se             (payload: empty)
 * ```
 *
 * Each message travels with the libp2p-noise 2-byte length prefix; the sizes
 * are fixed (104 and 48 bytes) and anything else is refused before it is
 * parsed. Then both ends talk through a {@linkcode SecureChannel}.
 *
 * Responder checks, in order, each refused with `NetworkError("UNAUTHORIZED")`,
 * counted in `network_noise_rejected_total{profile="validator",reason}` and
 * logged with the key, before any application byte is read:
 * 1. `unknown_peer` (mode `"mutual"`): the dialer's static key is not in the
 *    trusted set. Checked as soon as the key is decrypted, after the one DH it
 *    takes (`es`) and before the `ss` DH.
 * 2. `replay`: the timestamp is not newer than the last one accepted from the
 *    same static key ({@linkcode ReplayGuard}).
 * 3. `clock_skew`: the timestamp is further than `maxClockSkew` from our clock.
 *    The window bounds how long a captured first message stays usable against
 *    a responder that restarted and so forgot its replay memory.
 *
 * Prologue: `"validator-noise/1 network=" || networkId`. Diem binds the
 * dialer's claimed peer id and the responder key in its prologue; here the
 * responder key is already hashed in as IK's pre-message (`<- s`), and the
 * dialer's identity is its static key itself (looked up in the trusted set
 * once `ss` authenticates it), so sending a claimed id in clear text would
 * only reveal to observers which validator dials, which IK otherwise hides.
 * What the prologue does bind is the protocol version and the network, so a
 * handshake meant for one chain (or testnet) never completes on another.
 *
 * @module
 */

import { rootLogger } from "../log.ts";
import { handshakesCompleted, handshakesRejected } from "./_metrics.ts";
import type { Multiaddr } from "../multiaddr.ts";
import { NetworkError } from "../network_error.ts";
import type { Connection } from "../transport/connection.ts";
import type { Upgrade, UpgradeContext } from "../transport/transport.ts";
import { type CryptoBackend, getCryptoBackend, type KeyPair } from "./crypto.ts";
import { HandshakeState } from "./handshake_state.ts";
import { EMPTY, TAG_LENGTH } from "./_frame.ts";
import { runHandshake } from "./_handshake_io.ts";
import { ReplayGuard } from "./replay_guard.ts";
import { SecureChannel, type SecureChannelInit } from "./secure_channel.ts";
import { staticKeyHex, type TrustedPeers } from "./trusted_peers.ts";

/**
 * The Noise protocol of the validator handshake.
 *
 * @example
 * ```ts
 * import { VALIDATOR_NOISE_PROTOCOL_NAME } from "./validator_noise.ts";
 * console.log(VALIDATOR_NOISE_PROTOCOL_NAME); // "Noise_IK_25519_ChaChaPoly_SHA256"
 * ```
 */
export const VALIDATOR_NOISE_PROTOCOL_NAME = "Noise_IK_25519_ChaChaPoly_SHA256";

const DH_LEN = 32;
const TIMESTAMP_LEN = 8;
/** e (32) || encrypted s (32 + 16) || encrypted timestamp (8 + 16). */
const MESSAGE_1_LEN = DH_LEN + (DH_LEN + TAG_LENGTH) + (TIMESTAMP_LEN + TAG_LENGTH);
/** e (32) || encrypted empty payload (16). */
const MESSAGE_2_LEN = DH_LEN + TAG_LENGTH;

/**
 * Which dialers the responder accepts:
 * - `"mutual"`: only static keys in `trustedPeers` (validator to validator);
 * - `"accept-any-dialer"`: any static key (a public full node serving
 *   unknown clients); replay and clock checks still apply.
 *
 * @example
 * ```ts
 * import type { ValidatorNoiseMode } from "./validator_noise.ts";
 * const publicFullNode: ValidatorNoiseMode = "accept-any-dialer";
 * ```
 */
export type ValidatorNoiseMode = "mutual" | "accept-any-dialer";

/**
 * Options for {@linkcode validatorNoise}. Defaults in {@linkcode VALIDATOR_NOISE_DEFAULTS}.
 *
 * @example
 * ```ts
 * import { TrustedPeerSet } from "./trusted_peers.ts";
 * import type { ValidatorNoiseOptions } from "./validator_noise.ts";
 * const options: ValidatorNoiseOptions = {
 *   trustedPeers: new TrustedPeerSet(),
 *   networkId: "mainnet",
 *   maxClockSkew: 30_000,
 * };
 * ```
 */
export interface ValidatorNoiseOptions {
  /** Who may dial us. Default `"mutual"`. */
  mode?: ValidatorNoiseMode;
  /**
   * The trusted static keys. Required in `"mutual"` mode; in
   * `"accept-any-dialer"` mode it only names the peers it knows.
   */
  trustedPeers?: TrustedPeers;
  /**
   * The responder's static key when we dial: a key, or a lookup by the
   * dialed address. Required to dial; a dial to an address it returns
   * nothing for fails with `HANDSHAKE_FAILED`.
   */
  remoteStaticKey?: Uint8Array | ((remoteAddr: Multiaddr) => Uint8Array | undefined);
  /** Bound into the prologue: both ends must agree. Default `""`. */
  networkId?: string;
  /** Milliseconds the whole handshake may take. Default 10_000. */
  handshakeTimeout?: number;
  /** Largest accepted distance, in ms, between a dialer's timestamp and our clock. Default 60_000. */
  maxClockSkew?: number;
  /** Replay memory; share one between upgrades that share a static key. Default: a new one. */
  replayGuard?: ReplayGuard;
  /** Milliseconds since the epoch. Default `Date.now`. */
  clock?: () => number;
  /** The crypto implementation. Default `getCryptoBackend()`. */
  backend?: CryptoBackend;
}

/**
 * The defaults of {@linkcode ValidatorNoiseOptions}.
 *
 * @example
 * ```ts
 * import { VALIDATOR_NOISE_DEFAULTS } from "./validator_noise.ts";
 * console.log(VALIDATOR_NOISE_DEFAULTS.maxClockSkew); // 60000
 * ```
 */
export const VALIDATOR_NOISE_DEFAULTS = {
  mode: "mutual",
  networkId: "",
  handshakeTimeout: 10_000,
  maxClockSkew: 60_000,
} as const;

/**
 * A connection secured by the validator handshake: a
 * {@linkcode SecureChannel} that also knows who the peer is in the trusted
 * set.
 *
 * @example
 * ```ts ignore
 * import type { ValidatorNoiseConnection } from "./validator_noise.ts";
 * function who(conn: ValidatorNoiseConnection): string {
 *   return conn.remotePeer ?? "anonymous";
 * }
 * ```
 */
export class ValidatorNoiseConnection extends SecureChannel {
  readonly #remotePeer: string | undefined;

  /** Built by {@linkcode validatorNoise} at the end of the handshake. */
  constructor(init: SecureChannelInit, remotePeer: string | undefined) {
    super(init);
    this.#remotePeer = remotePeer;
  }

  /**
   * The peer's name in the trusted set; `undefined` for a dialer admitted by
   * `"accept-any-dialer"` mode without being in it.
   */
  get remotePeer(): string | undefined {
    return this.#remotePeer;
  }
}

const log = rootLogger.child({ component: "noise", profile: "validator" });

/** An `UNAUTHORIZED` refusal with the label it is counted under. */
class Refusal extends NetworkError {
  readonly reason: string;
  readonly staticKey: string;
  constructor(reason: string, staticKey: Uint8Array, message: string) {
    super("UNAUTHORIZED", message);
    this.reason = reason;
    this.staticKey = staticKeyHex(staticKey);
  }
}

function encodeTimestamp(ms: number): Uint8Array {
  const out = new Uint8Array(TIMESTAMP_LEN);
  new DataView(out.buffer).setBigUint64(0, BigInt(ms));
  return out;
}

function decodeTimestamp(payload: Uint8Array): number {
  if (payload.length !== TIMESTAMP_LEN) {
    throw new NetworkError(
      "HANDSHAKE_FAILED",
      `IK message 1 payload: ${payload.length} bytes, expected an 8-byte timestamp`,
    );
  }
  const value = new DataView(payload.buffer, payload.byteOffset, TIMESTAMP_LEN).getBigUint64(0);
  // Beyond 2^53 ms (year 287396) it is nonsense anyway; the clock check refuses it.
  return value > BigInt(Number.MAX_SAFE_INTEGER) ? Number.MAX_SAFE_INTEGER : Number(value);
}

/**
 * The validator handshake upgrade for one static key: run it on a raw
 * connection to get a {@linkcode ValidatorNoiseConnection}. The dialer runs
 * the IK initiator and must know the responder's static key.
 *
 * Errors (`NetworkError`, the connection is aborted in every case):
 * - `UNAUTHORIZED` on the responder for an unknown dialer, a replayed first
 *   message or a timestamp outside the clock window (see the module doc);
 * - `HANDSHAKE_FAILED` for a wrong responder key (the dialer cannot decrypt
 *   the reply; the responder cannot decrypt the dialer's key), a tampered,
 *   truncated, oversized or out-of-order message, or a connection lost
 *   mid-handshake;
 * - `TIMEOUT` when the handshake takes longer than `handshakeTimeout`;
 * - `ABORTED` when the context's signal fires.
 *
 * @throws {TypeError} at creation, in `"mutual"` mode without `trustedPeers`
 *
 * @example
 * ```ts ignore
 * import { getCryptoBackend } from "./crypto.ts";
 * import { TrustedPeerSet } from "./trusted_peers.ts";
 * import { validatorNoise } from "./validator_noise.ts";
 * const { dh } = getCryptoBackend();
 * const me = dh.generateKeyPair(), other = dh.generateKeyPair();
 * const trusted = new TrustedPeerSet([[other.publicKey, "validator-2"]]);
 * const secure = validatorNoise(me, { trustedPeers: trusted, remoteStaticKey: other.publicKey });
 * // const conn = await secure(raw, { role: "dialer", signal });
 * ```
 */
export function validatorNoise(
  staticKey: KeyPair,
  options: ValidatorNoiseOptions = {},
): Upgrade<Connection, ValidatorNoiseConnection> {
  const mode = options.mode ?? VALIDATOR_NOISE_DEFAULTS.mode;
  const trustedPeers = options.trustedPeers;
  if (mode === "mutual" && trustedPeers === undefined) {
    throw new TypeError('validatorNoise: "mutual" mode needs trustedPeers');
  }
  const backend = options.backend ?? getCryptoBackend();
  const handshakeTimeout = options.handshakeTimeout ?? VALIDATOR_NOISE_DEFAULTS.handshakeTimeout;
  const maxClockSkew = options.maxClockSkew ?? VALIDATOR_NOISE_DEFAULTS.maxClockSkew;
  const replayGuard = options.replayGuard ?? new ReplayGuard();
  const clock = options.clock ?? Date.now;
  const prologue = new TextEncoder().encode(
    `validator-noise/1 network=${options.networkId ?? VALIDATOR_NOISE_DEFAULTS.networkId}`,
  );
  // Strictly increasing even for two dials in one millisecond, which the
  // responder would otherwise take for a replay.
  let lastSent = 0;

  function responderKeyFor(conn: Connection): Uint8Array {
    const option = options.remoteStaticKey;
    const key = typeof option === "function" ? option(conn.remoteAddr) : option;
    if (key === undefined || key.length !== DH_LEN) {
      throw new NetworkError(
        "HANDSHAKE_FAILED",
        `no static key known for the validator at ${conn.remoteAddr}`,
      );
    }
    return key;
  }

  async function dial(conn: Connection, context: UpgradeContext) {
    let rs: Uint8Array;
    try {
      rs = responderKeyFor(conn);
    } catch (err) {
      conn.abort(err);
      throw err;
    }
    const hs = new HandshakeState({
      protocolName: VALIDATOR_NOISE_PROTOCOL_NAME,
      initiator: true,
      prologue,
      s: staticKey,
      rs,
      backend,
    });
    const outcome = await runHandshake(
      conn,
      context,
      handshakeTimeout,
      "IK handshake",
      async (io) => {
        lastSent = Math.max(clock(), lastSent + 1);
        await io.send(hs.writeMessage(encodeTimestamp(lastSent)));
        const message2 = await io.receive({
          min: MESSAGE_2_LEN,
          max: MESSAGE_2_LEN,
          what: "IK message 2",
        });
        const payload = hs.readMessage(message2);
        if (payload.length !== 0 || !hs.isComplete) {
          throw new NetworkError("HANDSHAKE_FAILED", "IK message 2 carries an unexpected payload");
        }
      },
    );
    return { hs, outcome, remotePeer: trustedPeers?.get(rs) };
  }

  async function accept(conn: Connection, context: UpgradeContext) {
    let remotePeer: string | undefined;
    // Kept apart so a refusal reaches the caller as thrown, whatever
    // readMessage makes of an exception from the callback.
    let refusal: Refusal | undefined;
    const hs = new HandshakeState({
      protocolName: VALIDATOR_NOISE_PROTOCOL_NAME,
      initiator: false,
      prologue,
      s: staticKey,
      backend,
      onRemoteStatic(key) {
        remotePeer = trustedPeers?.get(key);
        if (remotePeer === undefined && mode === "mutual") {
          refusal = new Refusal(
            "unknown_peer",
            key,
            `static key ${staticKeyHex(key)} is not trusted`,
          );
          throw refusal;
        }
      },
    });
    const outcome = await runHandshake(
      conn,
      context,
      handshakeTimeout,
      "IK handshake",
      async (io) => {
        const message1 = await io.receive({
          min: MESSAGE_1_LEN,
          max: MESSAGE_1_LEN,
          what: "IK message 1",
        });
        let payload: Uint8Array;
        try {
          payload = hs.readMessage(message1);
        } catch (err) {
          throw refusal ?? err;
        }
        const timestamp = decodeTimestamp(payload);
        const key = hs.remoteStaticKey!;
        if (!replayGuard.isFresh(key, timestamp)) {
          throw new Refusal(
            "replay",
            key,
            `timestamp ${timestamp} from ${staticKeyHex(key)} is not newer than the last accepted`,
          );
        }
        const now = clock();
        if (Math.abs(timestamp - now) > maxClockSkew) {
          throw new Refusal(
            "clock_skew",
            key,
            `timestamp ${timestamp} from ${staticKeyHex(key)} is ${
              timestamp - now
            } ms off our clock (window ${maxClockSkew} ms)`,
          );
        }
        replayGuard.accept(key, timestamp);
        await io.send(hs.writeMessage(EMPTY));
        if (!hs.isComplete) {
          throw new NetworkError("HANDSHAKE_FAILED", "IK handshake did not complete");
        }
      },
    );
    return { hs, outcome, remotePeer };
  }

  return async (conn: Connection, context: UpgradeContext) => {
    const initiator = context.role === "dialer";
    try {
      const { hs, outcome, remotePeer } = initiator
        ? await dial(conn, context)
        : await accept(conn, context);
      const [initiatorToResponder, responderToInitiator] = hs.split();
      handshakesCompleted.labels({ profile: "validator", role: context.role }).inc();
      return new ValidatorNoiseConnection({
        connection: conn,
        reader: outcome.reader,
        writer: outcome.writer,
        encrypter: initiator ? initiatorToResponder : responderToInitiator,
        decrypter: initiator ? responderToInitiator : initiatorToResponder,
        remoteStaticKey: hs.remoteStaticKey!,
        handshakeHash: hs.handshakeHash,
      }, remotePeer);
    } catch (err) {
      if (err instanceof Refusal) {
        handshakesRejected.labels({ profile: "validator", reason: err.reason }).inc();
        log.warn("handshake refused", {
          role: context.role,
          reason: err.reason,
          staticKey: err.staticKey,
          error: err,
        });
      } else {
        const reason = NetworkError.is(err) ? err.code.toLowerCase() : "error";
        handshakesRejected.labels({ profile: "validator", reason }).inc();
        log.debug("handshake failed", { role: context.role, error: err });
      }
      throw err;
    }
  };
}
