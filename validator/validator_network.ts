/**
 * `ValidatorNetwork`: what a validator builds from its config to reach the
 * other validators (Libra's `validator_network`). It puts the layers
 * together: the validator profile's upgrade (Noise IK against the validator
 * set, yamux), the peer manager, the connectivity manager (a connection to
 * every validator, backoff), the health checker, discovery of addresses,
 * and protocols over DirectSend and RPC, each a typed handle
 * ({@linkcode ValidatorNetwork.register}; `consensus` and `mempool` are two
 * of them with protobuf messages).
 *
 * @module
 */

import type { MemoryNetwork } from "../memsocket/mod.ts";
import { PeerId } from "../netcore/identity/peer_id.ts";
import { type Logger, rootLogger } from "../netcore/log.ts";
import { type Metrics, MetricsRegistry } from "../netcore/metrics.ts";
import { Multiaddr } from "../netcore/multiaddr.ts";
import { NetworkError } from "../netcore/network_error.ts";
import { TrustedPeerSet } from "../netcore/noise/trusted_peers.ts";
import { ConnectivityManager, type EligiblePeer } from "../netcore/peer/connectivity_manager.ts";
import { Discovery } from "../netcore/peer/discovery.ts";
import { HealthChecker } from "../netcore/peer/health_checker.ts";
import { PeerManager } from "../netcore/peer/peer_manager.ts";
import type { PeerEventStream } from "../netcore/peer/peer_events.ts";
import { MemoryTransport } from "../netcore/transport/memory_transport.ts";
import { TcpTransport } from "../netcore/transport/tcp_transport.ts";
import type { Direction } from "../netcore/upgrade/peer_connection.ts";
import { libp2pUpgrade } from "../netcore/upgrade/libp2p_upgrade.ts";
import { validatorUpgrade } from "../netcore/upgrade/validator_upgrade.ts";
import { DirectSend } from "../protocols/direct_send.ts";
import { Rpc } from "../protocols/rpc.ts";
import {
  type NetworkLimits,
  type NetworkTimeouts,
  type ParsedValidator,
  parseValidatorSet,
  resolveLimits,
  resolveTimeouts,
} from "./config.ts";
import { configError } from "./_config_error.ts";
import { ConsensusHandle } from "./consensus.ts";
import { MempoolHandle } from "./mempool.ts";
import { PingHandle } from "./ping.ts";
import {
  DirectSendHandle,
  type HandleContext,
  type PeerLike,
  type ProtocolOptions,
  RpcHandle,
} from "./protocol_handle.ts";
import type { ValidatorInfo, ValidatorKeys } from "./validator_keys.ts";

/**
 * Options for {@linkcode ValidatorNetwork}. Everything but `keys`,
 * `networkId` and `validators` has a default.
 *
 * @example
 * ```ts ignore
 * const options: ValidatorNetworkOptions = {
 *   keys,
 *   networkId: "testnet",
 *   listen: ["/ip4/0.0.0.0/tcp/7000"],
 *   validators: [me, ...others],
 *   timeouts: { rpc: 2_000 },
 * };
 * ```
 */
export interface ValidatorNetworkOptions {
  /** Our keys. */
  keys: ValidatorKeys;
  /** The network's name: handshakes bind it, metrics carry it as the `network` label. */
  networkId: string;
  /** Where to listen (multiaddrs). Default: nowhere (dial only). */
  listen?: readonly (string | Multiaddr)[];
  /** The validator set (our own entry may be in it). */
  validators: readonly ValidatorInfo[];
  /**
   * More addresses of validators, each ending in the validator's `/p2p/`
   * id: tried with the set's own. Default: none.
   */
  seeds?: readonly string[];
  /**
   * `validator` (default): Noise IK, only the validator set connects.
   * `libp2p`: Noise XX as libp2p speaks it, for public peers (anyone
   * connects, bounded by `limits.maxUnknownInbound`).
   */
  profile?: "validator" | "libp2p";
  /** The memory network of `/memory/...` addresses. Default: the process's default one. */
  memory?: MemoryNetwork;
  /** Limits (defaults in `LIMIT_DEFAULTS`). */
  limits?: NetworkLimits;
  /** Timeouts and intervals, in ms (defaults in `TIMEOUT_DEFAULTS`). */
  timeouts?: NetworkTimeouts;
  /** Where metrics go (each with `network` = `networkId`). Default: a registry of its own. */
  metrics?: MetricsRegistry;
  /** The logger (lines carry `network` and our peer id). Default `rootLogger`. */
  logger?: Logger;
}

