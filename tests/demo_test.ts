/**
 * The README's main command runs to completion: `cli.ts demo` starts four
 * validator processes with the consensus demo, kills one with SIGKILL and
 * restarts it, and exits 0 only when every node committed the same chain
 * and the restarted one caught up. Its report has a row per node.
 */

import { assert, assertEquals } from "./_assert.ts";

Deno.test("demo: four validator processes commit one chain; the killed one restarts and catches up", async () => {
  const { code, stdout, stderr } = await new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "--allow-all",
      new URL("../cli.ts", import.meta.url).pathname,
      "demo",
      "--seconds",
      "12",
    ],
    env: { NO_COLOR: "1" },
    stdout: "piped",
    stderr: "piped",
  }).output();
  const out = new TextDecoder().decode(stdout);
  assertEquals(code, 0, out + new TextDecoder().decode(stderr));
  assert(/^demo: SIGKILL node1 at height \d+$/m.test(out), out);
  assert(/^demo: restarting node1/m.test(out), out);
  const rows = out.match(/^node\d\s+\d+\s+yes\s+\d+\s+\d+\s+.*$/gm) ?? [];
  assertEquals(rows.length, 4, out);
  assert(
    /^node1\s+\d+\s+yes\s+1\s.*\syes$/m.test(out),
    `node1 restarted once and caught up: ${out}`,
  );
  assert(out.includes("demo: ok: 4 validators, one chain, the restarted node caught up"), out);
});
