/**
 * A double-ended queue on a ring buffer: O(1) at both ends, no `Array.shift`
 * copies. It starts small and doubles as it fills, so a key that only ever
 * holds one item costs a few slots, not its whole capacity (the lesson
 * behind Aptos's `VecDeque::with_capacity(1)`: many transient peers).
 *
 * It has no bound of its own: every owner checks its bound before `push`.
 * Internal to `netcore/channel`.
 *
 * @module
 */

const INITIAL_SLOTS = 4;

/** A ring-buffer deque. Internal. */
export class Deque<T> {
  #slots: (T | undefined)[] = new Array(INITIAL_SLOTS);
  #head = 0;
  #length = 0;

  /** Items held. */
  get length(): number {
    return this.#length;
  }

  /** Appends `item` at the back. */
  push(item: T): void {
    if (this.#length === this.#slots.length) this.#grow();
    this.#slots[(this.#head + this.#length) & (this.#slots.length - 1)] = item;
    this.#length++;
  }

  /** Removes and returns the front item (the oldest), if any. */
  shift(): T | undefined {
    if (this.#length === 0) return undefined;
    const item = this.#slots[this.#head];
    this.#slots[this.#head] = undefined;
    this.#head = (this.#head + 1) & (this.#slots.length - 1);
    this.#length--;
    return item;
  }

  /** Removes and returns the back item (the newest), if any. */
  pop(): T | undefined {
    if (this.#length === 0) return undefined;
    const index = (this.#head + this.#length - 1) & (this.#slots.length - 1);
    const item = this.#slots[index];
    this.#slots[index] = undefined;
    this.#length--;
    return item;
  }

  /** Removes the first occurrence of `item` (O(n)); whether it was there. */
  remove(item: T): boolean {
    const mask = this.#slots.length - 1;
    for (let i = 0; i < this.#length; i++) {
      if (this.#slots[(this.#head + i) & mask] !== item) continue;
      for (let j = i; j < this.#length - 1; j++) {
        this.#slots[(this.#head + j) & mask] = this.#slots[(this.#head + j + 1) & mask];
      }
      this.#slots[(this.#head + this.#length - 1) & mask] = undefined;
      this.#length--;
      return true;
    }
    return false;
  }

  /** Empties the deque; returns what it held, oldest first. */
  drain(): T[] {
    const items = new Array<T>(this.#length);
    for (let i = 0; i < items.length; i++) items[i] = this.shift() as T;
    return items;
  }

  // Doubles the slots, unrolling the ring so the front is at index 0. The
  // length stays a power of two, so an index wraps with a mask.
  #grow(): void {
    const old = this.#slots;
    const slots: (T | undefined)[] = new Array(old.length * 2);
    for (let i = 0; i < this.#length; i++) slots[i] = old[(this.#head + i) & (old.length - 1)];
    this.#slots = slots;
    this.#head = 0;
  }
}
