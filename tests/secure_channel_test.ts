/**
 * The Noise transport phase as libp2p-noise specifies it: 2-byte big-endian
 * length, then ciphertext||tag, at most 65535 bytes; transparent to the bytes
 * it carries; any tampering fails that one connection. The channel is a
 * `Connection`: byte methods, and Web Streams made over them on first use.
 */

import fc from "fast-check";
import { createHash } from "node:crypto";
import type { MemorySocket } from "../memsocket/mod.ts";
import { ByteReader } from "../netcore/byte_reader.ts";
import { Multiaddr } from "../netcore/multiaddr.ts";
import { NetworkError } from "../netcore/network_error.ts";
import { CipherState } from "../netcore/noise/cipher_state.ts";
import { type CryptoBackend, getCryptoBackend } from "../netcore/noise/crypto.ts";
import { SecureChannel } from "../netcore/noise/secure_channel.ts";
import type { Connection } from "../netcore/transport/connection.ts";
import { TcpTransport } from "../netcore/transport/tcp_transport.ts";
import { assert, assertEquals, assertRejectsCode } from "./_assert.ts";
import { concat, randomBytes, readAll } from "./_bytes.ts";
import { acceptOne, memoryPair, memorySocketPair, socketConnection } from "./_pair.ts";
import { recordingPair } from "./_pipe.ts";
import { readAllFrom } from "./_streams.ts";

const MAX_PLAINTEXT = 65535 - 16;
const EMPTY = new Uint8Array(0);
const encoder = new TextEncoder();
const decoder = new TextDecoder();

// ---- fixtures ----

type Kind = "memory" | "tcp";

/** Two raw connected ends and a way to release everything. */
async function rawPair(kind: Kind): Promise<[Connection, Connection, () => Promise<void>]> {
  const [a, b] = kind === "memory" ? memoryPair() : await tcpPair();
  return [a, b, () => release(a, b)];
}

/** Aborts both ends and waits until they are released. */
async function release(a: Connection, b: Connection): Promise<void> {
  a.abort();
  b.abort();
  await Promise.all([a.closed, b.closed]);
}

/** Two ends of one loopback TCP connection. */
async function tcpPair(): Promise<[Connection, Connection]> {
  const tcp = new TcpTransport();
  const listener = await tcp.listen(Multiaddr.parse("/ip4/127.0.0.1/tcp/0"));
  const [a, b] = await Promise.all([tcp.dial(listener.addr), acceptOne(listener)]);
  await listener.close();
  return [a, b];
}

interface Keys {
  aToB: Uint8Array;
  bToA: Uint8Array;
  backend: CryptoBackend;
}

function randomKeys(backend = getCryptoBackend()): Keys {
  return {
    aToB: crypto.getRandomValues(new Uint8Array(32)),
    bToA: crypto.getRandomValues(new Uint8Array(32)),
    backend,
  };
}

/** A channel on `conn` as if a handshake had just agreed on `send`/`receive` keys. */
function channelOn(
  conn: Connection,
  send: Uint8Array,
  receive: Uint8Array,
  backend: CryptoBackend,
): SecureChannel {
  const cipher = backend.cipher("ChaChaPoly");
  return new SecureChannel({
    connection: conn,
    reader: new ByteReader(conn),
    encrypter: new CipherState(cipher, send),
    decrypter: new CipherState(cipher, receive),
    remoteStaticKey: new Uint8Array(32),
    handshakeHash: new Uint8Array(32),
  });
}

async function securePair(
  kind: Kind,
  keys = randomKeys(),
): Promise<[SecureChannel, SecureChannel, () => Promise<void>]> {
  const [a, b, release] = await rawPair(kind);
  return [
    channelOn(a, keys.aToB, keys.bToA, keys.backend),
    channelOn(b, keys.bToA, keys.aToB, keys.backend),
    release,
  ];
}

/**
 * Records (copies) every write `socket` is asked to make, and lets each go
 * on only once `gate` resolves (at once when there is none).
 */
function recordSocketWrites(socket: MemorySocket, gate?: Promise<void>): Uint8Array[] {
  const writes: Uint8Array[] = [];
  const write = socket.write.bind(socket);
  socket.write = async (data: Uint8Array) => {
    writes.push(data.slice());
    if (gate !== undefined) await gate;
    return await write(data);
  };
  return writes;
}

