/**
 * The raw baseline: plain Deno TCP between two processes, no security, no
 * multiplexing, no negotiation. It speaks the node CLI contract
 * (`protocols/cli_contract.ts`) so the figures are the floor every stack is measured
 * against.
 *
 * Each connection starts with one tag byte that stands in for protocol
 * negotiation: `p` ping (32-byte round trips until end of stream), `f` perf
 * (8-byte big-endian count, upload until half-close, then that many bytes
 * back), `e` echo, `r` rpc, `s` send.
 *
 * RPC and DirectSend frame each message as an unsigned varint length, then
 * that many bytes (the framing libp2p's length-prefixed streams use):
 *
 * - `rpc` dials C sockets before the clock starts and keeps one request in
 *   flight on each: it writes a request frame, the server writes the same
 *   frame back, and the next request follows the response. Each socket ends
 *   with the client's close, at a frame boundary.
 * - `send` writes its N frames on one socket, as many as fit in about
 *   {@linkcode CHUNK_SIZE} per write (every message carries the same bytes),
 *   then half-closes; the server counts the frames it reads and, at the end
 *   of the stream, answers the count as an 8-byte big-endian integer and
 *   closes.
 *
 * With `--sealed` first (on both the listener and the client), perf's bytes
 * travel as Noise transport messages sealed with node:crypto's
 * ChaCha20-Poly1305 and nothing else: no handshake, no multiplexing, no
 * negotiation. That is the ceiling of any Noise stack built on node:crypto,
 * ours included, so `bench/compare.ts` shows it beside the raw floor. Only
 * perf has a sealed form: a `--sealed` client refuses `rpc` and `send` (exit
 * 2, saying so) rather than print raw figures under the sealed name, while a
 * `--sealed` listener serves them as the raw one does.
 *
 * ```sh
 * deno run -A bench/raw_tcp_node.ts listen            # listening /ip4/127.0.0.1/tcp/N
 * deno run -A bench/raw_tcp_node.ts ping /ip4/127.0.0.1/tcp/N --count 1000
 * deno run -A bench/raw_tcp_node.ts rpc /ip4/127.0.0.1/tcp/N --count 5000 --concurrency 32 --bytes 64
 * deno run -A bench/raw_tcp_node.ts send /ip4/127.0.0.1/tcp/N --count 100000 --bytes 64
 * deno run -A bench/raw_tcp_node.ts --sealed perf /ip4/127.0.0.1/tcp/N --upload 100000000 --download 100000000
 * ```
 *
 * @module
 */

import { createCipheriv, createDecipheriv } from "node:crypto";
import { Multiaddr } from "../netcore/multiaddr.ts";
import { decodeVarint, encodeVarint, MAX_VARINT_BYTES, varintLength } from "../netcore/varint.ts";
import {
  formatConnectLine,
  formatEchoLine,
  formatPerfLine,
  formatPingLine,
  formatRpcLine,
  formatSendLine,
  type NodeArgs,
  numberOption,
  parseNodeArgs,
  summarisePings,
} from "../protocols/cli_contract.ts";
import { CHUNK_SIZE, PING_SIZE, randomBytes, untilSignalled } from "./_reference_node.ts";

const TAG_PING = 0x70; // "p"
const TAG_PERF = 0x66; // "f"
const TAG_ECHO = 0x65; // "e"
const TAG_RPC = 0x72; // "r"
const TAG_SEND = 0x73; // "s"

/** The largest rpc or send message either side accepts: a sanity bound, not a tuning knob. */
const MAX_MESSAGE_BYTES = 64 * 1024 * 1024;

/** Noise's largest message, and what a sealed frame carries at most. */
const MAX_MESSAGE = 65535;
const TAG_LENGTH = 16;
const MAX_PLAINTEXT = MAX_MESSAGE - TAG_LENGTH;
/** A fixed key: the sealed mode measures the cipher's cost, not secrecy. */
const SEALED_KEY = new Uint8Array(32).fill(0x5a);

