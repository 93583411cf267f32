#!/usr/bin/env bash
# hyb's compiled training step against PyTorch eager on the CPU, side by side in one
# run on the same cores: the tiny 3:1 Gated DeltaNet hybrid (examples/tiny/mqar_gdn_3to1.hyb),
# batch 8 × 256 tokens, forward + backward + clipping + AdamW.
#
#   bench/cpu/compare.sh            # needs the torch venv of bench/cpu/README.md
#   PYTHON=python3 bench/cpu/compare.sh
#   BASELINE=/path/to/an/older/hybc bench/cpu/compare.sh   # also that build, interleaved
#
# Prints the median tokens/s of each (hyb: steps 4–13 of `hybc train`; torch: 10 timed
# steps after 3 warm-up steps) and their ratio.
set -euo pipefail
cd "$(dirname "$0")/../.."
PYTHON=${PYTHON:-/work/venv-torch/bin/python}
THREADS=${THREADS:-2}

HYBC=${HYBC:-./target/release/hybc}
[ -n "${HYBC_PREBUILT:-}" ] || cargo build --release -q -p hybc
median() { sort -n | awk '{v[NR] = $1} END {print v[int((NR + 1) / 2)]}'; }
# Steps 4–13 of one training run of BINARY, each step's tokens/s on its own line.
steps() {
    local out; out=$(mktemp -d)
    RAYON_NUM_THREADS=$THREADS MATMUL_NUM_THREADS=$THREADS "$1" train \
        examples/tiny/mqar_gdn_3to1.hyb --steps 13 --batch 8 --seq-len 256 --out "$out/run" \
        | awk '/^step/ && $2 > 3 {print $(NF - 1)}'
    rm -rf "$out"
}

# Three runs of each build, alternating, so drift in the machine's speed hits both.
: > /tmp/hyb-steps; : > /tmp/base-steps
for _ in 1 2 3; do
    steps "$HYBC" >> /tmp/hyb-steps
    [ -z "${BASELINE:-}" ] || steps "$BASELINE" >> /tmp/base-steps
done
hyb=$(median < /tmp/hyb-steps)
json=$("$PYTHON" bench/cpu/torch_step.py --threads "$THREADS" --steps 10 | tail -1)
read -r chunked recurrent < <(echo "$json" | "$PYTHON" -c '
import json, sys
rows = {r["variant"]: r["tokens_per_s"] for r in json.load(sys.stdin)}
print(rows.get("chunked", 0), rows.get("recurrent", 0))')

echo "threads: $THREADS; $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
printf 'hyb (compiled, recurrent kernels)  %8.0f tokens/s\n' "$hyb"
if [ -n "${BASELINE:-}" ]; then
    base=$(median < /tmp/base-steps)
    printf 'baseline hyb (%s)  %8.0f tokens/s   hyb / baseline = %.2f\n' "$BASELINE" "$base" "$(echo "$hyb / $base" | bc -l)"
fi
printf 'torch eager, chunked GDN           %8.0f tokens/s   hyb / torch = %.2f\n' "$chunked" "$(echo "$hyb / $chunked" | bc -l)"
printf 'torch eager, token-loop GDN        %8.0f tokens/s   hyb / torch = %.2f\n' "$recurrent" "$(echo "$hyb / $recurrent" | bc -l)"
