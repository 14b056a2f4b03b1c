/**
 * Spawning benchmark nodes as separate processes: start a listener and wait
 * for its `listening` lines, run a client command to completion, stop a
 * listener cleanly (SIGTERM, then SIGKILL if it lingers).
 *
 * @module
 */

/**
 * The node implementations that speak the CLI contract of `protocols/cli_contract.ts`.
 * `sealed` is the raw node with perf's bytes sealed by node:crypto (its
 * `--sealed` mode): the ceiling of a Noise stack on that cipher.
 */
export type Implementation = "ours" | "base" | "js-libp2p" | "raw" | "sealed";

/**
 * The checkout whose `cli.ts` the `base` implementation runs: another
 * commit of this repository (a git worktree), to compare a change with the
 * code before it in the same run.
 */
let baseCheckout: string | undefined;

/** Sets the checkout `base` runs (see {@linkcode Implementation}). */
export function setBaseCheckout(dir: string): void {
  baseCheckout = dir.endsWith("/") ? dir : `${dir}/`;
}

const ROOT = new URL("../", import.meta.url);

/** Absolute path of a repository file. */
function repoPath(relative: string): string {
  return decodeURIComponent(new URL(relative, ROOT).pathname);
}

/**
 * The command line (program and leading arguments) that runs an
 * implementation; the contract's sub-command follows it.
 *
 * @example
 * ```ts
 * const [program, ...args] = nodeCommand("raw");
 * new Deno.Command(program, { args: [...args, "listen"] });
 * ```
 */
export function nodeCommand(impl: Implementation): string[] {
  switch (impl) {
    case "ours":
      return [Deno.execPath(), "run", "-A", repoPath("cli.ts")];
    case "base":
      return [Deno.execPath(), "run", "-A", `${baseCheckout ?? repoPath("")}cli.ts`];
    case "js-libp2p":
      // `manual` makes Deno resolve bare npm names from bench/js_libp2p/node_modules
      // (installed by bench/js_libp2p/install.ts) instead of its own cache.
      return [
        Deno.execPath(),
        "run",
        "-A",
        "--node-modules-dir=manual",
        repoPath("bench/js_libp2p/node.ts"),
      ];
    case "raw":
      return [Deno.execPath(), "run", "-A", repoPath("bench/raw_tcp_node.ts")];
    case "sealed":
      return [Deno.execPath(), "run", "-A", repoPath("bench/raw_tcp_node.ts"), "--sealed"];
  }
}

/**
 * Whether an implementation can run here: `ours` needs `cli.ts`, `js-libp2p`
 * needs `bench/js_libp2p/node_modules` (`ensureInstalled()` of
 * `bench/js_libp2p/install.ts` puts it there).
 *
 * @example
 * ```ts
 * if (!await isAvailable("js-libp2p")) console.log("js-libp2p is not installed");
 * ```
 */
export async function isAvailable(impl: Implementation): Promise<boolean> {
  if (impl === "base") {
    if (baseCheckout === undefined) return false;
    try {
      await Deno.stat(`${baseCheckout}cli.ts`);
      return true;
    } catch {
      return false;
    }
  }
  const needed = impl === "ours"
    ? "cli.ts"
    : impl === "js-libp2p"
    ? "bench/js_libp2p/node_modules/libp2p/package.json"
    : "bench/raw_tcp_node.ts";
  try {
    await Deno.stat(repoPath(needed));
    return true;
  } catch {
    return false;
  }
}

const CHILD_ENV = { DENO_NO_UPDATE_CHECK: "1", NO_COLOR: "1" };

/** Options for {@linkcode startListener}. */
export interface StartListenerOptions {
  /** The `--listen` multiaddr. Default: the node's own default (127.0.0.1, port 0). */
  listen?: string;
  /** How long to wait for the first `listening` line, ms. Default: 30 000. */
  timeoutMs?: number;
}

/**
 * A running listener process. Close it with {@linkcode ListeningNode.close}
 * (or `await using`).
 */
export interface ListeningNode extends AsyncDisposable {
  /** The implementation that runs. */
  readonly impl: Implementation;
  /** Every address the node printed, with `/p2p/<id>` when it has a peer id. */
  readonly multiaddrs: readonly string[];
  /** The first printed address. */
  readonly multiaddr: string;
  /** The peer id from `/p2p/<id>`, if any. */
  readonly peerId?: string;
  /** Everything the node printed on stderr so far (for failure messages). */
  stderr(): string;
  /** SIGTERM, wait up to 5 s, then SIGKILL; resolves with the exit code. */
  close(): Promise<number>;
}

/**
 * Starts `impl listen` and resolves once it prints its first `listening`
 * line (other lines printed in the same burst are collected too).
 *
 * @example
 * ```ts
 * await using node = await startListener("js-libp2p");
 * console.log(node.multiaddr); // /ip4/127.0.0.1/tcp/40001/p2p/12D3KooW...
 * ```
 */
