// [Note: worker malloc] A training step allocates and frees the same large buffers every time
// (gradient units, gathered parameter units, ORT's outputs copied into JS arrays: tens to
// hundreds of MB each). glibc serves allocations above its mmap threshold with fresh mmaps and
// returns freed memory to the kernel (munmap, heap trimming), so every step page-faults all of it
// in again, and each worker thread gets its own arena that cannot reuse the main arena's free
// space. On this project's VMs a fault is expensive (memory handed back to the host): measured on
// the kobart-news block engine, 512/64 tokens, F+B 2.0-2.5 s with glibc's defaults and 1.3 s with
// these settings; 3.3 s and 1.4 s with the engine in its worker thread (bench/README.md
// "bart-engine"). The settings keep freed memory in the process for the next step, the role
// PyTorch's caching allocator plays: one arena, no mmap for large blocks, no trimming. The peak
// resident set is what the step needs either way (the ZeRO memory formulas bound the peak).
//
// Set for `kp-coord start`'s worker processes (coordinator/local-workers.ts) and in the container
// images (deploy/Dockerfile*), unless GLIBC_TUNABLES is set already. glibc reads it at process
// start only, so a process cannot apply it to itself.

export const WORKER_GLIBC_TUNABLES = 'glibc.malloc.arena_max=1:glibc.malloc.mmap_threshold=4294967296:glibc.malloc.trim_threshold=4294967296';

/** `env` with the worker malloc settings added, unless the user set GLIBC_TUNABLES. */
export function withWorkerMalloc(env: NodeJS.ProcessEnv): NodeJS.ProcessEnv {
  return env.GLIBC_TUNABLES === undefined ? { ...env, GLIBC_TUNABLES: WORKER_GLIBC_TUNABLES } : env;
}
