#!/usr/bin/env bash
# engine.sh — actiond's engine against ONNX Runtime on the same ONNX file, side by side in
# one run: ResNet-18 (torchvision layout, exported by PyTorch), batch 1, 1 thread by
# default. Also checks the imported model's logits against PyTorch's, and measures the
# SGEMM rate of the OpenBLAS kernel actiond uses (the compute floor).
# usage: bench/engine.sh [--quick] [--size N] [--threads N] [--rounds N] [--iters N]
# Writes bench/results/engine-<date>-<host>.json and prints a Markdown summary.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/.." && pwd)
size=224 threads=1 rounds=7 iters=15
while [ $# -gt 0 ]; do
    case "$1" in
        --quick) rounds=3 iters=8 ;;
        --size) size=$2; shift ;;
        --threads) threads=$2; shift ;;
        --rounds) rounds=$2; shift ;;
        --iters) iters=$2; shift ;;
        *) echo "engine.sh: unknown option $1" >&2; exit 2 ;;
    esac
    shift
done

ACTIOND=${ACTIOND:-$top/actiond}
PY=/usr/bin/python3 # Debian's python3, which has python3-torch
work="$here/work/engine-$size"
mkdir -p "$work" "$here/results"
"$here/setup" >&2

name="resnet18-$size"
if [ ! -f "$work/$name.onnx" ]; then
    "$PY" "$top/tests/python/make_resnet18.py" "$work" --arch resnet18 --size "$size" \
        --name "$name" >&2
fi
"$ACTIOND" import "$work/$name.onnx" -o "$work/$name.adm"
"$ACTIOND" infer -m "$work/$name.adm" --input "$work/$name.input.npy" --output "$work/$name.out.npy"
parity=$("$PY" -c '
import numpy as np, sys
a = np.load(sys.argv[1]).astype(np.float64); b = np.load(sys.argv[2]).astype(np.float64)
print("%.3g" % (np.linalg.norm(a - b) / np.linalg.norm(b)))' "$work/$name.out.npy" "$work/$name.logits.npy")

sgemm=$("$ACTIOND" bench --sgemm --threads "$threads" --json)
: >"$work/rounds.jsonl"
for r in $(seq 1 "$rounds"); do
    a=$("$ACTIOND" bench -m "$work/$name.adm" --threads "$threads" --iters "$iters" --json)
    o=$(node "$here/ort_bench.js" "$work/$name.onnx" --shape "1,3,$size,$size" \
        --threads "$threads" --iters "$iters")
    printf '{"round":%d,"actiond":%s,"ort":%s}\n' "$r" "$a" "$o" >>"$work/rounds.jsonl"
    echo "round $r/$rounds done" >&2
done

out="$here/results/engine-$(date -u +%Y%m%d-%H%M%S)-$(hostname -s).json"
"$PY" - "$work/rounds.jsonl" "$sgemm" "$parity" "$size" "$threads" "$out" <<'PYEOF'
import json, statistics, sys, platform
rounds = [json.loads(l) for l in open(sys.argv[1])]
sgemm = json.loads(sys.argv[2]); parity = float(sys.argv[3])
size, threads, out = int(sys.argv[4]), int(sys.argv[5]), sys.argv[6]
a = [r["actiond"]["median_ms"] for r in rounds]
o = [r["ort"]["median_ms"] for r in rounds]
ratios = [x / y for x, y in zip(a, o)]
flops = rounds[0]["actiond"]["flops"]
cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
res = {
    "model": f"resnet18 3x{size}x{size}", "batch": 1, "threads": threads, "rounds": len(rounds),
    "cpu": cpu, "openblas_core": rounds[0]["actiond"]["openblas_core"],
    "parity_rel_l2": parity,
    "actiond_median_ms": statistics.median(a), "actiond_min_ms": min(a), "actiond_max_ms": max(a),
    "ort_median_ms": statistics.median(o), "ort_min_ms": min(o), "ort_max_ms": max(o),
    "ort_version": rounds[0]["ort"]["version"],
    "ratio_median": statistics.median(ratios), "ratio_min": min(ratios), "ratio_max": max(ratios),
    "gflops": flops / (statistics.median(a) * 1e-3) * 1e-9, "flops": flops,
    "sgemm_gflops": sgemm["sgemm_gflops"],
}
res["fraction_of_sgemm_peak"] = res["gflops"] / res["sgemm_gflops"]
json.dump({"summary": res, "rounds": rounds}, open(out, "w"), indent=1)
print(f"| ResNet-18 3x{size}x{size}, batch 1, {threads} thread(s) | median ms (min–max over {len(rounds)} rounds) |")
print("|---|---|")
print(f"| actiond (OpenBLAS {res['openblas_core']}) | {res['actiond_median_ms']:.2f} ({res['actiond_min_ms']:.2f}–{res['actiond_max_ms']:.2f}) |")
print(f"| ONNX Runtime {res['ort_version']} | {res['ort_median_ms']:.2f} ({res['ort_min_ms']:.2f}–{res['ort_max_ms']:.2f}) |")
print(f"| ratio actiond / ORT, per round | {res['ratio_median']:.3f} ({res['ratio_min']:.3f}–{res['ratio_max']:.3f}) |")
print(f"| actiond GFLOP/s (FLOPs = 2 x MACs) | {res['gflops']:.1f} = {100*res['fraction_of_sgemm_peak']:.0f} % of SGEMM {res['sgemm_gflops']:.1f} |")
print(f"| logits vs PyTorch, relative L2 | {parity:.2g} |")
print(f"\nCPU: {cpu}; results: {out}")
PYEOF
