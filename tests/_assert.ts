/**
 * The assertions the tests use, with `@std/assert`'s names (JSR is
 * unreachable here), on top of `node:assert`.
 */

import nodeAssert from "node:assert";
import { NetworkError, type NetworkErrorCode } from "../netcore/network_error.ts";

/** Fails unless `condition` is truthy. */
export function assert(condition: unknown, message = "assertion failed"): asserts condition {
  nodeAssert.ok(condition, message);
}

/** Deep, strict equality (typed arrays compared by content). */
export function assertEquals<T>(actual: T, expected: T, message?: string): void {
  nodeAssert.deepStrictEqual(actual, expected, message);
}

/** Deep inequality. */
export function assertNotEquals<T>(actual: T, expected: T, message?: string): void {
  nodeAssert.notDeepStrictEqual(actual, expected, message);
}

// deno-lint-ignore no-explicit-any
type ErrorClass<E extends Error> = new (...args: any[]) => E;

function checkError<E extends Error>(
  err: unknown,
  ErrorType: ErrorClass<E> | undefined,
  includes: string | undefined,
  prefix: string,
): E {
  if (ErrorType !== undefined && !(err instanceof ErrorType)) {
    throw new nodeAssert.AssertionError({
      message: `${prefix}expected ${ErrorType.name}, got ${
        err instanceof Error ? err.stack : String(err)
      }`,
    });
  }
  if (includes !== undefined && !(err instanceof Error && err.message.includes(includes))) {
    throw new nodeAssert.AssertionError({
      message: `${prefix}expected an error message including ${JSON.stringify(includes)}, got ${
        err instanceof Error ? JSON.stringify(err.message) : String(err)
      }`,
    });
  }
  return err as E;
}

/**
 * Awaits `fn()` and fails unless it rejects (with `ErrorType`, whose message
 * includes `includes`); `message` names the case in the failure.
 */
export async function assertRejects<E extends Error = Error>(
  fn: () => Promise<unknown>,
  ErrorType?: ErrorClass<E>,
  includes?: string,
  message?: string,
): Promise<E> {
  const prefix = message === undefined ? "" : `${message}: `;
  try {
    await fn();
  } catch (err) {
    return checkError(err, ErrorType, includes, prefix);
  }
  throw new nodeAssert.AssertionError({ message: `${prefix}expected the promise to reject` });
}

/**
 * Calls `fn()` and fails unless it throws (with `ErrorType`, whose message
 * includes `includes`); `message` names the case in the failure.
 */
export function assertThrows<E extends Error = Error>(
  fn: () => unknown,
  ErrorType?: ErrorClass<E>,
  includes?: string,
  message?: string,
): E {
  const prefix = message === undefined ? "" : `${message}: `;
  try {
    fn();
  } catch (err) {
    return checkError(err, ErrorType, includes, prefix);
  }
  throw new nodeAssert.AssertionError({ message: `${prefix}expected the function to throw` });
}

/** Fails unless `err` is a `NetworkError` with one of `codes`. */
export function assertNetworkError(err: unknown, ...codes: NetworkErrorCode[]): NetworkError {
  if (!NetworkError.is(err, ...codes)) {
    throw new nodeAssert.AssertionError({
      message: `expected NetworkError ${codes.join("|")}, got ${
        err instanceof Error ? err.stack : String(err)
      }`,
    });
  }
  return err;
}

/**
 * Fails unless `work` (a promise, or a function returning one) rejects with a
 * `NetworkError` of one of `codes`; returns that error.
 *
 * @example
 * ```ts
 * await assertRejectsCode(reader.readExactly(4), "CONNECTION_CLOSED");
 * ```
 */
export async function assertRejectsCode(
  work: Promise<unknown> | (() => Promise<unknown>),
  ...codes: NetworkErrorCode[]
): Promise<NetworkError> {
  try {
    await (typeof work === "function" ? work() : work);
  } catch (err) {
    return assertNetworkError(err, ...codes);
  }
  throw new nodeAssert.AssertionError({ message: `expected a rejection with ${codes.join("|")}` });
}

/**
 * Calls `fn()` and fails unless it throws a `NetworkError` with `codes` (one
 * code or a list of acceptable ones); returns that error. `message` names the
 * case in the failure, for table-driven tests.
 *
 * @example
 * ```ts
 * assertThrowsCode(() => decodeVarint(new Uint8Array([0x80])), "PROTOCOL_VIOLATION");
 * assertThrowsCode(() => PeerId.fromBytes(bytes), ["BAD_ADDRESS"], "trailing byte");
 * ```
 */
export function assertThrowsCode(
  fn: () => unknown,
  codes: NetworkErrorCode | readonly NetworkErrorCode[],
  message?: string,
): NetworkError {
  const list = typeof codes === "string" ? [codes] : codes;
  const prefix = message === undefined ? "" : `${message}: `;
  try {
    fn();
  } catch (err) {
    if (NetworkError.is(err, ...list)) return err;
    throw new nodeAssert.AssertionError({
      message: `${prefix}expected NetworkError ${list.join("|")}, got ${
        err instanceof Error ? err.stack : String(err)
      }`,
    });
  }
  throw new nodeAssert.AssertionError({
    message: `${prefix}expected a throw with ${list.join("|")}, nothing was thrown`,
  });
}
