/**
 * An in-memory transport for tests and simulations: a
 * {@linkcode MemoryNetwork} of `/memory/N` listeners with fault hooks
 * (latency, cut connections, partitions), a {@linkcode MemoryTransport} over
 * it, and {@linkcode MemoryConnection}s with TCP-like semantics and bounded
 * buffers.
 *
 * @example
 * ```ts
 * import { MemoryNetwork, MemoryTransport } from "./mod.ts";
 * import { Multiaddr } from "../netcore/multiaddr.ts";
 *
 * const network = new MemoryNetwork();
 * const transport = new MemoryTransport({ network });
 * const listener = await transport.listen(Multiaddr.parse("/memory/0"));
 * network.setLatency(5); // every chunk now takes 5 ms
 * await listener.close();
 * ```
 *
 * @module
 */

export * from "./memory_connection.ts";
export * from "./memory_network.ts";
export * from "./memory_transport.ts";
