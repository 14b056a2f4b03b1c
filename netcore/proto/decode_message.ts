/**
 * Bounded, typed decoding of protobuf messages from untrusted bytes.
 *
 * `@bufbuild/protobuf`'s `fromBinary` throws plain `Error`s and reads as much
 * as it is given; every protobuf the stack decodes from a peer goes through
 * {@linkcode decodeMessage} instead, so oversized input is refused before any
 * parsing and every failure surfaces as a {@linkcode NetworkError}.
 *
 * @module
 */

import { type DescMessage, fromBinary, type MessageShape } from "@bufbuild/protobuf";
import { NetworkError, type NetworkErrorCode } from "../network_error.ts";

/** Options for {@linkcode decodeMessage}. */
export interface DecodeMessageOptions {
  /** Largest accepted encoding in bytes. Default: 65535 (the Noise message limit). */
  maxBytes?: number;
  /** The error code for every failure. Default: `"PROTOCOL_VIOLATION"`. */
  code?: NetworkErrorCode;
  /** What is being decoded, for error messages. Default: the message's type name. */
  what?: string;
}

const DEFAULTS = { maxBytes: 65535, code: "PROTOCOL_VIOLATION" } as const;

/**
 * Decodes `bytes` as a message of `schema`, refusing input longer than
 * `maxBytes` and turning every parse failure into a `NetworkError`.
 *
 * Byte fields of the result are views into `bytes`: copy them if `bytes` may
 * be reused. Unknown fields are kept, as protobuf requires; required-field
 * checks (proto2) are the caller's, since `fromBinary` does not make them.
 *
 * @throws {NetworkError} with `options.code` for oversized or malformed input
 * @example
 * ```ts
 * import { decodeMessage } from "./decode_message.ts";
 * import { PublicKeySchema } from "./_gen/keys_pb.ts";
 * const key = decodeMessage(PublicKeySchema, new Uint8Array([8, 1, 18, 0]), { maxBytes: 64 });
 * console.log(key.Type); // 1 (Ed25519)
 * ```
 */
export function decodeMessage<Desc extends DescMessage>(
  schema: Desc,
  bytes: Uint8Array,
  options: DecodeMessageOptions = {},
): MessageShape<Desc> {
  const maxBytes = options.maxBytes ?? DEFAULTS.maxBytes;
  const code = options.code ?? DEFAULTS.code;
  const what = options.what ?? schema.typeName;
  if (bytes.length > maxBytes) {
    throw new NetworkError(code, `${what}: ${bytes.length} bytes exceeds the limit of ${maxBytes}`);
  }
  try {
    // A recursion limit well below the default: none of our messages nests
    // more than two levels, and a peer must not make us recurse.
    return fromBinary(schema, bytes, { readUnknownFields: true, recursionLimit: 8 });
  } catch (err) {
    throw NetworkError.wrap(err, code, `malformed ${what}`);
  }
}
