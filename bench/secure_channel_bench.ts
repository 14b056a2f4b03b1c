/**
 * Noise handshakes per second (XX and IK) and secure-channel throughput per
 * crypto backend, over memory and loopback TCP (both ends in this process),
 * each beside the cipher alone (encrypt then decrypt the same bytes in
 * 65519-byte frames, the most the channel can do with that cipher).
 *
 *   deno bench --allow-net --allow-read --allow-env bench/secure_channel_bench.ts
 *
 * Throughput = 8 MiB (native) or 1 MiB (noble) per iteration / time per iteration.
 */

import { MemorySocket } from "../memsocket/mod.ts";
import { ByteReader } from "../netcore/byte_reader.ts";
import { Ed25519Identity } from "../netcore/identity/mod.ts";
import { Multiaddr } from "../netcore/multiaddr.ts";
import { CipherState } from "../netcore/noise/cipher_state.ts";
import { type CryptoBackend, getCryptoBackend } from "../netcore/noise/crypto.ts";
import { libp2pNoise } from "../netcore/noise/libp2p_noise.ts";
import { SecureChannel } from "../netcore/noise/secure_channel.ts";
import { TrustedPeerSet } from "../netcore/noise/trusted_peers.ts";
import { validatorNoise } from "../netcore/noise/validator_noise.ts";
import type { ByteSink, ByteSource, Connection } from "../netcore/transport/connection.ts";
import { SocketConnection } from "../netcore/transport/socket_connection.ts";
import { TcpTransport } from "../netcore/transport/tcp_transport.ts";
import type { UpgradeContext } from "../netcore/transport/transport.ts";

const MAX_PLAINTEXT = 65535 - 16;
const EMPTY = new Uint8Array(0);
const BLOCK = new Uint8Array(1024 * 1024);
for (let i = 0; i < BLOCK.length; i += 65536) {
  crypto.getRandomValues(BLOCK.subarray(i, i + 65536));
}

const signal = new AbortController().signal;
const dialer: UpgradeContext = { role: "dialer", signal };
const listener: UpgradeContext = { role: "listener", signal };

/** Two connected in-memory connections: memsocket sockets under the production `SocketConnection`. */
function memoryPair(): [Connection, Connection] {
  const [a, b] = MemorySocket.pair("/memory/1", "/memory/2", 262_144);
  const addrA = Multiaddr.parse(a.localAddr);
  const addrB = Multiaddr.parse(b.localAddr);
  return [
    new SocketConnection(a, () => addrA, () => addrB),
    new SocketConnection(b, () => addrB, () => addrA),
  ];
}

// ---- handshakes ----

for (const backendName of ["native", "noble"] as const) {
  const backend = getCryptoBackend(backendName);
  const alice = libp2pNoise(Ed25519Identity.generate(), { backend });
  const bob = libp2pNoise(Ed25519Identity.generate(), { backend });
  Deno.bench({
    name: `XX handshake (libp2p-noise), ${backendName}, memory`,
    group: "handshake",
    async fn() {
      const [a, b] = memoryPair();
      const [x, y] = await Promise.all([alice(a, dialer), bob(b, listener)]);
      x.abort();
      y.abort();
    },
  });

  const v1 = backend.dh.generateKeyPair(), v2 = backend.dh.generateKeyPair();
  const p1 = Ed25519Identity.generate().peerId, p2 = Ed25519Identity.generate().peerId;
  const trustedPeers = new TrustedPeerSet([[v1.publicKey, p1], [v2.publicKey, p2]]);
  const initiator = validatorNoise(v1, { trustedPeers, backend });
  const responder = validatorNoise(v2, { trustedPeers, backend });
  // The dialer finds the responder's static key by the peer id it dials.
  const toResponder: UpgradeContext = {
    ...dialer,
    dialedAddr: Multiaddr.parse(`/memory/2/p2p/${p2}`),
  };
  Deno.bench({
    name: `IK handshake (validator), ${backendName}, memory`,
    group: "handshake",
    async fn() {
      const [a, b] = memoryPair();
      const [x, y] = await Promise.all([initiator(a, toResponder), responder(b, listener)]);
      x.abort();
      y.abort();
    },
  });
}

// ---- throughput ----

type Kind = "memory" | "tcp" | "tcp-64k-reads";

