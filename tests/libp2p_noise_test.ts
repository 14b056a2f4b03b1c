/**
 * libp2p-noise (libp2p/specs noise/README.md): Noise_XX_25519_ChaChaPoly_SHA256,
 * empty prologue, 2-byte length-prefixed handshake messages, each side's
 * static key authenticated by a signed NoiseHandshakePayload; the dialer
 * refuses a peer other than the one it dialed. The `/noise` negotiation
 * before it belongs to `libp2pUpgrade`, whose messages share socket writes
 * with the handshake's.
 */

import type { MemorySocket } from "../memsocket/mod.ts";
import { MemoryNetwork } from "../memsocket/mod.ts";
import { Ed25519Identity } from "../netcore/identity/mod.ts";
import { MetricsRegistry } from "../netcore/metrics.ts";
import { Multiaddr } from "../netcore/multiaddr.ts";
import { handleProtocol } from "../netcore/negotiate/handle_protocol.ts";
import { MULTISTREAM_PROTOCOL_ID } from "../netcore/negotiate/options.ts";
import { NetworkError } from "../netcore/network_error.ts";
import { getCryptoBackend } from "../netcore/noise/crypto.ts";
import { HandshakeState } from "../netcore/noise/handshake_state.ts";
import {
  LIBP2P_NOISE_PROTOCOL_ID,
  LIBP2P_NOISE_PROTOCOL_NAME,
  libp2pNoise,
  type Libp2pNoiseConnection,
} from "../netcore/noise/libp2p_noise.ts";
import { andThen } from "../netcore/transport/and_then.ts";
import { ByteConnection } from "../netcore/transport/byte_connection.ts";
import type { Connection } from "../netcore/transport/connection.ts";
import { MemoryTransport } from "../netcore/transport/memory_transport.ts";
import { TcpTransport } from "../netcore/transport/tcp_transport.ts";
import type { Transport } from "../netcore/transport/transport.ts";
import { libp2pUpgrade } from "../netcore/upgrade/libp2p_upgrade.ts";
import { assert, assertEquals, assertRejectsCode } from "./_assert.ts";
import { concat } from "./_bytes.ts";
import { msg } from "./_multistream.ts";
import { memoryPair, memorySocketPair, socketConnection, upgradeContext } from "./_pair.ts";
import { readAllFrom } from "./_streams.ts";

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** Checks both ends talk, both ways, through the channel. */
async function exchange(a: Connection, b: Connection): Promise<void> {
  await a.write(encoder.encode("ping"));
  assertEquals(decoder.decode((await b.read())!), "ping");
  await b.write(encoder.encode("pong"));
  assertEquals(decoder.decode((await a.read())!), "pong");
}

/** A fresh registry, seen as the components of network "test" see it. */
function testMetrics() {
  const registry = new MetricsRegistry();
  const metrics = registry.scope({ network: "test" });
  /** A libp2p-profile series of `validator_network_noise_<name>_total`. */
  const count = (name: "handshakes" | "rejected", labels: Record<string, string>) =>
    registry.find(`validator_network_noise_${name}_total`)
      ?.get({ network: "test", profile: "libp2p", ...labels }) ?? 0;
  return { registry, metrics, count };
}

/**
 * Records (copies) every write `socket` is asked to make: what leaves in one
 * socket write, after the connection's cork.
 */
function recordSocketWrites(socket: MemorySocket): Uint8Array[] {
  const writes: Uint8Array[] = [];
  const write = socket.write.bind(socket);
  socket.write = (data: Uint8Array) => {
    writes.push(data.slice());
    return write(data);
  };
  return writes;
}

/** The lengths of the 2-byte-length-prefixed messages `bytes` is made of, exactly. */
function frameLengths(bytes: Uint8Array): number[] {
  const lengths: number[] = [];
  let offset = 0;
  while (offset < bytes.length) {
    const length = (bytes[offset] << 8) | bytes[offset + 1];
    lengths.push(length);
    offset += 2 + length;
  }
  assertEquals(offset, bytes.length, "the messages end exactly at the end of the write");
  return lengths;
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
  const network = new MemoryNetwork();
  await overTransport("memory", () => new MemoryTransport({ network }), "/memory/0");
});

