// The cacophony Noise vectors (Noise rev 34, 25519 x {ChaChaPoly, AESGCM} x
// {SHA256, BLAKE2s}, 59 patterns incl. one-way, deferred and psk) against both
// crypto backends: every handshake ciphertext, payload, the handshake hash on
// both sides, then the transport messages.

import { getCryptoBackend } from "../netcore/noise/crypto.ts";
import { loadVectors, runVector } from "./noise_vectors_report.ts";
import { assertEquals } from "./_assert.ts";

const vectors = await loadVectors();

Deno.test("the vectors file holds 236 vectors: 59 patterns x 4 cipher/hash suites", () => {
  assertEquals(vectors.length, 236);
  const patterns = new Set(vectors.map((v) => v.protocol_name.split("_")[1]));
  assertEquals(patterns.size, 59);
});

for (const name of ["native", "noble"] as const) {
  Deno.test(`Noise vectors pass with the ${name} backend`, async (t) => {
    const backend = getCryptoBackend(name);
    assertEquals(backend.name, name);
    for (const v of vectors) {
      await t.step(v.protocol_name, () => runVector(v, backend));
    }
  });
}

Deno.test("the vector runner rejects a vector with one ciphertext bit flipped", () => {
  const v = structuredClone(
    vectors.find((x) => x.protocol_name === "Noise_XX_25519_AESGCM_SHA256")!,
  );
  const last = v.messages[2].ciphertext;
  v.messages[2].ciphertext = last.slice(0, -1) + (last.endsWith("0") ? "1" : "0");
  let failed = false;
  try {
    runVector(v, getCryptoBackend("noble"));
  } catch {
    failed = true;
  }
  assertEquals(failed, true);
});
