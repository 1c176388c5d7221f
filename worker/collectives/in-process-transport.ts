import { CollectiveError } from '../../shared/errors.js';
import { combineInto } from './combine.js';
import { describeKey, type ChunkKey, type ChunkTransport, type Combine } from './chunk-transport.js';

// N ranks in one process (unit tests): a send copies the chunk into the receiver's mailbox, like
// a wire would, and the receiver applies it in pieces, like the gRPC transport does. Optional
// per-message delays let tests shuffle the timing and check that results do not depend on it.

export interface InProcessOptions {
  /** Elements per piece handed to the receiver (exercises piecewise combining). */
  readonly pieceElements?: number;
  /** Milliseconds before a sent chunk reaches its mailbox (e.g. random, to vary timing). */
  readonly delayMs?: (from: number, to: number, key: ChunkKey) => number;
}

interface Mail {
  chunk?: Float32Array;
  deliver?: (chunk: Float32Array) => void;
}

/** One transport per rank, all wired to each other. */
export function inProcessTransports(world: number, options: InProcessOptions = {}): ChunkTransport[] {
  if (!Number.isSafeInteger(world) || world < 1) throw new RangeError(`inProcessTransports: world ${world}`);
  const mailboxes = new Map<string, Mail>();
  return Array.from({ length: world }, (_, rank) => new InProcessTransport(rank, world, mailboxes, options));
}

class InProcessTransport implements ChunkTransport {
  bytesSent = 0;

  constructor(
    readonly rank: number,
    readonly world: number,
    private readonly mailboxes: Map<string, Mail>,
    private readonly options: InProcessOptions,
  ) {}

  async send(to: number, key: ChunkKey, chunk: Float32Array, signal: AbortSignal): Promise<void> {
    this.checkPeer(to);
    signal.throwIfAborted();
    const copy = chunk.slice();
    this.bytesSent += chunk.byteLength;
    const delay = this.options.delayMs?.(this.rank, to, key) ?? 0;
    if (delay > 0) await sleep(delay, signal);
    const id = mailId(this.rank, to, key);
    const mail = this.mailboxes.get(id);
    if (mail?.chunk) throw new CollectiveError(`rank ${this.rank}: chunk ${describeKey(key)} to rank ${to} sent twice`);
    if (mail?.deliver) {
      this.mailboxes.delete(id);
      mail.deliver(copy);
    } else {
      this.mailboxes.set(id, { chunk: copy });
    }
  }

  async receive(from: number, key: ChunkKey, target: Float32Array, combine: Combine, signal: AbortSignal): Promise<void> {
    this.checkPeer(from);
    signal.throwIfAborted();
    const id = mailId(from, this.rank, key);
    let chunk = this.mailboxes.get(id)?.chunk;
    if (chunk) {
      this.mailboxes.delete(id);
    } else {
      if (this.mailboxes.has(id)) throw new CollectiveError(`rank ${this.rank}: chunk ${describeKey(key)} from rank ${from} received twice`);
      chunk = await new Promise<Float32Array>((resolve, reject) => {
        const onAbort = () => {
          this.mailboxes.delete(id);
          reject(signal.reason);
        };
        signal.addEventListener('abort', onAbort, { once: true });
        this.mailboxes.set(id, {
          deliver: (c) => {
            signal.removeEventListener('abort', onAbort);
            resolve(c);
          },
        });
      });
    }
    if (chunk.length !== target.length) {
      throw new CollectiveError(`rank ${this.rank}: chunk ${describeKey(key)} from rank ${from} has ${chunk.length} floats, expected ${target.length}`);
    }
    const piece = this.options.pieceElements ?? chunk.length;
    for (let at = 0; at < chunk.length; at += piece) combineInto(target, at, chunk.subarray(at, at + piece), combine);
  }

  async close(): Promise<void> {}

  private checkPeer(peer: number): void {
    if (!Number.isSafeInteger(peer) || peer < 0 || peer >= this.world || peer === this.rank) {
      throw new RangeError(`rank ${this.rank}: no peer rank ${peer} in world ${this.world}`);
    }
  }
}

function mailId(from: number, to: number, key: ChunkKey): string {
  return JSON.stringify([from, to, key.tag, key.phase, key.step]);
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      signal.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    const onAbort = () => {
      clearTimeout(timer);
      reject(signal.reason);
    };
    signal.addEventListener('abort', onAbort, { once: true });
  });
}
