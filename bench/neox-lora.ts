// GPT-NeoX LoRA benchmark: the polyglot-ko-1.3b shape (the preset's seeded init, random weights)
// with LoRA r 8, alpha 32, dropout 0.1 on query_key_value, one training step of 1024 prompt + 64
// completion byte tokens (builtin tokenizer), batch 1, gradient_checkpointing on.
//
//   npm run bench:neox [-- --only b,probe,n1,n2s3,n2s2] [--rounds 2] [--timeout-min 15] [--keep]
// (`--only ...,n1ov` adds section 4, stage 3's default overlap_comm at N = 1: the gathered base units move to the engine thread)
//
// It prints, from one invocation:
//   1. peak RSS per worker of real `kp-coord start` runs at N = 1 and N = 2 (ZeRO stage 3, the
//      frozen base partitioned like the adapters) against B + 4Ψ_base/N + 16Ψ_lora/N + W + A + G:
//      each rank's chunks of the base and of the adapters' parameters, gradients and moments (fp32,
//      padded units), plus G, the most base units gathered at once. The memory runs drop every unit
//      after its use and do not prefetch (stage3_max_reuse_distance 0, stage3_prefetch_bucket_size
//      0: stage 3's lowest-memory setting), so G is exactly the gather schedule's peak;
//      B, W, A measured here (below);
//   2. F+B time of the step and (F+B)/F, the block engine in a child process (the W probe);
//   3. the adapters' share of the parameters and of the bytes sent per worker per step, and bytes /
//      the ring bound at N = 2: stage 3 (from the memory run; it all-gathers the base's units for the
//      forward and again for the backward) and stage 2 (a run on short rows: the bytes depend only
//      on the trainable layout, not on the sequence; the base is never sent).
// Every number is printed with the load average (2 shared cores: times are not comparable across runs).
// The last line is `BENCH_NEOX_LORA {json}`.

import { runNode, stopChild } from './child-run.js';
import { withWorkerMalloc } from '../worker/malloc-settings.js';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { z } from 'zod';
import { STAGE3_KEYS } from '../shared/config/zero-config.js';
import { KpCoordError } from '../shared/errors.js';
import { padCausalBatch } from '../shared/models/causal-batch.js';
import { initLoraFlatRange, loraParamSpecs, type LoraSettings } from '../shared/models/lora.js';
import { modelFamily, resolveModelSpec, type ModelSpec } from '../shared/models/model-spec.js';
import { parseNeoXConfig } from '../shared/models/neox-config.js';
import { neoxParamSpecs } from '../shared/models/neox-params.js';
import { paddedFlatSize } from '../shared/sharding/flat-shard.js';
import { gatherSchedule, type GatherSettings } from '../shared/sharding/gather-schedule.js';
import { hasBackward } from '../shared/autodiff/block-models.js';
import { UnitSharding } from '../shared/sharding/unit-shard.js';
import { FlatLayout } from '../shared/weights/flat-layout.js';
import { initFlatRange } from '../shared/weights/init.js';
import { BlockEngine } from '../worker/engine/block-engine.js';
import { engineTraces, gradientUnits } from '../worker/engine/block-plan.js';

const PRESET = 'polyglot-ko-1.3b';
const TINY_PRESET = 'neox-tiny';
const LORA: LoraSettings = { r: 8, alpha: 32, dropout: 0.1, targetModules: ['query_key_value'] };
const PROMPT_TOKENS = 1024;
const COMPLETION_TOKENS = 64; // the completion's text + eos
const SEED = 42;
const MiB = 1024 * 1024;
const CLI = fileURLToPath(new URL('../coordinator/cli/main.js', import.meta.url));
const SECTIONS = ['b', 'probe', 'n1', 'n2s3', 'n2s2', 'n1ov'] as const;

const loads = () => loadavg().map((x) => x.toFixed(2)).join(' ');
const MB = (bytes: number) => (bytes / 1e6).toFixed(1);
const GB = (bytes: number) => (bytes / 1e9).toFixed(3);

