#!/usr/bin/env bash
# ab_latency.sh — one-thread latency of the same models under two actiond binaries (say,
# builds of two commits), run interleaved so a machine that slows down slows both: per
# model, ROUNDS rounds of `actiond bench --iters 40` under A and B, the order swapped each
# round; prints each binary's median of the rounds' medians, their ratio, the median of
# the per-round ratios, and in how many rounds B was faster.
#   bench/ab_latency.sh A_BIN B_BIN [ROUNDS] MODEL...   (ROUNDS: 25)
set -euo pipefail
if [ $# -lt 3 ]; then
    echo "usage: bench/ab_latency.sh A_BIN B_BIN [ROUNDS] MODEL..." >&2
    exit 2
fi
a=$1 b=$2
shift 2
rounds=25
if [[ $1 =~ ^[0-9]+$ ]]; then
    rounds=$1
    shift
fi
for m in "$@"; do
    for ((i = 0; i < rounds; i++)); do
        if ((i % 2)); then order="b a"; else order="a b"; fi
        for who in $order; do
            bin=$a
            [ "$who" = b ] && bin=$b
            printf '%s %d ' "$who" "$i"
            OPENBLAS_NUM_THREADS=1 "$bin" bench -m "$m" --iters 40 --json |
                python3 -c 'import json, sys; print(json.load(sys.stdin)["median_ms"])'
        done
    done | python3 -c '
import statistics as st, sys
ms = {"a": {}, "b": {}}
for line in sys.stdin:
    who, i, v = line.split()
    ms[who][int(i)] = float(v)
ratios = [ms["b"][i] / ms["a"][i] for i in ms["a"]]
a, b = st.median(ms["a"].values()), st.median(ms["b"].values())
print("%s: A %.3f ms, B %.3f ms, B/A %.3f (median of per-round ratios %.3f), B faster in %d of %d"
      % (sys.argv[1], a, b, b / a, st.median(ratios), sum(r < 1 for r in ratios), len(ratios)))
' "$(basename "$m")"
done
