/**
 * The metrics both Noise profiles record into, declared once.
 *
 * @module
 */

import { defaultRegistry, type Metric } from "../metrics.ts";

/** Handshakes refused, by `profile` (`libp2p`, `validator`) and `reason`. */
export const handshakesRejected: Metric = defaultRegistry.counter(
  "network_noise_rejected_total",
  "Noise handshakes refused, by profile and reason",
  ["profile", "reason"],
);

/** Handshakes completed, by `profile` and `role`. */
export const handshakesCompleted: Metric = defaultRegistry.counter(
  "network_noise_handshakes_total",
  "Noise handshakes completed, by profile and role",
  ["profile", "role"],
);