/** Frames a ciphertext with the libp2p-noise 2-byte big-endian length. */
function frame(ciphertext: Uint8Array): Uint8Array {
  const out = new Uint8Array(2 + ciphertext.length);
  out[0] = ciphertext.length >>> 8;
  out[1] = ciphertext.length & 0xff;
  out.set(ciphertext, 2);
  return out;
}

/** Splits a buffer of frames into their ciphertexts, checking the framing. */
function parseFrames(bytes: Uint8Array): Uint8Array[] {
  const out: Uint8Array[] = [];
  let offset = 0;
  while (offset < bytes.length) {
    const length = (bytes[offset] << 8) | bytes[offset + 1];
    out.push(bytes.subarray(offset + 2, offset + 2 + length));
    offset += 2 + length;
  }
  assertEquals(offset, bytes.length, "frames end exactly at the end of the buffer");
  return out;
}

/** Decrypts `frames` in order with a fresh receiver for `key`. */
function decryptAll(frames: Uint8Array[], key: Uint8Array, backend: CryptoBackend): Uint8Array {
  const receiver = new CipherState(backend.cipher("ChaChaPoly"), key);
  return concat(frames.map((f) => receiver.decryptWithAd(EMPTY, f)));
}

const delay = (ms: number) => new Promise((r) => setTimeout(r, ms));

// ---- the wire format ----

Deno.test("a transport message is a 2-byte big-endian length and ChaChaPoly ciphertext||tag", async () => {
  for (const edge of ["methods", "streams"] as const) {
    const [a, b, release] = await rawPair("memory");
    const keys = randomKeys();
    const channel = channelOn(a, keys.aToB, keys.bToA, keys.backend);
    const message = encoder.encode("hello noise");
    if (edge === "methods") await channel.write(message);
    else await channel.writable.getWriter().write(message);
    const wire = await new ByteReader(b).readExactly(2 + message.length + 16);
    assertEquals([wire[0], wire[1]], [0, message.length + 16], edge);
    const receiver = new CipherState(keys.backend.cipher("ChaChaPoly"), keys.aToB);
    assertEquals(receiver.decryptWithAd(EMPTY, wire.subarray(2)), message, edge);
    await release();
  }
});

Deno.test("a large write is split into full 65535-byte frames and handed down in ONE lower write", async () => {
  const { a, b, aToB } = recordingPair();
  const keys = randomKeys();
  const channel = channelOn(a, keys.aToB, keys.bToA, keys.backend);
  const data = randomBytes(3 * MAX_PLAINTEXT + 1000);
  const written = channel.write(data);
  // Encrypted and handed down before write() returns.
  assertEquals(aToB.length, 1);
  const frames = parseFrames(aToB[0]);
  assertEquals(frames.map((f) => f.length), [65535, 65535, 65535, 1016]);
  assertEquals(decryptAll(frames, keys.aToB, keys.backend), data);
  await written;
  // And that is exactly what the peer receives.
  assertEquals(await new ByteReader(b).readExactly(aToB[0].length), aToB[0]);
  await release(a, b);
});

Deno.test("a huge write goes down in slices of 16 full frames, never one giant buffer", async () => {
  const { a, b, aToB } = recordingPair();
  const keys = randomKeys();
  const channel = channelOn(a, keys.aToB, keys.bToA, keys.backend);
  const data = randomBytes(5 * 1024 * 1024);
  const receiving = readAllFrom(b);
  await channel.write(data);
  await channel.closeWrite();
  const received = await receiving;
  assert(aToB.length >= 5, `${aToB.length} lower writes`);
  for (const w of aToB) assert(w.length <= 16 * 65537, `a lower write of ${w.length} bytes`);
  assertEquals(received, concat(aToB), "the peer received the lower writes, in order");
  assertEquals(decryptAll(parseFrames(received), keys.aToB, keys.backend), data);
  await release(a, b);
});

