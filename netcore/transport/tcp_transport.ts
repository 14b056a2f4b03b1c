/**
 * The TCP transport, on `Deno.listen` and `Deno.connect`.
 *
 * @module
 */

import { Deadline } from "../_async.ts";
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
 * The multiaddr of a Deno TCP address.
 *
 * @example
 * ```ts
 * import { netAddrToMultiaddr } from "./tcp_transport.ts";
 * const addr = netAddrToMultiaddr({ transport: "tcp", hostname: "::1", port: 80 });
 * console.log(addr.toString()); // "/ip6/::1/tcp/80"
 * ```
 */
export function netAddrToMultiaddr(addr: Deno.NetAddr): Multiaddr {
  const family = addr.hostname.includes(":") ? "ip6" : "ip4";
  return Multiaddr.parse(`/${family}/${addr.hostname}/tcp/${addr.port}`);
}

/**
 * Options for {@linkcode TcpTransport}. Defaults in {@linkcode TCP_TRANSPORT_DEFAULTS}.
 *
 * @example
 * ```ts
 * import { TcpTransport, type TcpTransportOptions } from "./tcp_transport.ts";
 * const options: TcpTransportOptions = { connectTimeout: 3_000, closeGracePeriod: 1_000 };
 * const tcp = new TcpTransport(options);
 * ```
 */
export interface TcpTransportOptions extends SocketConnectionOptions {
  /** How long a dial may take to connect before it fails with `DIAL_TIMEOUT`. Default 10_000 ms. */
  connectTimeout?: number;
  /** Whether to set TCP_NODELAY on every socket. Default `true`. */
  noDelay?: boolean;
  /** Whether to enable TCP keep-alive on every socket. Default `true`. */
  keepAlive?: boolean;
}

/**
 * The defaults of {@linkcode TcpTransportOptions} (and of the connections it makes).
 *
 * @example
 * ```ts
 * import { TCP_TRANSPORT_DEFAULTS } from "./tcp_transport.ts";
 * console.log(TCP_TRANSPORT_DEFAULTS.connectTimeout, TCP_TRANSPORT_DEFAULTS.noDelay); // 10000 true
 * ```
 */
export const TCP_TRANSPORT_DEFAULTS: Required<TcpTransportOptions> = {
  connectTimeout: 10_000,
  noDelay: true,
  keepAlive: true,
  ...SOCKET_CONNECTION_DEFAULTS,
};

/**
 * Dials and listens on `/ip4|ip6|dns|dns4|dns6/<host>/tcp/<port>` addresses
 * (a trailing `/p2p/<id>` is ignored here: checking it is the security
 * upgrade's job). DNS names are resolved by `Deno.connect`.
 *
 * Errors: `DIAL_REFUSED` (nothing listens), `DIAL_TIMEOUT` (the connect
 * timeout or a `TimeoutError` signal fired), `ABORTED` (another abort),
 * `ADDRESS_IN_USE`, `BAD_ADDRESS` (not a TCP address).
 *
 * @example Echo over loopback
 * ```ts
 * import { TcpTransport } from "./tcp_transport.ts";
 * import { Multiaddr } from "../multiaddr.ts";
 *
 * const tcp = new TcpTransport();
 * const listener = await tcp.listen(Multiaddr.parse("/ip4/127.0.0.1/tcp/0"));
 * (async () => {
 *   for await (const conn of listener) {
 *     for (let c = await conn.read(); c !== null; c = await conn.read()) await conn.write(c);
 *     await conn.close();
 *   }
 * })();
 * const conn = await tcp.dial(listener.addr);
 * await conn.write(new Uint8Array([1, 2, 3]));
 * await conn.closeWrite();
 * console.log(await conn.read()); // Uint8Array(3) [ 1, 2, 3 ]
 * console.log(await conn.read()); // null: the listener closed its side too
 * await conn.close();
 * await listener.close();
 * ```
 */
export class TcpTransport implements Transport<SocketConnection> {
  readonly #options: Required<TcpTransportOptions>;

  /**
   * A TCP transport; it opens nothing until asked to dial or listen.
   *
   * @param options see {@linkcode TcpTransportOptions}
   */
  constructor(options: TcpTransportOptions = {}) {
    this.#options = { ...TCP_TRANSPORT_DEFAULTS, ...options };
  }

