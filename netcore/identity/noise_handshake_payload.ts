/**
 * The libp2p-noise handshake payload (libp2p/specs `noise/README.md`, "The
 * libp2p Handshake Payload"): each side proves that its Noise static key
 * belongs to its libp2p identity.
 *
 * > The `identity_sig` field contains a signature, produced using the
 * > libp2p identity private key according to the signing rules in the
 * > peer id spec. The data to be signed is the UTF-8 string
 * > `noise-libp2p-static-key:`, followed by the Noise static public key,
 * > encoded according to the rules defined in the DH section.
 *
 * @module
 */

import { create, toBinary } from "@bufbuild/protobuf";
import { latin1 } from "../_bytes.ts";
import { NetworkError } from "../network_error.ts";
import {
  NoiseExtensionsSchema,
  NoiseHandshakePayloadSchema,
} from "../proto/_gen/noise_payload_pb.ts";
import { decodeMessage } from "../proto/decode_message.ts";
import type { Ed25519Identity } from "./ed25519_identity.ts";
import { PeerId } from "./peer_id.ts";
import { unmarshalPublicKey } from "./public_key.ts";
import { verifyEd25519 } from "./verify_ed25519.ts";

const SIGNATURE_PREFIX = new TextEncoder().encode("noise-libp2p-static-key:");

/**
 * The largest payload accepted: a Noise transport message is at most 65535
 * bytes, so no payload can be longer.
 *
 * @example
 * ```ts
 * import { MAX_NOISE_HANDSHAKE_PAYLOAD_BYTES } from "./noise_handshake_payload.ts";
 * console.log(MAX_NOISE_HANDSHAKE_PAYLOAD_BYTES); // 65535
 * ```
 */
export const MAX_NOISE_HANDSHAKE_PAYLOAD_BYTES = 65535;

/**
 * Extensions we send in the payload.
 *
 * @example
 * ```ts
 * import type { NoiseHandshakeExtensionsInit } from "./noise_handshake_payload.ts";
 * const extensions: NoiseHandshakeExtensionsInit = { streamMuxers: ["/yamux/1.0.0"] };
 * ```
 */
export interface NoiseHandshakeExtensionsInit {
  /** Stream muxer protocol ids, in preference order. Default: none sent. */
  streamMuxers?: string[];
}

/**
 * A verified remote handshake payload.
 *
 * @example
 * ```ts
 * import { Ed25519Identity } from "./ed25519_identity.ts";
 * import {
 *   decodeNoiseHandshakePayload,
 *   encodeNoiseHandshakePayload,
 *   type NoiseHandshakePayloadInfo,
 * } from "./noise_handshake_payload.ts";
 * const staticKey = crypto.getRandomValues(new Uint8Array(32));
 * const payload = encodeNoiseHandshakePayload(Ed25519Identity.generate(), staticKey);
 * const info: NoiseHandshakePayloadInfo = decodeNoiseHandshakePayload(payload, staticKey);
 * console.log(info.identityKey.length, info.extensions.streamMuxers); // 32 []
 * ```
 */
export interface NoiseHandshakePayloadInfo {
  /** The remote's peer id, derived from its identity key. */
  peerId: PeerId;
  /** The remote's raw 32-byte Ed25519 identity key (not the protobuf). */
  identityKey: Uint8Array;
  /** The extensions it sent; empty lists when it sent none. */
  extensions: { streamMuxers: string[]; webtransportCerthashes: Uint8Array[] };
}

function signedData(noiseStaticPublicKey: Uint8Array): Uint8Array {
  const data = new Uint8Array(SIGNATURE_PREFIX.length + noiseStaticPublicKey.length);
  data.set(SIGNATURE_PREFIX);
  data.set(noiseStaticPublicKey, SIGNATURE_PREFIX.length);
  return data;
}

/**
 * Builds our handshake payload: our `PublicKey` protobuf, our signature over
 * `"noise-libp2p-static-key:" || noiseStaticPublicKey`, and the extensions
 * when any stream muxer is given.
 *
 * @example
 * ```ts
 * import { decodeNoiseHandshakePayload, Ed25519Identity, encodeNoiseHandshakePayload } from "./mod.ts";
 * const me = Ed25519Identity.generate();
 * const staticKey = crypto.getRandomValues(new Uint8Array(32));
 * const payload = encodeNoiseHandshakePayload(me, staticKey, { streamMuxers: ["/yamux/1.0.0"] });
 * const remote = decodeNoiseHandshakePayload(payload, staticKey);
 * console.log(remote.peerId.equals(me.peerId), remote.extensions.streamMuxers); // true [ "/yamux/1.0.0" ]
 * ```
 */
