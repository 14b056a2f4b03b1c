/**
 * The js-libp2p reference node: TCP + Noise XX + yamux + multistream-select
 * from the pinned npm packages in `bench/js_libp2p/package.json`, serving and
 * driving ping, perf, echo, RPC and DirectSend with the same command-line
 * contract as `cli.ts` (see `protocols/cli_contract.ts`).
 *
 * Run it with Deno against `bench/js_libp2p/node_modules` (the interop tests
 * and `bench/compare.ts` install it on first use; by hand:
 * `deno run --allow-read --allow-write=bench/js_libp2p/.install.lock --allow-run=npm --allow-env bench/js_libp2p/install.ts`):
 *
 * ```sh
 * deno run -A --node-modules-dir=manual bench/js_libp2p/node.ts listen
 * deno run -A --node-modules-dir=manual bench/js_libp2p/node.ts ping /ip4/127.0.0.1/tcp/4001/p2p/12D3... --count 100
 * deno run -A --node-modules-dir=manual bench/js_libp2p/node.ts echo /ip4/.../p2p/12D3... --bytes 1000 --streams 128
 * deno run -A --node-modules-dir=manual bench/js_libp2p/node.ts rpc /ip4/.../p2p/12D3... --count 5000 --concurrency 32 --bytes 64
 * deno run -A --node-modules-dir=manual bench/js_libp2p/node.ts send /ip4/.../p2p/12D3... --count 100000 --bytes 64
 * ```
 *
 * `@libp2p/perf` is not on the registry, so perf and echo are implemented
 * here on js-libp2p's stream API; the ping server is `@libp2p/ping`'s own
 * handler, while the client keeps one ping stream open for all round trips.
 *
 * RPC and DirectSend are done the way js-libp2p applications do them:
 *
 * - RPC ({@linkcode RPC_PROTOCOL}) opens a stream per request
 *   (`dialProtocol` with `negotiateFully: false`, so the protocol proposal
 *   leaves with the request), writes the request, closes its write side and
 *   reads the response to the end of the stream; the server reads the
 *   request to the end, writes the same bytes back and closes. C workers
 *   share the N requests, so C are in flight at once, on one connection
 *   dialed before the clock starts.
 * - DirectSend ({@linkcode SEND_PROTOCOL}) writes length-prefixed messages
 *   (unsigned varint length, then the bytes, as `it-length-prefixed` frames
 *   them; one `send` per message, every message the same bytes) on one
 *   stream, then closes its write side; the server counts the messages and,
 *   at the end of the stream, writes the count back as an 8-byte big-endian
 *   integer and closes.
 *
 * @module
 */

import { createLibp2p, type Libp2p, type Libp2pOptions } from "libp2p";
import { tcp } from "@libp2p/tcp";
import { noise } from "@chainsafe/libp2p-noise";
import { yamux } from "@chainsafe/libp2p-yamux";
import { ping } from "@libp2p/ping";
import { type Multiaddr, multiaddr } from "@multiformats/multiaddr";
import type { Stream } from "@libp2p/interface";
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
} from "../../protocols/cli_contract.ts";
import { CHUNK_SIZE, PING_SIZE, randomBytes, untilSignalled } from "../_reference_node.ts";
import {
  decodeVarint,
  encodeVarint,
  MAX_VARINT_BYTES,
  varintLength,
} from "../../netcore/varint.ts";

/** The libp2p ping protocol id. */
export const PING_PROTOCOL = "/ipfs/ping/1.0.0";
/** The libp2p perf protocol id (libp2p/specs `perf/perf.md`). */
export const PERF_PROTOCOL = "/perf/1.0.0";
/** A stream that sends back what it receives and closes when the remote closes. */
export const ECHO_PROTOCOL = "/echo/1.0.0";
/** The bench RPC protocol: one stream per request, the response is the request's bytes. */
export const RPC_PROTOCOL = "/validator-network/bench/rpc/1.0.0";
/** The bench DirectSend protocol: length-prefixed messages, answered by their count. */
export const SEND_PROTOCOL = "/validator-network/bench/send/1.0.0";

/** The largest rpc or send message either side accepts: a sanity bound, not a tuning knob. */
const MAX_MESSAGE_BYTES = 64 * 1024 * 1024;

type MuxerFactory = NonNullable<Libp2pOptions["streamMuxers"]>[number];

/** Enough concurrent streams per connection for the echo fan-out tests. */
const MAX_STREAMS = 1024;
/** One hour: the ping/perf streams must outlive any benchmark run. */
const LONG_TIMEOUT_MS = 3_600_000;

