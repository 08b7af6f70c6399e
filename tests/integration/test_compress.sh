#!/usr/bin/env bash
# test_compress.sh — `actiond compress` as a user runs it: flags, the data-free methods on the
# default model, an ONNX-imported ResNet-18 within its budget, and a compressed model that ONNX
# Runtime runs to the same outputs.
. "$(dirname "$0")/lib.sh"
top="$(cd "$(dirname "$0")/../.." && pwd)"
model="$top/models/default.adm"

expect_status "compress without -m" 2 "$ACTIOND" compress -o "$TMP/x.adm"
expect_status "a bad --prune" 2 "$ACTIOND" compress -m "$model" -o "$TMP/x.adm" --prune svd
expect_match "names the methods" 'nb, l1, bn, random or none' "$ERR"
expect_status "a zero budget" 2 "$ACTIOND" compress -m "$model" -o "$TMP/x.adm" --target-flops 0
expect_status "a budget that is no number" 2 "$ACTIOND" compress -m "$model" -o "$TMP/x.adm" \
    --target-flops lots
expect_status "a budget over 1" 2 "$ACTIOND" compress -m "$model" -o "$TMP/x.adm" \
    --target-params 1.5
expect_status "nb needs a data set" 2 "$ACTIOND" compress -m "$model" -o "$TMP/x.adm" \
    --ranks uniform --finetune-epochs 0
expect_match "says so" '-d DATASET' "$ERR"
expect_lines "in one line" 1 "$ERR"
expect_status "three fine-tuning epoch counts" 2 "$ACTIOND" compress -m "$model" -o "$TMP/x.adm" \
    --finetune-epochs 1,2,3
expect_match "one value or two" '--finetune-epochs takes one value or two' "$ERR"
expect_lines "in one line" 1 "$ERR"
expect_status "a stage's learning rate that is no number" 2 "$ACTIOND" compress -m "$model" \
    -o "$TMP/x.adm" --finetune-lr 0.005,fast
expect_match "names the flag" '--finetune-lr' "$ERR"
expect_status "an empty stage value" 2 "$ACTIOND" compress -m "$model" -o "$TMP/x.adm" \
    --finetune-epochs 4,
expect_status "per-stage epochs without data" 2 "$ACTIOND" compress -m "$model" -o "$TMP/x.adm" \
    --prune l1 --ranks uniform --finetune-epochs 0,3
expect_match "fine-tuning needs data" 'fine-tuning needs a data set' "$ERR"
expect_status "a distillation temperature below 1" 2 "$ACTIOND" compress -m "$model" \
    -o "$TMP/x.adm" --distill-temp 0.5
expect_match "names the flag and its range" '--distill-temp must be a number in \[1, 100\]' "$ERR"
expect_lines "in one line" 1 "$ERR"
expect_status "a distillation weight of 0" 2 "$ACTIOND" compress -m "$model" -o "$TMP/x.adm" \
    --distill-weight 0
expect_match "names the flag" '--distill-weight must be a number' "$ERR"
expect_status "a fused distillation weight over 1" 2 "$ACTIOND" compress -m "$model" \
    -o "$TMP/x.adm" --distill-fused 2
expect_match "names the flag and its range" '--distill-fused must be a number in \[0, 1\]' "$ERR"
expect_status "fused-term weights of neither kind" 2 "$ACTIOND" compress -m "$model" \
    -o "$TMP/x.adm" --distill-fused 0.5 --distill-fused-weights teacher
expect_match "names the choices" '--distill-fused-weights must be own or input' "$ERR"
expect_lines "in one line" 1 "$ERR"
expect_status "the input's fusion weights without the fused term" 2 "$ACTIOND" compress \
    -m "$model" -o "$TMP/x.adm" --distill --distill-fused-weights input
expect_match "says what it needs" 'needs --distill-fused' "$ERR"
expect_status "a negative seed" 2 "$ACTIOND" compress -m "$model" -o "$TMP/x.adm" --seed -3
expect_match "names the flag" '--seed must be a whole number' "$ERR"
expect_lines "in one line" 1 "$ERR"
expect_status "distillation without data" 2 "$ACTIOND" compress -m "$model" -o "$TMP/x.adm" \
    --prune l1 --ranks uniform --finetune-epochs 0 --distill-weight 0.3
expect_match "says it needs data" 'without --distill' "$ERR"
expect_status "a missing model" 1 "$ACTIOND" compress -m "$TMP/none.adm" -o "$TMP/x.adm" \
    --prune l1 --ranks uniform --finetune-epochs 0
expect_status "a budget the floors cannot meet" 1 "$ACTIOND" compress -m "$model" -o "$TMP/x.adm" \
    --prune l1 --ranks none --finetune-epochs 0 --target-flops 0.001
expect_match "says why" 'cost' "$ERR"
expect_status "a latency target that is no number" 2 "$ACTIOND" compress -m "$model" \
    -o "$TMP/x.adm" --target-latency fast
expect_status "a latency target without a decomposition" 2 "$ACTIOND" compress -m "$model" \
    -o "$TMP/x.adm" --prune l1 --ranks none --finetune-epochs 0 --target-latency 4x
expect_match "names the flag and the fix" '--target-latency.*--ranks' "$ERR"
expect_lines "in one line" 1 "$ERR"
expect_status "l1 + vbmf under a latency limit of 4x, no data" 0 "$ACTIOND" compress \
    -m "$model" -o "$TMP/l.adm" --prune l1 --ranks vbmf --finetune-epochs 0 \
    --target-latency 4x --report "$TMP/l.json" --latency-runs 3
