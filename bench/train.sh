#!/usr/bin/env bash
# train.sh — training throughput and memory: `actiond train` on a synth data set with the
# default model's recipe for two epochs (the first decodes into the cache, the second reads
# it), reporting clips per second of each epoch, the step time and the peak RSS.
# usage: bench/train.sh [--quick]   (quick: 4 classes, 2 threads, 2 epochs)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/.." && pwd)
ACTIOND=${ACTIOND:-$top/actiond}
classes=10
[ "${1:-}" = "--quick" ] && classes=4
work="$here/work/train-$classes"
mkdir -p "$work" "$here/results"
[ -f "$work/data/trainlist.txt" ] ||
    "$ACTIOND" --log-level warn synth -o "$work/data" --seed 1 --classes "$classes"
rm -rf "$work/data/.actiond-cache" "$work/m.adm"*
# The recipe is scripts/make-model's TRAIN_ARGS, read from there so the two cannot drift; the
# options given after it win (two epochs).
eval "$(sed -n '/^TRAIN_ARGS=(/,/)$/p' "$top/scripts/make-model")"
args=("${TRAIN_ARGS[@]}" --threads 2 --epochs 2)
/usr/bin/time -v "$ACTIOND" --log-level warn train -d "$work/data" -o "$work/m.adm" "${args[@]}" \
    2>"$work/time.log"
out="$here/results/train-$(date -u +%Y%m%d-%H%M%S)-$(hostname -s).json"
/usr/bin/python3 - "$work" "$out" "$classes" "${args[*]}" <<'PY'
import json, re, sys
work, out, classes, args = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
epochs = [json.loads(l) for l in open(f"{work}/m.adm.train.jsonl")]
tl = open(f"{work}/time.log").read()
rss = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", tl).group(1))
load = open("/proc/loadavg").read().split()[:3]
batch = 8
res = {"classes": classes, "args": args, "peak_rss_mb": rss / 1024, "loadavg_after": load,
       "epochs": [{"epoch": e["epoch"], "seconds": e["seconds"], "steps": e["steps"]} for e in epochs]}
steps = epochs[0]["steps"]
for e, name in zip(epochs, ("cold (decoding into the cache)", "warm (from the cache)")):
    e["clips_per_s"] = steps * batch / e["seconds"]
    e["step_s"] = e["seconds"] / steps
res["cold_clips_per_s"] = epochs[0]["clips_per_s"]
res["warm_clips_per_s"] = epochs[1]["clips_per_s"]
res["warm_step_s"] = epochs[1]["step_s"]
json.dump(res, open(out, "w"), indent=1)
print(f"| training, {classes} classes, batch {batch} clips x 3 segments, 112x112, 2 threads | value |")
print("|---|---|")
print(f"| epoch 1, cold (decoding into the cache) | {epochs[0]['clips_per_s']:.1f} clips/s |")
print(f"| epoch 2, warm (from the cache) | {epochs[1]['clips_per_s']:.1f} clips/s, {1000 * epochs[1]['step_s']:.0f} ms a step |")
print(f"| peak RSS | {rss / 1024:.0f} MB |")
print(f"\nload average after: {' '.join(load)}; results: {out}")
PY
