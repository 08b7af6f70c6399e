#!/usr/bin/env bash
# load.sh — HTTP load while the daemon works: `wrk` with 64 connections for 30 s against
# /api/v1/detections (the default page of 100 window results, newest first) while 4 streams (synth
# files as cameras) decode and run the default model. Requests/s, latency percentiles and errors
# (socket errors and non-2xx answers) come from wrk's own summary (a Lua done() hook).
# usage: bench/load.sh [--connections N] [--seconds S] [--streams N]
# Writes bench/results/load-<date>-<host>.json; goal: 0 errors, p99 < 50 ms.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/.." && pwd)
conns=64 secs=30 nstreams=4
while [ $# -gt 0 ]; do
    case "$1" in
        --connections) conns=$2; shift ;;
        --seconds) secs=$2; shift ;;
        --streams) nstreams=$2; shift ;;
        *) echo "load.sh: unknown option $1" >&2; exit 2 ;;
    esac
    shift
done
ACTIOND=${ACTIOND:-$top/actiond}
MODEL=${MODEL:-$top/models/default.adm}
command -v wrk >/dev/null || { echo "load.sh: wrk missing (scripts/install-deps installs it)" >&2; exit 1; }
[ -x "$ACTIOND" ] || { echo "load.sh: no $ACTIOND (run make)" >&2; exit 1; }
TMP=$(mktemp -d)
trap 'kill -9 $spid 2>/dev/null || true; rm -rf "$TMP"' EXIT
spid=
port=$(/usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
base="http://127.0.0.1:$port"

"$ACTIOND" synth --sequence "$TMP/seq.mp4" --sequence-seconds 60 --size 320x240 --seed 3 >/dev/null 2>&1
mkdir -p "$TMP/state"
# One client address opens all the connections: the per-address limit is lifted for it, and the
# connection limit set above the load (each connection is a thread in libmicrohttpd).
{
    echo "model: $MODEL"
    echo "state_dir: $TMP/state"
    echo "log_level: warn"
    echo "http: {listen: 127.0.0.1:$port, max_connections: $((conns * 2)), per_ip_limit: 0}"
    echo "streams:"
    for i in $(seq "$nstreams"); do echo "  - {id: cam$i, url: \"$TMP/seq.mp4\"}"; done
} >"$TMP/c.yaml"
"$ACTIOND" serve -c "$TMP/c.yaml" 2>"$TMP/serve.log" &
spid=$!
for _ in $(seq 100); do curl -sf "$base/healthz" >/dev/null && break; sleep 0.2; done
# Let the streams fill the store first, so pages are full.
for _ in $(seq 60); do
    n=$(curl -sf "$base/api/v1/detections" | jq '.items | length' 2>/dev/null || echo 0)
    [ "${n:-0}" -ge 40 ] && break
    sleep 1
done
running=$(curl -sf "$base/api/v1/streams" | jq '[.streams[] | select(.state == "running")] | length')

cat >"$TMP/report.lua" <<'LUA'
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'WRKJSON {"requests":%d,"duration_us":%d,"bytes":%d,"p50_us":%d,"p90_us":%d,"p99_us":%d,"max_us":%d,"mean_us":%.1f,' ..
    '"errors":{"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d}}\n',
    summary.requests, summary.duration, summary.bytes, latency:percentile(50), latency:percentile(90),
    latency:percentile(99), latency.max, latency.mean, e.connect, e.read, e.write, e.status, e.timeout))
end
LUA
rss0=$(awk '/^VmRSS/ {print $2}' "/proc/$spid/status")
wrk -t 2 -c "$conns" -d "${secs}s" --timeout 5s -s "$TMP/report.lua" "$base/api/v1/detections" >"$TMP/wrk.txt"
rss1=$(awk '/^VmRSS/ {print $2}' "/proc/$spid/status")
frames=$(curl -sf "$base/api/v1/streams" | jq '[.streams[].frames] | add')
kill -TERM "$spid"
wait "$spid" || true
spid=

out="$here/results/load-$(date -u +%Y%m%d-%H%M%S)-$(hostname -s).json"
mkdir -p "$here/results"
sed -n 's/^WRKJSON //p' "$TMP/wrk.txt" | jq --argjson c "$conns" --argjson s "$secs" --argjson n "$nstreams" \
    --argjson running "$running" --argjson rss0 "$rss0" --argjson rss1 "$rss1" --argjson frames "$frames" \
    --arg load "$(cut -d' ' -f1-3 /proc/loadavg)" --arg cpu "$(nproc) x $(sed -n 's/^model name[^:]*: //p' /proc/cpuinfo | head -1)" '
    . as $w | {
      url: "/api/v1/detections", connections: $c, seconds: $s, streams: $n, streams_running: $running,
      frames_decoded: $frames, cpu: $cpu, loadavg_end: $load,
      requests: $w.requests, requests_per_s: (($w.requests / ($w.duration_us / 1e6)) | round),
      latency_ms: {p50: ($w.p50_us / 1000), p90: ($w.p90_us / 1000), p99: ($w.p99_us / 1000), max: ($w.max_us / 1000)},
      errors: $w.errors, errors_total: ($w.errors | add),
      rss_kb: {before: $rss0, after: $rss1},
      goal_met: ((($w.errors | add) == 0) and ($w.p99_us < 50000))
    }' >"$out"
jq -r '"load: \(.requests_per_s) requests/s, p50 \(.latency_ms.p50) ms, p99 \(.latency_ms.p99) ms, errors \(.errors_total), \(.streams_running)/\(.streams) streams running, goal met: \(.goal_met)"' "$out"
echo "load: $out"
