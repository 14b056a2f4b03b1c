/**
 * The per-protocol message counters that DirectSend and RPC share. Internal
 * to `protocols/`.
 *
 * @module
 */

import type { Metrics, Series } from "../netcore/metrics.ts";

/** The protocol's counters, resolved once (what {@linkcode messageCounters} returns). */
export interface Counters {
  /** Messages sent. */
  messagesOut: Series;
  /** Payload bytes sent. */
  bytesOut: Series;
  /** Messages received. */
  messagesIn: Series;
  /** Payload bytes received. */
  bytesIn: Series;
  /** Messages refused, for one reason. */
  refused(reason: string): Series;
}

/** The per-protocol counters (the series RPC shares for its messages). */
export function messageCounters(metrics: Metrics, protocol: string): Counters {
  const messages = metrics.counter(
    "validator_network_messages_total",
    "Messages, by protocol and direction",
    ["protocol", "direction"],
  );
  const bytes = metrics.counter(
    "validator_network_message_bytes_total",
    "Message bytes (payloads), by protocol and direction",
    ["protocol", "direction"],
  );
  const refused = metrics.counter(
    "validator_network_messages_refused_total",
    "Messages refused, by protocol and reason",
    ["protocol", "reason"],
  );
  return {
    messagesOut: messages.labels({ protocol, direction: "out" }),
    bytesOut: bytes.labels({ protocol, direction: "out" }),
    messagesIn: messages.labels({ protocol, direction: "in" }),
    bytesIn: bytes.labels({ protocol, direction: "in" }),
    refused: (reason) => refused.labels({ protocol, reason }),
  };
}
