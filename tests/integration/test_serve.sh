#!/usr/bin/env bash
# test_serve.sh — the real `actiond serve` on 127.0.0.1: a synth clip as a camera, a dead
# RTSP camera, READY/STOPPING over NOTIFY_SOCKET, window results and events over HTTP,
# SIGHUP adding and removing streams (a bad file keeps the old config), SIGTERM within 5 s,
# events kept across a restart and a kill -9, and a bad config exiting 78.
. "$(dirname "$0")/lib.sh"
py="$(dirname "$0")/../python/make_resnet18.py"

for s in "rgb 3" "mot 2"; do
    set -- $s
    /usr/bin/python3 "$py" "$TMP" --arch tiny --size 64 --in-ch "$2" --classes 3 --name "$1" \
        >"$TMP/py.log" 2>&1 || not_ok "PyTorch model $1: $(tail -1 "$TMP/py.log")"
done
"$ACTIOND" import "$TMP/rgb.onnx" --motion "$TMP/mot.onnx" -o "$TMP/m.adm" --classes walk,run,wave \
    --motion-kind diff --motion-len 1 --segments 3 --fps 10 >/dev/null 2>&1
"$ACTIOND" synth -o "$TMP/s" --classes 1 --clips-per-class 1 --size 96x64 --seconds 3 --seed 5 \
    >/dev/null 2>&1
cp "$TMP/s/bend/bend_000.mp4" "$TMP/cam.mp4"

port=$(/usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
base="http://127.0.0.1:$port"
token=t0ken-$RANDOM$RANDOM
write_config() { # streams...
    {
        echo "model: $TMP/m.adm"
        echo "state_dir: $TMP/state"
        echo "http: {listen: 127.0.0.1:$port, token: $token}"
        echo "streams:"
        for s in "$@"; do echo "$s"; done
    } >"$TMP/c.yaml"
}
cam1='  - {id: cam1, url: "'"$TMP"'/cam.mp4", thresholds: {enter: 0.3, exit: 0.2}}'
dead='  - {id: dead, url: "rtsp://127.0.0.1:9/none", timeouts: {connect: 1s, stall: 2s}}'
cam3='  - {id: cam3, url: "'"$TMP"'/cam.mp4"}'
mkdir -p "$TMP/state"
write_config "$cam1" "$dead"

# NOTIFY_SOCKET listener: records every datagram to a file.
/usr/bin/python3 -c '
import socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM); s.bind(sys.argv[1])
with open(sys.argv[2], "a") as f:
    while True:
        d = s.recv(4096).decode(); f.write(d.replace("\n", " ") + "\n"); f.flush()
' "$TMP/notify.sock" "$TMP/notify.log" &
npid=$!
trap 'kill $npid 2>/dev/null; rm -rf "$TMP"' EXIT
sleep 0.3

start() {
    NOTIFY_SOCKET="$TMP/notify.sock" "$ACTIOND" serve -c "$TMP/c.yaml" >>"$TMP/serve.log" 2>&1 &
    spid=$!
    for _ in $(seq 50); do curl -sf "$base/healthz" >/dev/null && return 0; sleep 0.2; done
    return 1
}
get() { curl -sf -H "Authorization: Bearer $token" "$base$1"; }
wait_for() { # seconds, jq filter on a URL
    for _ in $(seq $(($1 * 5))); do
        [ "$(get "$2" | jq -r "$3" 2>/dev/null)" = "true" ] && return 0
        sleep 0.2
    done
    return 1
}