/**
 * One direction of sealed perf traffic: Noise transport framing (2-byte
 * big-endian length, ciphertext, tag) with the spec's nonce (4 zero bytes,
 * 8-byte little-endian counter), sealed through node:crypto the way
 * `netcore/noise/native_crypto.ts` seals a large message.
 */
class SealedDirection {
  #nonce = 0;
  #iv = new Uint8Array(12);

  #nextIv(): Uint8Array {
    new DataView(this.#iv.buffer).setUint32(4, this.#nonce++, true);
    return this.#iv;
  }

  /**
   * Seals `plaintext` (at most {@linkcode MAX_PLAINTEXT} bytes) into one frame
   * at `out[offset]`; returns the frame's length.
   */
  sealInto(plaintext: Uint8Array, out: Uint8Array, offset: number): number {
    const cipher = createCipheriv("chacha20-poly1305", SEALED_KEY, this.#nextIv(), {
      authTagLength: TAG_LENGTH,
    });
    const body = cipher.update(plaintext);
    cipher.final();
    const length = body.length + TAG_LENGTH;
    out[offset] = length >> 8;
    out[offset + 1] = length & 0xff;
    out.set(body, offset + 2);
    out.set(cipher.getAuthTag(), offset + 2 + body.length);
    return 2 + length;
  }

  /** Opens one frame's ciphertext and tag; throws when the tag is wrong. */
  open(message: Uint8Array): Uint8Array {
    const bodyLength = message.length - TAG_LENGTH;
    const decipher = createDecipheriv("chacha20-poly1305", SEALED_KEY, this.#nextIv(), {
      authTagLength: TAG_LENGTH,
    });
    decipher.setAuthTag(message.subarray(bodyLength));
    const body = decipher.update(message.subarray(0, bodyLength));
    decipher.final();
    return body;
  }
}

/** Frames per socket write: about {@linkcode CHUNK_SIZE}, as every node writes. */
const FRAMES_PER_WRITE = Math.ceil(CHUNK_SIZE / MAX_PLAINTEXT);

/** Writes `total` zero bytes as sealed frames, several frames per write. */
async function writeSealed(conn: Deno.Conn, total: number): Promise<void> {
  const sealing = new SealedDirection();
  const block = new Uint8Array(MAX_PLAINTEXT);
  const batch = new Uint8Array(FRAMES_PER_WRITE * (2 + MAX_MESSAGE));
  for (let sent = 0; sent < total;) {
    let filled = 0;
    for (let frame = 0; frame < FRAMES_PER_WRITE && sent < total; frame++) {
      const n = Math.min(MAX_PLAINTEXT, total - sent);
      filled += sealing.sealInto(block.subarray(0, n), batch, filled);
      sent += n;
    }
    await writeAll(conn, batch.subarray(0, filled));
  }
}

/** Reads sealed frames to the end of the stream; returns the plaintext byte count. */
async function readSealed(
  conn: Deno.Conn,
  onFirstByte: () => void = () => {},
): Promise<number> {
  const opening = new SealedDirection();
  const buf = new Uint8Array(CHUNK_SIZE + MAX_MESSAGE + 2);
  let filled = 0;
  let plaintext = 0;
  for (
    let n = await conn.read(buf.subarray(filled));
    n !== null;
    n = await conn.read(buf.subarray(filled))
  ) {
    onFirstByte();
    filled += n;
    let off = 0;
    while (filled - off >= 2) {
      const length = (buf[off] << 8) | buf[off + 1];
      if (length < TAG_LENGTH) throw new Error("sealed: frame shorter than its tag");
      if (filled - off < 2 + length) break;
      plaintext += opening.open(buf.subarray(off + 2, off + 2 + length)).length;
      off += 2 + length;
    }
    buf.copyWithin(0, off, filled);
    filled -= off;
  }
  if (filled !== 0) throw new Error("sealed: stream ended inside a frame");
  return plaintext;
}

