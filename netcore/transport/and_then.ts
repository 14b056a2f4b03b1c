/**
 * `andThen`: a transport whose connections are upgraded (authenticated,
 * multiplexed, ...) before anyone sees them.
 *
 * @module
 */

import { Deadline } from "../_async.ts";
import { defaultMetrics, type Metrics, type Series } from "../metrics.ts";
import type { Multiaddr } from "../multiaddr.ts";
import { NetworkError } from "../network_error.ts";
import type { ConnectionLifecycle } from "./connection.ts";
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
   * Inbound connections a listener upgrades at once or holds upgraded but not
   * yet taken; while full it stops accepting, so the kernel (or memory
   * network) backlog holds the rest. Default 256.
   */
  maxPendingInbound?: number;
  /** Where the pending upgrades are counted. Default `defaultMetrics`. */
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
export const AND_THEN_DEFAULTS: Required<Omit<AndThenOptions, "metrics">> = {
  timeout: 10_000,
  maxPendingInbound: 256,
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
 * accepts. Stack several to build the full stack (raw -> Noise -> yamux).
 *
 * A failed upgrade aborts the raw connection. On the dial side the dial
 * rejects; on the listen side the error goes to
 * `ListenOptions.onInboundError` and the listener goes on accepting. Inbound
 * upgrades run concurrently, so one slow peer never blocks the others.
 *
 * @example Tag each connection with its role
 * ```ts
 * import { andThen } from "./and_then.ts";
 * import { MemoryTransport } from "./memory_transport.ts";
 * import { MemoryNetwork } from "../../memsocket/mod.ts";
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
export function andThen<In extends ConnectionLifecycle, Out extends ConnectionLifecycle>(
  transport: Transport<In>,
  upgrade: Upgrade<In, Out>,
  options: AndThenOptions = {},
): Transport<Out> {
  const { timeout, maxPendingInbound } = { ...AND_THEN_DEFAULTS, ...options };
  const pendingInbound = (options.metrics ?? defaultMetrics).gauge(
    "validator_network_pending_inbound_upgrades",
    "Inbound connections being upgraded or upgraded and not yet taken, over all listeners",
  ).labels();
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
        {
          maxPending: maxPendingInbound,
          onInboundError: listenOptions.onInboundError,
          gauge: pendingInbound,
        },
      );
    },
  };
}

/** A listener whose connections are upgraded concurrently before they are yielded. */
class UpgradedListener<In extends ConnectionLifecycle, Out extends ConnectionLifecycle>
  implements Listener<Out> {
  readonly #inner: Listener<In>;
  readonly #upgrade: (conn: In) => Promise<Out>;
  readonly #maxPending: number;
  readonly #onInboundError: ((error: unknown, remoteAddr: Multiaddr) => void) | undefined;
  readonly #gauge: Series;
  readonly #ready: Out[] = [];
  readonly #upgrading = new Set<In>();
  /** What this listener last added to the pending-upgrades gauge. */
  #reportedPending = 0;
  #pumping = false;
  #closed = false;
  /** Wakes the consumer (a connection is ready or we closed). */
  #consumerWaiter: PromiseWithResolvers<void> | undefined;
  /** Wakes the pump (there is room again). */
  #pumpWaiter: PromiseWithResolvers<void> | undefined;

  constructor(
    inner: Listener<In>,
    upgrade: (conn: In) => Promise<Out>,
    options: {
      maxPending: number;
      onInboundError?: (error: unknown, remoteAddr: Multiaddr) => void;
      gauge: Series;
    },
  ) {
    this.#gauge = options.gauge;
    this.#inner = inner;
    this.#upgrade = upgrade;
    this.#maxPending = options.maxPending;
    this.#onInboundError = options.onInboundError;
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
        this.#reportPending();
        this.#wakePump();
        yield conn;
        continue;
      }
      if (this.#closed) return;
      this.#consumerWaiter ??= Promise.withResolvers();
      await this.#consumerWaiter.promise;
    }
  }

  async #pump(): Promise<void> {
    for await (const conn of this.#inner) {
      if (this.#closed) {
        conn.abort(new NetworkError("CONNECTION_CLOSED", "listener closed"));
        return;
      }
      this.#upgrading.add(conn);
      this.#reportPending();
      this.#upgrade(conn).then(
        (out) => {
          if (this.#closed) {
            out.abort(new NetworkError("CONNECTION_CLOSED", "listener closed"));
            return;
          }
          this.#ready.push(out);
          this.#wakeConsumer();
        },
        (err) => this.#report(err, conn.remoteAddr),
      ).finally(() => {
        this.#upgrading.delete(conn);
        this.#reportPending();
        this.#wakePump();
      });
      while (!this.#closed && this.#upgrading.size + this.#ready.length >= this.#maxPending) {
        this.#pumpWaiter ??= Promise.withResolvers();
        await this.#pumpWaiter.promise;
      }
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
    for (const conn of this.#upgrading) conn.abort(reason);
    for (const conn of this.#ready.splice(0)) conn.abort(reason);
    this.#reportPending();
    this.#wakeConsumer();
    this.#wakePump();
    await this.#inner.close();
  }

  /** Moves the gauge by what changed since the last report (the gauge sums all listeners). */
  #reportPending(): void {
    const pending = this.#upgrading.size + this.#ready.length;
    this.#gauge.inc(pending - this.#reportedPending);
    this.#reportedPending = pending;
  }

  #wakeConsumer(): void {
    const waiter = this.#consumerWaiter;
    this.#consumerWaiter = undefined;
    waiter?.resolve();
  }

  #wakePump(): void {
    const waiter = this.#pumpWaiter;
    this.#pumpWaiter = undefined;
    waiter?.resolve();
  }
}
