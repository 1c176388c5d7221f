import { Worker } from 'node:worker_threads';
import { KpCoordError } from '../errors.js';
import type { Tokenizer } from '../tokenizer/tokenizer.js';

// Tokenising is most of `prepare`'s time with a BPE tokenizer (about 60k tokens/s per core with
// @huggingface/tokenizers on Korean news), so it can run on a pool of worker threads, each holding
// its own copy of the tokenizer. Batches go out round-robin and come back in order.

/** Ids of a batch of texts, flat: text k is ids[offsets[k] .. offsets[k + 1]). */
export interface EncodedBatch {
  readonly ids: Int32Array;
  readonly offsets: Int32Array;
}

export interface BatchEncoder {
  encode(texts: readonly string[]): Promise<EncodedBatch>;
  close(): Promise<void>;
}

export function encodeBatch(tokenizer: Tokenizer, texts: readonly string[]): EncodedBatch {
  const lists = texts.map((t) => tokenizer.encode(t));
  const offsets = new Int32Array(texts.length + 1);
  for (let k = 0; k < lists.length; k++) offsets[k + 1] = offsets[k]! + lists[k]!.length;
  const ids = new Int32Array(offsets[texts.length]!);
  for (let k = 0; k < lists.length; k++) ids.set(lists[k]!, offsets[k]!);
  return { ids, offsets };
}

/** Encodes on the calling thread (the byte tokenizer, or one core). */
export class InlineEncoder implements BatchEncoder {
  constructor(private readonly tokenizer: Tokenizer) {}
  encode(texts: readonly string[]): Promise<EncodedBatch> {
    return Promise.resolve(encodeBatch(this.tokenizer, texts));
  }
  close(): Promise<void> {
    return Promise.resolve();
  }
}

/** What encode-worker.ts is started with. */
export type EncodeWorkerData = { readonly spec: string; readonly addedTokens: readonly string[] };

/** Messages between the pool and encode-worker.ts. */
export type EncodeRequest = { readonly id: number; readonly texts: readonly string[] };
export type EncodeReply =
  | { readonly kind: 'ready'; readonly fingerprint: string }
  | { readonly kind: 'done'; readonly id: number; readonly ids: Int32Array; readonly offsets: Int32Array }
  | { readonly kind: 'error'; readonly id: number; readonly message: string };

interface Pending {
  resolve(b: EncodedBatch): void;
  reject(e: Error): void;
}

/** Encodes on `threads` worker threads that load the tokenizer from `spec` themselves (plus `addedTokens`, as withAddedTokens). */
export class WorkerPoolEncoder implements BatchEncoder {
  private readonly pending = new Map<number, Pending>();
  private next = 0;
  private failure: Error | undefined;

  private constructor(private readonly workers: Worker[]) {
    for (const w of workers) {
      w.on('message', (m: EncodeReply) => this.onReply(m));
      w.on('error', (e) => this.fail(new KpCoordError(`tokenizer worker failed: ${e.message}`, { cause: e })));
    }
  }

  /** Start the pool; resolves once every worker has loaded a tokenizer with `fingerprint` (added tokens included). */
  static async start(spec: string, fingerprint: string, threads: number, addedTokens: readonly string[] = []): Promise<WorkerPoolEncoder> {
    const url = new URL('./encode-worker.js', import.meta.url);
    const workers = Array.from({ length: threads }, () => new Worker(url, { workerData: { spec, addedTokens: [...addedTokens] } satisfies EncodeWorkerData }));
    try {
      await Promise.all(
        workers.map(
          (w) =>
            new Promise<void>((resolve, reject) => {
              w.once('error', reject);
              w.once('message', (m: EncodeReply) => {
                if (m.kind === 'ready' && m.fingerprint === fingerprint) resolve();
                else reject(new KpCoordError(`tokenizer worker loaded a different tokenizer from ${spec}`));
              });
            }),
        ),
      );
    } catch (err) {
      await Promise.all(workers.map((w) => w.terminate()));
      throw err;
    }
    return new WorkerPoolEncoder(workers);
  }

  encode(texts: readonly string[]): Promise<EncodedBatch> {
    if (this.failure) return Promise.reject(this.failure);
    const id = this.next++;
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      this.workers[id % this.workers.length]!.postMessage({ id, texts } satisfies EncodeRequest);
    });
  }

  async close(): Promise<void> {
    await Promise.all(this.workers.map((w) => w.terminate()));
  }

  private onReply(m: EncodeReply): void {
    if (m.kind === 'ready') return;
    const p = this.pending.get(m.id);
    if (!p) return;
    this.pending.delete(m.id);
    if (m.kind === 'done') p.resolve({ ids: m.ids, offsets: m.offsets });
    else p.reject(new KpCoordError(`tokenizer worker: ${m.message}`));
  }

  private fail(e: Error): void {
    this.failure = e;
    for (const p of this.pending.values()) p.reject(e);
    this.pending.clear();
  }
}
