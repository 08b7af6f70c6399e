#!/usr/bin/env bash
# limits.sh — what this machine can do at best, the yardsticks for everything else: SGEMM
# GFLOP/s of the OpenBLAS kernel actiond uses (1024³, one thread and every thread), and bare
# FFmpeg decoding of a 1280x720 H.264 camera-like file (one thread and every thread), as
# medians of rounds that alternate the four measurements.
# usage: bench/limits.sh [--quick] [--rounds N]
# Writes bench/results/limits-<date>-<host>.json and prints a Markdown summary.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/.." && pwd)
rounds=5 seconds=20
while [ $# -gt 0 ]; do
    case "$1" in
        --quick) rounds=3 seconds=12 ;;
        --rounds) rounds=$2; shift ;;
        *) echo "limits.sh: unknown option $1" >&2; exit 2 ;;
    esac
    shift
done
ACTIOND=${ACTIOND:-$top/actiond}
PY=/usr/bin/python3
[ -x "$ACTIOND" ] || { echo "limits.sh: no $ACTIOND (run make)" >&2; exit 1; }
work="$here/work/limits"
mkdir -p "$work" "$here/results"
src="$work/synth-1280x720-${seconds}s.mp4"
[ -f "$src" ] || "$ACTIOND" --log-level warn synth --sequence "$src" --size 1280x720 \
    --sequence-seconds "$seconds" --seed 1 >&2
frames=$(ffprobe -v error -select_streams v:0 -count_packets -show_entries stream=nb_read_packets \
    -of csv=p=0 "$src")
nproc=$(nproc)

decode() { # threads -> wall nanoseconds of a bare decode
    local s e
    s=$(date +%s%N)
    ffmpeg -nostdin -hide_banner -loglevel error -threads "$1" -i "$src" -f null -
    e=$(date +%s%N)
    echo $((e - s))
}

: >"$work/rounds.jsonl"
load_before=$(cut -d' ' -f1-3 /proc/loadavg)
for r in $(seq 1 "$rounds"); do
    for t in 1 "$nproc"; do
        g=$("$ACTIOND" bench --sgemm --threads "$t" --json | jq .sgemm_gflops)
        d=$(decode "$t")
        printf '{"round":%d,"threads":%d,"sgemm_gflops":%s,"decode_ns":%s}\n' "$r" "$t" "$g" "$d" \
            >>"$work/rounds.jsonl"
    done
    echo "limits.sh: round $r/$rounds done" >&2
done
load_after=$(cut -d' ' -f1-3 /proc/loadavg)
out="$here/results/limits-$(date -u +%Y%m%d-%H%M%S)-$(hostname -s).json"
"$PY" - "$work/rounds.jsonl" "$out" "$frames" "$nproc" "$load_before" "$load_after" \
    "$("$ACTIOND" --version | head -1)" "$(ffmpeg -version | head -1 | cut -d' ' -f1-3)" <<'PYEOF'
import json, os, platform, statistics as st, sys, time
rows = [json.loads(l) for l in open(sys.argv[1])]
out, frames, nproc = sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")),
           platform.machine())
res = {"date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "host": platform.node(),
       "cpu": cpu, "cores": nproc, "actiond": sys.argv[7], "ffmpeg": sys.argv[8],
       "loadavg": {"before": sys.argv[5], "after": sys.argv[6]},
       "source": f"1280x720 H.264 main profile, no B-frames, 2 s GOP, {frames} frames (actiond synth --sequence)",
       "rounds": len({r["round"] for r in rows})}
for t in sorted({r["threads"] for r in rows}):
    g = [r["sgemm_gflops"] for r in rows if r["threads"] == t]
    f = [frames / (r["decode_ns"] / 1e9) for r in rows if r["threads"] == t]
    res[f"threads_{t}"] = {"sgemm_gflops": st.median(g), "sgemm_min": min(g), "sgemm_max": max(g),
                           "decode_fps": st.median(f), "decode_min": min(f), "decode_max": max(f)}
json.dump({"summary": res, "rounds": rows}, open(out, "w"), indent=1)
print(f"| machine limit, median (min–max over {res['rounds']} rounds) | 1 thread | {nproc} threads |")
print("|---|---|---|")
a, b = res["threads_1"], res[f"threads_{nproc}"]
print(f"| SGEMM 1024³, GFLOP/s | {a['sgemm_gflops']:.1f} ({a['sgemm_min']:.1f}–{a['sgemm_max']:.1f}) "
      f"| {b['sgemm_gflops']:.1f} ({b['sgemm_min']:.1f}–{b['sgemm_max']:.1f}) |")
print(f"| FFmpeg bare decode of 1280x720 H.264, frames/s | {a['decode_fps']:.0f} ({a['decode_min']:.0f}–{a['decode_max']:.0f}) "
      f"| {b['decode_fps']:.0f} ({b['decode_min']:.0f}–{b['decode_max']:.0f}) |")
print(f"\nCPU: {cpu}, {nproc} cores; {res['actiond']}; {res['ffmpeg']}; load average {sys.argv[5]} "
      f"before, {sys.argv[6]} after; results: {out}")
PYEOF
