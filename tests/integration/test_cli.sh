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

# OpenBLAS kernel: forced by ACTIOND_BLAS_CORE (a re-exec), left alone under the user's
# own OPENBLAS_CORETYPE, and never the generic kernel on a CPU with AVX2.
expect_status "ACTIOND_BLAS_CORE forces a core" 0 env ACTIOND_BLAS_CORE=Haswell "$ACTIOND" --version
expect_match "forced core is reported" 'openblas core: Haswell' "$OUT"
expect_status "OPENBLAS_CORETYPE is respected" 0 env OPENBLAS_CORETYPE=Sandybridge "$ACTIOND" --version
expect_match "user core is reported" 'openblas core: Sandybridge' "$OUT"
expect_status "default core" 0 env -u OPENBLAS_CORETYPE -u ACTIOND_BLAS_CORE "$ACTIOND" --version
if grep -qw avx2 /proc/cpuinfo; then
    expect_match "default core is not generic on an AVX2 CPU" 'openblas core: (Haswell|Zen|SkylakeX|Cooperlake|SapphireRapids)' "$OUT"
fi
finish
