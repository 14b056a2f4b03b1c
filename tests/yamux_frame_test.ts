/**
 * The yamux header codec against the spec's byte layout: "Version (8 bits),
 * Type (8 bits), Flags (16 bits), StreamID (32 bits), Length (32 bits) ...
 * All fields are encoded in network order (big endian)."
 */

import {
  decodeFrameHeader,
  encodeFrameHeader,
  Flag,
  type FrameHeader,
  FrameType,
  GoAwayCode,
  HEADER_LENGTH,
  writeFrameHeader,
} from "../netcore/multiplexing/frame.ts";
import { FrameDecoder } from "../netcore/multiplexing/frame_decoder.ts";
import { assert, assertEquals, assertThrowsCode } from "./_assert.ts";
import { concat } from "./_bytes.ts";

/** The naive reference: each field spelled out as hex digits, big endian. */
function referenceEncode(h: FrameHeader): Uint8Array {
  const hex = (n: number, width: number) => n.toString(16).padStart(width * 2, "0");
  const text = hex(0, 1) + hex(h.type, 1) + hex(h.flags, 2) + hex(h.streamId, 4) +
    hex(h.length, 4);
  return Uint8Array.from(text.match(/../g)!.map((b) => parseInt(b, 16)));
}

const TABLE: [string, FrameHeader][] = [
  ["data, no flags", { type: FrameType.Data, flags: 0, streamId: 1, length: 5 }],
  ["data SYN on stream 1", { type: FrameType.Data, flags: Flag.SYN, streamId: 1, length: 0 }],
  ["data FIN, 256 KiB", { type: FrameType.Data, flags: Flag.FIN, streamId: 2, length: 262144 }],
  ["window update SYN", {
    type: FrameType.WindowUpdate,
    flags: Flag.SYN,
    streamId: 3,
    length: 16 << 20,
  }],
  ["window update ACK", { type: FrameType.WindowUpdate, flags: Flag.ACK, streamId: 4, length: 0 }],
  ["window update RST", { type: FrameType.WindowUpdate, flags: Flag.RST, streamId: 7, length: 0 }],
  ["ping SYN opaque", { type: FrameType.Ping, flags: Flag.SYN, streamId: 0, length: 0xdeadbeef }],
  ["ping ACK", { type: FrameType.Ping, flags: Flag.ACK, streamId: 0, length: 1 }],
  ["go away normal", {
    type: FrameType.GoAway,
    flags: 0,
    streamId: 0,
    length: GoAwayCode.NormalTermination,
  }],
  ["go away protocol error", {
    type: FrameType.GoAway,
    flags: 0,
    streamId: 0,
    length: GoAwayCode.ProtocolError,
  }],
  ["max stream id, all flags", {
    type: FrameType.WindowUpdate,
    flags: Flag.SYN | Flag.ACK | Flag.FIN | Flag.RST,
    streamId: 0xffffffff,
    length: 0xffffffff,
  }],
];

for (const [name, header] of TABLE) {
  Deno.test(`frame codec: ${name} matches the reference encoding and round-trips`, () => {
    const expected = referenceEncode(header);
    assertEquals([...encodeFrameHeader(header)], [...expected], "encodeFrameHeader");
    const inPlace = new Uint8Array(HEADER_LENGTH + 3);
    writeFrameHeader(inPlace, 3, header.type, header.flags, header.streamId, header.length);
    assertEquals([...inPlace.subarray(3)], [...expected], "writeFrameHeader");
    assertEquals(decodeFrameHeader(expected, 0, 0xffffffff), header, "decodeFrameHeader");
  });
}

Deno.test("frame codec: the spec's numbers for types, flags and GoAway codes", () => {
  assertEquals([FrameType.Data, FrameType.WindowUpdate, FrameType.Ping, FrameType.GoAway], [
    0,
    1,
    2,
    3,
  ]);
  assertEquals([Flag.SYN, Flag.ACK, Flag.FIN, Flag.RST], [1, 2, 4, 8]);
  assertEquals(
    [GoAwayCode.NormalTermination, GoAwayCode.ProtocolError, GoAwayCode.InternalError],
    [0, 1, 2],
  );
});

Deno.test("frame codec: a version other than 0 is a PROTOCOL_VIOLATION", () => {
  const bytes = referenceEncode({ type: FrameType.Ping, flags: 1, streamId: 0, length: 0 });
  bytes[0] = 1;
  assertThrowsCode(() => decodeFrameHeader(bytes, 0, 1024), "PROTOCOL_VIOLATION");
});

Deno.test("frame codec: an unknown type is a PROTOCOL_VIOLATION", () => {
  for (const type of [4, 0x7f, 0xff]) {
    const bytes = referenceEncode({ type: 0, flags: 0, streamId: 1, length: 0 });
    bytes[1] = type;
    assertThrowsCode(() => decodeFrameHeader(bytes, 0, 1024), "PROTOCOL_VIOLATION");
  }
});

