#!/usr/bin/env bash
# ga_check.sh — does the GA's fitness rank rank-genomes as fine-tuning does? Runs the GA alone
# (no pruning stage) on the default model with bench/compress.sh's budget, GA and fine-tuning
# settings, and `--ga-check N`: N of the genomes it scored, from its best fitness to its worst,
# each fine-tuned as the result would be. Writes bench/results/ga-check-*.json (the report,
# whose `ga_check` holds each genome's fitness and fine-tuned scores and Spearman's rho) and
# prints the check's table. About (N + 1) x 6 minutes on 2 cores.
# usage: bench/ga_check.sh [N]   (N genomes, 5 unless given; 3..32)
# env: MODEL (models/default.adm), DATA (the synth folder bench/compress.sh uses; made when
# absent), TARGET (0.2), TARGET_PARAMS (0.1)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/.." && pwd)
ACTIOND=${ACTIOND:-$top/actiond}
MODEL=${MODEL:-$top/models/default.adm}
TARGET=${TARGET:-0.2}
TARGET_PARAMS=${TARGET_PARAMS:-0.1}
N=${1:-5}
if ! [[ "$N" =~ ^[0-9]+$ ]] || [ "$N" -lt 3 ] || [ "$N" -gt 32 ]; then
    echo "ga_check.sh: N must be a whole number in 3..32 (a rank correlation needs 3), not '$N'" >&2
    exit 2
fi
work="$here/work/ga-check"
mkdir -p "$work" "$here/results"
DATA=${DATA:-$here/work/compress/data240}
[ -f "$DATA/trainlist.txt" ] || "$ACTIOND" --log-level warn synth -o "$DATA" --seed 1 \
    --clips-per-class 240 --test-fraction 0.1
out="$here/results/ga-check-$(date -u +%Y%m%d-%H%M%S)-$(hostname -s).json"
"$ACTIOND" compress -m "$MODEL" -o "$work/none-ga.adm" --prune none --ranks ga --ga-check "$N" \
    --target-flops "$TARGET" --target-params "$TARGET_PARAMS" --seed 1 --threads 2 -d "$DATA" \
    --finetune-lr 0.005 --distill --finetune-epochs 6 --population 8 --generations 5 \
    --latency-runs 20 --report "$out" --work "$work/none-ga.work" \
    >"$work/none-ga.txt" 2>"$work/none-ga.log"
sed -n '/^GA check/,/^Spearman/p' "$work/none-ga.txt"
echo "ga_check.sh: $out"
