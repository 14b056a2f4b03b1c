/**
 * `andThen`: a transport whose connections are upgraded (authenticated,
 * multiplexed, ...) before anyone sees them.
 *
 * @module
 */

import { Deadline } from "../_async.ts";
import { defaultMetrics, type Metrics } from "../metrics.ts";
import type { Multiaddr } from "../multiaddr.ts";
import { NetworkError } from "../network_error.ts";
import type { Connection, ConnectionLifecycle } from "./connection.ts";
import { INBOUND_LIMITS_DEFAULTS, InboundGate, type InboundLimits } from "./inbound_gate.ts";
import type {
  DialOptions,
  Listener,
  ListenOptions,
  Role,
  Transport,
  Upgrade,
} from "./transport.ts";

/**
 * Options for {@linkcode andThen}. Defaults in {@linkcode AND_THEN_DEFAULTS}.
 *
 * @example
 * ```ts
 * import type { AndThenOptions } from "./and_then.ts";
 * import { MetricsRegistry } from "../metrics.ts";
 * const options: AndThenOptions = {
 *   timeout: 5_000,
 *   maxPendingInbound: 64,
 *   metrics: new MetricsRegistry().scope({ network: "testnet" }),
 * };
 * ```
 */
export interface AndThenOptions {
  /**
   * How long one upgrade may run. When it passes, the upgrade's
   * `context.signal` fires, the connection is aborted and the dial (or the
   * inbound connection) fails with `TIMEOUT`. Default 10_000 ms.
   */
  timeout?: number;
  /**
   * Limits on inbound connections while they upgrade (see
   * {@linkcode InboundLimits}): the listener never stops accepting; past a
   * cap it sheds the pending connection that made the least progress.
   */
  inbound?: InboundLimits;
  /** Where pending upgrades and refusals are counted. Default `defaultMetrics`. */
  metrics?: Metrics;
}

/**
 * The defaults of {@linkcode AndThenOptions}.
 *
 * @example
 * ```ts
 * import { AND_THEN_DEFAULTS } from "./and_then.ts";
 * console.log(AND_THEN_DEFAULTS.timeout); // 10000
 * ```
 */
export const AND_THEN_DEFAULTS: { timeout: number; inbound: Readonly<Required<InboundLimits>> } = {
  timeout: 10_000,
  inbound: INBOUND_LIMITS_DEFAULTS,
};

/**
 * Runs `upgrade` on `conn` with a deadline and the caller's `signal`; on
 * failure aborts `conn` and throws a `NetworkError` (`HANDSHAKE_FAILED` unless
 * the upgrade threw one of its own, `TIMEOUT` at the deadline).
 */
async function runUpgrade<In extends ConnectionLifecycle, Out extends ConnectionLifecycle>(
  upgrade: Upgrade<In, Out>,
  conn: In,
  role: Role,
  timeout: number,
  parent: AbortSignal | undefined,
  dialedAddr?: Multiaddr,
): Promise<Out> {
  // Cleared when the upgrade is done, so its signal never fires afterwards,
  // even if the dialer's signal does: upgrades may tie their lifetime to it.
  using deadline = new Deadline(timeout, {
    what: `${role} upgrade on ${conn.remoteAddr}`,
    signal: parent,
  });
  const context = { role, signal: deadline.signal, dialedAddr };
  const running = Promise.resolve().then(() => upgrade(conn, context));
  try {
    return await deadline.race(running);
  } catch (err) {
    const error = NetworkError.is(err)
      ? err
      : NetworkError.wrap(err, "HANDSHAKE_FAILED", `${role} upgrade on ${conn.remoteAddr} failed`);
    conn.abort(error);
    // An upgrade that finishes after we gave up must not leak what it made.
    running.then((late) => late.abort(error), () => {});
    throw error;
  }
}

/**
 * A transport that runs `upgrade` on every connection of `transport`: with
 * role `"dialer"` on the ones it dials and `"listener"` on the ones it
 * accepts. The whole stack is one upgrade (`libp2pUpgrade`,
 * `validatorUpgrade`).
 *
 * A failed upgrade aborts the raw connection. On the dial side the dial
 * rejects; on the listen side the error goes to
 * `ListenOptions.onInboundError` and the listener goes on accepting. Inbound
 * upgrades run concurrently, so one slow peer never blocks the others, and
 * within `options.inbound`'s limits (see {@linkcode InboundGate}): the
 * listener never stops accepting.
 *
 * @example Tag each connection with its role
 * ```ts
 * import { andThen } from "./and_then.ts";
 * import { MemoryNetwork } from "../../memsocket/mod.ts";
 * import { MemoryTransport } from "./memory_transport.ts";
 * import { Multiaddr } from "../multiaddr.ts";
 *
 * const raw = new MemoryTransport({ network: new MemoryNetwork() });
 * const tagged = andThen(raw, (conn, { role }) => Promise.resolve(Object.assign(conn, { role })));
 * const listener = await tagged.listen(Multiaddr.parse("/memory/0"));
 * const conn = await tagged.dial(listener.addr);
 * console.log(conn.role); // "dialer"
 * await listener.close();
 * ```
 */
