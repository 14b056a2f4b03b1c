/**
 * RPC (`protocols/rpc.ts`) as its module doc specifies it, between peer
 * managers on a memory network:
 *
 * - a request gets its response, in both security profiles; 32 requests in
 *   flight at once each get their own response;
 * - a request that is not answered fails with `TIMEOUT` about when its
 *   deadline passes; one whose signal fires, with `ABORTED`;
 * - over the responder's `maxConcurrentInbound` the extra request is
 *   answered `LIMIT_EXCEEDED` at once (not left to time out); over the
 *   requester's `maxConcurrentOutbound`, `LIMIT_EXCEEDED` without sending;
 * - a handler's `reject` reaches the requester as `REMOTE_ERROR` with its
 *   message; a protocol the peer does not serve is `UNSUPPORTED_PROTOCOL`;
 *   a peer without a connection is `NOT_CONNECTED`;
 * - sizes both ways: a request above our `maxRequestSize` fails before
 *   anything is sent; above the responder's, the responder answers
 *   `FRAME_TOO_LARGE`; a response above our `maxResponseSize` is refused; a
 *   `respond()` above the responder's `maxResponseSize` throws and the
 *   requester gets `FRAME_TOO_LARGE`;
 * - the connection going away while a handler holds the request fails the
 *   request promptly (well before its deadline);
 * - requests, bytes and latencies (histograms, both directions) are
 *   counted.
 */

import { assert, assertEquals, assertNetworkError, assertRejectsCode } from "./_assert.ts";
import { type Net, Outcome, PROFILES, quiet, timed, until, withNet } from "./_messaging.ts";
import { delay } from "../netcore/_async.ts";
import { NetworkError } from "../netcore/network_error.ts";
import type { PeerManager } from "../netcore/peer/peer_manager.ts";
import { type InboundRequest, Rpc, type RpcOptions } from "../protocols/rpc.ts";

const PROTOCOL = "/test/rpc/1.0.0";

type Tuning = Omit<RpcOptions, "manager" | "protocol" | "metrics" | "logger">;

const encoder = new TextEncoder();
const decoder = new TextDecoder();
const text = (s: string) => encoder.encode(s);

/** A started Rpc of `protocol` on `manager`, counting into node `name`'s scope; closed with the net. */
function rpc(
  net: Net,
  manager: PeerManager,
  name: string,
  options: Tuning & { protocol?: string } = {},
): Rpc {
  const r = new Rpc({
    protocol: PROTOCOL,
    ...options,
    manager,
    metrics: net.metrics(name),
    logger: quiet,
  });
  r.start();
  net.defer(() => r.close());
  return r;
}

/**
 * The responder's side of a test: takes every request from `rpc` and hands
 * it to `handle` in a task of its own (a held request holds up no other).
 * What a handler throws is kept in `errors`.
 */
class Server {
  readonly requests: InboundRequest[] = [];
  readonly errors: unknown[] = [];

  constructor(rpc: Rpc, handle: (req: InboundRequest) => unknown = () => {}) {
    (async () => {
      for await (const req of rpc) {
        this.requests.push(req);
        (async () => await handle(req))().catch((err) => this.errors.push(err));
      }
    })();
  }

  /** Waits until `n` requests arrived. */
  async received(n: number): Promise<InboundRequest[]> {
    await until(() => this.requests.length >= n, `${n} requests at the server`);
    return this.requests;
  }
}

/** Two connected nodes: `a` requests through `client`, `b` serves through `server`. */
async function pair(net: Net, options: { a?: Tuning; b?: Tuning } = {}) {
  const a = await net.node("a");
  const b = await net.node("b");
  const client = rpc(net, a, "a", options.a);
  const server = rpc(net, b, "b", options.b);
  await net.connect(a, b);
  return { a, b, client, server };
}

// ---- requests and responses -----------------------------------------------------------