/** Reads until `buf` is full; false when the stream ended first. */
async function readFull(conn: Deno.Conn, buf: Uint8Array): Promise<boolean> {
  for (let filled = 0; filled < buf.length;) {
    const n = await conn.read(buf.subarray(filled));
    if (n === null) return false;
    filled += n;
  }
  return true;
}

async function writeAll(conn: Deno.Conn, bytes: Uint8Array): Promise<void> {
  for (let off = 0; off < bytes.length;) {
    off += await conn.write(bytes.subarray(off));
  }
}

async function writeCount(conn: Deno.Conn, total: number): Promise<void> {
  const block = new Uint8Array(CHUNK_SIZE);
  for (let sent = 0; sent < total;) {
    const n = Math.min(CHUNK_SIZE, total - sent);
    await writeAll(conn, block.subarray(0, n));
    sent += n;
  }
}

/**
 * Reads varint-length-prefixed frames from a socket through one buffer,
 * which slides its unread bytes to the front when a frame would run past
 * its end and doubles when a frame is larger than it.
 */
class FrameReader {
  #conn: Deno.Conn;
  #buf = new Uint8Array(CHUNK_SIZE);
  #start = 0;
  #end = 0;

  constructor(conn: Deno.Conn) {
    this.#conn = conn;
  }

