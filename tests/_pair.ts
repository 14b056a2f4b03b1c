/**
 * Test helpers: connected ends of in-memory connections, for tests of
 * protocols that only need a `Connection`, and the small fixtures around them.
 */

import {
  MemoryConnection,
  type MemoryConnectionOptions,
  MemoryNetwork,
  MemoryTransport,
} from "../memsocket/mod.ts";
import { Multiaddr } from "../netcore/multiaddr.ts";
import type { Connection, ConnectionLifecycle } from "../netcore/transport/connection.ts";
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

/** Options of {@linkcode memoryPair}. */
export interface MemoryPairOptions extends MemoryConnectionOptions {
  /** The second end's address, which the first end sees as its remote. Default "/memory/2". */
  remoteAddr?: string;
  /** Milliseconds each chunk takes to cross. Default 0. */
  latency?: number;
}

/**
 * Two ends of one `MemoryConnection` pair, "/memory/1" and `remoteAddr`,
 * without a transport or a network (no listener, no dial).
 *
 * @example
 * ```ts
 * const [a, b] = memoryPair({ bufferSize: 1024 });
 * ```
 */
export function memoryPair(options: MemoryPairOptions = {}): [MemoryConnection, MemoryConnection] {
  const { remoteAddr = "/memory/2", latency = 0, bufferSize, closeGracePeriod } = options;
  // An explicit `undefined` must not override the connection's defaults.
  const connection: MemoryConnectionOptions = {};
  if (bufferSize !== undefined) connection.bufferSize = bufferSize;
  if (closeGracePeriod !== undefined) connection.closeGracePeriod = closeGracePeriod;
  return MemoryConnection.pair(
    Multiaddr.parse("/memory/1"),
    Multiaddr.parse(remoteAddr),
    connection,
    () => latency,
  );
}

/**
 * The next inbound connection of `listener`; fails if the listener has ended.
 *
 * @example
 * ```ts
 * const [dialed, accepted] = await Promise.all([transport.dial(listener.addr), acceptOne(listener)]);
 * ```
 */
export async function acceptOne<C extends ConnectionLifecycle>(listener: Listener<C>): Promise<C> {
  const next = await listener[Symbol.asyncIterator]().next();
  if (next.done) throw new Error("the listener ended before yielding a connection");
  return next.value;
}

/**
 * The `UpgradeContext` an upgrade gets for `role` when run by hand on a pair.
 *
 * @example
 * ```ts
 * const upgraded = libp2pNoise(identity)(a, upgradeContext("dialer"));
 * ```
 */
export function upgradeContext(
  role: Role,
  signal: AbortSignal = new AbortController().signal,
): UpgradeContext {
  return { role, signal };
}
