#!/usr/bin/env bash
# soak.sh — the daemon for DURATION seconds under faults injected every 30 s, in turn: the HTTP
# camera's server killed (and back 5 s later), a SIGHUP that changes one stream, and hostile
# clients (40 slowloris connections for 10 s plus 2000 dropped ones); light API traffic
# throughout. RSS, fds and threads are sampled from /proc every 5 s.
# usage: bench/soak.sh [DURATION_S]   (or DURATION=600; `make soak DURATION=600`)
# Writes bench/results/soak-<date>-<host>.json: RSS growth from the warm-up (the 2nd tenth of the
# run) and from the middle (the 5th-6th tenths) to the end (the last tenth) — the goal (< 5 %) is
# judged on the second half, as memory that keeps growing shows there and a first fill of
# per-thread malloc arenas and SQLite's page cache does not; the second half must start after
# each kind of fault has happened once (at 30, 60 and 90 s), so a run shorter than 240 s is not
# judged (goal_met null) — and the fds at each quiet point
# (just before a fault; the least of five counts 0.2 s apart, so that a file camera reopening at
# its end or a dashboard request in flight does not count, with what kinds the open fds are);
# fds count as constant when the second half's quiet points never exceed the first half's.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/.." && pwd)
DURATION=${1:-${DURATION:-600}}
ACTIOND=${ACTIOND:-$top/actiond}
BUILD=${BUILD:-$top/build}
STORM=$BUILD/tests/helpers/conn_storm
MODEL=${MODEL:-$top/models/default.adm}
[ -x "$ACTIOND" ] && [ -x "$STORM" ] || { echo "soak.sh: run make tests first" >&2; exit 1; }
[ "$DURATION" -ge 60 ] || { echo "soak.sh: DURATION must be at least 60 s" >&2; exit 2; }
TMP=$(mktemp -d)
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$TMP"
}
trap cleanup EXIT
free_port() { /usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
api=$(free_port) cam=$(free_port)
base="http://127.0.0.1:$api"

"$ACTIOND" synth --sequence "$TMP/seq.mp4" --sequence-seconds 30 --size 320x240 --seed 3 >/dev/null
serve_camera() {
    ffmpeg -nostdin -hide_banner -loglevel error -re -stream_loop -1 -i "$TMP/seq.mp4" -c copy \
        -f mpegts -listen 1 "http://127.0.0.1:$cam/" >/dev/null 2>&1 &
    campid=$!
    pids+=("$campid")
}
enter=0.6
write_config() {
    cat >"$TMP/c.yaml" <<YAML
model: $MODEL
state_dir: $TMP/state
log_level: warn
http: {listen: 127.0.0.1:$api, max_connections: 64, per_ip_limit: 16, timeout: 5s}
streams:
  - {id: http-cam, url: "http://127.0.0.1:$cam/", timeouts: {connect: 2s, stall: 3s}}
  - {id: file-a, url: "$TMP/seq.mp4", thresholds: {enter: $enter, exit: 0.4}}
  - {id: file-b, url: "$TMP/seq.mp4"}
YAML
}
mkdir -p "$TMP/state"
write_config
serve_camera
sleep 0.5
"$ACTIOND" serve -c "$TMP/c.yaml" 2>"$TMP/serve.log" &
spid=$!
pids+=("$spid")
for _ in $(seq 100); do curl -sf "$base/healthz" >/dev/null && break; sleep 0.2; done
curl -sf "$base/healthz" >/dev/null || { echo "soak.sh: serve did not start: $(tail -3 "$TMP/serve.log")" >&2; exit 1; }

# Light API traffic: what a dashboard polling once a second does.
(while sleep 1; do
    curl -s -o /dev/null "$base/api/v1/detections?limit=100"
    curl -s -o /dev/null "$base/api/v1/events?limit=100"
    curl -s -o /dev/null "$base/metrics"
done) &
pids+=($!)

fd_count() { ls "/proc/$spid/fd" | wc -l; }
# What the open fds are ("socket:9,pipe:4,..."), to tell a leaked connection from a leaked file.
fd_kinds() {
    for f in "/proc/$spid/fd"/*; do readlink "$f" || true; done 2>/dev/null \
        | sed -E 's/:.*//; s|^/.*|file|' | sort | uniq -c | awk '{printf "%s%s:%s", (NR > 1 ? "," : ""), $2, $1}'
}
# At a quiet point, the least of five counts 0.2 s apart: an fd open for a moment (a dashboard
# request in flight, a file camera reopening at its end) is missing from one of them, a leaked
# one is in all five.
quiet_fds() {
    local best f
    best=$(fd_count)
    for _ in 1 2 3 4; do
        sleep 0.2
        f=$(fd_count)
        [ "$f" -lt "$best" ] && best=$f
    done
    echo "$best"
}
sample() { # t quiet
    local rss fds thr kinds=""
    rss=$(awk '/^VmRSS/ {print $2}' "/proc/$spid/status")
    if [ "$2" = true ]; then fds=$(quiet_fds); kinds=$(fd_kinds); else fds=$(fd_count); fi
    thr=$(awk '/^Threads/ {print $2}' "/proc/$spid/status")
    printf '{"t":%d,"rss_kb":%d,"fds":%d,"fd_kinds":"%s","threads":%d,"quiet":%s}\n' "$1" "$rss" "$fds" "$kinds" "$thr" "$2" >>"$TMP/samples"
}
fault() { # n: which fault this cycle
    case $(($1 % 3)) in
        0) kill -9 "$campid"; wait "$campid" 2>/dev/null || true; echo camera_killed >>"$TMP/faults"
           sleep 5
           serve_camera ;;
        1) enter=$([ "$enter" = 0.6 ] && echo 0.65 || echo 0.6); write_config; kill -HUP "$spid"
           echo sighup >>"$TMP/faults" ;;
        2) "$STORM" slow 127.0.0.1 "$api" 40 10 127.0.0.2 >/dev/null &
           pids+=($!)
           "$STORM" drop 127.0.0.1 "$api" 2000 127.0.0.3 >/dev/null
           echo hostile_clients >>"$TMP/faults" ;;
    esac
}

