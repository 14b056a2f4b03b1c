/**
 * multistream-select against hostile bytes: random and mutated byte sequences,
 * split into random chunks, fed to the listener and to both dialers. Whatever
 * arrives, negotiation settles (no hang: the peer hangs up after its bytes,
 * and a deadline backs that up), fails only with a NetworkError, and leaves no
 * unhandled rejection behind.
 */

import fc from "fast-check";
import { setImmediate } from "node:timers";
import { NetworkError } from "../netcore/network_error.ts";
import type { Connection } from "../netcore/transport/connection.ts";
import {
  handleProtocol,
  MULTISTREAM_PROTOCOL_ID,
  selectProtocol,
  selectProtocolOptimistic,
} from "../netcore/negotiate/mod.ts";
import { concat } from "./_bytes.ts";
import { msg } from "./_multistream.ts";
import { memoryPair } from "./_pair.ts";
import { readAllFrom } from "./_streams.ts";

const utf8 = new TextEncoder();

/** Resolves in the next turn of the event loop, after the cork of this one was written. */
function nextTurn(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}

/**
 * Plays the peer: reads everything sent to it, writes `chunks` (each in a
 * socket write of its own, so the side under test reads them as they were
 * cut), hangs up.
 */
async function playPeer(peer: Connection, chunks: Uint8Array[]): Promise<void> {
  const draining = readAllFrom(peer).catch(() => {});
  try {
    for (const chunk of chunks) {
      await nextTurn();
      await peer.write(chunk.slice());
    }
    await peer.closeWrite();
  } catch {
    // The side under test may have given up and aborted: fine.
  }
  await draining;
}

/** Settles `promise`, failing the property if it takes longer than `ms`. */
async function settlesWithin<T>(promise: Promise<T>, ms: number): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const hang = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`did not settle within ${ms} ms`)), ms);
  });
  try {
    return await Promise.race([promise, hang]);
  } finally {
    clearTimeout(timer);
  }
}

/** Writes `chunk` on `conn`, waiting if it asks to. */
async function write(conn: Connection, chunk: Uint8Array): Promise<void> {
  await conn.write(chunk);
}

/** Runs `work`; any failure must be a NetworkError. */
async function onlyNetworkErrors(work: Promise<unknown>): Promise<void> {
  try {
    await settlesWithin(work, 2000);
  } catch (err) {
    if (!NetworkError.is(err)) throw err;
  }
}

const unhandled: unknown[] = [];
globalThis.addEventListener("unhandledrejection", (event) => {
  event.preventDefault();
  unhandled.push(event.reason);
});

function noUnhandledRejections(): Promise<void> {
  // Let stray rejections surface before looking.
  return new Promise((resolve, reject) =>
    setTimeout(() => {
      if (unhandled.length > 0) reject(new Error(`unhandled rejections: ${unhandled.join("; ")}`));
      else resolve();
    }, 20)
  );
}

/** Splits `bytes` at the given cut points into chunks. */
function split(bytes: Uint8Array, cuts: number[]): Uint8Array[] {
  const points = [...new Set(cuts.map((c) => c % (bytes.length + 1)))].sort((x, y) => x - y);
  const chunks: Uint8Array[] = [];
  let start = 0;
  for (const p of points) {
    if (p > start) chunks.push(bytes.subarray(start, p));
    start = Math.max(start, p);
  }
  if (start < bytes.length) chunks.push(bytes.subarray(start));
  return chunks;
}

type Mutation =
  | { kind: "flip"; at: number; xor: number }
  | { kind: "truncate"; at: number }
  | { kind: "insert"; at: number; byte: number }
  | { kind: "delete"; at: number };

const mutation: fc.Arbitrary<Mutation> = fc.oneof(
  fc.record({
    kind: fc.constant("flip" as const),
    at: fc.nat(),
    xor: fc.integer({ min: 1, max: 255 }),
  }),
  fc.record({ kind: fc.constant("truncate" as const), at: fc.nat() }),
  fc.record({
    kind: fc.constant("insert" as const),
    at: fc.nat(),
    byte: fc.integer({ min: 0, max: 255 }),
  }),
  fc.record({ kind: fc.constant("delete" as const), at: fc.nat() }),
);

