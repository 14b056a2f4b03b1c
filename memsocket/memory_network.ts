/**
 * A registry of in-memory listeners keyed by `/memory/N`, with the fault
 * hooks tests need: latency, cut connections, partitions.
 *
 * @module
 */

import { abortable } from "../netcore/_async.ts";
import { Multiaddr } from "../netcore/multiaddr.ts";
import { NetworkError } from "../netcore/network_error.ts";
import { MemoryConnection, type MemoryConnectionOptions } from "./memory_connection.ts";

const DIALER_PORT_BASE = 2 ** 32;

/** How a partitioned address treats dials: refuse them at once, or let them hang. */
export type PartitionMode = "refuse" | "drop";

/** Where a listener's connections are handed over. Internal to memsocket. */
export interface MemoryAcceptor {
  /** Takes an inbound connection; false if the listener no longer accepts. */
  accept(conn: MemoryConnection): boolean;
}

/**
 * An isolated in-memory network. Tests usually make their own; code that
 * needs one shared network can use {@linkcode MemoryNetwork.default}.
 *
 * @example A partition, healed
 * ```ts
 * import { MemoryNetwork } from "./memory_network.ts";
 * import { MemoryTransport } from "./memory_transport.ts";
 * import { Multiaddr } from "../netcore/multiaddr.ts";
 *
 * const network = new MemoryNetwork();
 * const transport = new MemoryTransport({ network });
 * const listener = await transport.listen(Multiaddr.parse("/memory/0"));
 * network.partition(listener.addr);
 * await transport.dial(listener.addr).catch((err) => console.log(err.code)); // "DIAL_REFUSED"
 * network.heal(listener.addr);
 * (await transport.dial(listener.addr)).abort();
 * await listener.close();
 * ```
 */
export class MemoryNetwork {
  /** The network shared by transports that were not given one. */
  static readonly default: MemoryNetwork = new MemoryNetwork();

  readonly #listeners = new Map<number, MemoryAcceptor>();
  readonly #partitions = new Map<number, PartitionMode>();
  readonly #latencies = new Map<number, number>();
  readonly #connections = new Map<number, Set<MemoryConnection>>();
  #latency = 0;
  #nextPort = 1;
  #nextDialerPort = 1;

  /**
   * Registers `acceptor` on `/memory/<port>`; port 0 picks a free one.
   *
   * @returns the bound address
   * @throws {NetworkError} `ADDRESS_IN_USE`, `BAD_ADDRESS`
   */
  bind(addr: Multiaddr, acceptor: MemoryAcceptor): Multiaddr {
    let port = addr.memoryPort();
    if (port === undefined) throw new NetworkError("BAD_ADDRESS", `not a memory address: ${addr}`);
    if (port === 0) {
      while (this.#listeners.has(this.#nextPort)) this.#nextPort++;
      port = this.#nextPort++;
    } else if (this.#listeners.has(port)) {
      throw new NetworkError("ADDRESS_IN_USE", `${addr} is already bound`);
    }
    this.#listeners.set(port, acceptor);
    return Multiaddr.parse(`/memory/${port}`);
  }

  /** Frees `addr` if `acceptor` holds it. */
  unbind(addr: Multiaddr, acceptor: MemoryAcceptor): void {
    const port = addr.memoryPort();
    if (port !== undefined && this.#listeners.get(port) === acceptor) this.#listeners.delete(port);
  }

  /**
   * Opens a connection to the listener on `addr` and returns the dialer's end.
   *
   * @throws {NetworkError} `DIAL_REFUSED` (nobody listens, or a refusing
   *   partition), `BAD_ADDRESS`; with a dropping partition it waits for
   *   `signal` and throws its reason
   */
  async connect(
    addr: Multiaddr,
    options: MemoryConnectionOptions & { signal?: AbortSignal } = {},
  ): Promise<MemoryConnection> {
    const port = addr.memoryPort();
    if (port === undefined) throw new NetworkError("BAD_ADDRESS", `not a memory address: ${addr}`);
    const partition = this.#partitions.get(port);
    if (partition === "drop") {
      // Like SYNs into a black hole: nothing happens until the dialer gives up.
      await abortable(new Promise<never>(() => {}), options.signal);
    }
    if (partition === "refuse") {
      throw new NetworkError("DIAL_REFUSED", `${addr} is partitioned away`);
    }
    const acceptor = this.#listeners.get(port);
    if (acceptor === undefined) {
      throw new NetworkError("DIAL_REFUSED", `nothing listens on ${addr}`);
    }
    if (options.signal?.aborted) await abortable(Promise.resolve(), options.signal);
    // Dialer ends get ports from their own range, far above listener ports.
    const local = Multiaddr.parse(`/memory/${DIALER_PORT_BASE + this.#nextDialerPort++}`);
    const [dialer, listener] = MemoryConnection.pair(
      local,
      Multiaddr.parse(`/memory/${port}`),
      options,
      () => this.#latency + (this.#latencies.get(port) ?? 0),
    );
    if (!acceptor.accept(listener)) {
      throw new NetworkError("DIAL_REFUSED", `${addr} stopped listening`);
    }
    this.#track(port, dialer);
    return dialer;
  }

  #track(port: number, conn: MemoryConnection): void {
    let set = this.#connections.get(port);
    if (set === undefined) this.#connections.set(port, set = new Set());
    set.add(conn);
    conn.closed.then(() => {
      set.delete(conn);
      if (set.size === 0 && this.#connections.get(port) === set) this.#connections.delete(port);
    });
  }

  /**
   * Adds `ms` of one-way delivery latency to every chunk written from now on,
   * on connections to `addr`, or on the whole network when `addr` is omitted.
   * Latencies add up; 0 removes one.
   */
  setLatency(ms: number, addr?: Multiaddr): void {
    if (addr === undefined) {
      this.#latency = ms;
      return;
    }
    const port = this.#portOf(addr);
    if (ms === 0) this.#latencies.delete(port);
    else this.#latencies.set(port, ms);
  }

  /**
   * Cuts connections: one (given by either end), or all those dialed to a
   * listener address. Both ends see `CONNECTION_RESET`.
   */
  cut(target: MemoryConnection | Multiaddr): void {
    if (target instanceof MemoryConnection) {
      target.cut();
      return;
    }
    for (const conn of [...this.#connections.get(this.#portOf(target)) ?? []]) conn.cut();
  }

  /**
   * Partitions `addr` away: new dials are refused (`"refuse"`, the default,
   * `DIAL_REFUSED`) or hang until they time out (`"drop"`). Existing
   * connections are left alone; {@linkcode MemoryNetwork.cut} them if needed.
   */
  partition(addr: Multiaddr, mode: PartitionMode = "refuse"): void {
    this.#partitions.set(this.#portOf(addr), mode);
  }

  /** Ends a {@linkcode MemoryNetwork.partition} of `addr`. */
  heal(addr: Multiaddr): void {
    this.#partitions.delete(this.#portOf(addr));
  }

  #portOf(addr: Multiaddr): number {
    const port = addr.memoryPort();
    if (port === undefined) throw new NetworkError("BAD_ADDRESS", `not a memory address: ${addr}`);
    return port;
  }
}