export async function startListener(
  impl: Implementation,
  options: StartListenerOptions = {},
): Promise<ListeningNode> {
  const [program, ...args] = nodeCommand(impl);
  if (options.listen !== undefined) {
    args.push("listen", "--listen", options.listen);
  } else args.push("listen");
  const child = new Deno.Command(program, {
    args,
    env: CHILD_ENV,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  let stderrText = "";
  const stderrDone = child.stderr.pipeThrough(new TextDecoderStream()).pipeTo(
    new WritableStream({ write: (t) => void (stderrText += t) }),
  ).catch(() => {});
  const multiaddrs: string[] = [];
  const ready = Promise.withResolvers<void>();
  const stdoutDone = (async () => {
    let buffered = "";
    for await (
      const text of child.stdout.pipeThrough(new TextDecoderStream())
    ) {
      buffered += text;
      let nl;
      while ((nl = buffered.indexOf("\n")) >= 0) {
        const line = buffered.slice(0, nl).trim();
        buffered = buffered.slice(nl + 1);
        const m = line.match(/^listening (\S+)$/);
        if (m) {
          multiaddrs.push(m[1]);
          ready.resolve();
        }
      }
    }
    ready.reject(
      new Error(`${impl} listener exited before printing "listening"`),
    );
  })().catch((err) => ready.reject(err));

  let exited: Promise<number> | undefined;
  const close = (): Promise<number> => {
    exited ??= (async () => {
      try {
        child.kill("SIGTERM");
      } catch { /* already gone */ }
      const timer = setTimeout(() => {
        try {
          child.kill("SIGKILL");
        } catch { /* already gone */ }
      }, 5_000);
      const status = await child.status;
      clearTimeout(timer);
      await Promise.all([stdoutDone, stderrDone]);
      return status.code;
    })();
    return exited;
  };

  const timeoutMs = options.timeoutMs ?? 30_000;
  let timer: ReturnType<typeof setTimeout> | undefined;
  try {
    await Promise.race([
      ready.promise,
      new Promise((_, reject) => {
        timer = setTimeout(
          () =>
            reject(
              new Error(`${impl} listener not ready after ${timeoutMs} ms`),
            ),
          timeoutMs,
        );
      }),
    ]);
  } catch (err) {
    await close();
    throw new Error(`${(err as Error).message}\n${stderrText}`);
  } finally {
    clearTimeout(timer);
  }
  // Give a multi-address listener a moment to print the rest of its lines.
  await new Promise((r) => setTimeout(r, 50));
  const first = multiaddrs[0];
  return {
    impl,
    multiaddrs,
    multiaddr: first,
    peerId: first.match(/\/p2p\/([^/]+)$/)?.[1],
    stderr: () => stderrText,
    close,
    [Symbol.asyncDispose]: async () => void await close(),
  };
}

/** What a client command printed and how it exited. */
export interface ClientResult {
  /** The process exit code. */
  code: number;
  /** Everything on stdout. */
  stdout: string;
  /** Everything on stderr. */
  stderr: string;
}

/**
 * Runs `impl <args...>` to completion (killing it after `timeoutMs`,
 * default 10 minutes) and collects its output.
 *
 * @example
 * ```ts
 * const r = await runClient("raw", ["ping", "/ip4/127.0.0.1/tcp/4001", "--count", "10"]);
 * console.log(r.stdout); // ping: 10 rtt avg ...
 * ```
 */
export async function runClient(
  impl: Implementation,
  args: readonly string[],
  timeoutMs = 600_000,
): Promise<ClientResult> {
  const [program, ...prefix] = nodeCommand(impl);
  const child = new Deno.Command(program, {
    args: [...prefix, ...args],
    env: CHILD_ENV,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const timer = setTimeout(() => {
    try {
      child.kill("SIGKILL");
    } catch { /* already gone */ }
  }, timeoutMs);
  try {
    const out = await child.output();
    const decoder = new TextDecoder();
    return {
      code: out.code,
      stdout: decoder.decode(out.stdout),
      stderr: decoder.decode(out.stderr),
    };
  } finally {
    clearTimeout(timer);
  }
}

/**
 * Like {@linkcode runClient} but throws with the output when the exit code
 * is not 0; returns stdout.
 *
 * @example
 * ```ts
 * const stdout = await runClientOk("js-libp2p", ["echo", addr, "--bytes", "1000"]);
 * ```
 */
export async function runClientOk(
  impl: Implementation,
  args: readonly string[],
  timeoutMs?: number,
): Promise<string> {
  const r = await runClient(impl, args, timeoutMs);
  if (r.code !== 0) {
    throw new Error(
      `${impl} ${args.join(" ")} exited ${r.code}\n${r.stdout}${r.stderr}`
        .trimEnd(),
    );
  }
  return r.stdout;
}
