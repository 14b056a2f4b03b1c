/**
 * Multiaddrs: self-describing network addresses, as text
 * (`/ip4/127.0.0.1/tcp/4001/p2p/12D3Koo...`) and in their binary form
 * (a sequence of `varint(code) value`), per the multiformats multiaddr spec.
 *
 * Only the protocols this stack speaks are known: `ip4`, `ip6`, `dns`,
 * `dns4`, `dns6`, `tcp`, `memory` and `p2p`, in the shapes
 * `/<host>/<ip or name>/tcp/<port>`, `/memory/<n>`, each optionally followed
 * by `/p2p/<peer id>`, or a bare `/p2p/<peer id>`. Anything else is rejected
 * with a `BAD_ADDRESS` {@linkcode NetworkError} whose message says what was
 * wrong. Both decoders are bounded (see {@linkcode MAX_MULTIADDR_TEXT} and
 * {@linkcode MAX_MULTIADDR_BYTES}) and throw nothing but `NetworkError`.
 *
 * @module
 */

import { decodeBase58, encodeBase58 } from "./base58.ts";
import { NetworkError } from "./network_error.ts";
import { decodeVarint, encodeVarint } from "./varint.ts";

/**
 * The protocols a {@linkcode Multiaddr} may contain.
 *
 * @example
 * ```ts
 * import { Multiaddr, type MultiaddrProtocol } from "./multiaddr.ts";
 * const protocols: MultiaddrProtocol[] = Multiaddr.parse("/dns4/example.com/tcp/443")
 *   .components.map((c) => c.protocol);
 * console.log(protocols); // [ "dns4", "tcp" ]
 * ```
 */
export type MultiaddrProtocol = "ip4" | "ip6" | "dns" | "dns4" | "dns6" | "tcp" | "memory" | "p2p";

/**
 * One `/protocol/value` step of a multiaddr. `value` is in canonical text
 * form (compressed IPv6, decimal port, base58btc peer id).
 *
 * @example
 * ```ts
 * import { Multiaddr, type MultiaddrComponent } from "./multiaddr.ts";
 * const [host]: readonly MultiaddrComponent[] = Multiaddr.parse("/ip6/0:0::1/tcp/1").components;
 * console.log(host); // { protocol: "ip6", value: "::1" }
 * ```
 */
export interface MultiaddrComponent {
  /** The protocol name, as in the multiaddr table. */
  readonly protocol: MultiaddrProtocol;
  /** The value in canonical text form. */
  readonly value: string;
}

/**
 * Where to open a TCP socket, from {@linkcode Multiaddr.tcpEndpoint}.
 *
 * @example
 * ```ts
 * import { Multiaddr, type TcpEndpoint } from "./multiaddr.ts";
 * const endpoint: TcpEndpoint | undefined = Multiaddr.parse("/ip4/127.0.0.1/tcp/4001")
 *   .tcpEndpoint();
 * console.log(endpoint); // { hostname: "127.0.0.1", port: 4001, family: "ip4" }
 * ```
 */
export interface TcpEndpoint {
  /** An IP address (IPv6 without brackets) or a DNS name. */
  hostname: string;
  /** The TCP port, 0..65535. */
  port: number;
  /** The host protocol the address used. */
  family: "ip4" | "ip6" | "dns" | "dns4" | "dns6";
}

/** The longest multiaddr text {@linkcode Multiaddr.parse} accepts, in UTF-16 units. */
export const MAX_MULTIADDR_TEXT = 1024;
/** The longest binary multiaddr {@linkcode Multiaddr.fromBytes} accepts, in bytes. */
export const MAX_MULTIADDR_BYTES = 512;
/**
 * The longest digest of an identity-multihash peer id. The libp2p peer id spec
 * inlines public keys of at most 42 bytes with the identity hash.
 */
const MAX_IDENTITY_DIGEST = 42;
const MAX_DNS_NAME = 253;
const MAX_DNS_LABEL = 63;
const MAX_PEER_ID_TEXT = 128;

