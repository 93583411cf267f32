#!/usr/bin/env bash
# The GPU benchmarks, in one call on the GPU machine (see README.md here):
#   our kernels at the anchors' shape (--profile: time per kernel), the 340M hybrid's
#   real run (REAL_FILES: gdn_r3_text, and gdn_r3_text_bf16 in mixed precision; the peak
#   memory in use sampled), then fla's kernels and models beside them. Logs under $OUT.
#   PRECISIONS="f32 bf16" profiles each kernel file in both.
# Expects .device/hybc.xz (a stripped release hybc) and .bundle/fla.tar.xz.
set -uo pipefail
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"
xz -dc .device/hybc.xz > /tmp/hybc && chmod +x /tmp/hybc
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$OUT/gpu.txt"
# The most memory in use on the GPU (MiB) while "$@" runs, sampled every 0.5 s.
peak_memory() {
  nvidia-smi --query-gpu=memory.used --format=csv,noheader,nounits -lms 500 > /tmp/memory.txt &
  local sampler=$!
  "$@"
  kill $sampler 2>/dev/null; wait $sampler 2>/dev/null
  echo "peak memory in use: $(sort -n /tmp/memory.txt | tail -1) MiB"
}
for k in ${KERNELS-gdn deltanet gla attn}; do
  for precision in ${PRECISIONS:-f32}; do
    echo "== kernel_$k precision=$precision" | tee -a "$OUT/kernels.log"
    timeout ${KERNEL_S:-150} /tmp/hybc train bench/gpu/kernel_$k.hyb --target cuda --profile --steps 4 \
      --set precision=$precision --out /tmp/runs/kernel_${k}_$precision 2>&1 | tail -40 | tee -a "$OUT/kernels.log"
  done
done
# A launch-bound job (the README's MQAR model): CUDA graphs against kernel by kernel.
if [ -n "${GRAPHS:-}" ]; then
  for graphs in on off; do
    HYB_GPU_GRAPHS=$graphs timeout ${GRAPHS_S:-120} /tmp/hybc train examples/tiny/mqar_quick.hyb --target cuda \
      --steps ${GRAPHS_STEPS:-60} --out /tmp/runs/graphs_$graphs > /tmp/graphs_$graphs.log 2>&1
    python3 -c "import json,statistics as s;r=[json.loads(l) for l in open('/tmp/runs/graphs_$graphs/metrics.jsonl')];
t=[x['train/tokens_per_s'] for x in r if 'train/tokens_per_s' in x][5:];print('graphs $graphs: steps',len(t)+5,'tokens/s median',round(s.median(t)),'min',round(min(t)),'max',round(max(t)))" \
      2>&1 | tee -a "$OUT/graphs.log"
  done
fi
if [ -n "${REAL-1}" ]; then
  for real in ${REAL_FILES:-gdn_r3_text}; do
    echo "== $real" | tee -a "$OUT/real.log"
    peak_memory timeout ${REAL_S:-240} /tmp/hybc train bench/gpu/$real.hyb --steps ${STEPS:-100} \
      --out /tmp/runs/$real 2>&1 | tr '\r' '\n' | grep -v '^\s*$' | tail -60 | tee -a "$OUT/real.log"
    cp /tmp/runs/$real/metrics.jsonl "$OUT/${real}_metrics.jsonl" 2>/dev/null
  done
fi
if [ -n "${ANCHORS-1}" ]; then
  # The full bundle unpacked by anchors.sh in an earlier call on this machine, or fla alone.
  if [ ! -e /tmp/site/.full ]; then
    mkdir -p /tmp/site && tar xJf .bundle/fla.tar.xz -C /tmp/site
  fi
  export PYTHONPATH=/tmp/site LD_LIBRARY_PATH=/tmp/site/z3/lib:/tmp/site/tilelang/lib PYTHONUNBUFFERED=1
  for only in ${ONLY-sdpa delta,gla}; do
    ONLY=$only timeout ${ANCHOR_S:-300} python3 .anchors/fla_kernels.py 2>&1 | tail -20 | tee -a "$OUT/anchors.log"
  done
  # fla's models: names of fla_models.py, or the configs hyb exports (bench/gpu/fla/).
  if [ -n "${MODELS-1}" ]; then
    for model in ${FLA_MODELS:-transformer}; do
      B=8 T=1024 timeout ${MODEL_S:-200} python3 .anchors/fla_models.py $model 2>&1 | tail -4 | tee -a "$OUT/anchors.log"
    done
  fi
fi
