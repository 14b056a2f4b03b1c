/**
 * `/echo/1.0.0`: every byte read is written back until the dialer closes its
 * side, then the listener closes its own. Used by the CLI and interop tests.
 *
 * @module
 */

import type { Connection } from "../netcore/transport/connection.ts";

/** The protocol id. */
export const ECHO_PROTOCOL = "/echo/1.0.0";

/**
 * Echoes `stream` back to its sender until it ends, then half-closes.
 * Backpressure holds: a sender that does not read stops being read.
 *
 * @example
 * ```ts ignore
 * import { ECHO_PROTOCOL, handleEcho } from "./echo.ts";
 * node.handle(ECHO_PROTOCOL, handleEcho);
 * ```
 */
export async function handleEcho(stream: Connection): Promise<void> {
  for (let chunk = await stream.read(); chunk !== null; chunk = await stream.read()) {
    const room = stream.write(chunk);
    if (room !== undefined) await room;
  }
  await stream.closeWrite();
}
