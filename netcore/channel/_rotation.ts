/**
 * A round-robin order over a changing set: a doubly linked list whose nodes
 * the members own, so joining, leaving and "take the first, put it back at
 * the end" are all O(1). `KeyedQueue` keeps two: the keys holding items
 * (pop order) and the keys with pushes waiting for room (admission order).
 * Because a key leaves the moment it has nothing, neither list ever holds
 * a stale entry, and a key that is gone costs nothing.
 *
 * Internal to `netcore/channel`.
 *
 * @module
 */

/** A member's place in one {@linkcode Rotation}. Internal. */
export class Link<T> {
  /** The neighbour towards the front. */
  prev: Link<T> | undefined = undefined;
  /** The neighbour towards the back. */
  next: Link<T> | undefined = undefined;
  /** Whether the link is in its rotation now. */
  linked = false;

  /** @param value the member this link places */
  constructor(readonly value: T) {}
}

/** A round-robin order of members, each placed by its own {@linkcode Link}. Internal. */
export class Rotation<T> {
  #head: Link<T> | undefined = undefined;
  #tail: Link<T> | undefined = undefined;
  #length = 0;

  /** Members in the rotation. */
  get length(): number {
    return this.#length;
  }

  /** Puts `link` at the back. It must not be linked already. */
  append(link: Link<T>): void {
    link.prev = this.#tail;
    link.next = undefined;
    if (this.#tail === undefined) this.#head = link;
    else this.#tail.next = link;
    this.#tail = link;
    link.linked = true;
    this.#length++;
  }

  /** Takes `link` out, wherever it is; nothing if it is not linked. */
  remove(link: Link<T>): void {
    if (!link.linked) return;
    if (link.prev === undefined) this.#head = link.next;
    else link.prev.next = link.next;
    if (link.next === undefined) this.#tail = link.prev;
    else link.next.prev = link.prev;
    link.prev = link.next = undefined;
    link.linked = false;
    this.#length--;
  }

  /** Takes the front member out and returns it, if any. */
  shift(): T | undefined {
    const link = this.#head;
    if (link === undefined) return undefined;
    this.remove(link);
    return link.value;
  }

  /** Members front to back. */
  *[Symbol.iterator](): IterableIterator<T> {
    for (let link = this.#head; link !== undefined; link = link.next) yield link.value;
  }

  /** Unlinks every member. */
  clear(): void {
    for (let link = this.#head; link !== undefined;) {
      const next = link.next;
      link.prev = link.next = undefined;
      link.linked = false;
      link = next;
    }
    this.#head = this.#tail = undefined;
    this.#length = 0;
  }
}
