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
 * 1. `unknown_peer`: the dialer's static key is not in the trusted set.
 *    Checked as soon as the key is decrypted, after the one DH it takes
 *    (`es`) and before the `ss` DH.
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

import { PeerId } from "../identity/peer_id.ts";
import { type Logger, rootLogger } from "../log.ts";
import { defaultMetrics, type Metrics } from "../metrics.ts";
import { noiseMetrics } from "./_metrics.ts";
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
  /**
   * Who we trust: the static key of every validator, mapped to its peer id.
   * The responder refuses a dialer whose key is not in it; the dialer finds
   * the responder's key in it by the peer id of the dialed address (its
   * `/p2p/` part). Read at every handshake, so a change applies to the next.
   */
  trustedPeers: TrustedPeers;
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
  /** Where handshakes and refusals are counted. Default `defaultMetrics`. */
  metrics?: Metrics;
  /** Where refusals are logged. Default `rootLogger`. */
  logger?: Logger;
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
  networkId: "",
  handshakeTimeout: 10_000,
  maxClockSkew: 60_000,
} as const;

/**
 * A connection secured by the validator handshake: a
 * {@linkcode SecureChannel} that also knows which trusted peer is at the
 * other end.
 *
 * @example
 * ```ts
 * import type { ValidatorNoiseConnection } from "./validator_noise.ts";
 * function who(conn: ValidatorNoiseConnection): string {
 *   return conn.remotePeer.toString();
 * }
 * ```
 */
export class ValidatorNoiseConnection extends SecureChannel {
  readonly #remotePeer: PeerId;

  /** Built by {@linkcode validatorNoise} at the end of the handshake. */
  constructor(init: SecureChannelInit, remotePeer: PeerId) {
    super(init);
    this.#remotePeer = remotePeer;
  }