function mutate(bytes: Uint8Array, mutations: Mutation[]): Uint8Array {
  let out: Uint8Array = bytes.slice();
  for (const m of mutations) {
    const at = m.at % (out.length + 1);
    if (m.kind === "flip" && at < out.length) out[at] ^= m.xor;
    if (m.kind === "truncate") out = out.subarray(0, at);
    if (m.kind === "insert") {
      out = concat([out.subarray(0, at), new Uint8Array([m.byte]), out.subarray(at)]);
    }
    if (m.kind === "delete" && at < out.length) {
      out = concat([out.subarray(0, at), out.subarray(at + 1)]);
    }
  }
  return out;
}

const HEADER = msg(MULTISTREAM_PROTOCOL_ID);
const PROTOCOLS = ["/a/1.0.0", "/b/1.0.0"];

/** What a dialer may send: the header, proposals, ls, data. */
const dialerTranscript = fc.array(
  fc.constantFrom(msg("/a/1.0.0"), msg("/b/1.0.0"), msg("/c/1.0.0"), msg("ls"), msg("na"), HEADER),
  { maxLength: 5 },
).map((messages) => concat([HEADER, ...messages, utf8.encode("data")]));

/** What a listener may answer: the header, acceptance, na, data. */
const listenerTranscript = fc.array(
  fc.constantFrom(msg("/a/1.0.0"), msg("/b/1.0.0"), msg("na"), HEADER),
  { maxLength: 4 },
).map((messages) => concat([HEADER, ...messages, utf8.encode("data")]));

const anyBytes = fc.uint8Array({ maxLength: 96 });
const hostileBytes = (transcript: fc.Arbitrary<Uint8Array>) =>
  fc.oneof(
    anyBytes,
    fc.tuple(transcript, fc.array(mutation, { minLength: 1, maxLength: 4 })).map(([t, ms]) =>
      mutate(t, ms)
    ),
    transcript,
  );
const cuts = fc.array(fc.nat({ max: 200 }), { maxLength: 6 });
const OPTIONS = { timeout: 1000, maxAttempts: 3, maxLineLength: 64 };

Deno.test("listener: random and mutated dialer bytes end in agreement or a NetworkError", async () => {
  await fc.assert(
    fc.asyncProperty(hostileBytes(dialerTranscript), cuts, async (bytes, at) => {
      const [a, b] = memoryPair();
      const peer = playPeer(a, split(bytes, at));
      await onlyNetworkErrors(
        handleProtocol(b, PROTOCOLS, OPTIONS).then(({ stream }) => stream.cancelRead()),
      );
      b.abort();
      await settlesWithin(peer, 2000);
    }),
    { numRuns: 300 },
  );
  await noUnhandledRejections();
});

Deno.test("dialer: random and mutated listener bytes end in agreement or a NetworkError", async () => {
  await fc.assert(
    fc.asyncProperty(hostileBytes(listenerTranscript), cuts, async (bytes, at) => {
      const [a, b] = memoryPair();
      const peer = playPeer(b, split(bytes, at));
      await onlyNetworkErrors(
        selectProtocol(a, ["/c/1.0.0", ...PROTOCOLS], OPTIONS).then(({ stream }) =>
          stream.cancelRead()
        ),
      );
      a.abort();
      await settlesWithin(peer, 2000);
    }),
    { numRuns: 300 },
  );
  await noUnhandledRejections();
});

Deno.test("optimistic dialer: hostile answers surface on the stream as NetworkErrors only", async () => {
  await fc.assert(
    fc.asyncProperty(hostileBytes(listenerTranscript), cuts, async (bytes, at) => {
      const [a, b] = memoryPair();
      const peer = playPeer(b, split(bytes, at));
      const { stream } = selectProtocolOptimistic(a, "/a/1.0.0", OPTIONS);
      await onlyNetworkErrors(write(stream, utf8.encode("hello")));
      await onlyNetworkErrors(readAllFrom(stream));
      await onlyNetworkErrors(write(stream, utf8.encode("more")));
      await onlyNetworkErrors(stream.closeWrite());
      // After a failure the original connection is ours to close.
      a.abort();
      await settlesWithin(peer, 2000);
    }),
    { numRuns: 300 },
  );
  await noUnhandledRejections();
});
