/**
 * DirectSend (`protocols/direct_send.ts`) as its module doc specifies it,
 * between peer managers on a memory network:
 *
 * - messages of one protocol from one peer arrive all and in the order they
 *   were sent (100,000 of them; and when the byte bound, not the count,
 *   makes senders wait);
 * - `sendTo` fails at once with `NOT_CONNECTED` without a connection and
 *   with `FRAME_TOO_LARGE` above `maxMessageSize` (nothing sent); a
 *   receiver refuses a message above its own limit (the stream is reset and
 *   counted, the next messages get through);
 * - backpressure: a receiver that does not read stalls its sender (sends
 *   stop resolving, what is in flight is bounded); once it reads,
 *   everything flows, none lost; a send waiting for room follows its
 *   `AbortSignal` (`ABORTED`, the message is not delivered);
 * - the connection ending fails the sends still queued with a typed
 *   `NetworkError`, and `close()` fails them with `CONNECTION_CLOSED`:
 *   nothing hangs;
 * - a 64 MiB message arrives intact while small messages of another
 *   protocol keep arriving during it;
 * - fairness: a flooding peer does not delay another peer's messages;
 * - messages and bytes are counted per protocol and direction.
 */

import { assert, assertEquals, assertRejectsCode } from "./_assert.ts";
import {
  count,
  type Net,
  numbered,
  Outcome,
  PROFILES,
  quiet,
  seqOf,
  settled,
  timed,
  until,
  withNet,
} from "./_messaging.ts";
import { delay } from "../netcore/_async.ts";
import type { PeerId } from "../netcore/identity/mod.ts";
import { NetworkError } from "../netcore/network_error.ts";
import type { PeerManager } from "../netcore/peer/peer_manager.ts";
import { DirectSend, type DirectSendOptions } from "../protocols/direct_send.ts";

const PROTOCOL = "/test/direct-send/1.0.0";

type Tuning = Omit<DirectSendOptions, "manager" | "protocol" | "metrics" | "logger">;

/** A started DirectSend of `protocol` on `manager`, counting into node `name`'s scope; closed with the net. */
function directSend(
  net: Net,
  manager: PeerManager,
  name: string,
  options: Tuning & { protocol?: string } = {},
): DirectSend {
  const ds = new DirectSend({
    protocol: PROTOCOL,
    ...options,
    manager,
    metrics: net.metrics(name),
    logger: quiet,
  });
  ds.start();
  net.defer(() => ds.close());
  return ds;
}

/** Two connected nodes `a` and `b`, each with a DirectSend of `PROTOCOL`. */
async function pair(net: Net, options: { a?: Tuning; b?: Tuning } = {}) {
  const a = await net.node("a");
  const b = await net.node("b");
  const sender = directSend(net, a, "a", options.a);
  const receiver = directSend(net, b, "b", options.b);
  await net.connect(a, b);
  return { a, b, sender, receiver };
}

/**
 * Takes `n` events from `ds`: each must be a message from `from`; returns
 * their sequence numbers in arrival order. Fails (rather than hangs) when
 * they do not all arrive within `ms`.
 */
async function receiveSeqs(
  ds: DirectSend,
  from: PeerId,
  n: number,
  ms = 20_000,
): Promise<number[]> {
  const seqs: number[] = [];
  const give = new AbortController();
  const timer = setTimeout(() => give.abort(), ms);
  try {
    while (seqs.length < n) {
      const event = await ds.receive({ signal: give.signal }).catch((err) => {
        throw new Error(`${seqs.length} of ${n} messages arrived within ${ms} ms`, { cause: err });
      });
      if (event === undefined) throw new Error(`receiver closed after ${seqs.length} messages`);
      if (event.type !== "message") {
        throw new Error(`unexpected ${event.type} after ${seqs.length}`);
      }
      assert(event.peer.equals(from), "the message names its sender");
      seqs.push(seqOf(event.message));
    }
    return seqs;
  } finally {
    clearTimeout(timer);
  }
}

