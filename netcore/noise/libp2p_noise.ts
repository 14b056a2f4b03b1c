/**
 * The libp2p-noise security upgrade (libp2p/specs `noise/README.md`):
 * `Noise_XX_25519_ChaChaPoly_SHA256` with an empty prologue, every handshake
 * message framed with a 2-byte big-endian length, and the static Noise key of
 * each side authenticated by a `NoiseHandshakePayload` signed with its libp2p
 * identity key:
 *
 * ```text
 * XX:
 *   -> e                     (payload: empty)
 *   <- e, ee, s, es          (payload: responder's signed NoiseHandshakePayload)
 *   -> s, se                 (payload: initiator's signed NoiseHandshakePayload)
 * ```
 *
 * Then both ends talk through a {@linkcode SecureChannel}.
 *
 * @module
 */

import { type Logger, rootLogger } from "../log.ts";
import { defaultMetrics, type Metrics } from "../metrics.ts";
import { noiseMetrics } from "./_metrics.ts";
import { NetworkError } from "../network_error.ts";
import type { Connection } from "../transport/connection.ts";
import type { Upgrade, UpgradeContext } from "../transport/transport.ts";
import {
  decodeNoiseHandshakePayload,
  type Ed25519Identity,
  encodeNoiseHandshakePayload,
  type NoiseHandshakePayloadInfo,
  PeerId,
} from "../identity/mod.ts";
import { type CryptoBackend, getCryptoBackend, type KeyPair } from "./crypto.ts";
import { HandshakeState } from "./handshake_state.ts";
import { EMPTY, MAX_NOISE_MESSAGE, TAG_LENGTH } from "./_frame.ts";
import { runHandshake } from "./_handshake_io.ts";
import { SecureChannel, type SecureChannelInit } from "./secure_channel.ts";

/**
 * The one Noise protocol libp2p-noise speaks.
 *
 * @example
 * ```ts
 * import { LIBP2P_NOISE_PROTOCOL_NAME } from "./libp2p_noise.ts";
 * console.log(LIBP2P_NOISE_PROTOCOL_NAME); // "Noise_XX_25519_ChaChaPoly_SHA256"
 * ```
 */
export const LIBP2P_NOISE_PROTOCOL_NAME = "Noise_XX_25519_ChaChaPoly_SHA256";

/**
 * The multistream-select protocol id under which the upgrade is negotiated.
 *
 * @example
 * ```ts
 * import { LIBP2P_NOISE_PROTOCOL_ID } from "./libp2p_noise.ts";
 * console.log(LIBP2P_NOISE_PROTOCOL_ID); // "/noise"
 * ```
 */
export const LIBP2P_NOISE_PROTOCOL_ID = "/noise";

const DH_LEN = 32;

/**
 * Options for {@linkcode libp2pNoise}. Defaults in {@linkcode LIBP2P_NOISE_DEFAULTS}.
 *
 * @example
 * ```ts
 * import type { Libp2pNoiseOptions } from "./libp2p_noise.ts";
 * const options: Libp2pNoiseOptions = { handshakeTimeout: 5_000, streamMuxers: ["/yamux/1.0.0"] };
 * ```
 */
export interface Libp2pNoiseOptions {
  /**
   * The peer the dialer must find at the other end. Default: the `/p2p/`
   * part of the connection's remote address, if any; with neither, any peer
   * is accepted (and its id reported). Ignored on the listener side.
   */
  expectedPeerId?: PeerId;
  /** Milliseconds the whole handshake may take. Default 10_000. */
  handshakeTimeout?: number;
  /** The crypto implementation. Default `getCryptoBackend()`. */
  backend?: CryptoBackend;
  /** Stream muxers to advertise in the handshake extensions. Default: none. */
  streamMuxers?: string[];
  /**
   * Our static X25519 key pair. Default: a fresh one per `libp2pNoise` call,
   * shared by all its connections (the spec allows either).
   */
  staticKey?: KeyPair;
  /** Where handshakes and failures are counted. Default `defaultMetrics`. */
  metrics?: Metrics;
  /** Where failures are logged. Default `rootLogger`. */
  logger?: Logger;
}

/**
 * The defaults of {@linkcode Libp2pNoiseOptions}.
 *
 * @example
 * ```ts
 * import { LIBP2P_NOISE_DEFAULTS } from "./libp2p_noise.ts";
 * console.log(LIBP2P_NOISE_DEFAULTS.handshakeTimeout); // 10000
 * ```
 */
