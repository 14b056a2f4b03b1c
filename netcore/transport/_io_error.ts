/**
 * Deno's I/O errors as {@linkcode NetworkError}s, so TCP callers see one
 * error type with stable codes.
 *
 * @module
 */

import { NetworkError, type NetworkErrorCode } from "../network_error.ts";

/**
 * Maps a Deno I/O error to a {@linkcode NetworkError}; `fallback` is the code
 * for anything unrecognised.
 *
 * @example
 * ```ts
 * import { ioError } from "./_io_error.ts";
 * const err = ioError(new Deno.errors.ConnectionReset("reset"), "read", "CONNECTION_CLOSED");
 * console.log(err.code); // "CONNECTION_RESET"
 * ```
 */
export function ioError(err: unknown, context: string, fallback: NetworkErrorCode): NetworkError {
  if (err instanceof NetworkError) return err;
  let code = fallback;
  if (err instanceof Deno.errors.ConnectionRefused) code = "DIAL_REFUSED";
  else if (err instanceof Deno.errors.TimedOut) code = "DIAL_TIMEOUT";
  else if (err instanceof Deno.errors.AddrInUse) code = "ADDRESS_IN_USE";
  else if (err instanceof Deno.errors.AddrNotAvailable) code = "BAD_ADDRESS";
  else if (
    err instanceof Deno.errors.ConnectionReset || err instanceof Deno.errors.BrokenPipe ||
    err instanceof Deno.errors.ConnectionAborted
  ) code = "CONNECTION_RESET";
  else if (
    err instanceof Deno.errors.BadResource || err instanceof Deno.errors.Interrupted ||
    err instanceof Deno.errors.NotConnected
  ) code = "CONNECTION_CLOSED";
  return NetworkError.wrap(err, code, context);
}

/**
 * A dial's failure as the dial reports it: a time-out, whoever set the
 * deadline (ours or the caller's `AbortSignal.timeout`), is `DIAL_TIMEOUT`.
 *
 * @example
 * ```ts
 * import { dialError } from "./_io_error.ts";
 * import { NetworkError } from "../network_error.ts";
 * console.log(dialError(new NetworkError("TIMEOUT", "slow")).code); // "DIAL_TIMEOUT"
 * ```
 */
export function dialError(error: NetworkError): NetworkError {
  if (error.code !== "TIMEOUT") return error;
  return new NetworkError("DIAL_TIMEOUT", error.message, { cause: error });
}
