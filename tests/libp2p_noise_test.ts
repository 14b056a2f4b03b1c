/**
 * libp2p-noise (libp2p/specs noise/README.md): Noise_XX_25519_ChaChaPoly_SHA256,
 * empty prologue, 2-byte length-prefixed handshake messages, each side's
 * static key authenticated by a signed NoiseHandshakePayload; the dialer
 * refuses a peer other than the one it dialed.
 */

import { MemoryNetwork } from "../memsocket/memory_network.ts";
import { MemoryTransport } from "../memsocket/memory_transport.ts";
import { Ed25519Identity } from "../netcore/identity/mod.ts";
import { Multiaddr } from "../netcore/multiaddr.ts";
import { NetworkError } from "../netcore/network_error.ts";
import { defaultRegistry } from "../netcore/metrics.ts";
import { getCryptoBackend } from "../netcore/noise/crypto.ts";
import { HandshakeState } from "../netcore/noise/handshake_state.ts";
import {
  LIBP2P_NOISE_PROTOCOL_NAME,
  libp2pNoise,
  type Libp2pNoiseConnection,
} from "../netcore/noise/libp2p_noise.ts";
import { andThen } from "../netcore/transport/and_then.ts";
import type { Connection } from "../netcore/transport/connection.ts";
import { TcpTransport } from "../netcore/transport/tcp_transport.ts";
import type { Transport } from "../netcore/transport/transport.ts";
import { assert, assertEquals, assertRejectsCode } from "./_assert.ts";
import { memoryPair, upgradeContext } from "./_pair.ts";

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** Checks both ends talk, both ways, through the channel. */
async function exchange(a: Connection, b: Connection): Promise<void> {
  const aw = a.writable.getWriter();
  const bw = b.writable.getWriter();
  await aw.write(encoder.encode("ping"));
  const br = b.readable.getReader();
  assertEquals(decoder.decode((await br.read()).value), "ping");
  await bw.write(encoder.encode("pong"));
  const ar = a.readable.getReader();
  assertEquals(decoder.decode((await ar.read()).value), "pong");
  aw.releaseLock();
  bw.releaseLock();
  ar.releaseLock();
  br.releaseLock();
}

// ---- the handshake over real transports ----

async function overTransport(
  name: string,
  raw: () => Transport,
  listenAddr: string,
): Promise<void> {
  const alice = Ed25519Identity.generate();
  const bob = Ed25519Identity.generate();
  const dialer = andThen(raw(), libp2pNoise(alice, { streamMuxers: ["/yamux/1.0.0"] }));
  const listening = andThen(raw(), libp2pNoise(bob, { streamMuxers: ["/mplex/6.7.0"] }));
  const listener = await listening.listen(Multiaddr.parse(listenAddr));
  const accepted = listener[Symbol.asyncIterator]().next();
  const a = await dialer.dial(listener.addr.withPeerId(bob.peerId.toString()));
  const b = (await accepted).value as Libp2pNoiseConnection;
  await listener.close();

  assert(a.remotePeerId.equals(bob.peerId), `${name}: the dialer sees the listener's peer id`);
  assert(b.remotePeerId.equals(alice.peerId), `${name}: the listener sees the dialer's peer id`);
  assertEquals(a.handshakeHash, b.handshakeHash, "both ends agree on the handshake hash");
  assertEquals(a.remoteIdentityKey, bob.publicKey);
  assertEquals(b.remoteIdentityKey, alice.publicKey);
  assertEquals(a.remoteStreamMuxers, ["/mplex/6.7.0"]);
  assertEquals(b.remoteStreamMuxers, ["/yamux/1.0.0"]);
  await exchange(a, b);
  a.abort();
  b.abort();
}

Deno.test("XX over memsocket: both sides see each other's peer id and talk", async () => {
  await overTransport("memory", () => new MemoryTransport({ network: sharedNetwork }), "/memory/0");
});

Deno.test("XX over TCP on loopback: both sides see each other's peer id and talk", async () => {
  const tcp = new TcpTransport();
  await overTransport("tcp", () => tcp, "/ip4/127.0.0.1/tcp/0");
});

const sharedNetwork = new MemoryNetwork();