export const LIBP2P_NOISE_DEFAULTS = {
  handshakeTimeout: 10_000,
  streamMuxers: [] as readonly string[],
} as const;

/**
 * The peer as the handshake authenticated it.
 *
 * @example
 * ```ts
 * import { Ed25519Identity } from "../identity/mod.ts";
 * import type { Libp2pRemoteIdentity } from "./libp2p_noise.ts";
 * const id = Ed25519Identity.generate();
 * const remote: Libp2pRemoteIdentity = { peerId: id.peerId, identityKey: id.publicKey, streamMuxers: [] };
 * ```
 */
export interface Libp2pRemoteIdentity {
  /** The peer id derived from its identity key. */
  peerId: PeerId;
  /** Its raw 32-byte Ed25519 identity key. */
  identityKey: Uint8Array;
  /** The stream muxers it advertised (empty when it sent none). */
  streamMuxers: string[];
}

/**
 * A connection secured by libp2p-noise: a {@linkcode SecureChannel} that also
 * knows the peer's libp2p identity.
 *
 * @example
 * ```ts
 * import type { Libp2pNoiseConnection } from "./libp2p_noise.ts";
 * function who(conn: Libp2pNoiseConnection): string {
 *   return conn.remotePeerId.toString();
 * }
 * ```
 */
export class Libp2pNoiseConnection extends SecureChannel {
  readonly #remote: Libp2pRemoteIdentity;

  /** Built by {@linkcode libp2pNoise} at the end of the handshake. */
  constructor(init: SecureChannelInit, remote: Libp2pRemoteIdentity) {
    super(init);
    this.#remote = remote;
  }

  /** The authenticated peer id of the other end. */
  get remotePeerId(): PeerId {
    return this.#remote.peerId;
  }

  /** The other end's raw Ed25519 identity key. */
  get remoteIdentityKey(): Uint8Array {
    return this.#remote.identityKey.slice();
  }

  /** The stream muxers the other end advertised in its handshake payload. */
  get remoteStreamMuxers(): readonly string[] {
    return this.#remote.streamMuxers;
  }
}

/**
 * The libp2p-noise upgrade for one local identity: run it on a raw
 * connection (after `/noise` was negotiated) to get a
 * {@linkcode Libp2pNoiseConnection}. The dialer runs the initiator.
 *
 * Errors (`NetworkError`, the connection is aborted in every case):
 * - `UNAUTHORIZED` on the dialer when the peer proves an identity other than
 *   the expected peer id (it authenticated, but is not the peer we dialed);
 * - `HANDSHAKE_FAILED` for a malformed, tampered, oversized or truncated
 *   handshake message, a bad signature, or a connection lost mid-handshake;
 * - `TIMEOUT` when the handshake takes longer than `handshakeTimeout`;
 * - `ABORTED` when the context's signal fires.
 *
 * @example Both ends of a handshake over an in-memory connection
 * ```ts
 * import { Ed25519Identity } from "../identity/mod.ts";
 * import { Multiaddr } from "../multiaddr.ts";
 * import { MemoryTransport } from "../transport/mod.ts";
 * import { libp2pNoise } from "./libp2p_noise.ts";
 *
 * const transport = new MemoryTransport();
 * const listener = await transport.listen(Multiaddr.parse("/memory/0"));
 * const accepted = (async () => {
 *   for await (const conn of listener) return conn;
 * })();
 * const raw = await transport.dial(listener.addr);
 * const [client, server] = [Ed25519Identity.generate(), Ed25519Identity.generate()];
 * const options = { streamMuxers: ["/yamux/1.0.0"] };
 * const signal = new AbortController().signal;
 * const [dialed, answered] = await Promise.all([
 *   libp2pNoise(client, options)(raw, { role: "dialer", signal }),
 *   libp2pNoise(server, options)((await accepted)!, { role: "listener", signal }),
 * ]);
 * console.log(dialed.remotePeerId.equals(server.peerId)); // true
 * console.log(answered.remotePeerId.equals(client.peerId)); // true
 * console.log(answered.remoteStreamMuxers); // [ "/yamux/1.0.0" ]
 * dialed.abort();
 * answered.abort();
 * await listener.close();
 * ```
 */
