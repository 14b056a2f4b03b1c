/**
 * The Noise transport phase: after a handshake, every byte in either
 * direction travels as an authenticated, encrypted transport message framed
 * as in libp2p-noise (2-byte big-endian length, then ciphertext||tag, at most
 * 65535 bytes). Both handshake profiles of this folder (libp2p XX and the
 * validator IK) hand their connection over to a {@linkcode SecureChannel}.
 *
 * The channel is a {@linkcode Connection} like the one under it (the same
 * byte methods, and the Web Streams edge made over them), so it stacks on
 * any transport and anything that runs over a raw connection (negotiation,
 * yamux) runs over it unchanged.
 *
 * Hot path notes (why the code looks the way it does):
 * - a write is encrypted at once, frame by frame, into one buffer
 *   `[len|ct|len|ct...]` handed down whole; the socket below corks what one
 *   turn writes into one system call, so the channel holds nothing back;
 * - a buffer the connection below keeps (a large one) comes back to a small
 *   pool when its write resolves; up to a high-water mark of such bytes the
 *   channel keeps taking writes, so encryption runs ahead of the socket;
 * - ciphertext is read into one reused buffer; reads are pulled: the next
 *   frame is read only when the consumer asks, so a slow consumer never
 *   makes us buffer. The channel reads the connection below itself (the
 *   handshake's reader only hands over what it had buffered), so a read
 *   waiting for the peer is one async frame here and the socket's below.
 *
 * Memory of a quiet channel (a thousand connections each hold one):
 * - the read buffer starts at 4 KiB and doubles, up to 512 KiB, while
 *   reads fill it; the grown buffer is kept for the next burst while the
 *   channel is busy, but a read that waits for the peer after small
 *   traffic waits in the 4 KiB one, and the grown one is dropped after
 *   about a second unused (`_idle_release.ts`);
 * - a small write is sealed into a buffer shared by every channel of the
 *   process (the connection below copies small chunks, so it comes back at
 *   once); large writes take buffers from the channel's own pool, made on
 *   first use and dropped after about a second unused.
 *
 * @module
 */

import { BufferPool } from "../_bytes.ts";
import type { ByteReader } from "../byte_reader.ts";
import { NetworkError } from "../network_error.ts";
import type { Multiaddr } from "../multiaddr.ts";
import { forgetHolder, keptForReuse, releaseIdle } from "../transport/_idle_release.ts";
import { ByteConnection } from "../transport/byte_connection.ts";
import type { Connection } from "../transport/connection.ts";
import { EMPTY, LENGTH_PREFIX, MAX_PLAINTEXT, TAG_LENGTH } from "./_frame.ts";

/**
 * What the channel needs of a Noise `CipherState`: the transport-phase
 * ENCRYPT and DECRYPT with the nonce kept inside. `CipherState` from
 * `cipher_state.ts` has this shape.
 *
 * @example
 * ```ts
 * import { CipherState } from "./cipher_state.ts";
 * import { getCryptoBackend } from "./crypto.ts";
 * import type { TransportCipher } from "./secure_channel.ts";
 * const key = new Uint8Array(32);
 * const cipher = getCryptoBackend().cipher("ChaChaPoly");
 * const send: TransportCipher = new CipherState(cipher, key);
 * const receive: TransportCipher = new CipherState(cipher, key);
 * const ct = send.encryptWithAd(new Uint8Array(0), new Uint8Array([1, 2]));
 * console.log(receive.decryptWithAd(new Uint8Array(0), ct)); // Uint8Array [ 1, 2 ]
 * ```
 */
export interface TransportCipher {
  /**
   * ciphertext||tag of `plaintext`; writes into `out` (exactly
   * `plaintext.length + 16` bytes here) when given.
   */
  encryptWithAd(ad: Uint8Array, plaintext: Uint8Array, out?: Uint8Array): Uint8Array;
  /** The plaintext; throws on a bad tag. */
  decryptWithAd(ad: Uint8Array, ciphertext: Uint8Array): Uint8Array;
}

