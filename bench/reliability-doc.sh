#!/usr/bin/env bash
# reliability-doc.sh — writes docs/reliability.md: the guarantees (text kept here), then tables
# made from runs: tests/integration/test_faults.sh and test_abuse.sh (each records the input it
# tried and the outcome it measured), the last `make fuzz` logs, and the newest load and soak
# results in bench/results/. Nothing in the tables is typed by hand.
# usage: bench/reliability-doc.sh   (after make tests, make fuzz, bench/load.sh, bench/soak.sh)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/.." && pwd)
export ACTIOND=${ACTIOND:-$top/actiond} BUILD=${BUILD:-$top/build}
rows=$(mktemp)
trap 'rm -f "$rows"' EXIT
for t in test_faults test_abuse; do
    RELIABILITY_OUT=$rows bash "$top/tests/integration/$t.sh" >"$rows.$t" 2>&1 ||
        echo "reliability-doc: $t had failures (see the table)" >&2
done
md_escape() { sed 's/|/\\|/g'; }
table() { # suite
    echo "| input | outcome |"
    echo "|---|---|"
    awk -F'\t' -v s="$1" '$1 == s {print "| " $2 " | " $3 " |"}' "$rows" | sed 's/\\r\\n/␍␊/g' |
        utf8_escape
}
# The inputs tried include invalid UTF-8: shown as \xNN so the document stays UTF-8.
utf8_escape() {
    /usr/bin/python3 -c 'import sys; sys.stdout.write(sys.stdin.buffer.read().decode("utf-8", "backslashreplace"))'
}
newest() { ls -t "$here"/results/"$1"-*.json 2>/dev/null | head -1; }
load=$(for f in $(ls -t "$here"/results/load-*.json 2>/dev/null); do
    [ "$(jq .connections "$f")" = 64 ] && { echo "$f"; break; }
done)
soak=$(newest soak)
{
cat <<'MD'
# Reliability

What actiond promises when its inputs, its disk or its clients misbehave, and the evidence. The
tables below are written by `bench/reliability-doc.sh` from runs of the scripts in this repository;
re-run it to refresh them.

## Guarantees

- **Untrusted input meets an error, never a crash.** The config file, model files, ONNX files,
  .npy files, data-set lists and every HTTP request are parsed by code that checks each length and
  count against the bytes present. Each parser has a libFuzzer harness (`make fuzz`, tests/fuzz/);
  CI fuzzes each for 20 s and replays every input that once failed.
- **Delivery and durability.** An event open or close is committed to SQLite (WAL,
  `synchronous=FULL`) before it is acknowledged or served: after `kill -9` or power loss every
  event the API ever returned is still there and the database passes `PRAGMA integrity_check`.
  Window results are committed in batches about once a second; a crash loses at most the last
  batch, and an event left open is closed at its last stored window.
- **Faults are contained.** A camera that dies, stalls or sends garbage goes to `backoff` with
  its error visible in `/api/v1/streams`, and is retried forever (1 s doubling to 60 s); other
  streams and the API are unaffected. A full or failing disk marks the store unhealthy in
  `/api/v1/health`; reads keep working and writes resume by themselves when space returns. A bad
  config or model at SIGHUP keeps the running one.
- **Bounds.** At most `http.max_connections` connections (a thread each) and `http.per_ip_limit`
  from one address; request line and headers within 32 KiB (431/414 past it); queries within
  2 KiB; at most 8 parameters; `limit` within 1..1000. Each stream's clip queue is bounded and drops
  the oldest clip when inference falls behind.
- **Known limits.** A slowloris attack from more addresses than `max_connections / per_ip_limit`
  can hold every connection slot while it lasts (libmicrohttpd's timeout is an idle timeout, and a
  byte a second is not idle): keep the API on 127.0.0.1 or behind a proxy, as the default does.
  A read-only state directory is refused at start; a file system cannot be remounted read-only
  under a running daemon (the kernel refuses while files are open for writing), so that case
  is covered by the full-disk test, which takes the same path.

## Fault injection (tests/integration/test_faults.sh)

MD
table faults
cat <<'MD'

## Hostile HTTP clients (tests/integration/test_abuse.sh)

The daemon runs with `max_connections: 64`, `per_ip_limit: 16`, `timeout: 5s` and a token; a
well-behaved client uses another loopback address than the abusers.

MD
table abuse
echo
echo "## Fuzzing (tests/fuzz/, last \`make fuzz\`)"
echo
echo "| target | executions | coverage | result |"
echo "|---|---|---|---|"
for f in "$top"/build-fuzz/fuzz_*.log; do
    [ -e "$f" ] || continue
    t=$(basename "$f" .log)
    runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$f")
    cov=$(grep -oE 'cov: [0-9]+' "$f" | tail -1 | cut -d' ' -f2)
    res=$(grep -qE 'ERROR|runtime error' "$f" && echo "finding (see tests/fuzz/README.md)" || echo clean)
    echo "| \`$t\` | ${runs:-?} | ${cov:-?} edges | $res |"
done
echo
echo "Findings so far, each kept in tests/fuzz/regressions/: see tests/fuzz/README.md."
if [ -n "$load" ]; then
    echo
    echo "## Load (bench/load.sh, \`$(basename "$load")\`)"
    echo
    jq -r '"wrk, \(.connections) connections for \(.seconds) s on \(.url) while \(.streams_running) of \(.streams) streams run the default model (\(.cpu); load average at the end \(.loadavg_end)):\n\n| requests/s | p50 ms | p90 ms | p99 ms | max ms | errors | goal (0 errors, p99 < 50 ms) |\n|---|---|---|---|---|---|---|\n| \(.requests_per_s) | \(.latency_ms.p50) | \(.latency_ms.p90) | \(.latency_ms.p99) | \(.latency_ms.max) | \(.errors_total) | \(if .goal_met then "met" else "not met" end) |"' "$load"
fi
if [ -n "$soak" ]; then
    echo
    echo "## Soak (bench/soak.sh, \`$(basename "$soak")\`)"
    echo
    jq -r '"\(.duration_s) s, \(.streams) streams, faults every 30 s: \(.faults | to_entries | map("\(.key) ×\(.value)") | join(", ")).\n\n| RSS after warm-up | at half time | at the end | growth, second half | growth from warm-up | quiet fds, first half / second half | exit | integrity | goal (< 5 %, fds constant) |\n|---|---|---|---|---|---|---|---|---|\n| \(.rss_warm_kb / 1024 | floor) MiB | \(.rss_half_kb / 1024 | floor) MiB | \(.rss_end_kb / 1024 | floor) MiB | \(.rss_growth_second_half_pct) % | \(.rss_growth_pct) % | \(.fds_quiet_max_first_half) / \(.fds_quiet_max_second_half) | \(.exit_status) | \(.integrity_check) | \(if .goal_met then "met" else "not met" end) |"' "$soak"
fi
} >"$top/docs/reliability.md"
echo "reliability-doc: wrote docs/reliability.md ($(wc -l <"$rows") rows from the tests)"
