/**
 * libp2p signed envelopes (libp2p/specs `RFC/0002-signed-envelopes.md`): a
 * payload, a hint of its type, the signer's public key and a signature that
 * binds payload and type to a domain.
 *
 * > Signatures can be used for a variety of purposes, and a signature made
 * > for a specific purpose MUST NOT be considered valid for a different
 * > purpose. [...] We separate signatures into "domains" by prefixing the
 * > data to be signed with a string unique to each domain. This string is not
 * > contained within the payload or the outer envelope structure.
 *
 * The signed bytes, per the RFC's "Signature Production / Verification":
 * `varint(len(domain)) domain varint(len(payload_type)) payload_type
 * varint(len(payload)) payload`, each length an unsigned varint. The public
 * key is not signed: the recipient derives the signer's peer id from it, and
 * a different key cannot produce a valid signature.
 *
 * Only Ed25519 signers are supported, as everywhere in this module. Opening
 * checks in this order, the cheap ones first: the size, the protobuf, the
 * key's type, the payload type (when the caller names one), the signature.
 *
 * @module
 */

import { create, toBinary } from "@bufbuild/protobuf";
import { NetworkError } from "../network_error.ts";
import { EnvelopeSchema } from "../proto/_gen/envelope_pb.ts";
import { KeyType, PublicKeySchema } from "../proto/_gen/keys_pb.ts";
import { decodeMessage } from "../proto/decode_message.ts";
import { encodeVarint, varintLength } from "../varint.ts";
import { equalBytes } from "../_bytes.ts";
import type { Ed25519Identity } from "./ed25519_identity.ts";
import { ed25519KeyOfMessage } from "./_public_key_message.ts";
import { PeerId } from "./peer_id.ts";
import { verifyEd25519 } from "./verify_ed25519.ts";

/**
 * The default for {@linkcode OpenSignedEnvelopeOptions.maxBytes}. Envelopes
 * travel in gossip and discovery messages, and a peer record with a few
 * dozen addresses takes well under this.
 *
 * @example
 * ```ts
 * import { DEFAULT_MAX_SIGNED_ENVELOPE_BYTES } from "./signed_envelope.ts";
 * console.log(DEFAULT_MAX_SIGNED_ENVELOPE_BYTES); // 4096
 * ```
 */
export const DEFAULT_MAX_SIGNED_ENVELOPE_BYTES = 4096;

/**
 * Options for {@linkcode openSignedEnvelope}.
 *
 * @example
 * ```ts
 * import type { OpenSignedEnvelopeOptions } from "./signed_envelope.ts";
 * const options: OpenSignedEnvelopeOptions = {
 *   maxBytes: 1024,
 *   payloadType: new Uint8Array([0x03, 0x01]), // peer records only
 * };
 * ```
 */
export interface OpenSignedEnvelopeOptions {
  /**
   * Largest accepted envelope, in bytes; a longer one is refused with
   * `FRAME_TOO_LARGE` before any decoding. Default:
   * {@linkcode DEFAULT_MAX_SIGNED_ENVELOPE_BYTES} (4096).
   */
  maxBytes?: number;
  /**
   * The payload type the caller expects; an envelope of another type is
   * refused with `PROTOCOL_VIOLATION` before its signature is checked.
   * Default: any type is returned, for the caller to check.
   */
  payloadType?: Uint8Array;
}

/**
 * An envelope whose signature verified for the domain it was opened with.
 *
 * @example
 * ```ts
 * import { Ed25519Identity } from "./ed25519_identity.ts";
 * import {
 *   openSignedEnvelope,
 *   sealSignedEnvelope,
 *   type SignedEnvelope,
 * } from "./signed_envelope.ts";
 * const me = Ed25519Identity.generate();
 * const bytes = sealSignedEnvelope(me, "my-app", new Uint8Array([0x2f]), new Uint8Array([7]));
 * const envelope: SignedEnvelope = openSignedEnvelope(bytes, "my-app");
 * console.log(envelope.signer.equals(me.peerId), envelope.payload); // true Uint8Array(1) [ 7 ]
 * ```
 */
export interface SignedEnvelope {
  /** The signer's raw 32-byte Ed25519 public key. */
  publicKey: Uint8Array;
  /** The signer's peer id, derived from {@linkcode SignedEnvelope.publicKey}. */
  signer: PeerId;
  /** The payload type hint (a multicodec, maybe followed by more bytes). */
  payloadType: Uint8Array;
  /** The signed payload. */
  payload: Uint8Array;
}

const utf8 = new TextEncoder();

