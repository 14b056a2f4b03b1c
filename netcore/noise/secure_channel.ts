/**
 * The Noise transport phase: after a handshake, every byte in either
 * direction travels as an authenticated, encrypted transport message framed
 * as in libp2p-noise (2-byte big-endian length, then ciphertext||tag, at most
 * 65535 bytes). Both handshake profiles of this folder (libp2p XX and the
 * validator IK) hand their connection over to a {@linkcode SecureChannel}.
 *
 * The channel is the same Web-Streams {@linkcode Connection} as the one under
 * it, so it stacks on any transport and anything that runs over a raw
 * connection (negotiation, yamux) runs over it unchanged.
 *
 * Hot path notes (why the code looks the way it does):
 * - writes are encrypted at once, frame by frame, straight into one batch
 *   buffer `[len|ct|len|ct...]`; while the lower write is in flight, further
 *   writes append to the next batch, which goes down in ONE lower write;
 * - reads are pulled: the next frame is read from the lower stream only when
 *   the consumer asks for data, so a slow consumer never makes us buffer.
 *
 * @module
 */

import { setImmediate } from "node:timers";
import type { ByteReader } from "../byte_reader.ts";
import { NetworkError } from "../network_error.ts";
import type { Multiaddr } from "../multiaddr.ts";
import type { Connection } from "../transport/connection.ts";
import {
  type DirectSink,
  directSink,
  registerDirectSink,
  registerDirectSource,
} from "../transport/_direct.ts";
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

/** Once this many encrypted bytes wait for the lower connection, writes wait. */
const WRITE_HIGH_WATER = 256 * 1024;
/** Largest part of one write encrypted at once: 16 full frames (about 1 MiB). */
const WRITE_SLICE = 16 * MAX_PLAINTEXT;
/** Smallest batch buffer, so bursts of small writes do not reallocate. */
const MIN_BATCH = 16 * 1024;
/**
 * Largest batch buffer kept for reuse once the lower writer gave it back: a
 * whole encrypted slice, so a bulk writer allocates no batch per slice. A
 * connection that once wrote in bulk keeps about 1 MiB for it.
 */
const MAX_SPARE = WRITE_SLICE + 16 * (LENGTH_PREFIX + TAG_LENGTH);

/**
 * What a handshake hands to {@linkcode SecureChannel}.
 *
 * @example
 * ```ts ignore
 * import { ByteReader } from "../byte_reader.ts";
 * import { SecureChannel } from "./secure_channel.ts";
 * // at the end of a handshake on `conn`, with `hs` complete (initiator side):
 * const [i2r, r2i] = hs.split();
 * const channel = new SecureChannel({
 *   connection: conn, reader, writer, encrypter: i2r, decrypter: r2i,
 *   remoteStaticKey: hs.remoteStaticKey!, handshakeHash: hs.handshakeHash,
 * });
 * ```
 */
export interface SecureChannelInit {
  /** The connection the handshake ran on. Its streams are locked by `reader` and `writer`. */
  connection: Connection;
  /**
   * The reader the handshake used on `connection.readable`: bytes the peer
   * sent right after its last handshake message may already sit in it.
   */
  reader: ByteReader;
  /** A writer on `connection.writable`. */
  writer: WritableStreamDefaultWriter<Uint8Array>;
  /** Encrypts what we send. */
  encrypter: TransportCipher;
  /** Decrypts what we receive. */
  decrypter: TransportCipher;
  /** The peer's static Noise (X25519) public key, authenticated by the handshake. */
  remoteStaticKey: Uint8Array;
  /** The handshake hash `h` at the end of the handshake: a unique session id. */
  handshakeHash: Uint8Array;
  /**
   * Bytes the handshake did not send yet (its last message, framed): they
   * leave in front of the first transport message, in the same write, or
   * alone at the end of this turn of the event loop if nothing is written
   * by then, so the peer never waits for them.
   */
  unsent?: Uint8Array;
}

/** Read side states; terminal: `ended`, `failed`. */
type ReadState = "open" | "ended" | "failed";
/** Write side states; terminal: `closed`, `failed`. */
type WriteState = "open" | "closing" | "closed" | "failed";