for (const profile of PROFILES) {
  Deno.test(`rpc (${profile}): a request gets its response; the responder sees who asked`, async () => {
    await withNet(profile, async (net) => {
      const { a, b, client, server } = await pair(net);
      const hello = text("hello, ");
      const served = new Server(server, (req) => {
        const response = new Uint8Array(hello.length + req.request.length);
        response.set(hello);
        response.set(req.request, hello.length);
        return req.respond(response);
      });
      const response = await client.request(b.peerId, text("validator"));
      assertEquals(decoder.decode(response), "hello, validator");
      assert(served.requests[0].peer.equals(a.peerId), "the request names its requester");
      // Empty, and large (beyond one yamux window) both ways.
      assertEquals(decoder.decode(await client.request(b.peerId, new Uint8Array(0))), "hello, ");
      const large = new Uint8Array(1024 * 1024).fill(7);
      const echoed = await client.request(b.peerId, large);
      assertEquals(echoed.length, hello.length + large.length);
      assert(echoed.subarray(hello.length).every((x) => x === 7), "the large response is intact");
      assertEquals(served.errors, []);
    });
  });
}

Deno.test("rpc: 32 requests in flight at once each get their own response (answered in reverse order)", async () => {
  await withNet("libp2p", async (net) => {
    const { b, client, server } = await pair(net);
    const n = 32;
    const held = new Server(server);
    const calls = Array.from(
      { length: n },
      (_, i) => new Outcome(client.request(b.peerId, text(`request ${i}`))),
    );
    // All 32 reach the handler before any is answered: they are truly concurrent.
    const requests = await held.received(n);
    await delay(20);
    assertEquals(requests.length, n);
    for (const req of [...requests].reverse()) {
      await req.respond(text(`answer to ${decoder.decode(req.request)}`));
    }
    await Promise.all(calls.map((c) => c.done));
    assertEquals(
      calls.map((c) => c.state === "resolved" ? decoder.decode(c.value) : c.code),
      calls.map((_, i) => `answer to request ${i}`),
    );
  });
});

// ---- deadlines and cancellation -------------------------------------------------------

Deno.test("rpc: a request the handler never answers fails with TIMEOUT about when its deadline passes", async () => {
  await withNet("libp2p", async (net) => {
    const { b, client, server } = await pair(net, { a: { timeout: 300 } });
    const held = new Server(server);
    // The protocol's timeout, then a per-request one.
    for (const [timeout, options] of [[300, {}], [200, { timeout: 200 }]] as const) {
      const { ms, outcome } = await timed(client.request(b.peerId, text("anyone?"), options));
      assertEquals(outcome.code, "TIMEOUT");
      assert(ms >= timeout - 20 && ms < timeout + 1_000, `TIMEOUT after ${ms.toFixed(0)} ms`);
    }
    await held.received(2);
    // The expired request's stream is reset: a late answer does not reach anyone.
    await assertRejectsCode(held.requests[0].respond(text("too late")), "CONNECTION_RESET");
    assertEquals(
      net.metric("a", "validator_network_messages_refused_total", { reason: "out_timeout" }),
      2,
    );
  });
});

Deno.test("rpc: a request whose signal fires fails with ABORTED at once", async () => {
  await withNet("libp2p", async (net) => {
    const { b, client, server } = await pair(net);
    const held = new Server(server);
    const controller = new AbortController();
    const call = timed(client.request(b.peerId, text("wait"), { signal: controller.signal }));
    await held.received(1);
    controller.abort();
    const { ms, outcome } = await call;
    assertEquals(outcome.code, "ABORTED");
    assert(ms < 2_000, `ABORTED after ${ms.toFixed(0)} ms (the timeout is 10 s)`);
    // A signal that already fired: nothing is sent.
    await assertRejectsCode(
      client.request(b.peerId, text("never"), { signal: AbortSignal.abort() }),
      "ABORTED",
    );
    await delay(50);
    assertEquals(held.requests.length, 1, "the second request never reached the server");
  });
});

// ---- limits ---------------------------------------------------------------------------

