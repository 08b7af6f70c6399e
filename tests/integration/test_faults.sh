#!/usr/bin/env bash
# test_faults.sh — fault injection against the real `actiond serve`: a camera killed mid-stream,
# one that stalls with its connection open, one that sends garbage, the database on a full disk
# and on a read-only file system, a corrupt model before SIGHUP and at start. Through all of it
# the daemon keeps serving and the good camera keeps producing. (A source server going away and
# coming back is test_reconnect.sh.) Last, kill -9 during heavy event writes (serve_fixture).
# With RELIABILITY_OUT set, each fault and its measured outcome is appended there as a TSV row.
. "$(dirname "$0")/lib.sh"
here=$(cd "$(dirname "$0")" && pwd)
py="$here/../python/make_resnet18.py"
record() { [ -z "${RELIABILITY_OUT:-}" ] || printf 'faults\t%s\t%s\n' "$1" "$2" >>"$RELIABILITY_OUT"; }

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
ffmpeg -nostdin -loglevel error -i "$TMP/cam.mp4" -c copy -f mpegts "$TMP/cam.ts"

free_port() { /usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
api=$(free_port) p_good=$(free_port) p_kill=$(free_port) p_stall=$(free_port) p_garbage=$(free_port)
base="http://127.0.0.1:$api"

# The state directory lives on its own small tmpfs when this machine lets us mount one (root,
# or a container with CAP_SYS_ADMIN): that is what makes a real ENOSPC and a real read-only
# file system. Otherwise those checks are skipped, saying so.
STATE=$TMP/state
mkdir -p "$STATE"
MOUNTED=0
if mount -t tmpfs -o size=8m,mode=0700 tmpfs "$STATE" 2>/dev/null; then MOUNTED=1; fi
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null; done
    wait 2>/dev/null
    [ "$MOUNTED" = 1 ] && umount -l "$STATE" 2>/dev/null
    rm -rf "$TMP"
}
trap cleanup EXIT

serve_killable() {
    ffmpeg -nostdin -hide_banner -loglevel error -re -stream_loop -1 -i "$TMP/cam.mp4" \
        -c copy -f mpegts -listen 1 "http://127.0.0.1:$p_kill/" >/dev/null 2>&1 &
    fpid=$!
    pids+=("$fpid")
}
serve_killable
# The good camera loops over HTTP: a 3 s file would end, back off and go quiet now and then.
ffmpeg -nostdin -hide_banner -loglevel error -re -stream_loop -1 -i "$TMP/cam.mp4" \
    -c copy -f mpegts -listen 1 "http://127.0.0.1:$p_good/" >/dev/null 2>&1 &
pids+=($!)
/usr/bin/python3 "$here/helpers/fake_camera.py" stall "$p_stall" "$TMP/cam.ts" >"$TMP/stall.log" 2>&1 &
pids+=($!)
/usr/bin/python3 "$here/helpers/fake_camera.py" garbage "$p_garbage" >"$TMP/garbage.log" 2>&1 &
pids+=($!)

write_config() { # model path
    cat >"$TMP/c.yaml" <<YAML
model: $1
state_dir: $STATE
http: {listen: 127.0.0.1:$api}
streams:
  - {id: good, url: "http://127.0.0.1:$p_good/", thresholds: {enter: 0.3, exit: 0.2}}
  - {id: killed, url: "http://127.0.0.1:$p_kill/", timeouts: {connect: 2s, stall: 2s}}
  - {id: stall, url: "http://127.0.0.1:$p_stall/", timeouts: {connect: 2s, stall: 2s}}
  - {id: garbage, url: "http://127.0.0.1:$p_garbage/", timeouts: {connect: 2s, stall: 2s}}
YAML
}
write_config "$TMP/m.adm"
sleep 0.5

