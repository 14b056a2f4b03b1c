/**
 * The libp2p upgrade pipeline as one `andThen` upgrade: on a raw connection,
 * multistream-select `/noise`, the Noise XX libp2p handshake, multistream-select
 * `/yamux/1.0.0` inside the channel, then a yamux session whose streams are
 * negotiated one by one for their application protocol.
 *
 * Transitions, in order (as rust-libp2p's `upgrade.rs` writes them down):
 *
 * ```text
 * raw Connection --negotiate /noise--> --Noise XX--> Libp2pNoiseConnection
 *   --negotiate /yamux/1.0.0 (skipped when both listed it in the Noise
 *     handshake's stream_muxers extension)--> Yamux session = Libp2pConnection
 *   --openStream + negotiate <protocol>--> ProtocolStream
 * ```
 *
 * @module
 */

import type { Ed25519Identity, PeerId } from "./identity/mod.ts";
import { defaultRegistry } from "./metrics.ts";
import { Yamux, type YamuxOptions } from "./multiplexing/mod.ts";
import type { YamuxStream } from "./multiplexing/yamux_stream.ts";
import {
  handleProtocol,
  multistreamPreamble,
  type NegotiateOptions,
  selectProtocol,
  selectProtocolOptimistic,
} from "./negotiate/mod.ts";
import {
  LIBP2P_NOISE_PROTOCOL_ID,
  libp2pNoise,
  type Libp2pNoiseConnection,
  type Libp2pNoiseOptions,
} from "./noise/libp2p_noise.ts";
import { NetworkError } from "./network_error.ts";
import type { Multiaddr } from "./multiaddr.ts";
import type { Connection, ConnectionLifecycle, Duplex } from "./transport/connection.ts";
import type { Upgrade, UpgradeContext } from "./transport/transport.ts";
import { withStreams } from "./transport/with_streams.ts";

/** The multistream-select id of yamux. */
export const YAMUX_PROTOCOL_ID = "/yamux/1.0.0";

const streamsOpen = defaultRegistry.gauge(
  "libp2p_streams_open",
  "Open streams whose protocol was negotiated, by protocol and direction (inbound/outbound)",
  ["protocol", "direction"],
);
const streamsTotal = defaultRegistry.counter(
  "libp2p_streams_total",
  "Streams whose protocol was negotiated, by protocol and direction (inbound/outbound)",
  ["protocol", "direction"],
);
const streamBytes = defaultRegistry.counter(
  "libp2p_stream_bytes_total",
  "Data bytes of ended streams (multistream-select included), by protocol and direction (in/out)",
  ["protocol", "direction"],
);

/**
 * Counts a negotiated stream and, once it is released, its bytes. Runs once
 * per stream: the byte totals come from the stream's own counters, so the
 * data path carries no metrics work.
 */
function recordStream(stream: YamuxStream, protocol: string): void {
  const direction = stream.direction;
  streamsTotal.labels({ protocol, direction }).inc();
  const open = streamsOpen.labels({ protocol, direction });
  open.inc();
  stream.closed.then(() => {
    open.dec();
    const { bytesReceived, bytesSent } = stream.stats();
    streamBytes.labels({ protocol, direction: "in" }).inc(bytesReceived);
    streamBytes.labels({ protocol, direction: "out" }).inc(bytesSent);
  });
}

/** A substream that carries a negotiated application protocol. */
export interface ProtocolStream extends Connection {
  /** The protocol both ends agreed on. */
  readonly protocol: string;
  /** The yamux stream under it. */
  readonly stream: YamuxStream;
}

/** Options for {@linkcode Libp2pConnection.openStream}. */
export interface OpenStreamOptions {
  /** Cancels the negotiation (the stream is then reset). */
  signal?: AbortSignal;
  /**
   * With one protocol, `false` skips waiting for the listener's answer
   * (multistream-select's optimistic mode, js-libp2p's option of the same
   * name): the stream opens at once, its protocol proposal leaves with the
   * first bytes written (or when it is first read), and a refusal surfaces
   * as `UNSUPPORTED_PROTOCOL` on the stream's reads and writes. With several
   * protocols negotiation always completes first. Default `true`.
   */
  negotiateFully?: boolean;
}

