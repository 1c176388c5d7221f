import asciichart from 'asciichart';
import type { KpcoordEvent } from '../../shared/events/events-v1.js';

// The loss curve as a small terminal chart for `kp-coord status` on a TTY, drawn by asciichart
// (one column per point, so long runs are averaged into at most `width` columns).

/** Train loss by step from a run's events; a step trained again after a rollback keeps its newer loss. */
export class LossSeries {
  private readonly byStep = new Map<number, number>();

  add(e: KpcoordEvent): void {
    if (e.kind === 'progress') this.byStep.set(e.event.step, e.event.loss);
  }

  points(): { step: number; loss: number }[] {
    return [...this.byStep].sort((a, b) => a[0] - b[0]).map(([step, loss]) => ({ step, loss }));
  }
}

/** Mean of consecutive points so that at most `width` remain, in order. */
export function downsample(values: readonly number[], width: number): number[] {
  if (values.length <= width) return [...values];
  const out: number[] = [];
  for (let c = 0; c < width; c++) {
    const from = Math.floor((c * values.length) / width);
    const to = Math.floor(((c + 1) * values.length) / width);
    let sum = 0;
    for (let i = from; i < to; i++) sum += values[i]!;
    out.push(sum / (to - from));
  }
  return out;
}

/** The chart with a caption, or null with fewer than two points (nothing to draw). */
export function formatLossChart(points: readonly { step: number; loss: number }[], o: { width: number; height?: number }): string | null {
  if (points.length < 2) return null;
  // The axis labels take about 12 columns of the width.
  const values = downsample(points.map((p) => p.loss), Math.max(8, o.width - 12));
  const chart = asciichart.plot(values, { height: o.height ?? 8, format: (x) => x.toFixed(3).padStart(9) });
  const perColumn = points.length / values.length;
  return `  train loss, steps ${points[0]!.step}-${points.at(-1)!.step}${perColumn > 1 ? ` (${perColumn.toFixed(1)} steps per column)` : ''}\n${chart}`;
}