  /** Whether `addr` is a TCP address. */
  supports(addr: Multiaddr): boolean {
    return addr.tcpEndpoint() !== undefined;
  }

  /**
   * Connects to `addr`.
   *
   * @throws {NetworkError} `DIAL_REFUSED`, `DIAL_TIMEOUT`, `ABORTED`, `BAD_ADDRESS`
   */
  async dial(addr: Multiaddr, options: DialOptions = {}): Promise<SocketConnection> {
    const endpoint = addr.tcpEndpoint();
    if (endpoint === undefined) {
      throw new NetworkError("BAD_ADDRESS", `TCP cannot dial ${addr}`);
    }
    using deadline = new Deadline(this.#options.connectTimeout, {
      code: "DIAL_TIMEOUT",
      what: `TCP dial to ${addr}`,
      signal: options.signal,
    });
    const { signal } = deadline;
    const connecting = Deno.connect({ hostname: endpoint.hostname, port: endpoint.port, signal });
    let raw: Deno.TcpConn;
    try {
      raw = await deadline.race(connecting);
    } catch (err) {
      // A connect that succeeds after we gave up must not leak its socket.
      connecting.then((late) => late.close(), () => {});
      throw dialError(ioError(err, `TCP dial to ${addr} failed`, "DIAL_REFUSED"));
    }
    return this.#wrap(raw);
  }

  /**
   * Binds `addr` (port 0 picks a free port, resolved in `listener.addr`).
   *
   * @throws {NetworkError} `ADDRESS_IN_USE`, `BAD_ADDRESS`
   */
  listen(addr: Multiaddr, options: ListenOptions = {}): Promise<Listener<SocketConnection>> {
    const endpoint = addr.tcpEndpoint();
    if (endpoint === undefined) {
      return Promise.reject(new NetworkError("BAD_ADDRESS", `TCP cannot listen on ${addr}`));
    }
    let raw: Deno.TcpListener;
    try {
      raw = Deno.listen({ hostname: endpoint.hostname, port: endpoint.port, transport: "tcp" });
    } catch (err) {
      return Promise.reject(ioError(err, `TCP listen on ${addr} failed`, "BAD_ADDRESS"));
    }
    return Promise.resolve(new TcpListener(raw, options, (conn) => this.#wrap(conn)));
  }

  #wrap(raw: Deno.TcpConn): SocketConnection {
    try {
      raw.setNoDelay(this.#options.noDelay);
      raw.setKeepAlive(this.#options.keepAlive);
    } catch {
      // The peer may already have gone; the connection's first read will say so.
    }
    return new SocketConnection(
      raw,
      () => netAddrToMultiaddr(raw.localAddr),
      () => netAddrToMultiaddr(raw.remoteAddr),
      this.#options,
    );
  }
}

/** Accepts TCP connections; iteration ends when closed. */
class TcpListener implements Listener<SocketConnection> {
  readonly addr: Multiaddr;
  readonly #raw: Deno.TcpListener;
  readonly #options: ListenOptions;
  readonly #wrap: (conn: Deno.TcpConn) => SocketConnection;
  #closed = false;

  constructor(
    raw: Deno.TcpListener,
    options: ListenOptions,
    wrap: (conn: Deno.TcpConn) => SocketConnection,
  ) {
    this.#raw = raw;
    this.#options = options;
    this.#wrap = wrap;
    this.addr = netAddrToMultiaddr(raw.addr);
    options.signal?.addEventListener("abort", () => this.close(), { once: true });
    if (options.signal?.aborted) this.close();
  }

  async *[Symbol.asyncIterator](): AsyncIterator<SocketConnection> {
    while (!this.#closed) {
      let raw: Deno.TcpConn;
      try {
        raw = await this.#raw.accept();
      } catch (err) {
        if (this.#closed || err instanceof Deno.errors.BadResource) return;
        // Transient (e.g. out of file descriptors): report, breathe, go on.
        const error = ioError(err, "TCP accept failed", "CONNECTION_CLOSED");
        this.#options.onInboundError?.(error, this.addr);
        await new Promise((resolve) => setTimeout(resolve, 50));
        continue;
      }
      if (this.#closed) {
        raw.close();
        return;
      }
      yield this.#wrap(raw);
    }
  }

  close(): Promise<void> {
    if (!this.#closed) {
      this.#closed = true;
      try {
        this.#raw.close();
      } catch {
        // Already closed.
      }
    }
    return Promise.resolve();
  }
}
