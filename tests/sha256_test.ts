/**
 * The TypeScript SHA-256 and HMAC-SHA256 the native backend uses for short
 * inputs: FIPS 180-4 and RFC 4231 vectors, and agreement with node:crypto on
 * every length around the block boundaries, split across parts.
 */

import { createHash, createHmac } from "node:crypto";
import { Sha256, SHORT_INPUT_MAX } from "../netcore/noise/_sha256.ts";
import { getCryptoBackend } from "../netcore/noise/crypto.ts";
import { assertEquals } from "./_assert.ts";
import { fromHex, randomBytes, toHex } from "./_bytes.ts";

const utf8 = new TextEncoder();

Deno.test("sha256: FIPS 180-4 examples", () => {
  const sha = new Sha256();
  assertEquals(
    toHex(sha.digest([])),
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
  );
  assertEquals(
    toHex(sha.digest([utf8.encode("abc")])),
    "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
  );
  assertEquals(
    toHex(sha.digest([utf8.encode("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq")])),
    "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1",
  );
});

Deno.test("sha256: RFC 4231 HMAC-SHA256 test cases 1, 2 and 6", () => {
  const sha = new Sha256();
  assertEquals(
    toHex(sha.hmac(new Uint8Array(20).fill(0x0b), [utf8.encode("Hi There")])),
    "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7",
  );
  assertEquals(
    toHex(sha.hmac(utf8.encode("Jefe"), [utf8.encode("what do ya want for nothing?")])),
    "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843",
  );
  // A key longer than a block is hashed first.
  assertEquals(
    toHex(sha.hmac(new Uint8Array(131).fill(0xaa), [
      utf8.encode("Test Using Larger Than Block-Size Key - Hash Key First"),
    ])),
    "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54",
  );
});

Deno.test("sha256: agrees with node:crypto on every length to 300, in one part or three", () => {
  const sha = new Sha256();
  for (let length = 0; length <= 300; length++) {
    const data = randomBytes(length);
    const key = randomBytes(length % 140);
    const a = Math.floor(length / 3), b = Math.floor((2 * length) / 3);
    const parts = [data.subarray(0, a), data.subarray(a, b), data.subarray(b)];
    const hash = createHash("sha256").update(data).digest("hex");
    assertEquals(toHex(sha.digest([data])), hash, `hash, ${length} bytes`);
    assertEquals(toHex(sha.digest(parts)), hash, `hash in parts, ${length} bytes`);
    assertEquals(
      toHex(sha.hmac(key, parts)),
      createHmac("sha256", key).update(data).digest("hex"),
      `hmac, ${length} bytes, key of ${key.length}`,
    );
  }
});

Deno.test("sha256: the native backend gives the same bytes on both sides of its size switch", () => {
  const native = getCryptoBackend("native").hash("SHA256");
  const noble = getCryptoBackend("noble").hash("SHA256");
  const key = fromHex("00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff");
  for (const length of [SHORT_INPUT_MAX - 1, SHORT_INPUT_MAX, SHORT_INPUT_MAX + 1]) {
    const data = randomBytes(length);
    assertEquals(native.hash(data), noble.hash(data), `hash, ${length} bytes`);
    assertEquals(native.hmac(key, data), noble.hmac(key, data), `hmac, ${length} bytes`);
  }
});