/** Codes from the multiformats multiaddr table. */
const CODE_OF: Readonly<Record<MultiaddrProtocol, number>> = {
  ip4: 4,
  tcp: 6,
  ip6: 41,
  dns: 53,
  dns4: 54,
  dns6: 55,
  p2p: 421,
  memory: 777,
};
const PROTOCOL_OF: ReadonlyMap<number, MultiaddrProtocol> = new Map(
  Object.entries(CODE_OF).map(([name, code]) => [code, name as MultiaddrProtocol]),
);
const HOSTS: ReadonlySet<MultiaddrProtocol> = new Set(["ip4", "ip6", "dns", "dns4", "dns6"]);

/** Multihash codes a peer id may use. */
const MULTIHASH_IDENTITY = 0x00;
const MULTIHASH_SHA2_256 = 0x12;

function bad(message: string): NetworkError {
  return new NetworkError("BAD_ADDRESS", message);
}

/** Quotes untrusted text for an error message, cut short so logs stay small. */
function quote(text: string): string {
  return JSON.stringify(text.length > 80 ? `${text.slice(0, 80)}...` : text);
}

function isProtocol(name: string): name is MultiaddrProtocol {
  return Object.hasOwn(CODE_OF, name);
}

// ---------------------------------------------------------------- values

/** Parses a canonical decimal (no sign, no leading zeros) up to `max`. */
function parseDecimal(text: string, max: number, what: string): number {
  if (!/^(0|[1-9][0-9]*)$/.test(text) || text.length > 16) {
    throw bad(`${what} ${quote(text)} is not a decimal number`);
  }
  const value = Number(text);
  if (value > max) throw bad(`${what} ${text} is out of range 0..${max}`);
  return value;
}

function parseIp4(text: string): Uint8Array {
  const parts = text.split(".");
  if (parts.length !== 4) throw bad(`bad IPv4 address ${quote(text)}: expected 4 octets`);
  const out = new Uint8Array(4);
  parts.forEach((part, i) => {
    if (!/^(0|[1-9][0-9]{0,2})$/.test(part)) {
      throw bad(`bad IPv4 octet ${quote(part)} in ${quote(text)}`);
    }
    const octet = Number(part);
    if (octet > 255) throw bad(`bad IPv4 octet ${part} in ${quote(text)}: above 255`);
    out[i] = octet;
  });
  return out;
}

function formatIp4(bytes: Uint8Array): string {
  return `${bytes[0]}.${bytes[1]}.${bytes[2]}.${bytes[3]}`;
}

/** Parses the IPv6 text forms of RFC 4291 section 2.2 (no zone ids). */
function parseIp6(text: string): Uint8Array {
  const fail = (why: string) => bad(`bad IPv6 address ${quote(text)}: ${why}`);
  const halves = text.split("::");
  if (halves.length > 2) throw fail("more than one '::'");
  const groupsOf = (half: string, last: boolean): number[] => {
    if (half === "") return [];
    const groups: number[] = [];
    const parts = half.split(":");
    parts.forEach((part, i) => {
      if (last && i === parts.length - 1 && part.includes(".")) {
        const v4 = parseIp4(part);
        groups.push((v4[0] << 8) | v4[1], (v4[2] << 8) | v4[3]);
      } else if (/^[0-9a-fA-F]{1,4}$/.test(part)) {
        groups.push(parseInt(part, 16));
      } else {
        throw fail(`bad group ${quote(part)}`);
      }
    });
    return groups;
  };
  let groups: number[];
  if (halves.length === 1) {
    groups = groupsOf(text, true);
    if (groups.length !== 8) throw fail(`expected 8 groups, got ${groups.length}`);
  } else {
    const head = groupsOf(halves[0], false);
    const tail = groupsOf(halves[1], true);
    // "::" stands for one or more zero groups.
    if (head.length + tail.length > 7) throw fail("too many groups around '::'");
    groups = [...head, ...Array(8 - head.length - tail.length).fill(0), ...tail];
  }
  const out = new Uint8Array(16);
  groups.forEach((g, i) => {
    out[2 * i] = g >> 8;
    out[2 * i + 1] = g & 0xff;
  });
  return out;
}

