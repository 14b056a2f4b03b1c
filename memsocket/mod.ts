/**
 * An in-memory network for tests and simulations: `/memory/N` listeners,
 * sockets shaped like Deno's TCP connections with bounded buffers (real
 * backpressure), and fault hooks (latency, cut connections, partitions).
 *
 * A leaf: it imports nothing from the stack. `MemoryTransport` in
 * `netcore/transport/` makes a {@linkcode MemoryNetwork} a transport, so
 * every layer above runs over it exactly as over TCP.
 *
 * @example
 * ```ts
 * import { MemoryNetwork } from "./mod.ts";
 * const network = new MemoryNetwork();
 * const listener = network.listen("/memory/0");
 * network.setLatency(5); // every piece written now takes 5 ms
 * listener.close();
 * ```
 *
 * @module
 */

export * from "./memory_network.ts";
export * from "./memory_socket.ts";
