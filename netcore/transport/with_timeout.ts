/**
 * `withTimeout`: one deadline for a whole dial, connect and upgrades alike.
 *
 * @module
 */

import { Deadline } from "../_async.ts";
import type { Multiaddr } from "../multiaddr.ts";
import { NetworkError } from "../network_error.ts";
import { dialError } from "./_io_error.ts";
import type { ConnectionLifecycle } from "./connection.ts";
import type { DialOptions, Transport } from "./transport.ts";

/**
 * A transport whose dials fail with `DIAL_TIMEOUT` after `ms` milliseconds,
 * whatever step they are in: the deadline fires the signal given to the inner
 * dial (so a connect or an upgrade in progress is cancelled), and a
 * connection that arrives after the deadline is aborted. The caller's own
 * signal still works. Listening is passed through unchanged; bound inbound
 * upgrades with `andThen`'s `timeout`.
 *
 * @example
 * ```ts
 * import { withTimeout } from "./with_timeout.ts";
 * import { TcpTransport } from "./tcp_transport.ts";
 * const tcp = withTimeout(new TcpTransport(), 5_000);
 * ```
 */
export function withTimeout<C extends ConnectionLifecycle>(
  transport: Transport<C>,
  ms: number,
): Transport<C> {
  return {
    supports: (addr) => transport.supports(addr),
    listen: (addr, options) => transport.listen(addr, options),
    async dial(addr: Multiaddr, options: DialOptions = {}): Promise<C> {
      using deadline = new Deadline(ms, {
        code: "DIAL_TIMEOUT",
        what: `dial to ${addr}`,
        signal: options.signal,
      });
      const dialing = transport.dial(addr, { ...options, signal: deadline.signal });
      try {
        return await deadline.race(dialing);
      } catch (err) {
        // A dial that completes after we gave up must not leak its connection.
        dialing.then((late) => late.abort(err), () => {});
        throw NetworkError.is(err) ? dialError(err) : err;
      }
    },
  };
}
