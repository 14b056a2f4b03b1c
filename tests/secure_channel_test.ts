/**
 * The Noise transport phase as libp2p-noise specifies it: 2-byte big-endian
 * length, then ciphertext||tag, at most 65535 bytes; transparent to the bytes
 * it carries; any tampering fails that one connection.
 */

import fc from "fast-check";
import { createHash } from "node:crypto";
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
import { acceptOne, memoryPair } from "./_pair.ts";

const MAX_PLAINTEXT = 65535 - 16;

// ---- fixtures ----

type Kind = "memory" | "tcp";

/** Two raw connected ends and a way to release everything. */
async function rawPair(kind: Kind): Promise<[Connection, Connection, () => Promise<void>]> {
  const [a, b] = kind === "memory" ? memoryPair() : await tcpPair();
  return [a, b, async () => {
    a.abort();
    b.abort();
    await Promise.all([a.closed, b.closed]);
  }];
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
    reader: new ByteReader(conn.readable),
    writer: conn.writable.getWriter(),
    encrypter: new CipherState(cipher, send),
    decrypter: new CipherState(cipher, receive),
    remoteStaticKey: new Uint8Array(32),
    handshakeHash: new Uint8Array(32),
  });
}

/** A channel on `conn` whose lower writes are recorded (copied), not sent. */
function recordingChannel(
  conn: Connection,
  keys: Keys,
): { channel: SecureChannel; lowerWrites: Uint8Array[] } {
  const lowerWrites: Uint8Array[] = [];
  const recording: Connection = Object.assign(Object.create(conn), {
    writable: new WritableStream<Uint8Array>({
      write(chunk) {
        lowerWrites.push(chunk.slice());
      },
    }),
    readable: conn.readable,
  });
  return { channel: channelOn(recording, keys.aToB, keys.bToA, keys.backend), lowerWrites };
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

// ---- the wire format ----

Deno.test("a transport message is a 2-byte big-endian length and ChaChaPoly ciphertext||tag", async () => {
  const [a, b, release] = await rawPair("memory");
  const keys = randomKeys();
  const channel = channelOn(a, keys.aToB, keys.bToA, keys.backend);
  const writer = channel.writable.getWriter();
  const message = new TextEncoder().encode("hello noise");
  await writer.write(message);
  const wire = await new ByteReader(b.readable).readExactly(2 + message.length + 16);
  assertEquals([wire[0], wire[1]], [0, message.length + 16]);
  const receiver = new CipherState(keys.backend.cipher("ChaChaPoly"), keys.aToB);
  assertEquals(receiver.decryptWithAd(new Uint8Array(0), wire.subarray(2)), message);
  await release();
});

Deno.test("a large write is split into full 65535-byte frames and sent in ONE lower write", async () => {
  const [a, b, release] = await rawPair("memory");
  const keys = randomKeys();
  const { channel, lowerWrites } = recordingChannel(a, keys);
  const data = randomBytes(3 * MAX_PLAINTEXT + 1000);
  const writer = channel.writable.getWriter();
  await writer.write(data);
  // The batch is handed down before the write resolves or just after; wait for it.
  while (lowerWrites.length === 0) await new Promise((r) => setTimeout(r, 1));
  assertEquals(lowerWrites.length, 1);
  const frames = parseFrames(lowerWrites[0]);
  assertEquals(frames.map((f) => f.length), [65535, 65535, 65535, 1016]);
  const receiver = new CipherState(keys.backend.cipher("ChaChaPoly"), keys.aToB);
  assertEquals(concat(frames.map((f) => receiver.decryptWithAd(new Uint8Array(0), f))), data);
  await release();
  b.abort();
});

Deno.test("a huge write goes down in slices of 16 full frames, never one giant buffer", async () => {
  const [a, b, release] = await rawPair("memory");
  const keys = randomKeys();
  const { channel, lowerWrites } = recordingChannel(a, keys);
  const data = randomBytes(5 * 1024 * 1024);
  const writer = channel.writable.getWriter();
  await writer.write(data);
  await writer.close();
  assert(lowerWrites.length >= 5, `${lowerWrites.length} lower writes`);
  for (const w of lowerWrites) assert(w.length <= 16 * 65537, `a lower write of ${w.length} bytes`);
  const receiver = new CipherState(keys.backend.cipher("ChaChaPoly"), keys.aToB);
  const frames = lowerWrites.flatMap(parseFrames);
  assertEquals(concat(frames.map((f) => receiver.decryptWithAd(new Uint8Array(0), f))), data);
  await release();
  b.abort();
});

Deno.test("writes made while a lower write is in flight are batched into one lower write", async () => {
  const [a, , release] = await rawPair("memory");
  const keys = randomKeys();
  const lowerWrites: number[] = [];
  let unblock!: () => void;
  const blocked = new Promise<void>((r) => unblock = r);
  const counting: Connection = Object.assign(Object.create(a), {
    writable: new WritableStream<Uint8Array>({
      async write(chunk) {
        lowerWrites.push(parseFrames(chunk).length);
        await blocked; // the first lower write stays in flight
      },
    }),
    readable: a.readable,
  });
  const channel = channelOn(counting, keys.aToB, keys.bToA, keys.backend);
  const writer = channel.writable.getWriter();
  const writes = [];
  for (let i = 0; i < 50; i++) writes.push(writer.write(new Uint8Array(100).fill(i)));
  await Promise.all(writes); // small writes do not wait for the socket
  assertEquals(lowerWrites, [1]);
  unblock();
  await writer.close();
  assertEquals(lowerWrites, [1, 49], "the 49 frames queued meanwhile went down in one write");
  await release();
});

// ---- transparency ----

for (const kind of ["memory", "tcp"] as const) {
  Deno.test(`64 MiB through the channel over ${kind} arrive intact (SHA-256 compared)`, async () => {
    const [a, b, release] = await securePair(kind);
    const total = 64 * 1024 * 1024;
    const block = randomBytes(1024 * 1024 + 7);
    const sent = createHash("sha256");
    const writing = (async () => {
      const writer = a.writable.getWriter();
      let offset = 0;
      let i = 0;
      while (offset < total) {
        // Odd sizes so that frames and writes never line up.
        const size = Math.min(total - offset, 100_000 + (i++ * 7919) % 900_000);
        const chunk = block.subarray(0, size);
        chunk[0] = i & 0xff;
        sent.update(chunk);
        await writer.write(chunk);
        offset += size;
      }
      await writer.close();
    })();
    const received = createHash("sha256");
    let count = 0;
    for await (const chunk of b.readable) {
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
    const writer = a.writable.getWriter();
    for (const m of messages) await writer.write(m);
    await writer.close();
  })();
  // Keep every chunk, read on to the end, only then compare.
  const kept: Uint8Array[] = [];
  for await (const chunk of b.readable) kept.push(chunk);
  await writing;
  const got = new Uint8Array(kept.reduce((n, c) => n + c.length, 0));
  let at = 0;
  for (const c of kept) {
    got.set(c, at);
    at += c.length;
  }
  const expected = new Uint8Array(sizes.reduce((n, size) => n + size, 0));
  at = 0;
  for (const m of messages) {
    expected.set(m, at);
    at += m.length;
  }
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
          const writer = channel.writable.getWriter();
          for (const m of messages) await writer.write(m);
          await writer.close();
          return concat(messages);
        };
        const [sentAB, sentBA, gotAB, gotBA] = await Promise.all([
          send(a, sizesAB),
          send(b, sizesBA),
          readAll(b.readable),
          readAll(a.readable),
        ]);
        assertEquals(gotAB, sentAB);
        assertEquals(gotBA, sentBA);
        await release();
      },
    ),
    { numRuns: 25 },
  );
});

