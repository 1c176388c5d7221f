import type { EventKind, KpcoordEvent, RunConfigSummary } from '../../shared/events/events-v1.js';

// A run's state as a watcher knows it, folded from its events in order (what `kp-coord status` shows).

export type RunPhase = 'starting' | 'training' | 'stopping' | 'finished' | 'failed' | 'interrupted';

export interface RunState {
  run: string;
  phase: RunPhase;
  config: RunConfigSummary | null;
  step: number;
  total_steps: number | null;
  epoch: number | null;
  loss: number | null;
  lr: number | null;
  samples_per_second: number | null;
  eta_seconds: number | null;
  last_eval_loss: number | null;
  /** predict_with_generate's scores, once published. */
  generate_metrics: Record<string, number> | null;
  best_eval_loss: number | null;
  patience_left: number | null;
  workers: { rank: number; host: string; pid: number }[];
  last_checkpoint: { step: number; dir: string } | null;
  failure: string | null;
  early_stopped: boolean;
  /** Time of the newest event. */
  updated: string | null;
  /** Events the publisher reported dropped while NATS was away. */
  dropped: Record<EventKind, number>;
}

export function emptyRunState(run: string): RunState {
  return {
    run, phase: 'starting', config: null, step: 0, total_steps: null, epoch: null, loss: null, lr: null, samples_per_second: null, eta_seconds: null,
    last_eval_loss: null, generate_metrics: null, best_eval_loss: null, patience_left: null, workers: [], last_checkpoint: null, failure: null, early_stopped: false,
    updated: null, dropped: { progress: 0, eval: 0, lifecycle: 0 },
  };
}

/** Applies one event; a run's events arrive in the order they were produced. */
export function applyEvent(s: RunState, e: KpcoordEvent): RunState {
  s.updated = e.event.time;
  switch (e.kind) {
    case 'progress': {
      const p = e.event;
      Object.assign(s, { step: p.step, total_steps: p.total_steps, epoch: p.epoch, loss: p.loss, lr: p.lr, samples_per_second: p.samples_per_second, eta_seconds: p.eta_seconds });
      if (s.phase === 'starting') s.phase = 'training';
      break;
    }
    case 'eval':
      if ('eval_loss' in e.event) Object.assign(s, { last_eval_loss: e.event.eval_loss, best_eval_loss: e.event.best_eval_loss, patience_left: e.event.patience_left });
      else s.generate_metrics = e.event.metrics;
      break;
    case 'lifecycle': {
      const l = e.event;
      switch (l.event) {
        case 'run_started':
          Object.assign(s, { config: l.config, total_steps: l.config.total_steps, phase: 'training' });
          break;
        case 'worker_joined':
          s.workers = [...s.workers.filter((w) => w.rank !== l.rank), { rank: l.rank, host: l.host, pid: l.pid }].sort((a, b) => a.rank - b.rank);
          break;
        case 'worker_left':
          s.workers = s.workers.filter((w) => w.rank !== l.rank);
          break;
        case 'checkpoint_saved':
          s.last_checkpoint = { step: l.step, dir: l.dir };
          break;
        case 'rolled_back':
          s.step = l.to_step;
          break;
        case 'early_stopped':
          Object.assign(s, { early_stopped: true, phase: 'stopping' });
          break;
        case 'finished':
          Object.assign(s, { phase: 'finished', step: Math.max(s.step, l.step), eta_seconds: 0 });
          break;
        case 'failed':
          Object.assign(s, { phase: 'failed', failure: l.reason });
          break;
        case 'interrupted':
          s.phase = 'interrupted';
          break;
        case 'events_dropped':
          s.dropped = { progress: s.dropped.progress + l.progress, eval: s.dropped.eval + l.eval, lifecycle: s.dropped.lifecycle + l.lifecycle };
          break;
      }
      break;
    }
  }
  return s;
}

export function isEnded(s: RunState): boolean {
  return s.phase === 'finished' || s.phase === 'failed' || s.phase === 'interrupted';
}
