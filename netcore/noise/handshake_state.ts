/**
 * The Noise `HandshakeState` object (spec section 5.3): runs any handshake
 * pattern of revision 34 (one-way, fundamental, deferred, with `pskN`
 * modifiers) as data, then splits into two transport {@linkcode CipherState}s.
 *
 * @module
 */

import { NetworkError } from "../network_error.ts";
import { type CipherState, MAX_NOISE_MESSAGE_LEN, NOISE_TAG_LEN } from "./cipher_state.ts";
import { type CryptoBackend, getCryptoBackend, type KeyPair, type NoiseDh } from "./crypto.ts";
import type { HandshakePattern, NoiseToken } from "./patterns.ts";
import { parseProtocolName } from "./protocol_name.ts";
import { SymmetricState } from "./symmetric_state.ts";

const DH_LEN = 32;
const PSK_LEN = 32;

/**
 * Options for {@linkcode HandshakeState}.
 *
 * @example A validator-style IK initiator
 * ```ts
 * import type { HandshakeOptions } from "./handshake_state.ts";
 * import { getCryptoBackend } from "./crypto.ts";
 * const { dh } = getCryptoBackend();
 * const options: HandshakeOptions = {
 *   protocolName: "Noise_IK_25519_ChaChaPoly_SHA256",
 *   initiator: true,
 *   s: dh.generateKeyPair(),
 *   rs: dh.generateKeyPair().publicKey,
 * };
 * ```
 */
export interface HandshakeOptions {
  /** The full protocol name, e.g. "Noise_IK_25519_ChaChaPoly_SHA256" or "Noise_XXpsk3_25519_AESGCM_BLAKE2s". */
  protocolName: string;
  /** Whether we send the first message. */
  initiator: boolean;
  /** Bytes both sides must agree on, mixed into h first. Default: empty. */
  prologue?: Uint8Array;
  /** Our static key pair; required when the pattern uses it. */
  s?: KeyPair;
  /** A fixed ephemeral key pair, for test vectors only. Default: a fresh one. */
  e?: KeyPair;
  /** The peer's static public key, when known in advance (pre-message "s"). */
  rs?: Uint8Array;
  /** The peer's ephemeral public key, for patterns with a pre-message "e". */
  re?: Uint8Array;
  /** 32-byte pre-shared keys, in the order the psk tokens appear. Default: none. */
  psks?: Uint8Array[];
  /** The crypto backend. Default: `getCryptoBackend()`. */
  backend?: CryptoBackend;
  /**
   * Called as soon as the remote static key is decrypted inside readMessage,
   * BEFORE any further token (no more DH work). Throwing aborts the handshake;
   * the error propagates unchanged. The validator profile uses this to refuse
   * unknown keys early. Not called for a static key known in advance (`rs`).
   */
  onRemoteStatic?: (remoteStaticKey: Uint8Array) => void;
}

/**
 * The handshake's life: `in_progress` (message `#index` is next), then
 * `complete` (split() is available) or `failed` (terminal: an error was
 * thrown part-way and the state is no longer consistent with the peer's).
 */
type Phase = "in_progress" | "complete" | "failed";

/**
 * A Noise HandshakeState. Call `writeMessage` when `isMyTurn`, otherwise
 * `readMessage` with the peer's message, until `isComplete`; then `split()`.
 *
 * Errors:
 * - caller configuration bugs (bad protocol name, missing `s`/`rs`, wrong
 *   number or size of psks, bad key sizes): `TypeError` from the constructor;
 * - calls out of order (writing when it is the peer's turn, reading when it
 *   is ours, either after completion or failure, `split()` before
 *   completion): `NetworkError("PROTOCOL_VIOLATION")`;
 * - a message or payload over 65535 bytes: `NetworkError("FRAME_TOO_LARGE")`
 *   (a too-large payload given to `writeMessage` leaves the state usable);
 * - a truncated, malformed or tampered message, or a bad public key:
 *   `NetworkError("HANDSHAKE_FAILED")`;
 * - whatever `onRemoteStatic` throws, unchanged.
 *
 * After any error thrown from inside `readMessage`/`writeMessage` processing
 * the state is `failed` and every further call throws `PROTOCOL_VIOLATION`.
 *
 * @example An XX handshake in one process
 * ```ts
 * import { HandshakeState } from "./handshake_state.ts";
 * import { getCryptoBackend } from "./crypto.ts";
 * const { dh } = getCryptoBackend();
 * const protocolName = "Noise_XX_25519_ChaChaPoly_SHA256";
 * const a = new HandshakeState({ protocolName, initiator: true, s: dh.generateKeyPair() });
 * const b = new HandshakeState({ protocolName, initiator: false, s: dh.generateKeyPair() });
 * b.readMessage(a.writeMessage(new Uint8Array(0)));
 * a.readMessage(b.writeMessage(new Uint8Array(0)));
 * b.readMessage(a.writeMessage(new Uint8Array(0)));
 * const [aTx] = a.split(), [bRx] = b.split();
 * const ad = new Uint8Array(0);
 * console.log(bRx.decryptWithAd(ad, aTx.encryptWithAd(ad, Uint8Array.of(42)))); // Uint8Array [42]
 * ```
 */