/** `[0, 1, ..., n - 1]`. */
function range(n: number): number[] {
  return Array.from({ length: n }, (_, i) => i);
}

/**
 * Sends `numbered(0..n-1, size)` without waiting for any, then waits until
 * the sends stop resolving (the receiver does not read): returns the sends.
 */
async function stall(
  sender: DirectSend,
  to: PeerId,
  n: number,
  size: number,
): Promise<Outcome<void>[]> {
  const sends = range(n).map((i) => new Outcome(sender.sendTo(to, numbered(i, size))));
  await settled(() => count(sends, "resolved"), 300);
  assertEquals(count(sends, "rejected"), 0, "no send failed while stalled");
  return sends;
}

// ---- order ----------------------------------------------------------------------------

for (const profile of PROFILES) {
  Deno.test(`direct send (${profile}): 100,000 messages from one peer on one protocol arrive, none lost, in order`, async () => {
    await withNet(profile, async (net) => {
      const { a, b, sender, receiver } = await pair(net);
      const n = 100_000;
      // Sizes 4..203 bytes, so batches break at ever different messages.
      const size = (i: number) => 4 + (i * 37) % 200;
      const sends = range(n).map((i) => sender.sendTo(b.peerId, numbered(i, size(i))));
      const [seqs] = await Promise.all([receiveSeqs(receiver, a.peerId, n), Promise.all(sends)]);
      assertEquals(seqs, range(n), "every message once, in the order sent");
    });
  });
}

Deno.test("direct send: order holds when the byte bound makes senders wait (a large message waiting for room is not overtaken by smaller ones sent after it)", async () => {
  await withNet("libp2p", async (net) => {
    // Room for 100 KB: 60 KB messages wait for room while 100-byte ones would fit.
    const { a, b, sender, receiver } = await pair(net, {
      a: { outboundBytes: 100_000, outboundQueue: 10_000 },
    });
    const n = 400;
    const size = (i: number) => (i % 4 === 0 ? 60_000 : 100);
    const sends = range(n).map((i) => sender.sendTo(b.peerId, numbered(i, size(i))));
    const [seqs] = await Promise.all([receiveSeqs(receiver, a.peerId, n), Promise.all(sends)]);
    assertEquals(seqs, range(n), "in the order sendTo was called");
  });
});

Deno.test("direct send: end(peer) delivers what is queued, then an end event; the stream is released on both sides and the next send opens a new one", async () => {
  await withNet("libp2p", async (net) => {
    const { a, b, sender, receiver } = await pair(net);
    const open = (node: string) =>
      net.metric(node, "validator_network_streams_open", { protocol: PROTOCOL });
    const sends = range(10).map((i) => sender.sendTo(b.peerId, numbered(i)));
    await sender.end(b.peerId);
    await Promise.all(sends);
    assertEquals(await receiveSeqs(receiver, a.peerId, 10), range(10));
    const event = await receiver.receive();
    assert(
      event?.type === "end" && event.peer.equals(a.peerId),
      `an end event, got ${event?.type}`,
    );
    await until(() => open("a") === 0 && open("b") === 0, "both ends to release the stream");

    await sender.sendTo(b.peerId, numbered(10));
    assertEquals(await receiveSeqs(receiver, a.peerId, 1), [10]);
    assertEquals(
      net.metric("a", "validator_network_streams_total", { protocol: PROTOCOL }),
      2,
      "a second stream",
    );
  });
});

// ---- refusals -------------------------------------------------------------------------

