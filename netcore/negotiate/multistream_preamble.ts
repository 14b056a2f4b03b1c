/**
 * The dialer's optimistic multistream-select proposal of one protocol as
 * bytes to send and an answer to check, for a protocol whose own first
 * message can travel in the same write (the `/noise` handshake): the header
 * and the proposal go out in front of that message, and the answer is read
 * before the peer's first message. No stream wraps the connection, so
 * nothing of the negotiation stays on the path of later reads and writes.
 *
 * @module
 */

import type { ByteReader } from "../byte_reader.ts";
import { NetworkError } from "../network_error.ts";
import {
  checkProtocolName,
  decodeLine,
  encodeMessages,
  expectMultistreamHeader,
  NA,
} from "./_message.ts";
import { resolveOptions } from "./_session.ts";
import { MULTISTREAM_PROTOCOL_ID, type NegotiateOptions } from "./options.ts";

/**
 * An optimistic proposal: `send` leaves with the protocol's first message;
 * `receive` reads the listener's answer from the reader the protocol then
 * goes on with.
 *
 * @example
 * ```ts
 * import { multistreamPreamble } from "./multistream_preamble.ts";
 * const preamble = multistreamPreamble("/noise");
 * console.log(preamble.send.length); // 28: the header and the proposal
 * ```
 */
export interface MultistreamPreamble {
  /** The header and the proposal, encoded. */
  readonly send: Uint8Array;
  /**
   * Reads and checks the listener's answer.
   *
   * @throws {NetworkError} `UNSUPPORTED_PROTOCOL` when it refuses,
   *   `PROTOCOL_VIOLATION` for any other answer, `FRAME_TOO_LARGE` above the
   *   line limit, `CONNECTION_CLOSED`/`CONNECTION_RESET` from the stream
   */
  receive(reader: ByteReader): Promise<void>;
}

/**
 * The optimistic proposal of `protocol`, for a dialer that expects the
 * listener to speak it (multistream-select 1.0 allows the dialer to send
 * data right after its proposal; js-libp2p and rust-libp2p listeners accept
 * it). Time limits are the caller's: the answer is read inside its handshake.
 *
 * @param protocol the one protocol we want to speak
 * @param options only `maxLineLength` applies
 * @throws {TypeError} for an invalid protocol name (a bug)
 * @example
 * ```ts ignore
 * import { multistreamPreamble } from "./multistream_preamble.ts";
 * import { libp2pNoise } from "../noise/libp2p_noise.ts";
 * // the dialer: "/noise" travels with Noise message 1
 * const secure = await libp2pNoise(identity)(raw, context, multistreamPreamble("/noise"));
 * ```
 */
export function multistreamPreamble(
  protocol: string,
  options?: NegotiateOptions,
): MultistreamPreamble {
  const { maxLineLength } = resolveOptions(options);
  checkProtocolName(protocol, maxLineLength);
  const readLine = async (reader: ByteReader): Promise<string> => {
    const length = await reader.readVarint(maxLineLength);
    if (length === 0) throw new NetworkError("PROTOCOL_VIOLATION", "empty negotiation message");
    return decodeLine(await reader.readExactly(length));
  };
  return {
    send: encodeMessages([MULTISTREAM_PROTOCOL_ID, protocol]),
    async receive(reader) {
      const header = await readLine(reader);
      expectMultistreamHeader(header);
      const answer = await readLine(reader);
      if (answer === NA) {
        throw new NetworkError("UNSUPPORTED_PROTOCOL", `the listener refused ${protocol}`);
      }
      if (answer !== protocol) {
        throw new NetworkError(
          "PROTOCOL_VIOLATION",
          `proposed ${protocol}, the listener answered ${JSON.stringify(answer)}`,
        );
      }
    },
  };
}