Deno.test("both backends interoperate: native dialer with noble listener and back", async () => {
  for (const [d, l] of [["native", "noble"], ["noble", "native"]] as const) {
    const [rawA, rawB] = memoryPair();
    const alice = Ed25519Identity.generate(), bob = Ed25519Identity.generate();
    const [a, b] = await Promise.all([
      libp2pNoise(alice, { backend: getCryptoBackend(d) })(rawA, upgradeContext("dialer")),
      libp2pNoise(bob, { backend: getCryptoBackend(l) })(rawB, upgradeContext("listener")),
    ]);
    await exchange(a, b);
    a.abort();
    b.abort();
  }
});

/** `conn`, with the length of every write it makes recorded. */
function recordingWrites(conn: Connection): { conn: Connection; writes: number[] } {
  const writes: number[] = [];
  const lower = conn.writable.getWriter();
  const recording: Connection = {
    localAddr: conn.localAddr,
    remoteAddr: conn.remoteAddr,
    closed: conn.closed,
    close: () => conn.close(),
    abort: (reason) => conn.abort(reason),
    readable: conn.readable,
    writable: new WritableStream<Uint8Array>({
      write(chunk) {
        writes.push(chunk.length);
        return lower.write(chunk);
      },
      close: () => lower.close(),
      abort: (reason) => lower.abort(reason),
    }),
  };
  return { conn: recording, writes };
}

Deno.test("the dialer's message 3 leaves with its first transport message, or alone by the end of the turn", async () => {
  const alice = Ed25519Identity.generate(), bob = Ed25519Identity.generate();
  {
    const [rawA, rawB] = memoryPair();
    const { conn, writes } = recordingWrites(rawA);
    const listening = libp2pNoise(bob)(rawB, upgradeContext("listener"));
    const a = await libp2pNoise(alice)(conn, upgradeContext("dialer"));
    // Message 1 went out; message 3 waits.
    assertEquals(writes.length, 1);
    const writer = a.writable.getWriter();
    await writer.write(encoder.encode("first"));
    const b = await listening;
    const reader = b.readable.getReader();
    assertEquals(decoder.decode((await reader.read()).value), "first");
    // Message 3 (2 + 32 + 16 + payload + 16 bytes) and the transport message, in one write.
    assertEquals(writes.length, 2);
    assert(writes[1] > 2 + 64 + 2 + 5 + 16, `second write of ${writes[1]} bytes`);
    a.abort();
    b.abort();
  }
  {
    // A dialer that writes nothing: the listener still completes.
    const [rawA, rawB] = memoryPair();
    const { conn, writes } = recordingWrites(rawA);
    const listening = libp2pNoise(bob)(rawB, upgradeContext("listener"));
    const a = await libp2pNoise(alice)(conn, upgradeContext("dialer"));
    const b = await listening;
    assert(b.remotePeerId.equals(alice.peerId));
    assertEquals(writes.length, 2);
    a.abort();
    b.abort();
  }
});

// ---- who we talk to ----

Deno.test("the dialer checks the /p2p/ peer id of the address it dialed", async () => {
  const alice = Ed25519Identity.generate(), bob = Ed25519Identity.generate();
  const mallory = Ed25519Identity.generate();
  // Right peer: accepted.
  {
    const [rawA, rawB] = memoryPair({ remoteAddr: `/memory/2/p2p/${bob.peerId}` });
    const [a, b] = await Promise.all([
      libp2pNoise(alice)(rawA, upgradeContext("dialer")),
      libp2pNoise(bob)(rawB, upgradeContext("listener")),
    ]);
    assert(a.remotePeerId.equals(bob.peerId));
    a.abort();
    b.abort();
  }
  // Mallory answers on an address that names bob: refused before message 3 is sent.
  {
    const [rawA, rawB] = memoryPair({ remoteAddr: `/memory/2/p2p/${bob.peerId}` });
    const before = defaultRegistry.find("network_noise_rejected_total")
      ?.get({ profile: "libp2p", reason: "unauthorized" }) ?? 0;
    const [dial, accept] = [
      libp2pNoise(alice)(rawA, upgradeContext("dialer")),
      libp2pNoise(mallory)(rawB, upgradeContext("listener")),
    ];
    const err = await assertRejectsCode(dial, "UNAUTHORIZED");
    assert(
      err.message.includes(bob.peerId.toString()) && err.message.includes(`${mallory.peerId}`),
    );
    await assertRejectsCode(accept, "HANDSHAKE_FAILED");
    const after = defaultRegistry.find("network_noise_rejected_total")!
      .get({ profile: "libp2p", reason: "unauthorized" });
    assertEquals(after, before + 1);
  }
});

