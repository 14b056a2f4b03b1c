// The Noise Protocol Framework (rev 34) beyond the vectors: the handshake
// state machine, nonce exhaustion, Rekey(), the 65535-byte limit, tampered
// and truncated messages, and the early onRemoteStatic hook.

import fc from "fast-check";
import { delay } from "../netcore/_async.ts";
import { NetworkError } from "../netcore/network_error.ts";
import { CipherState, MAX_NOISE_MESSAGE_LEN } from "../netcore/noise/cipher_state.ts";
import { type CryptoBackend, getCryptoBackend, type KeyPair } from "../netcore/noise/crypto.ts";
import { type HandshakeOptions, HandshakeState } from "../netcore/noise/handshake_state.ts";
import { HANDSHAKE_PATTERN_NAMES, parseHandshakePattern } from "../netcore/noise/patterns.ts";
import { assert, assertEquals, assertThrows, assertThrowsCode } from "./_assert.ts";
import { toHex } from "./_bytes.ts";

const EMPTY = new Uint8Array(0);
const enc = (s: string) => new TextEncoder().encode(s);
const dec = (b: Uint8Array) => new TextDecoder().decode(b);
const BACKENDS = [getCryptoBackend("native"), getCryptoBackend("noble")];

interface Pair {
  init: HandshakeState;
  resp: HandshakeState;
  initStatic: KeyPair;
  respStatic: KeyPair;
}

function pair(
  protocolName: string,
  backend: CryptoBackend = BACKENDS[0],
  extra: Partial<HandshakeOptions> = {},
  respExtra: Partial<HandshakeOptions> = {},
): Pair {
  const initStatic = backend.dh.generateKeyPair();
  const respStatic = backend.dh.generateKeyPair();
  const init = new HandshakeState({
    protocolName,
    initiator: true,
    s: initStatic,
    rs: respStatic.publicKey,
    backend,
    ...extra,
  });
  const resp = new HandshakeState({
    protocolName,
    initiator: false,
    s: respStatic,
    rs: initStatic.publicKey,
    backend,
    ...respExtra,
  });
  return { init, resp, initStatic, respStatic };
}

/** Runs the handshake to completion, checking each payload arrives. */
function complete(init: HandshakeState, resp: HandshakeState): void {
  let n = 0;
  while (!init.isComplete) {
    const [w, r] = init.isMyTurn ? [init, resp] : [resp, init];
    assert(!r.isMyTurn, "exactly one side's turn");
    assertEquals(dec(r.readMessage(w.writeMessage(enc(`m${n}`)))), `m${n}`);
    n++;
  }
  assert(resp.isComplete, "both sides complete together");
}

Deno.test("patterns: all 38 base patterns of rev 34 (3 one-way, 12 fundamental, 23 deferred)", () => {
  assertEquals(HANDSHAKE_PATTERN_NAMES.length, 38);
  for (const name of HANDSHAKE_PATTERN_NAMES) {
    const p = parseHandshakePattern(name);
    // Messages alternate, starting with the initiator.
    p.messages.forEach((m, i) => assertEquals(m.fromInitiator, i % 2 === 0, `${name} msg ${i}`));
    assertEquals(p.oneWay, p.messages.length === 1, name);
  }
});

Deno.test("patterns: psk modifiers insert psk tokens (psk0 first, pskN at the end of message N)", () => {
  const p = parseHandshakePattern("NNpsk0+psk2");
  assertEquals(p.messages.map((m) => m.tokens), [["psk", "e"], ["e", "ee", "psk"]]);
  assertEquals([p.hasPsk, p.pskCount], [true, 2]);
  assertEquals(parseHandshakePattern("XXpsk3").messages[2].tokens, ["s", "se", "psk"]);
  assertEquals(parseHandshakePattern("IKpsk1").messages[0].tokens, ["e", "es", "s", "ss", "psk"]);
  // The base table is not mutated by modifiers.
  assertEquals(parseHandshakePattern("NN").messages[0].tokens, ["e"]);
  for (const bad of ["ZZ", "XXpsk4", "XXpsk1+psk1", "XXfallback", "xx", "", "NN+psk0"]) {
    assertThrows(() => parseHandshakePattern(bad), TypeError, undefined, bad);
  }
});

