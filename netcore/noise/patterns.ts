/**
 * Noise handshake patterns as data (spec sections 7 and 9, revision 34):
 * every one-way, fundamental interactive and deferred pattern, written in the
 * spec's own notation, plus the `pskN` modifiers.
 *
 * @module
 */

/**
 * A token of a message pattern (spec 7.1) or of a pre-message pattern.
 *
 * @example
 * ```ts
 * import type { NoiseToken } from "./patterns.ts";
 * const xxSecond: NoiseToken[] = ["e", "ee", "s", "es"];
 * ```
 */
export type NoiseToken = "e" | "s" | "ee" | "es" | "se" | "ss" | "psk";

/**
 * One message of a pattern: who sends it and its tokens, in order.
 *
 * @example
 * ```ts
 * import { parseHandshakePattern } from "./patterns.ts";
 * const first = parseHandshakePattern("IK").messages[0];
 * console.log(first.fromInitiator, first.tokens); // true ["e", "es", "s", "ss"]
 * ```
 */
export interface NoiseMessagePattern {
  /** `true` for "->" (initiator to responder), `false` for "<-". */
  readonly fromInitiator: boolean;
  /** The tokens, processed left to right. */
  readonly tokens: readonly NoiseToken[];
}

/**
 * A parsed handshake pattern with its modifiers applied.
 *
 * @example
 * ```ts
 * import { parseHandshakePattern } from "./patterns.ts";
 * const p = parseHandshakePattern("XXpsk3");
 * console.log(p.messages.map((m) => m.tokens.join(", ")));
 * // ["e", "e, ee, s, es", "s, se, psk"]
 * ```
 */
export interface HandshakePattern {
  /** The full name, e.g. "XXpsk3". */
  readonly name: string;
  /** The fundamental or deferred pattern's name, e.g. "XX". */
  readonly baseName: string;
  /** The modifiers in order, e.g. ["psk0", "psk2"]. */
  readonly modifiers: readonly string[];
  /** Tokens of the initiator's pre-message ("-> s" before "..."), possibly empty. */
  readonly initiatorPreMessage: readonly NoiseToken[];
  /** Tokens of the responder's pre-message ("<- s" before "..."), possibly empty. */
  readonly responderPreMessage: readonly NoiseToken[];
  /** The handshake messages. */
  readonly messages: readonly NoiseMessagePattern[];
  /** One-way patterns (N, K, X): only the initiator ever sends. */
  readonly oneWay: boolean;
  /** Whether any psk modifier is present (then "e" also calls MixKey). */
  readonly hasPsk: boolean;
  /** How many "psk" tokens the handshake processes. */
  readonly pskCount: number;
}

/**
 * The patterns of spec sections 7.4 (one-way), 7.5 (interactive) and 7.6
 * (deferred), verbatim: pre-messages, then "...", then messages; ";" stands
 * for a line break.
 */
const PATTERN_TEXT: Readonly<Record<string, string>> = {
  // 7.4 one-way
  N: "<- s; ...; -> e, es",
  K: "-> s; <- s; ...; -> e, es, ss",
  X: "<- s; ...; -> e, es, s, ss",
  // 7.5 interactive, fundamental
  NN: "-> e; <- e, ee",
  NK: "<- s; ...; -> e, es; <- e, ee",
  NX: "-> e; <- e, ee, s, es",
  XN: "-> e; <- e, ee; -> s, se",
  XK: "<- s; ...; -> e, es; <- e, ee; -> s, se",
  XX: "-> e; <- e, ee, s, es; -> s, se",
  KN: "-> s; ...; -> e; <- e, ee, se",
  KK: "-> s; <- s; ...; -> e, es, ss; <- e, ee, se",
  KX: "-> s; ...; -> e; <- e, ee, se, s, es",
  IN: "-> e, s; <- e, ee, se",
  IK: "<- s; ...; -> e, es, s, ss; <- e, ee, se",
  IX: "-> e, s; <- e, ee, se, s, es",
  // 7.6 interactive, deferred
  NK1: "<- s; ...; -> e; <- e, ee, es",
  NX1: "-> e; <- e, ee, s; -> es",
  X1N: "-> e; <- e, ee; -> s; <- se",
  X1K: "<- s; ...; -> e, es; <- e, ee; -> s; <- se",
  XK1: "<- s; ...; -> e; <- e, ee, es; -> s, se",
  X1K1: "<- s; ...; -> e; <- e, ee, es; -> s; <- se",
  X1X: "-> e; <- e, ee, s, es; -> s; <- se",
  XX1: "-> e; <- e, ee, s; -> es, s, se",
  X1X1: "-> e; <- e, ee, s; -> es, s; <- se",
  K1N: "-> s; ...; -> e; <- e, ee; -> se",
  K1K: "-> s; <- s; ...; -> e, es; <- e, ee; -> se",
  KK1: "-> s; <- s; ...; -> e; <- e, ee, se, es",
  K1K1: "-> s; <- s; ...; -> e; <- e, ee, es; -> se",
  K1X: "-> s; ...; -> e; <- e, ee, s, es; -> se",
  KX1: "-> s; ...; -> e; <- e, ee, se, s; -> es",
  K1X1: "-> s; ...; -> e; <- e, ee, s; -> se, es",
  I1N: "-> e, s; <- e, ee; -> se",
  I1K: "<- s; ...; -> e, es, s; <- e, ee; -> se",
  IK1: "<- s; ...; -> e, s; <- e, ee, se, es",
  I1K1: "<- s; ...; -> e, s; <- e, ee, es; -> se",
  I1X: "-> e, s; <- e, ee, s, es; -> se",
  IX1: "-> e, s; <- e, ee, se, s; -> es",
  I1X1: "-> e, s; <- e, ee, s; -> se, es",
};

