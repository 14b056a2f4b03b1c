/**
 * Argument checks shared by the queues. Internal to `netcore/channel`.
 *
 * @module
 */

/** Throws unless `n` is a positive integer (or, with `infinite`, `Infinity`). */
export function checkBound(what: string, n: number, infinite = false): void {
  if (!(Number.isSafeInteger(n) && n > 0) && !(infinite && n === Infinity)) {
    throw new RangeError(`${what} must be a positive integer, got ${n}`);
  }
}

/** Throws for `undefined`, which a pop reserves for "closed and drained". */
export function checkItem(item: unknown): void {
  if (item === undefined) throw new TypeError("a queue cannot hold undefined");
}
