#!/usr/bin/env bash
# test_reconnect.sh — a camera whose server goes away and comes back: `actiond serve` backs
# off, retries, and is running again within 5 s of the server's return. The camera is an
# MPEG-TS stream over HTTP served by the ffmpeg CLI on 127.0.0.1.
. "$(dirname "$0")/lib.sh"
py="$(dirname "$0")/../python/make_resnet18.py"

for s in "rgb 3" "mot 2"; do
    set -- $s
    /usr/bin/python3 "$py" "$TMP" --arch tiny --size 64 --in-ch "$2" --classes 3 --name "$1" \
        >"$TMP/py.log" 2>&1 || not_ok "PyTorch model $1"
done
"$ACTIOND" import "$TMP/rgb.onnx" --motion "$TMP/mot.onnx" -o "$TMP/m.adm" --classes a,b,c \
    --motion-kind diff --motion-len 1 --segments 3 --fps 10 >/dev/null 2>&1
"$ACTIOND" synth -o "$TMP/s" --classes 1 --clips-per-class 1 --size 96x64 --seconds 3 --seed 5 \
    >/dev/null 2>&1
free_port() { /usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
cam=$(free_port)
api=$(free_port)
serve_camera() {
    ffmpeg -nostdin -hide_banner -loglevel error -re -stream_loop -1 -i "$TMP/s/bend/bend_000.mp4" \
        -c copy -f mpegts -listen 1 "http://127.0.0.1:$cam/" >/dev/null 2>&1 &
    fpid=$!
}
cat >"$TMP/c.yaml" <<YAML
model: $TMP/m.adm
state_dir: $TMP/state
http: {listen: 127.0.0.1:$api}
streams:
  - {id: cam, url: "http://127.0.0.1:$cam/", timeouts: {connect: 2s, stall: 3s}}
YAML
mkdir -p "$TMP/state"
serve_camera
sleep 0.5
"$ACTIOND" serve -c "$TMP/c.yaml" 2>"$TMP/serve.log" &
spid=$!
trap 'kill $fpid $spid 2>/dev/null; rm -rf "$TMP"' EXIT
state() { curl -sf "http://127.0.0.1:$api/api/v1/streams/cam" | jq -r "$1" 2>/dev/null; }
until_state() { # seconds, wanted state
    for _ in $(seq $(($1 * 10))); do [ "$(state .state)" = "$2" ] && return 0; sleep 0.1; done
    return 1
}
until_state 15 running && ok "camera running" || not_ok "camera running: $(tail -2 "$TMP/serve.log")"
kill -9 "$fpid"
wait "$fpid" 2>/dev/null
until_state 10 backoff && ok "server gone: backoff" || not_ok "server gone: backoff ($(state .state))"
expect_match "the error is kept" '.' "$(state .last_error)"
sleep 2
frames=$(state .frames)
serve_camera
t0=$(date +%s%N)
until_state 10 running
ms=$((($(date +%s%N) - t0) / 1000000))
[ "$(state .state)" = running ] && [ "$ms" -le 5000 ] && ok "running again $ms ms after the server's return" ||
    not_ok "running again within 5 s of the return: $ms ms, state $(state .state)"
sleep 1.5
[ "$(state .frames)" -gt "$frames" ] && ok "frames flow again" || not_ok "frames flow again"
[ "$(state .reconnects)" -ge 1 ] && ok "reconnects counted" || not_ok "reconnects counted"
kill -TERM "$spid"
wait "$spid" && ok "clean stop" || not_ok "clean stop"
finish