Deno.test("direct send: NOT_CONNECTED and FRAME_TOO_LARGE fail at once, and nothing is sent", async () => {
  await withNet("libp2p", async (net) => {
    const { a, b, sender, receiver } = await pair(net, { a: { maxMessageSize: 1024 } });
    const stranger = await net.node("stranger");

    const notConnected = await timed(sender.sendTo(stranger.peerId, numbered(0)));
    assertEquals(notConnected.outcome.code, "NOT_CONNECTED");
    const tooLarge = await timed(sender.sendTo(b.peerId, numbered(1, 1025)));
    assertEquals(tooLarge.outcome.code, "FRAME_TOO_LARGE");
    assert(tooLarge.outcome.error instanceof NetworkError);
    assert(tooLarge.outcome.error.message.includes("1025"), "the error says the size");
    assert(notConnected.ms < 250 && tooLarge.ms < 250, "no waiting for the network");
    assertEquals(net.metric("a", "validator_network_message_bytes_total"), 0, "nothing sent");
    assertEquals(
      net.metric("a", "validator_network_messages_refused_total", { reason: "not_connected" }),
      1,
    );
    assertEquals(
      net.metric("a", "validator_network_messages_refused_total", { reason: "too_large_out" }),
      1,
    );

    // A message of exactly the limit goes, and it is the first one b gets.
    await sender.sendTo(b.peerId, numbered(2, 1024));
    assertEquals(await receiveSeqs(receiver, a.peerId, 1), [2]);
    assertEquals(net.metric("b", "validator_network_messages_total", { direction: "in" }), 1);
  });
});

Deno.test("direct send: a receiver refuses a message above its own smaller maxMessageSize (stream reset, counted) and keeps working", async () => {
  await withNet("libp2p", async (net) => {
    const { a, b, sender, receiver } = await pair(net, {
      a: { maxMessageSize: 1024 * 1024 },
      b: { maxMessageSize: 1024 },
    });
    const refused = () =>
      net.metric("b", "validator_network_messages_refused_total", { reason: "too_large_in" });
    // Within a's limit, above b's: a hands it to the connection; b refuses it.
    const big = new Outcome(sender.sendTo(b.peerId, numbered(0, 4096)));
    await until(() => refused() === 1, "b to refuse the message");
    await big.done;
    assert(big.state === "resolved" || NetworkError.is(big.error, "CONNECTION_RESET"), big.code);
    await until(
      () =>
        net.metric("b", "validator_network_inbound_streams_total", {
          protocol: PROTOCOL,
          outcome: "error",
        }) === 1,
      "b's handler to fail (its stream is reset)",
    );
    await until(
      () => net.metric("a", "validator_network_streams_open", { protocol: PROTOCOL }) === 0,
      "a to see its stream reset",
    );

    // The refusal reset that stream only: the connection stays, and later
    // messages get through (a send hitting the reset stream fails, retriable).
    let delivered: number | undefined;
    for (let seq = 1; seq <= 3 && delivered === undefined; seq++) {
      try {
        await sender.sendTo(b.peerId, numbered(seq, 100));
        delivered = seq;
      } catch (err) {
        assert(NetworkError.is(err) && err.retriable, `a retriable error, got ${err}`);
      }
    }
    assert(delivered !== undefined, "a later message was handed to the connection");
    assertEquals(await receiveSeqs(receiver, a.peerId, 1), [delivered]);
    assert(a.isConnected(b.peerId) && b.isConnected(a.peerId), "still connected");
    assertEquals(refused(), 1);
    assertEquals(net.metric("b", "validator_network_messages_total", { direction: "in" }), 1);
  });
});

// ---- backpressure ---------------------------------------------------------------------

Deno.test("direct send: a receiver that does not read stalls its sender with bounded memory; once it reads, everything flows, none lost", async () => {
  const window = 256 * 1024;
  await withNet("libp2p", async (net) => {
    const outboundQueue = 32;
    const inboundQueue = 16;
    const { a, b, sender, receiver } = await pair(net, {
      a: { outboundQueue },
      b: { inboundQueue },
    });
    const n = 10_000;
    const size = 1024;
    const sends = await stall(sender, b.peerId, n, size);
    const resolved = count(sends, "resolved");
    // In flight at most: b's inbound queue, the stream's receive window (it
    // does not grow: b does not read), a batch being written.
    const bound = inboundQueue + window / size + 64 * 1024 / size + outboundQueue;
    assert(resolved > 0, "some sends went through");
    assert(resolved <= bound, `${resolved} sends resolved while b did not read (bound ${bound})`);
    assert(
      net.metric("b", "validator_network_channel_depth", { name: `direct_send:${PROTOCOL}:in` }) <=
        inboundQueue,
      "b's inbound queue stays within its bound",
    );
    const [seqs] = await Promise.all([
      receiveSeqs(receiver, a.peerId, n),
      Promise.all(sends.map((s) => s.done)),
    ]);
    assertEquals(seqs, range(n));
    assertEquals(count(sends, "resolved"), n);
  }, { maxStreamWindow: window });
});

