/**
 * `/echo/1.0.0`: every byte read is written back until the dialer closes its
 * side, then the listener closes its own. Used by the CLI and interop tests.
 *
 * @module
 */

import type { Connection } from "../netcore/transport/connection.ts";

/**
 * The protocol id.
 *
 * @example
 * ```ts
 * import { ECHO_PROTOCOL } from "./echo.ts";
 * console.log(ECHO_PROTOCOL); // "/echo/1.0.0"
 * ```
 */
export const ECHO_PROTOCOL = "/echo/1.0.0";

/**
 * Echoes `stream` back to its sender until it ends, then half-closes.
 * Backpressure holds: a sender that does not read stops being read.
 *
 * @example
 * ```ts
 * import { ECHO_PROTOCOL, handleEcho } from "./echo.ts";
 * import { Libp2pNode } from "../netcore/libp2p_node.ts";
 * import { Multiaddr } from "../netcore/multiaddr.ts";
 *
 * const server = await Libp2pNode.create({ listen: [Multiaddr.parse("/memory/0")] });
 * server.handle(ECHO_PROTOCOL, handleEcho);
 * const client = await Libp2pNode.create();
 * const stream = await client.newStream(server.listenAddrs[0], [ECHO_PROTOCOL]);
 * await stream.write(new Uint8Array([1, 2, 3]));
 * await stream.closeWrite();
 * console.log(await stream.read()); // Uint8Array(3) [ 1, 2, 3 ]
 * await client.close();
 * await server.close();
 * ```
 */
export async function handleEcho(stream: Connection): Promise<void> {
  for (let chunk = await stream.read(); chunk !== null; chunk = await stream.read()) {
    const room = stream.write(chunk);
    if (room !== undefined) await room;
  }
  await stream.closeWrite();
}