/**
 * The RFC 5952 canonical text: lowercase, no leading zeros, the longest run
 * (leftmost on a tie) of two or more zero groups as "::", and IPv4-mapped
 * addresses in dotted form.
 */
function formatIp6(bytes: Uint8Array): string {
  const groups: number[] = [];
  for (let i = 0; i < 16; i += 2) groups.push((bytes[i] << 8) | bytes[i + 1]);
  const mapped = groups.slice(0, 5).every((g) => g === 0) && groups[5] === 0xffff;
  if (mapped) return `::ffff:${formatIp4(bytes.subarray(12))}`;
  let bestStart = -1;
  let bestLength = 1;
  for (let i = 0; i < 8;) {
    if (groups[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && groups[j] === 0) j++;
    if (j - i > bestLength) {
      bestStart = i;
      bestLength = j - i;
    }
    i = j;
  }
  const hex = (gs: number[]) => gs.map((g) => g.toString(16)).join(":");
  if (bestStart < 0) return hex(groups);
  return `${hex(groups.slice(0, bestStart))}::${hex(groups.slice(bestStart + bestLength))}`;
}

/** Host names of letters, digits, '-' and '_' in dot-separated labels (RFC 1123, relaxed for '_'). */
function checkDnsName(name: string): void {
  if (name.length === 0 || name.length > MAX_DNS_NAME) {
    throw bad(`bad DNS name ${quote(name)}: length must be 1..${MAX_DNS_NAME}`);
  }
  for (const label of name.split(".")) {
    if (label.length === 0 || label.length > MAX_DNS_LABEL) {
      throw bad(`bad DNS name ${quote(name)}: empty or over-long label`);
    }
    if (!/^[A-Za-z0-9_]([A-Za-z0-9_-]*[A-Za-z0-9_])?$/.test(label)) {
      throw bad(`bad DNS name ${quote(name)}: label ${quote(label)} has a bad character`);
    }
  }
}

/** Checks that `bytes` is a multihash a peer id may be (identity or sha2-256). */
function checkPeerIdMultihash(bytes: Uint8Array, text: string): void {
  let code: ReturnType<typeof decodeVarint>;
  let length: ReturnType<typeof decodeVarint>;
  try {
    code = decodeVarint(bytes, 0, 0xffff);
    length = code === undefined ? undefined : decodeVarint(bytes, code.length, 0xffff);
  } catch (err) {
    throw bad(`bad peer id ${quote(text)}: ${err instanceof Error ? err.message : err}`);
  }
  if (code === undefined || length === undefined) {
    throw bad(`bad peer id ${quote(text)}: truncated multihash`);
  }
  const digest = bytes.length - code.length - length.length;
  if (digest !== length.value) {
    throw bad(
      `bad peer id ${quote(text)}: multihash says ${length.value} digest bytes, has ${digest}`,
    );
  }
  if (code.value === MULTIHASH_SHA2_256) {
    if (digest !== 32) throw bad(`bad peer id ${quote(text)}: sha2-256 digest must be 32 bytes`);
  } else if (code.value === MULTIHASH_IDENTITY) {
    if (digest === 0 || digest > MAX_IDENTITY_DIGEST) {
      throw bad(`bad peer id ${quote(text)}: identity digest must be 1..${MAX_IDENTITY_DIGEST}`);
    }
  } else {
    throw bad(
      `bad peer id ${quote(text)}: multihash code 0x${code.value.toString(16)} not allowed`,
    );
  }
}

function peerIdBytes(text: string): Uint8Array {
  if (text.length === 0 || text.length > MAX_PEER_ID_TEXT) {
    throw bad(`bad peer id ${quote(text)}: length must be 1..${MAX_PEER_ID_TEXT}`);
  }
  let bytes: Uint8Array;
  try {
    bytes = decodeBase58(text);
  } catch (err) {
    throw bad(`bad peer id ${quote(text)}: ${err instanceof Error ? err.message : err}`);
  }
  checkPeerIdMultihash(bytes, text);
  if (encodeBase58(bytes) !== text) throw bad(`bad peer id ${quote(text)}: not canonical base58`);
  return bytes;
}

/** Parses a text value into its binary value and canonical text. */
function parseValue(protocol: MultiaddrProtocol, text: string): MultiaddrComponent {
  switch (protocol) {
    case "ip4":
      return { protocol, value: formatIp4(parseIp4(text)) };
    case "ip6":
      return { protocol, value: formatIp6(parseIp6(text)) };
    case "dns":
    case "dns4":
    case "dns6":
      checkDnsName(text);
      return { protocol, value: text };
    case "tcp":
      return { protocol, value: String(parseDecimal(text, 0xffff, "TCP port")) };
    case "memory":
      return {
        protocol,
        value: String(parseDecimal(text, Number.MAX_SAFE_INTEGER, "memory port")),
      };
    case "p2p":
      peerIdBytes(text);
      return { protocol, value: text };
  }
}

function encodeValue(component: MultiaddrComponent): Uint8Array {
  const { protocol, value } = component;
  switch (protocol) {
    case "ip4":
      return parseIp4(value);
    case "ip6":
      return parseIp6(value);
    case "dns":
    case "dns4":
    case "dns6": {
      const name = new TextEncoder().encode(value);
      return concat([encodeVarint(name.length), name]);
    }
    case "tcp": {
      const port = Number(value);
      return new Uint8Array([port >> 8, port & 0xff]);
    }
    case "memory": {
      const out = new Uint8Array(8);
      new DataView(out.buffer).setBigUint64(0, BigInt(value));
      return out;
    }
    case "p2p": {
      const id = decodeBase58(value);
      return concat([encodeVarint(id.length), id]);
    }
  }
}

function concat(parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let offset = 0;
  for (const part of parts) {
    out.set(part, offset);
    offset += part.length;
  }
  return out;
}

// ---------------------------------------------------------------- shape

/**
 * Checks the sequence is one of the supported shapes:
 * `host tcp [p2p]`, `memory [p2p]` or `p2p`.
 */
function checkShape(components: readonly MultiaddrComponent[]): void {
  const [first, second] = components;
  let rest: number;
  if (first === undefined) throw bad("empty multiaddr");
  if (HOSTS.has(first.protocol)) {
    if (second?.protocol !== "tcp") {
      throw bad(`/${first.protocol} must be followed by /tcp, got ${describe(second)}`);
    }
    rest = 2;
  } else if (first.protocol === "memory" || first.protocol === "p2p") {
    rest = 1;
  } else {
    throw bad(`a multiaddr cannot start with /${first.protocol}`);
  }
  if (first.protocol !== "p2p" && components[rest]?.protocol === "p2p") rest++;
  if (rest < components.length) {
    throw bad(
      `trailing garbage after ${format(components.slice(0, rest))}: ${describe(components[rest])}`,
    );
  }
}

function describe(component: MultiaddrComponent | undefined): string {
  return component === undefined ? "nothing" : `/${component.protocol}`;
}

function format(components: readonly MultiaddrComponent[]): string {
  return components.map((c) => `/${c.protocol}/${c.value}`).join("");
}

// ---------------------------------------------------------------- binary

function readComponent(bytes: Uint8Array, offset: number): [MultiaddrComponent, number] {
  const code = decodeVarint(bytes, offset, 0xffff);
  if (code === undefined) throw bad("truncated protocol code");
  const protocol = PROTOCOL_OF.get(code.value);
  if (protocol === undefined) throw bad(`unknown protocol code ${code.value}`);
  let at = offset + code.length;
  const take = (n: number): Uint8Array => {
    if (at + n > bytes.length) throw bad(`truncated /${protocol} value`);
    const value = bytes.subarray(at, at + n);
    at += n;
    return value;
  };
  const takeSized = (max: number): Uint8Array => {
    const size = decodeVarint(bytes, at, max);
    if (size === undefined) throw bad(`truncated /${protocol} length`);
    at += size.length;
    return take(size.value);
  };
  let value: string;
  switch (protocol) {
    case "ip4":
      value = formatIp4(take(4));
      break;
    case "ip6":
      value = formatIp6(take(16));
      break;
    case "dns":
    case "dns4":
    case "dns6": {
      const raw = takeSized(MAX_DNS_NAME);
      try {
        value = new TextDecoder("utf-8", { fatal: true }).decode(raw);
      } catch {
        throw bad(`/${protocol} name is not UTF-8`);
      }
      checkDnsName(value);
      break;
    }
    case "tcp": {
      const port = take(2);
      value = String((port[0] << 8) | port[1]);
      break;
    }
    case "memory": {
      const n = new DataView(take(8).slice().buffer).getBigUint64(0);
      if (n > BigInt(Number.MAX_SAFE_INTEGER)) throw bad(`memory port ${n} is out of range`);
      value = String(n);
      break;
    }
    case "p2p": {
      const id = takeSized(MAX_IDENTITY_DIGEST + 8);
      value = encodeBase58(id);
      checkPeerIdMultihash(id, value);
      break;
    }
  }
  return [{ protocol, value }, at];
}

// ---------------------------------------------------------------- class

/**
 * An immutable, validated multiaddr.
 *
 * @example Parse, inspect, add a peer id
 * ```ts
 * import { Multiaddr } from "./multiaddr.ts";
 *
 * const addr = Multiaddr.parse("/ip6/0:0::1/tcp/4001");
 * console.log(addr.toString()); // "/ip6/::1/tcp/4001"
 * console.log(addr.tcpEndpoint()); // { hostname: "::1", port: 4001, family: "ip6" }
 * const full = addr.withPeerId("QmYyQSo1c1Ym7orWxLYvCrM2EmxFTANf8wXmmE7DWjhx5N");
 * console.log(Multiaddr.fromBytes(full.bytes).equals(full)); // true
 * ```
 */
export class Multiaddr {
  /** The steps of this address, in order, with canonical values. */
  readonly components: readonly MultiaddrComponent[];
  #bytes: Uint8Array | undefined;
  #text: string | undefined;

  private constructor(components: readonly MultiaddrComponent[]) {
    this.components = Object.freeze(components.map((c) => Object.freeze({ ...c })));
  }

  /**
   * Parses multiaddr text.
   *
   * @throws {NetworkError} `BAD_ADDRESS`, saying what was wrong
   * @example
   * ```ts
   * import { Multiaddr } from "./multiaddr.ts";
   * const addr = Multiaddr.parse("/memory/7");
   * console.log(addr.memoryPort()); // 7
   * ```
   */
  static parse(text: string): Multiaddr {
    if (typeof text !== "string") throw bad("a multiaddr must be a string");
    if (text.length > MAX_MULTIADDR_TEXT) {
      throw bad(`multiaddr longer than ${MAX_MULTIADDR_TEXT} characters`);
    }
    if (!text.startsWith("/")) throw bad(`multiaddr ${quote(text)} must start with '/'`);
    if (text === "/") throw bad("empty multiaddr");
    const parts = text.split("/");
    const components: MultiaddrComponent[] = [];
    for (let i = 1; i < parts.length; i += 2) {
      const name = parts[i];
      if (name === "" && i === parts.length - 1 && i > 1) {
        throw bad(`multiaddr ${quote(text)} has a trailing '/'`);
      }
      if (!isProtocol(name)) throw bad(`unknown protocol ${quote(name)} in ${quote(text)}`);
      const value = parts[i + 1];
      if (value === undefined || value === "") {
        throw bad(`missing value for /${name} in ${quote(text)}`);
      }
      components.push(parseValue(name, value));
    }
    checkShape(components);
    return new Multiaddr(components);
  }

  /**
   * Decodes the binary form.
   *
   * @throws {NetworkError} `BAD_ADDRESS` for anything malformed or too long
   * @example
   * ```ts
   * import { Multiaddr } from "./multiaddr.ts";
   * const addr = Multiaddr.fromBytes(new Uint8Array([4, 127, 0, 0, 1, 6, 0x0f, 0xa1]));
   * console.log(addr.toString()); // "/ip4/127.0.0.1/tcp/4001"
   * ```
   */
  static fromBytes(bytes: Uint8Array): Multiaddr {
    if (!(bytes instanceof Uint8Array)) throw bad("a binary multiaddr must be a Uint8Array");
    if (bytes.length > MAX_MULTIADDR_BYTES) {
      throw bad(`binary multiaddr longer than ${MAX_MULTIADDR_BYTES} bytes`);
    }
    const components: MultiaddrComponent[] = [];
    try {
      for (let at = 0; at < bytes.length;) {
        const [component, next] = readComponent(bytes, at);
        components.push(component);
        at = next;
      }
    } catch (err) {
      // Varint errors (non-minimal, too large) come with their own codes.
      if (NetworkError.is(err, "BAD_ADDRESS")) throw err;
      const detail = err instanceof Error ? err.message : String(err);
      throw new NetworkError("BAD_ADDRESS", `bad binary multiaddr: ${detail}`, { cause: err });
    }
    checkShape(components);
    const addr = new Multiaddr(components);
    addr.#bytes = bytes.slice();
    return addr;
  }

  /**
   * Text, bytes or an existing address, as a `Multiaddr`.
   *
   * @throws {NetworkError} `BAD_ADDRESS`
   * @example
   * ```ts
   * import { Multiaddr } from "./multiaddr.ts";
   * const addr = Multiaddr.from("/memory/1");
   * console.log(Multiaddr.from(addr) === addr); // true
   * ```
   */
  static from(input: string | Uint8Array | Multiaddr): Multiaddr {
    if (input instanceof Multiaddr) return input;
    if (input instanceof Uint8Array) return Multiaddr.fromBytes(input);
    return Multiaddr.parse(input);
  }

  /**
   * The binary form: a fresh copy on every call, so callers may keep or
   * change it.
   */
  get bytes(): Uint8Array {
    this.#bytes ??= concat(
      this.components.flatMap((c) => [encodeVarint(CODE_OF[c.protocol]), encodeValue(c)]),
    );
    return this.#bytes.slice();
  }

  /** The canonical text form, e.g. `/ip6/::1/tcp/1`. */
  toString(): string {
    this.#text ??= format(this.components);
    return this.#text;
  }

  /** The base58btc peer id of a trailing `/p2p/`, if any. */
  get peerId(): string | undefined {
    const last = this.components.at(-1);
    return last?.protocol === "p2p" ? last.value : undefined;
  }

  /**
   * This address with `/p2p/<peerId>` at the end, replacing any peer id.
   *
   * @throws {NetworkError} `BAD_ADDRESS` for a malformed peer id
   * @example
   * ```ts
   * import { Multiaddr } from "./multiaddr.ts";
   * const id = "QmYyQSo1c1Ym7orWxLYvCrM2EmxFTANf8wXmmE7DWjhx5N";
   * console.log(Multiaddr.parse("/memory/3").withPeerId(id).peerId === id); // true
   * ```
   */
  withPeerId(peerId: string): Multiaddr {
    const component = parseValue("p2p", peerId);
    return new Multiaddr([...this.withoutPeerId().components, component]);
  }

  /**
   * This address without its trailing `/p2p/`. A bare `/p2p/<id>` address is
   * returned unchanged, since an empty multiaddr is not valid here.
   */
  withoutPeerId(): Multiaddr {
    if (this.peerId === undefined || this.components.length === 1) return this;
    return new Multiaddr(this.components.slice(0, -1));
  }

  /** Whether both addresses have the same binary form. */
  equals(other: Multiaddr): boolean {
    return other instanceof Multiaddr && this.toString() === other.toString();
  }

  /** Host, port and family of a `/<host>/<h>/tcp/<port>` address; otherwise `undefined`. */
  tcpEndpoint(): TcpEndpoint | undefined {
    const [host, tcp] = this.components;
    if (tcp?.protocol !== "tcp" || !HOSTS.has(host.protocol)) return undefined;
    return {
      hostname: host.value,
      port: Number(tcp.value),
      family: host.protocol as TcpEndpoint["family"],
    };
  }

  /** The port of a `/memory/<n>` address; otherwise `undefined`. */
  memoryPort(): number | undefined {
    const [first] = this.components;
    return first?.protocol === "memory" ? Number(first.value) : undefined;
  }
}
