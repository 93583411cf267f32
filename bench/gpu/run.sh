#!/usr/bin/env bash
# The GPU benchmarks, in one call on the GPU machine (see README.md here):
#   our kernels at the anchors' shape (--profile: time per kernel), the 340M hybrid's
#   real run, then fla's kernels and models beside them. Logs under $OUT.
# Expects .device/hybc.xz (a stripped release hybc) and .bundle/fla.tar.xz.
set -uo pipefail
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"
xz -dc .device/hybc.xz > /tmp/hybc && chmod +x /tmp/hybc
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$OUT/gpu.txt"
for k in ${KERNELS:-gdn deltanet gla attn}; do
  echo "== kernel_$k" | tee -a "$OUT/kernels.log"
  timeout ${KERNEL_S:-150} /tmp/hybc train bench/gpu/kernel_$k.hyb --target cuda --profile --steps 4 \
    --out /tmp/runs/kernel_$k 2>&1 | tail -40 | tee -a "$OUT/kernels.log"
done
if [ -n "${REAL:-1}" ]; then
  echo "== gdn_r3_text" | tee "$OUT/real.log"
  timeout ${REAL_S:-240} /tmp/hybc train bench/gpu/gdn_r3_text.hyb --steps ${STEPS:-100} \
    --out /tmp/runs/gdn_r3 2>&1 | tr '\r' '\n' | grep -v '^\s*$' | tail -60 | tee -a "$OUT/real.log"
  cp /tmp/runs/gdn_r3/metrics.jsonl "$OUT/real_metrics.jsonl" 2>/dev/null
fi
if [ -n "${ANCHORS:-1}" ]; then
  mkdir -p /tmp/site && tar xJf .bundle/fla.tar.xz -C /tmp/site
  export PYTHONPATH=/tmp/site PYTHONUNBUFFERED=1
  ONLY=${ONLY:-gdn,delta,gla,sdpa} timeout ${ANCHOR_S:-300} python3 .anchors/fla_kernels.py 2>&1 | tail -20 | tee "$OUT/anchors.log"
  /tmp/hybc compile bench/gpu/gdn_r3_text.hyb --emit fla-config > /tmp/gdn_r3.json
  B=8 T=1024 timeout ${MODEL_S:-200} python3 .anchors/fla_models.py transformer 2>&1 | tail -8 | tee -a "$OUT/anchors.log"
fi