async function rawPair(kind: Kind): Promise<[Connection, Connection]> {
  if (kind === "memory") return memoryPair();
  // The TCP transport's reads grow to 256 KiB while they come back full and
  // land next to each other in one buffer, so a 65537-byte Noise frame split
  // across two reads is joined without a copy; the second variant caps reads
  // at 64 KiB (most frames then span two reads).
  const tcp = new TcpTransport(
    kind === "tcp" ? {} : { readChunkSize: 64 * 1024 },
  );
  const listener = await tcp.listen(Multiaddr.parse("/ip4/127.0.0.1/tcp/0"));
  const accepted = listener[Symbol.asyncIterator]().next();
  const a = await tcp.dial(listener.addr);
  const b = (await accepted).value!;
  await listener.close();
  return [a, b];
}

function channelOn(
  conn: Connection,
  send: Uint8Array,
  receive: Uint8Array,
  backend: CryptoBackend,
) {
  const cipher = backend.cipher("ChaChaPoly");
  return new SecureChannel({
    connection: conn,
    reader: new ByteReader(conn),
    encrypter: new CipherState(cipher, send),
    decrypter: new CipherState(cipher, receive),
    remoteStaticKey: new Uint8Array(32),
    handshakeHash: new Uint8Array(32),
  });
}

/** Writes `bytes` on `sink` and reads them from `source`, on the byte path every layer uses. */
async function transfer(sink: ByteSink, source: ByteSource, bytes: number): Promise<void> {
  const reading = (async () => {
    let got = 0;
    while (got < bytes) {
      const chunk = await source.read();
      if (chunk === null) throw new Error("stream ended early");
      got += chunk.length;
    }
  })();
  for (let sent = 0; sent < bytes; sent += BLOCK.length) {
    const room = sink.write(BLOCK);
    if (room !== undefined) await room;
  }
  await reading;
}

for (const backendName of ["native", "noble"] as const) {
  const backend = getCryptoBackend(backendName);
  const bytes = backendName === "native" ? 8 * BLOCK.length : BLOCK.length;
  const mib = bytes / (1024 * 1024);
  const group = `throughput-${backendName}`;

  const cipher = backend.cipher("ChaChaPoly");
  const key = crypto.getRandomValues(new Uint8Array(32));
  const enc = new CipherState(cipher, key), dec = new CipherState(cipher, key);
  const out = new Uint8Array(MAX_PLAINTEXT + 16);
  Deno.bench({
    name: `cipher alone (ChaChaPoly encrypt + decrypt), ${backendName}, ${mib} MiB`,
    group,
    baseline: true,
    fn() {
      for (let sent = 0; sent < bytes; sent += BLOCK.length) {
        for (let i = 0; i < BLOCK.length; i += MAX_PLAINTEXT) {
          const pt = BLOCK.subarray(
            i,
            Math.min(BLOCK.length, i + MAX_PLAINTEXT),
          );
          dec.decryptWithAd(
            EMPTY,
            enc.encryptWithAd(EMPTY, pt, out.subarray(0, pt.length + 16)),
          );
        }
      }
    },
  });

  for (const kind of ["memory", "tcp", "tcp-64k-reads"] as const) {
    const [a, b] = await rawPair(kind);
    const k1 = crypto.getRandomValues(new Uint8Array(32));
    const k2 = crypto.getRandomValues(new Uint8Array(32));
    const sender = channelOn(a, k1, k2, backend);
    const receiver = channelOn(b, k2, k1, backend);
    Deno.bench({
      name: `secure channel, ${backendName}, ${kind}, ${mib} MiB`,
      group,
      async fn() {
        await transfer(sender, receiver, bytes);
      },
    });
    Deno.bench({
      name: `raw connection (no Noise), ${kind}, ${mib} MiB`,
      group,
      async fn() {
        // A pair of its own, so the channel's connections stay untouched.
        await rawTransfers.get(kind)!(bytes);
      },
    });
  }
}

/** Plain-connection transfers, to show the transport's own ceiling. */
const rawTransfers = new Map<string, (bytes: number) => Promise<void>>();
for (const kind of ["memory", "tcp", "tcp-64k-reads"] as const) {
  const [a, b] = await rawPair(kind);
  rawTransfers.set(kind, (bytes) => transfer(a, b, bytes));
}
