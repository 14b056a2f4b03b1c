/**
 * Yamux as a transport upgrade: the last step of the connection upgrade
 * order (raw -> `/noise` -> Noise handshake -> `/yamux/1.0.0` -> multiplex).
 *
 * @module
 */

import { abortError } from "../_async.ts";
import type { Connection } from "../transport/connection.ts";
import type { Upgrade } from "../transport/transport.ts";
import { Yamux, type YamuxOptions } from "./yamux.ts";

/** Options for {@linkcode yamuxUpgrade}: those of {@linkcode Yamux} but the role, which the upgrade context gives. */
export type YamuxUpgradeOptions = Omit<YamuxOptions, "role">;

/**
 * An upgrade that runs a started {@linkcode Yamux} session over the
 * connection, as the yamux client when we dialed and the server when we
 * accepted. Negotiating `/yamux/1.0.0` (multistream-select) comes before it.
 *
 * @throws {NetworkError} `ABORTED`/`TIMEOUT` when the context's signal has
 *   already fired
 *
 * @example
 * ```ts ignore
 * import { andThen } from "../transport/and_then.ts";
 * import { yamuxUpgrade } from "./yamux_upgrade.ts";
 * const muxed = andThen(secureTransport, yamuxUpgrade({ keepAliveInterval: 10_000 }));
 * const muxer = await muxed.dial(addr);
 * const stream = await muxer.openStream();
 * ```
 */
export function yamuxUpgrade<C extends Connection>(
  options: YamuxUpgradeOptions = {},
): Upgrade<C, Yamux<C>> {
  return (conn, context) => {
    if (context.signal.aborted) return Promise.reject(abortError(context.signal));
    const muxer = Yamux.create(conn, { ...options, role: context.role });
    muxer.start();
    return Promise.resolve(muxer);
  };
}
