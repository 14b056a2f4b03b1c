// Noise crypto throughput per backend: AEAD encrypt+decrypt of 64 KiB chunks
// (ChaChaPoly, AESGCM), X25519 DH, and full XX / IK handshakes with both sides
// in-process. `deno bench --allow-read bench/noise_bench.ts`
//
// A "64 KiB chunk" here is 65519 plaintext bytes: the largest that fits one
// 65535-byte Noise message with its 16-byte tag.

import { CipherState } from "../netcore/noise/cipher_state.ts";
import { getCryptoBackend } from "../netcore/noise/crypto.ts";
import { HandshakeState } from "../netcore/noise/handshake_state.ts";

const CHUNK = 65535 - 16;
const EMPTY = new Uint8Array(0);
const plaintext = crypto.getRandomValues(new Uint8Array(CHUNK));

for (const backendName of ["native", "noble"] as const) {
  const backend = getCryptoBackend(backendName);

  for (const cipherName of ["ChaChaPoly", "AESGCM"] as const) {
    const cipher = backend.cipher(cipherName);
    const key = crypto.getRandomValues(new Uint8Array(32));
    const tx = new CipherState(cipher, key), rx = new CipherState(cipher, key);
    const out = new Uint8Array(CHUNK + 16);
    Deno.bench({
      name: `${backendName} ${cipherName} encrypt+decrypt 64 KiB`,
      group: `cipher ${cipherName}`,
      baseline: backendName === "native",
      fn() {
        rx.decryptWithAd(EMPTY, tx.encryptWithAd(EMPTY, plaintext, out));
      },
    });
  }

  const a = backend.dh.generateKeyPair(), b = backend.dh.generateKeyPair();
  Deno.bench({
    name: `${backendName} X25519 DH`,
    group: "x25519",
    baseline: backendName === "native",
    fn() {
      backend.dh.dh(a.privateKey, b.publicKey);
    },
  });
  Deno.bench({
    name: `${backendName} X25519 generateKeyPair`,
    group: "x25519 keygen",
    baseline: backendName === "native",
    fn() {
      backend.dh.generateKeyPair();
    },
  });

  for (const pattern of ["XX", "IK"]) {
    const protocolName = `Noise_${pattern}_25519_ChaChaPoly_SHA256`;
    Deno.bench({
      name: `${backendName} ${pattern} handshake (both sides)`,
      group: `handshake ${pattern}`,
      baseline: backendName === "native",
      fn() {
        const init = new HandshakeState({
          protocolName,
          initiator: true,
          s: a,
          rs: pattern === "IK" ? b.publicKey : undefined,
          backend,
        });
        const resp = new HandshakeState({
          protocolName,
          initiator: false,
          s: b,
          backend,
        });
        while (!init.isComplete) {
          const [w, r] = init.isMyTurn ? [init, resp] : [resp, init];
          r.readMessage(w.writeMessage(EMPTY));
        }
        init.split();
        resp.split();
      },
    });
  }
}
