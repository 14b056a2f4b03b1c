/**
 * A peer-to-peer network stack for blockchain validators, for Deno.
 *
 * It keeps authenticated, encrypted connections between nodes, keeps track of
 * peers, and gives consensus and mempool a small typed API to reach other
 * validators. The wire speaks libp2p where libp2p has a spec
 * (multistream-select 1.0, yamux, libp2p-noise XX, ping, perf), so nodes
 * interoperate with js-libp2p; validators add Noise IK with mutual
 * authentication against the validator set.
 *
 * Layers, lowest first, all re-exported here:
 * - `netcore/`: `NetworkError`, multiaddrs, the `Transport` API (TCP,
 *   combinators `andThen`, `withTimeout`, `choice`), identities and peer ids,
 *   the Noise framework with the libp2p XX and validator IK profiles,
 *   multistream-select, yamux, the libp2p upgrade pipeline and `Libp2pNode`;
 * - `memsocket/`: the in-memory transport with fault injection, for tests;
 * - `protocols/`: ping, perf, echo.
 *
 * @example
 * ```ts ignore
 * import { handlePing, Libp2pNode, Multiaddr, PING_PROTOCOL, Pinger } from "./mod.ts";
 * const server = await Libp2pNode.create({ listen: [Multiaddr.parse("/ip4/127.0.0.1/tcp/0")] });
 * server.handle(PING_PROTOCOL, (stream) => handlePing(stream));
 * const client = await Libp2pNode.create();
 * const pinger = new Pinger(await client.newStream(server.listenAddrs[0], [PING_PROTOCOL]));
 * console.log(`${await pinger.ping()} ms`);
 * ```
 *
 * @module
 */

export * from "./netcore/mod.ts";
export * from "./memsocket/mod.ts";
export * from "./protocols/mod.ts";