"$ACTIOND" serve -c "$TMP/c.yaml" >"$TMP/serve.log" 2>&1 &
spid=$!
pids+=("$spid")
get() { curl -sf --max-time 5 "$base$1"; }
jqget() { get "$1" | jq -r "$2" 2>/dev/null; }
# until_true SECONDS URL JQ: polls until the filter is true; a deadline, not a guess at timing.
until_true() {
    for _ in $(seq $(($1 * 5))); do
        [ "$(jqget "$2" "$3")" = true ] && return 0
        sleep 0.2
    done
    return 1
}
alive() { kill -0 "$spid" 2>/dev/null && [ "$(jqget /healthz .status)" = ok ]; }
rss_kb() { awk '/^VmRSS/ {print $2}' "/proc/$spid/status" 2>/dev/null; }
n_detections() { jqget "/api/v1/detections?stream=good&limit=1000" '.items | length'; }
st() { jqget "/api/v1/streams/$1" "$2"; }

for _ in $(seq 50); do get /healthz >/dev/null && break; sleep 0.2; done
alive && ok "serve starts with four cameras, three of them faulty" || not_ok "serve starts: $(tail -3 "$TMP/serve.log")"
until_true 15 /api/v1/streams/good '.state == "running"' && ok "the good camera runs" ||
    not_ok "good camera: $(get /api/v1/streams/good)"
until_true 15 /api/v1/streams/killed '.state == "running"' && ok "the killable camera runs" ||
    not_ok "killable camera: $(get /api/v1/streams/killed)"
rss0=$(rss_kb)

# ---- a source killed mid-stream ----
kill -9 "$fpid"
wait "$fpid" 2>/dev/null
if until_true 10 /api/v1/streams/killed '.state == "backoff"'; then
    ok "killed mid-stream: backoff"
    record "camera server killed (SIGKILL) mid-stream" "stream in backoff, error \"$(st killed .last_error)\"; other streams unaffected"
else
    not_ok "killed mid-stream: $(get /api/v1/streams/killed)"
fi

# ---- a source that stalls with its connection open ----
if until_true 20 /api/v1/streams/stall '.state == "backoff" and .reconnects_last_hour >= 1'; then
    ok "stalled source: noticed, backoff"
    record "camera sends 64 KiB of MPEG-TS, then nothing, connection held open" \
        "stream in backoff after the 2 s stall timeout, error \"$(st stall .last_error)\", retried"
else
    not_ok "stalled source: $(get /api/v1/streams/stall)"
fi
expect_match "the stall is named in the error" 'stall|timed out|timeout' "$(st stall .last_error)"

# ---- a source that sends garbage ----
if until_true 20 /api/v1/streams/garbage '.state == "backoff" or .state == "starting"' &&
    [ "$(st garbage .frames)" = 0 ]; then
    ok "garbage source: no frames, not running"
    record "camera sends random bytes as video/mp2t" \
        "stream in $(st garbage .state), 0 frames, error \"$(st garbage .last_error)\""
else
    not_ok "garbage source: $(get /api/v1/streams/garbage)"
fi
alive && ok "alive after the three faulty sources" || not_ok "daemon died: $(tail -5 "$TMP/serve.log")"
d0=$(n_detections)
sleep 2.5
d1=$(n_detections)
[ "${d1:-0}" -gt "${d0:-0}" ] && ok "the good camera keeps producing ($d0 -> $d1 windows)" ||
    not_ok "good camera stopped producing: $d0 -> $d1"

# ---- the database on a full disk ----
if [ "$MOUNTED" = 1 ]; then
    dd if=/dev/zero of="$STATE/filler" bs=64k 2>/dev/null
    if until_true 15 /api/v1/health '.store.healthy == false'; then
        ok "disk full: the store reports unhealthy"
    else
        not_ok "disk full: $(get /api/v1/health | jq -c .store)"
    fi
    err=$(jqget /api/v1/health .store.last_error)
    alive && ok "disk full: still serving" || not_ok "disk full: daemon died: $(tail -5 "$TMP/serve.log")"
    code=$(curl -s -o /dev/null -w '%{http_code}' "$base/api/v1/events")
    [ "$code" = 200 ] && ok "disk full: reads still answer" || not_ok "disk full: reads $code"
    rm -f "$STATE/filler"
    b0=$(n_detections)
    if until_true 15 /api/v1/health '.store.healthy == true' && sleep 2.5 && [ "$(n_detections)" -gt "$b0" ]; then
        ok "space freed: writes resume"
        record "the database's file system full (ENOSPC, 8 MiB tmpfs filled)" \
            "store unhealthy in /api/v1/health (\"$err\"), reads and HTTP keep working, writes resume once space is freed"
    else
        not_ok "space freed: $(get /api/v1/health | jq -c .store)"
    fi

    # A file system cannot be remounted read-only under a process holding files open for
    # writing (EBUSY), so a read-only state directory is tried at start, below.
