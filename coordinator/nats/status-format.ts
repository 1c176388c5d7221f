import type { KpcoordEvent } from '../../shared/events/events-v1.js';
import type { RunState } from './run-state.js';

// Human text for `kp-coord status`: a run's snapshot, the table of runs, and the lines of a live view.

export function formatRunState(s: RunState): string {
  const lines = [`run ${s.run}: ${s.phase}${s.failure ? ` (${s.failure})` : ''}${s.early_stopped ? ' (stopped early)' : ''}`];
  const total = s.total_steps ?? '?';
  lines.push(`  step ${s.step}/${total}  epoch ${s.epoch ?? '-'}  loss ${num(s.loss, 4)}  lr ${s.lr === null ? '-' : s.lr.toExponential(2)}  ETA ${s.eta_seconds === null ? '-' : formatSeconds(s.eta_seconds)}`);
  lines.push(`  eval loss ${num(s.last_eval_loss, 4)}  best ${num(s.best_eval_loss, 4)}${s.patience_left === null ? '' : `  patience left ${s.patience_left}`}`);
  if (s.config) lines.push(`  model ${s.config.model}, ZeRO stage ${s.config.zero_stage}, global batch ${s.config.global_batch_size}, lr ${s.config.learning_rate} (${s.config.lr_scheduler_type})`);
  lines.push(`  workers (${s.workers.length}): ${s.workers.map((w) => `${w.rank}=${w.host}:${w.pid}`).join(' ') || '-'}`);
  lines.push(`  last checkpoint: ${s.last_checkpoint ? `step ${s.last_checkpoint.step} in ${s.last_checkpoint.dir}` : '-'}`);
  const dropped = s.dropped.progress + s.dropped.eval + s.dropped.lifecycle;
  if (dropped > 0) lines.push(`  events dropped while NATS was away: ${s.dropped.progress} progress, ${s.dropped.eval} eval, ${s.dropped.lifecycle} lifecycle`);
  lines.push(`  updated ${s.updated ?? '-'}`);
  return lines.join('\n');
}

export function formatRunTable(states: readonly RunState[]): string {
  const rows = [['RUN', 'PHASE', 'STEP', 'LOSS', 'BEST EVAL', 'WORKERS', 'UPDATED']];
  for (const s of states) rows.push([s.run, s.phase, `${s.step}/${s.total_steps ?? '?'}`, num(s.loss, 4), num(s.best_eval_loss, 4), String(s.workers.length), s.updated ?? '-']);
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
  return rows.map((r) => r.map((c, i) => c.padEnd(widths[i]!)).join('  ').trimEnd()).join('\n');
}

/** The progress bar text of a live view. */
export function formatProgress(s: RunState): string {
  const total = s.total_steps ?? s.step;
  const width = 24;
  const filled = total > 0 ? Math.round((s.step / total) * width) : 0;
  return `[${'#'.repeat(filled)}${'.'.repeat(width - filled)}] step ${s.step}/${total} epoch ${s.epoch ?? '-'} loss ${num(s.loss, 4)} ${num(s.samples_per_second, 1)} samples/s ETA ${s.eta_seconds === null ? '-' : formatSeconds(s.eta_seconds)}`;
}

/** A line for an eval or lifecycle event; null for progress (shown by the bar). */
export function formatEventLine(e: KpcoordEvent): string | null {
  if (e.kind === 'progress') return null;
  if (e.kind === 'eval') {
    const v = e.event;
    if (!('eval_loss' in v)) return `generated the eval split (${v.documents} articles): ${Object.entries(v.metrics).map(([k, x]) => `${k} ${x}`).join(', ')}`;
    return `eval at step ${v.step}: loss ${v.eval_loss.toFixed(4)}${v.is_best ? ' (best)' : ` (best ${v.best_eval_loss.toFixed(4)})`}${v.patience_left === null ? '' : `, patience left ${v.patience_left}`}`;
  }
  const l = e.event;
  switch (l.event) {
    case 'run_started':
      return `training started: ${l.config.world} workers, ZeRO stage ${l.config.zero_stage}, ${l.config.total_steps} steps, model ${l.config.model}`;
    case 'worker_joined':
      return `worker ${l.rank} joined (${l.host}, pid ${l.pid})`;
    case 'worker_left':
      return `worker ${l.rank} left (${l.host}, pid ${l.pid}): ${l.reason}`;
    case 'checkpoint_saved':
      return `checkpoint at step ${l.step} saved in ${l.dir}`;
    case 'rolled_back':
      return `rolled back to step ${l.to_step}: ${l.reason}`;
    case 'early_stopped':
      return `early stop at step ${l.step}: ${l.reason}`;
    case 'finished':
      return `finished at step ${l.step}; summary in ${l.summary_path}`;
    case 'failed':
      return `run failed: ${l.reason}`;
    case 'interrupted':
      return `run interrupted: ${l.reason}`;
    case 'events_dropped':
      return `NATS was away: ${l.progress} progress, ${l.eval} eval, ${l.lifecycle} lifecycle events dropped`;
  }
}

function num(x: number | null, digits: number): string {
  return x === null ? '-' : x.toFixed(digits);
}

function formatSeconds(s: number): string {
  const t = Math.round(s);
  return t >= 3600 ? `${Math.floor(t / 3600)}h${String(Math.floor((t % 3600) / 60)).padStart(2, '0')}m` : `${Math.floor(t / 60)}m${String(t % 60).padStart(2, '0')}s`;
}
