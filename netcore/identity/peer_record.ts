/**
 * libp2p peer records (libp2p/specs `RFC/0003-routing-records.md`): a peer's
 * listen addresses and a sequence number, signed by the peer itself inside a
 * {@link ./signed_envelope.ts | signed envelope}, so that whoever relays the
 * record (gossip, discovery) cannot change it.
 *
 * The envelope's domain is `libp2p-peer-record` and its payload type the
 * multicodec `libp2p-peer-record` (0x0301), written as the two bytes
 * `03 01`, as go-libp2p and js-libp2p write it (not as a varint).
 *
 * {@linkcode openPeerRecord} follows the RFC's "Certification /
 * Verification": "a peer MUST validate the signature before deserializing
 * the [record]", then "MUST verify that the `peer_id` contained in the
 * [record] matches the `public_key` from the envelope".
 *
 * The sequence number orders a peer's records in time: "Newer records MUST
 * have a higher `seq` value than older records". js-libp2p and go-libp2p
 * take it from the clock; here the caller sets it, and whoever keeps records
 * compares it (a later stage): this module only encodes and checks.
 *
 * The signature covers the record, not the envelope around it: a relay can
 * re-encode an envelope (add an unknown field, say) and it still opens as
 * the same record. Tell records apart by peer id and `seq`, never by the
 * envelope's bytes.
 *
 * @module
 */

import { create, toBinary } from "@bufbuild/protobuf";
import { Multiaddr } from "../multiaddr.ts";
import { NetworkError } from "../network_error.ts";
import { PeerRecord_AddressInfoSchema, PeerRecordSchema } from "../proto/_gen/peer_record_pb.ts";
import { decodeMessage } from "../proto/decode_message.ts";
import type { Ed25519Identity } from "./ed25519_identity.ts";
import { PeerId } from "./peer_id.ts";
import {
  DEFAULT_MAX_SIGNED_ENVELOPE_BYTES,
  openSignedEnvelope,
  sealSignedEnvelope,
} from "./signed_envelope.ts";

/**
 * The signed envelope domain of peer records.
 *
 * @example
 * ```ts
 * import { PEER_RECORD_DOMAIN } from "./peer_record.ts";
 * console.log(PEER_RECORD_DOMAIN); // "libp2p-peer-record"
 * ```
 */
export const PEER_RECORD_DOMAIN = "libp2p-peer-record";

/** The envelope payload type of peer records: multicodec 0x0301, big-endian. */
const PEER_RECORD_PAYLOAD_TYPE = new Uint8Array([0x03, 0x01]);

/**
 * The default for {@linkcode OpenPeerRecordOptions.maxAddrs}.
 *
 * @example
 * ```ts
 * import { DEFAULT_MAX_PEER_RECORD_ADDRS } from "./peer_record.ts";
 * console.log(DEFAULT_MAX_PEER_RECORD_ADDRS); // 32
 * ```
 */
export const DEFAULT_MAX_PEER_RECORD_ADDRS = 32;

/** The largest sequence number: the protobuf field is a uint64. */
const MAX_SEQ = (1n << 64n) - 1n;

/**
 * A peer's signed listen addresses, as {@linkcode openPeerRecord} returns them.
 *
 * @example
 * ```ts
 * import { Ed25519Identity, openPeerRecord, type PeerRecord, sealPeerRecord } from "./mod.ts";
 * const record: PeerRecord = openPeerRecord(
 *   sealPeerRecord(Ed25519Identity.generate(), { seq: 3n, addrs: [] }),
 * );
 * console.log(record.seq, record.addrs.length); // 3n 0
 * ```
 */
export interface PeerRecord {
  /** The peer the record is about, which is also the peer that signed it. */
  peerId: PeerId;
  /** Orders the peer's records in time: a newer record has a higher `seq`. */
  seq: bigint;
  /** The peer's listen addresses, in the record's order. */
  addrs: Multiaddr[];
}

/**
 * What {@linkcode sealPeerRecord} signs.
 *
 * @example
 * ```ts
 * import type { PeerRecordInit } from "./peer_record.ts";
 * import { Multiaddr } from "../multiaddr.ts";
 * const init: PeerRecordInit = {
 *   seq: BigInt(Date.now()), // a clock makes each new record's seq higher
 *   addrs: [Multiaddr.parse("/ip4/192.0.2.1/tcp/4001")],
 * };
 * ```
 */
export interface PeerRecordInit {
  /**
   * The peer the record is about. Default: the signing identity's; any other
   * peer id is refused, since no one could verify the record.
   */
  peerId?: PeerId;
  /** The sequence number, 0 to 2^64 - 1; higher than any earlier record's. */
  seq: bigint;
  /** The listen addresses to publish. */
  addrs: readonly Multiaddr[];
}

/**
 * Options for {@linkcode openPeerRecord}.
 *
 * @example
 * ```ts
 * import type { OpenPeerRecordOptions } from "./peer_record.ts";
 * const options: OpenPeerRecordOptions = { maxBytes: 2048, maxAddrs: 8 };
 * ```
 */
export interface OpenPeerRecordOptions {
  /**
   * Largest accepted envelope, in bytes, the record inside included.
   * Default: {@linkcode DEFAULT_MAX_SIGNED_ENVELOPE_BYTES} (4096).
   */
  maxBytes?: number;
  /**
   * Most addresses accepted in one record. Default:
   * {@linkcode DEFAULT_MAX_PEER_RECORD_ADDRS} (32).
   */
  maxAddrs?: number;
}

