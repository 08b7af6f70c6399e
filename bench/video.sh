#!/usr/bin/env bash
# video.sh — the input pipeline's throughput against bare FFmpeg decoding, side by side in one
# run: a 720p H.264 file from `actiond synth` (camera-like encode), one thread; each round runs
# `ffmpeg -threads 1 -i FILE -f null -` and `actiond bench --video FILE --motion K` for mv, diff
# and flow (decode + sample + motion, every sample a one-step clip), in an order that rotates each
# round. Frames per second come from each process's wall time, taken the same way for all four;
# the ratio to bare decode is per round, then the median over rounds.
# usage: bench/video.sh [--quick] [--rounds N] [--seconds S] [--size WxH] [--fps F]
#   --size WxH   the model size actiond samples to (112x112)
#   --fps F      samples per second (default: the file's 25, every frame: the most motion work)
# Writes bench/results/video-<date>-<host>.json and prints a Markdown summary.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/.." && pwd)
rounds=7 seconds=30 size=112x112 fps=
while [ $# -gt 0 ]; do
    case "$1" in
        --quick) rounds=3 seconds=12 ;;
        --rounds) rounds=$2; shift ;;
        --seconds) seconds=$2; shift ;;
        --size) size=$2; shift ;;
        --fps) fps=$2; shift ;;
        *) echo "video.sh: unknown option $1" >&2; exit 2 ;;
    esac
    shift
done

ACTIOND=${ACTIOND:-$top/actiond}
PY=/usr/bin/python3
[ -x "$ACTIOND" ] || { echo "video.sh: no $ACTIOND (run make)" >&2; exit 1; }
for tool in ffmpeg ffprobe; do
    command -v "$tool" >/dev/null || { echo "video.sh: needs $tool (scripts/install-deps)" >&2; exit 1; }
done
work="$here/work/video"
mkdir -p "$work" "$here/results"

# A static camera, one actor, textured background, sensor noise: what the daemon decodes.
src="$work/synth-1280x720-${seconds}s.mp4"
if [ ! -f "$src" ]; then
    "$ACTIOND" synth --sequence "$src" --size 1280x720 --sequence-seconds "$seconds" --seed 1 >&2
fi
frames=$(ffprobe -v error -select_streams v:0 -count_packets -show_entries stream=nb_read_packets \
    -of csv=p=0 "$src")

# Runs a command with stdout to $work/out.txt; prints "real user sys" in seconds.
timed() {
    local TIMEFORMAT='%R %U %S'
    if ! { time "$@" >"$work/out.txt" 2>"$work/err.txt"; } 2>"$work/time.txt"; then
        echo "video.sh: failed: $*" >&2
        cat "$work/err.txt" >&2
        exit 1
    fi
    cat "$work/time.txt"
}

run_one() { # round, tool
    local t out=null
    if [ "$2" = ffmpeg ]; then
        t=$(timed ffmpeg -nostdin -hide_banner -loglevel error -threads 1 -i "$src" -f null -)
    else
        t=$(timed "$ACTIOND" bench --video "$src" --motion "$2" --size "$size" ${fps:+--fps "$fps"} --json)
        out=$(cat "$work/out.txt")
    fi
    read -r real user sys <<<"$t"
    printf '{"round":%d,"tool":"%s","real":%s,"user":%s,"sys":%s,"actiond":%s}\n' \
        "$1" "$2" "$real" "$user" "$sys" "$out" >>"$work/rounds.jsonl"
}

tools=(ffmpeg mv diff flow)
: >"$work/rounds.jsonl"
# Other work on the machine skews wall times: the load average goes into the results.
load_before=$(cut -d' ' -f1-3 /proc/loadavg)
for r in $(seq 1 "$rounds"); do
    # Rotate the order so no tool always runs first (cold) or right after another.
    for i in 0 1 2 3; do
        run_one "$r" "${tools[$(((i + r - 1) % 4))]}"
    done
    echo "round $r/$rounds done" >&2
done