Deno.test("direct send: a send waiting for room follows its AbortSignal: ABORTED, and that message is not delivered", async () => {
  await withNet("libp2p", async (net) => {
    const { a, b, sender, receiver } = await pair(net, {
      a: { outboundQueue: 8 },
      b: { inboundQueue: 8 },
    });
    const n = 2_000;
    const sends = await stall(sender, b.peerId, n, 1024);
    assert(count(sends, "pending") > 0, "the sender is stalled");

    const controller = new AbortController();
    const aborted = new Outcome(
      sender.sendTo(b.peerId, numbered(n, 1024), { signal: controller.signal }),
    );
    const after = new Outcome(sender.sendTo(b.peerId, numbered(n + 1, 1024)));
    await delay(50);
    assertEquals(aborted.state, "pending", "it waits for room");
    controller.abort();
    await aborted.done;
    assertEquals(aborted.code, "ABORTED");
    // A signal that fired before the call: no waiting at all.
    await assertRejectsCode(
      sender.sendTo(b.peerId, numbered(n + 2, 1024), { signal: AbortSignal.abort() }),
      "ABORTED",
    );

    const [seqs] = await Promise.all([
      receiveSeqs(receiver, a.peerId, n + 1),
      Promise.all([...sends, after].map((s) => s.done)),
    ]);
    assertEquals(seqs, [...range(n), n + 1], "all but the aborted ones, in order");
    assertEquals(after.state, "resolved");
    await delay(50);
    assertEquals(
      await receiver.receive({ signal: AbortSignal.timeout(100) }).catch(() => "none"),
      "none",
    );
  });
});

// ---- the connection ending, close() --------------------------------------------------

const endings: [string, (a: PeerManager, b: PeerManager) => Promise<void> | void][] = [
  ["the receiver disconnects", (a, b) => b.disconnect(a.peerId)],
  ["the receiver's node closes", (_a, b) => b.close()],
  ["the sender disconnects", (a, b) => a.disconnect(b.peerId)],
  ["the receiver drops the connection", (a, b) => b.connection(a.peerId)!.abort()],
];

for (const [name, end] of endings) {
  Deno.test(`direct send: ${name}: the queued sends fail with a typed NetworkError, nothing hangs`, async () => {
    await withNet("libp2p", async (net) => {
      const { a, b, sender } = await pair(net, {
        a: { outboundQueue: 16 },
        b: { inboundQueue: 8 },
      });
      const sends = await stall(sender, b.peerId, 2_000, 1024);
      const pending = sends.filter((s) => s.state === "pending");
      assert(pending.length > 0, "sends are waiting");
      const started = performance.now();
      // Not awaited: a graceful close waits for the streams (up to closeTimeout).
      const ending = Promise.resolve(end(a, b));
      await Promise.all(pending.map((s) => s.done));
      const ms = performance.now() - started;
      assert(ms < 3_000, `the sends failed after ${ms.toFixed(0)} ms`);
      for (const s of pending) {
        assert(
          NetworkError.is(s.error) && s.error.retriable,
          `a retriable NetworkError: ${s.code}`,
        );
      }
      await ending;
      await until(() => !a.isConnected(b.peerId), "a to lose b");
      await assertRejectsCode(sender.sendTo(b.peerId, numbered(0)), "NOT_CONNECTED");
    }, { closeTimeout: 500 });
  });
}

