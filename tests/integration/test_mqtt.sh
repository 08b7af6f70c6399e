#!/usr/bin/env bash
# test_mqtt.sh — the real `actiond serve` publishing to a real mosquitto broker on 127.0.0.1:
# events on open and close, the retained online/offline status and its Last Will, stats; then
# the broker down for 30 s while events happen, and back: every event delivered (by id), in
# order per stream, compared with GET /api/v1/events, and none twice except a message that was
# in flight when the broker was killed (QoS 1: docs/mqtt.md); what a stop leaves in the outbox
# goes out after a restart.
. "$(dirname "$0")/lib.sh"
model="$(cd "$(dirname "$0")/../.." && pwd)/models/default.adm"
for tool in mosquitto mosquitto_sub; do
    command -v "$tool" >/dev/null || { not_ok "$tool is installed (scripts/install-deps)"; finish; exit; }
done
if ! "$ACTIOND" serve --dump-schema | grep -q 'mqtt.enabled'; then
    not_ok "actiond knows mqtt.enabled"; finish; exit
fi

free_port() { /usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
hport=$(free_port)
mport=$(free_port)
base="http://127.0.0.1:$hport"
prefix="test/board-$RANDOM"
OUTAGE_S=${MQTT_OUTAGE_S:-30}

"$ACTIOND" --log-level warn synth --sequence "$TMP/cam.mp4" --sequence-seconds 16 --seed 11 \
    --size 160x120 >/dev/null 2>&1
mkdir -p "$TMP/state" "$TMP/broker"
# The broker keeps the test subscriber's session on disk across its own restart, so the
# messages delivered while the subscriber reconnects wait for it instead of being lost.
cat >"$TMP/mosquitto.conf" <<EOF
listener $mport 127.0.0.1
allow_anonymous true
persistence true
persistence_location $TMP/broker/
user $(id -un)
EOF
cat >"$TMP/c.yaml" <<EOF
model: $model
state_dir: $TMP/state
inference_workers: 1
http: {listen: 127.0.0.1:$hport}
mqtt:
  enabled: true
  host: 127.0.0.1
  port: $mport
  prefix: $prefix
  client_id: actiond-under-test
  keepalive: 5s
  stats_interval: 2s
  backoff_max: 2s
streams:
  - {id: cam1, url: "$TMP/cam.mp4", thresholds: {enter: 0.22, exit: 0.18}}
  - {id: cam2, url: "$TMP/cam.mp4", thresholds: {enter: 0.22, exit: 0.18}}
EOF

pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done; rm -rf "$TMP"; }
trap cleanup EXIT

broker_start() {
    mosquitto -c "$TMP/mosquitto.conf" >>"$TMP/broker.log" 2>&1 &
    bpid=$!
    pids+=("$bpid")
    for _ in $(seq 50); do
        mosquitto_sub -h 127.0.0.1 -p "$mport" -t probe -C 1 -W 1 -i probe >/dev/null 2>&1
        [ $? -eq 27 ] && return 0 # 27: timed out waiting for a message, so it connected
        sleep 0.1
    done
    return 1
}
serve_start() {
    "$ACTIOND" serve -c "$TMP/c.yaml" >>"$TMP/serve.log" 2>&1 &
    spid=$!
    pids+=("$spid")
    for _ in $(seq 50); do curl -sf "$base/healthz" >/dev/null && return 0; sleep 0.2; done
    return 1
}
outbox() { sqlite3 "$TMP/state/actiond.db" 'select count(*) from outbox' 2>/dev/null || echo -1; }
outbox_empty() { [ "$(outbox)" -eq 0 ]; }
outbox_holds() { [ "$(outbox)" -gt 0 ]; }
n_msgs() { local n; n=$(grep -c '/events ' "$TMP/events.txt" 2>/dev/null); echo "${n:-0}"; }
msgs_at_least() { [ "$(n_msgs)" -ge "$1" ]; }
wait_until() { # seconds, command...
    local t=$1; shift
    for _ in $(seq $((t * 5))); do "$@" && return 0; sleep 0.2; done
    return 1
}

broker_start && ok "mosquitto listens on 127.0.0.1:$mport" || not_ok "mosquitto: $(tail -3 "$TMP/broker.log")"
# -c with a fixed id: a persistent session, QoS 1, every message line "arrival topic payload"
# (arrival: Unix seconds with nanoseconds).
mosquitto_sub -h 127.0.0.1 -p "$mport" -i actiond-test-events -c -q 1 -F '%U %t %p' -t "$prefix/+/events" \
    >>"$TMP/events.txt" 2>"$TMP/sub.err" &
