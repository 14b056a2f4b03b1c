/**
 * libp2p peer ids (libp2p/specs `peer-ids/peer-ids.md`).
 *
 * A peer id is a multihash of the peer's serialized public key: "When the
 * serialized key is 42 bytes or less, the identity multihash is used;
 * otherwise sha2-256". An Ed25519 key serializes to 36 bytes, so its peer id
 * inlines the key (38 bytes, text `12D3KooW...`); sha2-256 ids (`Qm...`)
 * come from larger keys such as RSA, and carry no key.
 *
 * Text forms: base58btc of the multihash (the legacy form, which
 * {@linkcode PeerId.toString} writes), and the CIDv1 form, multibase
 * base32 `b...` of `<cidv1><libp2p-key><multihash>`, which
 * {@linkcode PeerId.parse} also accepts.
 *
 * An inlined key must be in its canonical protobuf encoding, the bytes
 * js-libp2p writes (`Type` then `Data`, minimal varints, nothing else). The
 * spec's "Note about deterministic encoding" says why: "it ensures the same
 * public key will always result in the same peer id"; a decoder that also
 * read fields out of order, duplicated or unknown would let one key appear
 * as two unequal peers, so every other encoding is refused.
 *
 * Every malformed peer id throws `NetworkError("BAD_ADDRESS")`: peer ids
 * arrive inside multiaddrs and configuration, where a bad one is a bad
 * address.
 *
 * @module
 */

import { equalBytes } from "../_bytes.ts";
import { decodeBase58, encodeBase58 } from "../base58.ts";
import { NetworkError } from "../network_error.ts";
import { decodeVarint } from "../varint.ts";
import { decodeBase32, encodeBase32 } from "./_base32.ts";
import { marshalEd25519PublicKey, unmarshalPublicKey } from "./public_key.ts";

/** Multihash code of the identity "hash" (the digest is the input). */
const IDENTITY = 0x00;
/** Multihash code of sha2-256. */
const SHA2_256 = 0x12;
/** The spec's limit for inlining a key with the identity multihash. */
const MAX_INLINE_KEY_LENGTH = 42;
/** CIDv1 version and the `libp2p-key` multicodec. */
const CID_V1 = 0x01;
const LIBP2P_KEY = 0x72;
/** Longer text cannot be a peer id; the bound keeps base58 decoding cheap. */
const MAX_TEXT_LENGTH = 128;

/**
 * A libp2p peer id: immutable, compared by its multihash bytes.
 *
 * @example
 * ```ts
 * import { PeerId } from "./peer_id.ts";
 * const id = PeerId.parse("12D3KooWDpJ7As7BWAwRMfu1VU2WCqNjvq387JEYKDBj4kx6nXTN");
 * console.log(id.publicKey?.length); // 32
 * console.log(id.equals(PeerId.fromBytes(id.bytes))); // true
 * ```
 */
export class PeerId {
  readonly #bytes: Uint8Array;
  readonly #publicKey: Uint8Array | undefined;
  #text: string | undefined;

  private constructor(bytes: Uint8Array, publicKey: Uint8Array | undefined) {
    this.#bytes = bytes;
    this.#publicKey = publicKey;
  }

  /**
   * The peer id of a raw 32-byte Ed25519 public key: the identity multihash
   * of its `PublicKey` protobuf.
   *
   * @throws {RangeError} when the key is not 32 bytes (a caller bug)
   * @example
   * ```ts
   * import { PeerId } from "./peer_id.ts";
   * console.log(PeerId.fromPublicKey(new Uint8Array(32)).toString().startsWith("12D3KooW")); // true
   * ```
   */
  static fromPublicKey(ed25519PublicKey: Uint8Array): PeerId {
    const key = marshalEd25519PublicKey(ed25519PublicKey);
    const bytes = new Uint8Array(2 + key.length);
    bytes[0] = IDENTITY;
    bytes[1] = key.length;
    bytes.set(key, 2);
    return new PeerId(bytes, ed25519PublicKey.slice());
  }

