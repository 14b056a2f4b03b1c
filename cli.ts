/**
 * Command-line node: serves and exercises ping, perf and echo over the full
 * libp2p stack (TCP -> Noise XX -> yamux -> multistream-select).
 *
 * Its output lines are a contract that scripts (bench/compare.ts, the interop
 * tests) parse; keep them exactly:
 *
 * ```text
 * listen [--listen MULTIADDR]...          -> "listening <multiaddr>/p2p/<peer id>" per address
 * ping MULTIADDR [--count N]              -> "ping: N rtt avg X us p50 X us p99 X us"
 * echo MULTIADDR --bytes N                -> "echo: N bytes in X ms"
 * perf MULTIADDR --upload N --download N  -> "perf: upload X MB/s download Y MB/s"
 * connect MULTIADDR [--count N]           -> "connect: N connections X/s"
 * rpc MULTIADDR --count N --concurrency C --bytes B -> "rpc: N requests X req/s p50 Y us p99 Z us"
 * send MULTIADDR --count N --bytes B      -> "send: N messages X msg/s Y MB/s"
 * priority MULTIADDR [--bytes N] [--mode prioritized|fifo]
 *                                         -> "priority: N requests p50 X us p99 Y us prioritized|fifo"
 * keygen --out FILE                       -> {"peerId":"12D3KooW...","noiseKey":"<64 hex digits>"}
 * node --config FILE [--app consensus-demo] -> JSON log lines ("node started", "new peer", "commit", ...)
 * demo [--validators N] [--seconds S]     -> a report per node, exit 0 when the chain agrees
 * ```
 *
 * `keygen` writes the private keys (mode 0600). `node` runs one validator
 * (`validator/node.ts`; the config file is described in
 * `validator/node_config.ts`): a bad config exits 2 with a message naming
 * the field, SIGINT and SIGTERM stop it gracefully. `demo` runs a local
 * testnet of `node` processes (`testnet/demo.ts`).
 *
 * `listen` also serves the bench protocols of `protocols/bench.ts` (an
 * echoing RPC, a counting DirectSend), on the project's own RPC and
 * DirectSend.
 *
 * @module
 */

import type { PeerId } from "./netcore/identity/peer_id.ts";
import { Libp2pNode } from "./netcore/peer/libp2p_node.ts";
import { runPriorityBench, runRpcBench, runSendBench, serveBench } from "./protocols/bench.ts";
import { Multiaddr } from "./netcore/multiaddr.ts";
import { NetworkError } from "./netcore/network_error.ts";
import { handlePing, PING_PROTOCOL, Pinger } from "./protocols/ping.ts";
import { handlePerf, PERF_PROTOCOL, runPerf } from "./protocols/perf.ts";
import { ECHO_PROTOCOL, handleEcho } from "./protocols/echo.ts";
import { ValidatorKeys } from "./validator/validator_keys.ts";
import { NODE_APPS, runNode } from "./validator/node.ts";
import { runDemo } from "./testnet/demo.ts";
import {
  formatConnectLine,
  formatEchoLine,
  formatPerfLine,
  formatPingLine,
  formatPriorityLine,
  formatRpcLine,
  formatSendLine,
  type NodeArgs,
  numberOption,
  parseNodeArgs,
  summarisePings,
} from "./protocols/cli_contract.ts";

const USAGE = `usage:
  cli.ts listen [--listen MULTIADDR]...
  cli.ts ping MULTIADDR [--count N]
  cli.ts echo MULTIADDR --bytes N
  cli.ts perf MULTIADDR --upload N --download N
  cli.ts connect MULTIADDR [--count N]
  cli.ts rpc MULTIADDR --count N --concurrency C --bytes B
  cli.ts send MULTIADDR --count N --bytes B
  cli.ts priority MULTIADDR [--bytes N] [--mode prioritized|fifo]
  cli.ts keygen --out FILE
  cli.ts node --config FILE [--app consensus-demo] [--slot-timeout MS]
  cli.ts demo [--validators N] [--seconds S]`;

/** Bad usage: exit 2 with the usage text. */
class UsageError extends Error {}

/** A config that does not hold: exit 2 with the message (it names the field). */
class ConfigError extends Error {}

function usage<T>(read: () => T): T {
  try {
    return read();
  } catch (err) {
    throw new UsageError(err instanceof Error ? err.message : String(err));
  }
}

function count(args: NodeArgs, name: string, fallback?: number): number {
  return usage(() => numberOption(args, name, fallback));
}

function target(args: NodeArgs): Multiaddr {
  if (args.target === undefined) throw new UsageError(`${args.command} needs a MULTIADDR`);
  return Multiaddr.parse(args.target);
}