Deno.test("direct send: close() fails the queued sends with CONNECTION_CLOSED and ends receive(); nothing hangs", async () => {
  await withNet("libp2p", async (net) => {
    const { a, b, sender, receiver } = await pair(net, {
      a: { outboundQueue: 16 },
      b: { inboundQueue: 8 },
    });
    const sends = await stall(sender, b.peerId, 2_000, 1024);
    const pending = sends.filter((s) => s.state === "pending");
    assert(pending.length > 0, "sends are waiting");
    const closing = await timed(sender.close());
    assert(closing.ms < 2_000, `close took ${closing.ms.toFixed(0)} ms`);
    await Promise.all(pending.map((s) => s.done));
    const codes = new Set(pending.map((s) => s.code));
    assertEquals([...codes], ["CONNECTION_CLOSED"]);
    await assertRejectsCode(sender.sendTo(b.peerId, numbered(0)), "CONNECTION_CLOSED");

    // The receiver: receive() hands out what is queued, then ends at close().
    const waiting = new Outcome(
      (async () => {
        for (;;) if ((await receiver.receive()) === undefined) return;
      })(),
    );
    const receiverClose = await timed(receiver.close());
    assert(receiverClose.ms < 2_000, `receiver close took ${receiverClose.ms.toFixed(0)} ms`);
    await waiting.done;
    assertEquals(waiting.state, "resolved", "receive() ended with undefined");
    assert(a.isConnected(b.peerId), "the connection outlives the protocol");
  });
});

// ---- large messages, fairness ----------------------------------------------------------

/** 64 MiB whose every byte depends on its position. */
function largeMessage(size: number): Uint8Array {
  const message = new Uint8Array(size);
  const words = new Uint32Array(message.buffer);
  for (let i = 0; i < words.length; i++) words[i] = Math.imul(i, 2654435761) >>> 0;
  return message;
}

/** The first index where `x` and `y` differ, or -1. */
function firstDifference(x: Uint8Array, y: Uint8Array): number {
  if (x.length !== y.length) return Math.min(x.length, y.length);
  for (let i = 0; i < x.length; i++) if (x[i] !== y[i]) return i;
  return -1;
}

Deno.test("direct send: a 64 MiB message arrives intact while 64-byte messages on another protocol keep arriving during it", async () => {
  await withNet("libp2p", async (net) => {
    const a = await net.node("a");
    const b = await net.node("b");
    const bigOut = directSend(net, a, "a", { protocol: "/test/big/1.0.0" });
    const bigIn = directSend(net, b, "b", { protocol: "/test/big/1.0.0" });
    const smallOut = directSend(net, a, "a", { protocol: "/test/small/1.0.0" });
    const smallIn = directSend(net, b, "b", { protocol: "/test/small/1.0.0" });
    await net.connect(a, b);
    const size = 64 * 1024 * 1024;
    const big = largeMessage(size);

    // Small messages, one every 2 ms until the large one arrived, then an end marker.
    const END = 0xffff_ffff;
    let bigDone = false;
    const smallArrivals: number[] = [];
    const receivingSmall = (async () => {
      for (let next = 0;; next++) {
        const event = await smallIn.receive();
        if (event?.type !== "message") throw new Error(`unexpected ${event?.type}`);
        const seq = seqOf(event.message);
        if (seq === END) return;
        assertEquals(seq, next, "small messages in order");
        smallArrivals.push(performance.now());
      }
    })();
    const sendingSmall = (async () => {
      for (let i = 0; !bigDone; i++) {
        await smallOut.sendTo(b.peerId, numbered(i, 64));
        await delay(2);
      }
      await smallOut.sendTo(b.peerId, numbered(END, 64));
    })();

    const bigSent = performance.now();
    const [event] = await Promise.all([
      bigIn.receive({ signal: AbortSignal.timeout(20_000) }),
      bigOut.sendTo(b.peerId, big),
    ]);
    const bigArrived = performance.now();
    bigDone = true;
    assert(event?.type === "message", "the large message arrived");
    assertEquals(event.message.length, size);
    assertEquals(firstDifference(event.message, big), -1, "the large message is intact");
    await Promise.all([sendingSmall, receivingSmall]);
    const during = smallArrivals.filter((t) => t > bigSent && t < bigArrived).length;
    assert(
      during >= 5,
      `${during} small messages arrived during the ${
        (bigArrived - bigSent).toFixed(0)
      } ms transfer`,
    );
  });
});

