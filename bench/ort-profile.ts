import { readdirSync, readFileSync, rmSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { z } from 'zod';

// onnxruntime's own profiler output (`enableProfiling`: a Chrome trace, one "Node" event per kernel
// with its op type and output shapes, one "Session" `model_run` event per run), summed into what
// a person looks for first: kernel time by op type and the slowest nodes, per run.

const TraceEventSchema = z.object({
  cat: z.string(),
  name: z.string(),
  ts: z.number(),
  dur: z.number().optional(),
  args: z.record(z.string(), z.unknown()).optional(),
});
type TraceEvent = z.infer<typeof TraceEventSchema>;

export interface OpTime {
  readonly op: string;
  /** Kernel milliseconds per run. */
  readonly ms: number;
  /** Kernels of this type per run. */
  readonly count: number;
}

export interface NodeTime {
  readonly node: string;
  readonly op: string;
  readonly ms: number;
  /** Output shapes, e.g. "float[768,50358]". */
  readonly outputs: string;
}

/** Kernels of one op type with the same output shapes: where a kernel shape is slow in context. */
export interface ShapeTime {
  readonly op: string;
  readonly outputs: string;
  /** Milliseconds per run, summed over the group, and kernels per run. */
  readonly ms: number;
  readonly count: number;
}

export interface KernelProfile {
  readonly runs: number;
  /** Wall time of a run as the session saw it, and the sum of its kernels (they differ by gaps and JS). */
  readonly runMs: number;
  readonly kernelMs: number;
  readonly byOp: readonly OpTime[];
  readonly topNodes: readonly NodeTime[];
  /** The 15 (op, output shapes) groups with the most kernel time. */
  readonly topShapes: readonly ShapeTime[];
}

/** The newest profile file written for `prefix` (ORT appends `_<date>.json`), read and removed. */
export function takeProfile(prefix: string, lastRuns: number): KernelProfile {
  const dir = dirname(prefix);
  const files = readdirSync(dir).filter((f) => f.startsWith(`${basename(prefix)}_`) && f.endsWith('.json')).sort();
  const file = files.at(-1);
  if (!file) throw new Error(`no onnxruntime profile next to ${prefix}`);
  const events = z.array(TraceEventSchema).parse(JSON.parse(readFileSync(join(dir, file), 'utf8')));
  for (const f of files) rmSync(join(dir, f));
  return summarise(events, lastRuns);
}

/** Only kernels inside the last `lastRuns` model runs count (earlier ones warm the arena up). */
export function summarise(events: readonly TraceEvent[], lastRuns: number): KernelProfile {
  const runs = events.filter((e) => e.cat === 'Session' && e.name === 'model_run').slice(-lastRuns);
  if (runs.length === 0) throw new Error('the profile has no model_run event');
  const inRun = (e: TraceEvent) => runs.some((r) => e.ts >= r.ts && e.ts <= r.ts + (r.dur ?? 0));
  const kernels = events.filter((e) => e.cat === 'Node' && e.name.endsWith('_kernel_time') && inRun(e));
  const n = runs.length;
  const ops = new Map<string, { us: number; count: number }>();
  const nodes = new Map<string, { op: string; us: number; outputs: string }>();
  for (const e of kernels) {
    const op = String(e.args?.op_name ?? '?');
    const o = ops.get(op) ?? { us: 0, count: 0 };
    o.us += e.dur ?? 0;
    o.count += 1;
    ops.set(op, o);
    const name = e.name.slice(0, -'_kernel_time'.length);
    const node = nodes.get(name) ?? { op, us: 0, outputs: formatShapes(e.args?.output_type_shape) };
    node.us += e.dur ?? 0;
    nodes.set(name, node);
  }
  const byOp = [...ops].map(([op, o]) => ({ op, ms: o.us / 1000 / n, count: o.count / n })).sort((a, b) => b.ms - a.ms);
  const topNodes = [...nodes]
    .map(([node, v]) => ({ node, op: v.op, ms: v.us / 1000 / n, outputs: v.outputs }))
    .sort((a, b) => b.ms - a.ms)
    .slice(0, 10);
  const shapes = new Map<string, { op: string; outputs: string; ms: number; count: number }>();
  for (const node of nodes.values()) {
    const key = `${node.op} ${node.outputs}`;
    const g = shapes.get(key) ?? { op: node.op, outputs: node.outputs, ms: 0, count: 0 };
    g.ms += node.us / 1000 / n;
    g.count += 1;
    shapes.set(key, g);
  }
  const topShapes = [...shapes.values()].sort((a, b) => b.ms - a.ms).slice(0, 15);
  return {
    runs: n,
    runMs: runs.reduce((s, r) => s + (r.dur ?? 0), 0) / 1000 / n,
    kernelMs: byOp.reduce((s, o) => s + o.ms, 0),
    byOp,
    topNodes,
    topShapes,
  };
}

/** ORT writes `[{"float":[1,64,768]}, ...]`. */
function formatShapes(v: unknown): string {
  if (!Array.isArray(v)) return '';
  return v
    .map((o) => Object.entries(o as Record<string, unknown>).map(([type, dims]) => `${type}[${(dims as number[]).join(',')}]`).join(''))
    .join(' ');
}

export function printProfile(title: string, p: KernelProfile, opRows = 12): void {
  console.log(`${title}: onnxruntime profile, mean of ${p.runs} runs: run ${p.runMs.toFixed(1)} ms, kernels ${p.kernelMs.toFixed(1)} ms`);
  console.log('  kernel time by op type (ms per run, share, kernels per run):');
  for (const o of p.byOp.slice(0, opRows)) {
    console.log(`    ${o.op.padEnd(24)} ${o.ms.toFixed(1).padStart(9)}  ${((100 * o.ms) / p.kernelMs).toFixed(1).padStart(5)}%  ${String(Math.round(o.count)).padStart(5)}`);
  }
  const rest = p.byOp.slice(opRows);
  if (rest.length > 0) console.log(`    ${`(${rest.length} more types)`.padEnd(24)} ${rest.reduce((s, o) => s + o.ms, 0).toFixed(1).padStart(9)}`);
  console.log('  top 10 nodes (ms per run, op, output shapes):');
  for (const n of p.topNodes) console.log(`    ${n.ms.toFixed(1).padStart(9)}  ${n.op.padEnd(20)} ${n.node.padEnd(22)} ${n.outputs}`);
  console.log('  top 15 kernel shapes (ms per run summed, kernels, ms each, op, output shapes):');
  for (const g of p.topShapes) {
    console.log(`    ${g.ms.toFixed(1).padStart(9)}  ${String(g.count).padStart(4)}  ${(g.ms / g.count).toFixed(2).padStart(7)}  ${g.op.padEnd(20)} ${g.outputs}`);
  }
}