t0=$(date +%s)
n=0
next_fault=30
: >"$TMP/samples"
: >"$TMP/faults"
echo "soak: $DURATION s, faults every 30 s, samples every 5 s"
while :; do
    t=$(($(date +%s) - t0))
    [ "$t" -lt "$DURATION" ] || break
    kill -0 "$spid" 2>/dev/null || { echo "soak.sh: the daemon died: $(tail -5 "$TMP/serve.log")" >&2; exit 1; }
    # the quiet point: 25 s after the last fault, before the next
    quiet=false
    [ $((next_fault - t)) -le 5 ] && quiet=true
    sample "$t" "$quiet"
    if [ "$t" -ge "$next_fault" ]; then
        fault "$n"
        n=$((n + 1))
        next_fault=$((next_fault + 30))
    fi
    sleep 5
done
sample "$DURATION" true
kill -TERM "$spid"
rc=0
wait "$spid" || rc=$?
ic=$(sqlite3 "$TMP/state/actiond.db" 'pragma integrity_check' 2>&1 || true)

out="$here/results/soak-$(date -u +%Y%m%d-%H%M%S)-$(hostname -s).json"
mkdir -p "$here/results"
jq -s --argjson dur "$DURATION" --argjson rc "$rc" --arg ic "$ic" \
    --arg faults "$(sort "$TMP/faults" | uniq -c | awk '{printf "%s%s:%s", (NR > 1 ? "," : ""), $2, $1}')" \
    --arg model "$(basename "$MODEL")" --arg load "$(cut -d' ' -f1-3 /proc/loadavg)" '
    def median: sort | if length == 0 then null else .[(length / 2 | floor)] end;
    . as $s
    | ($s | map(select(.t >= $dur * 0.1 and .t < $dur * 0.2)) | map(.rss_kb) | median) as $base
    | ($s | map(select(.t >= $dur * 0.9)) | map(.rss_kb) | median) as $last
    | ($s | map(select(.t >= $dur * 0.45 and .t < $dur * 0.55)) | map(.rss_kb) | median) as $half
    | ($s | map(select(.quiet and .t >= $dur * 0.1)) | map(.fds)) as $qf
    | ($s | map(select(.quiet and .t >= $dur * 0.1 and .t < $dur * 0.5)) | map(.fds) | max) as $fd_first
    | ($s | map(select(.quiet and .t >= $dur * 0.5)) | map(.fds) | max) as $fd_second
    | {
        duration_s: $dur, model: $model, streams: 3, loadavg_start: $load,
        faults: ($faults | split(",") | map(split(":") | {(.[0]): (.[1] | tonumber)}) | add),
        rss_warm_kb: $base, rss_end_kb: $last,
        rss_growth_pct: ((($last - $base) * 1000 / $base | round) / 10),
        rss_half_kb: $half,
        rss_growth_second_half_pct: ((($last - $half) * 1000 / $half | round) / 10),
        rss_max_kb: ($s | map(.rss_kb) | max),
        fds_quiet_min: ($qf | min), fds_quiet_max: ($qf | max),
        fds_quiet_max_first_half: $fd_first, fds_quiet_max_second_half: $fd_second,
        fds_max: ($s | map(.fds) | max), threads_max: ($s | map(.threads) | max),
        exit_status: $rc, integrity_check: $ic,
        goal_met: (if $dur < 240 then null else
            ((($last - $half) * 100 / $half) < 5 and ($fd_second <= $fd_first) and $rc == 0 and $ic == "ok") end),
        samples: $s
      }' "$TMP/samples" >"$out"
jq -r '"soak: RSS \(.rss_warm_kb) -> \(.rss_half_kb) -> \(.rss_end_kb) kB (\(.rss_growth_pct) % from warm-up, \(.rss_growth_second_half_pct) % over the second half), quiet fds \(.fds_quiet_min)..\(.fds_quiet_max) (max \(.fds_quiet_max_first_half) in the first half, \(.fds_quiet_max_second_half) in the second), faults \(.faults), exit \(.exit_status), integrity \(.integrity_check), goal met: \(.goal_met)"' "$out"
echo "soak: $out"
