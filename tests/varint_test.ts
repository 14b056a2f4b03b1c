/**
 * Unsigned varints as the multiformats `unsigned-varint` spec defines them:
 * LEB128, most significant bit = "more bytes follow", at most 9 bytes, and
 * only the minimal encoding is valid.
 */

import fc from "fast-check";
import { NetworkError } from "../netcore/network_error.ts";
import { decodeVarint, encodeVarint, MAX_VARINT_BYTES, varintLength } from "../netcore/varint.ts";
import { assertEquals, assertThrowsCode } from "./_assert.ts";
import { fromHex } from "./_bytes.ts";

// The examples table of the multiformats unsigned-varint spec.
const SPEC_EXAMPLES: [number, string][] = [
  [0, "00"],
  [1, "01"],
  [127, "7f"],
  [128, "80 01"],
  [255, "ff 01"],
  [300, "ac 02"],
  [16384, "80 80 01"],
];

Deno.test("varint: encodes the spec's examples", () => {
  for (const [value, expected] of SPEC_EXAMPLES) {
    assertEquals(encodeVarint(value), fromHex(expected), `encode(${value})`);
    assertEquals(varintLength(value), expected.split(" ").length, `varintLength(${value})`);
  }
});

Deno.test("varint: decodes the spec's examples, reporting the bytes consumed", () => {
  for (const [value, encoded] of SPEC_EXAMPLES) {
    const bytes = fromHex(encoded);
    assertEquals(decodeVarint(bytes), { value, length: bytes.length }, `decode(${encoded})`);
  }
});

Deno.test("varint: decodes at an offset and ignores bytes after the varint", () => {
  const bytes = fromHex("ff ff ac 02 99");
  assertEquals(decodeVarint(bytes, 2), { value: 300, length: 2 });
});

Deno.test("varint: encodes into a caller's buffer at an offset and returns that view", () => {
  const out = new Uint8Array(6).fill(0xee);
  const view = encodeVarint(16384, out, 2);
  assertEquals(out, fromHex("ee ee 80 80 01 ee"));
  if (view.buffer !== out.buffer || view.byteOffset !== 2 || view.length !== 3) {
    throw new Error("encodeVarint did not return a view of the written bytes");
  }
});

Deno.test("varint: the largest safe integer takes 8 bytes and round-trips", () => {
  const bytes = encodeVarint(Number.MAX_SAFE_INTEGER);
  assertEquals(bytes.length, 8);
  assertEquals(decodeVarint(bytes), { value: Number.MAX_SAFE_INTEGER, length: 8 });
});

Deno.test("varint: encoding a negative, fractional or unsafe number is a RangeError", () => {
  for (const bad of [-1, 1.5, Number.MAX_SAFE_INTEGER + 1, NaN, Infinity]) {
    let thrown: unknown;
    try {
      encodeVarint(bad);
    } catch (err) {
      thrown = err;
    }
    if (!(thrown instanceof RangeError)) throw new Error(`encodeVarint(${bad}) did not throw`);
  }
});

Deno.test("varint: round-trips random safe integers, with varintLength matching", () => {
  fc.assert(
    fc.property(fc.maxSafeNat(), (value) => {
      const bytes = encodeVarint(value);
      assertEquals(bytes.length, varintLength(value));
      assertEquals(decodeVarint(bytes), { value, length: bytes.length });
      // Only the last byte lacks the continuation bit.
      for (let i = 0; i < bytes.length - 1; i++) {
        if ((bytes[i] & 0x80) === 0) throw new Error("continuation bit missing");
      }
      if ((bytes[bytes.length - 1] & 0x80) !== 0) throw new Error("last byte has the MSB set");
    }),
    { numRuns: 2000 },
  );
});

