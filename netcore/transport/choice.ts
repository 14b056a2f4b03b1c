/**
 * `choice`: one transport made of several, each address going to the first
 * that supports it.
 *
 * @module
 */

import type { Multiaddr } from "../multiaddr.ts";
import { NetworkError } from "../network_error.ts";
import type { ConnectionLifecycle } from "./connection.ts";
import type { DialOptions, Listener, ListenOptions, Transport } from "./transport.ts";

/**
 * The connection type a transport yields.
 *
 * @example
 * ```ts
 * import type { ConnectionOf } from "./choice.ts";
 * import type { SocketConnection } from "./socket_connection.ts";
 * import type { TcpTransport } from "./tcp_transport.ts";
 * const same = (conn: ConnectionOf<TcpTransport>): SocketConnection => conn;
 * ```
 */
export type ConnectionOf<T> = T extends Transport<infer C> ? C : never;

/**
 * A transport that routes each `dial` and `listen` to the first of
 * `transports` whose `supports(addr)` is true (so `/memory/..` to memory and
 * `/ip4/..` to TCP); `BAD_ADDRESS` when none does. Its connections are the
 * union of the members' connection types.
 *
 * @example
 * ```ts
 * import { choice } from "./choice.ts";
 * import { TcpTransport } from "./tcp_transport.ts";
 * import { MemoryTransport } from "./memory_transport.ts";
 * import { Multiaddr } from "../multiaddr.ts";
 *
 * const any = choice(new TcpTransport(), new MemoryTransport());
 * console.log(any.supports(Multiaddr.parse("/memory/3"))); // true
 * ```
 */
export function choice<T extends Transport<ConnectionLifecycle>[]>(
  ...transports: T
): Transport<ConnectionOf<T[number]>> {
  type C = ConnectionOf<T[number]>;
  const pick = (addr: Multiaddr): Transport<C> => {
    const transport = transports.find((t) => t.supports(addr));
    if (transport === undefined) {
      throw new NetworkError("BAD_ADDRESS", `no transport supports ${addr}`);
    }
    // Sound: C is the union of every member's connection type.
    return transport as Transport<C>;
  };
  return {
    supports: (addr) => transports.some((t) => t.supports(addr)),
    dial: (addr: Multiaddr, options?: DialOptions): Promise<C> => {
      try {
        return pick(addr).dial(addr, options);
      } catch (err) {
        return Promise.reject(err);
      }
    },
    listen: (addr: Multiaddr, options?: ListenOptions): Promise<Listener<C>> => {
      try {
        return pick(addr).listen(addr, options);
      } catch (err) {
        return Promise.reject(err);
      }
    },
  };
}