  /**
   * Reads a peer id from its binary multihash. Accepts an identity multihash
   * of at most 42 bytes holding the canonical `PublicKey` protobuf of an
   * Ed25519 key (the one key type supported; exactly the bytes
   * {@linkcode marshalEd25519PublicKey} writes, so each key has one id) and
   * a sha2-256 multihash of 32 bytes.
   *
   * @throws {NetworkError} `BAD_ADDRESS` for anything else
   * @example
   * ```ts
   * import { PeerId } from "./peer_id.ts";
   * const id = PeerId.fromBytes(new Uint8Array([0x12, 0x20, ...new Uint8Array(32)]));
   * console.log(id.toString().startsWith("Qm"), id.publicKey); // true undefined
   * ```
   */
  static fromBytes(multihash: Uint8Array): PeerId {
    const bytes = multihash.slice();
    let code;
    let length;
    try {
      code = decodeVarint(bytes, 0, 0xff);
      length = code === undefined ? undefined : decodeVarint(bytes, code.length, 0xff);
    } catch (err) {
      // Not `NetworkError.wrap`: the varint's own code would leak through.
      throw new NetworkError("BAD_ADDRESS", "peer id multihash has a malformed varint", {
        cause: err,
      });
    }
    if (code === undefined || length === undefined) {
      throw new NetworkError("BAD_ADDRESS", "peer id multihash is truncated");
    }
    const digest = bytes.subarray(code.length + length.length);
    if (digest.length !== length.value) {
      throw new NetworkError(
        "BAD_ADDRESS",
        `peer id multihash says ${length.value} digest bytes but has ${digest.length}`,
      );
    }
    switch (code.value) {
      case IDENTITY: {
        if (digest.length > MAX_INLINE_KEY_LENGTH) {
          throw new NetworkError("BAD_ADDRESS", "identity peer id longer than 42 bytes");
        }
        let raw;
        try {
          raw = unmarshalPublicKey(digest).raw;
        } catch (err) {
          throw new NetworkError("BAD_ADDRESS", "identity peer id does not hold a usable key", {
            cause: err,
          });
        }
        // A protobuf decoder also reads fields in another order, duplicated
        // or unknown fields and over-long varints: each such spelling of the
        // same key would be another PeerId, unequal to the key's own. One key
        // is one peer, so only the canonical encoding is an id.
        if (!equalBytes(digest, marshalEd25519PublicKey(raw))) {
          throw new NetworkError(
            "BAD_ADDRESS",
            "identity peer id holds a non-canonical encoding of its key",
          );
        }
        return new PeerId(bytes, raw);
      }
      case SHA2_256:
        if (digest.length !== 32) {
          throw new NetworkError("BAD_ADDRESS", "sha2-256 peer id digest must be 32 bytes");
        }
        return new PeerId(bytes, undefined);
      default:
        throw new NetworkError(
          "BAD_ADDRESS",
          `peer id uses unsupported multihash 0x${code.value.toString(16)}`,
        );
    }
  }

  /**
   * Parses a peer id's text: base58btc of the multihash (`12D3KooW...`,
   * `Qm...`) or the CIDv1 form in base32 (`bafz...`).
   *
   * @throws {NetworkError} `BAD_ADDRESS` for anything else
   * @example
   * ```ts
   * import { PeerId } from "./peer_id.ts";
   * const a = PeerId.parse("12D3KooWDpJ7As7BWAwRMfu1VU2WCqNjvq387JEYKDBj4kx6nXTN");
   * console.log(PeerId.parse(a.toCidString()).equals(a)); // true
   * ```
   */
  static parse(text: string): PeerId {
    const known = parsedIds.get(text);
    if (known !== undefined) return known;
    const id = parsePeerId(text);
    // A dialer parses the peer id of every address it dials: the same few.
    if (parsedIds.size >= MAX_PARSED_IDS) parsedIds.delete(parsedIds.keys().next().value!);
    parsedIds.set(text, id);
    return id;
  }

  /** The multihash bytes. Do not modify them. */
  get bytes(): Uint8Array {
    return this.#bytes;
  }

  /**
   * The raw Ed25519 public key when the id inlines it (identity multihash),
   * else `undefined`. Do not modify it.
   */
  get publicKey(): Uint8Array | undefined {
    return this.#publicKey;
  }

  /** The legacy text form: base58btc of the multihash. */
  toString(): string {
    this.#text ??= encodeBase58(this.#bytes);
    return this.#text;
  }

  /**
   * The CIDv1 text form: `b` + base32 of `<0x01><0x72><multihash>`.
   *
   * @example
   * ```ts
   * import { PeerId } from "./peer_id.ts";
   * console.log(PeerId.fromPublicKey(new Uint8Array(32)).toCidString().startsWith("bafz")); // true
   * ```
   */
  toCidString(): string {
    const cid = new Uint8Array(2 + this.#bytes.length);
    cid[0] = CID_V1;
    cid[1] = LIBP2P_KEY;
    cid.set(this.#bytes, 2);
    return "b" + encodeBase32(cid);
  }

  /** Whether both ids have the same multihash bytes. */
  equals(other: PeerId): boolean {
    return equalBytes(this.#bytes, other.#bytes);
  }

  /** Shows the text form in `console.log` and the Deno inspector. */
  [Symbol.for("Deno.customInspect")](): string {
    return `PeerId(${this.toString()})`;
  }

  /** JSON as the text form, so logs show it readably. */
  toJSON(): string {
    return this.toString();
  }
}

/** Ids parsed so far, by text, the oldest dropped first: PeerId is immutable. */
const parsedIds = new Map<string, PeerId>();
const MAX_PARSED_IDS = 1024;

function parsePeerId(text: string): PeerId {
  if (text.length === 0 || text.length > MAX_TEXT_LENGTH) {
    throw new NetworkError("BAD_ADDRESS", `peer id text of ${text.length} characters`);
  }
  // A base58 multihash starts with "1" (identity) or "Q" (sha2-256), never
  // "b", so the multibase prefix is unambiguous.
  if (text[0] !== "b") return PeerId.fromBytes(decodeBase58(text));
  const cid = decodeBase32(text.slice(1));
  if (cid.length < 2 || cid[0] !== CID_V1 || cid[1] !== LIBP2P_KEY) {
    throw new NetworkError("BAD_ADDRESS", "peer id CID is not a CIDv1 libp2p-key");
  }
  return PeerId.fromBytes(cid.subarray(2));
}
