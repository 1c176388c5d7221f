import { access } from 'node:fs/promises';
import { join } from 'node:path';
import { InputFileError } from '../errors.js';
import { SafetensorsFile, type TensorInfo } from './safetensors.js';
import { readShardedIndex, SAFE_WEIGHTS_INDEX_NAME, SAFE_WEIGHTS_NAME } from './sharded-index.js';

// The tensors of a Hugging Face checkpoint directory, whether stored in one `model.safetensors` or
// sharded behind `model.safetensors.index.json` (transformers prefers the single file when both exist;
// so do we). Opening reads only the headers; tensors are read on demand.

export interface LocatedTensor {
  readonly file: SafetensorsFile;
  readonly info: TensorInfo;
}

export class CheckpointTensors {
  private constructor(
    /** The file that lists the tensors (model.safetensors or the index), for error messages. */
    readonly source: string,
    private readonly files: readonly SafetensorsFile[],
    private readonly byName: ReadonlyMap<string, LocatedTensor>,
  ) {}

  static async open(dir: string): Promise<CheckpointTensors> {
    const single = join(dir, SAFE_WEIGHTS_NAME);
    if (await exists(single)) {
      const file = await SafetensorsFile.open(single);
      return new CheckpointTensors(single, [file], new Map(file.tensors.map((info) => [info.name, { file, info }])));
    }
    const indexPath = join(dir, SAFE_WEIGHTS_INDEX_NAME);
    if (!(await exists(indexPath))) {
      throw new InputFileError(dir, '', `no ${SAFE_WEIGHTS_NAME} or ${SAFE_WEIGHTS_INDEX_NAME} (only safetensors checkpoints are supported)`);
    }
    const index = await readShardedIndex(indexPath);
    const files: SafetensorsFile[] = [];
    try {
      const byFile = new Map<string, SafetensorsFile>();
      for (const name of index.files) {
        const file = await SafetensorsFile.open(join(dir, name));
        files.push(file);
        byFile.set(name, file);
      }
      const byName = new Map<string, LocatedTensor>();
      // Every shard's tensors count (transformers loads whole shards), and no name may appear twice.
      for (const file of files) {
        for (const info of file.tensors) {
          const seen = byName.get(info.name);
          if (seen) throw new InputFileError(indexPath, `tensor '${info.name}'`, `stored twice: in ${seen.file.path} and ${file.path}`);
          byName.set(info.name, { file, info });
        }
      }
      for (const [name, fileName] of index.weightMap) {
        const located = byName.get(name);
        if (!located || located.file !== byFile.get(fileName)) {
          throw new InputFileError(indexPath, `weight_map.${name}`, `names ${fileName}, but that shard has no such tensor`);
        }
      }
      return new CheckpointTensors(indexPath, files, byName);
    } catch (err) {
      await Promise.all(files.map((f) => f.close()));
      throw err;
    }
  }

  names(): string[] {
    return [...this.byName.keys()];
  }

  get(name: string): LocatedTensor | undefined {
    return this.byName.get(name);
  }

  async readInto(name: string, dest: Float32Array): Promise<void> {
    const t = this.byName.get(name);
    if (!t) throw new InputFileError(this.source, `tensor '${name}'`, 'not in this checkpoint');
    await t.file.readInto(name, dest);
  }

  async close(): Promise<void> {
    await Promise.all(this.files.map((f) => f.close()));
  }
}

async function exists(path: string): Promise<boolean> {
  try {
    await access(path);
    return true;
  } catch {
    return false;
  }
}
