#!/usr/bin/python3
"""compare.py — checks that two runs of actiond (x86-64 native, arm64 under qemu) agree:
eval JSON (accuracies and confusion equal), infer JSON lines and output .npy (within 1e-4).

usage: compare.py eval A.json B.json | infer A.jsonl B.jsonl | npy A.npy B.npy
Prints one line saying what matched or what did not; exit 0 when they agree."""
import json
import sys

import numpy as np

RTOL = 1e-4  # relative, per score or probability: the bound on the logits
# Below this a probability is compared absolutely (to RTOL * FLOOR): a sharp model puts 1e-30
# or a denormal on the classes it rules out, where one rounding of the exponent is a large
# relative change and no decision depends on it.
FLOOR = 1e-9


def fail(msg):
    print(msg)
    sys.exit(1)


def cmp_eval(a, b):
    a, b = json.load(open(a)), json.load(open(b))
    for key in ("top1", "top5", "clips", "confusion", "per_class"):
        if a.get(key) != b.get(key):
            fail(f"eval: {key} differs: {a.get(key)} vs {b.get(key)}")
    for s in ("rgb", "motion"):
        if a["streams"][s]["top1"] != b["streams"][s]["top1"]:
            fail(f"eval: streams.{s}.top1 differs")
    print(f"eval: top1 {a['top1']} on {a['clips']} clips, confusion equal")


def rel(x, y):
    return abs(x - y) / max(abs(x), abs(y), FLOOR)


def cmp_infer(a, b):
    wa = [json.loads(line) for line in open(a) if line.strip()]
    wb = [json.loads(line) for line in open(b) if line.strip()]
    if not wa or len(wa) != len(wb):
        fail(f"infer: {len(wa)} vs {len(wb)} windows")
    worst = 0.0
    for i, (x, y) in enumerate(zip(wa, wb)):
        if (x["start"], x["end"]) != (y["start"], y["end"]):
            fail(f"infer: window {i} spans differ")
        sx = {t["action"]: t["score"] for t in x["top"]}
        sy = {t["action"]: t["score"] for t in y["top"]}
        if sx.keys() != sy.keys():
            fail(f"infer: window {i} lists other actions")
        for k in sx:
            worst = max(worst, rel(sx[k], sy[k]))
        if x["top"][0]["action"] != y["top"][0]["action"]:
            fail(f"infer: window {i} first action {x['top'][0]['action']} vs {y['top'][0]['action']}")
    if worst > RTOL:
        fail(f"infer: scores differ by {worst:.2e} relative (> {RTOL})")
    print(f"infer: {len(wa)} windows, same first action, scores within {worst:.1e} relative")


def cmp_npy(a, b):
    x, y = np.load(a).astype(np.float64), np.load(b).astype(np.float64)
    if x.shape != y.shape:
        fail(f"npy: shapes {x.shape} vs {y.shape}")
    if not np.all(np.isfinite(x)) or not np.all(np.isfinite(y)):
        fail("npy: non-finite values")
    r = float(np.max(np.abs(x - y) / np.maximum(np.maximum(np.abs(x), np.abs(y)), FLOOR)))
    if r > RTOL:
        fail(f"npy: values differ by {r:.2e} relative (> {RTOL})")
    print(f"npy: {x.size} values within {r:.1e} relative")


if __name__ == "__main__":
    if len(sys.argv) != 4 or sys.argv[1] not in ("eval", "infer", "npy"):
        fail(__doc__.splitlines()[3])
    {"eval": cmp_eval, "infer": cmp_infer, "npy": cmp_npy}[sys.argv[1]](sys.argv[2], sys.argv[3])