/** Small writes of one turn, sealed together. */
interface Batch {
  plaintext: Uint8Array;
  used: number;
  /** The message, once sealed. */
  sealed: Uint8Array | undefined;
}

/** Once this many encrypted bytes are held by the connection below, writes wait. */
const WRITE_HIGH_WATER = 1024 * 1024;
/** Largest part of one write encrypted into one buffer: 16 full frames (about 1 MiB). */
const WRITE_SLICE = 16 * MAX_PLAINTEXT;
/** Smallest write buffer, so bursts of small writes reuse one. */
const MIN_BUFFER = 16 * 1024;
/**
 * Large write buffers a channel keeps for reuse once the connection below
 * gave them back, in count and bytes: enough for what the connection holds
 * at the high water mark, so a bulk writer allocates none per write.
 */
const POOL_SIZE = 32;
const POOL_BYTES = 2 * WRITE_HIGH_WATER;
/**
 * Buffers of small writes (sealed in at most `MIN_BUFFER` bytes), shared by
 * every channel: the connection below copies such a chunk (it returns
 * `undefined`), so the buffer comes back before the next write, whichever
 * channel makes it. A few cover the writes the connection holds a while.
 */
const SMALL_WRITES = new BufferPool(4, MIN_BUFFER);
/**
 * Writes up to this size made in one turn are sealed together, in one
 * Noise message, when the turn's writes leave (over a connection that can
 * defer a write): a yamux frame each would otherwise cost a message each.
 */
const BATCHED_WRITE_MAX = 16 * 1024;
/** A batch's first plaintext buffer; it grows (up to a full message) for larger batches. */
const FIRST_BATCH_BUFFER = 4 * 1024;
/** The read buffer a channel starts with, and waits for the peer in after small traffic. */
const READ_BUFFER = 4 * 1024;
/** The largest the read buffer grows to while reads fill it. */
const READ_BUFFER_MAX = 512 * 1024;

/**
 * What a handshake hands to {@linkcode SecureChannel}.
 *
 * @example
 * ```ts
 * import { SecureChannel, type SecureChannelInit } from "./secure_channel.ts";
 * import type { HandshakeState } from "./handshake_state.ts";
 * import type { ByteReader } from "../byte_reader.ts";
 * import type { Connection } from "../transport/connection.ts";
 * // At the end of a handshake on `connection`, with `hs` complete (initiator side):
 * function channelOf(hs: HandshakeState, connection: Connection, reader: ByteReader) {
 *   const [initiatorToResponder, responderToInitiator] = hs.split();
 *   const init: SecureChannelInit = {
 *     connection,
 *     reader,
 *     encrypter: initiatorToResponder,
 *     decrypter: responderToInitiator,
 *     remoteStaticKey: hs.remoteStaticKey!,
 *     handshakeHash: hs.handshakeHash,
 *   };
 *   return new SecureChannel(init);
 * }
 * ```
 */
export interface SecureChannelInit {
  /** The connection the handshake ran on. */
  connection: Connection;
  /**
   * The reader the handshake used on `connection`: bytes the peer sent
   * right after its last handshake message may already sit in it.
   */
  reader: ByteReader;
  /** Encrypts what we send. */
  encrypter: TransportCipher;
  /** Decrypts what we receive. */
  decrypter: TransportCipher;
  /** The peer's static Noise (X25519) public key, authenticated by the handshake. */
  remoteStaticKey: Uint8Array;
  /** The handshake hash `h` at the end of the handshake: a unique session id. */
  handshakeHash: Uint8Array;
}

/** Read side states; terminal: `ended`, `failed`. */
type ReadState = "open" | "ended" | "failed";
/** Write side states; terminal: `closed`, `failed`. */
type WriteState = "open" | "closed" | "failed";

