#!/usr/bin/env bash
# pipeline.sh — the daemon end to end, as a user runs it: the real `actiond serve` watching N
# cameras (H.264 from `actiond synth --sequence`, looped in real time by `ffmpeg -re` as MPEG-TS
# over HTTP on 127.0.0.1), measured from outside: sustained decoded fps, dropped clips, window
# latency p50/p99 (a window's last frame arriving to its result recorded, from the daemon's
# per-stream figures), CPU from /proc/PID/stat, sampled and peak RSS, and their drift.
# usage: bench/pipeline.sh [--quick] [--minutes M] [--streams N] [--size WxH]
#                          [--motion mv|diff|flow] [--threads T] [--sweep] [--every S]
#   default: 4 streams of 1280x720 at 25 fps, the default model (mv), 10 minutes (issue 7)
#   --quick  the same for 1 minute        --sweep  then 1, 4 streams x 640x360, 1280x720 x
#                                                   mv, diff, flow for 1 minute each
#   --threads T  the config's `threads` (BLAS threads of the inference worker; default 0: all cores)
# Writes bench/results/pipeline-<date>-<host>.json and prints a Markdown summary.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/.." && pwd)
minutes=10 streams=4 size=1280x720 motion=mv sweep=0 every=5 threads=0
while [ $# -gt 0 ]; do
    case "$1" in
        --quick) minutes=1 every=2 ;;
        --minutes) minutes=$2; shift ;;
        --streams) streams=$2; shift ;;
        --size) size=$2; shift ;;
        --motion) motion=$2; shift ;;
        --threads) threads=$2; shift ;;
        --sweep) sweep=1 ;;
        --every) every=$2; shift ;;
        *) echo "pipeline.sh: unknown option $1" >&2; exit 2 ;;
    esac
    shift
done
case "$motion" in mv|diff|flow) ;; *) echo "pipeline.sh: --motion mv|diff|flow" >&2; exit 2 ;; esac

ACTIOND=${ACTIOND:-$top/actiond}
PY=/usr/bin/python3
[ -x "$ACTIOND" ] || { echo "pipeline.sh: no $ACTIOND (run make)" >&2; exit 1; }
for tool in ffmpeg ffprobe curl; do
    command -v "$tool" >/dev/null || { echo "pipeline.sh: needs $tool (scripts/install-deps)" >&2; exit 1; }
done
work="$here/work/pipeline"
mkdir -p "$work/models" "$here/results"
SOURCE_SECONDS=30 # each camera loops a clip this long

# The camera: a static view, one actor doing several actions, camera-like H.264 (main
# profile, no B-frames, 2 s GOP). Made once per size.
clip_for() {
    local f="$work/cam-$1-${SOURCE_SECONDS}s.mp4"
    [ -f "$f" ] || "$ACTIOND" --log-level warn synth --sequence "$f" --size "$1" \
        --sequence-seconds "$SOURCE_SECONDS" --seed 1 >&2
    echo "$f"
}

# The default model with another motion kind: the same two networks and weights (split out of
# its ONNX export) imported with other metadata, so only the video side's work differs.
model_for() {
    local kind=$1 m="$work/models/default-$1.adm"
    if [ "$kind" = mv ]; then echo "$top/models/default.adm"; return; fi
    if [ ! -f "$m" ]; then
        "$ACTIOND" export "$top/models/default.adm" -o "$work/models/default.onnx" >&2
        "$PY" -c 'import sys, onnx.utils as u
for name in ("rgb", "motion"):
    u.extract_model(sys.argv[1], f"{sys.argv[2]}/{name}.onnx", [name], [f"{name}/logits"])' \
            "$work/models/default.onnx" "$work/models"
        local info classes
        info=$("$ACTIOND" info "$top/models/default.adm" --json)
        classes=$(jq -r '.classes | join(",")' <<<"$info")
        "$ACTIOND" import "$work/models/rgb.onnx" --motion "$work/models/motion.onnx" -o "$m" \
            --classes "$classes" --motion-kind "$kind" --motion-len "$(jq .motion_len <<<"$info")" \
            --segments "$(jq .segments <<<"$info")" --fps "$(jq .fps <<<"$info")" \
            --fusion "$(jq -r '.fusion | join(",")' <<<"$info")" --arch "$(jq -r .arch <<<"$info")" >&2
    fi
    echo "$m"
}

free_port() { "$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; }
trap cleanup EXIT

# One configuration: N cameras, the daemon, the sampler; then everything stopped.
run_config() { # streams size motion minutes out.json
    local n=$1 sz=$2 kind=$3 mins=$4 out=$5 clip model api dir fps
    clip=$(clip_for "$sz")
    model=$(model_for "$kind")
    fps=$(ffprobe -v error -select_streams v:0 -show_entries stream=r_frame_rate -of csv=p=0 "$clip")
    fps=$("$PY" -c "print(float(eval('$fps')))")
    dir=$(mktemp -d "$work/run.XXXXXX")
    api=$(free_port)
    {
        echo "model: $model"
        echo "state_dir: $dir"
        echo "log_level: warn"
        echo "threads: $threads"
        echo "http: {listen: 127.0.0.1:$api}"
        echo "streams:"
    } >"$dir/c.yaml"
    local cams=() i port
    pids=()
    for i in $(seq 0 $((n - 1))); do
        port=$(free_port)
        # Every camera plays the same clip (input -ss would break -re's pacing with stream
        # copy); the daemon opens them at once, so their windows fall due together: the
        # inference worker meets them in bursts of N, the worst case for latency.
        ffmpeg -nostdin -hide_banner -loglevel error -re -stream_loop -1 \
            -i "$clip" -c copy -f mpegts -listen 1 \
            "http://127.0.0.1:$port/" >"$dir/cam$i.log" 2>&1 &
        cams+=($!)
        echo "  - {id: cam$i, url: \"http://127.0.0.1:$port/\"}" >>"$dir/c.yaml"
    done
    pids=("${cams[@]}")
    sleep 0.5
    "$ACTIOND" serve -c "$dir/c.yaml" 2>"$dir/serve.log" &
    local spid=$!
    pids+=("$spid")
    local label="$n × ${sz} ${fps%.0} fps, $kind"
    [ "$threads" = 0 ] || label+=", $threads BLAS thread(s)"
    echo "pipeline.sh: $label for $mins min" >&2
    "$PY" "$here/pipeline.py" sample --api "http://127.0.0.1:$api" --pid "$spid" \
        --peer-pids "$(IFS=,; echo "${cams[*]}")" --streams "$n" --source-fps "$fps" \
        --minutes "$mins" --warmup 10 --every "$every" --label "$label" --out "$out" ||
        { tail -5 "$dir/serve.log" >&2; exit 1; }
    kill -TERM "$spid"
    wait "$spid" || echo "pipeline.sh: serve exited $? (log: $dir/serve.log)" >&2
    cleanup
    wait 2>/dev/null || true
    pids=()
    rm -rf "$dir"
}

stamp=$(date -u +%Y%m%d-%H%M%S)
runs=()
run_config "$streams" "$size" "$motion" "$minutes" "$work/run-0.json"
runs+=("$work/run-0.json")
if [ "$sweep" = 1 ]; then
    k=1
    for n in 1 4; do
        for sz in 640x360 1280x720; do
            for kind in mv diff flow; do
                run_config "$n" "$sz" "$kind" 1 "$work/run-$k.json"
                runs+=("$work/run-$k.json")
                k=$((k + 1))
            done
        done
    done
fi
out="$here/results/pipeline-$stamp-$(hostname -s).json"
"$PY" "$here/pipeline.py" report "$out" "${runs[@]}"