Deno.test("frame codec: a Data length above the maximum is a PROTOCOL_VIOLATION", () => {
  const ok = referenceEncode({ type: FrameType.Data, flags: 0, streamId: 1, length: 1024 });
  assertEquals(decodeFrameHeader(ok, 0, 1024).length, 1024);
  const big = referenceEncode({ type: FrameType.Data, flags: 0, streamId: 1, length: 1025 });
  assertThrowsCode(() => decodeFrameHeader(big, 0, 1024), "PROTOCOL_VIOLATION");
  // The bound is on Data bodies only: a window update's length is a delta, not a body.
  const update = referenceEncode({
    type: FrameType.WindowUpdate,
    flags: 0,
    streamId: 1,
    length: 1 << 30,
  });
  assertEquals(decodeFrameHeader(update, 0, 1024).length, 1 << 30);
});

Deno.test("frame codec: encodeFrameHeader rejects fields that do not fit", () => {
  const bad: FrameHeader[] = [
    { type: 4 as FrameType, flags: 0, streamId: 0, length: 0 },
    { type: 0, flags: 0x10000, streamId: 0, length: 0 },
    { type: 0, flags: 0, streamId: 2 ** 32, length: 0 },
    { type: 0, flags: 0, streamId: 0, length: -1 },
  ];
  for (const header of bad) {
    let threw = false;
    try {
      encodeFrameHeader(header);
    } catch (err) {
      threw = err instanceof RangeError;
    }
    assert(threw, `expected RangeError for ${JSON.stringify(header)}`);
  }
});

interface Event {
  kind: "frame" | "data";
  header?: FrameHeader;
  bytes?: number[];
  remaining?: number;
}

function decodeAll(decoder: FrameDecoder, chunks: Uint8Array[]): Event[] {
  const events: Event[] = [];
  for (const chunk of chunks) {
    decoder.decode(chunk, {
      frame: (h) => events.push({ kind: "frame", header: { ...h } }),
      data: (piece, remaining) => events.push({ kind: "data", bytes: [...piece], remaining }),
    });
  }
  return events;
}

Deno.test("frame decoder: frames split at every byte boundary decode to the same frames", () => {
  const body = Uint8Array.from([1, 2, 3, 4, 5, 6, 7]);
  const wire = concat([
    referenceEncode({ type: FrameType.WindowUpdate, flags: Flag.SYN, streamId: 1, length: 9 }),
    referenceEncode({ type: FrameType.Data, flags: Flag.FIN, streamId: 1, length: body.length }),
    body,
    referenceEncode({ type: FrameType.Ping, flags: Flag.SYN, streamId: 0, length: 77 }),
    referenceEncode({ type: FrameType.Data, flags: Flag.FIN, streamId: 3, length: 0 }),
  ]);
  const whole = decodeAll(new FrameDecoder(1024), [wire]);
  assertEquals(whole.filter((e) => e.kind === "frame").length, 4);
  for (let cut1 = 0; cut1 <= wire.length; cut1++) {
    for (const cut2 of [cut1, Math.min(wire.length, cut1 + 5), wire.length]) {
      const decoder = new FrameDecoder(1024);
      const events = decodeAll(decoder, [
        wire.subarray(0, cut1),
        wire.subarray(cut1, cut2),
        wire.subarray(cut2),
      ]);
      // Data may arrive in more pieces; the frames and the joined bytes must match.
      assertEquals(
        events.filter((e) => e.kind === "frame"),
        whole.filter((e) => e.kind === "frame"),
        `cut ${cut1}/${cut2}`,
      );
      assertEquals(
        events.flatMap((e) => e.bytes ?? []),
        [...body],
        `cut ${cut1}/${cut2}`,
      );
      const lastData = events.filter((e) => e.kind === "data").at(-1);
      assertEquals(lastData?.remaining, 0);
      assert(decoder.idle, "decoder idle after whole frames");
    }
  }
});

Deno.test("frame decoder: data pieces are views into the chunk, not copies", () => {
  const wire = concat([
    referenceEncode({ type: FrameType.Data, flags: 0, streamId: 1, length: 4 }),
    Uint8Array.from([9, 8, 7, 6]),
  ]);
  let piece: Uint8Array | undefined;
  new FrameDecoder(1024).decode(wire, { frame() {}, data: (p) => (piece = p) });
  assert(piece !== undefined && piece.buffer === wire.buffer && piece.byteOffset === 12);
});

Deno.test("frame decoder: reports the state mid-frame", () => {
  const decoder = new FrameDecoder(1024);
  const header = referenceEncode({ type: FrameType.Data, flags: 0, streamId: 1, length: 4 });
  decoder.decode(header.subarray(0, 3), { frame() {}, data() {} });
  assertEquals([decoder.idle, decoder.state], [false, "header"]);
  decoder.decode(header.subarray(3), { frame() {}, data() {} });
  assertEquals([decoder.idle, decoder.state], [false, "body"]);
});
