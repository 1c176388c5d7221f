import { randomBytes } from 'node:crypto';
import { open, rename, rm, type FileHandle } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';

// Files are written to a temporary sibling, flushed, and renamed over the target: a reader sees the
// old file or the complete new one, never a partial write (rename is atomic within a directory).

/** Write all of `bytes` at `position`, looping over short writes. Returns the position after it. */
export async function writeFully(fh: FileHandle, bytes: Uint8Array, position: number): Promise<number> {
  let done = 0;
  while (done < bytes.length) {
    const { bytesWritten } = await fh.write(bytes, done, bytes.length - done, position + done);
    done += bytesWritten;
  }
  return position + done;
}

/** Create `path` atomically; `write` fills the open temporary file. */
export async function writeFileAtomically(path: string, write: (fh: FileHandle) => Promise<void>): Promise<void> {
  const dir = dirname(path);
  const temp = join(dir, `.${basename(path)}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`);
  const fh = await open(temp, 'wx');
  try {
    await write(fh);
    await fh.sync();
  } catch (err) {
    await fh.close();
    await rm(temp, { force: true });
    throw err;
  }
  await fh.close();
  try {
    await rename(temp, path);
  } catch (err) {
    await rm(temp, { force: true });
    throw err;
  }
  await syncDirectory(dir);
}

/** Write a whole small file (JSON, text) atomically. */
export async function writeBytesAtomically(path: string, bytes: Uint8Array | string): Promise<void> {
  const data = typeof bytes === 'string' ? Buffer.from(bytes, 'utf8') : bytes;
  await writeFileAtomically(path, async (fh) => {
    await writeFully(fh, data, 0);
  });
}

/** Make the rename durable. Some filesystems refuse fsync on a directory; the rename still happened. */
async function syncDirectory(dir: string): Promise<void> {
  let fh: FileHandle | undefined;
  try {
    fh = await open(dir, 'r');
    await fh.sync();
  } catch {
    // Best effort by design: durability of the directory entry, not correctness of the file.
  } finally {
    await fh?.close();
  }
}