else
    ok "# SKIP full disk and read-only state: cannot mount a tmpfs here"
fi

# ---- the model file replaced by a corrupt one, then SIGHUP ----
cp "$TMP/m.adm" "$TMP/m.good"
head -c 20000 /dev/urandom >"$TMP/m.adm"
kill -HUP "$spid"
sleep 1
m0=$(n_detections)
sleep 2.5
if alive && [ "$(n_detections)" -gt "$m0" ]; then
    ok "corrupt model + SIGHUP: the loaded model keeps running"
    record "model file overwritten with random bytes, then SIGHUP" "the loaded model keeps running; windows keep coming"
else
    not_ok "corrupt model + SIGHUP: $(tail -3 "$TMP/serve.log")"
fi
write_config "$TMP/corrupt.adm"
cp "$TMP/m.adm" "$TMP/corrupt.adm"
kill -HUP "$spid"
sleep 1
grep -q 'keeping the running configuration' "$TMP/serve.log" && alive &&
    ok "config naming a corrupt model + SIGHUP: refused, old config kept" ||
    not_ok "config naming a corrupt model: $(tail -3 "$TMP/serve.log")"
record "config changed to a corrupt model file, then SIGHUP" \
    "reload refused ($(grep 'keeping the running' "$TMP/serve.log" | tail -1 | sed 's/^.*reload: //'))"
rss1=$(rss_kb)

kill -TERM "$spid"
wait "$spid"
rc=$?
[ "$rc" -eq 0 ] && ok "SIGTERM after every fault: exit 0" || not_ok "SIGTERM: exit $rc"
ic=$(sqlite3 "$STATE/actiond.db" 'pragma integrity_check' 2>&1)
[ "$ic" = ok ] && ok "integrity_check after the faults" || not_ok "integrity_check: $ic"
if grep -E 'Sanitizer|runtime error' "$TMP/serve.log" >/dev/null; then
    not_ok "no sanitizer reports: $(grep -E 'Sanitizer|runtime error' "$TMP/serve.log" | head -3)"
else
    ok "no sanitizer reports"
fi
echo "# RSS ${rss0} kB after start, ${rss1} kB after the faults"

# ---- a corrupt model or a read-only state directory at start ----
expect_status "corrupt model at start: exit 1" 1 "$ACTIOND" serve -c "$TMP/c.yaml"
expect_lines "corrupt model at start: one line" 1 "$ERR"
expect_match "corrupt model at start: the file is named" 'corrupt.adm' "$ERR"
record "corrupt model file at start" "exit 1, one line: \"$ERR\""
if [ "$MOUNTED" = 1 ]; then
    write_config "$TMP/m.good"
    rm -f "$STATE"/actiond.db*
    mount -o remount,ro "$STATE"
    expect_status "read-only state directory at start: exit 1" 1 "$ACTIOND" serve -c "$TMP/c.yaml"
    expect_lines "read-only state directory at start: one line" 1 "$ERR"
    record "state directory read-only at start (no database yet)" "exit 1, one line: \"$ERR\""
    mount -o remount,rw "$STATE"
fi