load_after=$(cut -d' ' -f1-3 /proc/loadavg)

out="$here/results/video-$(date -u +%Y%m%d-%H%M%S)-$(hostname -s).json"
"$PY" - "$work/rounds.jsonl" "$frames" "$size" "${fps:-file}" "$out" "$src" "$load_before" \
    "$load_after" <<'PYEOF'
import json, os, platform, statistics as st, subprocess, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
frames, size, fps, out, src = int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5], sys.argv[6]
load = {"before": sys.argv[7], "after": sys.argv[8], "cpus": os.cpu_count()}
rounds = sorted({r["round"] for r in rows})
by = {(r["round"], r["tool"]): r for r in rows}
cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")),
           platform.machine())
ffv = subprocess.run(["ffmpeg", "-version"], capture_output=True, text=True).stdout.split("\n")[0]
def fps_of(r): return frames / r["real"]
def cpu_of(r): return r["user"] + r["sys"]
summary = {"file": src, "frames": frames, "source": "1280x720 H.264 (actiond synth --sequence)",
           "size": size, "sample_fps": fps, "threads": 1, "rounds": len(rounds), "cpu": cpu,
           "ffmpeg": ffv, "loadavg": load, "tools": {}}
for tool in ["ffmpeg", "mv", "diff", "flow"]:
    f = [fps_of(by[(k, tool)]) for k in rounds]
    ratio = [fps_of(by[(k, tool)]) / fps_of(by[(k, "ffmpeg")]) for k in rounds]
    cpu_ratio = [cpu_of(by[(k, "ffmpeg")]) / cpu_of(by[(k, tool)]) for k in rounds]
    t = {"fps_median": st.median(f), "fps_min": min(f), "fps_max": max(f),
         "ratio_median": st.median(ratio), "ratio_min": min(ratio), "ratio_max": max(ratio),
         "cpu_ratio_median": st.median(cpu_ratio)}
    if tool != "ffmpeg":
        a = [by[(k, tool)]["actiond"] for k in rounds]
        for key in ["decode_ms", "sample_ms", "clip_ms"]:
            t[key] = st.median(x[key] for x in a)
        t["samples"] = a[0]["samples"]
    summary["tools"][tool] = t
goal = all(summary["tools"][k]["ratio_median"] >= 0.8 for k in ["mv", "diff"])
summary["goal_mv_diff_0_8"] = goal
json.dump({"summary": summary, "rounds": rows}, open(out, "w"), indent=1)
n = len(rounds)
print(f"| 1280x720 H.264, {frames} frames, 1 thread; actiond samples to {size} at "
      f"{'25 (every frame)' if fps == 'file' else fps} fps | frames/s, median (min–max over {n} rounds) "
      f"| ratio to bare decode, per round: median (min–max) | CPU-time ratio | actiond per frame: decode / sample / clip ms |")
print("|---|---|---|---|---|")
names = {"ffmpeg": "`ffmpeg -threads 1 -i FILE -f null -` (bare decode)",
         "mv": "actiond mv (codec motion vectors)", "diff": "actiond diff (RGB difference)",
         "flow": "actiond flow (Farnebäck optical flow)"}
for tool, t in summary["tools"].items():
    br = "—" if tool == "ffmpeg" else f"{t['decode_ms']:.2f} / {t['sample_ms']:.2f} / {t['clip_ms']:.3f}"
    print(f"| {names[tool]} | {t['fps_median']:.0f} ({t['fps_min']:.0f}–{t['fps_max']:.0f}) "
          f"| {t['ratio_median']:.2f} ({t['ratio_min']:.2f}–{t['ratio_max']:.2f}) "
          f"| {t['cpu_ratio_median']:.2f} | {br} |")
print(f"\nGoal mv and diff >= 0.8x bare decode (median wall-time ratio): "
      f"{'met' if goal else 'NOT met'}. CPU: {cpu}, {load['cpus']} CPUs, load average "
      f"{load['before']} before and {load['after']} after; {ffv}; results: {out}")
PYEOF
