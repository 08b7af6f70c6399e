#!/usr/bin/env bash
# engine.sh — actiond's engine against ONNX Runtime, PyTorch and OpenCV DNN on the same ONNX
# files, side by side in one run: ResNet-18 (torchvision layout, exported by PyTorch) at 224 and
# 112, and the default two-stream model (models/default.adm exported by `actiond export`, one
# clip of K segments), batch 1, 1 and 2 threads. Rounds are interleaved (each round runs every
# engine, in an order that rotates) and ratios to actiond are taken within a round. Also: the
# SGEMM rate of actiond's OpenBLAS kernel in the same run (the compute floor of a model is its
# FLOPs over that rate) and the imported ResNets' logits against PyTorch's.
# usage: bench/engine.sh [--quick] [--rounds N] [--iters N] [--threads "1 2"]
# Writes bench/results/engine-<date>-<host>.json and prints a Markdown summary.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/.." && pwd)
rounds=5 iters=20 threads="1 2"
while [ $# -gt 0 ]; do
    case "$1" in
        --quick) rounds=3 iters=8 ;;
        --rounds) rounds=$2; shift ;;
        --iters) iters=$2; shift ;;
        --threads) threads=$2; shift ;;
        *) echo "engine.sh: unknown option $1" >&2; exit 2 ;;
    esac
    shift
done

ACTIOND=${ACTIOND:-$top/actiond}
PY=/usr/bin/python3 # Debian's python3, which has python3-torch, python3-onnx, python3-opencv
work="$here/work/engine"
mkdir -p "$work" "$here/results"
"$here/setup" >&2
[ -x "$ACTIOND" ] || { echo "engine.sh: no $ACTIOND (run make)" >&2; exit 1; }

# Writes MODEL.inputs.json: every graph input with its batch dimension set.
inputs_json() { # model.onnx batch
    "$PY" -c 'import json, sys, onnx
g = onnx.load(sys.argv[1], load_external_data=False).graph
init = {i.name for i in g.initializer}
shapes = {i.name: [d.dim_value or int(sys.argv[2]) for d in i.type.tensor_type.shape.dim]
          for i in g.input if i.name not in init}
json.dump(shapes, open(sys.argv[1][:-5] + ".inputs.json", "w"))' "$1" "$2"
}

models=()
: >"$work/parity.jsonl"
for size in 224 112; do
    name="resnet18-$size"
    if [ ! -f "$work/$name.onnx" ]; then
        "$PY" "$top/tests/python/make_resnet18.py" "$work" --arch resnet18 --size "$size" \
            --name "$name" >&2
    fi
    "$ACTIOND" import "$work/$name.onnx" -o "$work/$name.adm" >&2
    "$ACTIOND" infer -m "$work/$name.adm" --input "$work/$name.input.npy" \
        --output "$work/$name.out.npy" >&2
    "$PY" -c '
import json, sys, numpy as np
a = np.load(sys.argv[1]).astype(np.float64); b = np.load(sys.argv[2]).astype(np.float64)
print(json.dumps({"model": sys.argv[3], "actiond_vs_pytorch_rel_l2": float(np.linalg.norm(a - b) / np.linalg.norm(b))}))' \
        "$work/$name.out.npy" "$work/$name.logits.npy" "$name" >>"$work/parity.jsonl"
    inputs_json "$work/$name.onnx" 1
    models+=("$name")
done
# The default model: one clip is K segments, the batch of both inputs — for actiond too
# (`actiond bench --batch` counts inputs, so a clip is --batch K).
"$ACTIOND" export "$top/models/default.adm" -o "$work/default.onnx" >&2
cp "$top/models/default.adm" "$work/default.adm"
segments=$("$ACTIOND" info "$work/default.adm" --json | jq .segments)
inputs_json "$work/default.onnx" "$segments"
models+=(default)
batch_of() { [ "$1" = default ] && echo "$segments" || echo 1; }

nproc=$(nproc)
engines=(actiond ort torch opencv)
version=$("$ACTIOND" --version | head -1 | cut -d' ' -f2-)
run_engine() { # round engine
    local e=$2 m t cfgs=()
    case "$e" in
        actiond)
            for m in "${models[@]}"; do for t in $threads; do
                "$ACTIOND" bench -m "$work/$m.adm" --batch "$(batch_of "$m")" --threads "$t" \
                    --iters "$iters" --json |
                    jq -c --arg m "$m" --arg v "$version" '{engine: "actiond", model: $m, threads,
                        median_ms, p90_ms, min_ms, flops: (.flops * .batch), openblas_core,
                        version: $v}'
            done; done ;;
        ort)
            for m in "${models[@]}"; do for t in $threads; do
                node "$here/ort_bench.js" "$work/$m.onnx" --inputs "$work/$m.inputs.json" \
                    --threads "$t" --iters "$iters" | jq -c --arg m "$m" '. + {engine: "ort", model: $m}'
            done; done ;;
        torch|opencv)
            for m in "${models[@]}"; do for t in $threads; do cfgs+=("$work/$m.onnx:$t"); done; done
            "$PY" "$here/py_bench.py" --engine "$e" --iters "$iters" "${cfgs[@]}" |
                jq -c '.model |= (split("/")[-1] | rtrimstr(".onnx"))' ;;
    esac | jq -c --argjson r "$1" '. + {round: $r}' >>"$work/rounds.jsonl"
}

: >"$work/rounds.jsonl"
: >"$work/sgemm.jsonl"
load_before=$(cut -d' ' -f1-3 /proc/loadavg)
for r in $(seq 1 "$rounds"); do
    for t in $(printf '%s\n' $threads "$nproc" | sort -un); do
        "$ACTIOND" bench --sgemm --threads "$t" --json | jq -c --argjson r "$r" --argjson t "$t" \
            '. + {round: $r, threads: $t}' >>"$work/sgemm.jsonl"
    done
    # Rotate so no engine always runs first, or always right after the same one.
    for i in 0 1 2 3; do
        run_engine "$r" "${engines[$(((i + r - 1) % 4))]}"
    done
    echo "engine.sh: round $r/$rounds done" >&2
done
load_after=$(cut -d' ' -f1-3 /proc/loadavg)

out="$here/results/engine-$(date -u +%Y%m%d-%H%M%S)-$(hostname -s).json"
"$PY" "$here/engine_report.py" "$work" "$out" "$load_before" "$load_after"
