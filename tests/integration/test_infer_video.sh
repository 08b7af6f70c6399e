#!/usr/bin/env bash
# test_infer_video.sh — `actiond infer` over real H.264 files: a two-stream model imported from
# two PyTorch ONNX files with its metadata, windows as JSON lines, and bad input.
. "$(dirname "$0")/lib.sh"
py="$(dirname "$0")/../python/make_resnet18.py"

for s in "rgb 3" "mot 2"; do
    set -- $s
    /usr/bin/python3 "$py" "$TMP" --arch tiny --size 64 --in-ch "$2" --classes 3 --name "$1" \
        >"$TMP/py.log" 2>&1 || not_ok "PyTorch model $1: $(tail -1 "$TMP/py.log")"
done
expect_status "two-stream import with metadata" 0 "$ACTIOND" import "$TMP/rgb.onnx" \
    --motion "$TMP/mot.onnx" -o "$TMP/ts.adm" --classes walk,run,wave --motion-kind diff \
    --motion-len 1 --segments 3 --fps 10 --fusion 0.4,0.6
expect_status "info shows the metadata" 0 "$ACTIOND" info "$TMP/ts.adm"
expect_match "metadata in info" '3 classes, input 64x64, K=3 segments, motion diff \(L=1\), 10.0 fps, fusion 0.40/0.60' "$OUT"
expect_status "import with a bad motion kind" 1 "$ACTIOND" import "$TMP/rgb.onnx" -o "$TMP/x.adm" \
    --motion-kind sideways
expect_status "import with too few classes for the output" 1 "$ACTIOND" import "$TMP/rgb.onnx" \
    -o "$TMP/x.adm" --classes a,b --segments 3

expect_status "synth two clips" 0 "$ACTIOND" synth -o "$TMP/s" --classes 2 --clips-per-class 1 \
    --size 96x64 --seconds 3 --seed 3
clip="$TMP/s/bend/bend_000.mp4"
expect_status "infer --json" 0 "$ACTIOND" infer -m "$TMP/ts.adm" "$clip" --json
expect_lines "two windows of 2 s, 1 s apart, in 3 s" 2 "$OUT"
expect_match "window line" '^\{"start":0(\.0)?,"end":1\.9[0-9]*,"top":\[\{"action":"(walk|run|wave)","score":0\.[0-9]+\}' "$OUT"
expect_match "summary on stderr" 'infer: 2 windows from 75 frames' "$ERR"
ok_sum=$(/usr/bin/python3 -c 'import json,sys
for line in sys.stdin:
    d = json.loads(line); s = sum(t["score"] for t in d["top"])
    assert len(d["top"]) == 3 and abs(s - 1) < 1e-4, s
print("ok")' <<<"$OUT" 2>&1)
expect_match "fused scores of all classes sum to 1" '^ok$' "$ok_sum"
expect_status "infer text, shorter windows" 0 "$ACTIOND" infer -m "$TMP/ts.adm" "$clip" \
    --window 1.5 --stride 0.5 --top 2
expect_lines "four windows" 4 "$OUT"

# A flow model: the sampler must make the optical flow the clips carry (the daemon shares this).
expect_status "import a flow model" 0 "$ACTIOND" import "$TMP/rgb.onnx" --motion "$TMP/mot.onnx" \
    -o "$TMP/flow.adm" --classes walk,run,wave --motion-kind flow --motion-len 1 --segments 3 --fps 10
expect_status "infer with a flow model" 0 "$ACTIOND" infer -m "$TMP/flow.adm" "$clip" --json
expect_lines "flow model: two windows" 2 "$OUT"
expect_status "missing file" 1 "$ACTIOND" infer -m "$TMP/ts.adm" "$TMP/none.mp4"
expect_lines "missing file: one line" 1 "$ERR"
head -c 20000 /dev/urandom >"$TMP/noise.mp4"
expect_status "random bytes" 1 "$ACTIOND" infer -m "$TMP/ts.adm" "$TMP/noise.mp4"
expect_lines "random bytes: one line" 1 "$ERR"
head -c 30000 "$clip" >"$TMP/trunc.mp4"
"$ACTIOND" infer -m "$TMP/ts.adm" "$TMP/trunc.mp4" >"$TMP/out" 2>"$TMP/err"
rc=$?
if [ "$rc" -eq 0 ] || [ "$rc" -eq 1 ]; then ok "truncated file: exit $rc, no crash"; else not_ok "truncated file: exit $rc"; fi
expect_status "window too short for the model" 1 "$ACTIOND" infer -m "$TMP/ts.adm" "$clip" --window 0.3
expect_match "says why" 'need' "$ERR"
expect_status "bad --top" 2 "$ACTIOND" infer -m "$TMP/ts.adm" "$clip" --top 0
expect_status "two files" 2 "$ACTIOND" infer -m "$TMP/ts.adm" "$clip" "$clip"
finish