Deno.test("rpc: over the responder's maxConcurrentInbound, the extra request is answered LIMIT_EXCEEDED at once", async () => {
  await withNet("libp2p", async (net) => {
    const { b, client, server } = await pair(net, { b: { maxConcurrentInbound: 2 } });
    const held = new Server(server);
    const first = [0, 1].map((i) => new Outcome(client.request(b.peerId, text(`held ${i}`))));
    await held.received(2);
    const { ms, outcome } = await timed(client.request(b.peerId, text("one too many")));
    assertEquals(outcome.code, "LIMIT_EXCEEDED");
    assert(ms < 1_000, `refused after ${ms.toFixed(0)} ms (the timeout is 10 s)`);
    // Also one still being sent (larger than a stream window) when refused.
    const large = await timed(client.request(b.peerId, new Uint8Array(4 * 1024 * 1024)));
    assertEquals(large.outcome.code, "LIMIT_EXCEEDED", "a large request over the limit");
    assert(large.ms < 1_000, `refused after ${large.ms.toFixed(0)} ms`);
    assertEquals(held.requests.length, 2, "the handler never saw them");
    assertEquals(
      net.metric("b", "validator_network_messages_refused_total", { reason: "inbound_limit" }),
      2,
    );
    // Answering frees the slots.
    for (const req of held.requests) await req.respond(text("done"));
    await Promise.all(first.map((o) => o.done));
    assertEquals(first.map((o) => o.state), ["resolved", "resolved"]);
    const again = new Outcome(client.request(b.peerId, text("now there is room")));
    (await held.received(3))[2].respond(text("ok"));
    await again.done;
    assertEquals(again.state, "resolved");
  });
});

Deno.test("rpc: over the requester's maxConcurrentOutbound, the extra request fails LIMIT_EXCEEDED without being sent", async () => {
  await withNet("libp2p", async (net) => {
    const { b, client, server } = await pair(net, { a: { maxConcurrentOutbound: 2 } });
    const held = new Server(server);
    const first = [0, 1].map((i) => new Outcome(client.request(b.peerId, text(`held ${i}`))));
    await held.received(2);
    const { ms, outcome } = await timed(client.request(b.peerId, text("one too many")));
    assertEquals(outcome.code, "LIMIT_EXCEEDED");
    assert(ms < 250, `refused after ${ms.toFixed(0)} ms`);
    await delay(50);
    assertEquals(held.requests.length, 2, "nothing more was sent");
    assertEquals(
      net.metric("a", "validator_network_messages_refused_total", { reason: "outbound_limit" }),
      1,
    );
    // The limit is per request in flight: answered (or failed) ones free it.
    for (const req of held.requests) await req.respond(text("done"));
    await Promise.all(first.map((o) => o.done));
    const again = new Outcome(client.request(b.peerId, text("now there is room")));
    (await held.received(3))[2].respond(text("ok"));
    await again.done;
    assertEquals(again.state, "resolved");
  });
});

// ---- errors ---------------------------------------------------------------------------

Deno.test("rpc: a handler's reject reaches the requester as REMOTE_ERROR with its message", async () => {
  await withNet("libp2p", async (net) => {
    const { b, client, server } = await pair(net);
    new Server(server, (req) => {
      const what = decoder.decode(req.request);
      return req.reject(what === "long" ? "x".repeat(10_000) : `no block ${what}`);
    });
    const err = await assertRejectsCode(client.request(b.peerId, text("42")), "REMOTE_ERROR");
    assert(err.message.includes("no block 42"), err.message);
    // A long message is cut to its first 1024 characters on the wire.
    const long = await assertRejectsCode(client.request(b.peerId, text("long")), "REMOTE_ERROR");
    assert(long.message.includes("x".repeat(1024)), "the first 1024 characters arrive");
    assert(!long.message.includes("x".repeat(1025)), "no more");
  });
});