export function encodeNoiseHandshakePayload(
  identity: Ed25519Identity,
  noiseStaticPublicKey: Uint8Array,
  extensions?: NoiseHandshakeExtensionsInit,
): Uint8Array {
  const streamMuxers = extensions?.streamMuxers ?? [];
  return toBinary(
    NoiseHandshakePayloadSchema,
    create(NoiseHandshakePayloadSchema, {
      identityKey: identity.marshalPublicKey(),
      identitySig: identity.sign(signedData(noiseStaticPublicKey)),
      extensions: streamMuxers.length === 0
        ? undefined
        : create(NoiseExtensionsSchema, { streamMuxers }),
    }),
  );
}

/**
 * Decodes and verifies the remote's handshake payload against the Noise
 * static key the handshake authenticated. Only Ed25519 identities are
 * accepted. A payload that verified once for a static key is remembered (a
 * bounded LRU), so a peer that reconnects costs no second verification.
 *
 * @throws {NetworkError} `HANDSHAKE_FAILED` for an oversized or malformed
 *   payload, an unsupported or malformed identity key, or a signature that
 *   does not verify
 * @example
 * ```ts
 * import { decodeNoiseHandshakePayload, Ed25519Identity, encodeNoiseHandshakePayload } from "./mod.ts";
 * const me = Ed25519Identity.generate();
 * const payload = encodeNoiseHandshakePayload(me, new Uint8Array(32));
 * try {
 *   decodeNoiseHandshakePayload(payload, new Uint8Array(32).fill(1)); // another static key
 * } catch (err) {
 *   console.log((err as Error).message); // "noise handshake payload signature does not verify"
 * }
 * ```
 */
export function decodeNoiseHandshakePayload(
  payload: Uint8Array,
  remoteNoiseStaticKey: Uint8Array,
): NoiseHandshakePayloadInfo {
  const key = payload.length <= MAX_CACHED_PAYLOAD_BYTES
    ? cacheKey(remoteNoiseStaticKey, payload)
    : undefined;
  const cached = key === undefined ? undefined : verifiedPayloads.get(key);
  if (cached !== undefined) {
    // Most recently used last, so the oldest entry is the first evicted.
    verifiedPayloads.delete(key!);
    verifiedPayloads.set(key!, cached);
    return copyInfo(cached);
  }
  const info = decodeAndVerify(payload, remoteNoiseStaticKey);
  if (key !== undefined) {
    verifiedPayloads.set(key, copyInfo(info));
    if (verifiedPayloads.size > MAX_CACHED_PAYLOADS) {
      verifiedPayloads.delete(verifiedPayloads.keys().next().value!);
    }
  }
  return info;
}

/**
 * Payloads that verified, by static key and payload bytes: a peer that
 * reconnects (validators do, to the same few peers, all the time) sends the
 * same payload for the same static key, and verifying it again costs an
 * Ed25519 verification and a protobuf decode per handshake. The result for
 * the same bytes is the same, so remembering it is sound; the map is an LRU
 * of bounded size and entry size, so a peer cannot make it grow.
 */
const verifiedPayloads = new Map<string, NoiseHandshakePayloadInfo>();
const MAX_CACHED_PAYLOADS = 1024;
const MAX_CACHED_PAYLOAD_BYTES = 1024;

function cacheKey(staticKey: Uint8Array, payload: Uint8Array): string {
  return latin1(staticKey) + latin1(payload);
}

function copyInfo(info: NoiseHandshakePayloadInfo): NoiseHandshakePayloadInfo {
  return {
    peerId: info.peerId,
    identityKey: info.identityKey.slice(),
    extensions: {
      streamMuxers: [...info.extensions.streamMuxers],
      webtransportCerthashes: info.extensions.webtransportCerthashes.map((hash) => hash.slice()),
    },
  };
}

function decodeAndVerify(
  payload: Uint8Array,
  remoteNoiseStaticKey: Uint8Array,
): NoiseHandshakePayloadInfo {
  const message = decodeMessage(NoiseHandshakePayloadSchema, payload, {
    maxBytes: MAX_NOISE_HANDSHAKE_PAYLOAD_BYTES,
    code: "HANDSHAKE_FAILED",
    what: "noise handshake payload",
  });
  let identityKey;
  try {
    identityKey = unmarshalPublicKey(message.identityKey).raw;
  } catch (err) {
    const detail = err instanceof Error ? err.message : String(err);
    throw new NetworkError("HANDSHAKE_FAILED", `noise handshake identity key: ${detail}`, {
      cause: err,
    });
  }
  if (!verifyEd25519(identityKey, signedData(remoteNoiseStaticKey), message.identitySig)) {
    throw new NetworkError("HANDSHAKE_FAILED", "noise handshake payload signature does not verify");
  }
  return {
    peerId: PeerId.fromPublicKey(identityKey),
    identityKey,
    extensions: {
      // Copies: the payload's buffer may be reused once we return.
      streamMuxers: [...(message.extensions?.streamMuxers ?? [])],
      webtransportCerthashes: (message.extensions?.webtransportCerthashes ?? []).map((hash) =>
        hash.slice()
      ),
    },
  };
}
