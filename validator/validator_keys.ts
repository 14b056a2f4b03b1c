/**
 * A validator's keys: the Ed25519 identity (its peer id, which signs its
 * peer records) and the X25519 static key of the Noise IK handshake, with
 * the public entry other validators put in their validator set.
 *
 * @module
 */

import { Ed25519Identity } from "../netcore/identity/ed25519_identity.ts";
import type { PeerId } from "../netcore/identity/peer_id.ts";
import { getCryptoBackend, type KeyPair } from "../netcore/noise/crypto.ts";
import { staticKeyHex } from "../netcore/noise/trusted_peers.ts";
import { Multiaddr } from "../netcore/multiaddr.ts";
import { NetworkError } from "../netcore/network_error.ts";
import { configError } from "./_config_error.ts";
import { fromHex } from "./_hex.ts";

/**
 * One entry of a validator set, as it travels in configs and JSON: the
 * peer id (its text form), the Noise static public key (64 hex digits)
 * and the addresses it listens on (multiaddrs, without `/p2p/`; may be
 * empty when discovery is to find them).
 *
 * @example
 * ```ts
 * import type { ValidatorInfo } from "./validator_keys.ts";
 * const entry: ValidatorInfo = {
 *   peerId: "12D3KooWD3eckifWpRn9wQpMG9R9hX3sD158z7EqHWmweQAJU5SA",
 *   noiseKey: "ab".repeat(32),
 *   addrs: ["/ip4/127.0.0.1/tcp/7000"],
 * };
 * console.log(JSON.parse(JSON.stringify(entry)).addrs.length); // 1
 * ```
 */
export interface ValidatorInfo {
  /** The validator's peer id, e.g. `12D3KooW...`. */
  readonly peerId: string;
  /** Its X25519 Noise static public key, lower-case hex (64 digits). */
  readonly noiseKey: string;
  /** Where it listens. */
  readonly addrs: readonly string[];
}

/**
 * What a key file holds (JSON): the public peer id, for humans, and the
 * two private keys in hex: the libp2p `PrivateKey` protobuf of the
 * identity and the X25519 private scalar.
 *
 * @example
 * ```ts
 * import { ValidatorKeys, type ValidatorKeyFile } from "./validator_keys.ts";
 * const file: ValidatorKeyFile = ValidatorKeys.generate().toJSON();
 * console.log(file.type); // "validator-keys"
 * ```
 */
export interface ValidatorKeyFile {
  /** Always `"validator-keys"`. */
  readonly type: "validator-keys";
  /** The peer id of `identity` (checked when read). */
  readonly peerId: string;
  /** The libp2p `PrivateKey` protobuf of the Ed25519 identity, hex. */
  readonly identity: string;
  /** The X25519 private key, hex. */
  readonly noise: string;
}

/**
 * A validator's private keys.
 *
 * @example
 * ```ts
 * import { ValidatorKeys } from "./validator_keys.ts";
 * const keys = ValidatorKeys.generate();
 * const me = keys.info(["/ip4/127.0.0.1/tcp/7000"]);
 * console.log(me.peerId === keys.peerId.toString(), me.noiseKey.length); // true 64
 * const again = ValidatorKeys.fromJSON(JSON.parse(JSON.stringify(keys.toJSON())));
 * console.log(again.peerId.equals(keys.peerId)); // true
 * ```
 */
export class ValidatorKeys {
  /** The Ed25519 identity: the peer id. */
  readonly identity: Ed25519Identity;
  /** The X25519 static key of the Noise handshakes. */
  readonly noise: KeyPair;

  /** Keys from their two parts. */
  constructor(identity: Ed25519Identity, noise: KeyPair) {
    this.identity = identity;
    this.noise = noise;
  }

  /**
   * Fresh random keys.
   *
   * @example
   * ```ts
   * import { ValidatorKeys } from "./validator_keys.ts";
   * console.log(ValidatorKeys.generate().noise.publicKey.length); // 32
   * ```
   */
  static generate(): ValidatorKeys {
    return new ValidatorKeys(Ed25519Identity.generate(), getCryptoBackend().dh.generateKeyPair());
  }

  /**
   * Keys from a key file's JSON.
   *
   * @throws {NetworkError} `BAD_CONFIG` naming the field that is missing,
   *   malformed or inconsistent
   * @example
   * ```ts
   * import { ValidatorKeys } from "./validator_keys.ts";
   * try {
   *   ValidatorKeys.fromJSON({ type: "validator-keys" });
   * } catch (err) {
   *   console.log((err as Error).message.includes("identity")); // true
   * }
   * ```
   */
  static fromJSON(json: unknown): ValidatorKeys {
    if (typeof json !== "object" || json === null || Array.isArray(json)) {
      throw new NetworkError("BAD_CONFIG", "key file: expected a JSON object");
    }
    const file = json as Record<string, unknown>;
    if (file.type !== "validator-keys") {
      throw new NetworkError("BAD_CONFIG", `key file: type must be "validator-keys"`);
    }
    let identity: Ed25519Identity;
    try {
      identity = Ed25519Identity.fromProtobuf(fromHex(file.identity, "identity"));
    } catch (err) {
      throw configError(err, "key file: identity");
    }
    let noise: KeyPair;
    try {
      const scalar = fromHex(file.noise, "noise");
      if (scalar.length !== 32) throw new Error("must be 32 bytes");
      noise = getCryptoBackend().dh.keyPairFromPrivate(scalar);
    } catch (err) {
      throw configError(err, "key file: noise");
    }
    if (file.peerId !== undefined && file.peerId !== identity.peerId.toString()) {
      throw new NetworkError(
        "BAD_CONFIG",
        `key file: peerId ${String(file.peerId)} is not the identity's (${identity.peerId})`,
      );
    }
    return new ValidatorKeys(identity, noise);
  }

  /** The peer id. */
  get peerId(): PeerId {
    return this.identity.peerId;
  }

  /**
   * This validator's public entry in a validator set.
   *
   * @throws {NetworkError} `BAD_ADDRESS` for an address that does not parse
   */
  info(addrs: readonly (string | Multiaddr)[] = []): ValidatorInfo {
    return {
      peerId: this.peerId.toString(),
      noiseKey: staticKeyHex(this.noise.publicKey),
      addrs: addrs.map((a) =>
        (typeof a === "string" ? Multiaddr.parse(a) : a).withoutPeerId().toString()
      ),
    };
  }

  /** The key file's JSON (private keys: keep it secret, mode 0600). */
  toJSON(): ValidatorKeyFile {
    return {
      type: "validator-keys",
      peerId: this.peerId.toString(),
      identity: staticKeyHex(this.identity.marshalPrivateKey()),
      noise: staticKeyHex(this.noise.privateKey),
    };
  }
}
