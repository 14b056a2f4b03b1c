/**
 * Test helpers: connected ends of in-memory connections, for tests of
 * protocols that only need a `Connection`, and the small fixtures around them.
 * Every pair is made of the production `SocketConnection` over memsocket's
 * sockets, the same code TCP connections run.
 */

import { MemoryNetwork, MemorySocket } from "../memsocket/mod.ts";
import { Multiaddr } from "../netcore/multiaddr.ts";
import type { Connection, ConnectionLifecycle } from "../netcore/transport/connection.ts";
import { MemoryTransport } from "../netcore/transport/memory_transport.ts";
import {
  SocketConnection,
  type SocketConnectionOptions,
} from "../netcore/transport/socket_connection.ts";
import type { Listener, Role, UpgradeContext } from "../netcore/transport/transport.ts";

/**
 * A dialer end and a listener end of one fresh in-memory connection, made by
 * a real `MemoryTransport` dial and accept on an isolated network.
 *
 * @example
 * ```ts
 * const [dialer, listener] = await connectedPair();
 * ```
 */
export async function connectedPair(): Promise<[Connection, Connection]> {
  const transport = new MemoryTransport({ network: new MemoryNetwork() });
  const listener = await transport.listen(Multiaddr.parse("/memory/0"));
  const iterator = listener[Symbol.asyncIterator]();
  const [dialer, accepted] = await Promise.all([transport.dial(listener.addr), iterator.next()]);
  await listener.close();
  if (accepted.done) throw new Error("listener ended before accepting");
  return [dialer, accepted.value];
}

/** Options for {@linkcode memoryPair}. */
export interface MemoryPairOptions extends SocketConnectionOptions {
  /** The second end's address (the first is `/memory/1`). Default `/memory/2`. */
  remoteAddr?: string;
  /** Delivery latency of every piece, in ms. Default 0. */
  latency?: number;
  /** Bytes each direction buffers. Default 262_144. */
  bufferSize?: number;
}

/** Two connected in-memory sockets (for fault injection and buffer inspection). */
export function memorySocketPair(options: MemoryPairOptions = {}): [MemorySocket, MemorySocket] {
  const { remoteAddr = "/memory/2", latency = 0, bufferSize = 262_144 } = options;
  return MemorySocket.pair("/memory/1", remoteAddr, bufferSize, () => latency);
}

/** Wraps a memory socket as the production connection. */
export function socketConnection(
  socket: MemorySocket,
  options: SocketConnectionOptions = {},
): SocketConnection {
  const local = Multiaddr.parse(socket.localAddr);
  const remote = Multiaddr.parse(socket.remoteAddr);
  return new SocketConnection(socket, () => local, () => remote, options);
}

/**
 * Two connected connections without any transport: the quickest fixture.
 * With `sockets`, the memory sockets under them too.
 *
 * @example
 * ```ts
 * const [a, b] = memoryPair({ latency: 5 });
 * ```
 */
export function memoryPair(options: MemoryPairOptions = {}): [SocketConnection, SocketConnection] {
  const [a, b] = memorySocketPair(options);
  const connection: SocketConnectionOptions = {};
  // An explicit `undefined` must not override the connection's defaults.
  if (options.closeGracePeriod !== undefined) {
    connection.closeGracePeriod = options.closeGracePeriod;
  }
  if (options.readChunkSize !== undefined) connection.readChunkSize = options.readChunkSize;
  return [socketConnection(a, connection), socketConnection(b, connection)];
}

/** Takes the first connection a listener yields. */
export async function acceptOne<C extends ConnectionLifecycle>(listener: Listener<C>): Promise<C> {
  const next = await listener[Symbol.asyncIterator]().next();
  if (next.done) throw new Error("the listener ended before yielding a connection");
  return next.value;
}

/** An upgrade context for calling an upgrade directly. */
export function upgradeContext(
  role: Role,
  signal: AbortSignal = new AbortController().signal,
  dialedAddr?: Multiaddr,
): UpgradeContext {
  return { role, signal, dialedAddr };
}
