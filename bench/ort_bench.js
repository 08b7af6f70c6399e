// ort_bench.js — times ONNX Runtime (npm onnxruntime-node) on one ONNX file, for the
// side-by-side engine comparison in bench/engine.sh. Prints one JSON line.
// usage: node ort_bench.js MODEL.onnx (--shape 1,3,224,224 | --inputs MODEL.inputs.json)
//                          [--threads N] [--iters N] [--warmup N]
// --shape feeds the first input; --inputs names every input's shape ({"rgb": [3,3,112,112]}).
'use strict';
const ort = require('onnxruntime-node');

function parseArgs(argv) {
  const o = { threads: 1, iters: 20, warmup: 3, shape: null, inputs: null, model: null };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--threads') o.threads = parseInt(argv[++i], 10);
    else if (a === '--iters') o.iters = parseInt(argv[++i], 10);
    else if (a === '--warmup') o.warmup = parseInt(argv[++i], 10);
    else if (a === '--shape') o.shape = argv[++i].split(',').map((x) => parseInt(x, 10));
    else if (a === '--inputs') o.inputs = JSON.parse(require('fs').readFileSync(argv[++i], 'utf8'));
    else if (!o.model) o.model = a;
    else throw new Error(`unexpected argument ${a}`);
  }
  if (!o.model || (!o.shape && !o.inputs)) {
    throw new Error('usage: ort_bench.js MODEL.onnx (--shape N,C,H,W | --inputs FILE.json)');
  }
  return o;
}

function quantile(sorted, q) {
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.round(q * (sorted.length - 1))))];
}

async function main() {
  const o = parseArgs(process.argv.slice(2));
  const session = await ort.InferenceSession.create(o.model, {
    intraOpNumThreads: o.threads,
    interOpNumThreads: 1,
    executionMode: 'sequential',
    graphOptimizationLevel: 'all',
  });
  const shapes = o.inputs || { [session.inputNames[0]]: o.shape };
  const feeds = {};
  let r = 12345;
  for (const [name, shape] of Object.entries(shapes)) {
    const n = shape.reduce((a, b) => a * b, 1);
    const data = new Float32Array(n);
    for (let i = 0; i < n; i++) {
      r = (r * 1103515245 + 12345) >>> 0;
      data[i] = (r / 4294967296) * 2 - 1;
    }
    feeds[name] = new ort.Tensor('float32', data, shape);
  }
  for (let i = 0; i < o.warmup; i++) await session.run(feeds);
  const ms = [];
  for (let i = 0; i < o.iters; i++) {
    const t0 = process.hrtime.bigint();
    await session.run(feeds);
    ms.push(Number(process.hrtime.bigint() - t0) / 1e6);
  }
  ms.sort((a, b) => a - b);
  console.log(JSON.stringify({
    engine: 'onnxruntime-node', version: require('onnxruntime-node/package.json').version,
    threads: o.threads, iters: o.iters, median_ms: quantile(ms, 0.5), p90_ms: quantile(ms, 0.9),
    min_ms: ms[0], max_ms: ms[ms.length - 1],
  }));
}

main().catch((e) => {
  console.error(`ort_bench: ${e.message}`);
  process.exit(1);
});