function lorArgs(): { only: Set<string>; timeoutMs: number; keep: boolean; probe: boolean; threads: number; rounds: number } {
  const { values: v } = parseArgs({
    options: {
      only: { type: 'string', default: SECTIONS.filter((x) => x !== 'n1ov').join(',') }, 'timeout-min': { type: 'string', default: '15' }, keep: { type: 'boolean', default: false },
      probe: { type: 'boolean', default: false }, threads: { type: 'string', default: '2' }, rounds: { type: 'string', default: '2' },
    },
    strict: true,
  });
  const only = new Set(v.only.split(',').map((s) => s.trim()));
  for (const s of only) if (!(SECTIONS as readonly string[]).includes(s)) throw new KpCoordError(`--only: unknown section '${s}' (known: ${SECTIONS.join(', ')})`);
  return { only, timeoutMs: Number(v['timeout-min']) * 60_000, keep: v.keep, probe: v.probe, threads: Number(v.threads), rounds: Number(v.rounds) };
}

/** The preset with the run's LoRA settings, as WorkerModel.fromPlan builds it. */
function loraSpec(preset: string): ModelSpec {
  return { ...resolveModelSpec(`preset:${preset}`), lora: LORA };
}

/** Ψ_base (the frozen base), Ψ_lora (the adapters), d, layers. */
function shapes(preset: string) {
  const spec = loraSpec(preset);
  const config = parseNeoXConfig(spec.configRaw);
  const family = modelFamily(spec);
  const layout = FlatLayout.fromSpecs(family.paramSpecs());
  const frozenLayout = FlatLayout.fromSpecs(family.frozenSpecs());
  return { spec, config, family, layout, frozenLayout, psiLora: layout.totalSize, psiBase: frozenLayout.totalSize };
}

// ---------------------------------------------------------------------------------------------
// The probe child: the block engine in-process, F+B then F, its RSS (W) and its times

const ProbeOut = z.object({
  initMiB: z.number(), fbPeakMiB: z.number(), endPeakMiB: z.number(), createSeconds: z.number(),
  fbWarmSeconds: z.number(), fbSecondsEach: z.array(z.number()), fFirstSeconds: z.number(), fSecondsEach: z.array(z.number()), loadsEach: z.array(z.string()), lossSum: z.number(), tokens: z.number(), loadsAfterFb: z.string(), loadsAfterF: z.string(),
});
type ProbeOut = z.infer<typeof ProbeOut>;
const peakRssMiB = () => (process.resourceUsage().maxRSS * 1024) / MiB;

async function probeMain(threads: number, rounds: number): Promise<void> {
  const { family, config, frozenLayout, layout, psiLora } = shapes(PRESET);
  // The worker's init (worker/worker-model.ts): the base from the seed as full training would, the adapters PEFT's way.
  const frozen = initFlatRange(family.frozenSpecs(), frozenLayout, SEED, 0, frozenLayout.totalSize, 1);
  const adapters = initLoraFlatRange(loraParamSpecs(neoxParamSpecs(config), LORA, 'gpt_neox'), SEED, 0, layout.totalSize);
  const grad = new Float32Array(psiLora);
  const len = PROMPT_TOKENS + COMPLETION_TOKENS;
  const ids = Array.from({ length: len }, (_, i) => 3 + ((i * 7919) % 256));
  const batch = padCausalBatch([{ inputIds: ids, labels: ids }], 0);
  const initMiB = peakRssMiB();
  let t = performance.now();
  const engine = await BlockEngine.create(family, { intraOpThreads: threads, dtype: 'float32', checkpointing: true, dropout: true }, frozen);
  const createSeconds = (performance.now() - t) / 1000;
  // Warm-up: one F+B (its peak is the training step's: W is read from it, before any evaluation
  // session exists), one F (builds the evaluation sessions); then F+B and F alternately, so a
  // passing load hits both (bench/engine.ts).
  const step = (i: number) => engine.forwardBackward(adapters, batch, { seed: SEED, step: i, sampleIndices: [0] }, (lo, _hi, g) => grad.set(g, lo));
  const timed = async <T>(f: () => Promise<T>): Promise<[T, number]> => {
    const t0 = performance.now();
    const r = await f();
    return [r, (performance.now() - t0) / 1000];
  };
  const [sums, fbWarmSeconds] = await timed(() => step(0));
  const fbPeakMiB = peakRssMiB();
  const loadsAfterFb = loads();
  const [, fFirstSeconds] = await timed(() => engine.forwardLoss(adapters, batch));
  const fbSecondsEach: number[] = [];
  const fSecondsEach: number[] = [];
  const loadsEach: string[] = [];
  for (let i = 1; i <= rounds; i++) {
    fbSecondsEach.push((await timed(() => step(i)))[1]);
    fSecondsEach.push((await timed(() => engine.forwardLoss(adapters, batch)))[1]);
    loadsEach.push(loads());
  }
  const loadsAfterF = loads();
  await engine.release();
  const out: ProbeOut = { initMiB, fbPeakMiB, endPeakMiB: peakRssMiB(), createSeconds, fbWarmSeconds, fbSecondsEach, fFirstSeconds, fSecondsEach, loadsEach, lossSum: sums.lossSum, tokens: sums.tokenCount, loadsAfterFb, loadsAfterF };
  process.stdout.write(JSON.stringify(out));
}