Deno.test("config: missing keys, wrong psk count, bad names are TypeErrors at construction", () => {
  const { dh } = BACKENDS[0];
  const s = dh.generateKeyPair();
  const nope = (o: HandshakeOptions, what: string) =>
    assertThrows(() => new HandshakeState(o), TypeError, undefined, what);
  nope({ protocolName: "Noise_XX_25519_ChaChaPoly_SHA256", initiator: true }, "XX without s");
  nope({ protocolName: "Noise_IK_25519_ChaChaPoly_SHA256", initiator: true, s }, "IK without rs");
  nope({ protocolName: "Noise_NK_25519_ChaChaPoly_SHA256", initiator: false }, "NK resp without s");
  nope({ protocolName: "Noise_NNpsk0_25519_ChaChaPoly_SHA256", initiator: true }, "psk missing");
  nope({
    protocolName: "Noise_NNpsk0_25519_ChaChaPoly_SHA256",
    initiator: true,
    psks: [new Uint8Array(31)],
  }, "short psk");
  nope({ protocolName: "Noise_NN_448_ChaChaPoly_SHA256", initiator: true }, "DH 448");
  nope({ protocolName: "Noise_NN_25519_ChaChaPoly_SHA512", initiator: true }, "SHA512");
  nope({ protocolName: "NoiseNN_25519_ChaChaPoly_SHA256", initiator: true }, "malformed");
  // NN needs no static key; XX's responder-only keys are not needed by NN.
  new HandshakeState({ protocolName: "Noise_NN_25519_ChaChaPoly_SHA256", initiator: true });
});

Deno.test("state machine: out-of-turn, after completion, split before completion -> PROTOCOL_VIOLATION", () => {
  const { init, resp, initStatic, respStatic } = pair("Noise_XX_25519_ChaChaPoly_SHA256");
  assertEquals([init.isMyTurn, resp.isMyTurn, init.isComplete], [true, false, false]);
  assertThrowsCode(() => resp.writeMessage(EMPTY), "PROTOCOL_VIOLATION", "responder writes first");
  assertThrowsCode(() => init.readMessage(new Uint8Array(48)), "PROTOCOL_VIOLATION", "init reads");
  assertThrowsCode(() => init.split(), "PROTOCOL_VIOLATION", "split before completion");
  // The refused calls changed nothing: the handshake still completes.
  complete(init, resp);
  assertEquals([init.isMyTurn, resp.isMyTurn], [false, false]);
  assertThrowsCode(() => init.writeMessage(EMPTY), "PROTOCOL_VIOLATION", "write after completion");
  assertThrowsCode(() => resp.readMessage(new Uint8Array(64)), "PROTOCOL_VIOLATION", "read after");
  const [a, b] = init.split();
  assert(init.split()[0] === a && init.split()[1] === b, "split() returns the same pair");
  assertEquals(init.handshakeHash, resp.handshakeHash);
  assertEquals(init.remoteStaticKey, respStatic.publicKey);
  assertEquals(resp.remoteStaticKey, initStatic.publicKey);
});

Deno.test("handshakes complete for every base pattern, with and without psks, on both backends", () => {
  for (const backend of BACKENDS) {
    for (const base of HANDSHAKE_PATTERN_NAMES) {
      const last = parseHandshakePattern(base).messages.length;
      for (const mods of ["", "psk0", `psk${last}`, `psk0+psk${last}`]) {
        const p = parseHandshakePattern(base + mods);
        const name = `Noise_${p.name}_25519_ChaChaPoly_BLAKE2s`;
        const psks = Array.from({ length: p.pskCount }, (_, i) => new Uint8Array(32).fill(i + 1));
        const { init, resp } = pair(name, backend, { psks }, { psks });
        complete(init, resp);
        assertEquals(init.handshakeHash, resp.handshakeHash, name);
        const [iTx, iRx] = init.split();
        const [rRx, rTx] = resp.split();
        assertEquals(dec(rRx.decryptWithAd(EMPTY, iTx.encryptWithAd(EMPTY, enc("a")))), "a", name);
        if (!p.oneWay) {
          assertEquals(dec(iRx.decryptWithAd(EMPTY, rTx.encryptWithAd(EMPTY, enc("b")))), "b");
        }
      }
    }
  }
});

