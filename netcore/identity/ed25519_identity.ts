/**
 * Our long-term libp2p identity: an Ed25519 key pair and the peer id it
 * yields.
 *
 * @module
 */

import { create, isFieldSet, toBinary } from "@bufbuild/protobuf";
import { NetworkError } from "../network_error.ts";
import { KeyType, PrivateKeySchema } from "../proto/_gen/keys_pb.ts";
import { decodeMessage } from "../proto/decode_message.ts";
import { type Ed25519Signer, ed25519Signer } from "./_ed25519.ts";
import { PeerId } from "./peer_id.ts";
import { marshalEd25519PublicKey } from "./public_key.ts";

const SEED_LENGTH = 32;
/** A `PrivateKey` protobuf of any supported form is far below this. */
const MAX_PRIVATE_KEY_PROTOBUF_BYTES = 1024;

/**
 * An Ed25519 libp2p identity. The private key stays inside; the object signs.
 *
 * @example
 * ```ts
 * import { Ed25519Identity, verifyEd25519 } from "./mod.ts";
 * const me = Ed25519Identity.fromSeed(new Uint8Array(32).fill(1));
 * console.log(me.peerId.toString().startsWith("12D3KooW")); // true
 * const data = new TextEncoder().encode("hello");
 * console.log(verifyEd25519(me.publicKey, data, me.sign(data))); // true
 * ```
 */
export class Ed25519Identity {
  readonly #seed: Uint8Array;
  readonly #signer: Ed25519Signer;
  readonly #peerId: PeerId;

  private constructor(seed: Uint8Array) {
    this.#seed = seed;
    this.#signer = ed25519Signer(seed);
    this.#peerId = PeerId.fromPublicKey(this.#signer.publicKey);
  }

  /**
   * A fresh identity from the platform's cryptographic random source.
   *
   * @example
   * ```ts
   * import { Ed25519Identity } from "./ed25519_identity.ts";
   * console.log(Ed25519Identity.generate().publicKey.length); // 32
   * ```
   */
  static generate(): Ed25519Identity {
    return new Ed25519Identity(crypto.getRandomValues(new Uint8Array(SEED_LENGTH)));
  }

  /**
   * The identity of a 32-byte private seed (RFC 8032's private key). The
   * seed is copied.
   *
   * @throws {RangeError} when `seed` is not 32 bytes (a caller bug)
   * @example
   * ```ts
   * import { Ed25519Identity } from "./ed25519_identity.ts";
   * const a = Ed25519Identity.fromSeed(new Uint8Array(32));
   * console.log(a.peerId.equals(Ed25519Identity.fromSeed(new Uint8Array(32)).peerId)); // true
   * ```
   */
  static fromSeed(seed: Uint8Array): Ed25519Identity {
    if (seed.length !== SEED_LENGTH) {
      throw new RangeError(`Ed25519 seed must be 32 bytes, got ${seed.length}`);
    }
    return new Ed25519Identity(seed.slice());
  }

  /**
   * Reads libp2p's `PrivateKey` protobuf, as js-libp2p writes it (`Data` =
   * 64 bytes, seed then public key; the public half must match the seed) or
   * with the 32-byte seed alone.
   *
   * @throws {NetworkError} `PROTOCOL_VIOLATION` for malformed input, another
   *   key type, a wrong length, or a public half that does not match
   * @example
   * ```ts
   * import { Ed25519Identity } from "./ed25519_identity.ts";
   * const me = Ed25519Identity.generate();
   * const again = Ed25519Identity.fromProtobuf(me.marshalPrivateKey());
   * console.log(again.peerId.equals(me.peerId)); // true
   * ```
   */
  static fromProtobuf(privateKeyProto: Uint8Array): Ed25519Identity {
    const message = decodeMessage(PrivateKeySchema, privateKeyProto, {
      maxBytes: MAX_PRIVATE_KEY_PROTOBUF_BYTES,
      what: "libp2p private key",
    });
    if (
      !isFieldSet(message, PrivateKeySchema.field.Type) ||
      !isFieldSet(message, PrivateKeySchema.field.Data)
    ) {
      throw new NetworkError("PROTOCOL_VIOLATION", "libp2p private key lacks a required field");
    }
    if (message.Type !== KeyType.Ed25519) {
      const name = KeyType[message.Type] ?? `#${message.Type}`;
      throw new NetworkError("PROTOCOL_VIOLATION", `unsupported libp2p key type ${name}`);
    }
    const data = message.Data;
    if (data.length !== SEED_LENGTH && data.length !== 2 * SEED_LENGTH) {
      throw new NetworkError(
        "PROTOCOL_VIOLATION",
        `Ed25519 private key must be 32 or 64 bytes, got ${data.length}`,
      );
    }
    const identity = new Ed25519Identity(data.slice(0, SEED_LENGTH));
    if (data.length === 2 * SEED_LENGTH) {
      const claimed = data.subarray(SEED_LENGTH);
      const actual = identity.publicKey;
      if (!claimed.every((byte, i) => byte === actual[i])) {
        throw new NetworkError(
          "PROTOCOL_VIOLATION",
          "Ed25519 private key's public half does not match its seed",
        );
      }
    }
    return identity;
  }

  /** The raw 32-byte public key. Do not modify it. */
  get publicKey(): Uint8Array {
    return this.#signer.publicKey;
  }

  /** The peer id of {@linkcode Ed25519Identity.publicKey}. */
  get peerId(): PeerId {
    return this.#peerId;
  }

  /**
   * The 64-byte Ed25519 signature of `data` (RFC 8032, deterministic).
   *
   * @example
   * ```ts
   * import { Ed25519Identity } from "./ed25519_identity.ts";
   * console.log(Ed25519Identity.generate().sign(new Uint8Array(3)).length); // 64
   * ```
   */
  sign(data: Uint8Array): Uint8Array {
    return this.#signer.sign(data);
  }

  /**
   * The public key as libp2p's `PublicKey` protobuf (36 bytes).
   *
   * @example
   * ```ts
   * import { Ed25519Identity, unmarshalPublicKey } from "./mod.ts";
   * const me = Ed25519Identity.generate();
   * console.log(unmarshalPublicKey(me.marshalPublicKey()).raw.length); // 32
   * ```
   */
  marshalPublicKey(): Uint8Array {
    return marshalEd25519PublicKey(this.publicKey);
  }

  /**
   * The private key as libp2p's `PrivateKey` protobuf, as js-libp2p writes it
   * (`Data` = seed then public key, 68 bytes in all). Secret: store it as such.
   *
   * @example
   * ```ts
   * import { Ed25519Identity } from "./ed25519_identity.ts";
   * console.log(Ed25519Identity.generate().marshalPrivateKey().length); // 68
   * ```
   */
  marshalPrivateKey(): Uint8Array {
    const data = new Uint8Array(2 * SEED_LENGTH);
    data.set(this.#seed);
    data.set(this.publicKey, SEED_LENGTH);
    return toBinary(
      PrivateKeySchema,
      create(PrivateKeySchema, { Type: KeyType.Ed25519, Data: data }),
    );
  }

  /** Never shows key material in `console.log`. */
  [Symbol.for("Deno.customInspect")](): string {
    return `Ed25519Identity(${this.#peerId.toString()})`;
  }
}
