/**
 * The one connection type both security profiles end in: authenticated (we
 * know the peer's id), encrypted, and multiplexed into streams negotiated
 * one protocol at a time. The peer manager owns these.
 *
 * @module
 */

import type { PeerId } from "../identity/peer_id.ts";
import { defaultMetrics, type Metric, type Metrics, perScope, type Series } from "../metrics.ts";
import type { Multiaddr } from "../multiaddr.ts";
import { Yamux, type YamuxOptions } from "../multiplexing/yamux.ts";
import type { Priority, YamuxStream } from "../multiplexing/yamux_stream.ts";
import {
  handleProtocol,
  type NegotiateOptions,
  selectProtocol,
  selectProtocolOptimistic,
} from "../negotiate/mod.ts";
import type { SecureChannel } from "../noise/secure_channel.ts";
import { NetworkError } from "../network_error.ts";
import { ForwardingConnection } from "../transport/byte_connection.ts";
import type { Connection, ConnectionLifecycle } from "../transport/connection.ts";
import type { Role } from "../transport/transport.ts";

/**
 * How a connection was authenticated: `"libp2p"` is Noise XX with a signed
 * libp2p identity (public peers, interop with js-libp2p); `"validator"` is
 * Noise IK against the trusted validator set.
 *
 * @example
 * ```ts
 * import type { PeerConnection, SecurityProfile } from "./peer_connection.ts";
 * const profile: SecurityProfile = "validator";
 * const isValidator = (conn: PeerConnection) => conn.profile === profile;
 * ```
 */
export type SecurityProfile = "libp2p" | "validator";

/**
 * Whether we dialed the connection (`outbound`) or accepted it (`inbound`).
 *
 * @example
 * ```ts
 * import type { Direction } from "./peer_connection.ts";
 * const direction: Direction = "outbound";
 * ```
 */
export type Direction = "inbound" | "outbound";

/**
 * Options for {@linkcode PeerConnection.openStream}.
 *
 * @example Open a stream without waiting for the listener's agreement
 * ```ts
 * import type { OpenStreamOptions } from "./peer_connection.ts";
 * const options: OpenStreamOptions = { negotiateFully: false, signal: AbortSignal.timeout(5_000) };
 * ```
 */
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
  /**
   * The stream's priority class: when the connection is busy, its frames
   * wait only behind those of higher classes. Default `"normal"`.
   */
  priority?: Priority;
}

/**
 * A substream that carries a negotiated application protocol: a
 * {@linkcode Connection} whose lifecycle is the substream's.
 *
 * @example
 * ```ts
 * import type { PeerConnection, ProtocolStream } from "./peer_connection.ts";
 * async function hello(conn: PeerConnection) {
 *   const stream: ProtocolStream = await conn.openStream(["/echo/1.0.0"]);
 *   await stream.write(new TextEncoder().encode("hi"));
 *   await stream.closeWrite();
 *   console.log(stream.protocol, stream.stream.id); // "/echo/1.0.0" 1
 * }
 * ```
 */
export interface ProtocolStream extends Connection {
  /** The protocol both ends agreed on. */
  readonly protocol: string;
  /** The yamux substream under it. */
  readonly stream: YamuxStream;
}

/**
 * What an authentication step hands to {@linkcode multiplex}.
 *
 * @example
 * ```ts
 * import type { Authenticated } from "./peer_connection.ts";
 * import type { Libp2pNoiseConnection } from "../noise/libp2p_noise.ts";
 * function authenticated(secure: Libp2pNoiseConnection): Authenticated {
 *   return { secure, channel: secure, remotePeer: secure.remotePeerId, profile: "libp2p" };
 * }
 * ```
 */
export interface Authenticated {
  /** The secure channel the handshake made. */
  secure: SecureChannel;
  /**
   * Where the muxer runs: the secure channel itself, or what negotiating the
   * muxer on it returned (which may read bytes it read ahead first).
   */
  channel: Connection;
  /** The peer, as the handshake authenticated it. */
  remotePeer: PeerId;
  /** How it was authenticated. */
  profile: SecurityProfile;
}

/**
 * Options of {@linkcode multiplex}, and so of both upgrades.
 *
 * @example
 * ```ts
 * import type { MultiplexOptions } from "./peer_connection.ts";
 * const options: MultiplexOptions = {
 *   yamux: { maxInboundStreams: 256, keepAliveInterval: 10_000 },
 *   negotiate: { timeout: 5_000 },
 * };
 * ```
 */