/**
 * An encrypted, authenticated {@linkcode Connection} over another one.
 *
 * Chunks read are fresh arrays owned by the reader. A chunk written is
 * encrypted before `write()` returns, so the caller may reuse it at once.
 * Errors: a transport message with a bad tag or a bad length fails reads
 * with `PROTOCOL_VIOLATION`; a connection that ends inside a message fails
 * them with `CONNECTION_CLOSED`; either way the connection under it is
 * aborted, and no other connection is touched.
 *
 * Handshake profiles construct it; users get it from an upgrade such as
 * `libp2pUpgrade(...)`.
 *
 * @example
 * ```ts
 * import type { SecureChannel } from "./secure_channel.ts";
 * async function greet(channel: SecureChannel) {
 *   await channel.write(new TextEncoder().encode("hello, encrypted"));
 *   await channel.closeWrite(); // the peer's reads end after the last frame
 * }
 * ```
 */
export class SecureChannel extends ByteConnection {
  readonly #lower: Connection;
  /** The handshake's reader, until its buffered bytes are taken over (first read). */
  #reader: ByteReader | undefined;
  readonly #encrypter: TransportCipher;
  readonly #decrypter: TransportCipher;
  readonly #remoteStaticKey: Uint8Array;
  readonly #handshakeHash: Uint8Array;

  #readState: ReadState = "open";
  #writeState: WriteState = "open";
  /** The error that failed the channel, if one did. */
  #failure: NetworkError | undefined;
  /** Someone reads the channel (and so will see the peer's end). */
  #hasReader = false;
  /** A decrypted message `readInto` could not fit, and how far it was read. */
  #leftover: Uint8Array | undefined;
  /** The buffer ciphertext is read into; bytes `#readStart` to `#readEnd` are unread. */
  #buffer: Uint8Array = EMPTY;
  #readStart = 0;
  #readEnd = 0;
  /** The last read filled all the room it had: more was waiting, so grow. */
  #filledRoom = false;
  /** The last read's byte count. */
  #lastRead = 0;
  /** The 4 KiB buffer: reads wait for the peer in it after small traffic. */
  #small: Uint8Array | undefined;
  /** The grown buffer, kept for the next burst (dropped when idle). */
  #large: Uint8Array | undefined;

  /** Large write buffers for reuse (made on first use, dropped when idle). */
  #pool: BufferPool | undefined;
  /** Encrypted bytes the connection below holds (its writes not yet resolved). */
  #held = 0;
  /** The writes the connection below holds, to wait for on close. */
  #inFlight: Set<Promise<void>> | undefined;
  /** Wakes a writer waiting for the held bytes to drop. */
  #room: PromiseWithResolvers<void> | undefined;
  /** This turn's small writes, to be sealed as one message where the connection below said. */
  #batch: Batch | undefined;
  /** A batch's plaintext buffer, for the next batch (dropped when idle). */
  #spareBatchBuffer: Uint8Array | undefined;

  /** Takes over the connection a handshake completed on. */
  constructor(init: SecureChannelInit) {
    super();
    this.#lower = init.connection;
    // Bytes the peer sent right after the handshake may sit in its reader:
    // the first read takes them over, then reads the connection itself.
    this.#reader = init.reader.buffered > 0 ? init.reader : undefined;
    this.#encrypter = init.encrypter;
    this.#decrypter = init.decrypter;
    this.#remoteStaticKey = init.remoteStaticKey;
    this.#handshakeHash = init.handshakeHash;
    // A lower connection that dies for any reason takes the channel with it;
    // pending reads and writes learn it themselves.
    this.#lower.closed.catch(() => {});
  }

  /** Our address of the connection under the channel. */
  get localAddr(): Multiaddr {
    return this.#lower.localAddr;
  }

  /** The peer's address of the connection under the channel. */
  get remoteAddr(): Multiaddr {
    return this.#lower.remoteAddr;
  }

  /** The peer's static X25519 public key, authenticated by the handshake. */
  get remoteStaticKey(): Uint8Array {
    return this.#remoteStaticKey.slice();
  }

  /** The final handshake hash: the same on both ends, unique per session. */
  get handshakeHash(): Uint8Array {
    return this.#handshakeHash.slice();
  }