/**
 * Signs a peer record with `identity` and returns the envelope's bytes, to
 * publish as they are. The envelope is byte for byte what js-libp2p's
 * `RecordEnvelope.seal` makes of the same record and key.
 *
 * Addresses are not limited here; a record with more than a receiver's
 * `maxAddrs` (32 by default) or larger than its `maxBytes` is refused there.
 *
 * @throws {RangeError} for a `seq` outside 0..2^64-1 or a `peerId` other
 *   than the identity's (caller bugs)
 * @example
 * ```ts
 * import { Ed25519Identity, openPeerRecord, sealPeerRecord } from "./mod.ts";
 * import { Multiaddr } from "../multiaddr.ts";
 * const me = Ed25519Identity.generate();
 * const bytes = sealPeerRecord(me, { seq: 1n, addrs: [Multiaddr.parse("/ip4/192.0.2.1/tcp/4001")] });
 * const record = openPeerRecord(bytes);
 * console.log(record.peerId.equals(me.peerId), record.seq, record.addrs[0].toString());
 * // true 1n "/ip4/192.0.2.1/tcp/4001"
 * ```
 */
export function sealPeerRecord(identity: Ed25519Identity, record: PeerRecordInit): Uint8Array {
  const peerId = record.peerId ?? identity.peerId;
  if (!peerId.equals(identity.peerId)) {
    throw new RangeError(`a peer record of ${peerId} cannot be signed by ${identity.peerId}`);
  }
  if (typeof record.seq !== "bigint" || record.seq < 0n || record.seq > MAX_SEQ) {
    throw new RangeError(`peer record seq must be a bigint in 0..2^64-1, got ${record.seq}`);
  }
  const payload = toBinary(
    PeerRecordSchema,
    create(PeerRecordSchema, {
      peerId: peerId.bytes,
      seq: record.seq,
      addresses: record.addrs.map((addr) =>
        create(PeerRecord_AddressInfoSchema, { multiaddr: addr.bytes })
      ),
    }),
  );
  return sealSignedEnvelope(identity, PEER_RECORD_DOMAIN, PEER_RECORD_PAYLOAD_TYPE, payload);
}

/**
 * Opens a peer record envelope from untrusted bytes: checks its size, that
 * it decodes, that its key is Ed25519, that it holds a peer record, that the
 * signature verifies for the peer record domain, and that the record's peer
 * id is the signer's; then reads the addresses. The error's message says
 * which check failed.
 *
 * Addresses must be ones {@linkcode Multiaddr} supports: a record listing
 * another kind (QUIC, WebRTC, ...) is refused as a whole, not trimmed.
 *
 * @throws {NetworkError} `FRAME_TOO_LARGE` for more than `maxBytes` bytes or
 *   more than `maxAddrs` addresses; `PROTOCOL_VIOLATION` for a malformed
 *   envelope, record, peer id or address, a key that is not Ed25519, or a
 *   payload that is not a peer record; `UNAUTHORIZED` for a signature that
 *   does not verify for the peer record domain, or a record about a peer
 *   other than its signer
 * @example
 * ```ts
 * import { Ed25519Identity, openPeerRecord, sealPeerRecord } from "./mod.ts";
 * import { NetworkError } from "../network_error.ts";
 * const bytes = sealPeerRecord(Ed25519Identity.generate(), { seq: 7n, addrs: [] });
 * bytes[bytes.length - 1] ^= 1; // a bit of the signature
 * try {
 *   openPeerRecord(bytes);
 * } catch (err) {
 *   console.log(NetworkError.is(err, "UNAUTHORIZED")); // true
 * }
 * ```
 */
export function openPeerRecord(
  bytes: Uint8Array,
  options: OpenPeerRecordOptions = {},
): PeerRecord {
  const maxBytes = options.maxBytes ?? DEFAULT_MAX_SIGNED_ENVELOPE_BYTES;
  const maxAddrs = options.maxAddrs ?? DEFAULT_MAX_PEER_RECORD_ADDRS;
  const envelope = openSignedEnvelope(bytes, PEER_RECORD_DOMAIN, {
    maxBytes,
    payloadType: PEER_RECORD_PAYLOAD_TYPE,
  });
  // The envelope's payload is a copy, so the record's fields are no views
  // into the caller's buffer.
  const message = decodeMessage(PeerRecordSchema, envelope.payload, {
    maxBytes,
    what: "peer record",
  });
  let peerId;
  try {
    peerId = PeerId.fromBytes(message.peerId);
  } catch (err) {
    const detail = err instanceof Error ? err.message : String(err);
    throw new NetworkError("PROTOCOL_VIOLATION", `peer record peer id: ${detail}`, { cause: err });
  }
  if (!peerId.equals(envelope.signer)) {
    throw new NetworkError(
      "UNAUTHORIZED",
      `peer record of ${peerId} is signed by another peer, ${envelope.signer}`,
    );
  }
  if (message.addresses.length > maxAddrs) {
    throw new NetworkError(
      "FRAME_TOO_LARGE",
      `peer record lists ${message.addresses.length} addresses, more than the limit of ${maxAddrs}`,
    );
  }
  const addrs = message.addresses.map((info, i) => {
    try {
      return Multiaddr.fromBytes(info.multiaddr);
    } catch (err) {
      const detail = err instanceof Error ? err.message : String(err);
      throw new NetworkError("PROTOCOL_VIOLATION", `peer record address ${i}: ${detail}`, {
        cause: err,
      });
    }
  });
  return { peerId, seq: message.seq, addrs };
}