Deno.test("an explicit expectedPeerId overrides the address and is enforced", async () => {
  const alice = Ed25519Identity.generate(), bob = Ed25519Identity.generate();
  const carol = Ed25519Identity.generate();
  const [rawA, rawB] = memoryPair();
  const [dial, accept] = [
    libp2pNoise(alice, { expectedPeerId: carol.peerId })(rawA, upgradeContext("dialer")),
    libp2pNoise(bob)(rawB, upgradeContext("listener")),
  ];
  await assertRejectsCode(dial, "UNAUTHORIZED");
  await assertRejectsCode(accept, "HANDSHAKE_FAILED");
});

// ---- tampering ----

/**
 * Two raw pairs joined by a relay that flips one bit at byte `offset` of the
 * stream going `direction`, as a man in the middle would.
 */
function tamperedPair(
  direction: "toListener" | "toDialer",
  offset: number,
): [Connection, Connection] {
  const [dialerEnd, relayA] = memoryPair();
  const [relayB, listenerEnd] = memoryPair();
  const relay = (from: Connection, to: Connection, flip: boolean) => {
    let position = 0;
    from.readable.pipeThrough(
      new TransformStream<Uint8Array, Uint8Array>({
        transform(chunk, controller) {
          const copy = chunk.slice();
          if (flip && offset >= position && offset < position + copy.length) {
            copy[offset - position] ^= 0x04;
          }
          position += copy.length;
          controller.enqueue(copy);
        },
      }),
    ).pipeTo(to.writable).catch(() => {
      from.abort();
      to.abort();
    });
  };
  relay(relayA, relayB, direction === "toListener");
  relay(relayB, relayA, direction === "toDialer");
  return [dialerEnd, listenerEnd];
}

Deno.test("a bit flipped anywhere in a handshake message fails the handshake with HANDSHAKE_FAILED", async () => {
  // Byte offsets on the wire (2-byte length prefixes included):
  // message 1 = [0,34) to the listener; message 2 = [0, 2+96+payload) to the
  // dialer; message 3 follows message 1 to the listener.
  const cases: ["toListener" | "toDialer", number, string][] = [
    ["toListener", 2, "message 1, ephemeral key"],
    ["toListener", 33, "message 1, last byte of the ephemeral key"],
    ["toDialer", 2, "message 2, ephemeral key"],
    ["toDialer", 40, "message 2, encrypted static key"],
    ["toDialer", 90, "message 2, static key tag"],
    ["toDialer", 120, "message 2, encrypted payload"],
    ["toListener", 34 + 2 + 10, "message 3, encrypted static key"],
    ["toListener", 34 + 2 + 70, "message 3, encrypted payload"],
  ];
  for (const [direction, offset, what] of cases) {
    const [rawA, rawB] = tamperedPair(direction, offset);
    const alice = Ed25519Identity.generate(), bob = Ed25519Identity.generate();
    const [dial, accept] = await Promise.allSettled([
      libp2pNoise(alice, { handshakeTimeout: 2_000 })(rawA, upgradeContext("dialer")),
      libp2pNoise(bob, { handshakeTimeout: 2_000 })(rawB, upgradeContext("listener")),
    ]);
    assert(accept.status === "rejected", `${what}: the listener must refuse`);
    assert(
      NetworkError.is(accept.reason, "HANDSHAKE_FAILED"),
      `${what}: expected HANDSHAKE_FAILED, got ${accept.reason}`,
    );
    if (what.startsWith("message 3")) {
      // The initiator is done once it sent message 3; it learns of the
      // failure when the listener drops the connection.
      assert(dial.status === "fulfilled", `${what}: the dialer completed`);
      const reader = dial.value.readable.getReader();
      await assertRejectsCode(reader.read(), "CONNECTION_RESET", "CONNECTION_CLOSED");
    } else {
      assert(dial.status === "rejected", `${what}: the dialer must fail`);
      assert(
        NetworkError.is(dial.reason, "HANDSHAKE_FAILED"),
        `${what}: expected HANDSHAKE_FAILED, got ${dial.reason}`,
      );
    }
  }
});

