/**
 * The raw baseline: plain Deno TCP between two processes, no security, no
 * multiplexing, no negotiation. It speaks the node CLI contract
 * (`protocols/cli_contract.ts`) so the figures are the floor every stack is measured
 * against.
 *
 * Each connection starts with one tag byte that stands in for protocol
 * negotiation: `p` ping (32-byte round trips until end of stream), `f` perf
 * (8-byte big-endian count, upload until half-close, then that many bytes
 * back), `e` echo.
 *
 * With `--sealed` first (on both the listener and the client), perf's bytes
 * travel as Noise transport messages sealed with node:crypto's
 * ChaCha20-Poly1305 and nothing else: no handshake, no multiplexing, no
 * negotiation. That is the ceiling of any Noise stack built on node:crypto,
 * ours included, so `bench/compare.ts` shows it beside the raw floor.
 *
 * ```sh
 * deno run -A bench/raw_tcp_node.ts listen            # listening /ip4/127.0.0.1/tcp/N
 * deno run -A bench/raw_tcp_node.ts ping /ip4/127.0.0.1/tcp/N --count 1000
 * deno run -A bench/raw_tcp_node.ts --sealed perf /ip4/127.0.0.1/tcp/N --upload 100000000 --download 100000000
 * ```
 *
 * @module
 */

import { createCipheriv, createDecipheriv } from "node:crypto";
import { Multiaddr } from "../netcore/multiaddr.ts";
import {
  formatConnectLine,
  formatEchoLine,
  formatPerfLine,
  formatPingLine,
  type NodeArgs,
  numberOption,
  parseNodeArgs,
  summarisePings,
} from "../protocols/cli_contract.ts";
import { CHUNK_SIZE, PING_SIZE, randomBytes, untilSignalled } from "./_reference_node.ts";

const TAG_PING = 0x70; // "p"
const TAG_PERF = 0x66; // "f"
const TAG_ECHO = 0x65; // "e"

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
        " | perf MA --upload N --download N | connect MA [--count N]",
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
