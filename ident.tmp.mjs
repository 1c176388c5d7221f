import * as ort from 'onnxruntime-node';
import { Graph } from './dist/shared/onnx/graph.js';
import { add } from './dist/shared/onnx/ops.js';
import { serializeGraph } from './dist/shared/onnx/serialize.js';
const N = 11_000_000;
async function make(outputs) {
  const g = new Graph('t');
  const x = g.input('x', 'float32', [N]);
  let y = x; const outs = [];
  for (let i = 0; i < 4; i++) { y = add(y, g.scalar(1, 'float32')); outs.push(y); }
  (outputs === 4 ? outs : [y]).forEach((o, i) => g.output('o' + i, o));
  return ort.InferenceSession.create(serializeGraph(g), { intraOpNumThreads: 1, enableCpuMemArena: true });
}
const feeds = { x: new ort.Tensor('float32', new Float32Array(N), [N]) };
const s1 = await make(1), s4 = await make(4);
const pre = {}; for (let i = 0; i < 4; i++) pre['o' + i] = new ort.Tensor('float32', new Float32Array(N), [N]);
for (let r = 0; r < 4; r++) {
  let t = performance.now(); await s1.run(feeds); const a = performance.now() - t;
  t = performance.now(); await s4.run(feeds); const b = performance.now() - t;
  t = performance.now(); await s4.run(feeds, pre); const c = performance.now() - t;
  console.log(`1 output ${a.toFixed(0)} ms, 4 outputs ${b.toFixed(0)} ms, 4 preallocated ${c.toFixed(0)} ms`);
}