/**
 * An authenticated, multiplexed connection to one libp2p peer.
 *
 * @example
 * ```ts ignore
 * const conn = await transport.dial(addr);
 * const stream = await conn.openStream(["/ipfs/ping/1.0.0"]);
 * console.log(conn.remotePeerId.toString(), stream.protocol);
 * ```
 */
export class Libp2pConnection implements ConnectionLifecycle, AsyncIterable<YamuxStream> {
  readonly #muxer: Yamux<Connection>;
  readonly #secure: Libp2pNoiseConnection;
  readonly #negotiate: NegotiateOptions;

  /** Use {@linkcode libp2pUpgrade}. */
  constructor(
    secure: Libp2pNoiseConnection,
    muxer: Yamux<Connection>,
    negotiate: NegotiateOptions,
  ) {
    this.#secure = secure;
    this.#muxer = muxer;
    this.#negotiate = negotiate;
  }

  /** The peer, as the Noise handshake authenticated it. */
  get remotePeerId(): PeerId {
    return this.#secure.remotePeerId;
  }
  /** The Noise channel under the muxer. */
  get secure(): Libp2pNoiseConnection {
    return this.#secure;
  }
  /** The yamux session. */
  get muxer(): Yamux<Connection> {
    return this.#muxer;
  }
  /** Our address. */
  get localAddr(): Multiaddr {
    return this.#muxer.localAddr;
  }
  /** The peer's address, with its `/p2p/` id. */
  get remoteAddr(): Multiaddr {
    const addr = this.#muxer.remoteAddr;
    return addr.peerId === undefined ? addr.withPeerId(this.remotePeerId.toString()) : addr;
  }
  /** Settles when the session and the connection are released. */
  get closed(): Promise<void> {
    return this.#muxer.closed;
  }