Deno.test("message 1 must be a bare ephemeral key: a payload there is refused", async () => {
  const [rawA, rawB] = memoryPair();
  const bob = Ed25519Identity.generate();
  const accept = libp2pNoise(bob)(rawB, upgradeContext("listener"));
  const initiator = new HandshakeState({
    protocolName: LIBP2P_NOISE_PROTOCOL_NAME,
    initiator: true,
    s: getCryptoBackend().dh.generateKeyPair(),
  });
  const message = initiator.writeMessage(encoder.encode("early data"));
  const framed = new Uint8Array([0, message.length, ...message]);
  await rawA.writable.getWriter().write(framed);
  const err = await assertRejectsCode(accept, "HANDSHAKE_FAILED");
  assert(err.message.includes("message 1"), err.message);
});

Deno.test("an out-of-order message (message 3 bytes where message 1 belongs) is refused", async () => {
  const [rawA, rawB] = memoryPair();
  const bob = Ed25519Identity.generate();
  const accept = libp2pNoise(bob)(rawB, upgradeContext("listener"));
  // 64 bytes: the size of an encrypted static key and an empty payload tag.
  await rawA.writable.getWriter().write(new Uint8Array([0, 64, ...new Uint8Array(64)]));
  await assertRejectsCode(accept, "HANDSHAKE_FAILED");
});

// ---- time ----

Deno.test("a peer that stops mid-handshake: TIMEOUT, and the connection is aborted", async () => {
  const [rawA, rawB] = memoryPair();
  const bob = Ed25519Identity.generate();
  const started = performance.now();
  const accept = libp2pNoise(bob, { handshakeTimeout: 150 })(rawB, upgradeContext("listener"));
  // Message 1 only, then silence.
  const initiator = new HandshakeState({
    protocolName: LIBP2P_NOISE_PROTOCOL_NAME,
    initiator: true,
    s: getCryptoBackend().dh.generateKeyPair(),
  });
  const message = initiator.writeMessage(new Uint8Array(0));
  await rawA.writable.getWriter().write(new Uint8Array([0, message.length, ...message]));
  await assertRejectsCode(accept, "TIMEOUT");
  const elapsed = performance.now() - started;
  assert(elapsed >= 140 && elapsed < 2_000, `timed out after ${elapsed} ms`);
  // The silent peer's side was reset (a reset drops message 2 too, as TCP's RST would).
  await assertRejectsCode(rawA.readable.getReader().read(), "CONNECTION_RESET");
});

Deno.test("the upgrade context's signal cancels the handshake with ABORTED", async () => {
  const [, rawB] = memoryPair();
  const controller = new AbortController();
  const accept = libp2pNoise(Ed25519Identity.generate())(
    rawB,
    upgradeContext("listener", controller.signal),
  );
  controller.abort(new Error("shutting down"));
  await assertRejectsCode(accept, "ABORTED");
});

Deno.test("bytes the peer sends right after the handshake are not lost", async () => {
  const [rawA, rawB] = memoryPair();
  const alice = Ed25519Identity.generate(), bob = Ed25519Identity.generate();
  const dialing = libp2pNoise(alice)(rawA, upgradeContext("dialer"));
  const accepting = libp2pNoise(bob)(rawB, upgradeContext("listener"));
  const a = await dialing;
  // The dialer writes at once; the listener may still be finishing message 3.
  const writer = a.writable.getWriter();
  await writer.write(encoder.encode("early"));
  await writer.close();
  const b = await accepting;
  const chunks: string[] = [];
  for await (const chunk of b.readable) chunks.push(decoder.decode(chunk));
  assertEquals(chunks.join(""), "early");
  a.abort();
  b.abort();
});

// ---- interop with js-libp2p ----

/**
 * One end of a js-libp2p `MessageStream` as our Web-Streams `Connection`, so
 * the two implementations can face each other over js-libp2p's own
 * in-memory connection pair.
 */
