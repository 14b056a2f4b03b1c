/**
 * The Ed25519 primitives behind the identity module.
 *
 * `node:crypto` (OpenSSL underneath) signs and verifies about twelve times
 * faster than `@noble/curves` here (a sign+verify pair: ~70 µs against
 * ~850 µs), and connection setup does one of each per handshake, so it is the
 * first choice; noble is the fallback where `node:crypto` lacks Ed25519.
 *
 * @module
 */

import { ed25519 } from "@noble/curves/ed25519.js";
import {
  createPrivateKey,
  createPublicKey,
  type KeyObject,
  sign as nodeSign,
  verify as nodeVerify,
} from "node:crypto";
import { Buffer } from "node:buffer";

/** A signer bound to one private key. */
export interface Ed25519Signer {
  /** The 32-byte public key. */
  readonly publicKey: Uint8Array;
  /** A 64-byte signature over `data`. */
  sign(data: Uint8Array): Uint8Array;
}

// DER prefixes of the PKCS#8 private key and SPKI public key of RFC 8410;
// each is followed by the 32 raw key bytes.
// The Ed25519 AlgorithmIdentifier: SEQUENCE { OID 1.3.101.112 }.
const ED25519_ALGORITHM = [0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70];
const PKCS8_PREFIX = new Uint8Array(
  // SEQUENCE(46) { INTEGER 0, algorithm, OCTET STRING(34) { OCTET STRING(32) } }
  [0x30, 0x2e, 0x02, 0x01, 0x00, ...ED25519_ALGORITHM, 0x04, 0x22, 0x04, 0x20],
);
const SPKI_PREFIX = new Uint8Array(
  // SEQUENCE(42) { algorithm, BIT STRING(33) with 0 unused bits }
  [0x30, 0x2a, ...ED25519_ALGORITHM, 0x03, 0x21, 0x00],
);

// node:crypto's types want a Buffer for DER keys; this one is a view over a
// fresh array, never handed out.
function withPrefix(prefix: Uint8Array, key: Uint8Array): Buffer {
  const der = new Uint8Array(prefix.length + key.length);
  der.set(prefix);
  der.set(key, prefix.length);
  return Buffer.from(der.buffer, der.byteOffset, der.length);
}

function nodeSigner(seed: Uint8Array): Ed25519Signer {
  const privateKey: KeyObject = createPrivateKey({
    key: withPrefix(PKCS8_PREFIX, seed),
    format: "der",
    type: "pkcs8",
  });
  const spki = createPublicKey(privateKey).export({ type: "spki", format: "der" });
  const publicKey = new Uint8Array(spki.subarray(spki.length - 32));
  return {
    publicKey,
    // Copy out of the Buffer so callers get a plain Uint8Array of their own.
    sign: (data) => new Uint8Array(nodeSign(null, data, privateKey)),
  };
}

function nodeVerifyRaw(publicKey: Uint8Array, data: Uint8Array, signature: Uint8Array): boolean {
  const key = createPublicKey({
    key: withPrefix(SPKI_PREFIX, publicKey),
    format: "der",
    type: "spki",
  });
  return nodeVerify(null, data, key, signature);
}

function nobleSigner(seed: Uint8Array): Ed25519Signer {
  const secret = seed.slice();
  return {
    publicKey: ed25519.getPublicKey(secret),
    sign: (data) => ed25519.sign(data, secret),
  };
}

function nobleVerifyRaw(publicKey: Uint8Array, data: Uint8Array, signature: Uint8Array): boolean {
  // zip215: false = RFC 8032 strict rules, the same ones OpenSSL applies, so
  // both back ends accept exactly the same signatures.
  return ed25519.verify(signature, data, publicKey, { zip215: false });
}

// Decided once, on first use: whether this runtime's node:crypto has Ed25519.
let useNode: boolean | undefined;

function nodeWorks(): boolean {
  if (useNode === undefined) {
    try {
      const probe = nodeSigner(new Uint8Array(32));
      useNode = nodeVerifyRaw(probe.publicKey, probe.publicKey, probe.sign(probe.publicKey));
    } catch {
      useNode = false;
    }
  }
  return useNode;
}

/** Makes a signer from a 32-byte seed (the caller checks the length). */
export function ed25519Signer(seed: Uint8Array): Ed25519Signer {
  return nodeWorks() ? nodeSigner(seed) : nobleSigner(seed);
}

/** Strict RFC 8032 verification; false (never a throw) for any malformed input. */
export function ed25519Verify(
  publicKey: Uint8Array,
  data: Uint8Array,
  signature: Uint8Array,
): boolean {
  if (publicKey.length !== 32 || signature.length !== 64) return false;
  try {
    return nodeWorks()
      ? nodeVerifyRaw(publicKey, data, signature)
      : nobleVerifyRaw(publicKey, data, signature);
  } catch {
    return false;
  }
}

/** For tests: run `fn` with the noble back end forced, then restore. */
export function withNobleBackend<T>(fn: () => T): T {
  const saved = nodeWorks();
  useNode = false;
  try {
    return fn();
  } finally {
    useNode = saved;
  }
}
