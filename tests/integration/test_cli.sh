#!/usr/bin/env bash
# test_cli.sh — the command-line contract: help, version, usage errors, stubs that fail.
. "$(dirname "$0")/lib.sh"

expect_status "--help exits 0" 0 "$ACTIOND" --help
expect_match "--help lists serve" '^  serve ' "$OUT"
expect_match "--help lists compress" '^  compress ' "$OUT"
expect_status "--version exits 0" 0 "$ACTIOND" --version
expect_match "--version names the version" '^actiond [0-9]+\.[0-9]+\.[0-9]+' "$OUT"
expect_status "help info exits 0" 0 "$ACTIOND" help info
expect_match "help info shows usage" 'usage: actiond info' "$OUT"
expect_status "no command is a usage error" 2 "$ACTIOND"
expect_status "unknown command exits 2" 2 "$ACTIOND" frobnicate
expect_lines "unknown command: one-line error" 1 "$ERR"
expect_match "unknown command named" "unknown command 'frobnicate'" "$ERR"
expect_status "unknown global flag exits 2" 2 "$ACTIOND" --frob
expect_lines "unknown flag: one-line error" 1 "$ERR"
expect_status "help of unknown command exits 2" 2 "$ACTIOND" help frobnicate
expect_status "bad log level exits 2" 2 "$ACTIOND" --log-level loud info
for c in serve compress train eval infer import export info bench synth; do
    expect_status "$c --help exits 0" 0 "$ACTIOND" "$c" --help
done
finish
