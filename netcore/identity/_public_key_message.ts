/**
 * The checks on a decoded `PublicKey` message, shared by
 * {@linkcode unmarshalPublicKey} (a key on its own) and the signed envelope
 * (a key nested in another message, decoded with it).
 *
 * @module
 */

import { isFieldSet } from "@bufbuild/protobuf";
import { NetworkError } from "../network_error.ts";
import { KeyType, type PublicKey, PublicKeySchema } from "../proto/_gen/keys_pb.ts";

/** Length of a raw Ed25519 public key. */
const ED25519_KEY_LENGTH = 32;

/**
 * The raw Ed25519 key of a decoded `PublicKey` message: a copy, so the
 * caller's buffer may be reused.
 *
 * @throws {NetworkError} `PROTOCOL_VIOLATION` for a missing field, another
 *   key type, or a key of the wrong length
 */
export function ed25519KeyOfMessage(message: PublicKey): Uint8Array {
  if (
    !isFieldSet(message, PublicKeySchema.field.Type) ||
    !isFieldSet(message, PublicKeySchema.field.Data)
  ) {
    throw new NetworkError("PROTOCOL_VIOLATION", "libp2p public key lacks a required field");
  }
  if (message.Type !== KeyType.Ed25519) {
    const name = KeyType[message.Type] ?? `#${message.Type}`;
    throw new NetworkError("PROTOCOL_VIOLATION", `unsupported libp2p key type ${name}`);
  }
  if (message.Data.length !== ED25519_KEY_LENGTH) {
    throw new NetworkError(
      "PROTOCOL_VIOLATION",
      `Ed25519 public key must be 32 bytes, got ${message.Data.length}`,
    );
  }
  return message.Data.slice();
}