/**
 * An encrypted, authenticated {@linkcode Connection} over another one.
 *
 * Chunks read from `readable` are fresh arrays owned by the reader. A chunk
 * given to `writable.write()` is encrypted before the write resolves, so the
 * caller may reuse it as soon as it resolves. Errors: a transport message with
 * a bad tag or a bad length fails the readable with `PROTOCOL_VIOLATION`; a
 * stream that ends inside a message fails it with `CONNECTION_CLOSED`; either
 * way the connection under it is aborted, and no other connection is touched.
 *
 * Handshake profiles construct it; users get it from an upgrade such as
 * `libp2pNoise(...)`.
 *
 * @example
 * ```ts ignore
 * import type { SecureChannel } from "./secure_channel.ts";
 * async function greet(channel: SecureChannel) {
 *   const writer = channel.writable.getWriter();
 *   await writer.write(new TextEncoder().encode("hello, encrypted"));
 *   await writer.close(); // the peer's readable ends after the last frame
 * }
 * ```
 */
export class SecureChannel implements Connection {
  readonly #lower: Connection;
  readonly #reader: ByteReader;
  readonly #writer: WritableStreamDefaultWriter<Uint8Array>;
  readonly #encrypter: TransportCipher;
  readonly #decrypter: TransportCipher;
  readonly #remoteStaticKey: Uint8Array;
  readonly #handshakeHash: Uint8Array;
  readonly #readable: ReadableStream<Uint8Array>;
  readonly #writable: WritableStream<Uint8Array>;
  #readController: ReadableStreamDefaultController<Uint8Array> | undefined;
  #writeController: WritableStreamDefaultController | undefined;

  #readState: ReadState = "open";
  #writeState: WriteState = "open";
  #writeError: NetworkError | undefined;
  /** The error that failed the channel, if one did. */
  #failure: NetworkError | undefined;
  /** Encrypted frames not yet handed to the lower writer. */
  #batch: Uint8Array | undefined;
  #batchLength = 0;
  /** The lower writable's side door, when it has one (see `transport/_direct.ts`). */
  readonly #lowerSink: DirectSink | undefined;
  /** A batch buffer the lower writer is done with, for the next batch. */
  #spare: Uint8Array | undefined;
  /** The running flush loop, if any. */
  #flushing: Promise<void> | undefined;
  /** Wakes a write that waits for the batch to be taken. */
  #wakeWriter: (() => void) | undefined;

