/**
 * Decoding of typed handles' protobuf messages from peers: bounded, and a
 * message that does not decode is dropped, counted and logged (the peer's
 * other messages go on).
 *
 * @module
 */

import type { DescMessage, MessageShape } from "@bufbuild/protobuf";
import type { PeerId } from "../netcore/identity/peer_id.ts";
import type { Logger } from "../netcore/log.ts";
import type { Metrics, Series } from "../netcore/metrics.ts";
import { decodeMessage } from "../netcore/proto/decode_message.ts";

/** Decodes messages of one protocol, counting those that do not decode. */
export class TypedDecoder {
  readonly #refused: Series;
  readonly #log: Logger;
  readonly #maxBytes: number;

  constructor(protocol: string, maxBytes: number, metrics: Metrics, logger: Logger) {
    this.#maxBytes = maxBytes;
    this.#refused = metrics.counter(
      "validator_network_messages_refused_total",
      "Messages refused, by protocol and reason",
      ["protocol", "reason"],
    ).labels({ protocol, reason: "malformed" });
    this.#log = logger.child({ protocol });
  }

  /** The message of `bytes`, or `undefined` (counted) when they do not decode. */
  decode<Desc extends DescMessage>(
    schema: Desc,
    bytes: Uint8Array,
    peer: PeerId,
  ): MessageShape<Desc> | undefined {
    try {
      return decodeMessage(schema, bytes, { maxBytes: this.#maxBytes });
    } catch (err) {
      this.#refused.inc();
      this.#log.warn("malformed message dropped", { peer: peer.toString(), err });
      return undefined;
    }
  }
}