/** The bytes the signature covers: each of the three prefixed with its varint length. */
function signedData(domain: string, payloadType: Uint8Array, payload: Uint8Array): Uint8Array {
  const parts = [utf8.encode(domain), payloadType, payload];
  const out = new Uint8Array(parts.reduce((n, p) => n + varintLength(p.length) + p.length, 0));
  let at = 0;
  for (const part of parts) {
    at += encodeVarint(part.length, out, at).length;
    out.set(part, at);
    at += part.length;
  }
  return out;
}

function hex(bytes: Uint8Array): string {
  return Array.from(bytes.subarray(0, 16), (b) => b.toString(16).padStart(2, "0")).join("") +
    (bytes.length > 16 ? "..." : "");
}

/**
 * Signs `payload` for `domain` with `identity` and returns the envelope's
 * protobuf bytes. Deterministic: Ed25519 signatures are, and the encoding
 * writes the fields in number order, as js-libp2p and go-libp2p do.
 *
 * @example
 * ```ts
 * import { Ed25519Identity, openSignedEnvelope, sealSignedEnvelope } from "./mod.ts";
 * const me = Ed25519Identity.generate();
 * const bytes = sealSignedEnvelope(me, "my-app", new Uint8Array([0x2f]), new Uint8Array([1, 2]));
 * const opened = openSignedEnvelope(bytes, "my-app");
 * console.log(opened.signer.equals(me.peerId), opened.payload); // true Uint8Array(2) [ 1, 2 ]
 * ```
 */
export function sealSignedEnvelope(
  identity: Ed25519Identity,
  domain: string,
  payloadType: Uint8Array,
  payload: Uint8Array,
): Uint8Array {
  return toBinary(
    EnvelopeSchema,
    create(EnvelopeSchema, {
      publicKey: create(PublicKeySchema, { Type: KeyType.Ed25519, Data: identity.publicKey }),
      payloadType,
      payload,
      signature: identity.sign(signedData(domain, payloadType, payload)),
    }),
  );
}

/**
 * Decodes an envelope from untrusted bytes and verifies its signature for
 * `domain`. The returned byte fields are copies, owned by the caller.
 *
 * @throws {NetworkError} `FRAME_TOO_LARGE` for more than `maxBytes` bytes;
 *   `PROTOCOL_VIOLATION` for a malformed envelope, a missing, malformed or
 *   non-Ed25519 public key, or an unexpected payload type; `UNAUTHORIZED`
 *   for a signature that does not verify (forged, or made for another domain)
 * @example
 * ```ts
 * import { Ed25519Identity, openSignedEnvelope, sealSignedEnvelope } from "./mod.ts";
 * import { NetworkError } from "../network_error.ts";
 * const bytes = sealSignedEnvelope(Ed25519Identity.generate(), "app-a", new Uint8Array(0), new Uint8Array(0));
 * try {
 *   openSignedEnvelope(bytes, "app-b");
 * } catch (err) {
 *   console.log(NetworkError.is(err, "UNAUTHORIZED")); // true
 * }
 * ```
 */
export function openSignedEnvelope(
  bytes: Uint8Array,
  domain: string,
  options: OpenSignedEnvelopeOptions = {},
): SignedEnvelope {
  const maxBytes = options.maxBytes ?? DEFAULT_MAX_SIGNED_ENVELOPE_BYTES;
  if (bytes.length > maxBytes) {
    throw new NetworkError(
      "FRAME_TOO_LARGE",
      `signed envelope of ${bytes.length} bytes exceeds the limit of ${maxBytes}`,
    );
  }
  const message = decodeMessage(EnvelopeSchema, bytes, { maxBytes, what: "signed envelope" });
  if (message.publicKey === undefined) {
    throw new NetworkError("PROTOCOL_VIOLATION", "signed envelope has no public key");
  }
  let publicKey;
  try {
    publicKey = ed25519KeyOfMessage(message.publicKey);
  } catch (err) {
    const detail = err instanceof Error ? err.message : String(err);
    throw new NetworkError("PROTOCOL_VIOLATION", `signed envelope public key: ${detail}`, {
      cause: err,
    });
  }
  const expected = options.payloadType;
  if (expected !== undefined && !equalBytes(message.payloadType, expected)) {
    throw new NetworkError(
      "PROTOCOL_VIOLATION",
      `signed envelope payload type is 0x${hex(message.payloadType)}, expected 0x${hex(expected)}`,
    );
  }
  const data = signedData(domain, message.payloadType, message.payload);
  if (!verifyEd25519(publicKey, data, message.signature)) {
    throw new NetworkError(
      "UNAUTHORIZED",
      `signed envelope signature does not verify for domain ${JSON.stringify(domain)}`,
    );
  }
  return {
    publicKey,
    signer: PeerId.fromPublicKey(publicKey),
    // Copies: the decoded fields are views into the caller's buffer.
    payloadType: message.payloadType.slice(),
    payload: message.payload.slice(),
  };
}