start && ok "serve answers /healthz" || not_ok "serve answers /healthz: $(tail -3 "$TMP/serve.log")"
# live events over SSE from the start, before the first window opens an event
curl -sN --max-time 12 -H "Authorization: Bearer $token" "$base/api/v1/events/live" >"$TMP/sse.txt" 2>/dev/null &
sse=$!
code=$(curl -s -o /dev/null -w '%{http_code}' "$base/api/v1/streams")
[ "$code" = 401 ] && ok "no token: 401" || not_ok "no token: $code"
code=$(curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer wrong" "$base/api/v1/health")
[ "$code" = 401 ] && ok "wrong token: 401" || not_ok "wrong token: $code"
code=$(curl -s -o /dev/null -w '%{http_code}' "$base/api/v1/nothing-here" -H "Authorization: Bearer $token")
[ "$code" = 404 ] && ok "unknown path: 404" || not_ok "unknown path: $code"
expect_match "404 body is JSON" '^\{"error":' "$(curl -s -H "Authorization: Bearer $token" "$base/api/v1/nothing-here")"
grep -q 'READY=1' "$TMP/notify.log" && ok "READY=1 sent" || not_ok "READY=1 sent"
wait_for 10 /api/v1/streams '.streams[] | select(.id=="cam1") | .state=="running"' &&
    ok "cam1 running" || not_ok "cam1 running: $(get /api/v1/streams)"
wait_for 10 /api/v1/streams '.streams[] | select(.id=="dead") | (.state=="backoff" and (.last_error|test("refused")))' &&
    ok "dead camera in backoff with its error" || not_ok "dead camera in backoff: $(get /api/v1/streams)"
wait_for 10 /api/v1/detections '.items | length >= 2' && ok "window results stored" ||
    not_ok "window results: $(get /api/v1/detections)"
wait_for 10 /api/v1/events '.items | length >= 1' && ok "an event opened" ||
    not_ok "events: $(get /api/v1/events)"
expect_match "health names the model and OpenBLAS kernel" '"openblas_core"' "$(get /api/v1/health)"
wait_for 5 /api/v1/streams/cam1 '.window_latency_ms | (.windows >= 1 and .p50 >= 0 and .p50 <= .p99 and .p99 <= .max)' &&
    ok "window latency measured" || not_ok "window latency: $(get /api/v1/streams/cam1)"
expect_match "window latency in /metrics" 'actiond_window_latency_seconds\{stream="cam1",quantile="0.99"\} [0-9.]+' \
    "$(get /metrics)"
# cameras need libavdevice; streams from files and URLs must not pay its memory
grep -q 'libavdevice' "/proc/$spid/maps" && not_ok "libavdevice mapped without a camera source" ||
    ok "no libavdevice mapped without a camera source"
wait "$sse" 2>/dev/null
grep -q '"action":' "$TMP/sse.txt" && ok "an event arrived over SSE" || not_ok "SSE: $(head -c 300 "$TMP/sse.txt")"

# SIGHUP: a broken file keeps the running config; a good one adds cam3 and removes dead.
echo "streams: [" >"$TMP/c.yaml"
kill -HUP "$spid"
sleep 1
expect_match "broken reload keeps both streams" '"dead"' "$(get /api/v1/streams)"
grep -q 'keeping the running configuration' "$TMP/serve.log" && ok "broken reload logged" ||
    not_ok "broken reload logged"
write_config "$cam1" "$cam3"
kill -HUP "$spid"
wait_for 10 /api/v1/streams '([.streams[].id] | sort) == ["cam1","cam3"]' &&
    ok "reload added cam3 and removed dead" || not_ok "reload: $(get /api/v1/streams)"
wait_for 10 /api/v1/streams '.streams[] | select(.id=="cam3") | .frames > 0' &&
    ok "cam3 decoding" || not_ok "cam3 decoding"

t0=$(date +%s%N)
kill -TERM "$spid"
wait "$spid"
rc=$?
ms=$((($(date +%s%N) - t0) / 1000000))
[ "$rc" -eq 0 ] && ok "SIGTERM: exit 0" || not_ok "SIGTERM: exit $rc"
[ "$ms" -lt 5000 ] && ok "SIGTERM: stopped in $ms ms" || not_ok "SIGTERM took $ms ms"
grep -q 'STOPPING=1' "$TMP/notify.log" && ok "STOPPING=1 sent" || not_ok "STOPPING=1 sent"
n_events=$(sqlite3 "$TMP/state/actiond.db" 'select count(*) from events' 2>/dev/null || echo 0)

start && ok "restart" || not_ok "restart"
n_after=$(get /api/v1/events | jq '.items | length')
[ "${n_after:-0}" -ge "$n_events" ] && [ "$n_events" -ge 1 ] && ok "events kept across restart ($n_events)" ||
    not_ok "events kept across restart: $n_events then $n_after"
wait_for 10 /api/v1/detections '.items | length >= 4' || true
kill -9 "$spid"
wait "$spid" 2>/dev/null
ic=$(sqlite3 "$TMP/state/actiond.db" 'pragma integrity_check')
[ "$ic" = "ok" ] && ok "integrity_check after kill -9" || not_ok "integrity_check: $ic"
n_kill=$(sqlite3 "$TMP/state/actiond.db" 'select count(*) from events')
[ "$n_kill" -ge "$n_events" ] && ok "events kept after kill -9" || not_ok "events after kill -9: $n_kill"

printf 'model: %s\nstreams: [{id: BAD ID, url: x}]\n' "$TMP/m.adm" >"$TMP/bad.yaml"
expect_status "bad config exits 78" 78 "$ACTIOND" serve -c "$TMP/bad.yaml"
expect_match "bad config names file:line:col" 'bad.yaml:2:[0-9]+:' "$ERR"
printf 'model: %s/none.adm\nstreams: [{id: a, url: x}]\n' "$TMP" >"$TMP/nomodel.yaml"
expect_status "missing model exits 1" 1 "$ACTIOND" serve -c "$TMP/nomodel.yaml"
expect_lines "missing model: one line" 1 "$ERR"
expect_match "missing model named" 'none.adm' "$ERR"
finish
