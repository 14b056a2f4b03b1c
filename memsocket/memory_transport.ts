/**
 * A {@linkcode Transport} over a {@linkcode MemoryNetwork}, for tests and
 * simulations: `/memory/N` addresses, TCP-like connections, no sockets.
 *
 * @module
 */

import { dialDeadline } from "../netcore/transport/_dial_deadline.ts";
import type { Multiaddr } from "../netcore/multiaddr.ts";
import { NetworkError } from "../netcore/network_error.ts";
import type {
  DialOptions,
  Listener,
  ListenOptions,
  Transport,
} from "../netcore/transport/transport.ts";
import type { MemoryConnection, MemoryConnectionOptions } from "./memory_connection.ts";
import { type MemoryAcceptor, MemoryNetwork } from "./memory_network.ts";

/** Options for {@linkcode MemoryTransport}. Defaults in {@linkcode MEMORY_TRANSPORT_DEFAULTS}. */
export interface MemoryTransportOptions extends MemoryConnectionOptions {
  /** The network to use. Default {@linkcode MemoryNetwork.default}. */
  network?: MemoryNetwork;
  /** How long a dial may take before `DIAL_TIMEOUT` (only a dropping partition makes it slow). Default 10_000 ms. */
  connectTimeout?: number;
  /** Inbound connections a listener queues before refusing dials, like a TCP backlog. Default 1024. */
  backlog?: number;
}

/** The defaults of {@linkcode MemoryTransportOptions}, except `network`. */
export const MEMORY_TRANSPORT_DEFAULTS: Required<Omit<MemoryTransportOptions, "network">> = {
  connectTimeout: 10_000,
  backlog: 1024,
  bufferSize: 262_144,
  closeGracePeriod: 5_000,
};

/**
 * Dials and listens on `/memory/N` addresses of one {@linkcode MemoryNetwork}
 * (a trailing `/p2p/<id>` is ignored).
 *
 * @example Echo
 * ```ts
 * import { MemoryTransport } from "./memory_transport.ts";
 * import { MemoryNetwork } from "./memory_network.ts";
 * import { Multiaddr } from "../netcore/multiaddr.ts";
 *
 * const transport = new MemoryTransport({ network: new MemoryNetwork() });
 * const listener = await transport.listen(Multiaddr.parse("/memory/0"));
 * (async () => {
 *   for await (const conn of listener) await conn.readable.pipeTo(conn.writable);
 * })();
 * const conn = await transport.dial(listener.addr);
 * const writer = conn.writable.getWriter();
 * await writer.write(new Uint8Array([1, 2]));
 * await writer.close();
 * for await (const chunk of conn.readable) console.log(chunk); // Uint8Array [ 1, 2 ]
 * await listener.close();
 * ```
 */
export class MemoryTransport implements Transport<MemoryConnection> {
  readonly #network: MemoryNetwork;
  readonly #options: Required<Omit<MemoryTransportOptions, "network">>;

  /**
   * A memory transport on `options.network` (default: the shared one).
   *
   * @param options see {@linkcode MemoryTransportOptions}
   */
  constructor(options: MemoryTransportOptions = {}) {
    const { network = MemoryNetwork.default, ...rest } = options;
    this.#network = network;
    this.#options = { ...MEMORY_TRANSPORT_DEFAULTS, ...rest };
  }

  /** The network this transport uses. */
  get network(): MemoryNetwork {
    return this.#network;
  }

  /** Whether `addr` is a `/memory/N` address. */
  supports(addr: Multiaddr): boolean {
    return addr.memoryPort() !== undefined;
  }

  /**
   * Connects to `addr`.
   *
   * @throws {NetworkError} `DIAL_REFUSED`, `DIAL_TIMEOUT`, `ABORTED`, `BAD_ADDRESS`
   */
  async dial(addr: Multiaddr, options: DialOptions = {}): Promise<MemoryConnection> {
    const deadline = dialDeadline(
      this.#options.connectTimeout,
      `memory dial to ${addr}`,
      options.signal,
    );
    try {
      return await this.#network.connect(addr, { ...this.#options, signal: deadline.signal });
    } catch (err) {
      if (NetworkError.is(err, "TIMEOUT")) {
        throw new NetworkError("DIAL_TIMEOUT", `memory dial to ${addr} timed out`, { cause: err });
      }
      throw err;
    } finally {
      deadline.clear();
    }
  }

  /**
   * Binds `addr` (`/memory/0` picks a free port).
   *
   * @throws {NetworkError} `ADDRESS_IN_USE`, `BAD_ADDRESS`
   */
  listen(addr: Multiaddr, options: ListenOptions = {}): Promise<Listener<MemoryConnection>> {
    try {
      return Promise.resolve(
        new MemoryListener(this.#network, addr, this.#options.backlog, options.signal),
      );
    } catch (err) {
      return Promise.reject(err);
    }
  }
}

/** Queues inbound connections up to a backlog; iteration ends when closed. */
class MemoryListener implements Listener<MemoryConnection>, MemoryAcceptor {
  readonly addr: Multiaddr;
  readonly #network: MemoryNetwork;
  readonly #backlog: number;
  readonly #queue: MemoryConnection[] = [];
  #waiter: PromiseWithResolvers<void> | undefined;
  #closed = false;

  constructor(network: MemoryNetwork, addr: Multiaddr, backlog: number, signal?: AbortSignal) {
    this.#network = network;
    this.#backlog = backlog;
    this.addr = network.bind(addr, this);
    signal?.addEventListener("abort", () => this.close(), { once: true });
    if (signal?.aborted) this.close();
  }

  accept(conn: MemoryConnection): boolean {
    if (this.#closed || this.#queue.length >= this.#backlog) return false;
    this.#queue.push(conn);
    this.#wake();
    return true;
  }

  async *[Symbol.asyncIterator](): AsyncIterator<MemoryConnection> {
    while (true) {
      const conn = this.#queue.shift();
      if (conn !== undefined) {
        yield conn;
        continue;
      }
      if (this.#closed) return;
      this.#waiter ??= Promise.withResolvers();
      await this.#waiter.promise;
    }
  }

  close(): Promise<void> {
    if (!this.#closed) {
      this.#closed = true;
      this.#network.unbind(this.addr, this);
      // Accepted but never handed out: reset, as a closing TCP listener does.
      for (const conn of this.#queue.splice(0)) conn.abort();
      this.#wake();
    }
    return Promise.resolve();
  }

  #wake(): void {
    const waiter = this.#waiter;
    this.#waiter = undefined;
    waiter?.resolve();
  }
}
