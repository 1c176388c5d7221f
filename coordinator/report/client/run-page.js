// The run page's browser code, shared by report.html (data inline) and `kp-coord dashboard` (history
// and live events over server-sent events). Plain ES2020 for the browser, not compiled by tsc: the
// server inlines this file as it is, after uPlot (window.uPlot). Everything shown is folded from the
// run's events-v1 events, so a report and the live page of the same run draw the same thing.
(function () {
  'use strict';
  const config = JSON.parse(document.getElementById('kp-data').textContent);
  /** run name -> { run, status, events: [], summary, predictions } */
  const runs = new Map();
  let selected = null;
  const charts = new Map();
  /** The selected run's lifecycle marks, as last folded (the loss chart's draw hook reads them). */
  let currentMarks = [];

  const METRIC_NAMES = {
    seed_f1_at_10: 'F1@10 (team, lenient)',
    seed_jaccard_at_10: 'Jaccard@10 (team, lenient)',
    field_f1_at_5: 'F1@5 (exact)',
    field_f1_at_10: 'F1@10 (exact)',
    field_f1_at_M: 'F1@M (exact)',
    field_f1_at_O: 'F1@O (exact)',
    rouge1: 'ROUGE-1',
    rouge2: 'ROUGE-2',
    rougeL: 'ROUGE-L',
  };

  // Steps are whole numbers: ticks at 1, 2, 5, 10, ... steps apart, never 1.5.
  const STEP_AXIS = { label: 'step', incrs: [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000, 20000, 50000, 100000] };

  function runEntry(name) {
    let r = runs.get(name);
    if (!r) {
      r = { run: name, status: 'running', events: [], summary: null, predictions: [] };
      runs.set(name, r);
    }
    return r;
  }

  // ---- folding events into what the page shows

  function fold(r) {
    const progress = new Map();
    const evals = new Map();
    const marks = [];
    const workers = new Map();
    const timeline = [];
    let generate = null;
    let cfg = null;
    let lastStep = 0;
    let status = r.status;
    let started = null;
    let ended = null;
    let ended_reason = null;
    for (const { kind, event: e } of r.events) {
      if (started === null) started = e.time;
      if (kind === 'progress') {
        // After a rollback the steps are trained again: the newer value replaces the older.
        progress.set(e.step, e);
        lastStep = e.step;
      } else if (kind === 'eval') {
        if ('eval_loss' in e) evals.set(e.step, e);
        else generate = e;
      } else {
        timeline.push({ time: e.time, step: lastStep, text: describe(e) });
        switch (e.event) {
          case 'run_started':
            cfg = e.config;
            break;
          case 'worker_joined': {
            const w = workers.get(e.rank);
            workers.set(e.rank, { rank: e.rank, host: e.host, pid: e.pid, state: 'active', joined: e.time, left: null, reason: null, restarts: w ? w.restarts + (w.state === 'active' ? 0 : 1) : 0 });
            break;
          }
          case 'worker_left': {
            const w = workers.get(e.rank) || { rank: e.rank, host: e.host, pid: e.pid, joined: null, restarts: 0 };
            workers.set(e.rank, Object.assign({}, w, { state: 'lost', left: e.time, reason: e.reason }));
            marks.push({ step: lastStep, kind: 'worker_left', label: `worker ${e.rank} lost` });
            break;
          }
          case 'rolled_back':
            marks.push({ step: lastStep, kind: 'rolled_back', label: `rolled back to ${e.to_step}` });
            lastStep = e.to_step;
            break;
          case 'early_stopped':
            marks.push({ step: e.step, kind: 'early_stopped', label: 'early stop' });
            break;
          case 'finished':
            status = 'finished';
            ended = e.time;
            break;
          case 'failed':
          case 'interrupted': // Ctrl-C: run.json says interrupted too
            status = e.event;
            ended = e.time;
            ended_reason = e.reason;
            break;
        }
      }
    }
    if (r.status !== 'running') status = r.status;
    const steps = [...progress.keys()].sort((a, b) => a - b);
    // A report of a run without events (summary.json only) still has its loss curve.
    const s = r.summary;
    const fromSummary = steps.length === 0 && s ? s.train_loss.map((t) => ({ step: t.step + 1, loss: t.loss })) : null;
    let best = null;
    for (const e of evals.values()) if (e.is_best) best = e;
    const lastEval = [...evals.values()].sort((a, b) => a.step - b.step).at(-1) || null;
    if (s) for (const [rank, rss] of s.worker_peak_rss_bytes.entries()) {
      const w = workers.get(rank) || { rank, host: '-', pid: 0, state: 'finished', joined: null, left: null, reason: null, restarts: 0 };
      workers.set(rank, Object.assign({}, w, { peak_rss: rss }));
    }
    if (status === 'finished') for (const w of workers.values()) if (w.state === 'active') w.state = 'finished';
    return {
      status, started, ended, ended_reason, cfg, generate, marks, timeline, best, lastEval,
      workers: [...workers.values()].sort((a, b) => a.rank - b.rank),
      steps: fromSummary ? fromSummary.map((p) => p.step) : steps,
      loss: fromSummary ? fromSummary.map((p) => p.loss) : steps.map((k) => progress.get(k).loss),
      lr: steps.map((k) => progress.get(k).lr),
      gradNorm: steps.map((k) => progress.get(k).grad_norm),
      sps: steps.map((k) => progress.get(k).samples_per_second),
      tps: steps.map((k) => progress.get(k).tokens_per_second),
      total: cfg ? cfg.total_steps : steps.length > 0 ? progress.get(steps.at(-1)).total_steps : s ? s.steps : null,
      evalSteps: [...evals.keys()].sort((a, b) => a - b),
      evals,
      bytes: s ? s.train_loss.map((t) => [t.step + 1, t.bytes_sent_per_worker]) : [],
    };
  }

  function describe(e) {
    switch (e.event) {
      case 'run_started': return `training started: ${e.config.world} workers, ZeRO stage ${e.config.zero_stage}, ${e.config.total_steps} steps, ${e.config.model}`;
      case 'worker_joined': return `worker ${e.rank} joined (${e.host}, pid ${e.pid})`;
      case 'worker_left': return `worker ${e.rank} lost (${e.host}, pid ${e.pid}): ${e.reason}`;
      case 'checkpoint_saved': return `checkpoint at step ${e.step}: ${e.dir}`;
      case 'rolled_back': return `rolled back to step ${e.to_step}: ${e.reason}`;
      case 'early_stopped': return `early stop at step ${e.step}: ${e.reason}`;
      case 'finished': return `finished at step ${e.step}`;
      case 'failed': return `failed: ${e.reason}`;
      case 'interrupted': return `interrupted (stopped on purpose): ${e.reason}`;
      case 'events_dropped': return `NATS was away: ${e.progress} progress, ${e.eval} eval, ${e.lifecycle} lifecycle events dropped`;
      default: return e.event;
    }
  }

  // ---- drawing

  const esc = (x) => String(x).replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]);
  const fmt = (x, d) => (x === null || x === undefined ? '-' : Number(x).toFixed(d));
  const when = (t) => (t ? new Date(t).toISOString().replace('T', ' ').slice(0, 19) + 'Z' : '-');
  const mib = (b) => (b === undefined ? '-' : `${(b / 1048576).toFixed(0)} MiB`);

  /** Vertical lines with labels for lifecycle marks (a lost worker, a rollback) on a chart. */
  function marksPlugin(getMarks) {
    return {
      hooks: {
        draw: [(u) => {
          const ctx = u.ctx;
          ctx.save();
          ctx.font = `${11 * devicePixelRatio}px sans-serif`;
          for (const [i, m] of getMarks().entries()) {
            const x = Math.round(u.valToPos(m.step, 'x', true));
            ctx.strokeStyle = m.kind === 'rolled_back' ? '#d62728' : m.kind === 'worker_left' ? '#ff7f0e' : '#7f7f7f';
            ctx.fillStyle = ctx.strokeStyle;
            ctx.setLineDash([4, 3]);
            ctx.beginPath();
            ctx.moveTo(x, u.bbox.top);
            ctx.lineTo(x, u.bbox.top + u.bbox.height);
            ctx.stroke();
            ctx.fillText(m.label, x + 4, u.bbox.top + 14 * devicePixelRatio * (i + 1));
          }
          ctx.restore();
        }],
      },
    };
  }

  function chart(id, title, seriesDefs, data, opts) {
    const el = document.getElementById(id);
    const key = `${selected}/${id}`;
    let c = charts.get(id);
    if (c && c.key !== key) {
      c.plot.destroy();
      charts.delete(id);
      c = null;
    }
    if (!c) {
      el.querySelector('.plot').innerHTML = '';
      const plot = new uPlot({
        title, width: 520, height: 240,
        scales: Object.assign({ x: { time: false } }, (opts && opts.scales) || {}),
        series: [{ label: 'step' }].concat(seriesDefs),
        axes: (opts && opts.axes) || [STEP_AXIS, {}],
        plugins: (opts && opts.plugins) || [],
        legend: { show: true },
      }, data, el.querySelector('.plot'));
      c = { key, plot };
      charts.set(id, c);
    } else c.plot.setData(data);
    el.dataset.points = String(data[0].length);
    return el;
  }

  function render() {
    renderRunList();
    const r = runs.get(selected);
    const main = document.getElementById('run');
    if (!r) {
      main.hidden = true;
      return;
    }
    main.hidden = false;
    const v = fold(r);
    currentMarks = v.marks;
    document.getElementById('run-title').textContent = `${r.run}: ${v.status}`;
    document.getElementById('run-meta').innerHTML = [
      v.cfg ? `${esc(v.cfg.model)}, ${v.cfg.world} workers, ZeRO stage ${v.cfg.zero_stage}, global batch ${v.cfg.global_batch_size}, lr ${v.cfg.learning_rate} (${esc(v.cfg.lr_scheduler_type)})` : '',
      `step ${v.steps.at(-1) || 0}/${v.total ?? '?'}; started ${when(v.started)}; ended ${when(v.ended)}${v.ended_reason ? ` (${esc(v.ended_reason)})` : ''}`,
      r.summary ? `restarts ${r.summary.restarts}; wall ${fmt(r.summary.wall_seconds, 1)} s` : '',
    ].filter(Boolean).map((t) => `<div>${t}</div>`).join('');

    const lossEl = chart('chart-loss', 'Training loss', [{ label: 'loss', stroke: '#1f77b4', width: 2, points: { show: true, size: 5 } }], [v.steps, v.loss],
      { plugins: [marksPlugin(() => currentMarks)] });
    lossEl.dataset.marks = v.marks.map((m) => `${m.kind}@${m.step}`).join(' ');
    lossEl.querySelector('.note').textContent = v.marks.map((m) => `step ${m.step}: ${m.label}`).join('; ');
    chart('chart-lr', 'Learning rate', [{ label: 'lr', stroke: '#2ca02c', width: 2 }], [v.steps.slice(0, v.lr.length), v.lr]);
    chart('chart-grad', 'Gradient norm', [{ label: 'grad norm', stroke: '#9467bd', width: 2 }], [v.steps.slice(0, v.gradNorm.length), v.gradNorm]);

    const evalLoss = v.evalSteps.map((k) => v.evals.get(k).eval_loss);
    const bestPoint = v.evalSteps.map((k) => (v.best && v.best.step === k ? v.best.eval_loss : null));
    const evalEl = chart('chart-eval', 'Eval loss', [
      { label: 'eval loss', stroke: '#ff7f0e', width: 2, points: { show: true, size: 6 } },
      { label: 'best', stroke: '#d62728', width: 0, points: { show: true, size: 14, fill: '#d62728' } },
    ], [v.evalSteps, evalLoss, bestPoint]);
    evalEl.dataset.bestStep = v.best ? String(v.best.step) : '';
    evalEl.querySelector('.note').textContent = v.best
      ? `best: step ${v.best.step}, eval loss ${fmt(v.best.eval_loss, 4)}; patience left ${v.lastEval.patience_left === null ? '- (no early stopping)' : v.lastEval.patience_left}`
      : 'no evaluation yet';

    chart('chart-throughput', 'Throughput', [
      { label: 'samples/s', stroke: '#17becf', width: 2, scale: 'samples' },
      { label: 'tokens/s', stroke: '#8c564b', width: 2, scale: 'tokens' },
    ], [v.steps.slice(0, v.sps.length), v.sps, v.tps], { axes: [STEP_AXIS, { scale: 'samples', label: 'samples/s' }, { scale: 'tokens', side: 1, label: 'tokens/s', grid: { show: false } }] });
    const bytesEl = chart('chart-bytes', 'Bytes sent per worker per step (busiest rank)', [{ label: 'MiB', stroke: '#e377c2', width: 2, points: { show: true, size: 4 } }],
      [v.bytes.map((b) => b[0]), v.bytes.map((b) => b[1] / 1048576)]);
    bytesEl.querySelector('.note').textContent = v.bytes.length === 0 ? 'from summary.json, written when the run ends' : '';

    document.getElementById('workers').innerHTML = table(['rank', 'host', 'pid', 'state', 'joined', 'left (reason)', 'restarts', 'peak RSS'],
      v.workers.map((w) => [w.rank, w.host, w.pid, w.state, when(w.joined), w.left ? `${when(w.left)} (${w.reason})` : '-', w.restarts, mib(w.peak_rss)]));
    document.getElementById('timeline').innerHTML = table(['time', 'at step', 'event'], v.timeline.map((t) => [when(t.time), t.step, t.text]));

    const metrics = v.generate ? v.generate.metrics : r.summary && r.summary.generate ? r.summary.generate.metrics : null;
    document.getElementById('scores').innerHTML = metrics
      ? table(['metric', 'value'], Object.entries(metrics).map(([k, x]) => [METRIC_NAMES[k] ? `${METRIC_NAMES[k]} (${k})` : k, fmt(x, 2)]))
      : '<p class="note">keyphrase scores appear when the run has decoded its eval split (predict_with_generate)</p>';
    document.getElementById('predictions').innerHTML = r.predictions.length > 0
      ? table(['id', 'article', 'gold keyphrases', 'generated keyphrases'], r.predictions.map((p) => [p.id, (p.source || '').slice(0, 90) + ((p.source || '').length > 90 ? '…' : ''), p.label, p.prediction]), 'ko')
      : '<p class="note">no decoded eval articles (yet)</p>';
    document.body.dataset.ready = '1';
  }

  function table(head, rows, lang) {
    return `<table${lang ? ` lang="${lang}"` : ''}><thead><tr>${head.map((h) => `<th>${esc(h)}</th>`).join('')}</tr></thead><tbody>${rows
      .map((row) => `<tr>${row.map((c) => `<td>${esc(c)}</td>`).join('')}</tr>`)
      .join('')}</tbody></table>`;
  }

  function renderRunList() {
    const rows = [...runs.values()].map((r) => {
      const v = fold(r);
      return { r, v };
    });
    document.getElementById('runs').innerHTML = `<table><thead><tr><th>run</th><th>state</th><th>step</th><th>started</th><th>ended</th></tr></thead><tbody>${rows
      .map(({ r, v }) => `<tr class="${r.run === selected ? 'selected' : ''}" data-run="${esc(r.run)}" data-state="${v.status}"><td><a href="#run=${encodeURIComponent(r.run)}">${esc(r.run)}</a></td><td class="state-${v.status}">${v.status}</td><td>${v.steps.at(-1) || 0}/${v.total ?? '?'}</td><td>${when(v.started)}</td><td>${when(v.ended)}</td></tr>`)
      .join('')}</tbody></table>`;
  }

  let pending = false;
  function scheduleRender() {
    if (pending) return;
    pending = true;
    setTimeout(() => {
      pending = false;
      if (selected === null || !runs.has(selected)) selected = pickRun();
      render();
    }, 30);
  }

  function pickRun() {
    const m = /run=([^&]+)/.exec(location.hash);
    if (m && runs.has(decodeURIComponent(m[1]))) return decodeURIComponent(m[1]);
    // The most recently started run.
    let best = null;
    for (const r of runs.values()) if (!best || (r.events[0] && best.events[0] && r.events[0].event.time > best.events[0].event.time)) best = r;
    return best ? best.run : null;
  }

  window.addEventListener('hashchange', () => {
    selected = pickRun();
    scheduleRender();
  });

  // ---- data in

  if (config.mode === 'report') {
    for (const r of config.runs) runs.set(r.run, { run: r.run, status: r.status, events: r.events.slice(), summary: r.summary, predictions: r.predictions });
    scheduleRender();
  } else {
    const conn = document.getElementById('connection');
    const es = new EventSource(config.eventsUrl);
    es.addEventListener('reset', () => {
      runs.clear();
      scheduleRender();
    });
    es.addEventListener('kp', (m) => {
      const { run, kind, event } = JSON.parse(m.data);
      runEntry(run).events.push({ kind, event });
      scheduleRender();
    });
    es.addEventListener('files', (m) => {
      const f = JSON.parse(m.data);
      const r = runEntry(f.run);
      Object.assign(r, { summary: f.summary, predictions: f.predictions });
      if (f.status) r.status = f.status;
      scheduleRender();
    });
    es.addEventListener('nats', (m) => {
      const s = JSON.parse(m.data);
      const text = { live: 'live', 'no-stream': 'live (no run has published yet)', connecting: 'connecting', unreachable: 'unreachable, reconnecting…' };
      conn.textContent = `NATS ${s.url}: ${text[s.state] || s.state}`;
      conn.dataset.state = s.state;
    });
    es.onerror = () => {
      conn.textContent = 'dashboard server unreachable, reconnecting…';
      conn.dataset.state = 'server-unreachable';
    };
  }
})();
