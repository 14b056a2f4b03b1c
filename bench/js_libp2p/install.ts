/**
 * Installs the pinned js-libp2p packages of `bench/js_libp2p/` (`npm ci` from
 * its `package-lock.json` into its `node_modules/`) when they are missing or
 * older than the lock file. The interop tests and `bench/compare.ts` call
 * {@linkcode ensureInstalled} before they start the reference node, so
 * nothing needs installing by hand and the unit tests need no npm at all.
 *
 * Several processes may ask at once (`deno test --parallel` runs each test
 * file in its own worker): the install runs in a child process that holds an
 * exclusive lock on `bench/js_libp2p/.install.lock` (`Deno.FsFile.lock`, an
 * OS file lock the kernel drops when the holder exits, so a killed install
 * leaves no stale lock) and checks again once it holds it. The first one
 * installs; the others wait for it, find the packages in place and return.
 *
 * By hand:
 * `deno run --allow-read --allow-write=bench/js_libp2p/.install.lock --allow-run=npm --allow-env bench/js_libp2p/install.ts`
 *
 * @module
 */

const HERE = new URL(".", import.meta.url);

function path(relative: string): string {
  return decodeURIComponent(new URL(relative, HERE).pathname);
}

/** The folder that holds `package.json`, `package-lock.json` and `node_modules/`. */
export const JS_LIBP2P_DIR: string = path(".");
/** The lock file the installing process holds (git-ignored). */
const LOCK_FILE = path(".install.lock");

async function mtime(file: string): Promise<number | undefined> {
  try {
    return (await Deno.stat(file)).mtime?.getTime();
  } catch {
    return undefined;
  }
}

/**
 * Whether `bench/js_libp2p/node_modules` is missing or older than the lock
 * file (npm writes `node_modules/.package-lock.json` when an install ends).
 *
 * @example
 * ```ts
 * import { needsInstall } from "./install.ts";
 *
 * if (await needsInstall()) console.log("the js-libp2p packages are not installed");
 * ```
 */
export async function needsInstall(): Promise<boolean> {
  const installed = await mtime(path("node_modules/.package-lock.json"));
  const lock = await mtime(path("package-lock.json"));
  return installed === undefined || (lock !== undefined && lock > installed);
}

let installing: Promise<void> | undefined;

/**
 * Makes sure the pinned packages are installed: returns at once when they
 * are, else runs this file as a child process (which takes the install lock,
 * checks again and runs `npm ci`) and waits for it. Calls in one isolate share
 * one attempt (a failed one is tried again on the next call); other isolates
 * and processes wait on the lock. Needs `--allow-read` and `--allow-run` (the
 * child gets its own narrow permissions).
 *
 * @throws {Error} when `npm ci` fails (its output is in the message).
 * @example
 * ```ts ignore
 * import { ensureInstalled } from "./install.ts";
 *
 * await ensureInstalled();
 * // bench/js_libp2p/node.ts can run now
 * ```
 */
export function ensureInstalled(): Promise<void> {
  installing ??= (async () => {
    if (!await needsInstall()) return;
    const { code, stdout, stderr } = await new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        `--allow-read=${JS_LIBP2P_DIR}`,
        `--allow-write=${LOCK_FILE}`,
        "--allow-run=npm",
        "--allow-env",
        path("install.ts"),
      ],
      env: { DENO_NO_UPDATE_CHECK: "1", NO_COLOR: "1" },
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).output();
    const decoder = new TextDecoder();
    const output = decoder.decode(stderr) + decoder.decode(stdout);
    if (code !== 0) {
      throw new Error(
        `installing the js-libp2p packages failed (exit ${code}):\n${output}`,
      );
    }
    if (output.trim() !== "") console.error(output.trimEnd());
  })();
  // A failed attempt is not kept: the next caller tries again.
  installing.catch(() => {
    installing = undefined;
  });
  return installing;
}

/**
 * Holds the install lock, checks again and runs `npm ci` if still needed.
 * Resolves with npm's exit code (0 when nothing was needed).
 *
 * An interrupt (SIGINT, SIGTERM) does not end this process before npm ends:
 * npm undoes a half-done install on its way out, and the lock must stay
 * held until it has, or the next installer's `npm ci` would race that undo.
 */
async function installUnderLock(): Promise<number> {
  // Closing the file (`using`, on every return) releases the lock.
  using lock = await Deno.open(LOCK_FILE, { write: true, create: true });
  await lock.lock(true);
  if (!await needsInstall()) return 0;
  console.error(
    "installing the pinned js-libp2p packages under bench/js_libp2p/ (npm ci)",
  );
  const npm = new Deno.Command("npm", {
    args: [
      "ci",
      "--prefix",
      JS_LIBP2P_DIR,
      "--ignore-scripts",
      "--no-audit",
      "--no-fund",
      "--loglevel=error",
    ],
    stdin: "null",
    stdout: "inherit",
    stderr: "inherit",
  }).spawn();
  let interrupted: Deno.Signal | undefined;
  const listeners = (["SIGINT", "SIGTERM"] as const).map((signal) => {
    const listener = () => {
      interrupted ??= signal;
      // A signal sent to this process alone reaches npm this way; one sent
      // to the whole process group (Ctrl-C) reached it already.
      try {
        npm.kill(signal);
      } catch { /* already gone */ }
    };
    Deno.addSignalListener(signal, listener);
    return () => Deno.removeSignalListener(signal, listener);
  });
  const { code } = await npm.status;
  for (const remove of listeners) remove();
  if (interrupted !== undefined) return interrupted === "SIGINT" ? 130 : 143;
  return code;
}

if (import.meta.main) {
  const code = await installUnderLock();
  if (code !== 0) Deno.exit(code);
}
