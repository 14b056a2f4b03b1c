/**
 * Summarises a V8 CPU profile (`deno run --cpu-prof`): the CPU time the
 * process was busy (idle left out), per operation, and its split by source
 * file, native op or V8 activity. This is how the README's "CPU per ping" and
 * "CPU per connection" figures are read off a profile.
 *
 * ```sh
 * deno run -A --cpu-prof --cpu-prof-dir=/tmp/prof cli.ts ping /ip4/127.0.0.1/tcp/N/p2p/... --count 30000
 * deno run --allow-read bench/profile_summary.ts /tmp/prof/*.cpuprofile --ops 30000
 * # only the samples from 29964 to 34050 ms after the profile started (a run that
 * # printed when its measured part began and ended, e.g. bench/scale.ts --trace):
 * deno run --allow-read bench/profile_summary.ts /tmp/prof/*.cpuprofile --window 29964,34050
 * ```
 *
 * The listener's profile is written when it exits on SIGINT (`kill -INT`).
 *
 * @module
 */

/** The parts of a `.cpuprofile` this reads. */
interface CpuProfile {
  nodes: { id: number; callFrame: { functionName: string; url: string } }[];
  samples: number[];
  timeDeltas: number[];
}

/** One row of the summary: where the time went, in microseconds per operation. */
export interface ProfileRow {
  /** A source file (relative to the repository), a native op, or a V8 activity. */
  where: string;
  /** Self time per operation, microseconds. */
  microsPerOp: number;
  /** Share of the busy time, 0..1. */
  share: number;
}

/**
 * Busy time per operation and its split by where it was spent, largest first.
 *
 * @example
 * ```ts ignore
 * import { summariseProfile } from "./profile_summary.ts";
 * const { busyMicrosPerOp } = summariseProfile(JSON.parse(await Deno.readTextFile(file)), 1000);
 * ```
 */
export function summariseProfile(
  profile: CpuProfile,
  ops: number,
  window: { fromMs: number; toMs: number } = { fromMs: 0, toMs: Number.POSITIVE_INFINITY },
): { busyMicrosPerOp: number; rows: ProfileRow[] } {
  const where = new Map<number, string>();
  for (const node of profile.nodes) {
    const { functionName, url } = node.callFrame;
    const place = url === ""
      ? functionName
      : url.replace(/^.*\/(netcore|memsocket|protocols|bench|tests)\//, "$1/")
        .replace(/^.*registry\.npmjs\.org\//, "npm:");
    where.set(node.id, place);
  }
  const totals = new Map<string, number>();
  let busy = 0;
  let at = 0;
  for (let i = 0; i < profile.samples.length; i++) {
    const dt = profile.timeDeltas[i] ?? 0;
    at += dt;
    if (at < window.fromMs * 1000 || at > window.toMs * 1000) continue;
    const place = where.get(profile.samples[i]) ?? "?";
    if (place === "(idle)") continue;
    busy += dt;
    totals.set(place, (totals.get(place) ?? 0) + dt);
  }
  const rows = [...totals].map(([place, micros]) => ({
    where: place,
    microsPerOp: micros / ops,
    share: busy === 0 ? 0 : micros / busy,
  })).sort((a, b) => b.microsPerOp - a.microsPerOp);
  return { busyMicrosPerOp: busy / ops, rows };
}

if (import.meta.main) {
  const valued = new Set(["--ops", "--window"]);
  const files = Deno.args.filter((arg, i) =>
    !arg.startsWith("--") && !valued.has(Deno.args[i - 1])
  );
  const opsAt = Deno.args.indexOf("--ops");
  const ops = opsAt >= 0 ? Number(Deno.args[opsAt + 1]) : 1;
  const windowAt = Deno.args.indexOf("--window");
  const [fromMs, toMs] = windowAt >= 0
    ? Deno.args[windowAt + 1].split(",").map(Number)
    : [0, Number.POSITIVE_INFINITY];
  if (files.length === 0 || !(ops > 0) || !(fromMs <= toMs)) {
    console.error(
      "usage: profile_summary.ts FILE.cpuprofile... [--ops N] [--window FROM_MS,TO_MS]",
    );
    Deno.exit(2);
  }
  for (const file of files) {
    const { busyMicrosPerOp, rows } = summariseProfile(
      JSON.parse(await Deno.readTextFile(file)),
      ops,
      { fromMs, toMs },
    );
    console.log(`${file}: busy ${busyMicrosPerOp.toFixed(1)} us per op`);
    for (const row of rows.slice(0, 25)) {
      console.log(
        `${(100 * row.share).toFixed(1).padStart(5)}% ${
          row.microsPerOp.toFixed(2).padStart(9)
        } us  ${row.where}`,
      );
    }
  }
}