# ---- kill -9 during heavy event writes ----
# serve_fixture runs the daemon's real store, recorder and HTTP server; a writer feeds it window
# results as fast as it takes them (every other one opens an event, committed before its "ok"),
# while a reader pages through the events over HTTP. After kill -9 and a restart, every event
# the API returned and every acknowledged open must still be there.
FIXTURE=${BUILD:-$here/../../build}/tests/helpers/serve_fixture
K=$TMP/kill
mkdir -p "$K/state"
if [ ! -x "$FIXTURE" ]; then
    not_ok "serve_fixture is built ($FIXTURE)"
    finish
    exit 1
fi
mkfifo "$K/in"
feeder() {
    /usr/bin/python3 -c '
import sys
t = 0
while True:
    for s in ("[0.9, 0.0, 0.0]", "[0.0, 0.0, 0.0]"):
        sys.stdout.write("{\"stream\":\"cam1\",\"start\":%d,\"end\":%d,\"scores\":%s}\n" % (t, t + 1000, s))
        t += 1000
    sys.stdout.flush()
'
}
# all_event_ids PORT: every event id, paging by cursor.
all_event_ids() {
    local url="http://127.0.0.1:$1/api/v1/events?limit=1000" next="" body
    for _ in $(seq 100); do
        body=$(curl -sf --max-time 5 "$url${next:+&cursor=$next}") || return 1
        jq -r '.items[].id' <<<"$body"
        next=$(jq -r '.next_cursor // empty' <<<"$body")
        [ -n "$next" ] || return 0
    done
}
fixture_port() { # file with the fixture's stdout
    for _ in $(seq 50); do
        line=$(head -1 "$1" 2>/dev/null)
        [[ $line == listening* ]] && { echo "${line##* }"; return 0; }
        sleep 0.1
    done
    return 1
}
"$FIXTURE" --state "$K/state" --streams cam1 --classes walk,run,wave <"$K/in" >"$K/out" 2>"$K/err" &
xpid=$!
pids+=("$xpid")
feeder >"$K/in" 2>/dev/null &
fdpid=$!
pids+=("$fdpid")
port=$(fixture_port "$K/out")
: >"$K/seen"
t_end=$(($(date +%s) + 4))
while [ "$(date +%s)" -lt "$t_end" ]; do
    all_event_ids "$port" >>"$K/seen" 2>/dev/null
done
kill -9 "$xpid"
wait "$xpid" 2>/dev/null
kill "$fdpid" 2>/dev/null
wait "$fdpid" 2>/dev/null
acked=$(grep -c '^ok$' "$K/out")
sort -un "$K/seen" -o "$K/seen"
n_seen=$(wc -l <"$K/seen")
ic=$(sqlite3 "$K/state/actiond.db" 'pragma integrity_check' 2>&1)
[ "$ic" = ok ] && ok "kill -9 during heavy writes: integrity_check ok" || not_ok "integrity_check after kill -9: $ic"
sleep 60 2>/dev/null | "$FIXTURE" --state "$K/state" --streams cam1 --classes walk,run,wave >"$K/out2" 2>>"$K/err" &
xpid=$!
pids+=("$xpid")
port=$(fixture_port "$K/out2")
all_event_ids "$port" | sort -un >"$K/after"
n_after=$(wc -l <"$K/after")
lost=$(comm -23 "$K/seen" "$K/after" | wc -l)
if [ "$n_seen" -gt 0 ] && [ "$lost" -eq 0 ]; then
    ok "every one of the $n_seen events the API returned is still there"
else
    not_ok "events lost after kill -9: $lost of $n_seen (after: $n_after)"
fi
opened=$(((acked + 1) / 2))
[ "$n_after" -ge "$opened" ] && ok "every acknowledged open is on disk ($n_after events >= $opened acked opens)" ||
    not_ok "acked opens lost: $n_after events, $opened acked opens"
record "kill -9 while ~$((acked / 4)) window results/s are written (half of them open an event) and the API is read" \
    "after restart: integrity_check ok, $n_seen/$n_seen events the API had returned present, $n_after events >= $opened acknowledged opens"
kill "$xpid" 2>/dev/null
wait "$xpid" 2>/dev/null
finish
