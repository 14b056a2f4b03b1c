/**
 * Protocols that run on negotiated streams: ping (`/ipfs/ping/1.0.0`), perf
 * (`/perf/1.0.0`) and echo (`/echo/1.0.0`).
 *
 * @module
 */

export * from "./ping.ts";
export * from "./perf.ts";
export * from "./echo.ts";
