/**
 * The command-line validator node (`cli.ts node --config FILE [--app
 * consensus-demo]`): one {@linkcode ValidatorNetwork} from a config file,
 * JSON logs on stdout, `/metrics` and `/health` over HTTP, an optional app,
 * and a graceful stop on SIGINT or SIGTERM.
 *
 * @module
 */

import { Logger, type LogSink } from "../netcore/log.ts";
import { MetricsRegistry } from "../netcore/metrics.ts";
import { ConsensusDemo } from "./apps/consensus_demo.ts";
import { loadNodeConfig, parseHostPort } from "./node_config.ts";
import { ValidatorNetwork } from "./validator_network.ts";

/** The apps a node can run on its network. */
export const NODE_APPS = ["consensus-demo"] as const;

/** Options for {@linkcode runNode}. */
export interface RunNodeOptions {
  /** The config file. */
  config: string;
  /** The app to run, if any. */
  app?: (typeof NODE_APPS)[number];
  /** Stops the node. */
  signal: AbortSignal;
  /** Where log lines go. Default: stdout. */
  sink?: LogSink;
  /** The app's slot timeout (consensus-demo), ms. Default: the app's. */
  slotTimeout?: number;
}

const encoder = new TextEncoder();
const stdoutSink: LogSink = (line) => {
  Deno.stdout.writeSync(encoder.encode(line + "\n"));
};

/**
 * Runs a node until `options.signal` aborts, then stops it gracefully.
 *
 * @throws {NetworkError} `BAD_CONFIG` (before anything starts) naming the
 *   field; `ADDRESS_IN_USE` and the like from listening
 * @example
 * ```ts ignore
 * const stop = new AbortController();
 * Deno.addSignalListener("SIGTERM", () => stop.abort());
 * await runNode({ config: "node0.json", app: "consensus-demo", signal: stop.signal });
 * ```
 */
export async function runNode(options: RunNodeOptions): Promise<void> {
  const loaded = await loadNodeConfig(options.config);
  const { config, keys } = loaded;
  const logger = new Logger({}, "info", options.sink ?? stdoutSink);
  const registry = new MetricsRegistry();
  const scope = registry.scope({ network: config.networkId });
  const net = new ValidatorNetwork({ ...loaded.options, logger, metrics: registry });
  const log = logger.child({ network: config.networkId, self: keys.peerId.toString() });
  const startedAt = performance.now();
  const app = options.app === "consensus-demo"
    ? new ConsensusDemo({
      net,
      logger: log,
      metrics: scope,
      dataDir: loaded.dataDir,
      slotTimeout: options.slotTimeout,
    })
    : undefined;

  let server: Deno.HttpServer | undefined;
  let metricsAddr: string | undefined;
  try {
    await net.start();
    if (config.metrics !== undefined) {
      const { hostname, port } = parseHostPort(config.metrics);
      const bound = Promise.withResolvers<string>();
      server = Deno.serve({
        hostname,
        port,
        onListen: (addr) => bound.resolve(`${addr.hostname}:${addr.port}`),
      }, (req) => {
        const path = new URL(req.url).pathname;
        if (path === "/metrics") {
          return new Response(registry.render(), {
            headers: { "content-type": "text/plain; version=0.0.4" },
          });
        }
        if (path === "/health") {
          const peers = net.peers();
          return Response.json({
            status: "ok",
            peerId: keys.peerId.toString(),
            peers: peers.length,
            validators: net.validators.length,
            uptime: Math.round((performance.now() - startedAt) / 1000),
            ...(app === undefined ? {} : { height: app.height }),
          });
        }
        return new Response("not found\n", { status: 404 });
      });
      metricsAddr = await bound.promise;
    }
    app?.start();
    log.info("node started", {
      listen: net.listenAddrs.map((a) => a.toString()),
      metrics: metricsAddr,
      app: options.app,
    });
    if (!options.signal.aborted) {
      await new Promise((resolve) => options.signal.addEventListener("abort", resolve));
    }
    log.info("stopping");
  } finally {
    await app?.stop();
    await net.stop();
    await server?.shutdown();
  }
  log.info("node stopped");
}
