#!/usr/bin/env bash
# test_page.sh — the status page (GET /) in Debian's headless Chromium, driven through
# chromedriver's WebDriver HTTP API with curl: the token entered in the page, the streams shown
# with their snapshots, a new event arriving over SSE without a reload; a screenshot is kept in
# $BUILD/page-screenshot.png. Also snapshot.jpg over plain HTTP (a JPEG of the stream's size,
# 404/503 JSON) and ?token= on the live-event stream only.
. "$(dirname "$0")/lib.sh"
top=$(cd "$(dirname "$0")/../.." && pwd)
model="$top/models/default.adm"
shot="${BUILD:-$top/build}/page-screenshot.png"
for tool in chromium chromedriver ffprobe; do
    command -v "$tool" >/dev/null || { not_ok "$tool is installed (scripts/install-deps)"; finish; exit; }
done

free_port() { /usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
hport=$(free_port)
dport=$(free_port)
base="http://127.0.0.1:$hport"
token=page-$RANDOM$RANDOM

"$ACTIOND" --log-level warn synth --sequence "$TMP/cam.mp4" --sequence-seconds 16 --seed 11 \
    --size 160x120 >/dev/null 2>&1
mkdir -p "$TMP/state"
cat >"$TMP/c.yaml" <<EOF
model: $model
state_dir: $TMP/state
inference_workers: 1
http: {listen: 127.0.0.1:$hport, token: $token}
streams:
  - {id: cam1, url: "$TMP/cam.mp4", thresholds: {enter: 0.22, exit: 0.18}}
  - {id: cam2, url: "$TMP/cam.mp4", thresholds: {enter: 0.22, exit: 0.18}}
  - {id: idle, url: "$TMP/cam.mp4", enabled: false}
EOF

pids=()
session=
wd="http://127.0.0.1:$dport"
cleanup() {
    [ -n "$session" ] && curl -s -X DELETE "$wd/session/$session" >/dev/null 2>&1
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done
    rm -rf "$TMP"
}
trap cleanup EXIT

"$ACTIOND" serve -c "$TMP/c.yaml" >"$TMP/serve.log" 2>&1 &
spid=$!
pids+=("$spid")
for _ in $(seq 50); do curl -sf "$base/healthz" >/dev/null && break; sleep 0.2; done
get() { curl -s -H "Authorization: Bearer $token" "$@"; }
code() { curl -s -o "$TMP/body" -w '%{http_code}' "$@"; }

# ---- snapshot.jpg over plain HTTP ----
for _ in $(seq 50); do [ "$(code -H "Authorization: Bearer $token" "$base/api/v1/streams/cam1/snapshot.jpg")" = 200 ] && break; sleep 0.2; done
get -o "$TMP/snap.jpg" "$base/api/v1/streams/cam1/snapshot.jpg"
expect_match "snapshot.jpg is a JPEG of the stream's size" '^mjpeg,160,120$' \
    "$(ffprobe -v error -show_entries stream=codec_name,width,height -of csv=p=0 "$TMP/snap.jpg")"
get -o "$TMP/snapl.jpg" "$base/api/v1/streams/cam2/snapshot.jpg?label=1"
expect_match "with ?label=1 too" '^mjpeg,160,120$' \
    "$(ffprobe -v error -show_entries stream=codec_name,width,height -of csv=p=0 "$TMP/snapl.jpg")"
c=$(code -H "Authorization: Bearer $token" "$base/api/v1/streams/nope/snapshot.jpg")
[ "$c" = 404 ] && grep -q '"error"' "$TMP/body" && ok "unknown stream: 404 JSON" || not_ok "unknown stream: $c"
c=$(code -H "Authorization: Bearer $token" "$base/api/v1/streams/idle/snapshot.jpg")
[ "$c" = 503 ] && grep -q '"error"' "$TMP/body" && ok "no frame yet: 503 JSON" || not_ok "no frame yet: $c $(cat "$TMP/body")"
c=$(code -H "Authorization: Bearer $token" "$base/api/v1/streams/cam1/snapshot.jpg?label=2")
[ "$c" = 400 ] && ok "bad label: 400" || not_ok "bad label: $c"
c=$(code "$base/api/v1/streams/cam1/snapshot.jpg")
[ "$c" = 401 ] && ok "snapshot needs the token" || not_ok "snapshot without token: $c"

# ---- the page and ?token= ----
c=$(code "$base/")
[ "$c" = 200 ] && grep -q '<title>actiond</title>' "$TMP/body" && ok "GET / serves the page without a token" ||
    not_ok "GET /: $c"
grep -qE '(src|href)="https?:' "$TMP/body" && not_ok "the page loads nothing from elsewhere" ||
    ok "the page loads nothing from elsewhere"
c=$(code --max-time 2 "$base/api/v1/events/live?token=$token")
[ "$c" = 200 ] && ok "live events take ?token=" || not_ok "live ?token=: $c"
c=$(code --max-time 2 "$base/api/v1/events/live?token=wrong")
[ "$c" = 401 ] && ok "a wrong ?token= is 401" || not_ok "live wrong ?token=: $c"
c=$(code "$base/api/v1/streams?token=$token")
[ "$c" = 401 ] && ok "?token= works on the live stream only" || not_ok "?token= elsewhere: $c"

# ---- headless Chromium through chromedriver ----
chromedriver --port="$dport" >"$TMP/chromedriver.log" 2>&1 &
pids+=($!)
for _ in $(seq 50); do curl -sf "$wd/status" >/dev/null && break; sleep 0.2; done
caps='{"capabilities":{"alwaysMatch":{"browserName":"chrome","goog:chromeOptions":{"binary":"'"$(command -v chromium)"'","args":["--headless=new","--no-sandbox","--disable-gpu","--disable-dev-shm-usage","--window-size=1280,1000","--user-data-dir='"$TMP"'/chrome"]}}}}'
session=$(curl -s -X POST -H 'Content-Type: application/json' -d "$caps" "$wd/session" | jq -r '.value.sessionId // empty')
[ -n "$session" ] && ok "chromium session" || not_ok "chromium session: $(tail -3 "$TMP/chromedriver.log")"
s="$wd/session/$session"
post() { curl -s -X POST -H 'Content-Type: application/json' -d "$2" "$s$1"; }
js() { post /execute/sync "$(jq -nc --arg s "$1" '{script: $s, args: []}')" | jq -r '.value'; }
js_until() { # seconds, script returning true
    for _ in $(seq $(($1 * 5))); do [ "$(js "$2")" = true ] && return 0; sleep 0.2; done
    return 1
}
elem() { post /element "$(jq -nc --arg v "$1" '{using: "css selector", value: $v}')" | jq -r '.value | to_entries[0].value'; }

post /url "$(jq -nc --arg u "$base/" '{url: $u}')" >/dev/null
js_until 10 'return document.readyState === "complete"' && ok "the page loads" || not_ok "page load"
js_until 10 'return /token/.test(document.getElementById("banner").textContent)' &&
    ok "without the token the page asks for it" || not_ok "no token banner: $(js 'return document.body.innerText.slice(0,200)')"
tok=$(elem '#token')
post "/element/$tok/value" "$(jq -nc --arg t "$token" '{text: $t}')" >/dev/null
post "/element/$(elem '#save')/click" '{}' >/dev/null
js 'window.__notReloaded = true; return true' >/dev/null
js_until 10 'return document.querySelectorAll(".stream").length === 3' && ok "the page shows the 3 streams" ||
    not_ok "streams on the page: $(js 'return document.getElementById("streams").innerText')"
js_until 10 'return [...document.querySelectorAll(".stream .state")].filter(e => e.textContent === "running").length === 2' &&
    ok "with their states" || not_ok "states: $(js 'return document.getElementById("streams").innerText')"
js_until 10 'return /fps/.test(document.querySelector(".stream[data-id=cam1] .stats").textContent)' &&
    ok "and fps" || not_ok "fps on the page"
js_until 10 'const i = document.querySelector(".stream[data-id=cam1] img"); return i.complete && i.naturalWidth === 160' &&
    ok "and a snapshot of each running stream" || not_ok "snapshot on the page"
js_until 10 'return /classes/.test(document.getElementById("model").textContent) && /up /.test(document.getElementById("health").textContent)' &&
    ok "model and health shown" || not_ok "model/health: $(js 'return document.getElementById("model").textContent')"
js_until 10 'return document.getElementById("live-state").textContent === "(connected)"' &&
    ok "live feed connected (SSE with ?token=)" || not_ok "live feed: $(js 'return document.getElementById("live-state").textContent')"
n0=$(js 'return document.querySelectorAll("#live li").length')
js_until 40 "return document.querySelectorAll('#live li').length > $n0 && window.__notReloaded === true" &&
    ok "a new event appears without a reload" || not_ok "no live event in 40 s"
js_until 10 'return document.querySelectorAll("#events tr").length > 0' && ok "recent events listed" ||
    not_ok "recent events"
post "/element/$(elem '#f-action')/value" '{"text":"no-such-action"}' >/dev/null
post "/element/$(elem '#filters button')/click" '{}' >/dev/null
js_until 10 'return document.querySelectorAll("#events tr").length === 0' && ok "filters apply" ||
    not_ok "filters: $(js 'return document.querySelectorAll("#events tr").length')"
mkdir -p "$(dirname "$shot")"
curl -s "$s/screenshot" | jq -r '.value' | base64 -d >"$shot" 2>/dev/null
[ "$(head -c 4 "$shot" | tail -c 3)" = PNG ] && ok "screenshot kept in $shot" || not_ok "screenshot"

kill -TERM "$spid"
wait "$spid" && ok "serve stops cleanly" || not_ok "serve exit $?"
finish
