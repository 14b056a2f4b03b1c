/**
 * A short chaos run: four validator processes, each in its own network
 * namespace when this runs as root with `ip` (else on loopback, kills
 * only), through a kill and restart and a partition and heal; one chain,
 * the full mesh back after each fault, no crash. The full run is
 * `deno task chaos`.
 */

import { assert } from "./_assert.ts";
import { runChaos } from "../testnet/chaos.ts";

Deno.test("chaos: kills, restarts and a partition leave one chain and a full mesh", async () => {
  const lines: string[] = [];
  const result = await runChaos({ validators: 4, seconds: 12, print: (l) => lines.push(l) });
  assert(result.ok, lines.join("\n"));
  assert(result.faults >= 2, lines.join("\n"));
  if (result.namespaces) {
    assert(lines.some((l) => l.includes("cut node")), lines.join("\n"));
  }
});
