/**
 * Untrusted bytes into yamux: random and mutated input reaches the frame
 * decoder and a live session. Only typed errors come out, only that one
 * connection closes, and nothing is left unhandled (Deno's test runner fails
 * a test on an unhandled rejection).
 */

import fc from "fast-check";
import {
  Flag,
  FrameDecoder,
  FrameType,
  HEADER_LENGTH,
  writeFrameHeader,
  Yamux,
} from "../netcore/multiplexing/mod.ts";
import { NetworkError } from "../netcore/network_error.ts";
import { Logger } from "../netcore/log.ts";
import { assert } from "./_assert.ts";
import { concat } from "./_bytes.ts";
import { memoryPair } from "./_pair.ts";

const quiet = new Logger({}, "off");

Deno.test("yamux fuzz: random bytes into the frame decoder throw only NetworkError", () => {
  fc.assert(
    fc.property(
      fc.array(fc.uint8Array({ maxLength: 64 }), { maxLength: 16 }),
      fc.integer({ min: 0, max: 1 << 20 }),
      (chunks, maxData) => {
        const decoder = new FrameDecoder(maxData);
        let dataBytes = 0;
        try {
          for (const chunk of chunks) {
            decoder.decode(chunk, {
              frame: (h) => {
                assert(h.type <= 3 && h.flags <= 0xffff && h.streamId <= 0xffffffff);
                if (h.type === FrameType.Data) assert(h.length <= maxData);
              },
              data: (piece) => {
                dataBytes += piece.length;
              },
            });
          }
        } catch (err) {
          assert(NetworkError.is(err, "PROTOCOL_VIOLATION"), `untyped error: ${err}`);
        }
        assert(dataBytes <= chunks.reduce((n, c) => n + c.length, 0));
      },
    ),
    { numRuns: 2000 },
  );
});

interface FuzzFrame {
  type: FrameType;
  flags: number;
  streamId: number;
  body: Uint8Array;
  length: number | undefined;
}

/** A plausible frame a client could send. */
const frameArb: fc.Arbitrary<FuzzFrame> = fc.record({
  type: fc.constantFrom(FrameType.Data, FrameType.WindowUpdate, FrameType.Ping, FrameType.GoAway),
  flags: fc.constantFrom(0, Flag.SYN, Flag.ACK, Flag.FIN, Flag.RST, Flag.SYN | Flag.FIN),
  streamId: fc.constantFrom(0, 1, 3, 5, 2, 0xffffffff),
  body: fc.uint8Array({ maxLength: 300 }),
  length: fc.option(fc.nat(), { nil: undefined }),
});

function encodeFrames(frames: FuzzFrame[]): Uint8Array {
  const parts: Uint8Array[] = [];
  for (const f of frames) {
    const body = f.type === FrameType.Data ? f.body : new Uint8Array(0);
    const length = f.type === FrameType.Data ? body.length : (f.length ?? 0) >>> 0;
    const bytes = new Uint8Array(HEADER_LENGTH + body.length);
    writeFrameHeader(bytes, 0, f.type, f.flags, f.streamId, length);
    bytes.set(body, HEADER_LENGTH);
    parts.push(bytes);
  }
  return concat(parts);
}

async function feedSession(wire: Uint8Array, cuts: number[]): Promise<void> {
  const [raw, end] = memoryPair({ closeGracePeriod: 200 });
  const muxer = Yamux.create(end, {
    role: "listener",
    keepAliveInterval: 0,
    closeTimeout: 200,
    streamCloseTimeout: 200,
    logger: quiet,
  });
  muxer.start();
  // The application echoes every stream, as a real one would.
  const serving = (async () => {
    for await (const stream of muxer) {
      stream.readable.pipeTo(stream.writable).catch((err) => {
        assert(NetworkError.is(err), `untyped stream error: ${err}`);
      });
    }
  })();
  const draining = raw.readable.pipeTo(new WritableStream()).catch(() => {});
  const writer = raw.writable.getWriter();
  let at = 0;
  for (
    const cut of [...cuts.map((c) => c % (wire.length + 1)).sort((a, b) => a - b), wire.length]
  ) {
    if (cut < at) continue;
    await writer.write(wire.subarray(at, cut)).catch(() => {});
    at = cut;
  }
  await writer.close().catch(() => {});
  // The peer is gone: the session must end by itself, typed, without hanging.
  await muxer.closed;
  assert(muxer.state === "closed");
  assert(muxer.error === undefined || muxer.error instanceof NetworkError);
  await serving;
  raw.abort();
  await draining;
}

Deno.test("yamux fuzz: mutated frame sequences into a live session end only that session, typed", async () => {
  await fc.assert(
    fc.asyncProperty(
      fc.array(frameArb, { minLength: 1, maxLength: 12 }),
      fc.array(fc.record({ at: fc.nat(), value: fc.integer({ min: 0, max: 255 }) }), {
        maxLength: 4,
      }),
      fc.array(fc.nat(), { maxLength: 3 }),
      async (frames, mutations, cuts) => {
        const wire = encodeFrames(frames);
        for (const m of mutations) {
          if (wire.length > 0) wire[m.at % wire.length] = m.value;
        }
        await feedSession(wire, cuts);
      },
    ),
    { numRuns: 150 },
  );
});

Deno.test("yamux fuzz: random bytes into a live session", async () => {
  await fc.assert(
    fc.asyncProperty(fc.uint8Array({ maxLength: 200 }), fc.array(fc.nat(), { maxLength: 3 }), (
      bytes,
      cuts,
    ) => feedSession(bytes, cuts)),
    { numRuns: 100 },
  );
});
