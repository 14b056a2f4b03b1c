/**
 * The application-level ping of {@linkcode ValidatorNetwork.ping}: a round
 * trip through the RPC path (`validator/proto/health.proto`), served by
 * every validator network.
 *
 * @module
 */

import { create, toBinary } from "@bufbuild/protobuf";
import { NetworkError } from "../netcore/network_error.ts";
import { decodeMessage } from "../netcore/proto/decode_message.ts";
import { PingSchema, PongSchema } from "./proto/_gen/health_pb.ts";
import type { PeerLike, RpcHandle } from "./protocol_handle.ts";
import type { ValidatorNetwork } from "./validator_network.ts";

/** The protocol of pings (RPC, high priority). */
export const PING_RPC = "/validator/health/ping/1.0.0";

/** Serves pings and sends them. */
export class PingHandle {
  readonly #rpc: RpcHandle;
  #nonce = 1n;

  /** Registers and serves the ping protocol on `net`. */
  constructor(net: ValidatorNetwork) {
    this.#rpc = net.register(PING_RPC, { kind: "rpc", priority: "high" });
  }

  /** Answers pings until the network stops. */
  async serve(): Promise<void> {
    while (true) {
      const req = await this.#rpc.receive();
      if (req === undefined) return;
      try {
        const ping = decodeMessage(PingSchema, req.request, { maxBytes: 64 });
        await req.respond(toBinary(PongSchema, create(PongSchema, { nonce: ping.nonce })));
      } catch {
        await req.reject("malformed ping").catch(() => {});
      }
    }
  }

  /** The round trip to `peer`, in ms. */
  async ping(
    peer: PeerLike,
    options: { timeout?: number; signal?: AbortSignal } = {},
  ): Promise<number> {
    const nonce = this.#nonce++;
    const start = performance.now();
    const reply = await this.#rpc.request(
      peer,
      toBinary(PingSchema, create(PingSchema, { nonce })),
      options,
    );
    const pong = decodeMessage(PongSchema, reply, { maxBytes: 64 });
    if (pong.nonce !== nonce) throw new NetworkError("PROTOCOL_VIOLATION", "pong of another ping");
    return performance.now() - start;
  }
}