export interface MultiplexOptions {
  /** Yamux options (windows, stream limits, keepalive, ...). */
  yamux?: Omit<YamuxOptions, "role" | "metrics" | "logger">;
  /** multistream-select options for every stream (timeout, line limits). */
  negotiate?: Omit<NegotiateOptions, "signal" | "metrics">;
  /** Where stream counts and bytes go. Default `defaultMetrics`. */
  metrics?: Metrics;
  /** Yamux's logger. */
  logger?: YamuxOptions["logger"];
}

let nextConnectionId = 1;

/** The stream metrics of one scope, resolved once. */
interface StreamMetrics {
  open: Metric;
  total: Metric;
  bytes: Metric;
  /** The series of each (protocol, direction), looked up once: a stream per request makes this hot. */
  series: Map<string, StreamSeries>;
}

/** The series one (protocol, direction) counts its streams in. */
interface StreamSeries {
  total: Series;
  open: Series;
  bytesIn: Series;
  bytesOut: Series;
}

/** Most (protocol, direction) pairs whose series are kept looked up (protocols are few; a bound all the same). */
const MAX_SERIES_CACHED = 256;

function seriesOf(metrics: StreamMetrics, protocol: string, direction: string): StreamSeries {
  const key = direction + " " + protocol;
  let series = metrics.series.get(key);
  if (series === undefined) {
    series = {
      total: metrics.total.labels({ protocol, direction }),
      open: metrics.open.labels({ protocol, direction }),
      bytesIn: metrics.bytes.labels({ protocol, direction: "in" }),
      bytesOut: metrics.bytes.labels({ protocol, direction: "out" }),
    };
    if (metrics.series.size >= MAX_SERIES_CACHED) metrics.series.clear();
    metrics.series.set(key, series);
  }
  return series;
}

const streamMetrics = perScope((metrics): StreamMetrics => ({
  series: new Map(),
  open: metrics.gauge(
    "validator_network_streams_open",
    "Open streams whose protocol was negotiated, by protocol and direction (inbound/outbound)",
    ["protocol", "direction"],
  ),
  total: metrics.counter(
    "validator_network_streams_total",
    "Streams whose protocol was negotiated, by protocol and direction (inbound/outbound)",
    ["protocol", "direction"],
  ),
  bytes: metrics.counter(
    "validator_network_stream_bytes_total",
    "Data bytes of ended streams (multistream-select included), by protocol and direction (in/out)",
    ["protocol", "direction"],
  ),
}));

/**
 * The last transition: runs a yamux session over an authenticated channel.
 * The connection it returns is the one every layer above works with.
 *
 * @example
 * ```ts
 * import { multiplex, type PeerConnection } from "./peer_connection.ts";
 * import type { Ed25519Identity } from "../identity/mod.ts";
 * import { libp2pNoise } from "../noise/libp2p_noise.ts";
 * import type { Connection } from "../transport/connection.ts";
 * import type { UpgradeContext } from "../transport/transport.ts";
 *
 * // libp2pUpgrade without the negotiations: Noise XX, then yamux.
 * async function upgrade(
 *   identity: Ed25519Identity,
 *   raw: Connection,
 *   context: UpgradeContext,
 * ): Promise<PeerConnection> {
 *   const secure = await libp2pNoise(identity)(raw, context);
 *   return multiplex(
 *     { secure, channel: secure, remotePeer: secure.remotePeerId, profile: "libp2p" },
 *     context.role,
 *   );
 * }
 * ```
 */
export function multiplex(
  auth: Authenticated,
  role: Role,
  options: MultiplexOptions = {},
): PeerConnection {
  const muxer = Yamux.create(auth.channel, {
    ...options.yamux,
    role,
    metrics: options.metrics,
    logger: options.logger,
  });
  muxer.start();
  return new PeerConnection(auth, muxer, role === "dialer" ? "outbound" : "inbound", options);
}