export function libp2pNoise(
  identity: Ed25519Identity,
  options: Libp2pNoiseOptions = {},
): Upgrade<Connection, Libp2pNoiseConnection> {
  const backend = options.backend ?? getCryptoBackend();
  const handshakeTimeout = options.handshakeTimeout ?? LIBP2P_NOISE_DEFAULTS.handshakeTimeout;
  const staticKey = options.staticKey ?? backend.dh.generateKeyPair();
  const { completed, rejected } = noiseMetrics(options.metrics ?? defaultMetrics, "libp2p");
  const log = (options.logger ?? rootLogger).child({ component: "noise", profile: "libp2p" });
  // The payload signs only our static key, the same on every connection.
  const ourPayload = encodeNoiseHandshakePayload(identity, staticKey.publicKey, {
    streamMuxers: [...(options.streamMuxers ?? LIBP2P_NOISE_DEFAULTS.streamMuxers)],
  });

  return async (conn: Connection, context: UpgradeContext) => {
    const initiator = context.role === "dialer";
    let expected = options.expectedPeerId;
    const dialedPeer = context.dialedAddr?.peerId ?? conn.remoteAddr?.peerId;
    if (initiator && expected === undefined && dialedPeer !== undefined) {
      try {
        expected = PeerId.parse(dialedPeer);
      } catch (err) {
        const error = NetworkError.wrap(err, "BAD_ADDRESS", "the dialed address's /p2p/ part");
        conn.abort(error);
        throw error;
      }
    }
    const hs = new HandshakeState({
      protocolName: LIBP2P_NOISE_PROTOCOL_NAME,
      initiator,
      prologue: EMPTY,
      s: staticKey,
      backend,
    });
    try {
      const { value: remote, reader } = await runHandshake(
        conn,
        context,
        handshakeTimeout,
        "libp2p-noise handshake",
        async (io) => {
          let info: NoiseHandshakePayloadInfo;
          if (initiator) {
            await io.send(hs.writeMessage(EMPTY));
            // e, ee, s, es + payload: 32 + (32 + 16) + payload + 16.
            const message2 = await io.receive({
              min: 2 * DH_LEN + 2 * TAG_LENGTH,
              max: MAX_NOISE_MESSAGE,
              what: "XX message 2",
            });
            const payload = hs.readMessage(message2);
            info = decodeNoiseHandshakePayload(payload, hs.remoteStaticKey!);
            if (expected !== undefined && !info.peerId.equals(expected)) {
              throw new NetworkError(
                "UNAUTHORIZED",
                `dialed ${expected} but the peer authenticated as ${info.peerId}`,
              );
            }
            // Corked: it leaves with the first transport message (the
            // stream the dialer opens next, in this turn) in one write.
            await io.send(hs.writeMessage(ourPayload));
          } else {
            const message1 = await io.receive({
              min: DH_LEN,
              max: DH_LEN,
              what: "XX message 1 (an ephemeral key and no payload)",
            });
            hs.readMessage(message1);
            await io.send(hs.writeMessage(ourPayload));
            // s, se + payload: (32 + 16) + payload + 16.
            const message3 = await io.receive({
              min: DH_LEN + 2 * TAG_LENGTH,
              max: MAX_NOISE_MESSAGE,
              what: "XX message 3",
            });
            const payload = hs.readMessage(message3);
            info = decodeNoiseHandshakePayload(payload, hs.remoteStaticKey!);
          }
          if (!hs.isComplete) {
            throw new NetworkError("HANDSHAKE_FAILED", "XX handshake did not complete");
          }
          return info;
        },
      );
      const [initiatorToResponder, responderToInitiator] = hs.split();
      completed.labels({ role: context.role }).inc();
      return new Libp2pNoiseConnection({
        connection: conn,
        reader,
        encrypter: initiator ? initiatorToResponder : responderToInitiator,
        decrypter: initiator ? responderToInitiator : initiatorToResponder,
        remoteStaticKey: hs.remoteStaticKey!,
        handshakeHash: hs.handshakeHash,
      }, {
        peerId: remote.peerId,
        identityKey: remote.identityKey,
        streamMuxers: remote.extensions.streamMuxers,
      });
    } catch (err) {
      const reason = NetworkError.is(err) ? err.code.toLowerCase() : "error";
      rejected.labels({ reason }).inc();
      log.debug("handshake failed", { role: context.role, error: err });
      throw err;
    }
  };
}