export class HandshakeState {
  readonly #initiator: boolean;
  readonly #pattern: HandshakePattern;
  readonly #dh: NoiseDh;
  readonly #ss: SymmetricState;
  readonly #s: KeyPair | undefined;
  #e: KeyPair | undefined;
  #rs: Uint8Array | undefined;
  #re: Uint8Array | undefined;
  readonly #psks: Uint8Array[];
  #pskIndex = 0;
  readonly #onRemoteStatic: ((key: Uint8Array) => void) | undefined;
  #phase: Phase = "in_progress";
  #index = 0;
  #split: [CipherState, CipherState] | undefined;

  /**
   * Initialize(): parses the protocol name, mixes in the prologue and the
   * pre-message public keys.
   *
   * @throws {TypeError} for a bad protocol name or missing/ill-sized keys
   */
  constructor(options: HandshakeOptions) {
    const protocol = parseProtocolName(options.protocolName);
    const backend = options.backend ?? getCryptoBackend();
    this.#initiator = options.initiator;
    this.#pattern = protocol.pattern;
    this.#dh = backend.dh;
    this.#s = checkKeyPair(options.s, "s");
    this.#e = checkKeyPair(options.e, "e");
    this.#rs = checkPublicKey(options.rs, "rs");
    this.#re = checkPublicKey(options.re, "re");
    this.#psks = (options.psks ?? []).map((psk, i) => {
      if (psk.length !== PSK_LEN) {
        throw new TypeError(`psks[${i}] is ${psk.length} bytes; a Noise psk is ${PSK_LEN}`);
      }
      return new Uint8Array(psk);
    });
    this.#onRemoteStatic = options.onRemoteStatic;
    this.#checkRequiredKeys();

    this.#ss = new SymmetricState(
      protocol.name,
      backend.cipher(protocol.cipher),
      backend.hash(protocol.hash),
    );
    this.#ss.mixHash(options.prologue ?? new Uint8Array(0));
    // Spec 7.1: the initiator's pre-message public keys are hashed first.
    this.#mixPreMessage(this.#pattern.initiatorPreMessage, this.#initiator);
    this.#mixPreMessage(this.#pattern.responderPreMessage, !this.#initiator);
  }

  /** The parsed handshake pattern in use. */
  get pattern(): HandshakePattern {
    return this.#pattern;
  }

  /** Whether the last handshake message has been written or read. */
  get isComplete(): boolean {
    return this.#phase === "complete";
  }

  /**
   * Whether the next handshake message is ours to write. `false` once the
   * handshake is complete or failed.
   */
  get isMyTurn(): boolean {
    return this.#phase === "in_progress" &&
      this.#pattern.messages[this.#index].fromInitiator === this.#initiator;
  }

  /** h: the handshake hash so far; after completion, the channel binding value. */
  get handshakeHash(): Uint8Array {
    return this.#ss.handshakeHash;
  }

  /** The peer's static public key, once known (a copy). */
  get remoteStaticKey(): Uint8Array | undefined {
    return this.#rs?.slice();
  }

  /** The peer's ephemeral public key, once known (a copy). */
  get remoteEphemeralKey(): Uint8Array | undefined {
    return this.#re?.slice();
  }

  /**
   * WriteMessage(payload): processes our next message pattern and returns
   * the whole handshake message (tokens then the encrypted payload).
   *
   * @throws {NetworkError} `PROTOCOL_VIOLATION` when it is not our turn,
   * `FRAME_TOO_LARGE` when the message would exceed 65535 bytes
   */
  writeMessage(payload: Uint8Array): Uint8Array {
    const tokens = this.#begin("writeMessage", true);
    const size = this.#messageSize(tokens, payload.length);
    if (size > MAX_NOISE_MESSAGE_LEN) {
      throw new NetworkError(
        "FRAME_TOO_LARGE",
        `Noise handshake message of ${size} bytes exceeds ${MAX_NOISE_MESSAGE_LEN}`,
      );
    }
    try {
      const message = new Uint8Array(size);
      let offset = 0;
      const put = (bytes: Uint8Array) => {
        message.set(bytes, offset);
        offset += bytes.length;
      };
      for (const token of tokens) {
        switch (token) {
          case "e": {
            this.#e ??= this.#dh.generateKeyPair();
            put(this.#e.publicKey);
            this.#mixEphemeral(this.#e.publicKey);
            break;
          }
          case "s":
            put(this.#ss.encryptAndHash(required(this.#s, "s").publicKey));
            break;
          case "psk":
            this.#mixPsk();
            break;
          default:
            this.#mixDh(token);
        }
      }
      put(this.#ss.encryptAndHash(payload));
      this.#end();
      return message;
    } catch (err) {
      this.#phase = "failed";
      throw NetworkError.wrap(err, "HANDSHAKE_FAILED", "Noise writeMessage");
    }
  }

  /**
   * ReadMessage(message): processes the peer's next message pattern and
   * returns the decrypted payload.
   *
   * @throws {NetworkError} `PROTOCOL_VIOLATION` when it is our turn or the
   * handshake is over, `FRAME_TOO_LARGE` above 65535 bytes,
   * `HANDSHAKE_FAILED` for a truncated or tampered message or bad key;
   * whatever `onRemoteStatic` throws, unchanged
   */
  readMessage(message: Uint8Array): Uint8Array {
    const tokens = this.#begin("readMessage", false);
    if (message.length > MAX_NOISE_MESSAGE_LEN) {
      this.#phase = "failed";
      throw new NetworkError(
        "FRAME_TOO_LARGE",
        `Noise handshake message of ${message.length} bytes exceeds ${MAX_NOISE_MESSAGE_LEN}`,
      );
    }
    let offset = 0;
    const take = (length: number, what: string): Uint8Array => {
      if (message.length - offset < length) {
        throw new NetworkError(
          "HANDSHAKE_FAILED",
          `truncated Noise message: ${what} needs ${length} bytes, ${message.length - offset} left`,
        );
      }
      const bytes = message.slice(offset, offset + length);
      offset += length;
      return bytes;
    };
    let callbackFailed = false;
    try {
      for (const token of tokens) {
        switch (token) {
          case "e": {
            const re = take(DH_LEN, "e");
            this.#re = re;
            this.#mixEphemeral(re);
            break;
          }
          case "s": {
            const length = DH_LEN + (this.#ss.hasKey() ? NOISE_TAG_LEN : 0);
            const rs = this.#ss.decryptAndHash(take(length, "s"));
            this.#rs = rs;
            if (this.#onRemoteStatic) {
              callbackFailed = true;
              this.#onRemoteStatic(rs.slice());
              callbackFailed = false;
            }
            break;
          }
          case "psk":
            this.#mixPsk();
            break;
          default:
            this.#mixDh(token);
        }
      }
      const payload = this.#ss.decryptAndHash(message.subarray(offset));
      this.#end();
      return payload;
    } catch (err) {
      this.#phase = "failed";
      if (callbackFailed) throw err;
      throw NetworkError.wrap(err, "HANDSHAKE_FAILED", "Noise readMessage");
    }
  }

  /**
   * Split(): after completion, the transport CipherStates
   * `[initiator->responder, responder->initiator]` (the same pair on every
   * call). One-way patterns use only the first.
   *
   * @throws {NetworkError} `PROTOCOL_VIOLATION` before completion
   */
  split(): [CipherState, CipherState] {
    if (this.#split === undefined) {
      throw new NetworkError("PROTOCOL_VIOLATION", "Noise split() before the handshake completed");
    }
    return this.#split;
  }

  /** Checks the phase and the turn; returns the tokens of the next message. */
  #begin(op: string, writing: boolean): readonly NoiseToken[] {
    if (this.#phase !== "in_progress") {
      throw new NetworkError(
        "PROTOCOL_VIOLATION",
        `Noise ${op}() after the handshake ${this.#phase === "complete" ? "completed" : "failed"}`,
      );
    }
    if (this.isMyTurn !== writing) {
      throw new NetworkError(
        "PROTOCOL_VIOLATION",
        `Noise ${op}() out of turn: message ${this.#index + 1} is the ${
          writing ? "peer's" : "ours"
        } to write`,
      );
    }
    return this.#pattern.messages[this.#index].tokens;
  }

  #end(): void {
    this.#index++;
    if (this.#index === this.#pattern.messages.length) {
      this.#split = this.#ss.split();
      this.#phase = "complete";
    }
  }

  /** The size of our next message, tracking when the key appears (spec 7.3). */
  #messageSize(tokens: readonly NoiseToken[], payloadLength: number): number {
    let hasKey = this.#ss.hasKey();
    let size = 0;
    for (const token of tokens) {
      if (token === "e") {
        size += DH_LEN;
        if (this.#pattern.hasPsk) hasKey = true;
      } else if (token === "s") {
        size += DH_LEN + (hasKey ? NOISE_TAG_LEN : 0);
      } else {
        hasKey = true;
      }
    }
    return size + payloadLength + (hasKey ? NOISE_TAG_LEN : 0);
  }

  #mixEphemeral(publicKey: Uint8Array): void {
    this.#ss.mixHash(publicKey);
    // Spec 9.2: in psk handshakes every "e" also does MixKey(e.public_key).
    if (this.#pattern.hasPsk) this.#ss.mixKey(publicKey);
  }

  #mixPsk(): void {
    const psk = this.#psks[this.#pskIndex++];
    this.#ss.mixKeyAndHash(required(psk, "psk"));
  }

  /** "ee", "es", "se", "ss": MixKey(DH(...)); the first letter is the initiator's key. */
  #mixDh(token: NoiseToken): void {
    const initiatorKey = token[0], responderKey = token[1];
    const [mine, theirs] = this.#initiator
      ? [initiatorKey, responderKey]
      : [responderKey, initiatorKey];
    const local = required(mine === "e" ? this.#e : this.#s, mine);
    const remote = required(theirs === "e" ? this.#re : this.#rs, `r${theirs}`);
    this.#ss.mixKey(this.#dh.dh(local.privateKey, remote));
  }

  #mixPreMessage(tokens: readonly NoiseToken[], local: boolean): void {
    for (const token of tokens) {
      if (token === "e") {
        this.#mixEphemeral(local ? required(this.#e, "e").publicKey : required(this.#re, "re"));
      } else {
        this.#ss.mixHash(local ? required(this.#s, "s").publicKey : required(this.#rs, "rs"));
      }
    }
  }

  /** Refuses, up front, a configuration that would fail mid-handshake. */
  #checkRequiredKeys(): void {
    const p = this.#pattern;
    const me = this.#initiator ? "i" : "r";
    const needs = new Set<string>();
    const own = this.#initiator ? p.initiatorPreMessage : p.responderPreMessage;
    const peer = this.#initiator ? p.responderPreMessage : p.initiatorPreMessage;
    for (const t of own) needs.add(t);
    for (const t of peer) needs.add(`r${t}`);
    for (const m of p.messages) {
      const mine = m.fromInitiator === this.#initiator;
      for (const t of m.tokens) {
        if (t === "s" && mine) needs.add("s");
        if (t.length === 2) {
          const myLetter = me === "i" ? t[0] : t[1];
          if (myLetter === "s") needs.add("s");
        }
      }
    }
    if (needs.has("s") && this.#s === undefined) {
      throw new TypeError(`${p.name} needs our static key pair (s)`);
    }
    if (needs.has("rs") && this.#rs === undefined) {
      throw new TypeError(`${p.name} needs the peer's static public key in advance (rs)`);
    }
    if (needs.has("e") && this.#e === undefined) {
      throw new TypeError(`${p.name} needs our ephemeral key pair in advance (e)`);
    }
    if (needs.has("re") && this.#re === undefined) {
      throw new TypeError(`${p.name} needs the peer's ephemeral public key in advance (re)`);
    }
    if (this.#psks.length !== p.pskCount) {
      throw new TypeError(`${p.name} needs ${p.pskCount} psks, got ${this.#psks.length}`);
    }
  }
}

function required<T>(value: T | undefined, name: string): T {
  // Unreachable after #checkRequiredKeys unless the pattern table is wrong.
  if (value === undefined) throw new Error(`Noise key ${name} missing mid-handshake`);
  return value;
}

function checkKeyPair(kp: KeyPair | undefined, name: string): KeyPair | undefined {
  if (kp === undefined) return undefined;
  if (kp.publicKey.length !== DH_LEN || kp.privateKey.length !== DH_LEN) {
    throw new TypeError(`${name} must be a pair of ${DH_LEN}-byte X25519 keys`);
  }
  return { publicKey: new Uint8Array(kp.publicKey), privateKey: new Uint8Array(kp.privateKey) };
}

function checkPublicKey(key: Uint8Array | undefined, name: string): Uint8Array | undefined {
  if (key === undefined) return undefined;
  if (key.length !== DH_LEN) throw new TypeError(`${name} must be a ${DH_LEN}-byte X25519 key`);
  return new Uint8Array(key);
}