export function andThen<Out extends ConnectionLifecycle>(
  transport: Transport<Connection>,
  upgrade: Upgrade<Connection, Out>,
  options: AndThenOptions = {},
): Transport<Out> {
  const timeout = options.timeout ?? AND_THEN_DEFAULTS.timeout;
  const metrics = options.metrics ?? defaultMetrics;
  return {
    supports: (addr) => transport.supports(addr),
    async dial(addr: Multiaddr, dialOptions: DialOptions = {}): Promise<Out> {
      const conn = await transport.dial(addr, dialOptions);
      return await runUpgrade(upgrade, conn, "dialer", timeout, dialOptions.signal, addr);
    },
    async listen(addr: Multiaddr, listenOptions: ListenOptions = {}): Promise<Listener<Out>> {
      const inner = await transport.listen(addr, listenOptions);
      return new UpgradedListener(
        inner,
        (conn) => runUpgrade(upgrade, conn, "listener", timeout, undefined),
        new InboundGate(options.inbound ?? {}, metrics),
        listenOptions.onInboundError,
      );
    },
  };
}

/**
 * A listener whose connections are upgraded concurrently, within the limits
 * of an {@linkcode InboundGate}, before they are yielded. It accepts for as
 * long as it is open: the gate sheds, the accept loop never waits.
 */
class UpgradedListener<Out extends ConnectionLifecycle> implements Listener<Out> {
  readonly #inner: Listener<Connection>;
  readonly #upgrade: (conn: Connection) => Promise<Out>;
  readonly #gate: InboundGate;
  readonly #onInboundError: ((error: unknown, remoteAddr: Multiaddr) => void) | undefined;
  readonly #ready: Out[] = [];
  #pumping = false;
  #closed = false;
  /** Wakes the consumer (a connection is ready or we closed). */
  #consumerWaiter: PromiseWithResolvers<void> | undefined;

  constructor(
    inner: Listener<Connection>,
    upgrade: (conn: Connection) => Promise<Out>,
    gate: InboundGate,
    onInboundError?: (error: unknown, remoteAddr: Multiaddr) => void,
  ) {
    this.#inner = inner;
    this.#upgrade = upgrade;
    this.#gate = gate;
    this.#onInboundError = onInboundError;
  }

  get addr(): Multiaddr {
    return this.#inner.addr;
  }

  async *[Symbol.asyncIterator](): AsyncIterator<Out> {
    // Accepting starts with the first iteration, not in the constructor.
    if (!this.#pumping) {
      this.#pumping = true;
      this.#pump().catch((err) => this.#report(err, this.addr)).finally(() => this.close());
    }
    while (true) {
      const conn = this.#ready.shift();
      if (conn !== undefined) {
        yield conn;
        continue;
      }
      if (this.#closed) return;
      this.#consumerWaiter ??= Promise.withResolvers();
      await this.#consumerWaiter.promise;
    }
  }

  async #pump(): Promise<void> {
    for await (const raw of this.#inner) {
      if (this.#closed) {
        raw.abort(new NetworkError("CONNECTION_CLOSED", "listener closed"));
        return;
      }
      const admitted = this.#gate.admit(raw);
      if (admitted === undefined) continue;
      this.#upgrade(admitted).then(
        (out) => {
          if (this.#closed) {
            out.abort(new NetworkError("CONNECTION_CLOSED", "listener closed"));
            return;
          }
          if (this.#gate.refuseBacklog(out, this.#ready.length)) return;
          this.#ready.push(out);
          this.#wakeConsumer();
        },
        (err) => this.#report(err, raw.remoteAddr),
      ).finally(() => this.#gate.release(admitted));
    }
  }

  #report(error: unknown, remoteAddr: Multiaddr): void {
    if (this.#closed && NetworkError.is(error, "CONNECTION_CLOSED")) return;
    try {
      this.#onInboundError?.(error, remoteAddr);
    } catch {
      // A throwing callback must not take the listener down.
    }
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    const reason = new NetworkError("CONNECTION_CLOSED", "listener closed");
    this.#gate.close(reason);
    for (const conn of this.#ready.splice(0)) conn.abort(reason);
    this.#wakeConsumer();
    await this.#inner.close();
  }

  #wakeConsumer(): void {
    const waiter = this.#consumerWaiter;
    this.#consumerWaiter = undefined;
    waiter?.resolve();
  }
}