expect_match "logs the table" 'latency table of 14 layers' "$ERR"
if jq -e '.target_latency == 0.25 and .latency_predicted > 0 and .latency_predicted <= 0.25' \
    "$TMP/l.json" >/dev/null; then
    ok "the prediction is within the limit ($(jq .latency_predicted "$TMP/l.json"))"
else
    not_ok "the prediction is within the limit ($(jq .latency_predicted "$TMP/l.json"))"
fi
expect_match "logs the check in measured time" 'latency of the choice .* measured' "$ERR"
# the check's second choice, when the first was measured over the limit, keeps to its table limit
if jq -e '.latency_check.measured > 0 and .latency_check.predicted > 0 and
          (if .latency_check.measured > 0.25
           then (.latency_check.retarget - 0.25 * .latency_check.predicted
                 / .latency_check.measured) as $d | $d < 1e-5 and $d > -1e-5
                and .latency_predicted <= .latency_check.retarget + 1e-6
           else .latency_check.retarget == null end)' "$TMP/l.json" >/dev/null; then
    ok "the report holds the check ($(jq -c .latency_check "$TMP/l.json"))"
else
    not_ok "the report holds the check ($(jq -c .latency_check "$TMP/l.json"))"
fi

# flops of the first and the last point of a report
points() { jq -r '[.points[0].flops, .points[-1].flops, .points[0].params, .points[-1].params] | @tsv' "$1"; }

expect_status "l1 + uniform to 5x fewer FLOPs and 10x fewer params, no data" 0 "$ACTIOND" \
    compress -m "$model" -o "$TMP/c.adm" --prune l1 --ranks uniform --finetune-epochs 0 \
    --target-flops 5x --target-params 0.1 --report "$TMP/c.json" --latency-runs 3
expect_match "prints the stages" 'decomposed' "$OUT"
read -r f0 f1 p0 p1 < <(points "$TMP/c.json")
if [ $((f1 * 5)) -le "$f0" ] && [ $((p1 * 10)) -le "$p0" ]; then
    ok "within both budgets ($f0 -> $f1 FLOPs, $p0 -> $p1 params)"
else
    not_ok "within both budgets ($f0 -> $f1 FLOPs, $p0 -> $p1 params)"
fi
expect_status "the result loads" 0 "$ACTIOND" info "$TMP/c.adm"
expect_match "with Tucker layers" 'TuckerConv' "$OUT"

# ONNX Runtime agrees with the compressed two-stream model.
# Inputs shaped from the model's metadata: K segments, 2L motion channels.
read -r k l < <("$ACTIOND" info "$TMP/c.adm" --json | jq -r '[.segments, .motion_len] | @tsv')
/usr/bin/python3 -c 'import numpy as np, sys
k, l = int(sys.argv[3]), int(sys.argv[4])
r = np.random.default_rng(1)
np.save(sys.argv[1], r.standard_normal((k, 3, 112, 112)).astype("<f4"))
np.save(sys.argv[2], r.standard_normal((k, 2 * l, 112, 112)).astype("<f4"))' \
    "$TMP/c.rgb.input.npy" "$TMP/c.motion.input.npy" "$k" "$l"
expect_status "infer on tensors" 0 "$ACTIOND" infer -m "$TMP/c.adm" \
    --input "rgb=$TMP/c.rgb.input.npy" --input "motion=$TMP/c.motion.input.npy" \
    --output "$TMP/c.output.npy"
expect_status "export" 0 "$ACTIOND" export "$TMP/c.adm" -o "$TMP/c.onnx"
ort="$top/bench/node_modules"
if [ -d "$ort/onnxruntime-node" ]; then
    expect_status "ONNX Runtime gives the same scores (1e-4)" 0 \
        env NODE_PATH="$ort" TOL=1e-4 node "$top/tests/ort/check.js" "$TMP/c"
    echo "# $OUT"
else
    not_ok "ONNX Runtime is installed (scripts/install-deps)"
fi

# An ONNX-imported ResNet-18 (random weights), data-free, to 0.2 of its FLOPs.
if /usr/bin/python3 "$top/tests/python/make_resnet18.py" "$TMP" --size 64 --name r18 \
    >"$TMP/py.log" 2>&1; then
    ok "ResNet-18 generated"
else
    not_ok "ResNet-18 generated: $(tail -1 "$TMP/py.log")"
fi
expect_status "import" 0 "$ACTIOND" import "$TMP/r18.onnx" -o "$TMP/r18.adm"
expect_status "compress the import (bn + vbmf)" 0 "$ACTIOND" compress -m "$TMP/r18.adm" \
    -o "$TMP/r18c.adm" --prune bn --ranks vbmf --finetune-epochs 0 --target-flops 0.2 \
    --report "$TMP/r18.json" --latency-runs 2
read -r f0 f1 p0 p1 < <(points "$TMP/r18.json")
if [ $((f1 * 5)) -le "$f0" ]; then ok "ResNet-18 within budget ($f0 -> $f1 FLOPs)"
else not_ok "ResNet-18 within budget ($f0 -> $f1 FLOPs)"; fi
expect_status "the compressed ResNet-18 loads and runs" 0 "$ACTIOND" infer -m "$TMP/r18c.adm" \
    --input "$TMP/r18.input.npy" --output "$TMP/r18c.out.npy"
finish
