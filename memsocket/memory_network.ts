/**
 * An in-memory network of `/memory/N` listeners, with the faults tests need:
 * latency, cut connections, partitions. A leaf of the project: it knows
 * nothing of the stack above it (`netcore/transport/memory_transport.ts`
 * makes it a transport).
 *
 * @module
 */

import { MemorySocket } from "./memory_socket.ts";

/** Listener ports count up from 1; dialer ends get ports from 2^32 up. */
const DIALER_PORT_BASE = 2 ** 32;

/**
 * A memory address: `/memory/<port>` text, anything whose `toString()` is
 * that (a `Multiaddr`), or the port number.
 *
 * @example
 * ```ts
 * import { type MemoryAddress, MemoryNetwork } from "./memory_network.ts";
 * const addr: MemoryAddress = "/memory/7"; // or 7, or Multiaddr.parse("/memory/7")
 * const listener = new MemoryNetwork().listen(addr);
 * console.log(listener.port); // 7
 * listener.close();
 * ```
 */
export type MemoryAddress = string | number | { toString(): string };

/**
 * How a partitioned address behaves: `"refuse"` answers dials at once with
 * a refusal (a closed port); `"drop"` lets dials hang until they give up
 * and stalls the address's open connections without resetting them (a
 * black hole, like a cable pulled out).
 *
 * @example
 * ```ts
 * import { MemoryNetwork, type PartitionMode } from "./memory_network.ts";
 * const network = new MemoryNetwork();
 * const listener = network.listen("/memory/0");
 * const mode: PartitionMode = "drop";
 * network.partition(listener.addr, mode);
 * network.heal(listener.addr);
 * listener.close();
 * ```
 */
export type PartitionMode = "refuse" | "drop";

/**
 * Options for {@linkcode MemoryNetwork.connect}.
 *
 * @example
 * ```ts
 * import type { MemoryConnectOptions } from "./memory_network.ts";
 * const options: MemoryConnectOptions = { signal: AbortSignal.timeout(1_000), bufferSize: 4_096 };
 * ```
 */
export interface MemoryConnectOptions {
  /** Cancels a dial that hangs in a `"drop"` partition. */
  signal?: AbortSignal;
  /** Bytes each direction buffers before a write waits. Default 262_144. */
  bufferSize?: number;
}

/**
 * Options for {@linkcode MemoryNetwork.listen}.
 *
 * @example
 * ```ts
 * import { MemoryNetwork, type MemoryListenOptions } from "./memory_network.ts";
 * const options: MemoryListenOptions = { backlog: 1 };
 * const listener = new MemoryNetwork().listen("/memory/0", options);
 * listener.close();
 * ```
 */
export interface MemoryListenOptions {
  /** Connections queued and not yet accepted before dials are refused, like a TCP backlog. Default 1024. */
  backlog?: number;
}

function portOf(addr: MemoryAddress): number {
  if (typeof addr === "number") return addr;
  const text = addr.toString();
  const match = /^\/memory\/(\d{1,16})(?:\/p2p\/[^/]+)?$/.exec(text);
  if (match === null) throw new TypeError(`not a memory address: ${text}`);
  return Number(match[1]);
}

/**
 * A listening `/memory/N` port: accepted sockets, in order.
 *
 * @example
 * ```ts
 * import { MemoryNetwork } from "./memory_network.ts";
 * const network = new MemoryNetwork();
 * const listener = network.listen("/memory/0");
 * console.log(listener.addr.startsWith("/memory/")); // true
 * listener.close();
 * ```
 */
export class MemoryListener implements AsyncIterable<MemorySocket> {
  /** The bound address, `/memory/<port>`. */
  readonly addr: string;
  /** The bound port. */
  readonly port: number;
  readonly #network: MemoryNetwork;
  readonly #backlog: number;
  readonly #queue: MemorySocket[] = [];
  #waiter: PromiseWithResolvers<void> | undefined;
  #closed = false;

  /** Made by {@linkcode MemoryNetwork.listen}. */
  constructor(network: MemoryNetwork, port: number, backlog: number) {
    this.#network = network;
    this.port = port;
    this.addr = `/memory/${port}`;
    this.#backlog = backlog;
  }