const ONE_WAY = new Set(["N", "K", "X"]);
const TOKENS = new Set<string>(["e", "s", "ee", "es", "se", "ss", "psk"]);

/**
 * The names of every base pattern this module knows, in spec order: 3
 * one-way, 12 fundamental interactive, 23 deferred.
 *
 * @example
 * ```ts
 * import { HANDSHAKE_PATTERN_NAMES } from "./patterns.ts";
 * console.log(HANDSHAKE_PATTERN_NAMES.length); // 38
 * ```
 */
export const HANDSHAKE_PATTERN_NAMES: readonly string[] = Object.keys(PATTERN_TEXT);

function parseLine(line: string): NoiseMessagePattern {
  const m = /^(->|<-)\s*(.*)$/.exec(line.trim());
  if (!m) throw new Error(`bad pattern line "${line}"`);
  const tokens = m[2].split(",").map((t) => t.trim()).filter((t) => t.length > 0);
  for (const t of tokens) if (!TOKENS.has(t)) throw new Error(`bad token "${t}"`);
  return { fromInitiator: m[1] === "->", tokens: tokens as NoiseToken[] };
}

/**
 * Parses a pattern name with modifiers ("XX", "IKpsk2", "NNpsk0+psk2") into
 * its pre-messages and messages, with each `pskN` applied as spec 9.2 says:
 * `psk0` puts a "psk" token at the start of the first message, `pskN` (N >= 1)
 * at the end of the N-th.
 *
 * @throws {TypeError} for an unknown pattern, an unknown or out-of-range
 * modifier, or a repeated modifier (a caller's configuration bug)
 *
 * @example
 * ```ts
 * import { parseHandshakePattern } from "./patterns.ts";
 * const p = parseHandshakePattern("NNpsk0+psk2");
 * console.log(p.messages[0].tokens, p.messages[1].tokens); // ["psk", "e"] ["e", "ee", "psk"]
 * ```
 */
export function parseHandshakePattern(name: string): HandshakePattern {
  // Modifiers start at the first lower-case letter: "X1K1psk2" -> "X1K1", "psk2".
  const m = /^([A-Z0-9]+)([a-z].*)?$/.exec(name);
  if (!m || !Object.hasOwn(PATTERN_TEXT, m[1])) {
    throw new TypeError(`unknown Noise handshake pattern "${name}"`);
  }
  const baseName = m[1];
  const text = PATTERN_TEXT[baseName];
  const modifiers = m[2] ? m[2].split("+") : [];

  const lines = text.split(";").map((l) => l.trim());
  const dots = lines.indexOf("...");
  const pre = dots < 0 ? [] : lines.slice(0, dots).map(parseLine);
  const messages = (dots < 0 ? lines : lines.slice(dots + 1)).map(parseLine)
    .map((msg) => ({ fromInitiator: msg.fromInitiator, tokens: [...msg.tokens] }));

  const seen = new Set<string>();
  for (const mod of modifiers) {
    const psk = /^psk(\d+)$/.exec(mod);
    if (!psk || seen.has(mod)) {
      throw new TypeError(`unsupported or repeated modifier "${mod}" in "${name}"`);
    }
    seen.add(mod);
    const n = Number(psk[1]);
    if (n > messages.length) {
      throw new TypeError(`"${mod}" is past the last of ${messages.length} messages in "${name}"`);
    }
    if (n === 0) messages[0].tokens.unshift("psk");
    else messages[n - 1].tokens.push("psk");
  }

  return {
    name,
    baseName,
    modifiers,
    initiatorPreMessage: pre.find((p) => p.fromInitiator)?.tokens ?? [],
    responderPreMessage: pre.find((p) => !p.fromInitiator)?.tokens ?? [],
    messages,
    oneWay: ONE_WAY.has(baseName),
    hasPsk: seen.size > 0,
    pskCount: seen.size,
  };
}
