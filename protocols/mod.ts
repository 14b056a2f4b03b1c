/**
 * Protocols that run on negotiated streams: ping (`/ipfs/ping/1.0.0`), perf
 * (`/perf/1.0.0`) and echo (`/echo/1.0.0`).
 *
 * @module
 */

export * from "./ping.ts";
export * from "./perf.ts";
export * from "./echo.ts";

// Types of other modules that the API above refers to.
export type {
  ByteSink,
  ByteSource,
  Connection,
  ConnectionLifecycle,
} from "../netcore/transport/connection.ts";
export type {
  Multiaddr,
  MultiaddrComponent,
  MultiaddrProtocol,
  TcpEndpoint,
} from "../netcore/multiaddr.ts";
export * from "./direct_send.ts";
export * from "./rpc.ts";
