/**
 * The metrics both Noise profiles record into, declared once.
 *
 * @module
 */

import { type Metrics, perScope, type Series } from "../metrics.ts";

/** A profile's handshake counters, with the `profile` label already given. */
export interface NoiseMetrics {
  /** Handshakes completed, by `role`. */
  completed: { labels(labels: { role: string }): Series };
  /** Handshakes refused or failed, by `reason`. */
  rejected: { labels(labels: { reason: string }): Series };
}

const families = perScope((metrics) => ({
  completed: metrics.counter(
    "validator_network_noise_handshakes_total",
    "Noise handshakes completed, by profile and role",
    ["profile", "role"],
  ),
  rejected: metrics.counter(
    "validator_network_noise_rejected_total",
    "Noise handshakes refused or failed, by profile and reason",
    ["profile", "reason"],
  ),
}));

/** The handshake counters of `profile` (`libp2p`, `validator`) in `metrics`. */
export function noiseMetrics(metrics: Metrics, profile: string): NoiseMetrics {
  const { completed, rejected } = families(metrics);
  return {
    completed: { labels: ({ role }) => completed.labels({ profile, role }) },
    rejected: { labels: ({ reason }) => rejected.labels({ profile, reason }) },
  };
}