Deno.test("small writes of one turn leave as ONE Noise message in ONE socket write; those made while it is in flight leave together in the next", async () => {
  const [socketA, socketB] = memorySocketPair();
  const gate = Promise.withResolvers<void>();
  const socketWrites = recordSocketWrites(socketA, gate.promise);
  const [a, b] = [socketConnection(socketA), socketConnection(socketB)];
  const keys = randomKeys();
  const sender = channelOn(a, keys.aToB, keys.bToA, keys.backend);
  const receiver = channelOn(b, keys.bToA, keys.aToB, keys.backend);
  const messages = Array.from({ length: 99 }, (_, i) => new Uint8Array(100).fill(i));

  // One turn: 50 small writes, each taken at once (copied into the turn's batch).
  const returned = messages.slice(0, 50).map((m) => sender.write(m));
  assert(returned.every((r) => r === undefined), "small writes do not wait for the socket");
  assertEquals(socketWrites.length, 0, "nothing leaves before the end of the turn");
  await delay(5);
  assertEquals(
    socketWrites.map((w) => parseFrames(w).map((f) => f.length)),
    [[50 * 100 + 16]],
    "one socket write, one message",
  );

  // That socket write is held in flight; 49 more writes over several turns.
  for (let i = 50; i < 99; i++) {
    assertEquals(sender.write(messages[i]), undefined);
    if (i % 10 === 0) await delay(1);
  }
  await delay(5);
  assertEquals(
    socketWrites.length,
    1,
    "nothing more leaves while the first socket write is in flight",
  );
  gate.resolve();
  const reading = readAllFrom(receiver);
  await sender.closeWrite();
  assertEquals(
    socketWrites.map((w) => parseFrames(w).map((f) => f.length)),
    [[50 * 100 + 16], [49 * 100 + 16]],
    "the 49 writes made meanwhile went down in one message, in one socket write",
  );
  assertEquals(await reading, concat(messages));
  await release(a, b);
});

// ---- transparency ----

for (const kind of ["memory", "tcp"] as const) {
  Deno.test(`64 MiB through the channel over ${kind} arrive intact (SHA-256 compared)`, async () => {
    const [a, b, release] = await securePair(kind);
    const total = 64 * 1024 * 1024;
    const block = randomBytes(1024 * 1024 + 7);
    const sent = createHash("sha256");
    const writing = (async () => {
      let offset = 0;
      let i = 0;
      while (offset < total) {
        // Odd sizes so that frames and writes never line up.
        const size = Math.min(total - offset, 100_000 + (i++ * 7919) % 900_000);
        const chunk = block.subarray(0, size);
        chunk[0] = i & 0xff;
        sent.update(chunk);
        await a.write(chunk);
        offset += size;
      }
      await a.closeWrite();
    })();
    const received = createHash("sha256");
    let count = 0;
    for (let chunk = await b.read(); chunk !== null; chunk = await b.read()) {
      received.update(chunk);
      count += chunk.length;
    }
    await writing;
    assertEquals(count, total);
    assertEquals(received.digest("hex"), sent.digest("hex"));
    await release();
  });
}

Deno.test("chunks read from the channel over TCP stay intact while later ones arrive (the reused read buffer never shows through)", async () => {
  const [a, b, release] = await securePair("tcp");
  // Short messages (the TypeScript AEAD) and long ones (node:crypto), mixed.
  const sizes = Array.from(
    { length: 400 },
    (_, i) => i % 3 === 0 ? 1 + (i * 37) % 900 : 3000 + i * 97,
  );
  const messages = sizes.map((size, i) => new Uint8Array(size).fill(i & 0xff));
  const writing = (async () => {
    for (const m of messages) await a.write(m);
    await a.closeWrite();
  })();
  // Keep every chunk, read on to the end, only then compare.
  const kept: Uint8Array[] = [];
  for (let chunk = await b.read(); chunk !== null; chunk = await b.read()) kept.push(chunk);
  await writing;
  const got = concat(kept);
  const expected = concat(messages);
  assertEquals(got.length, expected.length);
  assertEquals(got.findIndex((byte, i) => byte !== expected[i]), -1);
  await release();
});

Deno.test("property: the channel is transparent both ways for any message sizes and splits", async () => {
  await fc.assert(
    fc.asyncProperty(
      fc.array(fc.integer({ min: 0, max: 3 * MAX_PLAINTEXT }), { maxLength: 12 }),
      fc.array(fc.integer({ min: 0, max: 70_000 }), { maxLength: 12 }),
      fc.constantFrom("noble", "native"),
      async (sizesAB, sizesBA, backendName) => {
        const keys = randomKeys(getCryptoBackend(backendName as "noble" | "native"));
        const [a, b, release] = await securePair("memory", keys);
        const send = async (channel: SecureChannel, sizes: number[]) => {
          const messages = sizes.map((n) => randomBytes(n));
          for (const m of messages) await channel.write(m);
          await channel.closeWrite();
          return concat(messages);
        };
        const [sentAB, sentBA, gotAB, gotBA] = await Promise.all([
          send(a, sizesAB),
          send(b, sizesBA),
          readAllFrom(b),
          readAllFrom(a),
        ]);
        assertEquals(gotAB, sentAB);
        assertEquals(gotBA, sentBA);
        await release();
      },
    ),
    { numRuns: 25 },
  );
});