  /** Queues a dialed socket; false when closed or the backlog is full (the dial is refused). */
  offer(socket: MemorySocket): boolean {
    if (this.#closed || this.#queue.length >= this.#backlog) return false;
    this.#queue.push(socket);
    const waiter = this.#waiter;
    this.#waiter = undefined;
    waiter?.resolve();
    return true;
  }

  /** The next accepted socket; `null` once the listener is closed. */
  async accept(): Promise<MemorySocket | null> {
    while (true) {
      const socket = this.#queue.shift();
      if (socket !== undefined) return socket;
      if (this.#closed) return null;
      this.#waiter ??= Promise.withResolvers();
      await this.#waiter.promise;
    }
  }

  /** Accepted sockets until the listener is closed. */
  async *[Symbol.asyncIterator](): AsyncIterator<MemorySocket> {
    while (true) {
      const socket = await this.accept();
      if (socket === null) return;
      yield socket;
    }
  }

  /** Stops listening; sockets queued and never accepted are reset, as TCP does. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#network.unbind(this);
    for (const socket of this.#queue.splice(0)) socket.reset();
    const waiter = this.#waiter;
    this.#waiter = undefined;
    waiter?.resolve();
  }
}

/**
 * A set of in-memory listeners that dialers reach by `/memory/N` address.
 * Each network is independent; {@linkcode MemoryNetwork.default} serves
 * callers that do not pick one.
 *
 * @example Inject faults
 * ```ts
 * import { MemoryNetwork } from "./memory_network.ts";
 * const network = new MemoryNetwork();
 * const listener = network.listen("/memory/0");
 * network.setLatency(5); // every piece written now takes 5 ms
 * network.partition(listener.addr); // dials are refused
 * network.heal(listener.addr);
 * listener.close();
 * ```
 */
export class MemoryNetwork {
  /** The network of callers that name none. */
  static readonly default: MemoryNetwork = new MemoryNetwork();

  readonly #listeners = new Map<number, MemoryListener>();
  readonly #partitions = new Map<number, PartitionMode>();
  readonly #latencies = new Map<number, number>();
  /** Open connections by listener port (both ends). */
  readonly #sockets = new Map<number, Set<MemorySocket>>();
  #latency = 0;
  #nextPort = 1;
  #nextDialerPort = 1;

  /**
   * Binds `addr` (`/memory/0` picks a free port).
   *
   * @throws {Deno.errors.AddrInUse} when the port is taken
   */
  listen(addr: MemoryAddress, options: MemoryListenOptions = {}): MemoryListener {
    let port = portOf(addr);
    if (port === 0) {
      while (this.#listeners.has(this.#nextPort)) this.#nextPort++;
      port = this.#nextPort++;
    } else if (this.#listeners.has(port)) {
      throw new Deno.errors.AddrInUse(`/memory/${port} is already bound`);
    }
    const listener = new MemoryListener(this, port, options.backlog ?? 1024);
    this.#listeners.set(port, listener);
    return listener;
  }

  /** Forgets `listener`'s port. Called by {@linkcode MemoryListener.close}. */
  unbind(listener: MemoryListener): void {
    if (this.#listeners.get(listener.port) === listener) this.#listeners.delete(listener.port);
  }

  /**
   * Connects to the listener at `addr`.
   *
   * @throws {Deno.errors.ConnectionRefused} when nothing listens there, its
   *   backlog is full, or it is partitioned with `"refuse"`; the signal's
   *   reason when it fires first
   */
  async connect(addr: MemoryAddress, options: MemoryConnectOptions = {}): Promise<MemorySocket> {
    const port = portOf(addr);
    const { signal } = options;
    if (this.#partitions.get(port) === "drop") {
      // Like SYNs into a black hole: nothing happens until the dialer gives up.
      await new Promise<never>((_, reject) => {
        if (signal === undefined) return;
        if (signal.aborted) reject(signal.reason);
        signal.addEventListener("abort", () => reject(signal.reason), { once: true });
      });
    }
    if (signal?.aborted) throw signal.reason;
    if (this.#partitions.get(port) === "refuse") {
      throw new Deno.errors.ConnectionRefused(`/memory/${port} is partitioned away`);
    }
    const listener = this.#listeners.get(port);
    if (listener === undefined) {
      throw new Deno.errors.ConnectionRefused(`nothing listens on /memory/${port}`);
    }
    const [dialer, accepted] = MemorySocket.pair(
      `/memory/${DIALER_PORT_BASE + this.#nextDialerPort++}`,
      `/memory/${port}`,
      options.bufferSize ?? 262_144,
      () => this.#latency + (this.#latencies.get(port) ?? 0),
    );
    if (!listener.offer(accepted)) {
      throw new Deno.errors.ConnectionRefused(`/memory/${port} refused the connection`);
    }
    this.#track(port, dialer);
    this.#track(port, accepted);
    return dialer;
  }

  #track(port: number, socket: MemorySocket): void {
    let set = this.#sockets.get(port);
    if (set === undefined) this.#sockets.set(port, set = new Set());
    set.add(socket);
    socket.closed.then(() => {
      set.delete(socket);
      if (set.size === 0 && this.#sockets.get(port) === set) this.#sockets.delete(port);
    });
  }

  /**
   * Adds `ms` of latency to every piece written from now on: on every
   * connection (no address), or on the connections of the listener at `addr`.
   */
  setLatency(ms: number, addr?: MemoryAddress): void {
    if (addr === undefined) {
      this.#latency = ms;
      return;
    }
    const port = portOf(addr);
    if (ms === 0) this.#latencies.delete(port);
    else this.#latencies.set(port, ms);
  }

  /** Cuts `target` (one socket's connection, or every connection of the listener at an address): both ends see a reset. */
  cut(target: MemorySocket | MemoryAddress): void {
    if (target instanceof MemorySocket) {
      target.cut();
      return;
    }
    for (const socket of [...this.#sockets.get(portOf(target)) ?? []]) socket.cut();
  }

  /** Partitions the listener at `addr` away (see {@linkcode PartitionMode}) until {@linkcode MemoryNetwork.heal}. */
  partition(addr: MemoryAddress, mode: PartitionMode = "refuse"): void {
    const port = portOf(addr);
    this.#partitions.set(port, mode);
    if (mode === "drop") { for (const socket of this.#sockets.get(port) ?? []) socket.hold(true); }
  }

  /** Ends the partition of `addr`: stalled connections deliver again. */
  heal(addr: MemoryAddress): void {
    const port = portOf(addr);
    this.#partitions.delete(port);
    for (const socket of this.#sockets.get(port) ?? []) socket.hold(false);
  }
}