async function createNode(listen: string[]): Promise<Libp2p> {
  return await createLibp2p({
    addresses: { listen },
    transports: [tcp()],
    connectionEncrypters: [noise()],
    streamMuxers: [
      // The packages nest two copies of uint8arraylist whose class types differ
      // only nominally, so yamux's factory type does not match libp2p's.
      yamux({
        maxInboundStreams: MAX_STREAMS,
        maxOutboundStreams: MAX_STREAMS,
      }) as unknown as MuxerFactory,
    ],
    // The defaults rate-limit inbound connections to 5/s per host and 10
    // pending; a connections-per-second benchmark needs neither.
    connectionManager: {
      inboundConnectionThreshold: 1_000_000,
      maxIncomingPendingConnections: 1_000,
      maxConnections: 10_000,
    },
    // Background pings from the connection monitor would skew the figures.
    connectionMonitor: { enabled: false },
    services: {
      ping: ping({ timeout: LONG_TIMEOUT_MS, maxInboundStreams: MAX_STREAMS }),
    },
  });
}

/** Pulls bytes from a js-libp2p stream with exact-length reads. */
class StreamReader {
  #source: AsyncIterator<Uint8Array | { subarray(): Uint8Array }>;
  #pending: Uint8Array = new Uint8Array(0);

  constructor(stream: Stream) {
    this.#source = stream[Symbol.asyncIterator]();
  }

  /** The next chunk, or undefined at end of stream. */
  async next(): Promise<Uint8Array | undefined> {
    if (this.#pending.length > 0) {
      const chunk = this.#pending;
      this.#pending = new Uint8Array(0);
      return chunk;
    }
    const { done, value } = await this.#source.next();
    if (done) return undefined;
    return value instanceof Uint8Array ? value : value.subarray();
  }

  async readExactly(n: number): Promise<Uint8Array> {
    const out = new Uint8Array(n);
    let filled = 0;
    while (filled < n) {
      const chunk = await this.next();
      if (chunk === undefined) {
        throw new Error(`stream ended after ${filled} of ${n} bytes`);
      }
      const take = Math.min(n - filled, chunk.length);
      out.set(chunk.subarray(0, take), filled);
      filled += take;
      if (take < chunk.length) this.#pending = chunk.subarray(take);
    }
    return out;
  }
}

async function send(stream: Stream, bytes: Uint8Array): Promise<void> {
  if (!stream.send(bytes)) await stream.onDrain();
}

async function sendCount(stream: Stream, total: number): Promise<void> {
  const block = new Uint8Array(CHUNK_SIZE);
  for (let sent = 0; sent < total;) {
    const n = Math.min(CHUNK_SIZE, total - sent);
    await send(stream, n === CHUNK_SIZE ? block : block.subarray(0, n));
    sent += n;
  }
}

async function handlePerf(stream: Stream): Promise<void> {
  try {
    const reader = new StreamReader(stream);
    const header = await reader.readExactly(8);
    const wanted = Number(new DataView(header.buffer).getBigUint64(0));
    while (await reader.next() !== undefined) { /* drain the upload */ }
    await sendCount(stream, wanted);
    await stream.close();
  } catch (err) {
    stream.abort(err instanceof Error ? err : new Error(String(err)));
  }
}

async function handleEcho(stream: Stream): Promise<void> {
  try {
    for await (const chunk of stream) await send(stream, chunk.subarray());
    await stream.close();
  } catch (err) {
    stream.abort(err instanceof Error ? err : new Error(String(err)));
  }
}

/** Reads a whole stream, to the remote's close, into one array. */
async function readToEnd(reader: StreamReader, limit: number): Promise<Uint8Array> {
  const chunks: Uint8Array[] = [];
  let length = 0;
  for (let chunk = await reader.next(); chunk !== undefined; chunk = await reader.next()) {
    length += chunk.length;
    if (length > limit) throw new Error(`more than ${limit} bytes`);
    chunks.push(chunk);
  }
  if (chunks.length === 1) return chunks[0];
  const out = new Uint8Array(length);
  let off = 0;
  for (const chunk of chunks) {
    out.set(chunk, off);
    off += chunk.length;
  }
  return out;
}

