import { parentPort, workerData } from 'node:worker_threads';
import { modelFamily } from '../../shared/models/model-spec.js';
import { arrive, move, type EngineThreadData, type FromThread, type ToThread } from './engine-thread-protocol.js';
import { WorkerModel } from '../worker-model.js';
import { BlockEngine } from './block-engine.js';
import { now } from './training-engine.js';
import type { UnitFetch, UnitFetcher } from './unit-params.js';

// The engine thread: runs the block engine's sessions so the main thread's event loop stays free
// for the collectives. Each gradient unit is posted to the main thread as soon as it exists; the
// thread runs ahead by at most `maxUnitsInFlight` units (each a buffer the main thread holds until
// its reduce-scatter is done), then waits for one to be taken.

const data = workerData as EngineThreadData;
const port = parentPort!;
const post = (m: FromThread, transfer: ArrayBuffer[] = []) => port.postMessage(m, transfer);

let inFlight = 0;
let waiting: (() => void) | null = null;
let calls: Promise<void> = Promise.resolve();
const frozen = data.frozen === 'partitioned' ? data.frozen : data.frozen ? await WorkerModel.fromData(data.frozen.model).frozen(data.frozen.seed) : null;
const engine = await BlockEngine.create(modelFamily(data.model), data.options, frozen);
const ranges = (units: readonly { lo: number; hi: number }[]) => units.map((u) => ({ lo: u.lo, hi: u.hi }));
post({ type: 'ready', paramCount: engine.paramCount, units: ranges(engine.units), frozenUnits: ranges(engine.frozenUnits), traces: { train: engine.trainTrace, eval: engine.evalTrace } });

/** Stage 3: the answers to this thread's fetches, by `${call id}/${position}`. */
const fetches = new Map<string, { resolve: (f: UnitFetch) => void; reject: (err: Error) => void }>();
function fetcherFor(id: number): UnitFetcher {
  return {
    fetch: (position) =>
      new Promise((resolve, reject) => {
        fetches.set(`${id}/${position}`, { resolve, reject });
        post({ type: 'fetch', id, position });
      }),
  };
}

port.on('message', (m: ToThread) => {
  if (m.type === 'taken') {
    inFlight--;
    const w = waiting;
    waiting = null;
    w?.();
  } else if (m.type === 'fetched' || m.type === 'fetchFailed') {
    const key = `${m.id}/${m.position}`;
    const answer = fetches.get(key);
    fetches.delete(key);
    if (m.type === 'fetchFailed') answer?.reject(new Error(m.message));
    else answer?.resolve({ units: new Map(m.units.map((u) => [u.unit, arrive(u.values)])), freeAfter: m.freeAfter });
  } else if (m.type === 'release') {
    void engine.release().then(() => {
      post({ type: 'released' });
      port.close();
    });
  } else if (m.type === 'releaseEvaluation') {
    const id = m.id;
    calls = calls.then(async () => {
      await engine.releaseEvaluation();
      post({ type: 'evaluationReleased', id });
    });
  } else {
    // One call at a time, in arrival order (a call from an abandoned round may still be running).
    calls = calls.then(() => run(m));
  }
});

async function run(m: Extract<ToThread, { type: 'forwardBackward' | 'forwardLoss' }>): Promise<void> {
  const params = m.params ? arrive(m.params) : new Float32Array(0);
  const source = m.params ? params : fetcherFor(m.id);
  try {
    if (m.type === 'forwardLoss') {
      const loss = await engine.forwardLoss(source, m.batch);
      post({ type: 'done', id: m.id, loss, params: move(params) }, [params.buffer as ArrayBuffer]);
      return;
    }
    const computeStart = now();
    const loss = await engine.forwardBackward(source, m.batch, m.dropout, async (lo, hi, grad) => {
      const g = grad as Float32Array;
      inFlight++;
      post({ type: 'unit', id: m.id, lo, hi, grad: move(g) }, [g.buffer as ArrayBuffer]);
      if (inFlight > data.maxUnitsInFlight) await new Promise<void>((resolve) => (waiting = resolve));
    });
    post({ type: 'done', id: m.id, loss: { ...loss, computeStart, computeEnd: now() }, params: move(params) }, [params.buffer as ArrayBuffer]);
  } catch (err) {
    const detached = params.buffer.byteLength === 0;
    post({ type: 'failed', id: m.id, message: (err as Error).message, params: detached ? null : move(params) }, detached ? [] : [params.buffer as ArrayBuffer]);
  }
}