Deno.test("the caller may reuse its buffer as soon as write() resolves", async () => {
  const [a, b, release] = await securePair("memory");
  const writer = a.writable.getWriter();
  const buffer = new Uint8Array(1000);
  for (let i = 0; i < 5; i++) {
    buffer.fill(i);
    await writer.write(buffer);
  }
  await writer.close();
  const got = await readAll(b.readable);
  for (let i = 0; i < 5; i++) {
    assertEquals(got.subarray(i * 1000, (i + 1) * 1000).every((x) => x === i), true);
  }
  await release();
});

// ---- tampering and truncation ----

Deno.test("a bit flipped in a transport message fails that connection with PROTOCOL_VIOLATION, and only that one", async () => {
  const keys = randomKeys();
  const [rawA, rawB, releaseAB] = await rawPair("tcp");
  const [c, d, releaseCD] = await securePair("tcp");
  const victim = channelOn(rawA, keys.aToB, keys.bToA, keys.backend);
  // The other end is a raw socket: we forge what a peer (or a man in the middle) would send.
  const forger = new CipherState(keys.backend.cipher("ChaChaPoly"), keys.bToA);
  const wire = rawB.writable.getWriter();
  const good = forger.encryptWithAd(new Uint8Array(0), new TextEncoder().encode("first"));
  const bad = forger.encryptWithAd(new Uint8Array(0), new TextEncoder().encode("second")).slice();
  bad[3] ^= 0x10;
  await wire.write(concat([frame(good), frame(bad)]));

  const reader = victim.readable.getReader();
  assertEquals(new TextDecoder().decode((await reader.read()).value), "first");
  await assertRejectsCode(reader.read(), "PROTOCOL_VIOLATION");
  // The connection under it was aborted: the forger's side sees it end or reset.
  await victim.closed;
  const rest = rawB.readable.getReader();
  await rest.read().then((r) => assert(r.done), () => {});

  // The other connection is untouched.
  const w = c.writable.getWriter();
  await w.write(new TextEncoder().encode("still fine"));
  assertEquals(new TextDecoder().decode((await d.readable.getReader().read()).value), "still fine");
  await releaseAB();
  await releaseCD();
});

