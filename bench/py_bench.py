#!/usr/bin/python3
"""py_bench.py — times PyTorch or OpenCV DNN on ONNX files, for bench/engine.sh. PyTorch runs
the ONNX graph itself through a small interpreter (each node one torch.nn.functional call, the
weights from the file's initializers), so every engine runs the very same file.
usage: py_bench.py --engine torch|opencv [--iters N] [--warmup N] MODEL.onnx:THREADS...
Each MODEL.onnx has MODEL.inputs.json beside it ({"input name": [shape]}). Prints one JSON
line per model and thread count: median, p90, min and max ms, and the outputs' first values."""
import argparse
import json
import statistics
import sys
import time

import numpy as np
import onnx
from onnx import numpy_helper


def inputs_for(path):
    shapes = json.load(open(path[:-len(".onnx")] + ".inputs.json"))
    rng = np.random.default_rng(0)
    return {k: rng.uniform(-1, 1, size=v).astype(np.float32) for k, v in shapes.items()}


def attrs(node):
    return {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}


def pads2d(a):
    p = a.get("pads", [0, 0, 0, 0])
    if p[0] != p[2] or p[1] != p[3]:
        raise ValueError("asymmetric padding is not supported")
    return (p[0], p[1])


class TorchGraph:
    """An ONNX graph run node by node with torch; covers the ops of ResNet-18 and vgg-small."""

    def __init__(self, path, torch):
        self.t, self.F = torch, torch.nn.functional
        m = onnx.load(path)
        self.nodes = list(m.graph.node)
        self.consts = {i.name: torch.from_numpy(numpy_helper.to_array(i).copy())
                       for i in m.graph.initializer}
        self.outputs = [o.name for o in m.graph.output]

    def op(self, n, x):
        t, F, a = self.t, self.F, attrs(n)
        if n.op_type == "Conv":
            return F.conv2d(x[0], x[1], x[2] if len(x) > 2 else None, a.get("strides", [1, 1]),
                            pads2d(a), a.get("dilations", [1, 1]), a.get("group", 1))
        if n.op_type == "BatchNormalization":
            return F.batch_norm(x[0], x[3], x[4], x[1], x[2], False, 0.0, a.get("epsilon", 1e-5))
        if n.op_type == "Relu":
            return F.relu(x[0])
        if n.op_type == "MaxPool":
            return F.max_pool2d(x[0], a["kernel_shape"], a.get("strides", [1, 1]), pads2d(a),
                                ceil_mode=bool(a.get("ceil_mode", 0)))
        if n.op_type == "AveragePool":
            return F.avg_pool2d(x[0], a["kernel_shape"], a.get("strides", [1, 1]), pads2d(a),
                                ceil_mode=bool(a.get("ceil_mode", 0)),
                                count_include_pad=bool(a.get("count_include_pad", 0)))
        if n.op_type == "GlobalAveragePool":
            return x[0].mean(dim=(2, 3), keepdim=True)
        if n.op_type == "Flatten":
            return t.flatten(x[0], a.get("axis", 1))
        if n.op_type == "Gemm":
            w = x[1] if a.get("transB", 0) else x[1].t()
            return F.linear(x[0] * a.get("alpha", 1.0), w, x[2] * a.get("beta", 1.0) if len(x) > 2 else None)
        if n.op_type in ("Dropout", "Identity"):
            return x[0]
        if n.op_type == "Softmax":
            return t.softmax(x[0], a.get("axis", -1))
        if n.op_type == "Add":
            return x[0] + x[1]
        if n.op_type == "Mul":
            return x[0] * x[1]
        if n.op_type == "ReduceMean":
            return x[0].mean(dim=tuple(a["axes"]), keepdim=bool(a.get("keepdims", 1)))
        raise ValueError(f"op {n.op_type} is not supported")

    def run(self, feeds):
        env = dict(self.consts)
        env.update(feeds)
        for n in self.nodes:
            y = self.op(n, [env[i] if i else None for i in n.input])
            env[n.output[0]] = y
        return [env[o] for o in self.outputs]


def torch_engine(path, threads):
    import torch
    torch.set_num_threads(threads)
    g = TorchGraph(path, torch)
    feeds = {k: torch.from_numpy(v) for k, v in inputs_for(path).items()}

    def run():
        with torch.inference_mode():
            return g.run(feeds)[0].numpy()
    return run, "torch " + torch.__version__


def opencv_engine(path, threads):
    import cv2
    cv2.setNumThreads(threads)
    net = cv2.dnn.readNetFromONNX(path)
    net.setPreferableBackend(cv2.dnn.DNN_BACKEND_OPENCV)
    net.setPreferableTarget(cv2.dnn.DNN_TARGET_CPU)
    feeds = inputs_for(path)
    first_out = onnx.load(path, load_external_data=False).graph.output[0].name

    def run():
        for k, v in feeds.items():
            net.setInput(v, k)
        return net.forward(first_out)
    return run, "opencv " + cv2.__version__


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--engine", choices=["torch", "opencv"], required=True)
    p.add_argument("--iters", type=int, default=20)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("configs", nargs="+")
    a = p.parse_args()
    make = torch_engine if a.engine == "torch" else opencv_engine
    for cfg in a.configs:
        path, threads = cfg.rsplit(":", 1)
        try:
            run, version = make(path, int(threads))
            for _ in range(a.warmup):
                out = run()
            ms = []
            for _ in range(a.iters):
                t0 = time.perf_counter()
                out = run()
                ms.append((time.perf_counter() - t0) * 1e3)
        except Exception as e:  # one unsupported model must not sink the others
            print(json.dumps({"engine": a.engine, "model": path, "threads": int(threads),
                              "error": str(e).splitlines()[0][:200]}), flush=True)
            continue
        ms.sort()
        print(json.dumps({
            "engine": a.engine, "version": version, "model": path, "threads": int(threads),
            "iters": a.iters, "median_ms": statistics.median(ms),
            "p90_ms": ms[min(len(ms) - 1, round(0.9 * (len(ms) - 1)))], "min_ms": ms[0],
            "max_ms": ms[-1], "shape": list(np.asarray(out).shape),
            "out": [float(v) for v in np.asarray(out).ravel()[:16]]}), flush=True)


if __name__ == "__main__":
    sys.exit(main())
