/**
 * libp2p's serialized public keys (the `PublicKey` protobuf of the peer-id
 * spec): `Type` names the algorithm, `Data` holds the key in that
 * algorithm's own encoding (for Ed25519, the 32 raw bytes).
 *
 * Only Ed25519 is supported; the other key types the spec lists (RSA,
 * Secp256k1, ECDSA) are rejected.
 *
 * @module
 */

import { create, toBinary } from "@bufbuild/protobuf";
import { KeyType, PublicKeySchema } from "../proto/_gen/keys_pb.ts";
import { decodeMessage } from "../proto/decode_message.ts";
import { ed25519KeyOfMessage } from "./_public_key_message.ts";

/**
 * Length of a raw Ed25519 public key.
 *
 * @example
 * ```ts
 * import { ED25519_PUBLIC_KEY_LENGTH } from "./public_key.ts";
 * console.log(ED25519_PUBLIC_KEY_LENGTH); // 32
 * ```
 */
export const ED25519_PUBLIC_KEY_LENGTH = 32;

/**
 * The largest serialized public key accepted. An Ed25519 key takes 36 bytes;
 * the limit leaves room for the other types so they fail on type, not size.
 *
 * @example
 * ```ts
 * import { MAX_PUBLIC_KEY_PROTOBUF_BYTES } from "./public_key.ts";
 * console.log(MAX_PUBLIC_KEY_PROTOBUF_BYTES); // 1024
 * ```
 */
export const MAX_PUBLIC_KEY_PROTOBUF_BYTES = 1024;

/**
 * A decoded libp2p public key; Ed25519 is the only type supported.
 *
 * @example
 * ```ts
 * import {
 *   marshalEd25519PublicKey,
 *   type UnmarshalledPublicKey,
 *   unmarshalPublicKey,
 * } from "./public_key.ts";
 * const bytes = marshalEd25519PublicKey(new Uint8Array(32));
 * const key: UnmarshalledPublicKey = unmarshalPublicKey(bytes);
 * console.log(key.type, key.raw.length); // "Ed25519" 32
 * ```
 */
export interface UnmarshalledPublicKey {
  /** The key algorithm. */
  type: "Ed25519";
  /** The raw 32-byte Ed25519 public key (a copy, owned by the caller). */
  raw: Uint8Array;
}

/**
 * Serializes a raw Ed25519 public key as libp2p's `PublicKey` protobuf, byte
 * for byte as js-libp2p does: `08 01 12 20` followed by the key.
 *
 * @throws {RangeError} when `raw` is not 32 bytes (a caller bug)
 * @example
 * ```ts
 * import { marshalEd25519PublicKey } from "./public_key.ts";
 * console.log(marshalEd25519PublicKey(new Uint8Array(32)).length); // 36
 * ```
 */
export function marshalEd25519PublicKey(raw: Uint8Array): Uint8Array {
  if (raw.length !== ED25519_PUBLIC_KEY_LENGTH) {
    throw new RangeError(`Ed25519 public key must be 32 bytes, got ${raw.length}`);
  }
  return toBinary(PublicKeySchema, create(PublicKeySchema, { Type: KeyType.Ed25519, Data: raw }));
}

/**
 * Parses libp2p's `PublicKey` protobuf, accepting only an Ed25519 key of 32
 * bytes.
 *
 * @throws {NetworkError} `PROTOCOL_VIOLATION` for malformed or oversized
 *   input, a missing field, another key type, or a key of the wrong length
 * @example
 * ```ts
 * import { marshalEd25519PublicKey, unmarshalPublicKey } from "./public_key.ts";
 * const key = unmarshalPublicKey(marshalEd25519PublicKey(new Uint8Array(32).fill(7)));
 * console.log(key.type, key.raw[0]); // "Ed25519" 7
 * ```
 */
export function unmarshalPublicKey(bytes: Uint8Array): UnmarshalledPublicKey {
  const message = decodeMessage(PublicKeySchema, bytes, {
    maxBytes: MAX_PUBLIC_KEY_PROTOBUF_BYTES,
    what: "libp2p public key",
  });
  return { type: "Ed25519", raw: ed25519KeyOfMessage(message) };
}