Deno.test("direct send: a flooding peer does not delay another peer's messages (round-robin across peers)", async () => {
  await withNet("libp2p", async (net) => {
    const inboundQueue = 256;
    const flooder = await net.node("flooder");
    const steady = await net.node("steady");
    const r = await net.node("r");
    const floodOut = directSend(net, flooder, "flooder");
    const steadyOut = directSend(net, steady, "steady");
    const inbox = directSend(net, r, "r", { inboundQueue });
    await net.connect(flooder, r);
    await net.connect(steady, r);
    const depth = () =>
      net.metric("r", "validator_network_channel_depth", { name: `direct_send:${PROTOCOL}:in` });

    // The flooder sends as fast as its queue takes messages.
    let stop = false;
    const flooding = (async () => {
      const inFlight: Promise<void>[] = [];
      for (let i = 0; !stop; i++) {
        inFlight.push(floodOut.sendTo(r.peerId, numbered(i, 64)));
        if (inFlight.length === 256) await Promise.allSettled(inFlight.splice(0));
      }
    })();
    // r reads slowly (one message per turn of the event loop), so the
    // flooder's backlog at r stays full: a FIFO would serve it first.
    const fromFlooder: number[] = [];
    const fromSteady: { at: number; flooderBefore: number }[] = [];
    let reading = true;
    const draining = (async () => {
      while (reading) {
        const event = await inbox.receive();
        if (event?.type !== "message") break;
        if (event.peer.equals(flooder.peerId)) fromFlooder.push(seqOf(event.message));
        else fromSteady.push({ at: performance.now(), flooderBefore: fromFlooder.length });
        await delay(0);
      }
    })();
    await until(() => depth() >= inboundQueue, "the flooder's backlog at r to fill");

    const steadyCount = 20;
    const sentAt: { at: number; flooderBefore: number }[] = [];
    for (let i = 0; i < steadyCount; i++) {
      sentAt.push({ at: performance.now(), flooderBefore: fromFlooder.length });
      await steadyOut.sendTo(r.peerId, numbered(i, 64));
      await until(() => fromSteady.length > i, `steady's message ${i} to arrive`);
    }
    stop = true;
    reading = false;
    const backlogAtEnd = depth();
    await steadyOut.close();
    await floodOut.close();
    await inbox.close();
    await Promise.all([flooding, draining]);

    assertEquals(fromFlooder, range(fromFlooder.length), "the flooder's messages in order");
    let worstPosition = 0;
    let worstMs = 0;
    for (let i = 0; i < steadyCount; i++) {
      worstPosition = Math.max(
        worstPosition,
        fromSteady[i].flooderBefore - sentAt[i].flooderBefore,
      );
      worstMs = Math.max(worstMs, fromSteady[i].at - sentAt[i].at);
    }
    // A FIFO would put each steady message behind the flooder's full backlog.
    assert(backlogAtEnd > inboundQueue / 2, `the flooder kept a backlog (${backlogAtEnd})`);
    assert(
      worstPosition <= 16,
      `a steady message waited behind ${worstPosition} of the flooder's (backlog ${inboundQueue})`,
    );
    assert(worstMs < 1_000, `a steady message took ${worstMs.toFixed(0)} ms`);
  });
});

// ---- metrics --------------------------------------------------------------------------

