/**
 * ping (`/ipfs/ping/1.0.0`), perf (`/perf/1.0.0`) and echo (`/echo/1.0.0`)
 * on a plain connection, as they run on a negotiated stream: the dialer's
 * side and the listener's side, and peers that misbehave.
 */

import { setImmediate } from "node:timers";
import { assert, assertEquals, assertRejects, assertRejectsCode } from "./_assert.ts";
import { memoryPair } from "./_pair.ts";
import { randomBytes } from "./_bytes.ts";
import { echoThrough } from "./_streams.ts";
import { handlePing, PING_LENGTH, Pinger } from "../protocols/ping.ts";
import { handlePerf, runPerf } from "../protocols/perf.ts";
import { handleEcho } from "../protocols/echo.ts";
import { ByteReader } from "../netcore/byte_reader.ts";
import { NetworkError } from "../netcore/network_error.ts";
import { delay } from "../netcore/_async.ts";

/** Resolves in the next turn of the event loop, after the cork of this one was written. */
function nextTurn(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}

Deno.test("ping: the listener echoes each 32-byte ping; several pings share one stream", async () => {
  const [dialer, listener] = memoryPair();
  const served = handlePing(listener);
  const pinger = new Pinger(dialer);
  for (let i = 0; i < 20; i++) {
    const rtt = await pinger.ping();
    assert(rtt >= 0 && rtt < 5_000, `rtt ${rtt}`);
  }
  await pinger.close();
  await served;
  await Promise.all([dialer.close(), listener.close()]);
});

Deno.test("ping: closeWrite ends the pings at once; the listener sees the end and closes its side", async () => {
  const [dialer, listener] = memoryPair();
  const served = handlePing(listener);
  const pinger = new Pinger(dialer);
  await pinger.ping();
  await pinger.closeWrite();
  // The handler returns on our end of stream, without a further ping.
  await served;
  await assertRejectsCode(() => pinger.ping(), "CONNECTION_CLOSED");
  // Nothing reads our side now: close() after closeWrite() drains the
  // listener's end, so closing the connection does not wait out its grace.
  await pinger.close();
  await Promise.all([dialer.close(), listener.close()]);
});

Deno.test("ping: a listener that answers with other bytes is a protocol violation", async () => {
  const [dialer, listener] = memoryPair();
  const liar = (async () => {
    const ping = await new ByteReader(listener).readExactly(PING_LENGTH);
    await listener.write(new Uint8Array(ping.length).fill(7));
  })();
  const pinger = new Pinger(dialer);
  await assertRejects(() => pinger.ping(), NetworkError, "differs");
  await liar;
  dialer.abort();
  listener.abort();
});

Deno.test("ping: a silent listener times the ping out with TIMEOUT", async () => {
  const [dialer, listener] = memoryPair();
  const pinger = new Pinger(dialer, { timeout: 50 });
  await assertRejectsCode(() => pinger.ping(), "TIMEOUT");
  // The stream is failed for good: a late answer would be taken for the next one's.
  await assertRejectsCode(() => pinger.ping(), "TIMEOUT");
  dialer.abort();
  listener.abort();
});

Deno.test("ping: the time limit is per ping, however many came before", async () => {
  const [dialer, listener] = memoryPair();
  let answers = 4;
  const slow = (async () => {
    const reader = new ByteReader(listener);
    for (; answers > 0; answers--) {
      const ping = await reader.readExactly(PING_LENGTH);
      await delay(25);
      await listener.write(ping);
    }
  })();
  const pinger = new Pinger(dialer, { timeout: 60 });
  // 4 x 25 ms is past the limit in all, but no single ping is.
  for (let i = 0; i < 4; i++) await pinger.ping();
  await slow;
  // Now nobody answers: this ping fails, a full time limit after it started.
  const started = performance.now();
  await assertRejectsCode(() => pinger.ping(), "TIMEOUT");
  const waited = performance.now() - started;
  assert(waited >= 55, `timed out after ${waited.toFixed(1)} ms`);
  dialer.abort();
  listener.abort();
});

Deno.test("ping: the listener answers pings split across writes", async () => {
  const [dialer, listener] = memoryPair();
  const served = handlePing(listener);
  const ping = crypto.getRandomValues(new Uint8Array(PING_LENGTH));
  // Two turns, so two socket writes: the listener reads two chunks.
  await dialer.write(ping.slice(0, 5));
  await nextTurn();
  await dialer.write(ping.slice(5));
  const reader = new ByteReader(dialer);
  assertEquals(await reader.readExactly(PING_LENGTH), ping);
  await dialer.closeWrite();
  assertEquals(await reader.readSome(), undefined, "the listener ends its side after ours");
  await served;
  await Promise.all([dialer.close(), listener.close()]);
});

Deno.test("perf: the server drains the upload, then sends exactly the bytes asked for", async () => {
  const [dialer, listener] = memoryPair();
  const served = handlePerf(listener);
  const result = await runPerf(dialer, { upload: 3_000_000, download: 5_000_001 });
  await served;
  assertEquals(result.uploadBytes, 3_000_000);
  assertEquals(result.downloadBytes, 5_000_001);
  assert(result.uploadMs > 0 && result.downloadMs >= 0);
  await Promise.all([dialer.close(), listener.close()]);
});

Deno.test("perf: nothing to download ends when the server closes", async () => {
  const [dialer, listener] = memoryPair();
  const served = handlePerf(listener);
  const result = await runPerf(dialer, { upload: 100_000, download: 0 });
  await served;
  assertEquals(result.downloadBytes, 0);
  await Promise.all([dialer.close(), listener.close()]);
});

Deno.test("perf: a download over the server's limit is refused with LIMIT_EXCEEDED", async () => {
  const [dialer, listener] = memoryPair();
  const served = handlePerf(listener, { maxDownload: 1000 });
  const client = runPerf(dialer, { upload: 10, download: 1001 }).catch((err) => err);
  await assertRejectsCode(served, "LIMIT_EXCEEDED");
  listener.abort();
  assert(await client instanceof NetworkError, "the client fails with a NetworkError");
  dialer.abort();
});

Deno.test("perf: a server that sends fewer bytes than asked for is a protocol violation", async () => {
  const [dialer, listener] = memoryPair();
  const short = (async () => {
    const reader = new ByteReader(listener);
    await reader.readExactly(8);
    while ((await reader.readSome()) !== undefined) {
      // drain the upload
    }
    await listener.write(new Uint8Array(99));
    await listener.closeWrite();
  })();
  await assertRejectsCode(runPerf(dialer, { upload: 10, download: 100 }), "PROTOCOL_VIOLATION");
  await short;
  await Promise.all([dialer.close(), listener.close()]);
});

Deno.test("echo: every byte comes back, then the stream ends", async () => {
  const [dialer, listener] = memoryPair();
  const served = handleEcho(listener);
  const data = randomBytes(1 << 20);
  assertEquals(await echoThrough(dialer, data), data);
  await served;
  await Promise.all([dialer.close(), listener.close()]);
});