Deno.test("psk0+psk2: both psks are used; a wrong second psk fails the second message", () => {
  const name = "Noise_NNpsk0+psk2_25519_AESGCM_SHA256";
  const k1 = new Uint8Array(32).fill(1), k2 = new Uint8Array(32).fill(2);
  const ok = pair(name, BACKENDS[1], { psks: [k1, k2] }, { psks: [k1, k2] });
  complete(ok.init, ok.resp);
  const bad = pair(name, BACKENDS[1], { psks: [k1, k2] }, { psks: [k1, k1] });
  bad.resp.readMessage(bad.init.writeMessage(EMPTY));
  assertThrowsCode(() => bad.init.readMessage(bad.resp.writeMessage(EMPTY)), "HANDSHAKE_FAILED");
});

Deno.test("generated key pairs are fresh, and each backend derives the other's public key from the private one", async () => {
  const [native, noble] = BACKENDS;
  const seen = new Set<string>();
  for (let i = 0; i < 20; i++) {
    // Some native pairs come from its spares, made a turn ahead.
    if (i % 4 === 0) await delay(0);
    const a = native.dh.generateKeyPair(), b = noble.dh.generateKeyPair();
    for (const key of [a.privateKey, b.privateKey]) {
      const hex = toHex(key);
      assert(!seen.has(hex), "a private key handed out twice");
      seen.add(hex);
    }
    assertEquals(noble.dh.keyPairFromPrivate(a.privateKey).publicKey, a.publicKey);
    assertEquals(native.dh.keyPairFromPrivate(b.privateKey).publicKey, b.publicKey);
    assertEquals(native.dh.dh(a.privateKey, b.publicKey), noble.dh.dh(b.privateKey, a.publicKey));
  }
});

Deno.test("native DH: an array reused for another key is never served the old key's import", () => {
  const [native, noble] = BACKENDS;
  const a = native.dh.generateKeyPair(), b = native.dh.generateKeyPair();
  const c = native.dh.generateKeyPair();
  const publicKey = b.publicKey.slice();
  assertEquals(native.dh.dh(a.privateKey, publicKey), noble.dh.dh(a.privateKey, b.publicKey));
  publicKey.set(c.publicKey);
  assertEquals(native.dh.dh(a.privateKey, publicKey), noble.dh.dh(a.privateKey, c.publicKey));
  const privateKey = a.privateKey.slice();
  assertEquals(native.dh.dh(privateKey, c.publicKey), noble.dh.dh(a.privateKey, c.publicKey));
  privateKey.set(b.privateKey);
  assertEquals(native.dh.dh(privateKey, c.publicKey), noble.dh.dh(b.privateKey, c.publicKey));
});

Deno.test("the two backends interoperate (native initiator, noble responder)", () => {
  const [native, noble] = BACKENDS;
  for (const suite of ["ChaChaPoly_SHA256", "AESGCM_BLAKE2s"]) {
    const name = `Noise_IK_25519_${suite}`;
    const s1 = native.dh.generateKeyPair(), s2 = noble.dh.generateKeyPair();
    const init = new HandshakeState({
      protocolName: name,
      initiator: true,
      s: s1,
      rs: s2.publicKey,
      backend: native,
    });
    const resp = new HandshakeState({
      protocolName: name,
      initiator: false,
      s: s2,
      backend: noble,
    });
    complete(init, resp);
    assertEquals(init.handshakeHash, resp.handshakeHash, suite);
  }
});

Deno.test("tampered handshake messages -> HANDSHAKE_FAILED, then the state is dead", () => {
  const { init, resp } = pair("Noise_XX_25519_ChaChaPoly_SHA256");
  resp.readMessage(init.writeMessage(EMPTY));
  const msg2 = resp.writeMessage(enc("hello"));
  // Every byte after the ephemeral key is authenticated (s is encrypted, then payload).
  for (const at of [32, 40, 32 + 48, msg2.length - 1]) {
    const { init: i2, resp: r2 } = pair("Noise_XX_25519_ChaChaPoly_SHA256");
    r2.readMessage(i2.writeMessage(EMPTY));
    const m = r2.writeMessage(enc("hello"));
    m[at] ^= 1;
    assertThrowsCode(() => i2.readMessage(m), "HANDSHAKE_FAILED", `flip at ${at}`);
    assertThrowsCode(() => i2.readMessage(m), "PROTOCOL_VIOLATION", "after failure");
    assertThrowsCode(() => i2.writeMessage(EMPTY), "PROTOCOL_VIOLATION", "after failure");
  }
  // The untampered message still works for the original pair.
  assertEquals(dec(init.readMessage(msg2)), "hello");
});

