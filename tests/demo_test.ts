/**
 * The README's demo command runs a validator testnet to completion: a full
 * mesh of authenticated connections, pings on each, and an intruder refused.
 */

import { assert, assertEquals } from "./_assert.ts";

Deno.test("demo: a 3-validator testnet pings in a full mesh and refuses an intruder", async () => {
  const { code, stdout } = await new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "--allow-net",
      "--allow-read",
      "--allow-env",
      "--allow-sys",
      new URL("../demo.ts", import.meta.url).pathname,
      "--validators",
      "3",
      "--pings",
      "3",
    ],
    env: { NETWORK_LOG: "off", NO_COLOR: "1" },
    stdout: "piped",
    stderr: "piped",
  }).output();
  const out = new TextDecoder().decode(stdout);
  assertEquals(code, 0, out);
  assertEquals(out.match(/listening on \/ip4\/127\.0\.0\.1\/tcp\/\d+/g)?.length, 3, out);
  // Each row of the table: a validator, "-" for itself and two round trips.
  assertEquals(out.match(/^\s+validator-\d(\s+(-|\d+)){3}$/gm)?.length, 3, out);
  assert(out.includes("refused an inbound connection: UNAUTHORIZED"), out);
  assert(/^\s+validator_network_noise_rejected_total\{[^}]*"unknown_peer"\} 1$/m.test(out), out);
  assert(out.includes("demo complete"), out);
});
