/**
 * Base58btc: the Bitcoin alphabet, big-endian base-58 digits, and one leading
 * '1' per leading zero byte. Checked against Bitcoin Core's published vectors,
 * a real libp2p peer id, and a naive BigInt reference.
 */

import fc from "fast-check";
import { decodeBase58, encodeBase58 } from "../netcore/base58.ts";
import { NetworkError } from "../netcore/network_error.ts";
import { assertEquals } from "./_assert.ts";
import { fromHex, toHex } from "./_bytes.ts";

const ALPHABET = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz";

/** The definition, written the slow obvious way. */
function referenceEncode(bytes: Uint8Array): string {
  let zeros = 0;
  while (zeros < bytes.length && bytes[zeros] === 0) zeros++;
  let n = 0n;
  for (const b of bytes) n = n * 256n + BigInt(b);
  let digits = "";
  while (n > 0n) {
    digits = ALPHABET[Number(n % 58n)] + digits;
    n /= 58n;
  }
  return "1".repeat(zeros) + digits;
}

// Bitcoin Core src/test/data/base58_encode_decode.json.
const VECTORS: [string, string][] = [
  ["", ""],
  ["61", "2g"],
  ["626262", "a3gV"],
  ["636363", "aPEr"],
  ["73696d706c792061206c6f6e6720737472696e67", "2cFupjhnEsSn59qHXstmK2ffpLv2"],
  ["00eb15231dfceb60925886b67d065299925915aeb172c06647", "1NS17iag9jJgTHD1VXjvLCEnZuQ3rJDE9L"],
  ["516b6fcd0f", "ABnLTmg"],
  ["bf4f89001e670274dd", "3SEo3LWLoPntC"],
  ["572e4794", "3EFU7m"],
  ["ecac89cad93923c02321", "EJDM8drfXA6uyA"],
  ["10c8511e", "Rt5zm"],
  ["00000000000000000000", "1111111111"],
];

Deno.test("base58: Bitcoin Core vectors encode and decode", () => {
  for (const [hex, text] of VECTORS) {
    assertEquals(encodeBase58(fromHex(hex)), text, `encode(${hex})`);
    assertEquals(toHex(decodeBase58(text)), hex, `decode(${text})`);
  }
});

Deno.test("base58: 'hello' is Cn8eVZg", () => {
  const hello = new TextEncoder().encode("hello");
  assertEquals(encodeBase58(hello), "Cn8eVZg");
  assertEquals(new TextDecoder().decode(decodeBase58("Cn8eVZg")), "hello");
});

Deno.test("base58: each leading zero byte is one leading '1', and back", () => {
  assertEquals(encodeBase58(new Uint8Array([0])), "1");
  assertEquals(encodeBase58(new Uint8Array([0, 0, 0, 1])), "1112");
  assertEquals(encodeBase58(new Uint8Array([0, 0, 0xff])), "115Q");
  assertEquals(toHex(decodeBase58("1")), "00");
  assertEquals(toHex(decodeBase58("111")), "000000");
  assertEquals(toHex(decodeBase58("1112")), "00000001");
});

Deno.test("base58: the empty input is the empty string, and back", () => {
  assertEquals(encodeBase58(new Uint8Array(0)), "");
  assertEquals(decodeBase58("").length, 0);
});

Deno.test("base58: a libp2p Ed25519 peer id decodes to its identity multihash", () => {
  const text = "12D3KooWD3eckifWpRn9wQpMG9R9hX3sD158z7EqHWmweQAJU5SA";
  const bytes = decodeBase58(text);
  assertEquals(bytes.length, 38);
  // identity multihash (0x00), 36 bytes (0x24) of protobuf PublicKey:
  // field 1 KeyType = Ed25519 (08 01), field 2 Data, 32 bytes (12 20).
  assertEquals(toHex(bytes.subarray(0, 6)), "002408011220");
  assertEquals(encodeBase58(bytes), text);
});

Deno.test("base58: random bytes round-trip and match the BigInt reference", () => {
  const withLeadingZeros = fc.tuple(
    fc.integer({ min: 0, max: 4 }),
    fc.uint8Array({ maxLength: 64 }),
  )
    .map(([zeros, rest]) => {
      const out = new Uint8Array(zeros + rest.length);
      out.set(rest, zeros);
      return out;
    });
  fc.assert(
    fc.property(withLeadingZeros, (bytes) => {
      const text = encodeBase58(bytes);
      assertEquals(text, referenceEncode(bytes));
      assertEquals(toHex(decodeBase58(text)), toHex(bytes));
    }),
    { numRuns: 1000 },
  );
});

Deno.test("base58: random valid text decodes to bytes that encode back to it", () => {
  // Any text not starting with extra '1's is canonical, so the round trip is exact.
  const text = fc.string({ unit: fc.constantFrom(...ALPHABET), maxLength: 60 });
  fc.assert(
    fc.property(text, (t) => {
      assertEquals(encodeBase58(decodeBase58(t)), t);
    }),
    { numRuns: 1000 },
  );
});

Deno.test("base58: characters outside the alphabet are BAD_ADDRESS", () => {
  // 0, O, I and l are left out of the alphabet on purpose (they look alike).
  const bad = ["0", "O", "I", "l", "+", "/", " ", "-", "é", "\u00ff", "ª", "😀", "\u0000"];
  for (const ch of bad) {
    for (const text of [ch, `Cn8e${ch}VZg`, `11${ch}`, `Cn8eVZg${ch}`]) {
      let thrown: unknown;
      try {
        decodeBase58(text);
      } catch (err) {
        thrown = err;
      }
      if (!NetworkError.is(thrown, "BAD_ADDRESS")) {
        throw new Error(`decodeBase58(${JSON.stringify(text)}) threw ${thrown}`);
      }
    }
  }
});

Deno.test("base58: arbitrary strings decode or throw BAD_ADDRESS, nothing else", () => {
  fc.assert(
    fc.property(fc.string({ unit: "binary", maxLength: 40 }), (text) => {
      const valid = [...text].every((ch) => ALPHABET.includes(ch));
      try {
        decodeBase58(text);
        if (!valid) throw new Error(`accepted ${JSON.stringify(text)}`);
      } catch (err) {
        if (valid || !NetworkError.is(err, "BAD_ADDRESS")) throw err;
      }
    }),
    { numRuns: 300 },
  );
});