Deno.test("truncated handshake messages -> HANDSHAKE_FAILED (never a raw exception)", () => {
  for (const backend of BACKENDS) {
    const { init, resp } = pair("Noise_XX_25519_AESGCM_SHA256", backend);
    resp.readMessage(init.writeMessage(EMPTY));
    const msg2 = resp.writeMessage(enc("payload"));
    for (let len = 0; len < msg2.length; len++) {
      const { init: i2, resp: r2 } = pair("Noise_XX_25519_AESGCM_SHA256", backend);
      r2.readMessage(i2.writeMessage(EMPTY));
      r2.writeMessage(enc("payload"));
      assertThrowsCode(() => i2.readMessage(msg2.subarray(0, len)), "HANDSHAKE_FAILED", `${len}`);
    }
    assertEquals(dec(init.readMessage(msg2)), "payload");
  }
});

Deno.test("a low-order (all-zero) ephemeral key -> HANDSHAKE_FAILED on both backends", () => {
  for (const backend of BACKENDS) {
    const { resp } = pair("Noise_NN_25519_ChaChaPoly_SHA256", backend);
    resp.readMessage(new Uint8Array(32)); // NN msg 1: e only, no DH yet
    assertThrowsCode(() => resp.writeMessage(EMPTY), "HANDSHAKE_FAILED", backend.name);
  }
});

Deno.test("random bytes into readMessage only ever throw NetworkError", () => {
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 200 }), fc.boolean(), (bytes, first) => {
      const { init, resp } = pair("Noise_IK_25519_ChaChaPoly_SHA256");
      let target = resp;
      if (!first) {
        resp.readMessage(init.writeMessage(EMPTY));
        resp.writeMessage(EMPTY);
        target = init;
      }
      try {
        target.readMessage(bytes);
      } catch (err) {
        if (!(err instanceof NetworkError)) throw err;
        assert(NetworkError.is(err, "HANDSHAKE_FAILED"), err.message);
      }
    }),
    { numRuns: 200 },
  );
});

Deno.test("message size: 65535 is the limit for handshake and transport messages", () => {
  const { init, resp } = pair("Noise_NN_25519_ChaChaPoly_SHA256");
  // NN message 1 is e (32) + an unencrypted payload.
  assertThrowsCode(
    () => init.writeMessage(new Uint8Array(MAX_NOISE_MESSAGE_LEN - 31)),
    "FRAME_TOO_LARGE",
  );
  assert(init.isMyTurn, "a refused oversized payload leaves the state usable");
  const m1 = init.writeMessage(new Uint8Array(MAX_NOISE_MESSAGE_LEN - 32));
  assertEquals(m1.length, MAX_NOISE_MESSAGE_LEN);
  resp.readMessage(m1);
  // Message 2 is e (32) + encrypted payload (+16).
  assertThrowsCode(
    () => resp.writeMessage(new Uint8Array(MAX_NOISE_MESSAGE_LEN - 47)),
    "FRAME_TOO_LARGE",
  );
  const m2 = resp.writeMessage(new Uint8Array(MAX_NOISE_MESSAGE_LEN - 48));
  assertEquals(m2.length, MAX_NOISE_MESSAGE_LEN);
  init.readMessage(m2);

  const [tx, rx] = [init.split()[0], resp.split()[0]];
  assertThrowsCode(() => tx.encryptWithAd(EMPTY, new Uint8Array(65520)), "FRAME_TOO_LARGE");
  assertEquals(tx.nonce, 0n);
  const ct = tx.encryptWithAd(EMPTY, new Uint8Array(65519));
  assertEquals(ct.length, 65535);
  assertEquals(rx.decryptWithAd(EMPTY, ct).length, 65519);
  assertThrowsCode(() => rx.decryptWithAd(EMPTY, new Uint8Array(65536)), "FRAME_TOO_LARGE");

  const { resp: r2 } = pair("Noise_NN_25519_ChaChaPoly_SHA256");
  assertThrowsCode(() => r2.readMessage(new Uint8Array(65536)), "FRAME_TOO_LARGE");
});