Deno.test("varint: a non-minimal encoding is a PROTOCOL_VIOLATION", () => {
  // The spec: "the number is encoded in the minimal number of bytes".
  for (const encoded of ["80 00", "81 00", "ff 80 00", "80 80 80 00"]) {
    assertThrowsCode(() => decodeVarint(fromHex(encoded)), "PROTOCOL_VIOLATION");
  }
  // Random values padded with a redundant 0x80 ... 0x00 tail.
  fc.assert(
    fc.property(fc.nat(), fc.integer({ min: 1, max: 3 }), (value, padding) => {
      const minimal = encodeVarint(value);
      const padded = new Uint8Array(minimal.length + padding);
      padded.set(minimal);
      padded[minimal.length - 1] |= 0x80;
      for (let i = minimal.length; i < padded.length - 1; i++) padded[i] = 0x80;
      assertThrowsCode(() => decodeVarint(padded), "PROTOCOL_VIOLATION");
    }),
  );
});

Deno.test("varint: more than 9 bytes is a PROTOCOL_VIOLATION, however it continues", () => {
  assertEquals(MAX_VARINT_BYTES, 9);
  // Nine bytes that all say "more follows": the value is still 0, so only the length is at fault.
  const nine = new Uint8Array(9).fill(0x80);
  assertThrowsCode(() => decodeVarint(nine), "PROTOCOL_VIOLATION");
  const tenWithEnd = new Uint8Array([...nine, 0x01]);
  assertThrowsCode(() => decodeVarint(tenWithEnd), "PROTOCOL_VIOLATION");
  // Eight continuation bytes are merely an incomplete varint.
  assertEquals(decodeVarint(nine.subarray(0, 8)), undefined);
});

Deno.test("varint: a value above max is FRAME_TOO_LARGE, max itself is accepted", () => {
  assertEquals(decodeVarint(encodeVarint(1024), 0, 1024), { value: 1024, length: 2 });
  assertThrowsCode(() => decodeVarint(encodeVarint(1025), 0, 1024), "FRAME_TOO_LARGE");
  assertThrowsCode(() => decodeVarint(encodeVarint(128), 0, 127), "FRAME_TOO_LARGE");
  // The limit applies before the varint is complete: a hostile length prefix
  // is refused without waiting for its last byte.
  assertThrowsCode(() => decodeVarint(fromHex("ff ff"), 0, 1000), "FRAME_TOO_LARGE");
  // Above the safe-integer range with the default max.
  assertThrowsCode(() => decodeVarint(new Uint8Array(9).fill(0xff)), "FRAME_TOO_LARGE");
  fc.assert(
    fc.property(fc.maxSafeNat(), fc.maxSafeNat(), (value, max) => {
      const bytes = encodeVarint(value);
      if (value <= max) assertEquals(decodeVarint(bytes, 0, max), { value, length: bytes.length });
      else assertThrowsCode(() => decodeVarint(bytes, 0, max), "FRAME_TOO_LARGE");
    }),
  );
});

Deno.test("varint: truncated input returns undefined (read more and retry)", () => {
  assertEquals(decodeVarint(new Uint8Array(0)), undefined);
  assertEquals(decodeVarint(fromHex("80")), undefined);
  assertEquals(decodeVarint(fromHex("80 80")), undefined);
  assertEquals(decodeVarint(fromHex("ac 02"), 2), undefined);
  fc.assert(
    fc.property(fc.integer({ min: 128, max: Number.MAX_SAFE_INTEGER }), (value) => {
      const bytes = encodeVarint(value);
      for (let cut = 0; cut < bytes.length; cut++) {
        assertEquals(decodeVarint(bytes.subarray(0, cut)), undefined, `cut at ${cut}`);
      }
    }),
  );
});

Deno.test("varint: random bytes decode, ask for more, or throw a NetworkError; nothing else", () => {
  fc.assert(
    fc.property(
      fc.uint8Array({ maxLength: 12 }),
      fc.option(fc.maxSafeNat(), { nil: undefined }),
      (bytes, max) => {
        try {
          const decoded = decodeVarint(bytes, 0, max);
          if (decoded === undefined) return;
          // Whatever decodes is the minimal encoding of its value.
          assertEquals(bytes.subarray(0, decoded.length), encodeVarint(decoded.value));
          if (max !== undefined && decoded.value > max) throw new Error("max not enforced");
        } catch (err) {
          if (!NetworkError.is(err, "PROTOCOL_VIOLATION", "FRAME_TOO_LARGE")) throw err;
        }
      },
    ),
    { numRuns: 5000 },
  );
});