Deno.test("the caller may reuse its buffer as soon as write() returns (or its promise resolves)", async () => {
  const [a, b, release] = await securePair("memory");
  const buffer = new Uint8Array(1000);
  for (let i = 0; i < 5; i++) {
    buffer.fill(i);
    await a.write(buffer);
  }
  // A large one too, which the channel hands down without a copy of ours.
  const large = new Uint8Array(200_000).fill(7);
  await a.write(large);
  large.fill(8);
  await a.closeWrite();
  const got = await readAllFrom(b);
  assertEquals(got.length, 5 * 1000 + 200_000);
  for (let i = 0; i < 5; i++) {
    assertEquals(got.subarray(i * 1000, (i + 1) * 1000).every((x) => x === i), true);
  }
  assertEquals(got.subarray(5000).every((x) => x === 7), true);
  await release();
});

Deno.test("readInto: a message larger than the buffer is read in parts, nothing lost, then null at the end", async () => {
  const [a, b, release] = await securePair("memory");
  const data = randomBytes(10_000);
  await a.write(data);
  await a.write(encoder.encode("tail"));
  await a.closeWrite();
  const buffer = new Uint8Array(3_000);
  const parts: Uint8Array[] = [];
  for (let n = await b.readInto(buffer); n !== null; n = await b.readInto(buffer)) {
    assert(n > 0 && n <= buffer.length, `read ${n} bytes`);
    parts.push(buffer.slice(0, n));
  }
  assertEquals(concat(parts), concat([data, encoder.encode("tail")]));
  // Both writes of the turn are one message of 10 004 bytes, read in parts.
  assertEquals(parts.map((p) => p.length), [3000, 3000, 3000, 1004]);
  await release();
});

// ---- tampering, truncation and sizes ----

Deno.test("a bit flipped in a transport message fails that connection with PROTOCOL_VIOLATION, and only that one", async () => {
  const keys = randomKeys();
  const [rawA, rawB, releaseAB] = await rawPair("tcp");
  const [c, d, releaseCD] = await securePair("tcp");
  const victim = channelOn(rawA, keys.aToB, keys.bToA, keys.backend);
  // The other end is a raw socket: we forge what a peer (or a man in the middle) would send.
  const forger = new CipherState(keys.backend.cipher("ChaChaPoly"), keys.bToA);
  const good = forger.encryptWithAd(EMPTY, encoder.encode("first"));
  const bad = forger.encryptWithAd(EMPTY, encoder.encode("second")).slice();
  bad[3] ^= 0x10;
  await rawB.write(concat([frame(good), frame(bad)]));

  assertEquals(decoder.decode((await victim.read())!), "first");
  await assertRejectsCode(victim.read(), "PROTOCOL_VIOLATION");
  // The channel stays failed, both ways.
  await assertRejectsCode(victim.read(), "PROTOCOL_VIOLATION");
  await assertRejectsCode(async () => await victim.write(new Uint8Array(1)), "PROTOCOL_VIOLATION");
  // The connection under it was aborted: the forger's side sees it end or reset.
  await victim.closed;
  await rawB.read().then((chunk) => assertEquals(chunk, null), () => {});

  // The other connection is untouched.
  await c.write(encoder.encode("still fine"));
  assertEquals(decoder.decode((await d.read())!), "still fine");
  await releaseAB();
  await releaseCD();
});

Deno.test("a length shorter than the 16-byte tag is a PROTOCOL_VIOLATION", async () => {
  const keys = randomKeys();
  for (const length of [0, 1, 15]) {
    const [rawA, rawB, release] = await rawPair("memory");
    const victim = channelOn(rawA, keys.aToB, keys.bToA, keys.backend);
    await rawB.write(new Uint8Array([0, length, ...new Uint8Array(length)]));
    const err = await assertRejectsCode(victim.read(), "PROTOCOL_VIOLATION");
    assert(err.message.includes("shorter than its tag"), err.message);
    await release();
  }
});