Deno.test("rpc: a protocol the peer does not serve is UNSUPPORTED_PROTOCOL; a peer not connected is NOT_CONNECTED", async () => {
  await withNet("libp2p", async (net) => {
    const { a, b, client } = await pair(net);
    const unknown = rpc(net, a, "a", { protocol: "/test/nobody-serves-this/1.0.0" });
    await assertRejectsCode(unknown.request(b.peerId, text("hello?")), "UNSUPPORTED_PROTOCOL");
    const stranger = await net.node("stranger");
    const { ms, outcome } = await timed(client.request(stranger.peerId, text("hello?")));
    assertEquals(outcome.code, "NOT_CONNECTED");
    assert(ms < 250, `NOT_CONNECTED after ${ms.toFixed(0)} ms`);
  });
});

// ---- sizes ----------------------------------------------------------------------------

Deno.test("rpc: a request above our maxRequestSize fails FRAME_TOO_LARGE before anything is sent", async () => {
  await withNet("libp2p", async (net) => {
    const { b, client, server } = await pair(net, { a: { maxRequestSize: 1000 } });
    const held = new Server(server, (req) => req.respond(text("ok")));
    const { ms, outcome } = await timed(client.request(b.peerId, new Uint8Array(1001)));
    assertEquals(outcome.code, "FRAME_TOO_LARGE");
    assert(ms < 250, `refused after ${ms.toFixed(0)} ms`);
    assertEquals(
      net.metric("b", "validator_network_streams_total", { protocol: PROTOCOL }),
      0,
      "no stream was opened",
    );
    assertEquals(held.requests.length, 0);
    // Exactly the limit goes.
    assertEquals(decoder.decode(await client.request(b.peerId, new Uint8Array(1000))), "ok");
  });
});

Deno.test("rpc: a request above the responder's maxRequestSize is answered FRAME_TOO_LARGE by the responder", async () => {
  await withNet("libp2p", async (net) => {
    const { b, client, server } = await pair(net, { b: { maxRequestSize: 1000 } });
    const held = new Server(server, (req) => req.respond(text("ok")));
    // Small, then larger than a yamux window (the responder refuses before reading it).
    for (const size of [1001, 4 * 1024 * 1024]) {
      const { ms, outcome } = await timed(client.request(b.peerId, new Uint8Array(size)));
      assertEquals(outcome.code, "FRAME_TOO_LARGE", `a request of ${size} bytes`);
      assert(
        outcome.error instanceof NetworkError && outcome.error.message.includes("peer answered"),
        `the responder's answer: ${outcome.error}`,
      );
      assert(ms < 2_000, `refused after ${ms.toFixed(0)} ms`);
    }
    assertEquals(held.requests.length, 0, "the handler never saw them");
    assertEquals(
      net.metric("b", "validator_network_messages_refused_total", {
        reason: "request_too_large_in",
      }),
      2,
    );
    assertEquals(decoder.decode(await client.request(b.peerId, new Uint8Array(1000))), "ok");
  });
});

Deno.test("rpc: a response above the requester's maxResponseSize fails FRAME_TOO_LARGE", async () => {
  await withNet("libp2p", async (net) => {
    const { b, client, server } = await pair(net, { a: { maxResponseSize: 1000 } });
    new Server(server, (req) => req.respond(new Uint8Array(Number(decoder.decode(req.request)))));
    await assertRejectsCode(client.request(b.peerId, text("1001")), "FRAME_TOO_LARGE");
    await assertRejectsCode(client.request(b.peerId, text("3000000")), "FRAME_TOO_LARGE");
    assertEquals((await client.request(b.peerId, text("1000"))).length, 1000);
  });
});

