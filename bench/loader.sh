#!/usr/bin/env bash
# loader.sh — clips per second the training data loader (video_loader) sustains on the default
# synth set (320x240, 25 fps, 3 s; its 320-clip train split) at 112x112, K=3, diff and mv, L=2
# and 5, batch 8: cold (an empty cache, every clip decoded) and warm (from the cache files, and
# from the RAM tier), nothing else consuming the batches. Medians of repeated rounds; CPU ms per
# clip beside each rate, since wall time on a shared machine moves with its load.
# usage: bench/loader.sh [--quick] [--rounds N] [--threads N]
# Writes bench/results/loader-<date>-<host>.json and prints a Markdown summary.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/.." && pwd)
rounds=3 threads=2
while [ $# -gt 0 ]; do
    case "$1" in
        --quick) rounds=1 ;;
        --rounds) rounds=$2; shift ;;
        --threads) threads=$2; shift ;;
        *) echo "loader.sh: unknown option $1" >&2; exit 2 ;;
    esac
    shift
done

ACTIOND=${ACTIOND:-$top/actiond}
PY=/usr/bin/python3
work="$here/work/loader"
set_dir="$here/work/synth-default"
mkdir -p "$work" "$here/results"
make -C "$top" -s "$(basename "$ACTIOND")" >&2
libs=$(pkg-config --libs libavformat libavcodec libavutil libswscale libavdevice)
cc -std=c11 -O2 -I"$top" -D_GNU_SOURCE -pthread "$here/loader.c" "$top/build/libactiond.a" \
    $libs -lm -o "$work/loader"
if [ ! -f "$set_dir/trainlist.txt" ]; then
    "$ACTIOND" synth -o "$set_dir" --seed 1 >&2
fi

: >"$work/rounds.jsonl"
for r in $(seq 1 "$rounds"); do
    for motion in diff mv; do
        for L in 2 5; do
            cache="$work/cache-$motion-$L"
            rm -rf "$cache"
            args=(--cache "$cache" --motion "$motion" --length "$L" --threads "$threads" --batch 8)
            # Epoch 0 decodes into the empty cache, epochs 1-2 read the files back.
            "$work/loader" "$set_dir" "${args[@]}" --epochs 3 |
                sed "s/^/{\"round\":$r,\"motion\":\"$motion\",\"L\":$L,\"tier\":\"disk\",\"run\":/; s/\$/}/" \
                >>"$work/rounds.jsonl"
            # A RAM tier large enough for the set: epoch 0 fills it from the files, 1-2 hit it.
            "$work/loader" "$set_dir" "${args[@]}" --epochs 3 --ram-mb 8192 |
                sed "s/^/{\"round\":$r,\"motion\":\"$motion\",\"L\":$L,\"tier\":\"ram\",\"run\":/; s/\$/}/" \
                >>"$work/rounds.jsonl"
        done
    done
    echo "round $r/$rounds done" >&2
done
# The entries are gigabytes and every run starts cold anyway.
rm -rf "$work"/cache-*

out="$here/results/loader-$(date -u +%Y%m%d-%H%M%S)-$(hostname -s).json"
"$PY" - "$work/rounds.jsonl" "$threads" "$out" <<'PYEOF'
import json, os, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
threads, out = int(sys.argv[2]), sys.argv[3]
def med(xs):
    return round(statistics.median(xs), 1) if xs else None
summary = []
for motion in ("diff", "mv"):
    for L in (2, 5):
        sel = [r for r in rows if r["motion"] == motion and r["L"] == L]
        cold = [r["run"] for r in sel if r["tier"] == "disk" and r["run"]["epoch"] == 0]
        warm = [r["run"] for r in sel if r["tier"] == "disk" and r["run"]["epoch"] > 0]
        ram = [r["run"] for r in sel if r["tier"] == "ram" and r["run"]["epoch"] > 0]
        summary.append({
            "motion": motion, "L": L,
            "cold_clips_per_s": med([x["clips_per_s"] for x in cold]),
            "cold_cpu_ms_per_clip": med([x["cpu_ms_per_clip"] for x in cold]),
            "warm_clips_per_s": med([x["clips_per_s"] for x in warm]),
            "warm_cpu_ms_per_clip": med([x["cpu_ms_per_clip"] for x in warm]),
            "ram_clips_per_s": med([x["clips_per_s"] for x in ram]),
            "ram_cpu_ms_per_clip": med([x["cpu_ms_per_clip"] for x in ram]),
        })
cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "")
doc = {"summary": {"set": "synth default: 320 train clips, 320x240, 25 fps, 3 s",
                   "input": "112x112, K=3, batch 8, augment on, shuffle on",
                   "threads": threads, "cores": os.cpu_count(), "cpu": cpu,
                   "loadavg_at_end": open("/proc/loadavg").read().split()[:3],
                   "configs": summary},
       "rounds": rows}
json.dump(doc, open(out, "w"), indent=1)
print("| motion | L | cold clips/s | cold CPU ms/clip | warm clips/s | warm CPU ms/clip | RAM clips/s | RAM CPU ms/clip |")
print("|---|---|---|---|---|---|---|---|")
for s in summary:
    print("| %s | %d | %s | %s | %s | %s | %s | %s |" % (s["motion"], s["L"], s["cold_clips_per_s"],
          s["cold_cpu_ms_per_clip"], s["warm_clips_per_s"], s["warm_cpu_ms_per_clip"],
          s["ram_clips_per_s"], s["ram_cpu_ms_per_clip"]))
print("results:", out)
PYEOF