  /**
   * The next frame's body, as a view into the reader's buffer that stays
   * valid until the next call; undefined when the stream ends between frames.
   *
   * @throws {Error} when the stream ends inside a frame or a frame is too large.
   */
  async next(): Promise<Uint8Array | undefined> {
    for (;;) {
      const header = decodeVarint(this.#buf.subarray(this.#start, this.#end), 0, MAX_MESSAGE_BYTES);
      const frameLength = header === undefined ? MAX_VARINT_BYTES : header.length + header.value;
      if (header !== undefined && this.#end - this.#start >= frameLength) {
        const body = this.#buf.subarray(this.#start + header.length, this.#start + frameLength);
        this.#start += frameLength;
        return body;
      }
      this.#reserve(frameLength);
      const n = await this.#conn.read(this.#buf.subarray(this.#end));
      if (n === null) {
        if (this.#start === this.#end) return undefined;
        throw new Error("stream ended inside a frame");
      }
      this.#end += n;
    }
  }

  /** Makes room for `length` bytes from the first unread one. */
  #reserve(length: number): void {
    if (this.#start + length <= this.#buf.length) return;
    const unread = this.#buf.subarray(this.#start, this.#end);
    if (length <= this.#buf.length) {
      this.#buf.copyWithin(0, this.#start, this.#end);
    } else {
      const grown = new Uint8Array(Math.max(length, 2 * this.#buf.length));
      grown.set(unread);
      this.#buf = grown;
    }
    this.#end -= this.#start;
    this.#start = 0;
  }
}

/**
 * Counts varint-length-prefixed messages in a byte stream fed chunk by
 * chunk, skipping their bodies. States: reading a length (its bytes so far
 * in `#header`), or skipping `#remaining` body bytes.
 */
class MessageCounter {
  /** Complete messages so far. */
  count = 0;
  #header = new Uint8Array(MAX_VARINT_BYTES);
  #headerLength = 0;
  /** Body bytes still to skip; 0 while reading a length. */
  #remaining = 0;

  /** Counts the messages that end in `chunk`. */
  push(chunk: Uint8Array): void {
    for (let off = 0; off < chunk.length;) {
      if (this.#remaining > 0) {
        const take = Math.min(this.#remaining, chunk.length - off);
        off += take;
        this.#remaining -= take;
        if (this.#remaining === 0) this.count++;
        continue;
      }
      if (this.#headerLength === MAX_VARINT_BYTES) throw new Error("length varint too long");
      const byte = chunk[off++];
      this.#header[this.#headerLength++] = byte;
      if (byte & 0x80) continue;
      const { value } = decodeVarint(
        this.#header.subarray(0, this.#headerLength),
        0,
        MAX_MESSAGE_BYTES,
      )!;
      this.#headerLength = 0;
      if (value === 0) this.count++;
      else this.#remaining = value;
    }
  }

  /** @throws {Error} when the stream ended inside a message. */
  end(): void {
    if (this.#headerLength > 0 || this.#remaining > 0) {
      throw new Error("stream ended inside a message");
    }
  }
}

/** Answers each request frame with the same frame, until the client closes. */
async function serveRpc(conn: Deno.Conn): Promise<void> {
  const reader = new FrameReader(conn);
  let out = new Uint8Array(CHUNK_SIZE);
  for (let body = await reader.next(); body !== undefined; body = await reader.next()) {
    const length = varintLength(body.length) + body.length;
    if (length > out.length) out = new Uint8Array(Math.max(length, 2 * out.length));
    const prefix = encodeVarint(body.length, out).length;
    out.set(body, prefix);
    await writeAll(conn, out.subarray(0, length));
  }
}

/** Counts the messages until the half-close, then answers the count. */
async function serveSend(conn: Deno.Conn, buf: Uint8Array): Promise<void> {
  const counter = new MessageCounter();
  for (let n = await conn.read(buf); n !== null; n = await conn.read(buf)) {
    counter.push(buf.subarray(0, n));
  }
  counter.end();
  const answer = new Uint8Array(8);
  new DataView(answer.buffer).setBigUint64(0, BigInt(counter.count));
  await writeAll(conn, answer);
}

async function serve(conn: Deno.TcpConn, sealed: boolean): Promise<void> {
  try {
    conn.setNoDelay(true);
    const tag = new Uint8Array(1);
    if (!await readFull(conn, tag)) return;
    const buf = new Uint8Array(CHUNK_SIZE);
    if (tag[0] === TAG_PING || tag[0] === TAG_ECHO) {
      for (let n = await conn.read(buf); n !== null; n = await conn.read(buf)) {
        await writeAll(conn, buf.subarray(0, n));
      }
    } else if (tag[0] === TAG_PERF) {
      const header = new Uint8Array(8);
      if (!await readFull(conn, header)) return;
      const wanted = Number(new DataView(header.buffer).getBigUint64(0));
      if (sealed) {
        await readSealed(conn);
        await writeSealed(conn, wanted);
      } else {
        while (await conn.read(buf) !== null) { /* drain the upload */ }
        await writeCount(conn, wanted);
      }
    } else if (tag[0] === TAG_RPC) {
      await serveRpc(conn);
    } else if (tag[0] === TAG_SEND) {
      await serveSend(conn, buf);
    }
  } catch {
    // A peer that vanishes mid-run only ends its own connection.
  } finally {
    try {
      conn.close();
    } catch { /* already closed */ }
  }
}

async function listen(args: NodeArgs, sealed: boolean): Promise<void> {
  const addr = Multiaddr.parse(
    args.options.get("listen") ?? "/ip4/127.0.0.1/tcp/0",
  );
  const endpoint = addr.tcpEndpoint();
  if (!endpoint) throw new Error(`not a TCP multiaddr: ${addr}`);
  const listener = Deno.listen({
    hostname: endpoint.hostname,
    port: endpoint.port,
  });
  const local = listener.addr as Deno.NetAddr;
  const family = local.hostname.includes(":") ? "ip6" : "ip4";
  console.log(`listening /${family}/${local.hostname}/tcp/${local.port}`);
  const accepting = (async () => {
    try {
      for await (const conn of listener) serve(conn, sealed);
    } catch { /* listener closed */ }
  })();
  await untilSignalled();
  listener.close();
  await accepting;
}

async function dial(target: string, tag: number): Promise<Deno.TcpConn> {
  const endpoint = Multiaddr.parse(target).tcpEndpoint();
  if (!endpoint) throw new Error(`not a TCP multiaddr: ${target}`);
  const conn = await Deno.connect({
    hostname: endpoint.hostname,
    port: endpoint.port,
  });
  conn.setNoDelay(true);
  await writeAll(conn, Uint8Array.of(tag));
  return conn;
}

async function pingOnce(conn: Deno.Conn, pong: Uint8Array): Promise<number> {
  const payload = randomBytes(PING_SIZE);
  const start = performance.now();
  await writeAll(conn, payload);
  if (!await readFull(conn, pong)) throw new Error("ping: connection closed");
  const rtt = performance.now() - start;
  if (!pong.every((b, i) => b === payload[i])) {
    throw new Error("ping: pong differs from ping");
  }
  return rtt;
}

async function runPing(target: string, count: number): Promise<void> {
  const conn = await dial(target, TAG_PING);
  const pong = new Uint8Array(PING_SIZE);
  const samples: number[] = [];
  try {
    for (let i = 0; i < count; i++) samples.push(await pingOnce(conn, pong));
  } finally {
    conn.close();
  }
  console.log(formatPingLine(summarisePings(samples)));
}

async function runEcho(target: string, bytes: number): Promise<void> {
  const payload = randomBytes(bytes);
  const start = performance.now();
  const conn = await dial(target, TAG_ECHO);
  const back = new Uint8Array(bytes);
  try {
    const writing = (async () => {
      await writeAll(conn, payload);
      await conn.closeWrite();
    })();
    const [complete] = await Promise.all([readFull(conn, back), writing]);
    if (!complete) throw new Error("echo: connection closed early");
  } finally {
    conn.close();
  }
  const ms = performance.now() - start;
  if (!back.every((b, i) => b === payload[i])) {
    throw new Error("echo: bytes came back altered");
  }
  console.log(formatEchoLine(bytes, ms));
}

async function runPerf(
  target: string,
  up: number,
  down: number,
  sealed: boolean,
): Promise<void> {
  const conn = await dial(target, TAG_PERF);
  try {
    const header = new Uint8Array(8);
    new DataView(header.buffer).setBigUint64(0, BigInt(down));
    const start = performance.now();
    await writeAll(conn, header);
    await (sealed ? writeSealed(conn, up) : writeCount(conn, up));
    await conn.closeWrite();
    let first: number | undefined;
    let received = 0;
    if (sealed) {
      received = await readSealed(conn, () => first ??= performance.now());
    } else {
      const buf = new Uint8Array(CHUNK_SIZE);
      for (let n = await conn.read(buf); n !== null; n = await conn.read(buf)) {
        first ??= performance.now();
        received += n;
      }
    }
    const end = performance.now();
    if (received !== down) {
      throw new Error(`perf: asked for ${down} bytes, got ${received}`);
    }
    first ??= end;
    console.log(formatPerfLine(up, first - start, down, end - first));
  } finally {
    conn.close();
  }
}

async function runConnect(target: string, count: number): Promise<void> {
  const pong = new Uint8Array(PING_SIZE);
  const start = performance.now();
  for (let i = 0; i < count; i++) {
    const conn = await dial(target, TAG_PING);
    try {
      await pingOnce(conn, pong);
    } finally {
      conn.close();
    }
  }
  console.log(formatConnectLine(count, performance.now() - start));
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/**
 * `count` requests of `bytes` random bytes, one in flight on each of
 * `concurrency` sockets; the sockets are connected before the clock starts.
 */
async function runRpc(
  target: string,
  count: number,
  concurrency: number,
  bytes: number,
): Promise<void> {
  if (concurrency < 1) throw new Error("rpc: --concurrency must be at least 1");
  if (bytes > MAX_MESSAGE_BYTES) throw new Error(`rpc: --bytes above ${MAX_MESSAGE_BYTES}`);
  const conns = await Promise.all(
    Array.from({ length: Math.min(concurrency, Math.max(count, 1)) }, () => dial(target, TAG_RPC)),
  );
  const latencies: number[] = [];
  let issued = 0;
  const worker = async (conn: Deno.Conn) => {
    const reader = new FrameReader(conn);
    const frame = new Uint8Array(varintLength(bytes) + bytes);
    const request = frame.subarray(encodeVarint(bytes, frame).length);
    while (issued < count) {
      issued++;
      for (let i = 0; i < bytes; i += 65536) {
        crypto.getRandomValues(request.subarray(i, Math.min(bytes, i + 65536)));
      }
      const sent = performance.now();
      await writeAll(conn, frame);
      const response = await reader.next();
      latencies.push(performance.now() - sent);
      if (response === undefined) throw new Error("rpc: connection closed before the response");
      if (!sameBytes(response, request)) throw new Error("rpc: response differs from request");
    }
  };
  try {
    const start = performance.now();
    await Promise.all(conns.map(worker));
    console.log(formatRpcLine(latencies, performance.now() - start));
  } finally {
    for (const conn of conns) conn.close();
  }
}

/** `count` messages of `bytes` bytes on one socket, then the half-close and the count. */
async function runSend(target: string, count: number, bytes: number): Promise<void> {
  if (bytes > MAX_MESSAGE_BYTES) throw new Error(`send: --bytes above ${MAX_MESSAGE_BYTES}`);
  const frameLength = varintLength(bytes) + bytes;
  const perWrite = Math.max(1, Math.floor(CHUNK_SIZE / frameLength));
  const batch = new Uint8Array(perWrite * frameLength);
  const frame = batch.subarray(0, frameLength);
  frame.set(randomBytes(bytes), encodeVarint(bytes, frame).length);
  for (let i = 1; i < perWrite; i++) batch.set(frame, i * frameLength);
  const conn = await dial(target, TAG_SEND);
  try {
    const start = performance.now();
    for (let sent = 0; sent < count;) {
      const n = Math.min(perWrite, count - sent);
      await writeAll(conn, batch.subarray(0, n * frameLength));
      sent += n;
    }
    await conn.closeWrite();
    const answer = new Uint8Array(8);
    if (!await readFull(conn, answer)) throw new Error("send: connection closed before the count");
    const ms = performance.now() - start;
    const counted = Number(new DataView(answer.buffer).getBigUint64(0));
    if (counted !== count) {
      throw new Error(`send: sent ${count} messages, the server counted ${counted}`);
    }
    console.log(formatSendLine(count, bytes, ms));
  } finally {
    conn.close();
  }
}

async function main(argv: string[]): Promise<number> {
  const sealed = argv[0] === "--sealed";
  const args = parseNodeArgs(sealed ? argv.slice(1) : argv);
  if (args.command === "listen") {
    await listen(args, sealed);
    return 0;
  }
  const target = args.target;
  if (target === undefined) {
    console.error(
      "usage: raw_tcp_node.ts [--sealed] listen [--listen MA] | ping MA [--count N] | echo MA --bytes N" +
        " | perf MA --upload N --download N | connect MA [--count N]" +
        " | rpc MA --count N --concurrency C --bytes B | send MA --count N --bytes B",
    );
    return 2;
  }
  switch (args.command) {
    case "ping":
      await runPing(target, numberOption(args, "count", 1));
      return 0;
    case "echo":
      await runEcho(target, numberOption(args, "bytes"));
      return 0;
    case "perf":
      await runPerf(
        target,
        numberOption(args, "upload"),
        numberOption(args, "download"),
        sealed,
      );
      return 0;
    case "connect":
      await runConnect(target, numberOption(args, "count", 1));
      return 0;
    case "rpc":
    case "send":
      if (sealed) {
        console.error(
          `${args.command}: --sealed seals perf only; run ${args.command} without it (raw)`,
        );
        return 2;
      }
      if (args.command === "rpc") {
        await runRpc(
          target,
          numberOption(args, "count"),
          numberOption(args, "concurrency", 1),
          numberOption(args, "bytes"),
        );
      } else {
        await runSend(target, numberOption(args, "count"), numberOption(args, "bytes"));
      }
      return 0;
  }
  console.error(`unknown command: ${args.command}`);
  return 2;
}

if (import.meta.main) {
  try {
    Deno.exit(await main(Deno.args));
  } catch (err) {
    console.error(`error: ${err instanceof Error ? err.message : String(err)}`);
    Deno.exit(1);
  }
}
