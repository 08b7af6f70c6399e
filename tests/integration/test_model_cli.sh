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

# bench --video: decode + sample + motion throughput (bench/video.sh's probe), on a 1 s clip.
"$ACTIOND" synth -o "$TMP/v" --classes 1 --clips-per-class 1 --size 64x48 --seconds 1 \
    --test-fraction 0 2>/dev/null
clip="$TMP/v/bend/bend_000.mp4"
for m in mv diff flow; do
    expect_status "bench --video --motion $m runs" 0 "$ACTIOND" bench --video "$clip" --motion $m \
        --size 32x24 --json
    expect_match "bench --video $m: kind and size" "\"motion\":\"$m\".*\"width\":32,\"height\":24" "$OUT"
    expect_match "bench --video $m: every frame decoded and sampled" '"frames":25,"samples":25,"clips":24' "$OUT"
    expect_match "bench --video $m: frames per second" '"frames_per_s":[0-9]' "$OUT"
done
expect_lines "bench --video --json is one line" 1 "$OUT"
expect_status "bench --video --fps samples at that rate" 0 "$ACTIOND" bench --video "$clip" \
    --motion flow --fps 10 --json
expect_match "10 samples from 25 frames" '"frames":25,"samples":10' "$OUT"
expect_status "bench --video text output" 0 "$ACTIOND" bench --video "$clip" --motion diff
expect_match "text names frames per second" 'frames/s, 1 thread' "$OUT"
expect_status "bench --video needs --motion" 2 "$ACTIOND" bench --video "$clip"
expect_status "bench --video with an unknown motion" 2 "$ACTIOND" bench --video "$clip" --motion warp
expect_match "unknown motion named" "not 'warp'" "$ERR"
expect_status "bench --video with a bad size" 2 "$ACTIOND" bench --video "$clip" --motion mv --size 4x4
expect_status "bench --video with a bad fps" 2 "$ACTIOND" bench --video "$clip" --motion mv --fps 99
expect_status "bench --video with --arch" 2 "$ACTIOND" bench --video "$clip" --motion mv --arch resnet18
expect_status "bench --motion without --video" 2 "$ACTIOND" bench --arch resnet18 --motion mv
expect_status "bench --video of a missing file fails" 1 "$ACTIOND" bench --video "$TMP/none.mp4" --motion mv
expect_lines "missing video: one line" 1 "$ERR"

expect_status "info of a missing file fails" 1 "$ACTIOND" info "$TMP/none.adm"
expect_lines "missing file: one line" 1 "$ERR"
head -c 5000 /dev/urandom >"$TMP/garbage.adm"
expect_status "info of garbage fails" 1 "$ACTIOND" info "$TMP/garbage.adm"
expect_lines "garbage: one line" 1 "$ERR"
expect_match "garbage: names the file" 'garbage.adm' "$ERR"
: >"$TMP/empty.adm"
expect_status "info of an empty file fails" 1 "$ACTIOND" info "$TMP/empty.adm"
expect_status "info without a file is a usage error" 2 "$ACTIOND" info

# A tiny PyTorch model through import, info, infer and export.
if /usr/bin/python3 "$(dirname "$0")/../python/make_resnet18.py" "$TMP" --arch tiny --size 48 \
    --name tiny >"$TMP/py.log" 2>&1; then
    ok "PyTorch model generated"
else
    not_ok "PyTorch model generated: $(tail -1 "$TMP/py.log")"
fi
expect_status "import" 0 "$ACTIOND" import "$TMP/tiny.onnx" -o "$TMP/tiny.adm"
expect_status "info" 0 "$ACTIOND" info "$TMP/tiny.adm"
expect_match "info totals" '^total: [0-9]+ params' "$OUT"
expect_status "info --json" 0 "$ACTIOND" info "$TMP/tiny.adm" --json
for k in params flops inputs classes layers openblas_core; do
    expect_match "info --json has $k" "\"$k\":" "$OUT"