/**
 * An authenticated, encrypted, multiplexed connection to one peer, for
 * either security profile.
 *
 * @example Dial, open a stream, read the connection's facts
 * ```ts
 * import { libp2pUpgrade } from "./libp2p_upgrade.ts";
 * import { Ed25519Identity } from "../identity/mod.ts";
 * import { Multiaddr } from "../multiaddr.ts";
 * import { andThen, MemoryTransport } from "../transport/mod.ts";
 * import { ECHO_PROTOCOL, handleEcho } from "../../protocols/echo.ts";
 *
 * const listener = await andThen(new MemoryTransport(), libp2pUpgrade(Ed25519Identity.generate()))
 *   .listen(Multiaddr.parse("/memory/0"));
 * (async () => {
 *   for await (const conn of listener) {
 *     for await (const stream of conn) {
 *       conn.acceptStream(stream, [ECHO_PROTOCOL]).then(handleEcho).catch(() => {});
 *     }
 *   }
 * })();
 * const transport = andThen(new MemoryTransport(), libp2pUpgrade(Ed25519Identity.generate()));
 * const conn = await transport.dial(listener.addr);
 * const stream = await conn.openStream([ECHO_PROTOCOL]);
 * await stream.write(new TextEncoder().encode("hi"));
 * await stream.closeWrite();
 * console.log(new TextDecoder().decode((await stream.read())!)); // "hi"
 * console.log(conn.direction, conn.profile, stream.protocol); // "outbound" "libp2p" "/echo/1.0.0"
 * console.log(conn.remoteAddr.peerId === conn.remotePeer.toString()); // true
 * await conn.close();
 * await listener.close();
 * ```
 */
export class PeerConnection implements ConnectionLifecycle, AsyncIterable<YamuxStream> {
  /** Unique in this process: tells a connection from a later one to the same peer. */
  readonly id: number;
  /** The peer, as the handshake authenticated it. */
  readonly remotePeer: PeerId;
  /** Whether we dialed or accepted it. */
  readonly direction: Direction;
  /** How the peer was authenticated. */
  readonly profile: SecurityProfile;
  /** When the connection was established (ms since the epoch). */
  readonly openedAt: number;
  readonly #secure: SecureChannel;
  readonly #muxer: Yamux<Connection>;
  readonly #negotiate: Omit<NegotiateOptions, "signal">;
  readonly #metrics: StreamMetrics;
  #remoteAddr: Multiaddr | undefined;
  /** Why new streams are refused while the connection closes, when it was replaced. */
  #replaced: NetworkError | undefined;

  /** Use {@linkcode multiplex}. */
  constructor(
    auth: Authenticated,
    muxer: Yamux<Connection>,
    direction: Direction,
    options: MultiplexOptions = {},
  ) {
    this.id = nextConnectionId++;
    this.remotePeer = auth.remotePeer;
    this.profile = auth.profile;
    this.direction = direction;
    this.openedAt = Date.now();
    this.#secure = auth.secure;
    this.#muxer = muxer;
    const metrics = options.metrics ?? defaultMetrics;
    this.#negotiate = { ...options.negotiate, metrics };
    this.#metrics = streamMetrics(metrics);
  }

