#!/usr/bin/env bash
# test_model_cli.sh — info, bench, infer, import and export as a user runs them.
. "$(dirname "$0")/lib.sh"

# jq is not assumed: JSON keys are checked with grep on the compact output.
expect_status "bench --arch runs" 0 "$ACTIOND" bench --arch vgg-small --size 32 --iters 3 --json
for k in median_ms p90_ms min_ms threads gflops openblas_core layers; do
    expect_match "bench --json has $k" "\"$k\":" "$OUT"
done
expect_lines "bench --json is one line" 1 "$OUT"
expect_status "bench --sgemm runs" 0 "$ACTIOND" bench --sgemm --iters 3
expect_match "bench --sgemm reports GFLOP/s and the core" 'GFLOP/s, 1 thread\(s\), OpenBLAS core [A-Za-z]+' "$OUT"
expect_status "bench without a model is a usage error" 2 "$ACTIOND" bench
expect_status "bench with a bad count is a usage error" 2 "$ACTIOND" bench --arch resnet18 --iters x
expect_lines "bad count: one line" 1 "$ERR"
expect_status "bench of an unknown arch fails" 1 "$ACTIOND" bench --arch alexnet
expect_match "unknown arch named" "unknown architecture 'alexnet'" "$ERR"

expect_status "info of a missing file fails" 1 "$ACTIOND" info "$TMP/none.adm"
expect_lines "missing file: one line" 1 "$ERR"
head -c 5000 /dev/urandom >"$TMP/garbage.adm"
expect_status "info of garbage fails" 1 "$ACTIOND" info "$TMP/garbage.adm"
expect_lines "garbage: one line" 1 "$ERR"
expect_match "garbage: names the file" 'garbage.adm' "$ERR"
: >"$TMP/empty.adm"
expect_status "info of an empty file fails" 1 "$ACTIOND" info "$TMP/empty.adm"
expect_status "info without a file is a usage error" 2 "$ACTIOND" info
finish
