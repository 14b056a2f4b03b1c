import { assert, assertEquals, assertRejects } from "./_assert.ts";
import { connectedPair } from "./_pair.ts";
import { randomBytes, readAll } from "./_bytes.ts";
import { handlePing, PING_LENGTH, Pinger } from "../protocols/ping.ts";
import { handlePerf, runPerf } from "../protocols/perf.ts";
import { handleEcho } from "../protocols/echo.ts";
import { NetworkError } from "../netcore/network_error.ts";
import { delay } from "../netcore/_async.ts";

Deno.test("ping: the listener echoes each 32-byte ping; several pings share one stream", async () => {
  const [dialer, listener] = await connectedPair();
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
  const [dialer, listener] = await connectedPair();
  const served = handlePing(listener);
  const pinger = new Pinger(dialer);
  await pinger.ping();
  await pinger.closeWrite();
  // The handler returns on our end of stream, without a further ping.
  await served;
  await assertRejects(() => pinger.ping(), TypeError);
  // Nothing reads our side now: close() after closeWrite() drains the
  // listener's end, so closing the connection does not wait out its grace.
  await pinger.close();
  await Promise.all([dialer.close(), listener.close()]);
});

Deno.test("ping: a listener that answers with other bytes is a protocol violation", async () => {
  const [dialer, listener] = await connectedPair();
  const liar = (async () => {
    const reader = listener.readable.getReader();
    const writer = listener.writable.getWriter();
    const { value } = await reader.read();
    await writer.write(new Uint8Array(value!.length).fill(7));
    reader.releaseLock();
    writer.releaseLock();
  })();
  const pinger = new Pinger(dialer);
  await assertRejects(() => pinger.ping(), NetworkError, "differs");
  await liar;
  dialer.abort();
  listener.abort();
});

Deno.test("ping: a silent listener times the ping out with TIMEOUT", async () => {
  const [dialer, listener] = await connectedPair();
  const pinger = new Pinger(dialer, { timeout: 50 });
  const err = await assertRejects(() => pinger.ping(), NetworkError);
  assertEquals(err.code, "TIMEOUT");
  dialer.abort();
  listener.abort();
});

Deno.test("ping: the time limit is per ping, however many came before", async () => {
  const [dialer, listener] = await connectedPair();
  let answers = 4;
  const slow = (async () => {
    const reader = listener.readable.getReader();
    const writer = listener.writable.getWriter();
    for (; answers > 0; answers--) {
      const { value } = await reader.read();
      await delay(25);
      await writer.write(value!);
    }
  })();
  const pinger = new Pinger(dialer, { timeout: 60 });
  // 4 x 25 ms is past the limit in all, but no single ping is.
  for (let i = 0; i < 4; i++) await pinger.ping();
  await slow;
  // Now nobody answers: this ping fails, a full time limit after it started.
  const started = performance.now();
  const err = await assertRejects(() => pinger.ping(), NetworkError);
  assertEquals(err.code, "TIMEOUT");
  const waited = performance.now() - started;
  assert(waited >= 55, `timed out after ${waited.toFixed(1)} ms`);
  dialer.abort();
  listener.abort();
});

Deno.test("ping: the listener answers pings split across writes", async () => {
  const [dialer, listener] = await connectedPair();
  const served = handlePing(listener);
  const writer = dialer.writable.getWriter();
  const reader = dialer.readable.getReader();
  const ping = crypto.getRandomValues(new Uint8Array(PING_LENGTH));
  await writer.write(ping.slice(0, 5));
  await writer.write(ping.slice(5));
  const { value } = await reader.read();
  assertEquals(value, ping);
  await writer.close();
  assertEquals((await reader.read()).done, true);
  await served;
});

Deno.test("perf: the server drains the upload, then sends exactly the bytes asked for", async () => {
  const [dialer, listener] = await connectedPair();
  const served = handlePerf(listener);
  const result = await runPerf(dialer, { upload: 3_000_000, download: 5_000_001 });
  await served;
  assertEquals(result.uploadBytes, 3_000_000);
  assertEquals(result.downloadBytes, 5_000_001);
  assert(result.uploadMs > 0 && result.downloadMs >= 0);
});

Deno.test("perf: nothing to download ends when the server closes", async () => {
  const [dialer, listener] = await connectedPair();
  const served = handlePerf(listener);
  const result = await runPerf(dialer, { upload: 100_000, download: 0 });
  await served;
  assertEquals(result.downloadBytes, 0);
});

Deno.test("perf: a download over the server's limit is refused with LIMIT_EXCEEDED", async () => {
  const [dialer, listener] = await connectedPair();
  const served = handlePerf(listener, { maxDownload: 1000 });
  const client = runPerf(dialer, { upload: 10, download: 1001 }).catch((err) => err);
  const err = await assertRejects(() => served, NetworkError);
  assertEquals(err.code, "LIMIT_EXCEEDED");
  listener.abort();
  assert(await client instanceof Error);
});

Deno.test("echo: every byte comes back, then the stream ends", async () => {
  const [dialer, listener] = await connectedPair();
  const served = handleEcho(listener);
  const data = randomBytes(1 << 20);
  const writer = dialer.writable.getWriter();
  const sending = (async () => {
    for (let i = 0; i < data.length; i += 10_000) await writer.write(data.slice(i, i + 10_000));
    await writer.close();
  })();
  const received = await readAll(dialer.readable);
  await sending;
  await served;
  assertEquals(received, data);
});