async function listen(args: NodeArgs): Promise<void> {
  // Signal handlers first: a script may send SIGTERM as soon as it reads the
  // listening line, and must still get a clean exit.
  const stop = Promise.withResolvers<void>();
  const onSignal = () => stop.resolve();
  Deno.addSignalListener("SIGINT", onSignal);
  Deno.addSignalListener("SIGTERM", onSignal);
  const addrs = args.repeated.get("listen") ?? ["/ip4/127.0.0.1/tcp/0"];
  const node = await Libp2pNode.create({ listen: addrs.map((a) => Multiaddr.parse(a)) });
  node.handle(PING_PROTOCOL, (stream) => handlePing(stream));
  node.handle(PERF_PROTOCOL, (stream) => handlePerf(stream));
  node.handle(ECHO_PROTOCOL, (stream) => handleEcho(stream));
  const stopBench = serveBench(node.manager);
  for (const addr of node.listenAddrs) console.log(`listening ${addr}`);
  await stop.promise;
  Deno.removeSignalListener("SIGINT", onSignal);
  Deno.removeSignalListener("SIGTERM", onSignal);
  await stopBench();
  await node.close();
}

async function ping(args: NodeArgs): Promise<void> {
  const n = count(args, "count", 1);
  const node = await Libp2pNode.create();
  try {
    const pinger = new Pinger(await node.newStream(target(args), [PING_PROTOCOL]));
    const rtts: number[] = [];
    for (let i = 0; i < n; i++) rtts.push(await pinger.ping());
    await pinger.close();
    console.log(formatPingLine(summarisePings(rtts)));
  } finally {
    await node.close();
  }
}

async function echo(args: NodeArgs): Promise<void> {
  const bytes = count(args, "bytes");
  const node = await Libp2pNode.create();
  try {
    const data = new Uint8Array(bytes);
    for (let i = 0; i < bytes; i += 65536) crypto.getRandomValues(data.subarray(i, i + 65536));
    const start = performance.now();
    const stream = await node.newStream(target(args), [ECHO_PROTOCOL]);
    const writer = stream.writable.getWriter();
    const sending = (async () => {
      for (let i = 0; i < bytes; i += 65536) await writer.write(data.slice(i, i + 65536));
      await writer.close();
    })();
    let received = 0;
    for await (const chunk of stream.readable) {
      for (let i = 0; i < chunk.length; i++) {
        if (chunk[i] !== data[received + i]) {
          throw new NetworkError("PROTOCOL_VIOLATION", `echo differs at byte ${received + i}`);
        }
      }
      received += chunk.length;
    }
    await sending;
    if (received !== bytes) {
      throw new NetworkError("PROTOCOL_VIOLATION", `echo returned ${received} of ${bytes} bytes`);
    }
    console.log(formatEchoLine(bytes, performance.now() - start));
  } finally {
    await node.close();
  }
}

async function perf(args: NodeArgs): Promise<void> {
  const upload = count(args, "upload");
  const download = count(args, "download");
  const node = await Libp2pNode.create();
  try {
    const stream = await node.newStream(target(args), [PERF_PROTOCOL]);
    const r = await runPerf(stream, { upload, download });
    console.log(formatPerfLine(r.uploadBytes, r.uploadMs, r.downloadBytes, r.downloadMs));
  } finally {
    await node.close();
  }
}

async function connect(args: NodeArgs): Promise<void> {
  const n = count(args, "count", 100);
  const addr = target(args);
  const node = await Libp2pNode.create();
  try {
    const start = performance.now();
    for (let i = 0; i < n; i++) {
      const conn = await node.dial(addr, { reuse: false });
      // As the js-libp2p reference node does: the proposal leaves with the ping.
      const pinger = new Pinger(await conn.openStream([PING_PROTOCOL], { negotiateFully: false }));
      await pinger.ping();
      // As js-libp2p's stream.close(): end our side; the connection's close
      // waits for the listener's. Not awaited first, so that the stream's
      // FIN and the session's GoAway leave in one write.
      const ended = pinger.closeWrite();
      await conn.close();
      await ended;
    }
    console.log(formatConnectLine(n, performance.now() - start));
  } finally {
    await node.close();
  }
}

/** Dials `addr` (which names its peer) and returns the node and the peer. */
async function connectTo(
  args: NodeArgs,
  options: { prioritized?: boolean } = {},
): Promise<{ node: Libp2pNode; peer: PeerId }> {
  const node = await Libp2pNode.create({
    upgrade: { yamux: { prioritized: options.prioritized ?? true } },
  });
  try {
    const conn = await node.dial(target(args));
    return { node, peer: conn.remotePeer };
  } catch (err) {
    await node.close();
    throw err;
  }
}

