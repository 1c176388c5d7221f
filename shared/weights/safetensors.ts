import { open, type FileHandle } from 'node:fs/promises';
import { endianness } from 'node:os';
import { InputFileError, KpCoordError } from '../errors.js';
import { writeFileAtomically, writeFully } from './atomic-file.js';
import { decodeBf16, decodeF16 } from './half-float.js';
import {
  encodeSafetensorsHeader,
  MAX_HEADER_BYTES,
  parseSafetensorsHeader,
  type Dtype,
  type SafetensorsHeader,
  type TensorInfo,
} from './safetensors-header.js';

// Reading and writing safetensors files (format and validation: ./safetensors-header.ts).
// [Note: memory] The reader is lazy: `open` reads only the header; `readInto` reads one tensor's
// bytes from disk straight into the caller's Float32Array (F32 needs no intermediate buffer at all;
// F16/BF16/F64 go through a bounded scratch buffer). Loading a 1 GB checkpoint into the flat buffer
// therefore costs the flat buffer and nothing more. The writer streams each tensor's bytes from the
// caller's typed arrays (views into the flat buffer) into a temp file that is renamed at the end.

export type { Dtype, TensorInfo } from './safetensors-header.js';

/** Float dtypes `readInto` decodes to float32. */
export const FLOAT_DTYPES: readonly Dtype[] = Object.freeze(['F32', 'F16', 'BF16', 'F64']);

/** Bytes per read() call; also bounds the scratch buffer used for decoding. */
const CHUNK_BYTES = 64 * 1024 * 1024;
const SCRATCH_BYTES = 8 * 1024 * 1024;

function checkLittleEndianHost(): void {
  // Tensors are little-endian on disk and read straight into typed arrays, which use host order.
  if (endianness() !== 'LE') throw new KpCoordError('safetensors I/O needs a little-endian host');
}

export type TensorData = Float32Array | Int32Array | BigInt64Array;

/** An open safetensors file; tensors are read on demand. Close it when done. */
export class SafetensorsFile {
  private readonly byName: ReadonlyMap<string, TensorInfo>;

  private constructor(
    readonly path: string,
    private readonly fh: FileHandle,
    readonly header: SafetensorsHeader,
    /** File offset of the data buffer: 8 + header length. */
    private readonly dataStart: number,
  ) {
    this.byName = new Map(header.tensors.map((t) => [t.name, t]));
  }

  static async open(path: string): Promise<SafetensorsFile> {
    checkLittleEndianHost();
    let fh: FileHandle;
    try {
      fh = await open(path, 'r');
    } catch (cause) {
      throw new InputFileError(path, '', `cannot open: ${(cause as Error).message}`, { cause });
    }
    try {
      const size = (await fh.stat()).size;
      if (size < 8) throw new InputFileError(path, 'header', `file is ${size} bytes, too short for the 8-byte header length`);
      const lengthBytes = Buffer.alloc(8);
      await readFully(fh, lengthBytes, 0, path);
      const headerLength = lengthBytes.readBigUInt64LE(0);
      if (headerLength > BigInt(size - 8)) {
        throw new InputFileError(path, 'header', `header length ${headerLength} runs past the end of the file (${size} bytes)`);
      }
      const n = Number(headerLength);
      if (n > MAX_HEADER_BYTES) throw new InputFileError(path, 'header', `header length ${n} exceeds the ${MAX_HEADER_BYTES}-byte limit`);
      const headerBytes = Buffer.alloc(n);
      await readFully(fh, headerBytes, 8, path);
      const header = parseSafetensorsHeader(headerBytes, size - 8 - n, path);
      return new SafetensorsFile(path, fh, header, 8 + n);
    } catch (err) {
      await fh.close();
      throw err;
    }
  }

  get metadata(): Readonly<Record<string, string>> {
    return this.header.metadata;
  }

  get tensors(): readonly TensorInfo[] {
    return this.header.tensors;
  }