  /** The peer id its static key has in the trusted set. */
  get remotePeer(): PeerId {
    return this.#remotePeer;
  }
}

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
 * the IK initiator; it must dial an address that names the peer (`/p2p/`)
 * whose static key is in the trusted set.
 *
 * Errors (`NetworkError`, the connection is aborted in every case):
 * - `UNAUTHORIZED` on the responder for an unknown dialer, a replayed first
 *   message or a timestamp outside the clock window (see the module doc);
 *   on the dialer for a peer that is not (or no longer) trusted;
 * - `HANDSHAKE_FAILED` for a wrong responder key (the dialer cannot decrypt
 *   the reply; the responder cannot decrypt the dialer's key), a tampered,
 *   truncated, oversized or out-of-order message, or a connection lost
 *   mid-handshake;
 * - `BAD_ADDRESS` on the dialer when the dialed address names no peer;
 * - `TIMEOUT` when the handshake takes longer than `handshakeTimeout`;
 * - `ABORTED` when the context's signal fires.
 *
 * @example Both ends of a handshake over an in-memory connection
 * ```ts
 * import { Ed25519Identity } from "../identity/mod.ts";
 * import { Multiaddr } from "../multiaddr.ts";
 * import { MemoryTransport } from "../transport/mod.ts";
 * import { getCryptoBackend } from "./crypto.ts";
 * import { TrustedPeerSet } from "./trusted_peers.ts";
 * import { validatorNoise } from "./validator_noise.ts";
 *
 * const { dh } = getCryptoBackend();
 * const [a, b] = [1, 2].map(() => ({
 *   peerId: Ed25519Identity.generate().peerId,
 *   staticKey: dh.generateKeyPair(),
 * }));
 * const trustedPeers = new TrustedPeerSet([a, b].map((v) => [v.staticKey.publicKey, v.peerId]));
 * const transport = new MemoryTransport();
 * const listener = await transport.listen(Multiaddr.parse("/memory/0"));
 * const accepted = (async () => {
 *   for await (const conn of listener) return conn;
 * })();
 * const raw = await transport.dial(listener.addr);
 * const signal = new AbortController().signal;
 * const [dialed, answered] = await Promise.all([
 *   validatorNoise(a.staticKey, { trustedPeers, networkId: "testnet" })(raw, {
 *     role: "dialer",
 *     signal,
 *     dialedAddr: listener.addr.withPeerId(b.peerId.toString()), // names the peer to expect
 *   }),
 *   validatorNoise(b.staticKey, { trustedPeers, networkId: "testnet" })((await accepted)!, {
 *     role: "listener",
 *     signal,
 *   }),
 * ]);
 * console.log(dialed.remotePeer.equals(b.peerId)); // true
 * console.log(answered.remotePeer.equals(a.peerId)); // true
 * dialed.abort();
 * answered.abort();
 * await listener.close();
 * ```
 */
export function validatorNoise(
  staticKey: KeyPair,
  options: ValidatorNoiseOptions,
): Upgrade<Connection, ValidatorNoiseConnection> {
  const trustedPeers = options.trustedPeers;
  const backend = options.backend ?? getCryptoBackend();
  const handshakeTimeout = options.handshakeTimeout ?? VALIDATOR_NOISE_DEFAULTS.handshakeTimeout;
  const maxClockSkew = options.maxClockSkew ?? VALIDATOR_NOISE_DEFAULTS.maxClockSkew;
  const replayGuard = options.replayGuard ?? new ReplayGuard();
  const clock = options.clock ?? Date.now;
  const { completed, rejected } = noiseMetrics(options.metrics ?? defaultMetrics, "validator");
  const log = (options.logger ?? rootLogger).child({ component: "noise", profile: "validator" });
  const prologue = new TextEncoder().encode(
    `validator-noise/1 network=${options.networkId ?? VALIDATOR_NOISE_DEFAULTS.networkId}`,
  );
  // Strictly increasing even for two dials in one millisecond, which the
  // responder would otherwise take for a replay.
  let lastSent = 0;

  /** The peer the dialer dials, and its static key from the trusted set. */
  function responderOf(context: UpgradeContext): { peer: PeerId; key: Uint8Array } {
    const named = context.dialedAddr?.peerId;
    if (named === undefined) {
      throw new NetworkError(
        "BAD_ADDRESS",
        `a validator is dialed by peer id: ${context.dialedAddr} names none`,
      );
    }
    const peer = parsePeerId(named);
    const key = trustedPeers.staticKeyOf(peer);
    if (key === undefined) {
      throw new NetworkError("UNAUTHORIZED", `${peer} is not a trusted validator`);
    }
    return { peer, key };
  }

  async function dial(conn: Connection, context: UpgradeContext) {
    let responder: { peer: PeerId; key: Uint8Array };
    try {
      responder = responderOf(context);
    } catch (err) {
      conn.abort(err);
      throw err;
    }
    const hs = new HandshakeState({
      protocolName: VALIDATOR_NOISE_PROTOCOL_NAME,
      initiator: true,
      prologue,
      s: staticKey,
      rs: responder.key,
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
    return { hs, outcome, remotePeer: responder.peer };
  }

  async function accept(conn: Connection, context: UpgradeContext) {
    let remotePeer: PeerId | undefined;
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
        remotePeer = trustedPeers.get(key);
        if (remotePeer === undefined) {
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
    return { hs, outcome, remotePeer: remotePeer! };
  }

  return async (conn: Connection, context: UpgradeContext) => {
    const initiator = context.role === "dialer";
    try {
      const { hs, outcome, remotePeer } = initiator
        ? await dial(conn, context)
        : await accept(conn, context);
      const [initiatorToResponder, responderToInitiator] = hs.split();
      completed.labels({ role: context.role }).inc();
      return new ValidatorNoiseConnection({
        connection: conn,
        reader: outcome.reader,
        encrypter: initiator ? initiatorToResponder : responderToInitiator,
        decrypter: initiator ? responderToInitiator : initiatorToResponder,
        remoteStaticKey: hs.remoteStaticKey!,
        handshakeHash: hs.handshakeHash,
      }, remotePeer);
    } catch (err) {
      if (err instanceof Refusal) {
        rejected.labels({ reason: err.reason }).inc();
        log.warn("handshake refused", {
          role: context.role,
          reason: err.reason,
          staticKey: err.staticKey,
          error: err,
        });
      } else {
        const reason = NetworkError.is(err) ? err.code.toLowerCase() : "error";
        rejected.labels({ reason }).inc();
        log.debug("handshake failed", { role: context.role, error: err });
      }
      throw err;
    }
  };
}

/** The peer id of a dialed address, as a `BAD_ADDRESS` when it is malformed. */
function parsePeerId(text: string): PeerId {
  try {
    return PeerId.parse(text);
  } catch (err) {
    throw NetworkError.wrap(err, "BAD_ADDRESS", "the dialed address's /p2p/ part");
  }
}