Deno.test("a length shorter than the 16-byte tag is a PROTOCOL_VIOLATION", async () => {
  const keys = randomKeys();
  const [rawA, rawB, release] = await rawPair("memory");
  const victim = channelOn(rawA, keys.aToB, keys.bToA, keys.backend);
  await rawB.writable.getWriter().write(new Uint8Array([0, 15, ...new Uint8Array(15)]));
  await assertRejectsCode(victim.readable.getReader().read(), "PROTOCOL_VIOLATION");
  await release();
});

Deno.test("a frame truncated by the end of the stream fails with CONNECTION_CLOSED", async () => {
  const keys = randomKeys();
  for (const truncated of [new Uint8Array([0]), new Uint8Array([0, 100, 1, 2, 3])]) {
    const [rawA, rawB, release] = await rawPair("memory");
    const victim = channelOn(rawA, keys.aToB, keys.bToA, keys.backend);
    const wire = rawB.writable.getWriter();
    await wire.write(truncated);
    await wire.close();
    await assertRejectsCode(victim.readable.getReader().read(), "CONNECTION_CLOSED");
    await release();
  }
});

Deno.test("a frame replayed or reordered fails authentication (the nonce moved on)", async () => {
  const keys = randomKeys();
  const [rawA, rawB, release] = await rawPair("memory");
  const victim = channelOn(rawA, keys.aToB, keys.bToA, keys.backend);
  const forger = new CipherState(keys.backend.cipher("ChaChaPoly"), keys.bToA);
  const one = forger.encryptWithAd(new Uint8Array(0), new Uint8Array([1]));
  await rawB.writable.getWriter().write(concat([frame(one), frame(one)]));
  const reader = victim.readable.getReader();
  assertEquals((await reader.read()).value, new Uint8Array([1]));
  await assertRejectsCode(reader.read(), "PROTOCOL_VIOLATION");
  await release();
});

