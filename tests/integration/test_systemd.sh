#!/usr/bin/env bash
# test_systemd.sh — the installed unit passes `systemd-analyze verify` and keeps a low
# exposure score in `systemd-analyze security`.
. "$(dirname "$0")/lib.sh"
top=$(cd "$(dirname "$0")/../.." && pwd)

if ! command -v systemd-analyze >/dev/null; then
    not_ok "systemd-analyze is installed"
    finish
    exit
fi
# The unit as make install writes it, pointing at the binary under test.
bindir=$(dirname "$ACTIOND")
sed "s|@BINDIR@|$bindir|g; s|@SYSCONFDIR@|/etc|g; s|@DOCDIR@|$top|g" \
    "$top/systemd/actiond.service.in" >"$TMP/actiond.service"
expect_status "systemd-analyze verify" 0 systemd-analyze verify "$TMP/actiond.service"
expect_lines "verify prints nothing" 0 "$OUT$ERR"
expect_status "systemd-analyze security" 0 systemd-analyze security --offline=yes "$TMP/actiond.service"
score=$(grep -oE 'exposure level for actiond.service: [0-9.]+' <<<"$OUT" | grep -oE '[0-9.]+$')
echo "# exposure score: $score"
if [ -n "$score" ] && awk -v s="$score" 'BEGIN { exit !(s <= 2.0) }'; then
    ok "exposure score $score is at most 2.0"
else
    not_ok "exposure score '$score' is at most 2.0"
fi
grep -q '^RestartPreventExitStatus=78' "$TMP/actiond.service" && ok "bad config is not restarted" ||
    not_ok "RestartPreventExitStatus=78"
grep -q '^Type=notify' "$TMP/actiond.service" && ok "Type=notify" || not_ok "Type=notify"
finish
