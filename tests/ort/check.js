// check.js — runs an ONNX file in ONNX Runtime (npm onnxruntime-node) on a .npy input and
// compares its first output with the .npy output actiond computed; prints the relative L2
// error. Inputs: BASE.input.npy, or BASE.<name>.input.npy for each input of a multi-input model.
// Optional, by hand:  ACTIOND_ONNX_DUMP=DIR build/tests/test_onnx; node check.js DIR/all_ops
// (NODE_PATH must reach onnxruntime-node). Exit 0 when the error is under TOL (default 1e-5).
'use strict';
const fs = require('fs');
const ort = require('onnxruntime-node');

// Our .npy files: version 1.0, '<f4', C order (nn/npy.c writes exactly that).
function readNpy(path) {
  const b = fs.readFileSync(path);
  const hlen = b.readUInt16LE(8);
  const header = b.toString('latin1', 10, 10 + hlen);
  const shape = header.match(/'shape': \(([^)]*)\)/)[1].split(',').filter((s) => s.trim())
    .map(Number);
  const data = new Float32Array(b.buffer.slice(b.byteOffset + 10 + hlen, b.byteOffset + b.length));
  return { shape, data };
}

// One input: BASE.input.npy; several: BASE.<input name>.input.npy each.
function feedsFor(base, names) {
  const feeds = {};
  if (names.length === 1 && fs.existsSync(base + '.input.npy')) {
    const x = readNpy(base + '.input.npy');
    feeds[names[0]] = new ort.Tensor('float32', x.data, x.shape);
    return feeds;
  }
  for (const n of names) {
    const x = readNpy(`${base}.${n}.input.npy`);
    feeds[n] = new ort.Tensor('float32', x.data, x.shape);
  }
  return feeds;
}

(async () => {
  const base = process.argv[2];
  const want = readNpy(base + '.output.npy');
  const s = await ort.InferenceSession.create(base + '.onnx', { logSeverityLevel: 3 });
  const feeds = feedsFor(base, s.inputNames);
  const y = (await s.run(feeds))[s.outputNames[0]].data;
  let num = 0, den = 0;
  for (let i = 0; i < want.data.length; i++) {
    num += (y[i] - want.data[i]) ** 2;
    den += want.data[i] ** 2;
  }
  const err = Math.sqrt(num / den);
  console.log(`${base}.onnx: ${y.length} outputs, relative L2 error vs actiond ${err.toExponential(3)}`);
  const tol = Number(process.env.TOL || '1e-5');
  process.exit(y.length === want.data.length && err < tol ? 0 : 1);
})().catch((e) => { console.error(`check.js: ${e.message}`); process.exit(1); });
