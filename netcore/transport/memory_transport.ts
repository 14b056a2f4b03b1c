/**
 * The in-memory network of `memsocket/` as a {@linkcode Transport}: its
 * sockets become {@linkcode SocketConnection}s, the same class TCP sockets
 * become, so every layer above runs the production code path over memory.
 *
 * @module
 */

import { Deadline } from "../_async.ts";
import { type MemoryListener, MemoryNetwork, type MemorySocket } from "../../memsocket/mod.ts";
import { Multiaddr } from "../multiaddr.ts";
import { NetworkError } from "../network_error.ts";
import { dialError, ioError } from "./_io_error.ts";
import {
  SOCKET_CONNECTION_DEFAULTS,
  SocketConnection,
  type SocketConnectionOptions,
} from "./socket_connection.ts";
import type { DialOptions, Listener, ListenOptions, Transport } from "./transport.ts";

/**
 * Options for {@linkcode MemoryTransport}. Defaults in {@linkcode MEMORY_TRANSPORT_DEFAULTS}.
 *
 * @example A small network with small buffers, for backpressure tests
 * ```ts
 * import { MemoryTransport, type MemoryTransportOptions } from "./memory_transport.ts";
 * import { MemoryNetwork } from "../../memsocket/mod.ts";
 * const options: MemoryTransportOptions = { network: new MemoryNetwork(), bufferSize: 16_384 };
 * const transport = new MemoryTransport(options);
 * ```
 */
export interface MemoryTransportOptions extends SocketConnectionOptions {
  /** The network to use. Default `MemoryNetwork.default`. */
  network?: MemoryNetwork;
  /** How long a dial may take before `DIAL_TIMEOUT` (only a dropping partition makes it slow). Default 10_000 ms. */
  connectTimeout?: number;
  /** Inbound connections a listener queues before refusing dials, like a TCP backlog. Default 1024. */
  backlog?: number;
  /** Bytes each direction of a connection buffers before a write waits. Default 262_144. */
  bufferSize?: number;
}

/**
 * The defaults of {@linkcode MemoryTransportOptions}, except `network`.
 *
 * @example
 * ```ts
 * import { MEMORY_TRANSPORT_DEFAULTS } from "./memory_transport.ts";
 * console.log(MEMORY_TRANSPORT_DEFAULTS.bufferSize); // 262144
 * ```
 */
export const MEMORY_TRANSPORT_DEFAULTS: Required<Omit<MemoryTransportOptions, "network">> = {
  connectTimeout: 10_000,
  backlog: 1024,
  bufferSize: 262_144,
  ...SOCKET_CONNECTION_DEFAULTS,
};

/**
 * Dials and listens on `/memory/N` addresses of one {@linkcode MemoryNetwork}
 * (a trailing `/p2p/<id>` is ignored).
 *
 * @example Echo
 * ```ts
 * import { MemoryTransport } from "./memory_transport.ts";
 * import { MemoryNetwork } from "../../memsocket/mod.ts";
 * import { Multiaddr } from "../multiaddr.ts";
 *
 * const transport = new MemoryTransport({ network: new MemoryNetwork() });
 * const listener = await transport.listen(Multiaddr.parse("/memory/0"));
 * (async () => {
 *   for await (const conn of listener) {
 *     for (let c = await conn.read(); c !== null; c = await conn.read()) await conn.write(c);
 *     await conn.close();
 *   }
 * })();
 * const conn = await transport.dial(listener.addr);
 * await conn.write(new Uint8Array([1, 2]));
 * await conn.closeWrite();
 * console.log(await conn.read()); // Uint8Array(2) [ 1, 2 ]
 * console.log(await conn.read()); // null: the listener closed its side too
 * await conn.close();
 * await listener.close();
 * ```
 */
export class MemoryTransport implements Transport<SocketConnection> {
  readonly #network: MemoryNetwork;
  readonly #options: Required<Omit<MemoryTransportOptions, "network">>;

  /** A transport on `options.network` (default `MemoryNetwork.default`). */
  constructor(options: MemoryTransportOptions = {}) {
    const { network = MemoryNetwork.default, ...rest } = options;
    this.#network = network;
    this.#options = { ...MEMORY_TRANSPORT_DEFAULTS, ...rest };
  }

  /** The network this transport dials and listens on. */
  get network(): MemoryNetwork {
    return this.#network;
  }

  /** Whether `addr` is a `/memory/N` address. */
  supports(addr: Multiaddr): boolean {
    return addr.memoryPort() !== undefined;
  }

  /**
   * Connects to the listener at `addr`.
   *
   * @throws {NetworkError} `DIAL_REFUSED`, `DIAL_TIMEOUT`, `ABORTED`, `BAD_ADDRESS`
   */
  async dial(addr: Multiaddr, options: DialOptions = {}): Promise<SocketConnection> {
    const port = addr.memoryPort();
    if (port === undefined) throw new NetworkError("BAD_ADDRESS", `not a memory address: ${addr}`);
    using deadline = new Deadline(this.#options.connectTimeout, {
      code: "DIAL_TIMEOUT",
      what: `memory dial to ${addr}`,
      signal: options.signal,
    });
    let socket: MemorySocket;
    try {
      socket = await this.#network.connect(port, {
        signal: deadline.signal,
        bufferSize: this.#options.bufferSize,
      });
    } catch (err) {
      if (deadline.expired) throw dialError(deadline.error);
      throw ioError(err, `memory dial to ${addr} failed`, "DIAL_REFUSED");
    }
    return this.#wrap(socket);
  }

  /**
   * Binds `addr` (`/memory/0` picks a free port).
   *
   * @throws {NetworkError} `ADDRESS_IN_USE`, `BAD_ADDRESS`
   */
  listen(addr: Multiaddr, options: ListenOptions = {}): Promise<Listener<SocketConnection>> {
    const port = addr.memoryPort();
    if (port === undefined) {
      return Promise.reject(new NetworkError("BAD_ADDRESS", `not a memory address: ${addr}`));
    }
    let listener: MemoryListener;
    try {
      listener = this.#network.listen(port, { backlog: this.#options.backlog });
    } catch (err) {
      return Promise.reject(ioError(err, `memory listen on ${addr} failed`, "BAD_ADDRESS"));
    }
    return Promise.resolve(new MemoryTransportListener(listener, options, (s) => this.#wrap(s)));
  }

  #wrap(socket: MemorySocket): SocketConnection {
    return new SocketConnection(
      socket,
      () => Multiaddr.parse(socket.localAddr),
      () => Multiaddr.parse(socket.remoteAddr),
      this.#options,
    );
  }
}

class MemoryTransportListener implements Listener<SocketConnection> {
  readonly addr: Multiaddr;
  readonly #listener: MemoryListener;
  readonly #wrap: (socket: MemorySocket) => SocketConnection;

  constructor(
    listener: MemoryListener,
    options: ListenOptions,
    wrap: (socket: MemorySocket) => SocketConnection,
  ) {
    this.#listener = listener;
    this.#wrap = wrap;
    this.addr = Multiaddr.parse(listener.addr);
    options.signal?.addEventListener("abort", () => this.close(), { once: true });
    if (options.signal?.aborted) this.close();
  }

  async *[Symbol.asyncIterator](): AsyncIterator<SocketConnection> {
    for await (const socket of this.#listener) yield this.#wrap(socket);
  }

  close(): Promise<void> {
    this.#listener.close();
    return Promise.resolve();
  }
}