Deno.test("XX over TCP on loopback: both sides see each other's peer id and talk", async () => {
  const tcp = new TcpTransport();
  await overTransport("tcp", () => tcp, "/ip4/127.0.0.1/tcp/0");
});

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

// ---- what shares a socket write ----

Deno.test("the dialer's message 3 leaves with its first transport message in ONE socket write, or alone by the end of the turn", async () => {
  const alice = Ed25519Identity.generate(), bob = Ed25519Identity.generate();
  {
    const [socketA, socketB] = memorySocketPair();
    const writes = recordSocketWrites(socketA);
    const listening = libp2pNoise(bob)(socketConnection(socketB), upgradeContext("listener"));
    const a = await libp2pNoise(alice)(socketConnection(socketA), upgradeContext("dialer"));
    // Message 1 went out; message 3 is corked until the end of this turn.
    assertEquals(writes.length, 1);
    assertEquals(frameLengths(writes[0]), [32]);
    assertEquals(a.write(encoder.encode("first")), undefined);
    const b = await listening;
    assertEquals(decoder.decode((await b.read())!), "first");
    // Message 3 (32 + 16 + payload + 16 bytes) and the transport message (5 + 16), in one write.
    assertEquals(writes.length, 2);
    const [message3, transport] = frameLengths(writes[1]);
    assert(message3 > 32 + 16 + 16, `message 3 of ${message3} bytes`);
    assertEquals(transport, 5 + 16);
    a.abort();
    b.abort();
  }
  {
    // A dialer that writes nothing: message 3 leaves alone, and the listener completes.
    const [socketA, socketB] = memorySocketPair();
    const writes = recordSocketWrites(socketA);
    const listening = libp2pNoise(bob)(socketConnection(socketB), upgradeContext("listener"));
    const a = await libp2pNoise(alice)(socketConnection(socketA), upgradeContext("dialer"));
    const b = await listening;
    assert(b.remotePeerId.equals(alice.peerId));
    assertEquals(writes.length, 2);
    assertEquals(frameLengths(writes[1]).length, 1, "message 3 alone");
    a.abort();
    b.abort();
  }
});

Deno.test("libp2pUpgrade: the dialer's /noise proposal leaves with message 1, the listener's agreement with message 2, each in ONE socket write", async () => {
  const alice = Ed25519Identity.generate(), bob = Ed25519Identity.generate();
  const [socketA, socketB] = memorySocketPair();
  const dialerWrites = recordSocketWrites(socketA);
  const listenerWrites = recordSocketWrites(socketB);
  const { metrics, count } = testMetrics();
  const [a, b] = await Promise.all([
    libp2pUpgrade(alice, { metrics })(
      socketConnection(socketA),
      upgradeContext("dialer", undefined, Multiaddr.parse(`/memory/2/p2p/${bob.peerId}`)),
    ),
    libp2pUpgrade(bob, { metrics })(socketConnection(socketB), upgradeContext("listener")),
  ]);
  assert(a.remotePeer.equals(bob.peerId));
  assert(b.remotePeer.equals(alice.peerId));
  assertEquals([a.profile, b.profile], ["libp2p", "libp2p"]);
  assertEquals(count("handshakes", { role: "dialer" }), 1);
  assertEquals(count("handshakes", { role: "listener" }), 1);

  const negotiation = concat([msg(MULTISTREAM_PROTOCOL_ID), msg(LIBP2P_NOISE_PROTOCOL_ID)]);
  // Dialer: header, proposal and message 1 (a bare ephemeral key), nothing else.
  const first = dialerWrites[0];
  assertEquals(first.subarray(0, negotiation.length), negotiation, "the dialer proposes /noise");
  assertEquals(frameLengths(first.subarray(negotiation.length)), [32], "with message 1");
  // Listener: header, agreement and message 2 (e, ee, s, es and the signed payload).
  const answer = listenerWrites[0];
  assertEquals(answer.subarray(0, negotiation.length), negotiation, "the listener agrees");
  const [message2] = frameLengths(answer.subarray(negotiation.length));
  assert(message2 > 32 + 48 + 16, `message 2 of ${message2} bytes`);
  // Then message 3 opens the dialer's next write.
  assert(dialerWrites.length >= 2, "message 3 went out");
  const message3 = (dialerWrites[1][0] << 8) | dialerWrites[1][1];
  assert(message3 > 48 + 16 && message3 + 2 <= dialerWrites[1].length, `message 3: ${message3}`);
  a.abort();
  b.abort();
});