async function handleRpc(stream: Stream): Promise<void> {
  try {
    const request = await readToEnd(new StreamReader(stream), MAX_MESSAGE_BYTES);
    await send(stream, request);
    await stream.close();
  } catch (err) {
    stream.abort(err instanceof Error ? err : new Error(String(err)));
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

async function handleSend(stream: Stream): Promise<void> {
  try {
    const counter = new MessageCounter();
    for await (const chunk of stream) counter.push(chunk.subarray());
    counter.end();
    const answer = new Uint8Array(8);
    new DataView(answer.buffer).setBigUint64(0, BigInt(counter.count));
    await send(stream, answer);
    await stream.close();
  } catch (err) {
    stream.abort(err instanceof Error ? err : new Error(String(err)));
  }
}

async function listen(args: NodeArgs): Promise<void> {
  const node = await createNode([
    args.options.get("listen") ?? "/ip4/127.0.0.1/tcp/0",
  ]);
  const handlerOptions = {
    maxInboundStreams: MAX_STREAMS,
    maxOutboundStreams: MAX_STREAMS,
  };
  await node.handle(
    PERF_PROTOCOL,
    (stream) => handlePerf(stream),
    handlerOptions,
  );
  await node.handle(
    ECHO_PROTOCOL,
    (stream) => handleEcho(stream),
    handlerOptions,
  );
  await node.handle(RPC_PROTOCOL, (stream) => handleRpc(stream), handlerOptions);
  await node.handle(SEND_PROTOCOL, (stream) => handleSend(stream), handlerOptions);
  for (const addr of node.getMultiaddrs()) {
    console.log(`listening ${addr.toString()}`);
  }
  await untilSignalled();
  await node.stop();
}

async function pingOnce(stream: Stream, reader: StreamReader): Promise<number> {
  const payload = randomBytes(PING_SIZE);
  const start = performance.now();
  await send(stream, payload);
  const pong = await reader.readExactly(PING_SIZE);
  const rtt = performance.now() - start;
  if (!pong.every((b, i) => b === payload[i])) {
    throw new Error("ping: pong differs from ping");
  }
  return rtt;
}

async function runPing(
  node: Libp2p,
  target: string,
  count: number,
): Promise<void> {
  const stream = await node.dialProtocol(multiaddr(target), PING_PROTOCOL);
  const reader = new StreamReader(stream);
  const samples: number[] = [];
  for (let i = 0; i < count; i++) samples.push(await pingOnce(stream, reader));
  await stream.close();
  console.log(formatPingLine(summarisePings(samples)));
}

async function echoOnce(
  node: Libp2p,
  target: string,
  payload: Uint8Array,
): Promise<void> {
  const stream = await node.dialProtocol(multiaddr(target), ECHO_PROTOCOL, {
    maxOutboundStreams: MAX_STREAMS,
  });
  const reader = new StreamReader(stream);
  const writing = (async () => {
    for (let i = 0; i < payload.length; i += CHUNK_SIZE) {
      await send(
        stream,
        payload.subarray(i, Math.min(payload.length, i + CHUNK_SIZE)),
      );
    }
    await stream.close();
  })();
  const [back] = await Promise.all([
    reader.readExactly(payload.length),
    writing,
  ]);
  if (await reader.next() !== undefined) {
    throw new Error("echo: more bytes came back than sent");
  }
  if (!back.every((b, i) => b === payload[i])) {
    throw new Error("echo: bytes came back altered");
  }
}

/**
 * `--streams K` (default 1) runs K echo streams at once on one connection,
 * each carrying `--bytes` bytes; the line reports the total.
 */
async function runEcho(
  node: Libp2p,
  target: string,
  bytes: number,
  streams: number,
) {
  const payloads = Array.from({ length: streams }, () => randomBytes(bytes));
  const start = performance.now();
  if (streams > 1) await node.dial(multiaddr(target));
  await Promise.all(payloads.map((payload) => echoOnce(node, target, payload)));
  console.log(formatEchoLine(bytes * streams, performance.now() - start));
}

async function runPerf(
  node: Libp2p,
  target: string,
  up: number,
  down: number,
): Promise<void> {
  const stream = await node.dialProtocol(multiaddr(target), PERF_PROTOCOL);
  const reader = new StreamReader(stream);
  const header = new Uint8Array(8);
  new DataView(header.buffer).setBigUint64(0, BigInt(down));
  const start = performance.now();
  await send(stream, header);
  await sendCount(stream, up);
  await stream.close();
  let first: number | undefined;
  let received = 0;
  for (
    let chunk = await reader.next();
    chunk !== undefined;
    chunk = await reader.next()
  ) {
    first ??= performance.now();
    received += chunk.length;
  }
  const end = performance.now();
  if (received !== down) {
    throw new Error(`perf: asked for ${down} bytes, got ${received}`);
  }
  first ??= end;
  console.log(formatPerfLine(up, first - start, down, end - first));
}

async function runConnect(
  node: Libp2p,
  target: string,
  count: number,
): Promise<void> {
  const addr = multiaddr(target);
  const start = performance.now();
  for (let i = 0; i < count; i++) {
    const connection = await node.dial(addr);
    // Optimistic, as cli.ts's connect: the proposal leaves with the ping.
    const stream = await connection.newStream(PING_PROTOCOL, { negotiateFully: false });
    await pingOnce(stream, new StreamReader(stream));
    await stream.close();
    await connection.close();
  }
  console.log(formatConnectLine(count, performance.now() - start));
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/** One request on its own stream; resolves with its latency, ms. */
async function rpcOnce(node: Libp2p, addr: Multiaddr, request: Uint8Array): Promise<number> {
  const sent = performance.now();
  const stream = await node.dialProtocol(addr, RPC_PROTOCOL, {
    negotiateFully: false,
    maxOutboundStreams: MAX_STREAMS,
  });
  await send(stream, request);
  await stream.close();
  const response = await readToEnd(new StreamReader(stream), request.length);
  const latency = performance.now() - sent;
  if (!sameBytes(response, request)) throw new Error("rpc: response differs from request");
  return latency;
}

/** `count` requests of `bytes` random bytes, `concurrency` in flight at once. */
async function runRpc(
  node: Libp2p,
  target: string,
  count: number,
  concurrency: number,
  bytes: number,
): Promise<void> {
  if (concurrency < 1) throw new Error("rpc: --concurrency must be at least 1");
  if (bytes > MAX_MESSAGE_BYTES) throw new Error(`rpc: --bytes above ${MAX_MESSAGE_BYTES}`);
  const addr = multiaddr(target);
  // The connection is up before the clock starts, and all streams share it.
  await node.dial(addr);
  const latencies: number[] = [];
  let issued = 0;
  const worker = async () => {
    while (issued < count) {
      issued++;
      latencies.push(await rpcOnce(node, addr, randomBytes(bytes)));
    }
  };
  const start = performance.now();
  await Promise.all(Array.from({ length: Math.min(concurrency, count) }, worker));
  console.log(formatRpcLine(latencies, performance.now() - start));
}

/** `count` messages of `bytes` bytes on one stream, then its close and the count. */
async function runSend(
  node: Libp2p,
  target: string,
  count: number,
  bytes: number,
): Promise<void> {
  if (bytes > MAX_MESSAGE_BYTES) throw new Error(`send: --bytes above ${MAX_MESSAGE_BYTES}`);
  const addr = multiaddr(target);
  await node.dial(addr);
  // Every message carries the same bytes, so one frame serves them all.
  const frame = new Uint8Array(varintLength(bytes) + bytes);
  frame.set(randomBytes(bytes), encodeVarint(bytes, frame).length);
  const start = performance.now();
  const stream = await node.dialProtocol(addr, SEND_PROTOCOL, { negotiateFully: false });
  for (let i = 0; i < count; i++) await send(stream, frame);
  await stream.close();
  const reader = new StreamReader(stream);
  const answer = await reader.readExactly(8);
  const ms = performance.now() - start;
  if (await reader.next() !== undefined) throw new Error("send: more than the count came back");
  const counted = Number(new DataView(answer.buffer).getBigUint64(0));
  if (counted !== count) {
    throw new Error(`send: sent ${count} messages, the server counted ${counted}`);
  }
  console.log(formatSendLine(count, bytes, ms));
}

async function main(argv: string[]): Promise<number> {
  const args = parseNodeArgs(argv);
  if (args.command === "listen") {
    await listen(args);
    return 0;
  }
  if (
    !["ping", "echo", "perf", "connect", "rpc", "send"].includes(args.command) || !args.target
  ) {
    console.error(
      "usage: bench/js_libp2p/node.ts listen [--listen MA] | ping MA [--count N] | echo MA --bytes N" +
        " | perf MA --upload N --download N | connect MA [--count N]" +
        " | rpc MA --count N --concurrency C --bytes B | send MA --count N --bytes B",
    );
    return 2;
  }
  const node = await createNode([]);
  try {
    switch (args.command) {
      case "ping":
        await runPing(node, args.target, numberOption(args, "count", 1));
        break;
      case "echo":
        await runEcho(
          node,
          args.target,
          numberOption(args, "bytes"),
          numberOption(args, "streams", 1),
        );
        break;
      case "perf":
        await runPerf(
          node,
          args.target,
          numberOption(args, "upload"),
          numberOption(args, "download"),
        );
        break;
      case "connect":
        await runConnect(node, args.target, numberOption(args, "count", 1));
        break;
      case "rpc":
        await runRpc(
          node,
          args.target,
          numberOption(args, "count"),
          numberOption(args, "concurrency", 1),
          numberOption(args, "bytes"),
        );
        break;
      case "send":
        await runSend(node, args.target, numberOption(args, "count"), numberOption(args, "bytes"));
        break;
    }
  } finally {
    await node.stop();
  }
  return 0;
}

if (import.meta.main) {
  let code: number;
  try {
    code = await main(Deno.args);
  } catch (err) {
    console.error(`error: ${err instanceof Error ? err.message : String(err)}`);
    code = 1;
  }
  // js-libp2p leaves timers behind after stop(); exit explicitly.
  Deno.exit(code);
}