  names(): string[] {
    return this.header.tensors.map((t) => t.name);
  }

  has(name: string): boolean {
    return this.byName.has(name);
  }

  info(name: string): TensorInfo {
    const t = this.byName.get(name);
    if (!t) throw new InputFileError(this.path, `tensor '${name}'`, 'not in this file');
    return t;
  }

  /** Decode a float tensor (F32, F16, BF16, F64) into `dest`, which must have exactly its element count. */
  async readInto(name: string, dest: Float32Array): Promise<void> {
    const t = this.info(name);
    const where = `tensor '${name}'`;
    if (dest.length !== t.numel) {
      throw new InputFileError(this.path, where, `has ${t.numel} elements (shape [${t.shape.join(', ')}]) but the destination holds ${dest.length}`);
    }
    const position = this.dataStart + t.begin;
    switch (t.dtype) {
      case 'F32':
        await readFully(this.fh, new Uint8Array(dest.buffer, dest.byteOffset, dest.byteLength), position, this.path);
        return;
      case 'F16':
      case 'BF16': {
        const decode = t.dtype === 'F16' ? decodeF16 : decodeBf16;
        await this.decodeChunks(t, 2, (bytes, at) => decode(new Uint16Array(bytes.buffer, 0, bytes.length / 2), dest.subarray(at, at + bytes.length / 2)));
        return;
      }
      case 'F64':
        await this.decodeChunks(t, 8, (bytes, at) => dest.set(new Float64Array(bytes.buffer, 0, bytes.length / 8), at));
        return;
      default:
        throw new InputFileError(this.path, where, `dtype ${t.dtype} is not a float type (readable as float32: ${FLOAT_DTYPES.join(', ')})`);
    }
  }

  /**
   * Elements [from, from + dest.length) of an F32 tensor, read straight into `dest`: a part of a
   * checkpoint shard without reading (or allocating) the whole tensor.
   */
  async readF32Slice(name: string, from: number, dest: Float32Array): Promise<void> {
    const t = this.info(name);
    const where = `tensor '${name}'`;
    if (t.dtype !== 'F32') throw new InputFileError(this.path, where, `dtype ${t.dtype}: only F32 tensors are read in slices`);
    if (!Number.isSafeInteger(from) || from < 0 || from + dest.length > t.numel) {
      throw new InputFileError(this.path, where, `has ${t.numel} elements; elements [${from}, ${from + dest.length}) were asked for`);
    }
    await readFully(this.fh, new Uint8Array(dest.buffer, dest.byteOffset, dest.byteLength), this.dataStart + t.begin + 4 * from, this.path);
  }

  /** A float tensor decoded into a new Float32Array. */
  async readFloat32(name: string): Promise<Float32Array> {
    const dest = new Float32Array(this.info(name).numel);
    await this.readInto(name, dest);
    return dest;
  }

  /** An I32 or I64 tensor (e.g. a step counter). */
  async readIntegers(name: string): Promise<Int32Array | BigInt64Array> {
    const t = this.info(name);
    const dest = t.dtype === 'I32' ? new Int32Array(t.numel) : t.dtype === 'I64' ? new BigInt64Array(t.numel) : undefined;
    if (!dest) throw new InputFileError(this.path, `tensor '${name}'`, `dtype ${t.dtype} is not I32 or I64`);
    await readFully(this.fh, new Uint8Array(dest.buffer), this.dataStart + t.begin, this.path);
    return dest;
  }

  /** Any readable tensor: float dtypes as Float32Array, I32 as Int32Array, I64 as BigInt64Array. */
  async read(name: string): Promise<TensorData> {
    const t = this.info(name);
    return FLOAT_DTYPES.includes(t.dtype) ? this.readFloat32(name) : this.readIntegers(name);
  }

  async close(): Promise<void> {
    await this.fh.close();
  }

