/**
 * Installs the pinned js-libp2p packages under `bench/` (from
 * `bench/package-lock.json`) when they are missing or older than the lock
 * file. The interop tests and the comparison bench run them under Deno.
 *
 * Run: `deno run --allow-read --allow-run=npm --allow-env bench/install.ts`
 * (the `test` and `bench:compare` tasks do it first).
 *
 * @module
 */

const bench = new URL(".", import.meta.url).pathname;

async function mtime(path: string): Promise<number | undefined> {
  try {
    return (await Deno.stat(path)).mtime?.getTime();
  } catch {
    return undefined;
  }
}

/** Whether `bench/node_modules` is missing or older than the lock file. */
export async function needsInstall(): Promise<boolean> {
  const installed = await mtime(`${bench}node_modules/.package-lock.json`);
  const lock = await mtime(`${bench}package-lock.json`);
  return installed === undefined || (lock !== undefined && lock > installed);
}

if (import.meta.main && await needsInstall()) {
  console.error("installing the pinned js-libp2p packages under bench/ (npm ci)");
  const { code } = await new Deno.Command("npm", {
    args: [
      "ci",
      "--prefix",
      bench,
      "--ignore-scripts",
      "--no-audit",
      "--no-fund",
      "--loglevel=error",
    ],
    stdout: "inherit",
    stderr: "inherit",
  }).output();
  if (code !== 0) Deno.exit(code);
}
