/**
 * Noise protocol names (spec section 8):
 * `Noise_<pattern>_<DH>_<cipher>_<hash>`, e.g.
 * "Noise_XXpsk3_25519_ChaChaPoly_SHA256".
 *
 * @module
 */

import { type HandshakePattern, parseHandshakePattern } from "./patterns.ts";

/**
 * A parsed protocol name.
 *
 * @example
 * ```ts
 * import { parseProtocolName } from "./protocol_name.ts";
 * const p = parseProtocolName("Noise_IK_25519_AESGCM_BLAKE2s");
 * console.log(p.pattern.baseName, p.dh, p.cipher, p.hash); // IK 25519 AESGCM BLAKE2s
 * ```
 */
export interface NoiseProtocol {
  /** The full name, as it is hashed into h. */
  readonly name: string;
  /** The handshake pattern with modifiers applied. */
  readonly pattern: HandshakePattern;
  /** The DH functions: only Curve25519 is supported. */
  readonly dh: "25519";
  /** The cipher functions. */
  readonly cipher: "ChaChaPoly" | "AESGCM";
  /** The hash functions. */
  readonly hash: "SHA256" | "BLAKE2s";
}

/**
 * Parses a protocol name.
 *
 * @throws {TypeError} for a malformed name or an unsupported pattern,
 * modifier, DH, cipher or hash (these come from the caller's configuration)
 *
 * @example
 * ```ts
 * import { parseProtocolName } from "./protocol_name.ts";
 * console.log(parseProtocolName("Noise_NNpsk0+psk2_25519_ChaChaPoly_SHA256").pattern.pskCount); // 2
 * ```
 */
export function parseProtocolName(name: string): NoiseProtocol {
  // Names come from configuration, so there are few; every handshake asks.
  let protocol = parsed.get(name);
  if (protocol === undefined) {
    protocol = Object.freeze(parse(name));
    if (parsed.size < MAX_CACHED_NAMES) parsed.set(name, protocol);
  }
  return protocol;
}

const parsed = new Map<string, NoiseProtocol>();
const MAX_CACHED_NAMES = 256;

function parse(name: string): NoiseProtocol {
  const parts = name.split("_");
  if (parts.length !== 5 || parts[0] !== "Noise") {
    throw new TypeError(
      `"${name}" is not a Noise protocol name (Noise_<pattern>_<dh>_<cipher>_<hash>)`,
    );
  }
  const [, patternName, dh, cipher, hash] = parts;
  if (dh !== "25519") throw new TypeError(`unsupported Noise DH "${dh}" in "${name}"`);
  if (cipher !== "ChaChaPoly" && cipher !== "AESGCM") {
    throw new TypeError(`unsupported Noise cipher "${cipher}" in "${name}"`);
  }
  if (hash !== "SHA256" && hash !== "BLAKE2s") {
    throw new TypeError(`unsupported Noise hash "${hash}" in "${name}"`);
  }
  return { name, pattern: parseHandshakePattern(patternName), dh, cipher, hash };
}