  /** Read the tensor in chunks through a scratch buffer; `decode(bytes, firstElement)` converts each. */
  private async decodeChunks(t: TensorInfo, elementBytes: number, decode: (bytes: Uint8Array, firstElement: number) => void): Promise<void> {
    const total = t.end - t.begin;
    // A fresh ArrayBuffer (offset 0) keeps the typed-array views over it aligned.
    const scratch = new Uint8Array(Math.min(SCRATCH_BYTES, total));
    for (let done = 0; done < total; ) {
      const bytes = scratch.subarray(0, Math.min(scratch.length, total - done));
      await readFully(this.fh, bytes, this.dataStart + t.begin + done, this.path);
      decode(bytes, done / elementBytes);
      done += bytes.length;
    }
  }
}

/** Fill `target` from `position`, looping over short reads; a premature end of file is an error. */
async function readFully(fh: FileHandle, target: Uint8Array, position: number, path: string): Promise<void> {
  for (let done = 0; done < target.length; ) {
    const length = Math.min(CHUNK_BYTES, target.length - done);
    const { bytesRead } = await fh.read(target, done, length, position + done);
    if (bytesRead === 0) {
      throw new InputFileError(path, '', `file ended at byte ${position + done} while reading ${target.length} bytes from ${position} (truncated or changed while open)`);
    }
    done += bytesRead;
  }
}

/** Read every tensor of a (small) file into memory. */
export async function readSafetensors(path: string): Promise<{ metadata: Readonly<Record<string, string>>; tensors: Map<string, { info: TensorInfo; data: TensorData }> }> {
  const file = await SafetensorsFile.open(path);
  try {
    const tensors = new Map<string, { info: TensorInfo; data: TensorData }>();
    for (const info of file.tensors) tensors.set(info.name, { info, data: await file.read(info.name) });
    return { metadata: file.metadata, tensors };
  } finally {
    await file.close();
  }
}

/** A tensor to write; `data` is typically a view into a larger buffer and is not copied. */
export type WritableTensor =
  | { readonly name: string; readonly dtype: 'F32'; readonly shape: readonly number[]; readonly data: Float32Array }
  | { readonly name: string; readonly dtype: 'I32'; readonly shape: readonly number[]; readonly data: Int32Array }
  | { readonly name: string; readonly dtype: 'I64'; readonly shape: readonly number[]; readonly data: BigInt64Array };

const ARRAY_OF: Record<WritableTensor['dtype'], { name: string; is: (a: unknown) => boolean }> = {
  F32: { name: 'Float32Array', is: (a) => a instanceof Float32Array },
  I32: { name: 'Int32Array', is: (a) => a instanceof Int32Array },
  I64: { name: 'BigInt64Array', is: (a) => a instanceof BigInt64Array },
};

/**
 * Write tensors (in the given order) and string metadata to `path`, atomically: the bytes go to a
 * temp file in the same directory that replaces `path` only when complete and flushed.
 */
export async function writeSafetensors(path: string, tensors: readonly WritableTensor[], metadata?: Readonly<Record<string, string>>): Promise<void> {
  checkLittleEndianHost();
  for (const t of tensors) {
    const numel = t.shape.reduce((a, b) => a * b, 1);
    if (!ARRAY_OF[t.dtype].is(t.data)) throw new RangeError(`tensor '${t.name}': dtype ${t.dtype} needs a ${ARRAY_OF[t.dtype].name}`);
    if (t.data.length !== numel) throw new RangeError(`tensor '${t.name}': shape [${t.shape.join(', ')}] has ${numel} elements, data has ${t.data.length}`);
  }
  const header = encodeSafetensorsHeader(tensors, metadata);
  await writeFileAtomically(path, async (fh) => {
    const prefix = Buffer.alloc(8);
    prefix.writeBigUInt64LE(BigInt(header.length));
    let position = await writeFully(fh, prefix, 0);
    position = await writeFully(fh, header, position);
    for (const t of tensors) {
      position = await writeFully(fh, new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength), position);
    }
  });
}