Deno.test("libp2pUpgrade: a listener that does not speak /noise refuses it, and the dialer fails with UNSUPPORTED_PROTOCOL", async () => {
  const alice = Ed25519Identity.generate();
  // With metrics of its own, and with none given (the default registry).
  for (const metrics of [testMetrics().metrics, undefined]) {
    const what = metrics === undefined ? "default metrics" : "a scoped registry";
    const [rawA, rawB] = memoryPair();
    const dialing = libp2pUpgrade(alice, { metrics })(rawA, upgradeContext("dialer"));
    // A listener that knows only TLS: it reads the proposal and answers "na".
    const refusing = handleProtocol(rawB, ["/tls/1.0.0"]).catch((err) => err);
    const err = await dialing.then(
      () => assert(false, `${what}: the dial must fail`),
      (err) => err,
    );
    assert(
      NetworkError.is(err, "UNSUPPORTED_PROTOCOL"),
      `${what}: expected UNSUPPORTED_PROTOCOL, got ${err?.stack ?? err}`,
    );
    // The dialer dropped the connection: the listener's negotiation ends too.
    assert(NetworkError.is(await refusing), `${what}: the listener's negotiation failed`);
    rawB.abort();
  }
});

// ---- who we talk to ----

Deno.test("the dialer checks the /p2p/ peer id of the address it dialed", async () => {
  const alice = Ed25519Identity.generate(), bob = Ed25519Identity.generate();
  const mallory = Ed25519Identity.generate();
  const dialed = Multiaddr.parse(`/memory/2/p2p/${bob.peerId}`);
  // Right peer: accepted.
  {
    const { metrics, count } = testMetrics();
    const [rawA, rawB] = memoryPair();
    const [a, b] = await Promise.all([
      libp2pNoise(alice, { metrics })(rawA, upgradeContext("dialer", undefined, dialed)),
      libp2pNoise(bob, { metrics })(rawB, upgradeContext("listener")),
    ]);
    assert(a.remotePeerId.equals(bob.peerId));
    assertEquals(count("handshakes", { role: "dialer" }), 1);
    assertEquals(count("handshakes", { role: "listener" }), 1);
    a.abort();
    b.abort();
  }
  // Mallory answers on an address that names bob: refused before message 3 is sent,
  // whether the peer id comes from the dialed address or the connection's remote address.
  for (const where of ["dialedAddr", "remoteAddr"] as const) {
    const { metrics, count } = testMetrics();
    const [rawA, rawB] = memoryPair(
      where === "remoteAddr" ? { remoteAddr: `/memory/2/p2p/${bob.peerId}` } : {},
    );
    const context = where === "dialedAddr"
      ? upgradeContext("dialer", undefined, dialed)
      : upgradeContext("dialer");
    const [dial, accept] = [
      libp2pNoise(alice, { metrics })(rawA, context),
      libp2pNoise(mallory, { metrics })(rawB, upgradeContext("listener")),
    ];
    const err = await assertRejectsCode(dial, "UNAUTHORIZED");
    assert(
      err.message.includes(bob.peerId.toString()) && err.message.includes(`${mallory.peerId}`),
      `${where}: ${err.message}`,
    );
    await assertRejectsCode(accept, "HANDSHAKE_FAILED");
    assertEquals(count("rejected", { reason: "unauthorized" }), 1, where);
    assertEquals(count("handshakes", { role: "dialer" }), 0, where);
  }
});

