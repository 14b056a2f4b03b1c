/**
 * The libp2p ping protocol, `/ipfs/ping/1.0.0` (libp2p/specs `ping/ping.md`):
 * the dialer sends 32 random bytes, the listener echoes them, the dialer
 * checks them and measures the round trip. Several pings may follow each other
 * on one stream.
 *
 * @module
 */

import { ByteReader } from "../netcore/byte_reader.ts";
import { NetworkError } from "../netcore/network_error.ts";
import type { Connection } from "../netcore/transport/connection.ts";

/**
 * The protocol id.
 *
 * @example
 * ```ts
 * import { PING_PROTOCOL } from "./ping.ts";
 * console.log(PING_PROTOCOL); // "/ipfs/ping/1.0.0"
 * ```
 */
export const PING_PROTOCOL = "/ipfs/ping/1.0.0";

/**
 * Bytes in one ping, per the spec.
 *
 * @example
 * ```ts
 * import { PING_LENGTH } from "./ping.ts";
 * const payload = crypto.getRandomValues(new Uint8Array(PING_LENGTH));
 * ```
 */
export const PING_LENGTH = 32;

/**
 * Serves pings on one stream until the dialer closes it: every 32 bytes read
 * are written back. Returns when the stream ends; rejects with a
 * `NetworkError` if it fails (the caller resets that stream only).
 *
 * @example
 * ```ts
 * import { handlePing, PING_PROTOCOL } from "./ping.ts";
 * import { Libp2pNode } from "../netcore/libp2p_node.ts";
 * import { Multiaddr } from "../netcore/multiaddr.ts";
 * const node = await Libp2pNode.create({ listen: [Multiaddr.parse("/memory/0")] });
 * node.handle(PING_PROTOCOL, (stream) => handlePing(stream));
 * await node.close();
 * ```
 */
export async function handlePing(stream: Connection): Promise<void> {
  const reader = new ByteReader(stream);
  while (true) {
    // A partial ping at the end of the stream is answered with nothing: the
    // spec says the listener echoes 32-byte pings only.
    const first = await reader.readSome(PING_LENGTH);
    if (first === undefined) break;
    const payload = first.length === PING_LENGTH ? first : await readRest(reader, first);
    const room = stream.write(payload);
    if (room !== undefined) await room;
  }
  await stream.closeWrite();
}

async function readRest(reader: ByteReader, first: Uint8Array): Promise<Uint8Array> {
  const payload = new Uint8Array(PING_LENGTH);
  payload.set(first);
  payload.set(await reader.readExactly(PING_LENGTH - first.length), first.length);
  return payload;
}

/**
 * Options for {@linkcode Pinger}.
 *
 * @example
 * ```ts
 * import type { PingOptions } from "./ping.ts";
 * const options: PingOptions = { timeout: 2_000 };
 * ```
 */
export interface PingOptions {
  /** Time limit for one ping in ms. Default 10_000. */
  timeout?: number;
}

/**
 * Sends pings on one stream and measures their round trips.
 *
 * @example
 * ```ts
 * import { handlePing, PING_PROTOCOL, Pinger } from "./ping.ts";
 * import { Libp2pNode } from "../netcore/libp2p_node.ts";
 * import { Multiaddr } from "../netcore/multiaddr.ts";
 *
 * const server = await Libp2pNode.create({ listen: [Multiaddr.parse("/memory/0")] });
 * server.handle(PING_PROTOCOL, (stream) => handlePing(stream));
 * const client = await Libp2pNode.create();
 * const pinger = new Pinger(await client.newStream(server.listenAddrs[0], [PING_PROTOCOL]));
 * console.log(`rtt ${await pinger.ping()} ms`);
 * await pinger.close();
 * await client.close();
 * await server.close();
 * ```
 */