async function rpc(args: NodeArgs): Promise<void> {
  const n = count(args, "count");
  const concurrency = count(args, "concurrency", 1);
  const bytes = count(args, "bytes", 64);
  const { node, peer } = await connectTo(args);
  try {
    const r = await runRpcBench(node.manager, peer, { count: n, concurrency, bytes });
    console.log(formatRpcLine(r.latenciesMs, r.elapsedMs));
  } finally {
    await node.close();
  }
}

async function send(args: NodeArgs): Promise<void> {
  const n = count(args, "count");
  const bytes = count(args, "bytes", 64);
  const { node, peer } = await connectTo(args);
  try {
    const r = await runSendBench(node.manager, peer, { count: n, bytes });
    if (r.counted !== n) {
      throw new NetworkError("PROTOCOL_VIOLATION", `the server counted ${r.counted} of ${n}`);
    }
    console.log(formatSendLine(n, bytes, r.elapsedMs));
  } finally {
    await node.close();
  }
}

async function priority(args: NodeArgs): Promise<void> {
  const bytes = count(args, "bytes", 64 * 1024 * 1024);
  const mode = args.options.get("mode") ?? "prioritized";
  if (mode !== "prioritized" && mode !== "fifo") {
    throw new UsageError(`--mode must be prioritized or fifo, not ${mode}`);
  }
  const fifo = mode === "fifo";
  const { node, peer } = await connectTo(args, { prioritized: !fifo });
  try {
    const latencies = await runPriorityBench(node.manager, peer, { bytes });
    console.log(formatPriorityLine(latencies, fifo ? "fifo" : "prioritized"));
  } finally {
    await node.close();
  }
}

async function keygen(args: NodeArgs): Promise<void> {
  const out = args.options.get("out");
  if (out === undefined) throw new UsageError("keygen needs --out FILE");
  const keys = ValidatorKeys.generate();
  // createNew: never overwrite a key file by mistake.
  await Deno.writeTextFile(out, JSON.stringify(keys.toJSON()) + "\n", {
    mode: 0o600,
    createNew: true,
  });
  await Deno.chmod(out, 0o600);
  const { peerId, noiseKey } = keys.info();
  console.log(JSON.stringify({ peerId, noiseKey }));
}

async function node(args: NodeArgs): Promise<void> {
  const config = args.options.get("config");
  if (config === undefined) throw new UsageError("node needs --config FILE");
  const app = args.options.get("app");
  if (app !== undefined && !(NODE_APPS as readonly string[]).includes(app)) {
    throw new UsageError(`--app must be one of ${NODE_APPS.join(", ")}`);
  }
  const slotTimeout = args.options.has("slot-timeout") ? count(args, "slot-timeout") : undefined;
  const stop = new AbortController();
  const onSignal = () => stop.abort();
  Deno.addSignalListener("SIGINT", onSignal);
  Deno.addSignalListener("SIGTERM", onSignal);
  try {
    await runNode({
      config,
      app: app as (typeof NODE_APPS)[number] | undefined,
      signal: stop.signal,
      slotTimeout,
    });
  } catch (err) {
    if (NetworkError.is(err, "BAD_CONFIG")) throw new ConfigError(err.message);
    throw err;
  } finally {
    Deno.removeSignalListener("SIGINT", onSignal);
    Deno.removeSignalListener("SIGTERM", onSignal);
  }
  // Stopped gracefully; a timer an app forgot must not keep the process.
  Deno.exit(0);
}

async function demo(args: NodeArgs): Promise<void> {
  const result = await runDemo({
    validators: count(args, "validators", 4),
    seconds: count(args, "seconds", 30),
  });
  if (!result.ok) Deno.exit(1);
}

const COMMANDS: Record<string, (args: NodeArgs) => Promise<void>> = {
  listen,
  ping,
  echo,
  perf,
  connect,
  rpc,
  send,
  priority,
  keygen,
  node,
  demo,
};

if (import.meta.main) {
  try {
    const args = usage(() => parseNodeArgs(Deno.args));
    const run = COMMANDS[args.command];
    if (run === undefined) throw new UsageError(`unknown command ${JSON.stringify(args.command)}`);
    await run(args);
  } catch (err) {
    if (err instanceof UsageError) {
      console.error(`${err.message}\n${USAGE}`);
      Deno.exit(2);
    }
    if (err instanceof ConfigError) {
      console.error(`config error: ${err.message}`);
      Deno.exit(2);
    }
    const code = err instanceof NetworkError ? ` (${err.code})` : "";
    console.error(`error${code}: ${err instanceof Error ? err.message : String(err)}`);
    Deno.exit(1);
  }
}
