/**
 * Summarises a V8 CPU profile (`deno run --cpu-prof`): the CPU time the
 * process was busy (idle left out), per operation, and its split by source
 * file, native op or V8 activity. This is how the README's "CPU per ping" and
 * "CPU per connection" figures are read off a profile.
 *
 * ```sh
 * deno run -A --cpu-prof --cpu-prof-dir=/tmp/prof cli.ts ping /ip4/127.0.0.1/tcp/N/p2p/... --count 30000
 * deno run --allow-read bench/profile_summary.ts /tmp/prof/*.cpuprofile --ops 30000
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
  for (let i = 0; i < profile.samples.length; i++) {
    const place = where.get(profile.samples[i]) ?? "?";
    if (place === "(idle)") continue;
    const dt = profile.timeDeltas[i] ?? 0;
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
  const files = Deno.args.filter((arg, i) => !arg.startsWith("--") && Deno.args[i - 1] !== "--ops");
  const opsAt = Deno.args.indexOf("--ops");
  const ops = opsAt >= 0 ? Number(Deno.args[opsAt + 1]) : 1;
  if (files.length === 0 || !(ops > 0)) {
    console.error("usage: profile_summary.ts FILE.cpuprofile... [--ops N]");
    Deno.exit(2);
  }
  for (const file of files) {
    const { busyMicrosPerOp, rows } = summariseProfile(
      JSON.parse(await Deno.readTextFile(file)),
      ops,
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