Deno.test("a frame truncated by the end of the stream fails with CONNECTION_CLOSED", async () => {
  const keys = randomKeys();
  for (const truncated of [new Uint8Array([0]), new Uint8Array([0, 100, 1, 2, 3])]) {
    const [rawA, rawB, release] = await rawPair("memory");
    const victim = channelOn(rawA, keys.aToB, keys.bToA, keys.backend);
    await rawB.write(truncated);
    await rawB.closeWrite();
    await assertRejectsCode(victim.read(), "CONNECTION_CLOSED");
    await release();
  }
});

Deno.test("the largest frame the prefix can express (65535 bytes) is read whole; garbage of that size fails authentication", async () => {
  const keys = randomKeys();
  const [rawA, rawB, release] = await rawPair("memory");
  const victim = channelOn(rawA, keys.aToB, keys.bToA, keys.backend);
  const forger = new CipherState(keys.backend.cipher("ChaChaPoly"), keys.bToA);
  const largest = randomBytes(MAX_PLAINTEXT);
  const sealed = forger.encryptWithAd(EMPTY, largest);
  assertEquals(sealed.length, 65535);
  const garbage = frame(randomBytes(65535));
  assertEquals([garbage[0], garbage[1]], [0xff, 0xff]);
  const sending = (async () => {
    await rawB.write(frame(sealed));
    await rawB.write(garbage);
  })();
  assertEquals(await victim.read(), largest);
  await assertRejectsCode(victim.read(), "PROTOCOL_VIOLATION");
  await sending.catch(() => {});
  await release();
});

Deno.test("a frame replayed or reordered fails authentication (the nonce moved on)", async () => {
  const keys = randomKeys();
  const [rawA, rawB, release] = await rawPair("memory");
  const victim = channelOn(rawA, keys.aToB, keys.bToA, keys.backend);
  const forger = new CipherState(keys.backend.cipher("ChaChaPoly"), keys.bToA);
  const one = forger.encryptWithAd(EMPTY, new Uint8Array([1]));
  await rawB.write(concat([frame(one), frame(one)]));
  assertEquals(await victim.read(), new Uint8Array([1]));
  await assertRejectsCode(victim.read(), "PROTOCOL_VIOLATION");
  await release();
});

Deno.test("empty transport messages are legal and skipped: the reader never sees an empty chunk", async () => {
  const keys = randomKeys();
  const [rawA, rawB, release] = await rawPair("memory");
  const victim = channelOn(rawA, keys.aToB, keys.bToA, keys.backend);
  const forger = new CipherState(keys.backend.cipher("ChaChaPoly"), keys.bToA);
  const empty = () => frame(forger.encryptWithAd(EMPTY, EMPTY));
  await rawB.write(
    concat([empty(), empty(), frame(forger.encryptWithAd(EMPTY, encoder.encode("x")))]),
  );
  await rawB.write(empty());
  await rawB.closeWrite();
  assertEquals(decoder.decode((await victim.read())!), "x");
  assertEquals(await victim.read(), null);
  await release();
});

// ---- half-close, abort, backpressure ----

Deno.test("half-close: closing our write side ends the peer's reads after the last frame; the peer can still answer", async () => {
  for (const kind of ["memory", "tcp"] as const) {
    for (const edge of ["methods", "streams"] as const) {
      const [a, b, release] = await securePair(kind);
      if (edge === "methods") {
        await a.write(encoder.encode("request"));
        await a.closeWrite();
        assertEquals(decoder.decode(await readAllFrom(b)), "request");
        await b.write(encoder.encode("response"));
        await b.closeWrite();
        assertEquals(decoder.decode(await readAllFrom(a)), "response");
      } else {
        const aw = a.writable.getWriter();
        await aw.write(encoder.encode("request"));
        await aw.close();
        assertEquals(decoder.decode(await readAll(b.readable)), "request");
        const bw = b.writable.getWriter();
        await bw.write(encoder.encode("response"));
        await bw.close();
        assertEquals(decoder.decode(await readAll(a.readable)), "response");
      }
      // Writing after our half-close is refused.
      await assertRejectsCode(async () => await a.write(new Uint8Array(1)), "CONNECTION_CLOSED");
      await Promise.all([a.close(), b.close()]);
      await release();
    }
  }
});

Deno.test("close() sends what the connection below still holds, then closes it", async () => {
  const [a, b, release] = await securePair("tcp");
  const data = randomBytes(300_000);
  const written = a.write(data);
  const reading = readAllFrom(b);
  await written;
  await Promise.all([a.close(), reading.then(() => b.close())]);
  assertEquals(await reading, data);
  await release();
});

