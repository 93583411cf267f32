#!/usr/bin/env bash
# Every kernel of the GPU's form against the CPU, instruction by instruction
# (`hybc verify`), for the verify/ models and the README's MQAR model at three shapes
# (T = 1, T short and odd, T past the checkpoint interval with B > 1), and the 340M
# hybrid once. Expects a hybc at $HYBC. Logs under $OUT.
set -uo pipefail
OUT=${OUT:-/tmp/out}; HYBC=${HYBC:-/tmp/hybc}
status=0
for file in bench/gpu/verify/*.hyb examples/tiny/mqar_quick.hyb; do
  for shape in "1 1" "2 7" "3 70"; do
    set -- $shape
    echo "== $file B=$1 T=$2 (${HYB_GPU_FORM:-lanes})"
    timeout 60 "$HYBC" verify "$file" --target cuda --batch "$1" --seq-len "$2" || status=1
  done
done 2>&1 | tee -a "$OUT/verify.log"
echo "== the 340M hybrid, B=1 T=70"
timeout ${BIG_S:-120} "$HYBC" verify bench/gpu/gdn_r3_text.hyb --target cuda --batch 1 --seq-len 70 2>&1 | tee -a "$OUT/verify.log"
grep -c "agrees with the cpu" "$OUT/verify.log"