  /** The Noise channel under the muxer. */
  get secure(): SecureChannel {
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
    if (this.#remoteAddr === undefined) {
      const addr = this.#muxer.remoteAddr;
      this.#remoteAddr = addr.peerId === undefined
        ? addr.withPeerId(this.remotePeer.toString())
        : addr;
    }
    return this.#remoteAddr;
  }
  /** Settles when the session and the connection are released. */
  get closed(): Promise<void> {
    return this.#muxer.closed;
  }
  /**
   * Whether the connection takes new streams no more: we are closing, the
   * session ended, or the peer sent GoAway. A peer manager replaces such a
   * connection rather than reusing it.
   */
  get goingAway(): boolean {
    return this.#replaced !== undefined || this.#muxer.state !== "open" ||
      this.#muxer.remoteGoAway !== undefined;
  }
  /** The smoothed round trip of the session's pings in ms, once measured. */
  get rtt(): number | undefined {
    return this.#muxer.rtt;
  }
  /** When the peer last sent anything, in `performance.now()` time. */
  get lastReceived(): number {
    return this.#muxer.lastReceived;
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
    if (this.#replaced !== undefined) throw this.#replaced;
    const stream = await this.#muxer.openStream(options.priority);
    try {
      const negotiate = { ...this.#negotiate, signal: options.signal };
      const negotiated = options.negotiateFully === false && protocols.length === 1
        ? selectProtocolOptimistic(stream, protocols[0], negotiate)
        : await selectProtocol(stream, protocols, negotiate);
      return this.#protocolStream(stream, negotiated.protocol, negotiated.stream);
    } catch (err) {
      stream.abort(err);
      throw err;
    }
  }

  /**
   * Negotiates an inbound stream against the protocols we serve. The
   * agreement leaves with the handler's first answer when that is written
   * in the same turn (the socket corks both).
   *
   * @throws {NetworkError} as `handleProtocol`; the stream is reset
   */
  async acceptStream(
    stream: YamuxStream,
    protocols: readonly string[] | ((protocol: string) => boolean),
    priorityOf?: (protocol: string) => Priority | undefined,
  ): Promise<ProtocolStream> {
    const supports = typeof protocols === "function"
      ? protocols
      : (protocol: string) => protocols.includes(protocol);
    // The priority of the protocol takes effect before our agreement is
    // written, so the agreement and the answers share one lane.
    const accept = priorityOf === undefined ? protocols : (protocol: string) => {
      if (!supports(protocol)) return false;
      const priority = priorityOf(protocol);
      if (priority !== undefined) {
        try {
          stream.priority = priority;
        } catch {
          // an `na` already left in the default lane: stay there
        }
      }
      return true;
    };
    try {
      const negotiated = await handleProtocol(stream, accept, this.#negotiate);
      return this.#protocolStream(stream, negotiated.protocol, negotiated.stream);
    } catch (err) {
      stream.abort(err);
      throw err;
    }
  }

  /** Inbound streams, not yet negotiated (see {@linkcode PeerConnection.acceptStream}). */
  [Symbol.asyncIterator](): AsyncIterator<YamuxStream> {
    return this.#muxer[Symbol.asyncIterator]();
  }

  /** Measures the round trip with a yamux ping, in ms. */
  ping(options: { signal?: AbortSignal } = {}): Promise<number> {
    return this.#muxer.ping(options);
  }

  /** Closes the session (GoAway, streams finish) and the connection. */
  close(): Promise<void> {
    return this.#muxer.close();
  }

  /**
   * Closes the connection because connection `winner` to the same peer
   * replaces it (a simultaneous dial). Its streams fail at once with
   * `CONNECTION_REPLACED` (retriable: open them again on the peer; the peer
   * sees them reset), as do streams opened on it from now on; then the
   * session closes gracefully, so what was already written, such as the
   * last handshake message, still reaches the peer.
   */
  replace(winner: number): Promise<void> {
    this.#replaced ??= new NetworkError(
      "CONNECTION_REPLACED",
      `connection ${this.id} to ${this.remotePeer} was replaced by connection ${winner}`,
    );
    this.#muxer.resetStreams(this.#replaced);
    return this.close();
  }

  /** The `CONNECTION_REPLACED` error, once {@linkcode PeerConnection.replace} was called. */
  get replacedError(): NetworkError | undefined {
    return this.#replaced;
  }

  /** Drops the connection at once. */
  abort(reason?: unknown): void {
    this.#muxer.abort(reason);
  }

  /**
   * Counts a negotiated stream and, once it is released, its bytes: once per
   * stream, from the stream's own counters, so the data path carries no
   * metrics work.
   */
  #protocolStream(stream: YamuxStream, protocol: string, negotiated: Connection): ProtocolStream {
    stream.protocol = protocol;
    const direction = stream.direction;
    const series = seriesOf(this.#metrics, protocol, direction);
    series.total.inc();
    series.open.inc();
    stream.closed.then(() => {
      series.open.dec();
      const { bytesReceived, bytesSent } = stream.stats();
      series.bytesIn.inc(bytesReceived);
      series.bytesOut.inc(bytesSent);
    });
    return new NegotiatedStream(stream, protocol, negotiated);
  }
}

/** A negotiated substream: bytes through what negotiation returned, lifecycle of the substream. */
class NegotiatedStream extends ForwardingConnection implements ProtocolStream {
  readonly protocol: string;
  readonly stream: YamuxStream;

  constructor(stream: YamuxStream, protocol: string, io: Connection) {
    super(io);
    this.stream = stream;
    this.protocol = protocol;
  }

  override get localAddr(): Multiaddr {
    return this.stream.localAddr;
  }
  override get remoteAddr(): Multiaddr {
    return this.stream.remoteAddr;
  }
  override get closed(): Promise<void> {
    return this.stream.closed;
  }
  override close(): Promise<void> {
    return this.stream.close();
  }
  override abort(reason?: unknown): void {
    this.stream.abort(reason);
  }
}
