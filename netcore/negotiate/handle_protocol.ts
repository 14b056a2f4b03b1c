/**
 * The listener side of multistream-select 1.0.
 *
 * @module
 */

import { NetworkError } from "../network_error.ts";
import type { Connection } from "../transport/connection.ts";
import {
  encodeMessages,
  encodeProtocolList,
  HEADER_MESSAGE,
  LS,
  NA,
  NA_MESSAGE,
} from "./_message.ts";
import { resolveOptions, Session } from "./_session.ts";
import { MULTISTREAM_PROTOCOL_ID, type Negotiated, type NegotiateOptions } from "./options.ts";

const HEADER_PREFIX = "/multistream/";

function concat(a: Uint8Array, b: Uint8Array): Uint8Array {
  const out = new Uint8Array(a.length + b.length);
  out.set(a);
  out.set(b, a.length);
  return out;
}

// The shared encoded messages are copied before each write: the chunk then
// belongs to the peer's reader, which may transform it in place.

/**
 * Answers the dialer's proposals, as the listener: `na` to each protocol not
 * in `protocols`, and the protocol itself (agreement) to the first one that
 * is. `ls` is answered with `protocols` when it is a list, with an empty list
 * when it is a predicate.
 *
 * Our header waits for the dialer's first proposal when that arrived in the
 * same chunk as its header (the usual case), so header and answer leave in
 * one write; a dialer that waits for our header before proposing gets it at
 * once instead.
 *
 * The agreement is written without waiting: it leaves in the same socket
 * write as whatever the caller writes next in this turn (Noise message 2,
 * a handler's first answer).
 *
 * On failure the connection is mid-negotiation: close or abort it (past
 * the deadline, or when the signal fires, it is aborted already).
 *
 * @param conn the raw connection, secure channel or substream to negotiate on
 * @param protocols the protocols we speak, or a test for them (an exception
 *   it throws ends the negotiation and is rethrown as is)
 * @throws {NetworkError} `LIMIT_EXCEEDED` after `maxAttempts` refusals,
 *   `UNSUPPORTED_PROTOCOL` when the dialer speaks another multistream
 *   version, `PROTOCOL_VIOLATION` for anything else out of place,
 *   `FRAME_TOO_LARGE`, `TIMEOUT`, `ABORTED`, `CONNECTION_CLOSED` (the dialer
 *   gave up), `CONNECTION_RESET`
 * @example
 * ```ts
 * import { handleProtocol } from "./handle_protocol.ts";
 * import type { Connection } from "../transport/connection.ts";
 * async function serve(substream: Connection) {
 *   const { protocol, stream } = await handleProtocol(substream, ["/ipfs/ping/1.0.0"]);
 *   console.log(`serving ${protocol}`);
 *   for (let chunk = await stream.read(); chunk !== null; chunk = await stream.read()) {
 *     await stream.write(chunk);
 *   }
 *   await stream.closeWrite();
 * }
 * ```
 */
export async function handleProtocol(
  conn: Connection,
  protocols: readonly string[] | ((protocol: string) => boolean),
  options?: NegotiateOptions,
): Promise<Negotiated> {
  const resolved = resolveOptions(options);
  const supports = typeof protocols === "function"
    ? protocols
    : (protocol: string) => protocols.includes(protocol);
  const session = new Session(conn, "listener", resolved);
  session.arm();
  try {
    const header = await session.readLine();
    if (header !== MULTISTREAM_PROTOCOL_ID) {
      if (header.startsWith(HEADER_PREFIX)) {
        // Another version of multistream: refuse it so the dialer can fall back.
        await session.write(NA_MESSAGE.slice());
        throw new NetworkError("UNSUPPORTED_PROTOCOL", `the dialer speaks ${header}`);
      }
      throw new NetworkError(
        "PROTOCOL_VIOLATION",
        `expected the ${MULTISTREAM_PROTOCOL_ID} header, got ${JSON.stringify(header)}`,
      );
    }
    let headerSent = false;
    let refusals = 0;
    while (true) {
      if (!headerSent && session.buffered === 0) {
        await session.write(HEADER_MESSAGE.slice());
        headerSent = true;
      }
      const proposal = await session.readLine();
      if (proposal === MULTISTREAM_PROTOCOL_ID || proposal === NA) {
        throw new NetworkError(
          "PROTOCOL_VIOLATION",
          `expected a proposal, got ${JSON.stringify(proposal)}`,
        );
      }
      if (proposal !== LS && supports(proposal)) {
        const accept = headerSent
          ? encodeMessages([proposal])
          : encodeMessages([MULTISTREAM_PROTOCOL_ID, proposal]);
        await session.write(accept);
        return { protocol: proposal, stream: session.succeed() };
      }
      if (++refusals > resolved.maxAttempts) {
        throw new NetworkError(
          "LIMIT_EXCEEDED",
          `the dialer made more than ${resolved.maxAttempts} proposals without agreement`,
        );
      }
      let answer = proposal === LS
        ? encodeProtocolList(typeof protocols === "function" ? [] : protocols)
        : NA_MESSAGE.slice();
      if (!headerSent) answer = concat(HEADER_MESSAGE, answer);
      await session.write(answer);
      headerSent = true;
    }
  } catch (err) {
    throw session.fail(err);
  }
}
