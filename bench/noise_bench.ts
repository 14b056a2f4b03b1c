// Noise crypto throughput per backend: AEAD encrypt+decrypt of 64 KiB chunks
// (ChaChaPoly, AESGCM), X25519 DH, and full XX / IK handshakes with both sides
// in-process; and the short inputs the native backend keeps off node:crypto
// (a 44-byte ChaChaPoly message, an HMAC-SHA256 of 33 bytes), beside
// node:crypto called directly. `deno bench --allow-read bench/noise_bench.ts`
//
// A "64 KiB chunk" here is 65519 plaintext bytes: the largest that fits one
// 65535-byte Noise message with its 16-byte tag.

import { createCipheriv, createHmac } from "node:crypto";
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

// ---- short inputs: the native backend's TypeScript paths against node:crypto ----

const shortKey = crypto.getRandomValues(new Uint8Array(32));
const pingFrame = crypto.getRandomValues(new Uint8Array(44)); // a yamux header and a 32-byte ping
const shortOut = new Uint8Array(44 + 16);
const native = getCryptoBackend("native");
const nativeChaCha = native.cipher("ChaChaPoly");
let shortNonce = 0n;
Deno.bench({
  name: "native backend ChaChaPoly encrypt 44 bytes",
  group: "short ChaChaPoly",
  baseline: true,
  fn() {
    nativeChaCha.encrypt(shortKey, shortNonce++, EMPTY, pingFrame, shortOut);
  },
});
const iv = new Uint8Array(12);
Deno.bench({
  name: "node:crypto chacha20-poly1305 encrypt 44 bytes",
  group: "short ChaChaPoly",
  fn() {
    const c = createCipheriv("chacha20-poly1305", shortKey, iv, { authTagLength: 16 });
    c.setAAD(EMPTY, { plaintextLength: pingFrame.length });
    c.update(pingFrame);
    c.final();
    c.getAuthTag();
  },
});
const hmacInput = crypto.getRandomValues(new Uint8Array(33));
const nativeSha = native.hash("SHA256");
Deno.bench({
  name: "native backend HMAC-SHA256 of 33 bytes",
  group: "short HMAC",
  baseline: true,
  fn() {
    nativeSha.hmac(shortKey, hmacInput);
  },
});
Deno.bench({
  name: "node:crypto createHmac sha256 of 33 bytes",
  group: "short HMAC",
  fn() {
    createHmac("sha256", shortKey).update(hmacInput).digest();
  },
});
