/**
 * `withStreams`: a connection that speaks through other streams than its
 * own, keeping its own lifecycle. Negotiation hands back a duplex that may
 * replay bytes it read ahead; the next layer still needs a `Connection`.
 *
 * @module
 */

import type { Connection, Duplex } from "./connection.ts";

/**
 * A `Connection` with `conn`'s addresses, `close`, `abort` and `closed`, and
 * `streams`' readable and writable. `conn` itself when the streams are its own.
 *
 * @example
 * ```ts ignore
 * import { withStreams } from "./with_streams.ts";
 * const { stream } = await selectProtocol(raw, ["/noise"]);
 * const negotiated = withStreams(raw, stream);
 * ```
 */
export function withStreams<C extends Connection>(conn: C, streams: Duplex): Connection {
  if (streams.readable === conn.readable && streams.writable === conn.writable) return conn;
  return {
    readable: streams.readable,
    writable: streams.writable,
    localAddr: conn.localAddr,
    remoteAddr: conn.remoteAddr,
    closed: conn.closed,
    close: () => conn.close(),
    abort: (reason?: unknown) => conn.abort(reason),
  };
}