done
expect_status "infer tensors" 0 "$ACTIOND" infer -m "$TMP/tiny.adm" --input "$TMP/tiny.input.npy" \
    --output "$TMP/out.npy"
err=$(/usr/bin/python3 -c 'import numpy as np, sys
a = np.load(sys.argv[1]).astype("f8"); b = np.load(sys.argv[2]).astype("f8")
print(np.linalg.norm(a - b) / np.linalg.norm(b))' "$TMP/out.npy" "$TMP/tiny.logits.npy" 2>&1)
if /usr/bin/python3 -c "import sys; sys.exit(0 if float(sys.argv[1]) < 1e-4 else 1)" "$err" 2>/dev/null; then
    ok "infer matches PyTorch (relative L2 $err)"
else
    not_ok "infer matches PyTorch: $err"
fi
expect_status "infer --ref" 0 "$ACTIOND" infer -m "$TMP/tiny.adm" --ref \
    --input "input=$TMP/tiny.input.npy" --output "$TMP/ref.npy"
expect_status "infer with a wrong input name" 1 "$ACTIOND" infer -m "$TMP/tiny.adm" \
    --input "nope=$TMP/tiny.input.npy" --output "$TMP/x.npy"
expect_match "wrong input named" "no input 'nope'" "$ERR"
expect_status "infer with a garbage .npy" 1 "$ACTIOND" infer -m "$TMP/tiny.adm" \
    --input "$TMP/garbage.adm" --output "$TMP/x.npy"
expect_lines "garbage npy: one line" 1 "$ERR"
expect_status "infer without --output" 2 "$ACTIOND" infer -m "$TMP/tiny.adm" --input "$TMP/tiny.input.npy"
expect_status "infer on a missing video" 1 "$ACTIOND" infer -m "$TMP/tiny.adm" "$TMP/clip.mp4"
expect_status "export" 0 "$ACTIOND" export "$TMP/tiny.adm" -o "$TMP/re.onnx"
ort="$(dirname "$0")/../../bench/node_modules"
if [ -d "$ort/onnxruntime-node" ]; then
    cp "$TMP/re.onnx" "$TMP/exp.onnx"
    cp "$TMP/tiny.input.npy" "$TMP/exp.input.npy"
    cp "$TMP/out.npy" "$TMP/exp.output.npy"
    expect_status "ONNX Runtime runs the export and agrees" 0 \
        env NODE_PATH="$ort" node "$(dirname "$0")/../ort/check.js" "$TMP/exp"
else
    not_ok "ONNX Runtime is installed (scripts/install-deps)"
fi
expect_status "re-import of the export" 0 "$ACTIOND" import "$TMP/re.onnx" -o "$TMP/re.adm"
expect_status "import of garbage fails" 1 "$ACTIOND" import "$TMP/garbage.adm" -o "$TMP/g.adm"
expect_lines "garbage onnx: one line" 1 "$ERR"
expect_status "import without -o" 2 "$ACTIOND" import "$TMP/tiny.onnx"
expect_status "import with --segments that is no number" 2 "$ACTIOND" import "$TMP/tiny.onnx" \
    -o "$TMP/s.adm" --segments three
expect_match "names the flag and its range" '--segments must be an integer in 1\.\.256' "$ERR"
expect_lines "in one line" 1 "$ERR"
expect_status "import with --fps 0" 2 "$ACTIOND" import "$TMP/tiny.onnx" -o "$TMP/s.adm" --fps 0
expect_status "import with --motion-len over the bound" 2 "$ACTIOND" import "$TMP/tiny.onnx" \
    -o "$TMP/s.adm" --motion-len 17
[ ! -e "$TMP/s.adm" ] && ok "no model written" || not_ok "no model written"
expect_status "infer --top with a trailing letter" 2 "$ACTIOND" infer -m "$TMP/tiny.adm" \
    --top 3x "$TMP/clip.mp4"
expect_match "names the flag" '--top must be an integer in 1\.\.20' "$ERR"
finish