Deno.test("an explicit expectedPeerId overrides the address and is enforced", async () => {
  const alice = Ed25519Identity.generate(), bob = Ed25519Identity.generate();
  const carol = Ed25519Identity.generate();
  const [rawA, rawB] = memoryPair();
  const [dial, accept] = [
    libp2pNoise(alice, { expectedPeerId: carol.peerId })(
      rawA,
      upgradeContext("dialer", undefined, Multiaddr.parse(`/memory/2/p2p/${bob.peerId}`)),
    ),
    libp2pNoise(bob)(rawB, upgradeContext("listener")),
  ];
  await assertRejectsCode(dial, "UNAUTHORIZED");
  await assertRejectsCode(accept, "HANDSHAKE_FAILED");
});

// ---- tampering ----

/** Copies `from` to `to`, flipping one bit at byte `flipAt` of the stream (if given). */
async function relay(from: Connection, to: Connection, flipAt?: number): Promise<void> {
  let position = 0;
  try {
    for (let chunk = await from.read(); chunk !== null; chunk = await from.read()) {
      if (flipAt !== undefined && flipAt >= position && flipAt < position + chunk.length) {
        chunk[flipAt - position] ^= 0x04;
      }
      position += chunk.length;
      await to.write(chunk);
    }
    await to.closeWrite();
  } catch {
    from.abort();
    to.abort();
  }
}

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
  void relay(relayA, relayB, direction === "toListener" ? offset : undefined);
  void relay(relayB, relayA, direction === "toDialer" ? offset : undefined);
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
      await assertRejectsCode(dial.value.read(), "CONNECTION_RESET", "CONNECTION_CLOSED");
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
  await rawA.write(new Uint8Array([0, message.length, ...message]));
  const err = await assertRejectsCode(accept, "HANDSHAKE_FAILED");
  assert(err.message.includes("message 1"), err.message);
});

Deno.test("an out-of-order message (message 3 bytes where message 1 belongs) is refused", async () => {
  const [rawA, rawB] = memoryPair();
  const bob = Ed25519Identity.generate();
  const accept = libp2pNoise(bob)(rawB, upgradeContext("listener"));
  // 64 bytes: the size of an encrypted static key and an empty payload tag.
  await rawA.write(new Uint8Array([0, 64, ...new Uint8Array(64)]));
  await assertRejectsCode(accept, "HANDSHAKE_FAILED");
});

// ---- time ----

Deno.test("a peer that stops mid-handshake: TIMEOUT, and the connection is aborted", async () => {
  const [rawA, rawB] = memoryPair();
  const bob = Ed25519Identity.generate();
  const { metrics, count } = testMetrics();
  const started = performance.now();
  const accept = libp2pNoise(bob, { handshakeTimeout: 150, metrics })(
    rawB,
    upgradeContext("listener"),
  );
  // Message 1 only, then silence.
  const initiator = new HandshakeState({
    protocolName: LIBP2P_NOISE_PROTOCOL_NAME,
    initiator: true,
    s: getCryptoBackend().dh.generateKeyPair(),
  });
  const message = initiator.writeMessage(new Uint8Array(0));
  await rawA.write(new Uint8Array([0, message.length, ...message]));
  await assertRejectsCode(accept, "TIMEOUT");
  const elapsed = performance.now() - started;
  assert(elapsed >= 140 && elapsed < 2_000, `timed out after ${elapsed} ms`);
  assertEquals(count("rejected", { reason: "timeout" }), 1);
  // The silent peer's side was reset (a reset drops message 2 too, as TCP's RST would).
  await assertRejectsCode(rawA.read(), "CONNECTION_RESET");
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
  await a.write(encoder.encode("early"));
  await a.closeWrite();
  const b = await accepting;
  assertEquals(decoder.decode(await readAllFrom(b)), "early");
  a.abort();
  b.abort();
});

// ---- interop with js-libp2p ----

/** What this test uses of a js-libp2p `MessageStream`. */
interface MessageStream {
  addEventListener(type: string, fn: (evt: Event) => void): void;
  send(data: Uint8Array): boolean;
  onDrain(): Promise<void>;
  close(): Promise<void>;
  abort(err: Error): void;
}

/** The bytes of a js-libp2p "message" event. */
function messageData(evt: Event): Uint8Array {
  const data = (evt as Event & { data: Uint8Array | { subarray(): Uint8Array } }).data;
  return data instanceof Uint8Array ? data : data.subarray();
}