pids+=($!)
mosquitto_sub -h 127.0.0.1 -p "$mport" -q 1 -v -t "$prefix/status" -t "$prefix/stats" \
    >>"$TMP/status.txt" 2>&1 &
pids+=($!)
sleep 0.5

serve_start && ok "serve answers /healthz" || not_ok "serve: $(tail -3 "$TMP/serve.log")"
wait_until 10 grep -q "^$prefix/status online" "$TMP/status.txt" && ok "status online (retained)" ||
    not_ok "status online: $(head -3 "$TMP/status.txt")"
wait_until 10 grep -q "^$prefix/stats {" "$TMP/status.txt" && ok "stats published" ||
    not_ok "stats: $(grep -c stats "$TMP/status.txt") messages"
expect_match "stats name the streams" '"id":"cam1".*"id":"cam2"' "$(grep -m1 "^$prefix/stats" "$TMP/status.txt")"
wait_until 40 msgs_at_least 2 && ok "events published while the broker is up ($(n_msgs))" ||
    not_ok "events published: $(n_msgs); $(grep mqtt "$TMP/serve.log" | tail -3)"
first=$(grep -m1 '/events ' "$TMP/events.txt" | cut -d' ' -f2-)
expect_match "topic PREFIX/STREAM/events, payload the event JSON with its id" \
    "^$prefix/cam[12]/events \{\"id\":[0-9]+,\"stream\":\"cam[12]\",\"action\":" "$first"

# ---- the broker goes away for OUTAGE_S seconds while events happen ----
events_before=$(curl -sf "$base/api/v1/events?limit=1000" | jq '.items | length')
kill -TERM "$bpid"
wait "$bpid" 2>/dev/null
down_ms=$(date +%s%3N)
sleep "$OUTAGE_S"
pending=$(outbox)
events_during=$(curl -sf "$base/api/v1/events?limit=1000" | jq '.items | length')
[ "$events_during" -gt "$events_before" ] &&
    ok "events happened during the ${OUTAGE_S} s outage ($events_before -> $events_during)" ||
    not_ok "events during the outage: $events_before -> $events_during"
[ "$pending" -gt 0 ] && ok "their messages wait in the outbox ($pending)" || not_ok "outbox: $pending"
grep -q 'mqtt: 127.0.0.1.*retrying in' "$TMP/serve.log" && ok "reconnect attempts logged" ||
    not_ok "reconnects: $(grep mqtt "$TMP/serve.log" | tail -2)"

broker_start && ok "broker back" || not_ok "broker back: $(tail -3 "$TMP/broker.log")"
up_ms=$(date +%s%3N)
wait_until 60 outbox_empty && ok "outbox drained after the broker came back" ||
    not_ok "outbox still holds $(outbox)"
curl -sf "$base/api/v1/events?limit=1000" >"$TMP/api.json"
# Everything the snapshot shows was in the outbox before it drained; give the subscriber a
# moment to receive the last of it.
wait_until 60 outbox_empty
sleep 2

# check.py: every event of the API snapshot delivered (opened, and closed if closed), and per
# stream in the order the daemon made them. No message twice, but one: a message whose
# PUBACK the killed broker never sent goes out again after the reconnect, and the broker may
# have delivered it the first time — QoS 1 is at least once. Such a repeat is allowed only
# for a first copy that arrived within 3 s before a kill and a second after it.
cat >"$TMP/check.py" <<'PY'
import json, sys
api = json.load(open(sys.argv[1]))["items"]
kills = [int(k) for k in sys.argv[3].split(",")]
down_ms, up_ms = kills[0], int(sys.argv[4])
msgs, arrivals = [], {}
for line in open(sys.argv[2]):
    at, _, rest = line.rstrip("\n").partition(" ")
    topic, _, payload = rest.partition(" ")
    if topic.endswith("/events"):
        m = json.loads(payload)
        msgs.append((topic.split("/")[-2], m))
        key = (m["id"], "opened" if m["open"] else "closed")
        arrivals.setdefault(key, []).append(float(at) * 1000)
problems = []
for stream, m in msgs:
    if m["stream"] != stream:
        problems.append(f"event {m['id']} of {m['stream']} under topic {stream}")
def in_flight_at_kill(times):
    return len(times) == 2 and any(k - 3000 <= times[0] <= k < times[1] for k in kills)