// ---------------------------------------------------------------------------------------------
// Child processes

process.on('SIGINT', () => {
  stopChild();
  process.exit(130);
});

/**
 * Run a node command to completion (through /bin/sh, so its maxRSS is its own: child-run.ts), with
 * the malloc settings `kp-coord start` gives its workers ([Note: worker malloc]), so the probe's W
 * is measured as a worker would hold it.
 */
function run(args: readonly string[], label: string, timeoutMs: number): Promise<string> {
  return runNode(args, { label, timeoutMs, viaShell: true, env: withWorkerMalloc(process.env) });
}

// ---------------------------------------------------------------------------------------------
// Data: rows that tokenize (byte tokens) to exactly PROMPT_TOKENS + COMPLETION_TOKENS

const HANGUL = [...'가나다라마바사아자차카타파하거너더러머버서어저처커터퍼허고노도로모보소오조초코토포호'];
const syl = (i: number, n: number) => Array.from({ length: n }, (_, k) => HANGUL[(i * 31 + k * 7 + Math.floor(k / HANGUL.length)) % HANGUL.length]).join('');
const bytes = (s: string) => Buffer.byteLength(s, 'utf8');

/**
 * Rows whose causal prompt "generate keyphrases: <title> <body> keyphrases generated:" is
 * `prompt` bytes and whose completion " <phrase>" + eos is `completion` tokens (one byte token per
 * UTF-8 byte, a Hangul syllable 3). Mostly Hangul (the korean_only rule), unique titles.
 */
function writeRows(file: string, count: number, prompt: number, completion: number): void {
  const fixed = bytes('generate keyphrases: ') + bytes(' keyphrases generated:');
  const rows: string[] = [];
  for (let i = 0; i < count; i++) {
    const title = `${syl(i, 8)}${String(i).padStart(4, '0')}`;
    let body = '';
    const room = prompt - fixed - bytes(title) - 1;
    for (let w = 0; bytes(body) + 13 <= room - 3; w++) body += `${body ? ' ' : ''}${syl(i + w, 4)}`;
    body += 'x'.repeat(room - bytes(body)); // ASCII fill to the exact byte count
    const phraseBytes = completion - 2; // " " before it and eos after it
    const phrase = `${syl(i, Math.floor(phraseBytes / 3))}${'k'.repeat(phraseBytes % 3)}`;
    if (bytes(`generate keyphrases: ${title} ${body} keyphrases generated:`) !== prompt || bytes(` ${phrase}`) + 1 !== completion) throw new KpCoordError('writeRows: lengths do not add up');
    rows.push(JSON.stringify({ title, body, keyphrases: phrase }));
  }
  writeFileSync(file, `${rows.join('\n')}\n`);
}

const Lengths = z.object({ mean: z.number(), min: z.number().optional(), max: z.number() });
const Report = z.object({ lengths: z.object({ train: z.object({ input: Lengths, label: Lengths }) }) });

