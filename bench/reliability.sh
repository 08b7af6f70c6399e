#!/usr/bin/env bash
# reliability.sh — the measured half of docs/reliability.md in one step of bench/run: HTTP load
# while the daemon works (bench/load.sh), a soak under injected faults (bench/soak.sh), every
# fuzz target (make fuzz), then bench/reliability-doc.sh, which reruns the fault and abuse tests
# and rewrites the document from them, the fuzz logs and the two results just written.
# usage: bench/reliability.sh [--quick]   (quick: 10 s of load instead of 30, a 240 s soak
#   instead of 600 — the shortest whose second half follows one of each fault — 5 s a fuzz
#   target instead of 20: the same checks, shorter)
# Writes bench/results/reliability-<date>-<host>.json (which load and soak results, their goals)
# and prints the load and soak tables.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/.." && pwd)
export ACTIOND=${ACTIOND:-$top/actiond}
mode=full load_s=30 soak_s=600 fuzz_s=20
if [ "${1:-}" = "--quick" ]; then
    mode=quick load_s=10 soak_s=240 fuzz_s=5
fi
mkdir -p "$here/results"
# The soak and the fault tests drive test-only helper programs.
make -C "$top" -s -j2 tests >&2
stamp=$(mktemp)
trap 'rm -f "$stamp"' EXIT
bash "$here/load.sh" --seconds "$load_s" >&2
bash "$here/soak.sh" "$soak_s" >&2
make -C "$top" -s fuzz FUZZ_SECONDS="$fuzz_s" >&2
# The results each wrote: the newest files younger than $stamp, made before either ran.
load=$(find "$here/results" -name 'load-*.json' -newer "$stamp" | sort | tail -1)
soak=$(find "$here/results" -name 'soak-*.json' -newer "$stamp" | sort | tail -1)
[ -n "$load" ] && [ -n "$soak" ] || { echo "reliability: load or soak wrote no results" >&2; exit 1; }
bash "$here/reliability-doc.sh" >&2
out="$here/results/reliability-$(date -u +%Y%m%d-%H%M%S)-$(hostname -s).json"
jq -n --arg mode "$mode" --arg load "${load#"$top"/}" --arg soak "${soak#"$top"/}" \
    --slurpfile l "$load" --slurpfile s "$soak" \
    '{mode: $mode, load: $load, soak: $soak,
      summary: {load_p99_ms: $l[0].latency_ms.p99, load_errors: $l[0].errors_total,
                load_goal_met: $l[0].goal_met, soak_s: $s[0].duration_s,
                soak_growth_second_half_pct: $s[0].rss_growth_second_half_pct,
                soak_goal_met: $s[0].goal_met}}' >"$out"
# The document's measured sections, as the run's printed tables.
sed -n '/^## Load/,$p' "$top/docs/reliability.md"