function fromMessageStream(
  stream: {
    addEventListener(type: string, fn: (evt: Event) => void): void;
    send(data: Uint8Array): boolean;
    onDrain(): Promise<void>;
    close(): Promise<void>;
    abort(err: Error): void;
  },
  localAddr: string,
  remoteAddr: string,
): Connection {
  const closed = Promise.withResolvers<void>();
  const readable = new ReadableStream<Uint8Array>({
    start(controller) {
      stream.addEventListener("message", (evt) => {
        const data = (evt as Event & { data: Uint8Array | { subarray(): Uint8Array } }).data;
        controller.enqueue(data instanceof Uint8Array ? data : data.subarray());
      });
      stream.addEventListener("remoteCloseWrite", () => controller.close());
      stream.addEventListener("close", (evt) => {
        const error = (evt as Event & { error?: Error }).error;
        try {
          if (error) controller.error(error);
          else controller.close();
        } catch {
          // already closed
        }
        closed.resolve();
      });
    },
  });
  const writable = new WritableStream<Uint8Array>({
    async write(chunk) {
      if (!stream.send(chunk.slice())) await stream.onDrain();
    },
    close: () => stream.close(),
    abort: (reason) => stream.abort(reason instanceof Error ? reason : new Error(String(reason))),
  });
  return {
    readable,
    writable,
    localAddr: Multiaddr.parse(localAddr),
    remoteAddr: Multiaddr.parse(remoteAddr),
    close: () => stream.close(),
    abort: (reason) => stream.abort(reason instanceof Error ? reason : new Error(String(reason))),
    closed: closed.promise,
  };
}

Deno.test("interop: @chainsafe/libp2p-noise 17 (js-libp2p) and ours complete XX both ways and talk", async () => {
  const { noise } = await import("@chainsafe/libp2p-noise");
  const { multiaddrConnectionPair } = await import("@libp2p/utils");
  const { defaultLogger } = await import("@libp2p/logger");
  const { generateKeyPair } = await import("@libp2p/crypto/keys");
  const { peerIdFromPrivateKey } = await import("@libp2p/peer-id");

  const jsKey = await generateKeyPair("Ed25519");
  const jsPeerId = peerIdFromPrivateKey(jsKey);
  const js = noise({})({
    peerId: jsPeerId,
    privateKey: jsKey,
    logger: defaultLogger(),
    // Early muxer negotiation (the handshake extensions) is on when muxers are configured.
    upgrader: {
      getStreamMuxers: () => new Map([["/yamux/1.0.0", { protocol: "/yamux/1.0.0" }]]),
    } as never,
  });
  const ours = Ed25519Identity.generate();

  for (const jsRole of ["dialer", "listener"] as const) {
    const [outbound, inbound] = multiaddrConnectionPair();
    const jsEnd = jsRole === "dialer" ? outbound : inbound;
    const ourEnd = fromMessageStream(
      jsRole === "dialer" ? inbound : outbound,
      "/memory/1",
      `/memory/2/p2p/${jsPeerId}`,
    );
    const ourRole = jsRole === "dialer" ? "listener" : "dialer";
    const [theirs, mine] = await Promise.all([
      jsRole === "dialer"
        ? js.secureOutbound(jsEnd, { remotePeer: undefined })
        : js.secureInbound(jsEnd, {}),
      libp2pNoise(ours, { streamMuxers: ["/yamux/1.0.0"] })(ourEnd, upgradeContext(ourRole)),
    ]);
    assertEquals(theirs.remotePeer.toString(), ours.peerId.toString(), `js as ${jsRole}`);
    assertEquals(mine.remotePeerId.toString(), jsPeerId.toString(), `ours as ${ourRole}`);
    assertEquals(mine.remoteStreamMuxers, ["/yamux/1.0.0"], "we read js's extensions");
    assertEquals(theirs.streamMuxer?.protocol, "/yamux/1.0.0", "js reads ours");

    // Transport messages both ways, including one larger than a frame.
    const big = new Uint8Array(200_000).map((_, i) => i * 7);
    const received: Uint8Array[] = [];
    let total = 0;
    const gotAll = Promise.withResolvers<void>();
    theirs.connection.addEventListener("message", (evt: Event) => {
      const data = (evt as Event & { data: Uint8Array | { subarray(): Uint8Array } }).data;
      const chunk = data instanceof Uint8Array ? data : data.subarray();
      received.push(chunk);
      total += chunk.length;
      if (total >= big.length) gotAll.resolve();
    });
    const writer = mine.writable.getWriter();
    await writer.write(big);
    await gotAll.promise;
    const joined = new Uint8Array(total);
    let offset = 0;
    for (const c of received) joined.set(c, offset), offset += c.length;
    assertEquals(joined, big, "js decrypts what we encrypt");

    theirs.connection.send(encoder.encode("hello from js-libp2p"));
    const reader = mine.readable.getReader();
    assertEquals(decoder.decode((await reader.read()).value), "hello from js-libp2p");
    mine.abort();
    theirs.connection.abort(new Error("done"));
  }
});
