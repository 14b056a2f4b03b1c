/**
 * The composable transport API, after rust-libp2p's `Transport` and Libra's
 * `netcore`: a transport can `listen` on and `dial` addresses; upgrades
 * (Noise, the muxer) are stacked with combinators such as `andThen`, so TCP,
 * memory and future transports share every layer above them.
 *
 * The upgrade order of the full stack, enforced by how it is composed:
 * raw connection -> negotiate `/noise` -> Noise handshake (authenticate)
 * -> negotiate `/yamux/1.0.0` -> multiplex -> per-stream negotiation.
 *
 * @module
 */

import type { Multiaddr } from "../multiaddr.ts";
import type { Connection, ConnectionLifecycle } from "./connection.ts";

/**
 * Which end of a connection we are: the one that dialed or the one that accepted.
 *
 * @example
 * ```ts
 * import type { Role } from "./transport.ts";
 * const role: Role = "dialer";
 * const yamuxClient = role === "dialer"; // the dialer opens odd stream ids
 * ```
 */
export type Role = "dialer" | "listener";

/**
 * Options for {@linkcode Transport.dial}.
 *
 * @example
 * ```ts
 * import type { DialOptions } from "./transport.ts";
 * const options: DialOptions = { signal: AbortSignal.timeout(5_000) };
 * ```
 */
export interface DialOptions {
  /** Cancels the dial (and any upgrade in progress). */
  signal?: AbortSignal;
}

/**
 * Options for {@linkcode Transport.listen}.
 *
 * @example
 * ```ts
 * import type { ListenOptions } from "./transport.ts";
 * const stop = new AbortController();
 * const options: ListenOptions = {
 *   signal: stop.signal,
 *   onInboundError: (error, remoteAddr) => console.warn(`${remoteAddr}: ${error}`),
 * };
 * ```
 */
export interface ListenOptions {
  /** Closes the listener when fired. */
  signal?: AbortSignal;
  /**
   * Called when an inbound connection fails before it is yielded (for example
   * its upgrade failed, with a `HANDSHAKE_FAILED` error). The listener goes on
   * accepting others. Default: the failure is dropped after closing the socket.
   */
  onInboundError?: (error: unknown, remoteAddr: Multiaddr) => void;
}

/**
 * Inbound connections of a listening transport, as an async iterable. The
 * iteration ends when the listener is closed.
 *
 * @example
 * ```ts
 * import type { Listener } from "./transport.ts";
 * import type { Connection } from "./connection.ts";
 * async function echo(conn: Connection) {
 *   for (let chunk = await conn.read(); chunk !== null; chunk = await conn.read()) {
 *     await conn.write(chunk);
 *   }
 *   await conn.close();
 * }
 * async function serve(listener: Listener<Connection>) {
 *   for await (const conn of listener) echo(conn).catch((err) => conn.abort(err));
 * }
 * ```
 */
export interface Listener<C extends ConnectionLifecycle = Connection> extends AsyncIterable<C> {
  /** The bound address, with a port of 0 resolved to the real one. */
  readonly addr: Multiaddr;
  /** Stops accepting; ends the iteration. Connections already yielded stay open. */
  close(): Promise<void>;
}

/**
 * A way to reach peers: listen for connections and dial them.
 *
 * @example
 * ```ts
 * import type { Transport } from "./transport.ts";
 * import { Multiaddr } from "../multiaddr.ts";
 * async function connect(t: Transport) {
 *   const conn = await t.dial(Multiaddr.parse("/ip4/127.0.0.1/tcp/4001"));
 *   await conn.close();
 * }
 * ```
 */
export interface Transport<C extends ConnectionLifecycle = Connection> {
  /** Whether this transport can dial and listen on `addr` (by its protocols). */
  supports(addr: Multiaddr): boolean;
  /** Binds `addr` and yields inbound connections. */
  listen(addr: Multiaddr, options?: ListenOptions): Promise<Listener<C>>;
  /** Connects to `addr`. */
  dial(addr: Multiaddr, options?: DialOptions): Promise<C>;
}

/**
 * What an upgrade is told about the connection it upgrades.
 *
 * @example
 * ```ts
 * import type { UpgradeContext } from "./transport.ts";
 * import { Multiaddr } from "../multiaddr.ts";
 * const context: UpgradeContext = {
 *   role: "dialer",
 *   signal: AbortSignal.timeout(10_000),
 *   dialedAddr: Multiaddr.parse("/ip4/127.0.0.1/tcp/4001"),
 * };
 * ```
 */
export interface UpgradeContext {
  /** Our side of the connection. */
  role: Role;
  /** Fires when the dial is cancelled or the upgrade's deadline passes. */
  signal: AbortSignal;
  /**
   * The address the dialer dialed, as given (with its `/p2p/` part, which
   * transports do not keep in `remoteAddr`); absent on the listener side.
   */
  dialedAddr?: Multiaddr;
}

/**
 * Turns a connection into a better one (authenticated, multiplexed, ...). On
 * failure it throws; the combinator that runs it closes the connection and
 * reports `HANDSHAKE_FAILED` unless the upgrade threw a `NetworkError` of its
 * own.
 *
 * @example An upgrade that greets the listener
 * ```ts
 * import type { Upgrade } from "./transport.ts";
 * import type { Connection } from "./connection.ts";
 * const greet: Upgrade<Connection, Connection> = async (conn, { role }) => {
 *   if (role === "dialer") await conn.write(new TextEncoder().encode("hello\n"));
 *   return conn;
 * };
 * ```
 */
export type Upgrade<In extends ConnectionLifecycle, Out extends ConnectionLifecycle> = (
  conn: In,
  context: UpgradeContext,
) => Promise<Out>;
