/**
 * `BAD_CONFIG` errors that name the field at fault.
 *
 * @module
 */

import { NetworkError } from "../netcore/network_error.ts";

/**
 * A `BAD_CONFIG` error whose message starts with `path`, for the failure
 * `err` of reading that field. `NetworkError.wrap` would return a parser's
 * own `NetworkError` unchanged (`BAD_ADDRESS` from `Multiaddr.parse` or
 * `PeerId.parse`, say), losing both the code and the field; this re-codes it.
 */
export function configError(err: unknown, path: string): NetworkError {
  if (NetworkError.is(err, "BAD_CONFIG") && err.message.startsWith(path)) return err;
  const detail = err instanceof Error ? err.message : String(err);
  return new NetworkError("BAD_CONFIG", `${path}: ${detail}`, { cause: err });
}