for (const backend of BACKENDS) {
  for (const cipherName of ["ChaChaPoly", "AESGCM"] as const) {
    const cipher = backend.cipher(cipherName);
    const label = `${backend.name} ${cipherName}`;

    Deno.test(`CipherState (${label}): nonces advance; a bad tag leaves n unchanged`, () => {
      const key = new Uint8Array(32).fill(9);
      const tx = new CipherState(cipher, key), rx = new CipherState(cipher, key);
      const c0 = tx.encryptWithAd(enc("ad"), enc("zero"));
      const c1 = tx.encryptWithAd(enc("ad"), enc("one"));
      assertEquals(tx.nonce, 2n);
      const bad = c0.slice();
      bad[0] ^= 0x80;
      assertThrowsCode(() => rx.decryptWithAd(enc("ad"), bad), "HANDSHAKE_FAILED");
      assertThrowsCode(() => rx.decryptWithAd(enc("other ad"), c0), "HANDSHAKE_FAILED");
      assertThrowsCode(() => rx.decryptWithAd(enc("ad"), c0.subarray(0, 15)), "HANDSHAKE_FAILED");
      assertEquals(rx.nonce, 0n);
      assertEquals(dec(rx.decryptWithAd(enc("ad"), c0)), "zero");
      assertEquals(dec(rx.decryptWithAd(enc("ad"), c1)), "one");
      // Out-of-order delivery via setNonce.
      rx.setNonce(0n);
      assertEquals(dec(rx.decryptWithAd(enc("ad"), c0)), "zero");
      // Without a key, CipherState passes bytes through.
      const plain = new CipherState(cipher);
      assertEquals([plain.hasKey(), dec(plain.encryptWithAd(EMPTY, enc("x")))], [false, "x"]);
    });

    Deno.test(`CipherState (${label}): nonce 2^64-1 is reserved; exhaustion is LIMIT_EXCEEDED`, () => {
      const key = new Uint8Array(32).fill(3);
      const tx = new CipherState(cipher, key), rx = new CipherState(cipher, key);
      tx.setNonce(2n ** 64n - 2n);
      rx.setNonce(2n ** 64n - 2n);
      const last = tx.encryptWithAd(EMPTY, enc("last"));
      assertEquals(dec(rx.decryptWithAd(EMPTY, last)), "last");
      assertEquals(tx.nonce, 2n ** 64n - 1n);
      assertThrowsCode(() => tx.encryptWithAd(EMPTY, enc("more")), "LIMIT_EXCEEDED");
      assertThrowsCode(() => rx.decryptWithAd(EMPTY, last), "LIMIT_EXCEEDED");
      assertThrows(() => tx.setNonce(2n ** 64n), TypeError);
      assertThrows(() => tx.setNonce(-1n), TypeError);
    });

    Deno.test(`CipherState (${label}): Rekey() = ENCRYPT(k, 2^64-1, empty, zeros)[0..32], n kept`, () => {
      const key = new Uint8Array(32).fill(5);
      const tx = new CipherState(cipher, key), rx = new CipherState(cipher, key);
      const stale = new CipherState(cipher, key);
      tx.encryptWithAd(EMPTY, enc("a"));
      rx.setNonce(1n);
      stale.setNonce(1n);
      tx.rekey();
      rx.rekey();
      assertEquals([tx.nonce, rx.nonce], [1n, 1n]);
      const ct = tx.encryptWithAd(EMPTY, enc("after rekey"));
      assertEquals(dec(rx.decryptWithAd(EMPTY, ct)), "after rekey");
      assertThrowsCode(() => stale.decryptWithAd(EMPTY, ct), "HANDSHAKE_FAILED", "old key");
      const expectedKey = cipher.encrypt(key, 2n ** 64n - 1n, EMPTY, new Uint8Array(32))
        .slice(0, 32);
      const manual = new CipherState(cipher, expectedKey);
      manual.setNonce(1n);
      assertEquals(manual.encryptWithAd(EMPTY, enc("after rekey")), ct);
      assertThrows(
        () => new CipherState(cipher).rekey(),
        TypeError,
        undefined,
        "rekey without a key",
      );
    });

    Deno.test(`cipher (${label}): encrypt into a caller buffer returns a view of it`, () => {
      const key = new Uint8Array(32).fill(1);
      const out = new Uint8Array(64);
      const ct = cipher.encrypt(key, 7n, enc("ad"), enc("hello"), out);
      assertEquals(ct.length, 21);
      assert(ct.buffer === out.buffer && ct.byteOffset === 0, "a view of out");
      assertEquals(ct, cipher.encrypt(key, 7n, enc("ad"), enc("hello")));
      assertEquals(dec(cipher.decrypt(key, 7n, enc("ad"), ct)), "hello");
    });
  }
}