resent = [k for k, t in arrivals.items() if len(t) > 1 and in_flight_at_kill(t)]
dups = [k for k, t in arrivals.items() if len(t) > 1 and k not in resent]
if dups:
    problems.append(f"delivered more than once: {dups[:5]}")
missing = []
for e in api:
    if (e["id"], "opened") not in arrivals:
        missing.append((e["id"], "opened"))
    if not e["open"] and (e["id"], "closed") not in arrivals:
        missing.append((e["id"], "closed"))
if missing:
    problems.append(f"not delivered: {missing[:5]} of {len(api)} events")
# Order per stream: opens by increasing id, closes by their end time, each close after its open.
for s in sorted({s for s, _ in msgs}):
    seq, once = [], set()
    for st, m in msgs:  # a repeat is judged above; the order is that of the first copies
        if st == s and (m["id"], m["open"]) not in once:
            once.add((m["id"], m["open"]))
            seq.append(m)
    opens = [m["id"] for m in seq if m["open"]]
    closes = [m["end_ms"] for m in seq if not m["open"]]
    if opens != sorted(opens) or closes != sorted(closes):
        problems.append(f"{s}: out of order")
    pos = {}
    for i, m in enumerate(seq):
        pos.setdefault((m["id"], m["open"]), i)
    if any(pos.get((i, True), -1) > p for (i, o), p in pos.items() if not o):
        problems.append(f"{s}: a close before its open")
during = [e for e in api if down_ms <= e["start_ms"] < up_ms]
print(f"{len(msgs)} messages, {len(api)} events, {len(during)} opened during the outage"
      + (f", {len(resent)} in flight at a kill sent again" if resent else ""))
if not during:
    problems.append("no event opened during the outage")
for p in problems:
    print("PROBLEM:", p)
sys.exit(1 if problems else 0)
PY
out=$(/usr/bin/python3 "$TMP/check.py" "$TMP/api.json" "$TMP/events.txt" "$down_ms" "$up_ms" 2>&1) &&
    ok "every event delivered, once, in order per stream: $out" ||
    not_ok "delivery after the outage: $out"

# ---- a clean stop says offline ----
kill -TERM "$spid"
wait "$spid" && ok "SIGTERM: exit 0" || not_ok "SIGTERM: exit $?"
wait_until 5 grep -q "^$prefix/status offline" "$TMP/status.txt" && ok "status offline on a clean stop" ||
    not_ok "status offline: $(grep status "$TMP/status.txt" | tail -2)"

# ---- what a stop leaves in the outbox goes out after the next start ----
kill -TERM "$bpid"
wait "$bpid" 2>/dev/null
down2_ms=$(date +%s%3N)
: >"$TMP/serve.log"
serve_start && ok "serve starts with the broker away" || not_ok "broker away: $(tail -3 "$TMP/serve.log")"
wait_until 10 grep -q "mqtt: 127.0.0.1:$mport: cannot connect" "$TMP/serve.log" &&
    ok "the failure is one clear line" || not_ok "broker away, log: $(grep mqtt "$TMP/serve.log" | head -2)"
wait_until 40 outbox_holds || true
kill -TERM "$spid"
wait "$spid" && ok "stops cleanly with the broker away" || not_ok "stop with the broker away: exit $?"
left=$(outbox)
[ "$left" -gt 0 ] && ok "messages left in the outbox at stop ($left)" || not_ok "outbox at stop: $left"
broker_start || not_ok "broker restart: $(tail -3 "$TMP/broker.log")"
serve_start || not_ok "restart: $(tail -3 "$TMP/serve.log")"
up_ms=$(date +%s%3N)
wait_until 30 outbox_empty && ok "sent after the restart" || not_ok "outbox after restart: $(outbox) (was $left)"
curl -sf "$base/api/v1/events?limit=1000" >"$TMP/api2.json"
wait_until 30 outbox_empty
sleep 2
out=$(/usr/bin/python3 "$TMP/check.py" "$TMP/api2.json" "$TMP/events.txt" "$down_ms,$down2_ms" "$up_ms" 2>&1) &&
    ok "still once, in order, over both runs: $out" || not_ok "after the restart: $out"

# ---- the Last Will: a daemon killed outright is reported offline by the broker ----
wait_until 10 grep -q "^$prefix/status online" "$TMP/status.txt" || true
: >"$TMP/status.txt"
kill -9 "$spid"
wait "$spid" 2>/dev/null
wait_until 15 grep -q "^$prefix/status offline" "$TMP/status.txt" && ok "Last Will: offline after kill -9" ||
    not_ok "Last Will: $(grep status "$TMP/status.txt" | tail -2)"
finish