export class Pinger {
  readonly #stream: Connection;
  readonly #reader: ByteReader;
  readonly #timeout: number;
  // One buffer for every ping: the writer may reuse a chunk once write()
  // resolved, and the answer is compared before the next ping starts.
  readonly #payload = new Uint8Array(PING_LENGTH);
  /** When the ping in flight started; undefined between pings. */
  #started: number | undefined;
  /** Set when a ping ran out of time: the stream is failed for good. */
  #timedOut: NetworkError | undefined;
  /** The one deadline timer (see `ping`), while armed. */
  #deadline: ReturnType<typeof setTimeout> | undefined;

  /** Takes over `stream`: the pinger reads and writes it, nobody else should. */
  constructor(stream: Connection, options: PingOptions = {}) {
    this.#stream = stream;
    this.#reader = new ByteReader(stream);
    this.#timeout = options.timeout ?? 10_000;
  }

  /**
   * One ping; resolves with the round-trip time in milliseconds.
   *
   * The time limit costs nothing per ping: one timer serves every ping on
   * the stream. Armed at the first ping, it checks on firing whether the
   * ping in flight is over its limit (then it fails the stream, which fails
   * the ping with `TIMEOUT`: a late answer would be mistaken for the next
   * one's) and re-arms itself for the rest; between pings it is unref'd, so
   * an idle pinger does not keep the process alive. A timer and a race per
   * ping cost more CPU and garbage than the rest of a loopback round trip.
   *
   * @throws {NetworkError} `PROTOCOL_VIOLATION` if the echo differs,
   *   `TIMEOUT` after the time limit (and for every ping after it),
   *   `CONNECTION_CLOSED` if the stream ends
   */
  async ping(): Promise<number> {
    if (this.#timedOut !== undefined) throw this.#timedOut;
    crypto.getRandomValues(this.#payload);
    const start = performance.now();
    this.#started = start;
    if (this.#deadline === undefined) this.#armDeadline(this.#timeout);
    else Deno.refTimer(this.#deadline);
    let answer: Uint8Array;
    try {
      const room = this.#stream.write(this.#payload);
      if (room !== undefined) await room;
      answer = await this.#reader.readExactly(PING_LENGTH);
    } catch (err) {
      throw this.#timedOut ?? err;
    } finally {
      this.#started = undefined;
      if (this.#deadline !== undefined) Deno.unrefTimer(this.#deadline);
    }
    const rtt = performance.now() - start;
    for (let i = 0; i < PING_LENGTH; i++) {
      if (answer[i] !== this.#payload[i]) {
        throw new NetworkError("PROTOCOL_VIOLATION", "ping answer differs from the ping");
      }
    }
    return rtt;
  }

  #stopDeadline(): void {
    if (this.#deadline !== undefined) {
      clearTimeout(this.#deadline);
      this.#deadline = undefined;
    }
  }

  #armDeadline(ms: number): void {
    this.#deadline = setTimeout(() => {
      this.#deadline = undefined;
      const started = this.#started;
      if (started === undefined) return;
      const elapsed = performance.now() - started;
      if (elapsed < this.#timeout) {
        this.#armDeadline(this.#timeout - elapsed);
        return;
      }
      const error = new NetworkError("TIMEOUT", `ping timed out after ${this.#timeout} ms`);
      this.#timedOut = error;
      // Wakes the pending write or read, which then rethrows `error`.
      this.#stream.abort(error);
    }, ms);
  }

  /**
   * Ends our pings (a half-close) without waiting for the listener's end, as
   * js-libp2p's `stream.close()` does: for a caller that closes the whole
   * connection next, which waits for every stream to finish anyway.
   */
  async closeWrite(): Promise<void> {
    this.#stopDeadline();
    await this.#stream.closeWrite().catch(() => {});
  }

  /** Closes our side and waits for the listener to close its side. */
  async close(): Promise<void> {
    await this.closeWrite();
    while ((await this.#reader.readSome().catch(() => undefined)) !== undefined) {
      // the listener must not send more; drain whatever it did until its end
    }
  }
}
