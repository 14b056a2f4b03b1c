/**
 * Byte mutations for fuzzing decoders: flip, truncate, insert and delete at
 * random places, so inputs stay close to valid and reach the deep checks that
 * random bytes rarely do.
 */

import fc from "fast-check";
import { concat } from "./_bytes.ts";

/** One edit of a byte string; `at` is taken modulo the length. */
export type Mutation =
  | { kind: "flip"; at: number; xor: number }
  | { kind: "truncate"; at: number }
  | { kind: "insert"; at: number; byte: number }
  | { kind: "delete"; at: number };

/** An arbitrary {@linkcode Mutation}. */
export const mutation: fc.Arbitrary<Mutation> = fc.oneof(
  fc.record({
    kind: fc.constant("flip" as const),
    at: fc.nat(),
    xor: fc.integer({ min: 1, max: 255 }),
  }),
  fc.record({ kind: fc.constant("truncate" as const), at: fc.nat() }),
  fc.record({
    kind: fc.constant("insert" as const),
    at: fc.nat(),
    byte: fc.integer({ min: 0, max: 255 }),
  }),
  fc.record({ kind: fc.constant("delete" as const), at: fc.nat() }),
);

/** `bytes` with `mutations` applied in order (a copy; `bytes` is not changed). */
export function mutate(bytes: Uint8Array, mutations: readonly Mutation[]): Uint8Array {
  let out: Uint8Array = bytes.slice();
  for (const m of mutations) {
    const at = m.at % (out.length + 1);
    if (m.kind === "flip" && at < out.length) out[at] ^= m.xor;
    if (m.kind === "truncate") out = out.subarray(0, at);
    if (m.kind === "insert") {
      out = concat([out.subarray(0, at), new Uint8Array([m.byte]), out.subarray(at)]);
    }
    if (m.kind === "delete" && at < out.length) {
      out = concat([out.subarray(0, at), out.subarray(at + 1)]);
    }
  }
  return out;
}
