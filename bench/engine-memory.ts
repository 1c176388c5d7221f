import { T5Family } from '../shared/models/t5-family.js';
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { z } from 'zod';
import { T5_PRESETS } from '../shared/models/presets.js';
import { parseT5Config } from '../shared/models/t5-config.js';
import { t5ParamSpecs } from '../shared/models/t5-params.js';
import { FlatLayout } from '../shared/weights/flat-layout.js';
import { initT5Flat } from '../shared/weights/init.js';
import { BlockEngine } from '../worker/engine/block-engine.js';
import { T5Engine } from '../worker/engine/t5-engine.js';
import { randomBatch } from './random-batch.js';

// Peak RSS of the training step, one child process per measurement (getrusage's maxRSS is a
// process-lifetime high-water mark, so phases and settings cannot share a process; it also
// survives exec, hence the shell in between, see measureStepMemory). A child
// initialises the parameters, creates one engine and runs forward-only or forward+backward a few
// times, then reports its peak RSS: after init (parameters + gradient buffer), after the runs.
// bench/engine and bench/block-engine call `measureStepMemory`; `node dist/bench/engine-memory.js
// --preset ...` is the child. `engine` picks the whole-model engine (default) or the block engine
// with activation checkpointing off or on; the block engine's gradient units are copied into the
// gradient buffer as they arrive, so both touch one full gradient.

export interface MemoryProbe {
  readonly preset: string;
  readonly srcLen: number;
  readonly tgtLen: number;
  readonly batch: number;
  readonly phase: 'forward' | 'train';
  readonly memoryArena: boolean;
  readonly memoryPattern: boolean;
  /** Which engine the child builds (default 'whole'). */
  readonly engine?: ProbeEngine;
  /** Runs of the phase, the first a warm-up (default 3). */
  readonly steps?: number;
}

export type ProbeEngine = 'whole' | 'block-off' | 'block-on';

const ProbeResultSchema = z.object({ initMiB: z.number(), peakMiB: z.number() });
export type ProbeResult = z.infer<typeof ProbeResultSchema>;

const MiB = 1024 * 1024;
const peakRssMiB = () => (process.resourceUsage().maxRSS * 1024) / MiB;

export async function measureStepMemory(p: MemoryProbe, threads: number): Promise<ProbeResult> {
  const args = [
    fileURLToPath(import.meta.url), '--preset', p.preset, '--src', String(p.srcLen), '--tgt', String(p.tgtLen), '--batch', String(p.batch),
    '--phase', p.phase, '--arena', p.memoryArena ? 'on' : 'off', '--pattern', p.memoryPattern ? 'on' : 'off', '--threads', String(threads),
    '--engine', p.engine ?? 'whole', '--steps', String(p.steps ?? 3),
  ];
  // Through a shell that forks the child: Linux keeps the RSS high-water mark across exec, so a
  // child forked straight from this process starts with this process's RSS as its maxRSS (a
  // parent holding engines masked a smaller child's peak). A grandchild starts from the shell's.
  const child = spawn('/bin/sh', ['-c', '"$@"; exit $?', 'sh', process.execPath, ...args], { stdio: ['ignore', 'pipe', 'inherit'] });
  let out = '';
  child.stdout.on('data', (d: Buffer) => (out += d.toString()));
  const code = await new Promise<number | null>((resolve) => child.on('close', resolve));
  if (code !== 0) throw new Error(`memory probe ${args.slice(1).join(' ')} exited ${code}`);
  return ProbeResultSchema.parse(JSON.parse(out));
}

async function probeMain(): Promise<void> {
  const { values: v } = parseArgs({
    options: {
      preset: { type: 'string' }, src: { type: 'string' }, tgt: { type: 'string' }, batch: { type: 'string' },
      phase: { type: 'string' }, arena: { type: 'string' }, pattern: { type: 'string' }, threads: { type: 'string' },
      engine: { type: 'string', default: 'whole' }, steps: { type: 'string', default: '3' },
    },
    strict: true,
  });
  const config = parseT5Config(T5_PRESETS[v.preset!], `preset:${v.preset}`);
  const layout = FlatLayout.fromSpecs(t5ParamSpecs(config));
  const params = initT5Flat(config, layout, 1);
  const grad = new Float32Array(layout.totalSize);
  const initMiB = peakRssMiB();
  const batch = randomBatch(config, Number(v.batch), Number(v.src), Number(v.tgt));
  const threads = Number(v.threads);
  const settings = { intraOpThreads: threads, memoryArena: v.arena === 'on', memoryPattern: v.pattern === 'on' };
  let step: () => Promise<unknown>;
  let release: () => Promise<void>;
  if (v.engine === 'whole') {
    const engine = await T5Engine.create(config, settings);
    step = () => (v.phase === 'train' ? engine.forwardBackward(params, grad, batch) : engine.forwardLoss(params, batch));
    release = () => engine.release();
  } else if (v.engine === 'block-off' || v.engine === 'block-on') {
    const engine = await BlockEngine.create(new T5Family(config), { ...settings, dtype: 'float32', dropout: false, checkpointing: v.engine === 'block-on' });
    step = () => (v.phase === 'train' ? engine.forwardBackward(params, batch, undefined, (lo, _hi, g) => grad.set(g, lo)) : engine.forwardLoss(params, batch));
    release = () => engine.release();
  } else throw new Error(`--engine must be whole, block-off or block-on, got '${v.engine}'`);
  for (let i = 0; i < Number(v.steps); i++) await step();
  await release();
  process.stdout.write(JSON.stringify({ initMiB, peakMiB: peakRssMiB() } satisfies ProbeResult));
}

if (process.argv[1] === fileURLToPath(import.meta.url)) await probeMain();