  /** Takes over the connection a handshake completed on. */
  constructor(init: SecureChannelInit) {
    this.#lower = init.connection;
    this.#reader = init.reader;
    // Each message is decrypted into a fresh array before the next read, so
    // the ciphertext can land in one reused buffer: no allocation per socket
    // read (fresh memory costs page faults, a third of a bulk receiver's CPU).
    this.#reader.reuseBuffer();
    this.#writer = init.writer;
    this.#encrypter = init.encrypter;
    this.#decrypter = init.decrypter;
    this.#remoteStaticKey = init.remoteStaticKey;
    this.#handshakeHash = init.handshakeHash;
    this.#readable = new ReadableStream<Uint8Array>({
      start: (controller) => {
        this.#readController = controller;
      },
      pull: (controller) => this.#pull(controller),
      cancel: (reason) => this.#cancelRead(reason),
    }, { highWaterMark: 0 });
    this.#writable = new WritableStream<Uint8Array>({
      start: (controller) => {
        this.#writeController = controller;
      },
      write: (chunk) => this.#write(chunk),
      close: () => this.#closeWrite(),
      abort: (reason) => this.#abortWrite(reason),
    });
    // Our writer holds the lower writable's lock: its side door is ours.
    this.#lowerSink = directSink(init.connection.writable);
    registerDirectSource(this.#readable, { read: () => this.#read() });
    registerDirectSink(this.#writable, {
      write: (chunk) => {
        try {
          return this.#write(chunk);
        } catch (err) {
          return Promise.reject(err);
        }
      },
    });
    if (init.unsent !== undefined && init.unsent.length > 0) {
      const batch = new Uint8Array(Math.max(MIN_BATCH, init.unsent.length));
      batch.set(init.unsent);
      this.#batch = batch;
      this.#batchLength = init.unsent.length;
      setImmediate(() => this.#startFlush());
    }
    // A lower connection that dies for any reason takes the channel with it;
    // the streams learn it through their pending reads and writes, so only
    // the rejection needs silencing here.
    this.#lower.closed.catch(() => {});
  }

  /** Decrypted bytes from the peer. Ends when the peer half-closes. */
  get readable(): ReadableStream<Uint8Array> {
    return this.#readable;
  }

  /** Bytes to encrypt and send. `close()` half-closes after the last frame. */
  get writable(): WritableStream<Uint8Array> {
    return this.#writable;
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
   * Graceful close: sends what is still batched, then closes the connection
   * under the channel (which half-closes, waits for the peer, and releases).
   */
  async close(): Promise<void> {
    if (this.#writeState === "open") {
      this.#writeState = "closing";
      try {
        await this.#drain();
      } catch {
        // the write side already failed; closing the lower connection still applies
      }
      this.#writeState = "closed";
      this.#writeController?.error(
        new NetworkError("CONNECTION_CLOSED", "secure channel closed"),
      );
      this.#writer.releaseLock();
    } else if (this.#writeState === "closing") {
      await this.#flushing?.catch(() => {});
    }
    // The lower connection waits for the peer's end of stream, which only a
    // read can see; our reader holds its readable, so drain ours if unread.
    if (!this.#readable.locked && this.#readState === "open") {
      this.#readable.pipeTo(new WritableStream()).catch(() => {});
    }
    await this.#lower.close();
  }

  /** Drops the connection at once; the peer sees a reset. */
  abort(reason?: unknown): void {
    const error = reason instanceof NetworkError
      ? reason
      : new NetworkError("ABORTED", "secure channel aborted", { cause: reason });
    this.#fail(error);
  }

  // ---- read side ----

  async #pull(controller: ReadableStreamDefaultController<Uint8Array>): Promise<void> {
    let plaintext: Uint8Array | undefined;
    try {
      plaintext = await this.#read();
    } catch {
      // `#read` failed the channel, which errored this stream.
      return;
    }
    if (plaintext === undefined) controller.close();
    else controller.enqueue(plaintext);
  }

  /**
   * The next non-empty plaintext, `undefined` at the peer's clean end. A
   * failure fails the whole channel (both streams, the connection under it)
   * and rejects with its error.
   */
  async #read(): Promise<Uint8Array | undefined> {
    // `failed` is only ever set by `#fail`, which records the failure first.
    if (this.#readState === "failed") throw this.#failure!;
    if (this.#readState === "ended") return undefined;
    try {
      // Empty transport messages are legal; skip them rather than hand an
      // empty chunk to the consumer.
      while (true) {
        const prefix = await this.#reader.readSome(LENGTH_PREFIX);
        if (prefix === undefined) {
          // The peer half-closed on a frame boundary: a clean end.
          this.#readState = "ended";
          return undefined;
        }
        let length: number;
        if (prefix.length === LENGTH_PREFIX) {
          length = (prefix[0] << 8) | prefix[1];
        } else {
          const second = await this.#reader.readExactly(1);
          length = (prefix[0] << 8) | second[0];
        }
        if (length < TAG_LENGTH) {
          throw new NetworkError(
            "PROTOCOL_VIOLATION",
            `noise transport message of ${length} bytes is shorter than its tag`,
          );
        }
        const ciphertext = await this.#reader.readExactly(length);
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
        if (plaintext.length > 0) return plaintext;
      }
    } catch (err) {
      const error = NetworkError.wrap(err, "PROTOCOL_VIOLATION", "noise transport read");
      // The stream is already errored by `#fail` when we were aborted.
      if (this.#readState === "open") this.#fail(error);
      throw this.#failure ?? error;
    }
  }

  async #cancelRead(reason: unknown): Promise<void> {
    this.#readState = "ended";
    await this.#reader.cancel(reason);
  }

  // ---- write side ----

  #write(chunk: Uint8Array): Promise<void> | undefined {
    this.#checkWritable();
    if (chunk.length === 0) return;
    if (chunk.length > WRITE_SLICE) return this.#writeLarge(chunk);
    this.#encryptIntoBatch(chunk);
    this.#flushing ??= this.#flush();
    if (this.#batchLength >= WRITE_HIGH_WATER) return this.#waitForRoom();
  }

  /**
   * A write larger than a slice is encrypted a slice at a time, each slice
   * waiting for the previous one to be handed down, so a huge write never
   * needs a batch buffer as large as itself.
   */
  async #writeLarge(chunk: Uint8Array): Promise<void> {
    for (let start = 0; start < chunk.length; start += WRITE_SLICE) {
      this.#checkWritable();
      this.#encryptIntoBatch(chunk.subarray(start, start + WRITE_SLICE));
      this.#flushing ??= this.#flush();
      if (this.#batchLength >= WRITE_HIGH_WATER) await this.#waitForRoom();
    }
  }

  #checkWritable(): void {
    if (this.#writeError !== undefined) throw this.#writeError;
    if (this.#writeState !== "open") {
      throw new NetworkError("CONNECTION_CLOSED", "secure channel is closed for writing");
    }
  }

  /** Encrypts `chunk` as full frames appended to the batch. */
  #encryptIntoBatch(chunk: Uint8Array): void {
    const frames = Math.ceil(chunk.length / MAX_PLAINTEXT);
    const needed = chunk.length + frames * (LENGTH_PREFIX + TAG_LENGTH);
    let batch = this.#batch;
    let offset = this.#batchLength;
    if (batch === undefined && this.#spare !== undefined && this.#spare.length >= needed) {
      batch = this.#batch = this.#spare;
      this.#spare = undefined;
    } else if (batch === undefined || batch.length - offset < needed) {
      // Grow fourfold: a bulk writer fills the batch while the lower write
      // is in flight, and each growth copies what is already batched.
      const grown = new Uint8Array(
        Math.max(offset + needed, batch === undefined ? MIN_BATCH : batch.length * 4),
      );
      if (batch !== undefined) grown.set(batch.subarray(0, offset));
      batch = this.#batch = grown;
    }
    for (let start = 0; start < chunk.length; start += MAX_PLAINTEXT) {
      const plaintext = chunk.subarray(start, Math.min(chunk.length, start + MAX_PLAINTEXT));
      const length = plaintext.length + TAG_LENGTH;
      batch[offset] = length >>> 8;
      batch[offset + 1] = length & 0xff;
      offset += LENGTH_PREFIX;
      this.#encrypter.encryptWithAd(EMPTY, plaintext, batch.subarray(offset, offset + length));
      offset += length;
    }
    this.#batchLength = offset;
  }

  /** Hands batches to the lower writer, one lower write per batch, until none is left. */
  async #flush(): Promise<void> {
    try {
      while (this.#batchLength > 0) {
        const batch = this.#batch!;
        const out = batch.subarray(0, this.#batchLength);
        this.#batch = undefined;
        this.#batchLength = 0;
        this.#wake();
        if (this.#lowerSink !== undefined) await this.#lowerSink.write(out);
        else await this.#writer.write(out);
        // The lower writer is done with the buffer once its write resolved.
        if (batch.length <= MAX_SPARE) this.#spare = batch;
      }
    } catch (err) {
      const error = NetworkError.wrap(err, "CONNECTION_RESET", "noise transport write");
      this.#writeError ??= error;
      this.#fail(error);
    } finally {
      this.#flushing = undefined;
      this.#wake();
    }
  }

  /** Starts the flush loop if frames wait and the write side still works. */
  #startFlush(): void {
    if (this.#batchLength === 0 || this.#writeError !== undefined) return;
    if (this.#writeState === "failed" || this.#writeState === "closed") return;
    this.#flushing ??= this.#flush();
  }

  #wake(): void {
    const wake = this.#wakeWriter;
    this.#wakeWriter = undefined;
    wake?.();
  }

  async #waitForRoom(): Promise<void> {
    while (this.#batchLength >= WRITE_HIGH_WATER && this.#flushing !== undefined) {
      await new Promise<void>((resolve) => this.#wakeWriter = resolve);
    }
    if (this.#writeError !== undefined) throw this.#writeError;
  }

  /** Waits until every batched frame was accepted by the lower writer. */
  async #drain(): Promise<void> {
    this.#startFlush();
    while (this.#flushing !== undefined) await this.#flushing;
    if (this.#writeError !== undefined) throw this.#writeError;
  }

  async #closeWrite(): Promise<void> {
    this.#writeState = "closing";
    await this.#drain();
    try {
      await this.#writer.close();
    } catch (err) {
      throw NetworkError.wrap(err, "CONNECTION_RESET", "noise transport close");
    }
    this.#writeState = "closed";
  }

  async #abortWrite(reason: unknown): Promise<void> {
    this.#writeState = "failed";
    this.#writeError ??= new NetworkError("ABORTED", "secure channel write side aborted", {
      cause: reason,
    });
    this.#wake();
    await this.#writer.abort(reason).catch(() => {});
  }

  // ---- both ----

  /** Fails both streams with `error` and aborts the connection under them. */
  #fail(error: NetworkError): void {
    this.#failure ??= error;
    if (this.#readState === "open") {
      this.#readState = "failed";
      this.#readController?.error(error);
    }
    if (this.#writeState === "open" || this.#writeState === "closing") {
      this.#writeState = "failed";
      this.#writeError ??= error;
      this.#writeController?.error(error);
      this.#wake();
    }
    this.#lower.abort(error);
  }
}

/**
 * Any connection a Noise upgrade yields (the libp2p and validator profiles
 * both extend {@linkcode SecureChannel}); the name the rest of the stack uses.
 *
 * @example
 * ```ts ignore
 * import type { SecureConnection } from "./secure_channel.ts";
 * function sessionId(conn: SecureConnection): Uint8Array {
 *   return conn.handshakeHash;
 * }
 * ```
 */
export type SecureConnection = SecureChannel;