/**
 * One end of a js-libp2p `MessageStream` as our `Connection`, so the two
 * implementations can face each other over js-libp2p's own in-memory
 * connection pair.
 */
class MessageStreamConnection extends ByteConnection {
  readonly localAddr: Multiaddr;
  readonly remoteAddr: Multiaddr;
  readonly closed: Promise<void>;
  readonly #stream: MessageStream;
  readonly #chunks: Uint8Array[] = [];
  #ended = false;
  #error: NetworkError | undefined;
  #wake: PromiseWithResolvers<void> | undefined;

  constructor(stream: MessageStream, localAddr: string, remoteAddr: string) {
    super();
    this.#stream = stream;
    this.localAddr = Multiaddr.parse(localAddr);
    this.remoteAddr = Multiaddr.parse(remoteAddr);
    const closed = Promise.withResolvers<void>();
    this.closed = closed.promise;
    stream.addEventListener("message", (evt) => {
      this.#chunks.push(messageData(evt).slice());
      this.#notify();
    });
    stream.addEventListener("remoteCloseWrite", () => {
      this.#ended = true;
      this.#notify();
    });
    stream.addEventListener("close", (evt) => {
      const error = (evt as Event & { error?: Error }).error;
      if (error !== undefined) {
        this.#error ??= NetworkError.wrap(error, "CONNECTION_RESET", "js-libp2p stream");
      }
      this.#ended = true;
      this.#notify();
      closed.resolve();
    });
  }

  #notify(): void {
    const wake = this.#wake;
    this.#wake = undefined;
    wake?.resolve();
  }

  async read(): Promise<Uint8Array | null> {
    while (true) {
      const chunk = this.#chunks.shift();
      if (chunk !== undefined) return chunk;
      if (this.#error !== undefined) throw this.#error;
      if (this.#ended) return null;
      this.#wake ??= Promise.withResolvers<void>();
      await this.#wake.promise;
    }
  }

  async readInto(buffer: Uint8Array): Promise<number | null> {
    const chunk = await this.read();
    if (chunk === null) return null;
    const n = Math.min(chunk.length, buffer.length);
    buffer.set(chunk.subarray(0, n));
    if (n < chunk.length) this.#chunks.unshift(chunk.subarray(n));
    return n;
  }

  cancelRead(): void {
    this.#ended = true;
    this.#chunks.length = 0;
  }

  write(chunk: Uint8Array): Promise<void> | undefined {
    return this.#stream.send(chunk.slice()) ? undefined : this.#stream.onDrain();
  }

  closeWrite(): Promise<void> {
    return this.#stream.close();
  }

  close(): Promise<void> {
    return this.#stream.close();
  }

  abort(reason?: unknown): void {
    this.#stream.abort(reason instanceof Error ? reason : new Error(String(reason)));
  }
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
    const ourEnd = new MessageStreamConnection(
      jsRole === "dialer" ? inbound : outbound,
      "/memory/1",
      "/memory/2",
    );
    const ourRole = jsRole === "dialer" ? "listener" : "dialer";
    const dialedAddr = ourRole === "dialer"
      ? Multiaddr.parse(`/memory/2/p2p/${jsPeerId}`)
      : undefined;
    const [theirs, mine] = await Promise.all([
      jsRole === "dialer"
        ? js.secureOutbound(jsEnd, { remotePeer: undefined })
        : js.secureInbound(jsEnd, {}),
      libp2pNoise(ours, { streamMuxers: ["/yamux/1.0.0"] })(
        ourEnd,
        upgradeContext(ourRole, undefined, dialedAddr),
      ),
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
      const chunk = messageData(evt);
      received.push(chunk.slice());
      total += chunk.length;
      if (total >= big.length) gotAll.resolve();
    });
    await mine.write(big);
    await gotAll.promise;
    assertEquals(concat(received), big, "js decrypts what we encrypt");

    theirs.connection.send(encoder.encode("hello from js-libp2p"));
    assertEquals(decoder.decode((await mine.read())!), "hello from js-libp2p");
    mine.abort();
    theirs.connection.abort(new Error("done"));
  }
});