Deno.test("direct send: messages and bytes are counted per protocol and direction", async () => {
  await withNet("libp2p", async (net) => {
    const a = await net.node("a");
    const b = await net.node("b");
    const p1 = "/test/one/1.0.0";
    const p2 = "/test/two/1.0.0";
    const out1 = directSend(net, a, "a", { protocol: p1 });
    const in1 = directSend(net, b, "b", { protocol: p1 });
    const out2 = directSend(net, a, "a", { protocol: p2 });
    const in2 = directSend(net, b, "b", { protocol: p2 });
    await net.connect(a, b);
    await Promise.all(range(10).map((i) => out1.sendTo(b.peerId, numbered(i, 100))));
    await Promise.all(range(3).map((i) => out2.sendTo(b.peerId, numbered(i, 1000))));
    await receiveSeqs(in1, a.peerId, 10);
    await receiveSeqs(in2, a.peerId, 3);
    const counted = (node: string, protocol: string, direction: string) => [
      net.metric(node, "validator_network_messages_total", { protocol, direction }),
      net.metric(node, "validator_network_message_bytes_total", { protocol, direction }),
    ];
    assertEquals(counted("a", p1, "out"), [10, 1000]);
    assertEquals(counted("a", p2, "out"), [3, 3000]);
    assertEquals(counted("b", p1, "in"), [10, 1000]);
    assertEquals(counted("b", p2, "in"), [3, 3000]);
    assertEquals(counted("a", p1, "in"), [0, 0]);
    assertEquals(counted("b", p2, "out"), [0, 0]);
  });
});

// ---- buffers of large messages --------------------------------------------------------

/** The next event of `ds`, which must be a message. */
async function nextMessage(ds: DirectSend) {
  const event = await ds.receive({ signal: AbortSignal.timeout(5_000) });
  if (event?.type !== "message") throw new Error(`expected a message, got ${event?.type}`);
  return event;
}

Deno.test("direct send: a large message given back with release() lends its buffer to the next one; one kept is never reused", async () => {
  await withNet("validator", async (net) => {
    const { b, sender, receiver } = await pair(net);
    const large = (fill: number, size = 100_000) => new Uint8Array(size).fill(fill);
    await sender.sendTo(b.peerId, large(1));
    const first = await nextMessage(receiver);
    assertEquals(first.message.length, 100_000);
    assert(first.message.every((x) => x === 1));
    first.release();
    first.release(); // a second call does nothing

    // The next message of a similar size lands in the same buffer.
    await sender.sendTo(b.peerId, large(2, 90_000));
    const second = await nextMessage(receiver);
    assert(second.message.buffer === first.message.buffer, "the released buffer is reused");
    assertEquals(second.message.length, 90_000);
    assert(second.message.every((x) => x === 2));

    // Not released: the next large message gets a buffer of its own, and
    // this one stays intact.
    await sender.sendTo(b.peerId, large(3));
    const third = await nextMessage(receiver);
    assert(third.message.buffer !== second.message.buffer, "a kept message is never reused");
    assert(second.message.every((x) => x === 2), "the kept message is intact");
    assert(third.message.every((x) => x === 3));

    // Small messages come from no pool: release() does nothing.
    await sender.sendTo(b.peerId, numbered(7));
    const small = await nextMessage(receiver);
    small.release();
    assertEquals(seqOf(small.message), 7);
  });
});

Deno.test("direct send: messageBufferBytes 0 keeps no buffer: a released message's buffer is not reused", async () => {
  await withNet("validator", async (net) => {
    const { b, sender, receiver } = await pair(net, { b: { messageBufferBytes: 0 } });
    await sender.sendTo(b.peerId, new Uint8Array(100_000).fill(1));
    const first = await nextMessage(receiver);
    first.release();
    await sender.sendTo(b.peerId, new Uint8Array(100_000).fill(2));
    const second = await nextMessage(receiver);
    assert(second.message.buffer !== first.message.buffer);
    assert(first.message.every((x) => x === 1), "released, but not overwritten");
  });
});