Deno.test("abort() resets: our reads and writes fail, the peer's reads fail or end, the connection is released", async () => {
  for (const kind of ["memory", "tcp"] as const) {
    const [a, b, release] = await securePair(kind);
    const reading = a.read();
    const peerReading = b.read();
    a.abort(new NetworkError("ABORTED", "test abort"));
    await assertRejectsCode(reading, "ABORTED");
    await assertRejectsCode(async () => await a.write(new Uint8Array(1)), "ABORTED");
    // A reset or an end, as the transport sees it; never data.
    await peerReading.then(
      (chunk) => assertEquals(chunk, null),
      (err) => assert(NetworkError.is(err), String(err)),
    );
    await a.closed;
    await release();
  }
});

Deno.test("writable.abort() propagates down: the peer sees the connection go", async () => {
  const [a, b, release] = await securePair("memory");
  const peerReading = b.read();
  await a.writable.abort(new Error("give up"));
  await assertRejectsCode(peerReading, "CONNECTION_RESET");
  await release();
});

Deno.test("backpressure: a writer whose peer does not read is held back (no unbounded buffering)", async () => {
  for (const edge of ["methods", "streams"] as const) {
    const [a, , release] = await securePair("memory");
    const writer = edge === "streams" ? a.writable.getWriter() : undefined;
    let accepted = 0;
    const chunk = new Uint8Array(64 * 1024);
    const pump = (async () => {
      try {
        while (true) {
          await (writer !== undefined ? writer.write(chunk) : a.write(chunk));
          accepted += chunk.length;
        }
      } catch {
        // released at the end of the test
      }
    })();
    await delay(200);
    // The memory pipe holds 256 KiB, the socket and the channel about 1 MiB, plus one write.
    assert(accepted > 0, `${edge}: nothing was accepted`);
    assert(accepted < 2 * 1024 * 1024, `${edge}: accepted ${accepted} bytes with nobody reading`);
    await release();
    await pump;
  }
});

Deno.test("reads are pulled: nothing is decrypted ahead of the consumer", async () => {
  const keys = randomKeys();
  const [rawA, rawB, release] = await rawPair("memory");
  let decrypted = 0;
  const cipher = keys.backend.cipher("ChaChaPoly");
  const counting = new CipherState(cipher, keys.bToA);
  const channel = new SecureChannel({
    connection: rawA,
    reader: new ByteReader(rawA),
    encrypter: new CipherState(cipher, keys.aToB),
    decrypter: {
      encryptWithAd: () => new Uint8Array(0),
      decryptWithAd: (ad, ct) => {
        decrypted++;
        return counting.decryptWithAd(ad, ct);
      },
    },
    remoteStaticKey: new Uint8Array(32),
    handshakeHash: new Uint8Array(32),
  });
  const forger = new CipherState(cipher, keys.bToA);
  const frames = [];
  for (let i = 0; i < 10; i++) {
    frames.push(frame(forger.encryptWithAd(EMPTY, new Uint8Array([i]))));
  }
  await rawB.write(concat(frames));
  await delay(20);
  assertEquals(decrypted, 0);
  assertEquals(await channel.read(), new Uint8Array([0]));
  assertEquals(await channel.read(), new Uint8Array([1]));
  await delay(20);
  assertEquals(decrypted, 2);
  // The Web Streams edge pulls too: made now, it reads nothing until asked.
  const reader = channel.readable.getReader();
  await delay(20);
  assertEquals(decrypted, 2);
  assertEquals((await reader.read()).value, new Uint8Array([2]));
  await delay(20);
  assertEquals(decrypted, 3);
  await release();
});

Deno.test("bytes already buffered by the handshake's reader are read first", async () => {
  const keys = randomKeys();
  const [rawA, rawB, release] = await rawPair("memory");
  const forger = new CipherState(keys.backend.cipher("ChaChaPoly"), keys.bToA);
  const frames = ["one", "two"].map((t) => frame(forger.encryptWithAd(EMPTY, encoder.encode(t))));
  // A handshake read its last message and, in the same socket read, the first transport message.
  await rawB.write(concat([new Uint8Array([0, 3, 9, 9, 9]), frames[0]]));
  const reader = new ByteReader(rawA);
  assertEquals(await reader.readExactly(5), new Uint8Array([0, 3, 9, 9, 9]));
  assert(reader.buffered > 0, "the first transport message is already buffered");
  const cipher = keys.backend.cipher("ChaChaPoly");
  const channel = new SecureChannel({
    connection: rawA,
    reader,
    encrypter: new CipherState(cipher, keys.aToB),
    decrypter: new CipherState(cipher, keys.bToA),
    remoteStaticKey: new Uint8Array(32),
    handshakeHash: new Uint8Array(32),
  });
  await rawB.write(frames[1]);
  await rawB.closeWrite();
  assertEquals(decoder.decode(await readAllFrom(channel)), "onetwo");
  await release();
});

