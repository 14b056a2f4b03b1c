/**
 * The dialer side of multistream-select 1.0.
 *
 * @module
 */

import { NetworkError } from "../network_error.ts";
import type { Connection } from "../transport/connection.ts";
import { checkProtocolName, encodeMessages, expectMultistreamHeader, NA } from "./_message.ts";
import { resolveOptions, Session } from "./_session.ts";
import { MULTISTREAM_PROTOCOL_ID, type Negotiated, type NegotiateOptions } from "./options.ts";

/**
 * Proposes `protocols` in order, as the dialer, until the listener accepts
 * one.
 *
 * The header and the first proposal leave in one write; the listener's answers
 * are read however they are split into chunks. Bytes the listener sends right
 * after its acceptance stay in the returned stream.
 *
 * On failure the connection is mid-negotiation: close or abort it (past
 * the deadline, or when the signal fires, it is aborted already).
 *
 * @param conn the raw connection, secure channel or substream to negotiate on
 * @param protocols the protocols we speak, most preferred first
 * @throws {NetworkError} `UNSUPPORTED_PROTOCOL` when the listener refuses them
 *   all (or refuses multistream-select 1.0 itself), `PROTOCOL_VIOLATION` for an
 *   answer that is neither the proposal nor `na`, `FRAME_TOO_LARGE`,
 *   `TIMEOUT`, `ABORTED`, `CONNECTION_CLOSED`, `CONNECTION_RESET`
 * @throws {TypeError} for an empty list or an invalid protocol name (a bug)
 * @example
 * ```ts
 * import { selectProtocol } from "./select_protocol.ts";
 * import type { Connection } from "../transport/connection.ts";
 * async function muxerOn(conn: Connection): Promise<Connection> {
 *   const { protocol, stream } = await selectProtocol(conn, ["/yamux/1.0.0", "/mplex/6.7.0"]);
 *   console.log(`speaking ${protocol}`);
 *   return stream; // not `conn`: it may hold bytes the listener sent early
 * }
 * ```
 */
export async function selectProtocol(
  conn: Connection,
  protocols: readonly string[],
  options?: NegotiateOptions,
): Promise<Negotiated> {
  const resolved = resolveOptions(options);
  if (protocols.length === 0) throw new TypeError("no protocol to propose");
  for (const protocol of protocols) checkProtocolName(protocol, resolved.maxLineLength);
  const session = new Session(conn, "dialer", resolved);
  session.arm();
  try {
    await session.write(encodeMessages([MULTISTREAM_PROTOCOL_ID, protocols[0]]));
    const header = await session.readLine();
    expectMultistreamHeader(header);
    for (let i = 0; i < protocols.length; i++) {
      if (i > 0) await session.write(encodeMessages([protocols[i]]));
      const answer = await session.readLine();
      if (answer === protocols[i]) return { protocol: answer, stream: session.succeed() };
      if (answer !== NA) {
        throw new NetworkError(
          "PROTOCOL_VIOLATION",
          `proposed ${protocols[i]}, the listener answered ${JSON.stringify(answer)}`,
        );
      }
    }
    throw new NetworkError(
      "UNSUPPORTED_PROTOCOL",
      `the listener supports none of ${protocols.join(", ")}`,
    );
  } catch (err) {
    throw session.fail(err);
  }
}