// ---- half-close, abort, backpressure ----

Deno.test("half-close: closing our writable ends the peer's readable after the last frame; the peer can still answer", async () => {
  for (const kind of ["memory", "tcp"] as const) {
    const [a, b, release] = await securePair(kind);
    const aw = a.writable.getWriter();
    await aw.write(new TextEncoder().encode("request"));
    await aw.close();
    assertEquals(new TextDecoder().decode(await readAll(b.readable)), "request");
    const bw = b.writable.getWriter();
    await bw.write(new TextEncoder().encode("response"));
    await bw.close();
    assertEquals(new TextDecoder().decode(await readAll(a.readable)), "response");
    await Promise.all([a.close(), b.close()]);
    await release();
  }
});

Deno.test("close() sends what is batched, then closes the connection below", async () => {
  const [a, b, release] = await securePair("tcp");
  const writer = a.writable.getWriter();
  const data = randomBytes(300_000);
  const written = writer.write(data);
  const reading = readAll(b.readable);
  await written;
  writer.releaseLock();
  await Promise.all([a.close(), reading.then(() => b.close())]);
  assertEquals(await reading, data);
  await release();
});

Deno.test("abort() resets: our streams and the peer's reads fail, the connection is released", async () => {
  for (const kind of ["memory", "tcp"] as const) {
    const [a, b, release] = await securePair(kind);
    const reading = a.readable.getReader().read();
    const peerReading = b.readable.getReader().read();
    a.abort(new NetworkError("ABORTED", "test abort"));
    await assertRejectsCode(reading, "ABORTED");
    await assertRejectsCode(a.writable.getWriter().write(new Uint8Array(1)), "ABORTED");
    // A reset or an end, as the transport sees it; never data.
    await peerReading.then((r) => assert(r.done), (err) => assert(NetworkError.is(err)));
    await a.closed;
    await release();
  }
});

Deno.test("writable.abort() propagates down: the peer sees the connection go", async () => {
  const [a, b, release] = await securePair("memory");
  const peerReading = b.readable.getReader().read();
  await a.writable.abort(new Error("give up"));
  await assertRejectsCode(peerReading, "CONNECTION_RESET");
  await release();
});

Deno.test("backpressure: a writer whose peer does not read is held back (no unbounded buffering)", async () => {
  const [a, , release] = await securePair("memory");
  const writer = a.writable.getWriter();
  let accepted = 0;
  const chunk = new Uint8Array(64 * 1024);
  const pump = (async () => {
    try {
      while (true) {
        await writer.write(chunk);
        accepted += chunk.length;
      }
    } catch {
      // released at the end of the test
    }
  })();
  await new Promise((r) => setTimeout(r, 200));
  // The memory pipe holds 256 KiB, the channel batch at most ~256 KiB + one write.
  assert(accepted < 2 * 1024 * 1024, `accepted ${accepted} bytes with nobody reading`);
  await release();
  await pump;
});

Deno.test("reads are pulled: nothing is decrypted ahead of the consumer", async () => {
  const keys = randomKeys();
  const [rawA, rawB, release] = await rawPair("memory");
  let decrypted = 0;
  const cipher = keys.backend.cipher("ChaChaPoly");
  const counting = new CipherState(cipher, keys.bToA);
  const channel = new SecureChannel({
    connection: rawA,
    reader: new ByteReader(rawA.readable),
    writer: rawA.writable.getWriter(),
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
    frames.push(frame(forger.encryptWithAd(new Uint8Array(0), new Uint8Array([i]))));
  }
  await rawB.writable.getWriter().write(concat(frames));
  await new Promise((r) => setTimeout(r, 20));
  assertEquals(decrypted, 0);
  const reader = channel.readable.getReader();
  assertEquals((await reader.read()).value, new Uint8Array([0]));
  assertEquals((await reader.read()).value, new Uint8Array([1]));
  await new Promise((r) => setTimeout(r, 20));
  assertEquals(decrypted, 2);
  await release();
});