/**
 * A connected peer, as {@linkcode ValidatorNetwork.peers} lists it.
 *
 * @example
 * ```ts ignore
 * for (const p of net.peers()) console.log(p.peerId.toString(), p.direction, p.rtt);
 * ```
 */
export interface ConnectedPeer {
  /** The peer. */
  readonly peerId: PeerId;
  /** Whether we dialed it. */
  readonly direction: Direction;
  /** The address of the connection, then the other addresses known for it. */
  readonly addrs: readonly Multiaddr[];
  /** The smoothed round trip, ms, once measured. */
  readonly rtt: number | undefined;
  /** When the connection was established, ms since the epoch. */
  readonly connectedAt: number;
  /** Whether the peer is in the current validator set. */
  readonly validator: boolean;
}

type State = "new" | "starting" | "running" | "stopped";

/**
 * The network of one validator.
 *
 * @example
 * ```ts
 * import { MemoryNetwork, ValidatorKeys, ValidatorNetwork } from "../mod.ts";
 * const memory = new MemoryNetwork();
 * const [a, b] = [ValidatorKeys.generate(), ValidatorKeys.generate()];
 * const validators = [a.info(["/memory/1"]), b.info(["/memory/2"])];
 * const options = { networkId: "example", validators, memory };
 * await using na = new ValidatorNetwork({ ...options, keys: a, listen: ["/memory/1"] });
 * await using nb = new ValidatorNetwork({ ...options, keys: b, listen: ["/memory/2"] });
 * const echo = nb.register("/app/echo/1.0.0", { kind: "rpc" });
 * (async () => {
 *   for await (const ev of echo.events) if (ev.type === "request") await ev.respond(ev.request);
 * })();
 * const client = na.register("/app/echo/1.0.0", { kind: "rpc" });
 * await na.start();
 * await nb.start();
 * await na.connected(b.peerId);
 * const reply = await client.request(b.peerId, new Uint8Array([7]));
 * console.log(reply[0]); // 7
 * ```
 */
export class ValidatorNetwork {
  /** The network id. */
  readonly networkId: string;
  /** The metrics registry (render it for `/metrics`). */
  readonly metrics: MetricsRegistry;
  readonly #keys: ValidatorKeys;
  readonly #listen: Multiaddr[];
  readonly #profile: "validator" | "libp2p";
  readonly #limits: Required<NetworkLimits>;
  readonly #timeouts: Required<NetworkTimeouts>;
  readonly #scope: Metrics;
  readonly #log: Logger;
  readonly #trusted = new TrustedPeerSet();
  readonly #manager: PeerManager;
  readonly #connectivity: ConnectivityManager;
  readonly #discovery: Discovery;
  readonly #health: HealthChecker;
  readonly #seeds: Map<string, Multiaddr[]>;
  readonly #protocols = new Map<string, DirectSend | Rpc>();
  readonly #context: HandleContext;
  #validators = new Map<string, ParsedValidator>();
  #consensus: ConsensusHandle | undefined;
  #mempool: MempoolHandle | undefined;
  readonly #ping: PingHandle;
  #state: State = "new";
  #stopping: Promise<void> | undefined;

