# lib.sh — helpers for integration scripts: each check prints one TAP line.
# Sourced by tests/integration/test_*.sh; $ACTIOND names the binary under test.
: "${ACTIOND:?ACTIOND must name the actiond binary}"
TAP_N=0
TAP_FAILED=0
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT

ok() { TAP_N=$((TAP_N + 1)); echo "ok $TAP_N - $*"; }
not_ok() { TAP_N=$((TAP_N + 1)); TAP_FAILED=$((TAP_FAILED + 1)); echo "not ok $TAP_N - $*"; }

# expect_status NAME STATUS CMD... : runs CMD, captures stdout/stderr in $OUT/$ERR.
expect_status() {
    local name=$1 want=$2; shift 2
    "$@" >"$TMP/out" 2>"$TMP/err"
    local got=$?
    OUT=$(cat "$TMP/out"); ERR=$(cat "$TMP/err")
    if [ "$got" -eq "$want" ]; then ok "$name"; else not_ok "$name (exit $got, want $want): $ERR"; fi
}

# expect_match NAME REGEX TEXT
expect_match() {
    if grep -qE -- "$2" <<<"$3"; then ok "$1"; else not_ok "$1: '$3' !~ /$2/"; fi
}

# expect_lines NAME N TEXT : TEXT has exactly N lines.
expect_lines() {
    local n; n=$(printf '%s' "$3" | grep -c '')
    if [ "$n" -eq "$2" ]; then ok "$1"; else not_ok "$1: $n lines, want $2"; fi
}

finish() { echo "1..$TAP_N"; [ "$TAP_FAILED" -eq 0 ]; }