Deno.test("rpc: respond() above the responder's maxResponseSize throws FRAME_TOO_LARGE and the requester gets FRAME_TOO_LARGE", async () => {
  await withNet("libp2p", async (net) => {
    const { b, client, server } = await pair(net, { b: { maxResponseSize: 1000 } });
    const responded: Outcome<void>[] = [];
    new Server(server, (req) => {
      const size = Number(decoder.decode(req.request));
      responded.push(new Outcome(req.respond(new Uint8Array(size))));
    });
    const err = await assertRejectsCode(client.request(b.peerId, text("1001")), "FRAME_TOO_LARGE");
    assert(err.message.includes("1001"), err.message);
    await responded[0].done;
    assertEquals(responded[0].code, "FRAME_TOO_LARGE", "respond() throws");
    assertEquals((await client.request(b.peerId, text("1000"))).length, 1000);
    await responded[1].done;
    assertEquals(responded[1].state, "resolved");
  });
});

// ---- the connection going away ---------------------------------------------------------

const CLOSE_TIMEOUT = 300;
const goings: [string, (a: PeerManager, b: PeerManager) => Promise<void> | void][] = [
  ["the responder disconnects", (a, b) => b.disconnect(a.peerId)],
  ["the responder's node closes", (_a, b) => b.close()],
  ["the responder drops the connection", (a, b) => b.connection(a.peerId)!.abort()],
  ["the requester disconnects", (a, b) => a.disconnect(b.peerId)],
];

for (const [name, going] of goings) {
  Deno.test(`rpc: ${name} while the handler holds the request: the request fails promptly, not at its deadline`, async () => {
    await withNet("libp2p", async (net) => {
      const timeout = 10_000;
      const { a, b, client, server } = await pair(net, { a: { timeout } });
      const held = new Server(server);
      const call = timed(client.request(b.peerId, text("hold this")));
      await held.received(1);
      const ending = Promise.resolve(going(a, b));
      const { ms, outcome } = await call;
      assert(outcome.state === "rejected", "the request failed");
      // The connection went away: not the request's own TIMEOUT.
      assertNetworkError(outcome.error, "CONNECTION_CLOSED", "CONNECTION_RESET");
      // A graceful close lets open streams finish for closeTimeout, then resets them.
      assert(ms < CLOSE_TIMEOUT + 1_500, `failed after ${ms.toFixed(0)} ms (deadline ${timeout})`);
      await ending;
      await until(() => !a.isConnected(b.peerId), "a to lose b");
      await assertRejectsCode(client.request(b.peerId, text("again")), "NOT_CONNECTED");
    }, { closeTimeout: CLOSE_TIMEOUT });
  });
}

// ---- metrics --------------------------------------------------------------------------

Deno.test("rpc: requests, bytes and latencies are counted, each way", async () => {
  await withNet("libp2p", async (net) => {
    const { b, client, server } = await pair(net);
    new Server(server, async (req) => {
      await delay(20);
      await req.respond(new Uint8Array(500));
    });
    for (let i = 0; i < 5; i++) await client.request(b.peerId, new Uint8Array(100));
    const labels = (direction: string) => ({ protocol: PROTOCOL, direction });
    assertEquals(net.metric("a", "validator_network_messages_total", labels("out")), 5);
    assertEquals(net.metric("a", "validator_network_message_bytes_total", labels("out")), 500);
    assertEquals(net.metric("b", "validator_network_messages_total", labels("in")), 5);
    assertEquals(net.metric("b", "validator_network_message_bytes_total", labels("in")), 500);
    const out = net.histogram("a", "validator_network_rpc_latency_ms", labels("out"));
    const inbound = net.histogram("b", "validator_network_rpc_latency_ms", labels("in"));
    assert(out !== undefined && inbound !== undefined, "both latency series exist");
    assertEquals([out.count, inbound.count], [5, 5]);
    // Each took the handler's 20 ms at least, and nowhere near a second.
    assert(out.sum >= 5 * 19 && out.sum < 5 * 1_000, `requester's latency sum ${out.sum}`);
    assert(inbound.sum >= 5 * 19 && inbound.sum <= out.sum, `handler's sum ${inbound.sum}`);
    // Failures are not latencies.
    await assertRejectsCode(
      client.request(b.peerId, new Uint8Array(1), { timeout: 1 }),
      "TIMEOUT",
    );
    assertEquals(out.count, 5);
  });
});