  /** Settles when the connection under the channel is released. */
  get closed(): Promise<void> {
    return this.#lower.closed;
  }

  /**
   * Graceful close: waits for what the connection below holds, then closes
   * it (which half-closes, waits for the peer, and releases).
   */
  async close(): Promise<void> {
    await this.closeWrite().catch(() => {});
    // The lower connection waits for the peer's end, which only a read can
    // see; we are its reader, so read ours to the end if nobody does.
    if (!this.#hasReader && !this.readableTaken && this.#readState === "open") {
      void this.#drain();
    }
    await this.#lower.close();
    this.#pool = undefined;
    forgetHolder(this);
  }

  async #drain(): Promise<void> {
    try {
      while ((await this.read()) !== null) {
        // discard: the peer's end is what the close waits for
      }
    } catch {
      // the channel failed, which released the connection
    }
  }

  /** Drops the connection at once; the peer sees a reset. */
  abort(reason?: unknown): void {
    const error = reason instanceof NetworkError
      ? reason
      : new NetworkError("ABORTED", "secure channel aborted", { cause: reason });
    this.#fail(error);
  }

  // ---- read side ----

  /**
   * The next non-empty plaintext, `null` at the peer's clean end. A
   * failure fails the whole channel (both directions, the connection under
   * it) and rejects with its error.
   */
  async read(): Promise<Uint8Array | null> {
    this.#hasReader = true;
    const leftover = this.#leftover;
    if (leftover !== undefined) {
      this.#leftover = undefined;
      return leftover;
    }
    if (this.#readState === "failed") throw this.#failure!;
    if (this.#readState === "ended") return null;
    try {
      if (this.#reader !== undefined) await this.#takeOverReader(this.#reader);
      // Each message is decrypted into a fresh array before the next read,
      // so the ciphertext lands in one reused buffer: no allocation per
      // socket read (fresh memory costs page faults, a third of a bulk
      // receiver's CPU).
      while (true) {
        const buffered = this.#readEnd - this.#readStart;
        let needed = LENGTH_PREFIX;
        if (buffered >= LENGTH_PREFIX) {
          const buffer = this.#buffer;
          const start = this.#readStart;
          const length = (buffer[start] << 8) | buffer[start + 1];
          if (length < TAG_LENGTH) {
            throw new NetworkError(
              "PROTOCOL_VIOLATION",
              `noise transport message of ${length} bytes is shorter than its tag`,
            );
          }
          needed = LENGTH_PREFIX + length;
          if (buffered >= needed) {
            const ciphertext = buffer.subarray(start + LENGTH_PREFIX, start + needed);
            this.#readStart = start + needed;
            // Empty transport messages are legal; skip them rather than hand
            // an empty chunk to the consumer.
            const plaintext = this.#decrypt(ciphertext);
            if (plaintext.length > 0) return plaintext;
            continue;
          }
        }
        // Awaited here, not in a helper: a read waiting for the peer (every
        // quiet connection has one) holds one async frame at this layer.
        const room = this.#prepareRead(needed);
        let n: number | null;
        try {
          n = await this.#lower.readInto(room);
        } catch (err) {
          throw NetworkError.wrap(err, "CONNECTION_RESET", "read failed");
        }
        // Failed or cancelled meanwhile: the buffers are gone.
        const state = this.#readState as ReadState;
        if (state === "failed") throw this.#failure!;
        if (state === "ended") return null;
        if (n === null) {
          if (buffered === 0) {
            // The peer half-closed on a frame boundary: a clean end.
            this.#readState = "ended";
            this.#dropReadBuffers();
            return null;
          }
          throw new NetworkError(
            "CONNECTION_CLOSED",
            `stream ended after ${buffered} of ${needed} expected bytes`,
          );
        }
        this.#filledRoom = n === room.length;
        this.#lastRead = n;
        this.#readEnd += n;
      }
    } catch (err) {
      const error = NetworkError.wrap(err, "PROTOCOL_VIOLATION", "noise transport read");
      if (this.#readState === "open") this.#fail(error);
      throw this.#failure ?? error;
    }
  }

  /** Takes over what the handshake's reader buffered (the peer's first transport bytes). */
  async #takeOverReader(reader: ByteReader): Promise<void> {
    this.#reader = undefined;
    const pending = reader.buffered;
    if (pending === 0) return;
    const bytes = await reader.readExactly(pending);
    this.#buffer = new Uint8Array(Math.max(READ_BUFFER, pending));
    this.#buffer.set(bytes);
    this.#readEnd = pending;
  }

  /** Decrypts one transport message, a fresh array the caller owns. */
  #decrypt(ciphertext: Uint8Array): Uint8Array {
    let plaintext: Uint8Array;
    try {
      plaintext = this.#decrypter.decryptWithAd(EMPTY, ciphertext);
    } catch (err) {
      throw new NetworkError(
        "PROTOCOL_VIOLATION",
        "noise transport message failed authentication",
        { cause: err },
      );
    }
    // A backend that decrypts in place would hand back the reused buffer.
    if (plaintext.buffer === ciphertext.buffer) plaintext = plaintext.slice();
    return plaintext;
  }

  /**
   * The room the next read of the connection below lands in, with `needed`
   * bytes (counted from the first unread one) fitting in the buffer. The
   * unread bytes move to the front (into a larger buffer when it should
   * grow) when `needed` would not fit after them or little room is left;
   * with nothing unread after small traffic, the read waits in the small
   * buffer and the grown one is kept aside for the next burst.
   */
  #prepareRead(needed: number): Uint8Array {
    let buffer = this.#buffer;
    let start = this.#readStart;
    let end = this.#readEnd;
    if (start === end) {
      start = end = 0;
      if (buffer.length <= READ_BUFFER || this.#lastRead <= READ_BUFFER) {
        if (buffer.length > READ_BUFFER) keptForReuse(this);
        this.#small ??= new Uint8Array(READ_BUFFER);
        buffer = this.#small;
      }
    }
    const grow = this.#filledRoom && buffer.length < READ_BUFFER_MAX;
    if (grow || buffer.length - start < needed || buffer.length - end < buffer.length / 4) {
      let size = Math.max(needed, grow ? Math.min(buffer.length * 2, READ_BUFFER_MAX) : 0);
      // Back to the size of the last burst at once, if its buffer was kept.
      const large = this.#large;
      if (large !== undefined && large !== buffer && large.length >= size) size = large.length;
      if (size > buffer.length) {
        const larger = large !== undefined && large.length === size && large !== buffer
          ? large
          : new Uint8Array(size);
        larger.set(buffer.subarray(start, end));
        if (size > READ_BUFFER) this.#large = larger;
        buffer = larger;
      } else if (start > 0 && start < end) {
        buffer.copyWithin(0, start, end);
      }
      this.#filledRoom = false;
      end -= start;
      start = 0;
    }
    this.#buffer = buffer;
    this.#readStart = start;
    this.#readEnd = end;
    return buffer.subarray(end);
  }

  /** The read side ended: its buffers go. */
  #dropReadBuffers(): void {
    this.#buffer = EMPTY;
    this.#readStart = this.#readEnd = 0;
    this.#small = this.#large = undefined;
  }

  /** Decrypts the next message into `buffer`; what does not fit is read next time. */
  async readInto(buffer: Uint8Array): Promise<number | null> {
    const plaintext = await this.read();
    if (plaintext === null) return null;
    const n = Math.min(plaintext.length, buffer.length);
    buffer.set(plaintext.subarray(0, n));
    if (n < plaintext.length) this.#leftover = plaintext.subarray(n);
    return n;
  }

  /** Stops reading: the peer's further messages are not read. */
  cancelRead(reason?: unknown): void {
    this.#hasReader = true;
    if (this.#readState === "open") this.#readState = "ended";
    this.#leftover = undefined;
    this.#reader = undefined;
    this.#dropReadBuffers();
    this.#lower.cancelRead(reason);
  }

  // ---- write side ----

  /**
   * Encrypts `chunk` and hands it down. Returns a promise (wait before
   * writing more) only while the connection below holds more than a
   * high-water mark of encrypted bytes; `chunk` itself is never kept.
   */
  write(chunk: Uint8Array): Promise<void> | undefined {
    if (this.#writeState !== "open") return Promise.reject(this.#writeError());
    if (chunk.length === 0) return undefined;
    if (chunk.length <= BATCHED_WRITE_MAX && this.#lower.writeDeferred !== undefined) {
      try {
        this.#batched(chunk);
      } catch (err) {
        const error = NetworkError.wrap(err, "CONNECTION_RESET", "noise transport write");
        this.#fail(error);
        return Promise.reject(error);
      }
      return undefined;
    }
    // What was batched before goes first: nonces follow the order on the wire.
    if (this.#batch !== undefined) this.#seal(this.#batch);
    if (chunk.length > WRITE_SLICE) return this.#writeLarge(chunk);
    this.#sealAndSend(chunk);
    if (this.#held > WRITE_HIGH_WATER) return this.#waitForRoom();
    return undefined;
  }

  /** A write larger than a slice goes a slice at a time, so no buffer grows as large as it. */
  async #writeLarge(chunk: Uint8Array): Promise<void> {
    for (let start = 0; start < chunk.length; start += WRITE_SLICE) {
      if (this.#writeState !== "open") throw this.#writeError();
      this.#sealAndSend(chunk.subarray(start, start + WRITE_SLICE));
      if (this.#held > WRITE_HIGH_WATER) await this.#waitForRoom();
    }
  }

  /** Adds `chunk` to this turn's batch, sealing the batch now if it is full. */
  #batched(chunk: Uint8Array): void {
    let batch = this.#batch;
    if (batch !== undefined && batch.used + chunk.length > MAX_PLAINTEXT) {
      this.#seal(batch);
      batch = undefined;
    }
    if (batch === undefined) {
      const spare = this.#spareBatchBuffer;
      this.#spareBatchBuffer = undefined;
      const made: Batch = {
        plaintext: spare ?? new Uint8Array(FIRST_BATCH_BUFFER),
        used: 0,
        sealed: undefined,
      };
      // Throws if the connection below is closed or failed: the channel fails with it.
      this.#lower.writeDeferred!(() => this.#seal(made));
      this.#batch = batch = made;
      keptForReuse(this);
    }
    if (batch.used + chunk.length > batch.plaintext.length) {
      const larger = new Uint8Array(
        Math.min(MAX_PLAINTEXT, Math.max(2 * batch.plaintext.length, batch.used + chunk.length)),
      );
      larger.set(batch.plaintext.subarray(0, batch.used));
      batch.plaintext = larger;
    }
    batch.plaintext.set(chunk, batch.used);
    batch.used += chunk.length;
  }

  /** Seals `batch` (once) as one message: now, or when the connection below writes its place. */
  #seal(batch: Batch): Uint8Array {
    if (batch.sealed !== undefined) return batch.sealed;
    if (this.#batch === batch) this.#batch = undefined;
    const plaintext = batch.plaintext;
    batch.plaintext = EMPTY;
    // A failed channel writes nothing more; the connection below is aborted.
    if (this.#failure !== undefined) return batch.sealed = EMPTY;
    const length = batch.used + TAG_LENGTH;
    const sealed = new Uint8Array(LENGTH_PREFIX + length);
    sealed[0] = length >>> 8;
    sealed[1] = length & 0xff;
    this.#encrypter.encryptWithAd(
      EMPTY,
      plaintext.subarray(0, batch.used),
      sealed.subarray(LENGTH_PREFIX),
    );
    if (plaintext.length <= MIN_BUFFER) this.#spareBatchBuffer = plaintext;
    return batch.sealed = sealed;
  }

  #writeError(): NetworkError {
    return this.#failure ??
      new NetworkError("CONNECTION_CLOSED", "secure channel is closed for writing");
  }

  /** Encrypts `chunk` as full frames into one buffer and writes it down. */
  #sealAndSend(chunk: Uint8Array): void {
    const frames = Math.ceil(chunk.length / MAX_PLAINTEXT);
    const needed = chunk.length + frames * (LENGTH_PREFIX + TAG_LENGTH);
    const pool = needed <= MIN_BUFFER ? SMALL_WRITES : (this.#pool ??= new BufferPool(
      POOL_SIZE,
      MIN_BUFFER,
      POOL_BYTES,
    ));
    if (pool !== SMALL_WRITES) keptForReuse(this);
    const buffer = pool.take(needed);
    let offset = 0;
    for (let start = 0; start < chunk.length; start += MAX_PLAINTEXT) {
      const plaintext = chunk.subarray(start, Math.min(chunk.length, start + MAX_PLAINTEXT));
      const length = plaintext.length + TAG_LENGTH;
      buffer[offset] = length >>> 8;
      buffer[offset + 1] = length & 0xff;
      offset += LENGTH_PREFIX;
      this.#encrypter.encryptWithAd(EMPTY, plaintext, buffer.subarray(offset, offset + length));
      offset += length;
    }
    const sealed = buffer.subarray(0, offset);
    let pending: Promise<void> | undefined;
    try {
      pending = this.#lower.write(sealed);
    } catch (err) {
      pending = Promise.reject(err);
    }
    if (pending === undefined) {
      pool.give(buffer);
      return;
    }
    // The connection below keeps the buffer until its write resolves.
    this.#held += offset;
    const tracked: Promise<void> = pending.then(
      () => {
        this.#held -= offset;
        this.#inFlight!.delete(tracked);
        // A pool dropped meanwhile (idle release) lets the buffer go.
        if (pool === SMALL_WRITES || pool === this.#pool) pool.give(buffer);
        this.#wakeWriter();
      },
      (err) => {
        this.#inFlight!.delete(tracked);
        this.#fail(NetworkError.wrap(err, "CONNECTION_RESET", "noise transport write"));
      },
    );
    (this.#inFlight ??= new Set()).add(tracked);
  }

  #wakeWriter(): void {
    if (this.#held > WRITE_HIGH_WATER / 2 || this.#room === undefined) return;
    const room = this.#room;
    this.#room = undefined;
    room.resolve();
  }

  async #waitForRoom(): Promise<void> {
    while (this.#held > WRITE_HIGH_WATER / 2 && this.#writeState === "open") {
      this.#room ??= Promise.withResolvers<void>();
      await this.#room.promise;
    }
    if (this.#writeState === "failed") throw this.#failure!;
  }

  /** Waits for the writes the connection below holds, then half-closes it. */
  async closeWrite(): Promise<void> {
    if (this.#writeState === "failed") throw this.#failure!;
    if (this.#writeState === "closed") return;
    this.#writeState = "closed";
    while (this.#inFlight !== undefined && this.#inFlight.size > 0) {
      await Promise.all(this.#inFlight);
    }
    if (this.#failure !== undefined) throw this.#failure;
    try {
      await this.#lower.closeWrite();
    } catch (err) {
      throw NetworkError.wrap(err, "CONNECTION_RESET", "noise transport close");
    }
  }

  // ---- both ----

  /** Idle for a while: the grown read buffer and the write pool go (the next burst makes them again). */
  [releaseIdle](): void {
    this.#pool = undefined;
    this.#spareBatchBuffer = undefined;
    if (this.#buffer !== this.#large) this.#large = undefined;
  }

  /** Fails both directions with `error` and aborts the connection under them. */
  #fail(error: NetworkError): void {
    if (this.#failure !== undefined) return;
    this.#failure = error;
    if (this.#readState === "open") this.#readState = "failed";
    this.#writeState = "failed";
    const room = this.#room;
    this.#room = undefined;
    room?.resolve();
    this.#pool = undefined;
    this.#batch = this.#spareBatchBuffer = undefined;
    this.#dropReadBuffers();
    forgetHolder(this);
    this.#lower.abort(error);
  }
}