  /**
   * Opens a stream and negotiates the first of `protocols` the peer supports.
   *
   * @throws {NetworkError} `UNSUPPORTED_PROTOCOL` when it supports none;
   *   `CONNECTION_CLOSED`/`LIMIT_EXCEEDED` from the muxer; `TIMEOUT`
   */
  async openStream(
    protocols: readonly string[],
    options: OpenStreamOptions = {},
  ): Promise<ProtocolStream> {
    const stream = await this.#muxer.openStream();
    try {
      const negotiate = { ...this.#negotiate, signal: options.signal };
      const negotiated = options.negotiateFully === false && protocols.length === 1
        ? selectProtocolOptimistic(stream, protocols[0], negotiate)
        : await selectProtocol(stream, protocols, negotiate);
      return protocolStream(stream, negotiated.protocol, negotiated.stream);
    } catch (err) {
      stream.abort(err);
      throw err;
    }
  }

  /**
   * Negotiates an inbound stream against the protocols we serve.
   *
   * @throws {NetworkError} as `handleProtocol`; the stream is reset
   */
  async acceptStream(
    stream: YamuxStream,
    protocols: readonly string[] | ((protocol: string) => boolean),
  ): Promise<ProtocolStream> {
    try {
      // An optimistic dialer's data is already here: our agreement waits for
      // the handler's first answer and leaves with it.
      const negotiated = await handleProtocol(stream, protocols, {
        ...this.#negotiate,
        deferAnswer: true,
      });
      if (negotiated.unsentAnswer !== undefined) {
        stream.prependToNextWrite(negotiated.unsentAnswer);
      }
      return protocolStream(stream, negotiated.protocol, negotiated.stream);
    } catch (err) {
      stream.abort(err);
      throw err;
    }
  }

  /** Inbound streams, not yet negotiated (see {@linkcode acceptStream}). */
  [Symbol.asyncIterator](): AsyncIterator<YamuxStream> {
    return this.#muxer[Symbol.asyncIterator]();
  }

  /** Measures the round trip with a yamux ping, in ms. */
  ping(): Promise<number> {
    return this.#muxer.ping();
  }

  /** Closes the session (GoAway) and the connection. */
  close(): Promise<void> {
    return this.#muxer.close();
  }

  /** Drops the connection at once. */
  abort(reason?: unknown): void {
    this.#muxer.abort(reason);
  }
}

function protocolStream(stream: YamuxStream, protocol: string, streams: Duplex): ProtocolStream {
  stream.protocol = protocol;
  recordStream(stream, protocol);
  return {
    protocol,
    stream,
    readable: streams.readable,
    writable: streams.writable,
    localAddr: stream.localAddr,
    remoteAddr: stream.remoteAddr,
    closed: stream.closed,
    close: () => stream.close(),
    abort: (reason?: unknown) => stream.abort(reason),
  };
}

/** Options for {@linkcode libp2pUpgrade}. */
export interface Libp2pUpgradeOptions {
  /** Noise options (handshake timeout, backend, ...). */
  noise?: Libp2pNoiseOptions;
  /** Yamux options (windows, stream limits, keepalive, ...); `role` is set per connection. */
  yamux?: Omit<YamuxOptions, "role">;
  /** multistream-select options (timeout, line limits), for the connection and every stream. */
  negotiate?: NegotiateOptions;
}

/**
 * The whole libp2p upgrade: `/noise` -> Noise XX -> `/yamux/1.0.0` -> yamux.
 *
 * @example
 * ```ts ignore
 * import { andThen, TcpTransport } from "./transport/mod.ts";
 * const transport = andThen(new TcpTransport(), libp2pUpgrade(Ed25519Identity.generate()));
 * const conn = await transport.dial(Multiaddr.parse("/ip4/127.0.0.1/tcp/4001/p2p/12D3KooW..."));
 * ```
 */
export function libp2pUpgrade(
  identity: Ed25519Identity,
  options: Libp2pUpgradeOptions = {},
): Upgrade<Connection, Libp2pConnection> {
  const noise = libp2pNoise(identity, {
    streamMuxers: [YAMUX_PROTOCOL_ID],
    ...options.noise,
  });
  const negotiate = options.negotiate ?? {};
  const noisePreamble = multistreamPreamble(LIBP2P_NOISE_PROTOCOL_ID, negotiate);
  // The listener's agreement to an optimistic /noise travels with Noise
  // message 2, the dialer's message 1 being already there.
  const respond = async (raw: Connection, context: UpgradeContext) => {
    const negotiated = await handleProtocol(raw, [LIBP2P_NOISE_PROTOCOL_ID], {
      ...negotiate,
      signal: context.signal,
      deferAnswer: true,
    });
    const preamble = negotiated.unsentAnswer === undefined
      ? undefined
      : { send: negotiated.unsentAnswer };
    return await noise(withStreams(raw, negotiated.stream), context, preamble);
  };
  return async (raw: Connection, context: UpgradeContext) => {
    const dialer = context.role === "dialer";
    const select = (conn: Connection, protocol: string) =>
      dialer
        ? selectProtocol(conn, [protocol], { ...negotiate, signal: context.signal })
        : handleProtocol(conn, [protocol], { ...negotiate, signal: context.signal });
    // The dialer proposes /noise optimistically: the proposal travels with
    // Noise message 1 and the answer is read before message 2, which saves
    // a round trip and leaves no negotiation layer on the connection.
    const secure = dialer ? await noise(raw, context, noisePreamble) : await respond(raw, context);
    try {
      // Both ends advertised their muxers inside the Noise handshake; when the
      // peer listed yamux (we always do), both know it is chosen and skip the
      // round trip of negotiating it (libp2p/specs noise, "early muxer
      // negotiation"), as js-libp2p does.
      const muxed: Connection = secure.remoteStreamMuxers.includes(YAMUX_PROTOCOL_ID)
        ? secure
        : withStreams(secure, (await select(secure, YAMUX_PROTOCOL_ID)).stream);
      const muxer = Yamux.create(muxed, {
        ...options.yamux,
        role: context.role,
      });
      muxer.start();
      return new Libp2pConnection(secure, muxer, negotiate);
    } catch (err) {
      secure.abort(err);
      throw NetworkError.wrap(err, "HANDSHAKE_FAILED", "muxer negotiation");
    }
  };
}
