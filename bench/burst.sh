#!/usr/bin/env bash
# burst.sh — the daemon's resident set after each of N bursts of hostile HTTP clients (40
# slowloris connections held 10 s while 2000 connections are opened and dropped, then a few
# ordinary requests), one light file stream running. Memory that a burst leaves behind shows
# as a step per burst; the soak (soak.sh) sees the same thing mixed with everything else.
# usage: bench/burst.sh [BURSTS]   (environment passes through: MALLOC_ARENA_MAX=8 compares)
# Prints one JSON line: the RSS before the first burst and after each, in kB.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/.." && pwd)
BURSTS=${1:-8}
[[ "$BURSTS" =~ ^[1-9][0-9]{0,3}$ ]] || { echo "burst.sh: BURSTS must be a count from 1 to 9999, not '$BURSTS'" >&2; exit 2; }
ACTIOND=${ACTIOND:-$top/actiond}
STORM=${BUILD:-$top/build}/tests/helpers/conn_storm
MODEL=${MODEL:-$top/models/default.adm}
[ -x "$ACTIOND" ] && [ -x "$STORM" ] || { echo "burst.sh: run make tests first" >&2; exit 1; }
TMP=$(mktemp -d)
spid=
trap '[ -z "$spid" ] || kill -9 "$spid" 2>/dev/null; wait 2>/dev/null; rm -rf "$TMP"' EXIT
port=$(/usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
base="http://127.0.0.1:$port"
"$ACTIOND" --log-level warn synth --sequence "$TMP/seq.mp4" --sequence-seconds 30 \
    --size 320x240 --seed 3 >/dev/null
mkdir -p "$TMP/state"
cat >"$TMP/c.yaml" <<YAML
model: $MODEL
state_dir: $TMP/state
log_level: warn
http: {listen: 127.0.0.1:$port, max_connections: 64, per_ip_limit: 16, timeout: 5s}
streams:
  - {id: cam, url: "$TMP/seq.mp4", fps: 2}
YAML
"$ACTIOND" serve -c "$TMP/c.yaml" 2>"$TMP/serve.log" &
spid=$!
for _ in $(seq 100); do curl -sf "$base/healthz" >/dev/null && break; sleep 0.2; done
curl -sf "$base/healthz" >/dev/null || { echo "burst.sh: serve did not start: $(tail -3 "$TMP/serve.log")" >&2; exit 1; }
sleep 5 # the first windows: model plan, decoder, SQLite pages
rss() { awk '/^VmRSS/ {print $2}' "/proc/$spid/status"; }
after=()
before=$(rss)
for _ in $(seq "$BURSTS"); do
    "$STORM" slow 127.0.0.1 "$port" 40 10 127.0.0.2 >/dev/null &
    slow=$!
    "$STORM" drop 127.0.0.1 "$port" 2000 127.0.0.3 >/dev/null
    for _ in $(seq 20); do curl -s -o /dev/null "$base/api/v1/detections?limit=100"; done
    wait "$slow"
    sleep 3
    after+=("$(rss)")
done
kill -TERM "$spid"
wait "$spid"
spid=
printf '{"malloc_arena_max":"%s","bursts":%d,"rss_before_kb":%d,"rss_after_kb":[%s]}\n' \
    "${MALLOC_ARENA_MAX:-}" "$BURSTS" "$before" "$(IFS=,; echo "${after[*]}")"
