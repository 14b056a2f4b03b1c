/**
 * Runs the cacophony Noise test vectors (236: 59 patterns x 4 suites over
 * Curve25519) against both crypto backends and prints
 * `native: N/236 vectors passed` and `noble: N/236 vectors passed`; exits 1
 * when either backend passes fewer than all of them.
 *
 * `deno task test:vectors`
 *
 * Also exports {@linkcode runVector} and {@linkcode loadVectors}, which
 * `noise_vectors_test.ts` uses, so the test and this report check the same
 * thing.
 *
 * @module
 */

import { type CryptoBackend, getCryptoBackend } from "../netcore/noise/crypto.ts";
import { HandshakeState } from "../netcore/noise/handshake_state.ts";
import type { CipherState } from "../netcore/noise/cipher_state.ts";
import { fromHex, toHex } from "./_bytes.ts";

/** One cacophony vector (hex strings). */
export interface NoiseVector {
  protocol_name: string;
  init_prologue: string;
  init_ephemeral: string;
  init_static?: string;
  init_remote_static?: string;
  init_psks?: string[];
  resp_prologue: string;
  resp_ephemeral?: string;
  resp_static?: string;
  resp_remote_static?: string;
  resp_psks?: string[];
  handshake_hash: string;
  messages: { payload: string; ciphertext: string }[];
}

/**
 * The vectors file: a copy of the workplace's `shared/vectors` file (the
 * public-domain cacophony vectors), kept in the repository so a clone tests
 * on its own.
 */
export const VECTORS_URL = new URL("./vectors/noise-cacophony-25519.json", import.meta.url);

/** Reads the vectors. */
export async function loadVectors(): Promise<NoiseVector[]> {
  const json = JSON.parse(await Deno.readTextFile(VECTORS_URL));
  return json.vectors as NoiseVector[];
}

function expectEqual(actual: Uint8Array, expectedHex: string, what: string): void {
  const got = toHex(actual);
  if (got !== expectedHex) throw new Error(`${what}: expected ${expectedHex}, got ${got}`);
}

/**
 * Runs one vector with `backend`; throws an Error saying what differed.
 *
 * Each handshake message is written by its sender (fixed ephemerals) and
 * compared with the vector's ciphertext, then read by the receiver, whose
 * payload must match. After the handshake both sides' hashes must equal
 * `handshake_hash`, and the remaining messages are transport messages:
 * cacophony keeps alternating senders (continuing from the handshake's last
 * message) for interactive patterns, and has the initiator send every one for
 * one-way patterns.
 */
export function runVector(v: NoiseVector, backend: CryptoBackend): void {
  const { dh } = backend;
  const psks = (list?: string[]) => list?.map(fromHex);
  const init = new HandshakeState({
    protocolName: v.protocol_name,
    initiator: true,
    prologue: fromHex(v.init_prologue),
    e: dh.keyPairFromPrivate(fromHex(v.init_ephemeral)),
    s: v.init_static ? dh.keyPairFromPrivate(fromHex(v.init_static)) : undefined,
    rs: v.init_remote_static ? fromHex(v.init_remote_static) : undefined,
    psks: psks(v.init_psks),
    backend,
  });
  const resp = new HandshakeState({
    protocolName: v.protocol_name,
    initiator: false,
    prologue: fromHex(v.resp_prologue),
    e: v.resp_ephemeral ? dh.keyPairFromPrivate(fromHex(v.resp_ephemeral)) : undefined,
    s: v.resp_static ? dh.keyPairFromPrivate(fromHex(v.resp_static)) : undefined,
    rs: v.resp_remote_static ? fromHex(v.resp_remote_static) : undefined,
    psks: psks(v.resp_psks),
    backend,
  });

  let i = 0;
  for (; !init.isComplete; i++) {
    const msg = v.messages[i];
    if (msg === undefined) throw new Error(`vector ends before the handshake (${i} messages)`);
    const [sender, receiver] = init.isMyTurn ? [init, resp] : [resp, init];
    const ct = sender.writeMessage(fromHex(msg.payload));
    expectEqual(ct, msg.ciphertext, `handshake message ${i} ciphertext`);
    expectEqual(receiver.readMessage(ct), msg.payload, `handshake message ${i} payload`);
  }
  if (!resp.isComplete) throw new Error("responder not complete after the initiator");
  expectEqual(init.handshakeHash, v.handshake_hash, "initiator handshake hash");
  expectEqual(resp.handshakeHash, v.handshake_hash, "responder handshake hash");

  const [initTx, initRx] = init.split();
  const [respRx, respTx] = resp.split();
  const oneWay = init.pattern.oneWay;
  const ad = new Uint8Array(0);
  for (; i < v.messages.length; i++) {
    const msg = v.messages[i];
    const fromInitiator = oneWay || i % 2 === 0;
    const [tx, rx]: [CipherState, CipherState] = fromInitiator
      ? [initTx, respRx]
      : [respTx, initRx];
    const ct = tx.encryptWithAd(ad, fromHex(msg.payload));
    expectEqual(ct, msg.ciphertext, `transport message ${i} ciphertext`);
    expectEqual(rx.decryptWithAd(ad, ct), msg.payload, `transport message ${i} payload`);
  }
}

/** Runs every vector with `backend`; returns the failures. */
export function runAll(
  vectors: NoiseVector[],
  backend: CryptoBackend,
): { passed: number; failures: string[] } {
  let passed = 0;
  const failures: string[] = [];
  for (const v of vectors) {
    try {
      runVector(v, backend);
      passed++;
    } catch (err) {
      failures.push(`${v.protocol_name}: ${err instanceof Error ? err.message : String(err)}`);
    }
  }
  return { passed, failures };
}

if (import.meta.main) {
  const vectors = await loadVectors();
  let ok = true;
  for (const name of ["native", "noble"] as const) {
    const { passed, failures } = runAll(vectors, getCryptoBackend(name));
    console.log(`${name}: ${passed}/${vectors.length} vectors passed`);
    for (const f of failures.slice(0, 10)) console.log(`  FAIL ${f}`);
    if (passed < 236 || passed < vectors.length) ok = false;
  }
  if (!ok) Deno.exit(1);
}
