/**
 * NetworkError: a real Error with a stable code; `is()` tests type and code;
 * `wrap()` keeps NetworkErrors as they are and wraps anything else with the
 * original as `cause`.
 */

import { NetworkError } from "../netcore/network_error.ts";
import { assertEquals } from "./_assert.ts";

Deno.test("NetworkError is an Error with name, code, message and an optional cause", () => {
  const cause = new Error("ECONNREFUSED");
  const err = new NetworkError("DIAL_REFUSED", "nothing listens on /ip4/127.0.0.1/tcp/1", {
    cause,
  });
  if (!(err instanceof Error)) throw new Error("not an Error");
  assertEquals(
    [err.name, err.code, err.message],
    ["NetworkError", "DIAL_REFUSED", "nothing listens on /ip4/127.0.0.1/tcp/1"],
  );
  if (err.cause !== cause) throw new Error("cause lost");
  if (typeof err.stack !== "string" || !err.stack.includes("NetworkError")) {
    throw new Error("stack should name the error");
  }
  const bare = new NetworkError("TIMEOUT", "slow");
  assertEquals("cause" in bare, false, "no cause given, no cause property:");
});

Deno.test("NetworkError.is without codes: any NetworkError, nothing else", () => {
  assertEquals(NetworkError.is(new NetworkError("ABORTED", "x")), true);
  for (
    const other of [
      new Error("x"),
      new TypeError("x"),
      { code: "ABORTED" },
      "ABORTED",
      null,
      undefined,
    ]
  ) {
    assertEquals(NetworkError.is(other), false, `${String(other)}:`);
  }
});

Deno.test("NetworkError.is with codes: true only for one of those codes", () => {
  const err: unknown = new NetworkError("TIMEOUT", "slow");
  assertEquals(NetworkError.is(err, "TIMEOUT"), true);
  assertEquals(NetworkError.is(err, "DIAL_TIMEOUT", "TIMEOUT"), true);
  assertEquals(NetworkError.is(err, "DIAL_TIMEOUT"), false);
  assertEquals(NetworkError.is(err, "CONNECTION_CLOSED", "CONNECTION_RESET"), false);
  // An object that merely looks like one is not one.
  const lookalike = Object.assign(new Error("x"), { code: "TIMEOUT", name: "NetworkError" });
  assertEquals(NetworkError.is(lookalike, "TIMEOUT"), false);
});

Deno.test("NetworkError.is narrows the type so .code can be read", () => {
  const err: unknown = new NetworkError("LIMIT_EXCEEDED", "too many streams");
  if (NetworkError.is(err)) assertEquals(err.code, "LIMIT_EXCEEDED");
  else throw new Error("should have matched");
});

Deno.test("NetworkError.wrap returns a NetworkError unchanged, whatever code is asked for", () => {
  const original = new NetworkError("CONNECTION_RESET", "peer reset");
  const wrapped = NetworkError.wrap(original, "PROTOCOL_VIOLATION", "decoding frame");
  if (wrapped !== original) throw new Error("expected the same object");
  assertEquals([wrapped.code, wrapped.message], ["CONNECTION_RESET", "peer reset"]);
});

Deno.test("NetworkError.wrap wraps any other Error with the code, context and cause", () => {
  const boom = new TypeError("offset is out of bounds");
  const wrapped = NetworkError.wrap(boom, "PROTOCOL_VIOLATION", "decoding frame");
  assertEquals(
    [wrapped.name, wrapped.code, wrapped.message],
    ["NetworkError", "PROTOCOL_VIOLATION", "decoding frame: offset is out of bounds"],
  );
  if (wrapped.cause !== boom) throw new Error("cause lost");
});

Deno.test("NetworkError.wrap wraps thrown non-Errors too, keeping them as cause", () => {
  for (const thrown of ["a string", 42, null, undefined, { reason: "x" }]) {
    const wrapped = NetworkError.wrap(thrown, "CONNECTION_RESET", "read failed");
    assertEquals(wrapped.code, "CONNECTION_RESET");
    assertEquals(wrapped.message, `read failed: ${String(thrown)}`);
    if (thrown !== undefined && wrapped.cause !== thrown) throw new Error("cause lost");
  }
});