async function prepare(tmp: string, name: string, rows: number, prompt: number, completion: number, timeoutMs: number) {
  const file = join(tmp, `${name}.jsonl`);
  writeRows(file, rows, prompt, completion);
  const out = join(tmp, `${name}-cache`);
  await run([CLI, 'data', 'prepare', '--input', file, '--out', out, '--layout', 'causal', '--preset', 'embedded-sample', '--max-input-tokens', '4096', '--max-target-tokens', '1024', '--eval-ratio', '0.2'], `prepare ${name}`, timeoutMs);
  const r = Report.parse(JSON.parse(readFileSync(join(out, 'report.json'), 'utf8'))).lengths.train;
  if (r.input.max !== prompt || r.input.mean !== prompt || r.label.max !== completion || r.label.mean !== completion) {
    throw new KpCoordError(`${name}: prepared lengths input ${JSON.stringify(r.input)} label ${JSON.stringify(r.label)}, expected ${prompt} + ${completion}`);
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Training runs (kp-coord start)

const Summary = z.object({
  world_size: z.number(),
  zero_stage: z.number(),
  train_loss: z.array(z.object({ step: z.number(), loss: z.number(), seconds: z.number(), worker_seconds: z.number(), bytes_sent_per_worker: z.number() })),
  worker_peak_rss_bytes: z.array(z.number()),
  wall_seconds: z.number(),
});
type Summary = z.infer<typeof Summary>;

interface Run {
  readonly key: string;
  readonly preset: string;
  readonly data: string;
  readonly workers: number;
  readonly stage: 2 | 3;
  readonly steps: number;
  /** overlap_comm (stage 3's default is true: the engine in a worker thread). */
  readonly overlap: boolean;
}

function writeConfig(tmp: string, r: Run): string {
  const file = join(tmp, `${r.key}.yaml`);
  writeFileSync(file, [
    `model: preset:${r.preset}`, `seed: ${SEED}`, `data: ${r.data}`, 'tokenizer: builtin', `output_dir: ${join(tmp, 'runs', r.key)}`,
    'lora:', `  r: ${LORA.r}`, `  lora_alpha: ${LORA.alpha}`, `  lora_dropout: ${LORA.dropout}`, `  target_modules: [${LORA.targetModules.join(', ')}]`,
    'completion_only_loss: false', 'per_device_train_batch_size: 1', 'gradient_accumulation_steps: 1', `max_steps: ${r.steps}`,
    'learning_rate: 1.0e-4', 'lr_scheduler_type: constant', 'eval_strategy: "no"', 'save_strategy: "no"', 'load_best_model_at_end: false',
    'predict_with_generate: false', 'gradient_checkpointing: true', 'zero_optimization:', `  stage: ${r.stage}`, `  overlap_comm: ${r.overlap}`,
    ...(r.stage === 3 ? [`  stage3_max_reuse_distance: ${STAGE3_MEMORY.maxReuseDistance}`, `  stage3_prefetch_bucket_size: ${STAGE3_MEMORY.prefetchBucketSize}`] : []), '',
  ].join('\n'));
  return file;
}

async function train(tmp: string, r: Run, timeoutMs: number): Promise<Summary & { load1: string; loadsAfter: string; seconds: number }> {
  const load1 = loads();
  const t0 = performance.now();
  const threads = Math.max(1, Math.floor(cpus().length / r.workers));
  await run([CLI, 'start', '--config', writeConfig(tmp, r), '--workers', String(r.workers), '--threads-per-worker', String(threads)], r.key, timeoutMs);
  const s = Summary.parse(JSON.parse(readFileSync(join(tmp, 'runs', r.key, 'summary.json'), 'utf8')));
  rmSync(join(tmp, 'runs', r.key, 'final'), { recursive: true, force: true });
  const seconds = (performance.now() - t0) / 1000;
  const out = { ...s, load1, loadsAfter: loads(), seconds };
  console.log(
    `  ${r.key.padEnd(34)} N=${r.workers} x ${threads} thr, stage ${r.stage}: peak RSS per worker ${s.worker_peak_rss_bytes.map(MB).join(', ')} MB; ` +
      `steps ${s.train_loss.map((x) => `${x.step}: ${x.seconds.toFixed(1)} s, sent ${x.bytes_sent_per_worker} B`).join('; ')}; whole run ${seconds.toFixed(0)} s; load ${load1} -> ${out.loadsAfter}`,
  );
  return out;
}

// ---------------------------------------------------------------------------------------------
// Bounds

/** The memory runs' stage-3 settings: every unit dropped after its use, no prefetch (max_live_parameters at its default). */
const STAGE3_MEMORY: GatherSettings = { prefetchBucketSize: 0, maxLiveParameters: STAGE3_KEYS.max_live_parameters.default, maxReuseDistance: 0 };

/**
 * Stage 3 at `world` as the workers run it (bench/zero.ts section 10): the adapters' units and the
 * base's (numbered after them) on the block engine's training trace, the gather schedule under
 * STAGE3_MEMORY, the bytes a rank sends per step (all-gathers of the schedule, one reduce-scatter
 * of every adapter unit, the persistent units' all-gather after the optimizer), how many of them
 * are adapters', each rank's shard sizes, and G = the schedule's most gathered elements at once.
 */
function stage3Plan(world: number) {
  const { family, layout, frozenLayout } = shapes(PRESET);
  const plan = family.blockPlan();
  const moduleOf = (n: string) => family.moduleOf(n);
  const units = gradientUnits(plan, layout, moduleOf);
  const baseUnits = gradientUnits(plan, frozenLayout, moduleOf);
  const backward = new Map(family.blockKinds.map((k) => [k, hasBackward(family.buildBlock(k, { dtype: 'float32', dropout: true }))]));
  const runsBackward = (k: number) => backward.get(plan[k]!.kind)!;
  const T = units.length;
  const train = engineTraces(plan, { units, layout }, { units: baseUnits, layout: frozenLayout }, runsBackward).train;
  const sharding = new UnitSharding(units, world, 0);
  const baseSharding = new UnitSharding(baseUnits, world, 0);
  const size = (u: number) => (u < T ? units[u]!.hi - units[u]!.lo : baseUnits[u - T]!.hi - baseUnits[u - T]!.lo);
  const paddedSize = (u: number) => (u < T ? sharding.paddedSize(u) : baseSharding.paddedSize(u - T));
  const all = [...Array(T + baseUnits.length).keys()];
  const persistent = new Set(all.filter((u) => size(u) < STAGE3_KEYS.param_persistence_threshold.default));
  const schedule = gatherSchedule(train, size, persistent, STAGE3_MEMORY);
  const padded = (us: Iterable<number>) => [...us].reduce((n, u) => n + paddedSize(u), 0);
  const gathered = (adapters: boolean) => schedule.fetch.reduce((n, f) => n + padded(f.filter((u) => !persistent.has(u) && u < T === adapters)), 0);
  const adapterElements = gathered(true) + padded(units.keys()) + padded([...persistent].filter((u) => u < T));
  const baseElements = gathered(false);
  const elements = adapterElements + baseElements;
  const perRank = (n: number) => (4 * n * (world - 1)) / world;
  return {
    units: T, baseUnits: baseUnits.length, persistent: persistent.size,
    adapterShard: sharding.shardSize, baseShard: baseSharding.shardSize, G: 4 * schedule.peakHeld,
    bytes: perRank(elements), adapterBytes: perRank(adapterElements), baseBytes: perRank(baseElements),
    phases: elements / padded(all),
  };
}

/** Stage 2: reduce-scatter + all-gather of the padded adapter buffer, (N-1)/N each. */
const stage2Bound = (psi: number, world: number) => ({ phases: 2, bytes: (2 * (world - 1) * paddedFlatSize(psi, world) * 4) / world });

function table(header: readonly string[], rows: readonly (readonly string[])[]): void {
  const w = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  console.log(header.map((h, i) => h.padEnd(w[i]!)).join('  '));
  console.log(w.map((n) => '-'.repeat(n)).join('  '));
  for (const r of rows) console.log(r.map((c, i) => c.padStart(w[i]!)).join('  '));
}

// ---------------------------------------------------------------------------------------------

async function main(): Promise<void> {
  const args = lorArgs();
  if (args.probe) return probeMain(args.threads, args.rounds);
  const started = performance.now();
  const { config, psiLora, psiBase } = shapes(PRESET);
  const d = config.hiddenSize;
  const L = config.numLayers;
  const T = PROMPT_TOKENS + COMPLETION_TOKENS;
  console.log(`kp-coord NeoX LoRA bench: ${PRESET} (preset init), LoRA r ${LORA.r} alpha ${LORA.alpha} dropout ${LORA.dropout} on ${LORA.targetModules.join(',')}, ${PROMPT_TOKENS} + ${COMPLETION_TOKENS} tokens, batch 1`);
  console.log(`node ${process.version}, ${cpus().length} cpus, sections ${[...args.only].join(',')}; load average at start ${loads()}; ${new Date().toISOString()}`);
  console.log(`Ψ_base ${psiBase} (4Ψ_base ${MB(4 * psiBase)} MB), Ψ_lora ${psiLora} (16Ψ_lora ${MB(16 * psiLora)} MB); adapter share Ψ_lora/(Ψ_lora+Ψ_base) = ${(psiLora / (psiLora + psiBase)).toExponential(4)} (${((100 * psiLora) / (psiLora + psiBase)).toFixed(4)} %)`);
  const tmp = mkdtempSync(join(tmpdir(), 'kp-bench-neox-'));
  const out: Record<string, unknown> = { psiBase, psiLora, adapterShare: psiLora / (psiLora + psiBase), loadStart: loads() };
  try {
    const longData = await prepare(tmp, 'long', 8, PROMPT_TOKENS, COMPLETION_TOKENS, args.timeoutMs);
    console.log(`  data: 8 rows prepared (--layout causal, builtin tokenizer): every prompt ${PROMPT_TOKENS}, every completion ${COMPLETION_TOKENS} tokens (report.json); load ${loads()}`);

    // B: a worker process training neox-tiny (LoRA, same rows, same settings): node, gRPC, the data
    // cache and a tiny engine, i.e. everything a worker holds that does not scale with the model.
    let B: number | null = null;
    if (args.only.has('b')) {
      const r = await train(tmp, { key: 'B neox-tiny N=1 s3', preset: TINY_PRESET, data: longData, workers: 1, stage: 3, steps: 1, overlap: false }, args.timeoutMs);
      B = Math.max(...r.worker_peak_rss_bytes);
      out.B = { bytes: B, load1: r.load1 };
    }

    // A: with checkpointing the forward keeps each block's input hidden state [b, T, d]: the L layers' and the head's.
    const A = 4 * (L + 1) * 1 * T * d;
    console.log(`   A = saved block inputs (L + 1) x b x T x d x 4 B = ${L + 1} x 1 x ${T} x ${d} x 4 = ${MB(A)} MB (counted, not measured)`);

    // W and the times: the block engine in a child.
    let W: number | null = null;
    if (args.only.has('probe')) {
      const load1 = loads();
      const p = ProbeOut.parse(JSON.parse(await run([fileURLToPath(import.meta.url), '--probe', '--threads', '2', '--rounds', String(args.rounds)], 'probe', args.timeoutMs)));
      W = p.fbPeakMiB * MiB - p.initMiB * MiB - A - 4 * psiLora;
      out.probe = { ...p, load1, W, A };
      console.log(`   W = block-engine F+B probe (in a child: frozen base + adapters initialised, engine 2 threads, checkpointing, dropout on): peak after F+B ${MB(p.fbPeakMiB * MiB)} MB - after init ${MB(p.initMiB * MiB)} MB - A - gradient 4Ψ_lora = ${MB(W)} MB (onnxruntime's session arenas and the step's working tensors); load ${load1} -> ${p.loadsAfterFb}`);
      console.log('');
      const median = (xs: readonly number[]) => {
        const s = [...xs].sort((x, y) => x - y);
        return (s[Math.floor((s.length - 1) / 2)]! + s[Math.ceil((s.length - 1) / 2)]!) / 2;
      };
      const fb = { median: median(p.fbSecondsEach), min: Math.min(...p.fbSecondsEach) };
      const f = { median: median(p.fSecondsEach), min: Math.min(...p.fSecondsEach) };
      out.step = { fb, f, ratioMedian: fb.median / f.median, ratioMin: fb.min / f.min };
      console.log(`2. step time, in-process block engine, 2 intra-op threads: warm-up F+B and F (the first F builds the evaluation sessions), then ${args.rounds} rounds of F+B, F alternately`);
      table(
        ['', 'warm-up s', 'timed s (each round)', 'median s', 'fastest s', 'load after each round'],
        [
          ['F+B', p.fbWarmSeconds.toFixed(1), p.fbSecondsEach.map((x) => x.toFixed(1)).join(', '), fb.median.toFixed(1), fb.min.toFixed(1), p.loadsEach.join(' | ')],
          ['F', p.fFirstSeconds.toFixed(1), p.fSecondsEach.map((x) => x.toFixed(1)).join(', '), f.median.toFixed(1), f.min.toFixed(1), ''],
        ],
      );
      console.log(`   (F+B)/F: ${(fb.median / f.median).toFixed(3)} (medians), ${(fb.min / f.min).toFixed(3)} (fastest); loss/token ${(p.lossSum / p.tokens).toFixed(3)} (ln 30080 = ${Math.log(30080).toFixed(3)}); load before ${load1}, after ${p.loadsAfterF}`);
      console.log('   ideal with recompute: about 4 for full training (forward, forward again, backward 2x); under LoRA the backward computes');
      console.log('   no gradient of the frozen weights (input gradients + the adapters\' small ones), so about 3.');
    }

    const formula = (world: number) => {
      if (B === null || W === null) return null;
      const s = stage3Plan(world);
      const terms = { B, base: 4 * s.baseShard, adapters: 16 * s.adapterShard, W, A, G: s.G };
      return { terms, bytes: Object.values(terms).reduce((a, b) => a + b, 0) };
    };

    console.log('');
    console.log('1. peak RSS per worker (kp-coord start, max_steps 1, gradient_checkpointing, eval/save/predict off, stage 3, units dropped after use, no prefetch)');
    console.log('   vs B + 4Ψ_base/N + 16Ψ_lora/N + W + A + G (each rank\'s padded chunks of the base, and of the adapters\' params, grads and moments; G the gather schedule\'s peak)');
    const memRows: Record<string, unknown>[] = [];
    let s3: (Summary & { load1: string }) | null = null;
    for (const [key, world] of [['n1', 1], ['n2s3', 2]] as const) {
      if (!args.only.has(key)) continue;
      try {
        const r = await train(tmp, { key: `${PRESET} N=${world} s3`, preset: PRESET, data: longData, workers: world, stage: 3, steps: 1, overlap: false }, args.timeoutMs);
        if (world === 2) s3 = r;
        const peak = Math.max(...r.worker_peak_rss_bytes);
        const f = formula(world);
        memRows.push({ world, peaks: r.worker_peak_rss_bytes, peak, formula: f, ratio: f ? peak / f.bytes : null, stepSeconds: r.train_loss[0]?.seconds, load1: r.load1, loadsAfter: r.loadsAfter });
      } catch (err) {
        console.log(`   N=${world}: FAILED: ${(err as Error).message.slice(0, 1500)}`);
        memRows.push({ world, error: (err as Error).message.slice(0, 1500) });
      }
    }
    if (memRows.length > 0) {
      const f1 = formula(1);
      if (f1) console.log(`   terms: B ${MB(f1.terms.B)} MB, W ${MB(f1.terms.W)} MB, A ${MB(f1.terms.A)} MB, G ${MB(f1.terms.G)} MB (${(f1.terms.G / 4e6).toFixed(1)} M elements: the largest position, the embedding table or the head); the per-rank terms below`);
      table(
        ['N', 'peak MB (each worker)', '4Ψ_base/N MB', '16Ψ_lora/N MB', 'formula MB', 'measured/formula', '< 24 GB', 'step s', 'load before', 'load after'],
        memRows.filter((x) => !('error' in x)).map((x) => {
          const f = x.formula as ReturnType<typeof formula>;
          return [`${x.world}`, (x.peaks as number[]).map(MB).join(', '), f ? MB(f.terms.base) : '-', f ? MB(f.terms.adapters) : '-', f ? MB(f.bytes) : '-', x.ratio === null ? '-' : (x.ratio as number).toFixed(3), (x.peak as number) < 24e9 ? 'yes' : 'NO', `${(x.stepSeconds as number).toFixed(1)}`, `${x.load1}`, `${x.loadsAfter}`];
        }),
      );
    }
    out.memory = memRows;

    console.log('');
    console.log('3. bytes sent per worker per step (summary.json bytes_sent_per_worker) / the ring bound, N=2, and the adapters\' share of the bound');
    const bytesRows: string[][] = [];
    const b3 = stage3Plan(2);
    if (s3) {
      const sent = Math.max(...s3.train_loss.map((x) => x.bytes_sent_per_worker));
      bytesRows.push(['3', `${b3.phases.toFixed(3)} (${b3.persistent}/${b3.units + b3.baseUnits} units persistent)`, `${b3.bytes}`, `${sent}`, (sent / b3.bytes).toFixed(4), `${((100 * b3.adapterBytes) / b3.bytes).toFixed(4)} %`, 'long rows (section 1 run)', s3.load1]);
      out.bytesStage3 = { bound: b3, sent };
    }
    if (args.only.has('n2s2')) {
      try {
        const shortData = await prepare(tmp, 'short', 8, 96, 16, args.timeoutMs);
        const r = await train(tmp, { key: `${PRESET} N=2 s2 short rows`, preset: PRESET, data: shortData, workers: 2, stage: 2, steps: 2, overlap: false }, args.timeoutMs);
        const b2 = stage2Bound(psiLora, 2);
        const sent = Math.max(...r.train_loss.map((x) => x.bytes_sent_per_worker));
        bytesRows.push(['2', '2', `${b2.bytes}`, `${sent}`, (sent / b2.bytes).toFixed(4), '100 %', '96 + 16 token rows, 2 steps', r.load1]);
        out.bytesStage2 = { bound: b2, sent, steps: r.train_loss };
      } catch (err) {
        console.log(`   stage 2: FAILED: ${(err as Error).message.slice(0, 1500)}`);
      }
    }
    console.log('   bound = (N-1)/N x 4 B x elements moved: stage 2 reduce-scatter + all-gather of the padded adapter buffer (the base is never sent);');
    console.log('   stage 3 the gather schedule\'s all-gathers (the base\'s units included: forward, then again for the backward) + one reduce-scatter of');
    console.log('   every adapter unit + the persistent units\' all-gather after the optimizer (bench/zero.ts section 10). phases = elements moved / all units\' padded elements.');
    table(['stage', 'phases', 'bound B', 'sent B', 'sent/bound', 'adapters\' share', 'run', 'load before'], bytesRows);

    // Stage 3's default overlap_comm (true) at N = 1: the engine in a worker thread, the base's
    // gathered units moved (transferred) to it position by position like the adapters'.
    if (args.only.has('n1ov')) {
      console.log('');
      console.log('4. N=1, stage 3 with its default overlap_comm true (engine in a worker thread; gathered base units are moved to it)');
      try {
        const r = await train(tmp, { key: `${PRESET} N=1 s3 overlap`, preset: PRESET, data: longData, workers: 1, stage: 3, steps: 1, overlap: true }, args.timeoutMs);
        const f = formula(1);
        const peak = Math.max(...r.worker_peak_rss_bytes);
        console.log(`   peak ${MB(peak)} MB; formula ${f ? MB(f.bytes) : '-'} MB, measured/formula ${f ? (peak / f.bytes).toFixed(3) : '-'}; load ${r.load1} -> ${r.loadsAfter}`);
        out.overlapN1 = { peak, load1: r.load1, step: r.train_loss };
      } catch (err) {
        console.log(`   FAILED: ${(err as Error).message.slice(0, 1500)}`);
      }
    }
  } finally {
    if (args.keep) console.log(`kept ${tmp}`);
    else rmSync(tmp, { recursive: true, force: true });
  }
  out.loadEnd = loads();
  console.log('');
  console.log(`load average at end: ${loads()}; bench took ${((performance.now() - started) / 1000).toFixed(0)} s`);
  console.log(`BENCH_NEOX_LORA ${JSON.stringify(out)}`);
}

await main();