/** A backend whose DH counts its calls, to see when work happens. */
function countingBackend(inner: CryptoBackend): { backend: CryptoBackend; count: () => number } {
  let calls = 0;
  const dh = {
    ...inner.dh,
    dh(priv: Uint8Array, pub: Uint8Array) {
      calls++;
      return inner.dh.dh(priv, pub);
    },
  };
  return {
    backend: { ...inner, dh },
    count: () => calls,
  };
}

Deno.test("onRemoteStatic: IK responder sees the key after es, before ss; throwing aborts unchanged", () => {
  const counting = countingBackend(BACKENDS[0]);
  const initS = BACKENDS[0].dh.generateKeyPair(), respS = BACKENDS[0].dh.generateKeyPair();
  const name = "Noise_IK_25519_ChaChaPoly_SHA256";
  const init = new HandshakeState({
    protocolName: name,
    initiator: true,
    s: initS,
    rs: respS.publicKey,
  });
  const msg1 = init.writeMessage(enc("hi"));

  const refusal = new Error("unknown validator");
  const seen: { key: Uint8Array; dhCalls: number }[] = [];
  const resp = new HandshakeState({
    protocolName: name,
    initiator: false,
    s: respS,
    backend: counting.backend,
    onRemoteStatic: (key) => {
      seen.push({ key, dhCalls: counting.count() });
      throw refusal;
    },
  });
  let thrown: unknown;
  try {
    resp.readMessage(msg1);
  } catch (err) {
    thrown = err;
  }
  assert(thrown === refusal, "the callback's error propagates unchanged");
  assertEquals(seen.length, 1);
  assertEquals(seen[0].key, initS.publicKey);
  assertEquals(seen[0].dhCalls, 1, "only es ran before the callback");
  assertEquals(counting.count(), 1, "ss never ran");
  assertThrowsCode(() => resp.readMessage(msg1), "PROTOCOL_VIOLATION", "the handshake is dead");

  // Accepting: the handshake goes on, ss runs after the callback.
  let calledAt = -1;
  const c2 = countingBackend(BACKENDS[0]);
  const accepting = new HandshakeState({
    protocolName: name,
    initiator: false,
    s: respS,
    backend: c2.backend,
    onRemoteStatic: () => {
      calledAt = c2.count();
    },
  });
  const i2 = new HandshakeState({
    protocolName: name,
    initiator: true,
    s: initS,
    rs: respS.publicKey,
  });
  assertEquals(dec(accepting.readMessage(i2.writeMessage(enc("hi")))), "hi");
  assertEquals([calledAt, c2.count()], [1, 2]);
});

Deno.test("onRemoteStatic: XX initiator learns the responder key in message 2", () => {
  const keys: Uint8Array[] = [];
  const { init, resp, respStatic } = pair(
    "Noise_XX_25519_AESGCM_BLAKE2s",
    BACKENDS[1],
    { onRemoteStatic: (k) => keys.push(k) },
  );
  resp.readMessage(init.writeMessage(EMPTY));
  assertEquals(keys.length, 0);
  init.readMessage(resp.writeMessage(EMPTY));
  assertEquals(keys, [respStatic.publicKey]);
});