Deno.test("property: ciphertext arriving in any splits (a byte at a time, across frames, bursts) reads back intact", async () => {
  const cipher = getCryptoBackend().cipher("ChaChaPoly");
  await fc.assert(
    fc.asyncProperty(
      fc.array(fc.integer({ min: 0, max: 2 * MAX_PLAINTEXT }), { minLength: 1, maxLength: 8 }),
      fc.array(fc.integer({ min: 1, max: 200_000 }), { minLength: 1, maxLength: 40 }),
      async (sizes, splits) => {
        const key = crypto.getRandomValues(new Uint8Array(32));
        // The wire: frames sealed as the channel seals them.
        const sender = new CipherState(cipher, key);
        const messages = sizes.map((n) => randomBytes(n));
        const frames: Uint8Array[] = [];
        for (const m of messages) {
          for (let at = 0; at < m.length || (at === 0 && m.length === 0); at += MAX_PLAINTEXT) {
            frames.push(frame(sender.encryptWithAd(EMPTY, m.subarray(at, at + MAX_PLAINTEXT))));
            if (m.length === 0) break;
          }
        }
        const wire = concat(frames);
        const [raw, end] = memoryPair();
        const channel = channelOn(end, new Uint8Array(32), key, getCryptoBackend());
        const writing = (async () => {
          let at = 0;
          for (let i = 0; at < wire.length; i++) {
            const n = splits[i % splits.length];
            await raw.write(wire.slice(at, at + n));
            at += n;
          }
          await raw.closeWrite();
        })();
        const got = await readAllFrom(channel);
        await writing;
        assertEquals(got, concat(messages));
        await release(raw, end);
      },
    ),
    { numRuns: 40 },
  );
});

Deno.test("a channel whose read buffer grew for a burst lets it go when idle, and reads the next burst intact", async () => {
  const [a, b, release] = await securePair("memory");
  const burst = () => randomBytes(4 * 1024 * 1024);
  for (let round = 0; round < 2; round++) {
    const sent = burst();
    const [, got] = await Promise.all([
      Promise.resolve(a.write(sent)),
      (async () => {
        const parts: Uint8Array[] = [];
        let n = 0;
        while (n < sent.length) {
          const chunk = (await b.read())!;
          parts.push(chunk);
          n += chunk.length;
        }
        return concat(parts);
      })(),
    ]);
    assertEquals(got, sent);
    // Idle for two sweeps of the release timer: the grown buffer and the write pool go.
    if (round === 0) await new Promise((r) => setTimeout(r, 2_200));
  }
  await release();
});

for (const kind of ["memory", "tcp"] as const) {
  Deno.test(`small and large writes mixed in one turn arrive in order over ${kind} (batched small writes are sealed before a large one)`, async () => {
    const [a, b, release] = await securePair(kind);
    const sizes = [100, 100_000, 7, 20_000, 16 * 1024, 1, 70_000, 3];
    const chunks = sizes.map((n) => randomBytes(n));
    const reading = readAllFrom(b);
    // No await between them: one turn.
    const pending = chunks.map((chunk) => a.write(chunk));
    await Promise.all(pending);
    await a.closeWrite();
    assertEquals(await reading, concat(chunks));
    await release();
  });
}

Deno.test("a small write once the connection below failed rejects (it does not throw), and the channel fails", async () => {
  const keys = randomKeys();
  const [rawA, , releaseRaw] = await rawPair("memory");
  const channel = channelOn(rawA, keys.aToB, keys.bToA, keys.backend);
  rawA.abort(new NetworkError("CONNECTION_RESET", "gone"));
  const result = channel.write(new Uint8Array(10));
  assert(result !== undefined, "a failed write says so");
  await assertRejectsCode(result, "CONNECTION_RESET");
  await assertRejectsCode(() => channel.write(new Uint8Array(10))!, "CONNECTION_RESET");
  await releaseRaw();
});
