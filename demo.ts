/**
 * Local validator testnet demo: four validators on loopback TCP, each
 * listening, connected in a full mesh over the validator profile
 * (Noise IK with mutual authentication against the validator set, then yamux,
 * then multistream-select per stream), pinging each other. An intruder whose
 * key is not in the validator set is refused, and a node that is not a
 * validator cannot even be dialed by mistake. The metrics the stack recorded
 * are printed at the end.
 *
 * Run: `deno task demo` (flags: `--validators N`, `--pings N`).
 *
 * @module
 */

import { Ed25519Identity, type PeerId } from "./netcore/identity/mod.ts";
import { getCryptoBackend, type KeyPair } from "./netcore/noise/crypto.ts";
import { TrustedPeerSet } from "./netcore/noise/trusted_peers.ts";
import { type PeerConnection, validatorUpgrade } from "./netcore/upgrade/mod.ts";
import { andThen } from "./netcore/transport/and_then.ts";
import { TcpTransport } from "./netcore/transport/tcp_transport.ts";
import type { Listener } from "./netcore/transport/transport.ts";
import { Multiaddr } from "./netcore/multiaddr.ts";
import { NetworkError } from "./netcore/network_error.ts";
import { defaultRegistry } from "./netcore/metrics.ts";
import { handlePing, PING_PROTOCOL, Pinger } from "./protocols/ping.ts";

const NETWORK_ID = "demo-testnet";

function flag(name: string, fallback: number): number {
  const i = Deno.args.indexOf(`--${name}`);
  const value = i >= 0 ? Number(Deno.args[i + 1]) : fallback;
  if (!Number.isSafeInteger(value) || value < 1) {
    throw new Error(`--${name} must be a positive integer`);
  }
  return value;
}

interface Validator {
  name: string;
  peerId: PeerId;
  keys: KeyPair;
  transport: ReturnType<typeof validatorTransport>;
  listener?: Listener<PeerConnection>;
  addr?: Multiaddr;
}

/** TCP -> Noise IK (validator profile) -> yamux, for one validator's key. */
function validatorTransport(keys: KeyPair, trusted: TrustedPeerSet) {
  return andThen(
    new TcpTransport(),
    validatorUpgrade(keys, { noise: { trustedPeers: trusted, networkId: NETWORK_ID } }),
  );
}

async function serve(listener: Listener<PeerConnection>): Promise<void> {
  for await (const conn of listener) {
    (async () => {
      for await (const stream of conn) {
        conn.acceptStream(stream, [PING_PROTOCOL])
          .then((negotiated) => handlePing(negotiated))
          .catch((err) => stream.abort(err));
      }
    })().catch(() => {});
  }
}

async function main(): Promise<void> {
  const count = flag("validators", 4);
  const pings = flag("pings", 20);
  const backend = getCryptoBackend();
  console.log(`validator testnet: ${count} validators, crypto backend ${backend.name}`);

  // The validator set: every validator trusts every validator's static key.
  const trusted = new TrustedPeerSet();
  const validators: Validator[] = [];
  for (let i = 0; i < count; i++) {
    const keys = backend.dh.generateKeyPair();
    const peerId = Ed25519Identity.generate().peerId;
    trusted.set(keys.publicKey, peerId);
    validators.push({
      name: `validator-${i}`,
      peerId,
      keys,
      transport: validatorTransport(keys, trusted),
    });
  }
  const serving: Promise<void>[] = [];
  for (const v of validators) {
    v.listener = await v.transport.listen(Multiaddr.parse("/ip4/127.0.0.1/tcp/0"), {
      onInboundError: (err) =>
        console.log(
          `  ${v.name} refused an inbound connection: ${
            NetworkError.is(err) ? `${err.code}: ${err.message}` : String(err)
          }`,
        ),
    });
    v.addr = v.listener.addr.withPeerId(v.peerId.toString());
    serving.push(serve(v.listener));
    console.log(`  ${v.name} listening on ${v.addr}`);
  }

  // Full mesh: every validator dials every other one and pings it on one stream.
  console.log(`\nfull mesh, ${pings} pings per pair (round trip in microseconds, avg):`);
  const header = ["from \\ to", ...validators.map((v) => v.name)];
  const rows: string[][] = [];
  const connections: PeerConnection[] = [];
  for (const from of validators) {
    const row = [from.name];
    for (const to of validators) {
      if (from === to) {
        row.push("-");
        continue;
      }
      const conn = await from.transport.dial(to.addr!);
      connections.push(conn);
      if (!conn.remotePeer.equals(to.peerId)) {
        throw new Error(`${from.name} reached ${conn.remotePeer}, not ${to.name}`);
      }
      const pinger = new Pinger(await conn.openStream([PING_PROTOCOL]));
      let total = 0;
      for (let i = 0; i < pings; i++) total += await pinger.ping();
      await pinger.close();
      row.push(`${Math.round((total / pings) * 1000)}`);
    }
    rows.push(row);
  }
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
  const line = (cells: string[]) => "  " + cells.map((c, i) => c.padStart(widths[i])).join("  ");
  console.log(line(header));
  for (const row of rows) console.log(line(row));

  // An intruder: a node with a key outside the validator set dials validator-0.
  console.log("\nan intruder with an unknown key dials validator-0:");
  const intruderKeys = backend.dh.generateKeyPair();
  // It knows the validators' keys (they are public), but its own is not trusted.
  const intruder = validatorTransport(intruderKeys, trusted);
  try {
    // IK's second message never comes: validator-0 refuses the key as soon as
    // it decrypts it, before any further DH work, and drops the connection.
    await intruder.dial(validators[0].addr!);
    throw new Error("the intruder was let in");
  } catch (err) {
    if (!NetworkError.is(err)) throw err;
    console.log(`  intruder's dial failed: ${err.code}`);
  }

  for (const conn of connections) await conn.close();
  for (const v of validators) await v.listener!.close();
  await Promise.all(serving);

  console.log("\nmetrics:");
  for (
    const name of [
      "validator_network_noise_rejected_total",
      "validator_network_noise_handshakes_total",
      "validator_network_yamux_bytes_total",
    ]
  ) {
    for (const { labels, value } of defaultRegistry.find(name)?.entries() ?? []) {
      console.log(`  ${name}${JSON.stringify(labels)} ${value}`);
    }
  }
  console.log("\ndemo complete");
}

if (import.meta.main) await main();