  /**
   * A network that does nothing until {@linkcode ValidatorNetwork.start}.
   *
   * @throws {NetworkError} `BAD_CONFIG` naming the option that is wrong
   */
  constructor(options: ValidatorNetworkOptions) {
    if (typeof options !== "object" || options === null) {
      throw new NetworkError("BAD_CONFIG", "options: expected an object");
    }
    if (typeof options.networkId !== "string" || options.networkId.length === 0) {
      throw new NetworkError("BAD_CONFIG", "networkId: expected a non-empty string");
    }
    if (options.keys === undefined || typeof options.keys.info !== "function") {
      throw new NetworkError("BAD_CONFIG", "keys: expected ValidatorKeys");
    }
    this.networkId = options.networkId;
    this.#keys = options.keys;
    this.#profile = options.profile ?? "validator";
    if (this.#profile !== "validator" && this.#profile !== "libp2p") {
      throw new NetworkError("BAD_CONFIG", `profile: expected "validator" or "libp2p"`);
    }
    this.#listen = (options.listen ?? []).map((a, i) => {
      try {
        return typeof a === "string" ? Multiaddr.parse(a) : a;
      } catch (err) {
        throw configError(err, `listen[${i}]`);
      }
    });
    this.#limits = resolveLimits(options.limits);
    this.#timeouts = resolveTimeouts(options.timeouts);
    this.#validators = parseValidatorSet(options.validators, this.#keys, "validators");
    this.#seeds = parseSeeds(options.seeds ?? [], this.#validators);

    this.metrics = options.metrics ?? new MetricsRegistry();
    this.#scope = this.metrics.scope({ network: this.networkId });
    // Every component's lines carry the network; they add our peer id as `self`.
    const logger = (options.logger ?? rootLogger).child({ network: this.networkId });
    this.#log = logger.child({ self: this.#keys.peerId.toString() });
    const metrics = this.#scope;
    const limits = this.#limits;
    const timeouts = this.#timeouts;
    const yamux = { maxInboundStreams: limits.maxStreamsPerConnection };
    const upgrade = this.#profile === "validator"
      ? validatorUpgrade(this.#keys.noise, {
        noise: { trustedPeers: this.#trusted, networkId: this.networkId },
        yamux,
        metrics,
        logger,
      })
      : libp2pUpgrade(this.#keys.identity, { yamux, metrics, logger });
    this.#manager = new PeerManager({
      identity: this.#keys.identity,
      upgrade,
      transports: [new TcpTransport(), new MemoryTransport({ network: options.memory })],
      isTrusted: (peer) => this.#validators.has(peer.toString()),
      maxUnknownInbound: limits.maxUnknownInbound,
      inbound: {
        maxPending: limits.maxPendingInbound,
        maxPendingPerAddress: limits.maxPendingPerAddress,
        newConnectionsPerSecond: limits.newConnectionsPerSecond,
        newConnectionsBurst: limits.newConnectionsBurst,
        firstMessageTimeout: timeouts.firstMessage,
      },
      upgradeTimeout: timeouts.handshake,
      metrics,
      logger,
    });
    this.#connectivity = new ConnectivityManager({
      manager: this.#manager,
      trustedPeers: this.#profile === "validator" ? this.#trusted : undefined,
      backoff: { initial: timeouts.backoffInitial, max: timeouts.backoffMax },
      dialGrace: timeouts.dialGrace,
      maxConcurrentDials: limits.maxConcurrentDials,
      metrics,
      logger,
    });
    this.#discovery = new Discovery({
      manager: this.#manager,
      identity: this.#keys.identity,
      isEligible: (peer) => this.#validators.has(peer.toString()),
      onAddresses: (peer, addrs) => this.#connectivity.addAddresses(peer, addrs),
      refreshInterval: timeouts.discoveryRefresh,
      metrics,
      logger,
    });
    this.#health = new HealthChecker({
      manager: this.#manager,
      interval: timeouts.healthInterval,
      timeout: timeouts.healthTimeout,
      failures: limits.healthFailures,
      metrics,
      logger,
    });
    this.#context = {
      peerId: (peer) => toPeerId(peer),
      connectedValidators: () =>
        this.#manager.peers().map((p) => p.peerId).filter((p) =>
          this.#validators.has(p.toString())
        ),
      subscribe: () => this.#manager.subscribe(),
    };
    this.#ping = new PingHandle(this);
    void this.#ping.serve();
  }

  /** Our peer id. */
  get peerId(): PeerId {
    return this.#keys.peerId;
  }

  /** The addresses we listen on (after `start`), each ending in our `/p2p/` id. */
  get listenAddrs(): Multiaddr[] {
    return this.#manager.listenAddrs;
  }

  /** The security profile. */
  get profile(): "validator" | "libp2p" {
    return this.#profile;
  }

  /** The limits in force. */
  get limits(): Readonly<Required<NetworkLimits>> {
    return this.#limits;
  }

  /** The timeouts in force. */
  get timeouts(): Readonly<Required<NetworkTimeouts>> {
    return this.#timeouts;
  }

  /** The peer manager under the network (for what the handles do not cover). */
  get manager(): PeerManager {
    return this.#manager;
  }

  /**
   * Listens, then connects to the validator set and keeps connected.
   *
   * @throws {NetworkError} `ADDRESS_IN_USE`, `BAD_ADDRESS`; `CONNECTION_CLOSED` once stopped
   */
  async start(): Promise<void> {
    if (this.#state !== "new") {
      if (this.#state === "stopped") {
        throw new NetworkError("CONNECTION_CLOSED", "the network was stopped");
      }
      return;
    }
    this.#state = "starting";
    try {
      for (const addr of this.#listen) await this.#manager.listen(addr);
    } catch (err) {
      await this.stop();
      throw err;
    }
    this.#state = "running";
    this.#health.start();
    this.#connectivity.start();
    this.#discovery.start();
    this.#connectivity.setEligible(this.#eligible());
    this.#log.info("network started", {
      listen: this.listenAddrs.map((a) => a.toString()),
      validators: this.#validators.size,
      profile: this.#profile,
    });
  }

  /**
   * Registers a protocol: its handle sends and its events receive. Register
   * before `start` so the protocol is served from the first connection.
   *
   * @throws {NetworkError} `BAD_CONFIG` for a protocol already registered or bad options
   */
  /** A DirectSend protocol: its handle. */
  register(protocol: string, options: ProtocolOptions & { kind: "direct-send" }): DirectSendHandle;
  /** An RPC protocol: its handle. */
  register(protocol: string, options: ProtocolOptions & { kind: "rpc" }): RpcHandle;
  /** A protocol of either kind: its handle. */
  register(protocol: string, options: ProtocolOptions): DirectSendHandle | RpcHandle;
  register(protocol: string, options: ProtocolOptions): DirectSendHandle | RpcHandle {
    if (this.#state === "stopped") {
      throw new NetworkError("CONNECTION_CLOSED", "the network was stopped");
    }
    if (typeof protocol !== "string" || !protocol.startsWith("/")) {
      throw new NetworkError("BAD_CONFIG", `protocol: expected an id starting with "/"`);
    }
    if (this.#protocols.has(protocol)) {
      throw new NetworkError("BAD_CONFIG", `protocol: ${protocol} is already registered`);
    }
    const priority = options.priority ?? "normal";
    if (!["control", "high", "normal", "low"].includes(priority)) {
      throw new NetworkError("BAD_CONFIG", `priority: expected high, normal or low`);
    }
    const maxMessageSize = options.maxMessageSize ?? this.#limits.maxMessageSize;
    if (!Number.isSafeInteger(maxMessageSize) || maxMessageSize < 1) {
      throw new NetworkError("BAD_CONFIG", "maxMessageSize: expected a positive integer");
    }
    const common = {
      manager: this.#manager,
      protocol,
      priority,
      metrics: this.#scope,
      logger: this.#log,
    };
    if (options.kind === "direct-send") {
      const ds = new DirectSend({
        ...common,
        maxMessageSize,
        outboundQueue: this.#limits.outboundQueue,
        outboundBytes: this.#limits.outboundBytes,
        inboundQueue: this.#limits.inboundQueue,
      });
      ds.start();
      this.#protocols.set(protocol, ds);
      return new DirectSendHandle(ds, this.#context);
    }
    if (options.kind === "rpc") {
      const rpc = new Rpc({
        ...common,
        timeout: options.timeout ?? this.#timeouts.rpc,
        maxRequestSize: maxMessageSize,
        maxResponseSize: maxMessageSize,
        maxConcurrentOutbound: this.#limits.maxConcurrentRpcs,
        maxConcurrentInbound: this.#limits.maxConcurrentRpcs,
      });
      rpc.start();
      this.#protocols.set(protocol, rpc);
      return new RpcHandle(rpc, this.#context);
    }
    throw new NetworkError("BAD_CONFIG", `kind: expected "direct-send" or "rpc"`);
  }

  /** Consensus: proposals and votes by DirectSend, blocks by RPC, all high priority. */
  get consensus(): ConsensusHandle {
    this.#consensus ??= new ConsensusHandle(this, this.#scope, this.#log);
    return this.#consensus;
  }

  /** Mempool: transaction batches by RPC, acknowledged, normal priority. */
  get mempool(): MempoolHandle {
    this.#mempool ??= new MempoolHandle(this, this.#scope, this.#log);
    return this.#mempool;
  }

  /**
   * The round trip to `peer` through the RPC path (a stream, a handler),
   * in ms.
   *
   * @throws {NetworkError} as `RpcHandle.request`
   */
  ping(peer: PeerLike, options: { timeout?: number; signal?: AbortSignal } = {}): Promise<number> {
    return this.#ping.ping(peer, options);
  }

  /** The connected peers. */
  peers(): ConnectedPeer[] {
    return this.#manager.peers().map((p) => {
      const known = this.#connectivity.addresses(p.peerId);
      const addr = p.addr.withoutPeerId();
      return {
        peerId: p.peerId,
        direction: p.direction,
        addrs: [addr, ...known.filter((a) => a.toString() !== addr.toString())],
        rtt: p.rtt,
        connectedAt: p.connectedAt,
        validator: this.#validators.has(p.peerId.toString()),
      };
    });
  }

  /** Whether `peer` is connected. */
  isConnected(peer: PeerLike): boolean {
    return this.#manager.isConnected(toPeerId(peer));
  }

  /** The current validator set's peer ids (ours included when it is in it). */
  get validators(): PeerId[] {
    return [...this.#validators.values()].map((v) => v.peerId);
  }

  /**
   * Resolves once `peer` is connected (at once when it is).
   *
   * @throws {NetworkError} `TIMEOUT` after `options.timeout` (default 10_000 ms); `ABORTED`
   */
  async connected(
    peer: PeerLike,
    options: { timeout?: number; signal?: AbortSignal } = {},
  ): Promise<void> {
    const id = toPeerId(peer);
    const events = this.#manager.subscribe();
    const deadline = AbortSignal.timeout(options.timeout ?? 10_000);
    const signal = options.signal ? AbortSignal.any([options.signal, deadline]) : deadline;
    const onAbort = () => events.close();
    signal.addEventListener("abort", onAbort);
    try {
      if (this.#manager.isConnected(id)) return;
      for await (const ev of events) {
        if (ev.type === "new-peer" && ev.peer.peerId.equals(id)) return;
      }
      if (options.signal?.aborted) throw new NetworkError("ABORTED", "waiting for a peer");
      throw new NetworkError("TIMEOUT", `${id} did not connect in time`);
    } finally {
      signal.removeEventListener("abort", onAbort);
      events.close();
    }
  }

  /**
   * Replaces the validator set (an epoch change): trust follows at once,
   * validators that left are disconnected (their later dials are refused
   * `UNAUTHORIZED` in the validator profile), new ones are dialed.
   *
   * @throws {NetworkError} `BAD_CONFIG` for an invalid set (nothing changes then)
   */
  async updateValidatorSet(validators: readonly ValidatorInfo[]): Promise<void> {
    const next = parseValidatorSet(validators, this.#keys, "validators");
    const removed = [...this.#validators.values()].filter((v) => !next.has(v.peerId.toString()));
    this.#validators = next;
    if (this.#state !== "running") return;
    this.#connectivity.setEligible(this.#eligible());
    // The connectivity manager disconnects those that left; wait for it.
    await Promise.all(removed.map((v) => this.#manager.disconnect(v.peerId, "stale")));
    this.#log.info("validator set updated", {
      validators: next.size,
      removed: removed.map((v) => v.peerId.toString()),
    });
  }

  /**
   * Stops gracefully: protocols stop (queued messages fail with
   * `CONNECTION_CLOSED`), dials stop, connections close. Idempotent.
   */
  stop(): Promise<void> {
    this.#stopping ??= this.#stop();
    return this.#stopping;
  }

  async #stop(): Promise<void> {
    this.#state = "stopped";
    await Promise.allSettled([...this.#protocols.values()].map((p) => p.close()));
    await Promise.allSettled([
      this.#discovery.close(),
      this.#connectivity.close(),
      this.#health.close(),
    ]);
    await this.#manager.close();
    this.#log.info("network stopped");
  }

  /** `await using net = new ValidatorNetwork(...)` stops it at the end of the scope. */
  [Symbol.asyncDispose](): Promise<void> {
    return this.stop();
  }

  /** A new subscription to peer events (bounded; close it when done). */
  subscribe(): PeerEventStream {
    return this.#manager.subscribe();
  }

  #eligible(): EligiblePeer[] {
    return [...this.#validators.values()].map((v) => ({
      peerId: v.peerId,
      noiseKey: v.noiseKey,
      addrs: [...v.addrs, ...(this.#seeds.get(v.peerId.toString()) ?? [])],
    }));
  }
}

/** The peer id of a `PeerLike`. */
function toPeerId(peer: PeerLike): PeerId {
  if (peer instanceof PeerId) return peer;
  try {
    return PeerId.parse(peer);
  } catch (err) {
    throw NetworkError.wrap(err, "BAD_ADDRESS", "peer id");
  }
}

/** Seeds by the validator they belong to. */
function parseSeeds(
  seeds: readonly string[],
  validators: Map<string, ParsedValidator>,
): Map<string, Multiaddr[]> {
  if (!Array.isArray(seeds)) throw new NetworkError("BAD_CONFIG", "seeds: expected an array");
  const out = new Map<string, Multiaddr[]>();
  seeds.forEach((text, i) => {
    let addr: Multiaddr;
    try {
      addr = Multiaddr.parse(text);
    } catch (err) {
      throw configError(err, `seeds[${i}]`);
    }
    const id = addr.peerId;
    if (id === undefined) {
      throw new NetworkError("BAD_CONFIG", `seeds[${i}]: must end in the validator's /p2p/ id`);
    }
    if (!validators.has(id)) {
      throw new NetworkError("BAD_CONFIG", `seeds[${i}]: ${id} is not in the validator set`);
    }
    out.set(id, [...(out.get(id) ?? []), addr.withoutPeerId()]);
  });
  return out;
}
