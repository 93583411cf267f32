#!/usr/bin/env bash
# How a GPU study's throughput grows with runs at once: N copies of the GPU study's
# model (examples/study/gpu.hyb with MIXER, default gdn, at 3:1) train STEPS steps at once
# on the one GPU, for each N of COUNTS, first as plain processes (the driver time-slices
# their contexts), then under NVIDIA's Multi-Process Service (MPS: their kernels share
# the GPU at once), for each N of MPS_COUNTS. Prints per N the sum over runs of each
# run's median tokens/s (steps 10 on) and the wall time; logs to $OUT/concurrency.tar.xz.
# Expects .device/hybc.xz.
#   run: OUT=$OUT bash bench/gpu/study_concurrency.sh
set -uo pipefail
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT" /tmp/cc
STEPS=${STEPS:-40}; MIXER=${MIXER:-gdn}
xz -dc .device/hybc.xz > /tmp/hybc-cc && chmod +x /tmp/hybc-cc
sed -E -e "s/^let linear( *)= .*/let linear\1= $MIXER/" -e "s/warmup: [0-9]+/warmup: 4/" \
    -e "s/eval_every( *)= .*/eval_every\1= none/" -e "s/log_every( *)= .*/log_every\1= 1/" \
    examples/study/gpu.hyb > /tmp/cc/model.hyb
median_sum() {  # Σ over the runs of their median tokens/s from step 10 on
  python3 - "$@" <<'PY'
import json, statistics, sys
total = 0.0
for path in sys.argv[1:]:
    rates = [r["train/tokens_per_s"] for r in map(json.loads, open(path)) if r.get("step", 0) >= 10 and "train/tokens_per_s" in r]
    total += statistics.median(rates) if rates else 0.0
print(f"{total:,.0f}")
PY
}
batch() {  # $1 label, $2 N
  local dir=/tmp/cc/$1_$2; mkdir -p "$dir"; local start=$(date +%s.%N)
  for i in $(seq 1 "$2"); do
    timeout 280 /tmp/hybc-cc train /tmp/cc/model.hyb --target cuda --steps "$STEPS" --seed "$i" --out "$dir/r$i" > "$dir/r$i.log" 2>&1 &
  done
  wait; local wall=$(python3 -c "import time; print(f'{time.time() - $start:.1f}')")
  echo "$1 N=$2: Σ median tokens/s $(median_sum "$dir"/r*/metrics.jsonl), wall ${wall} s, exits: $(grep -L 'error' "$dir"/r*.log | wc -l)/$2 without error" | tee -a "$OUT/concurrency.txt"
}
for n in ${COUNTS:-1 4 8}; do batch plain "$n"; done
if command -v nvidia-cuda-mps-control > /dev/null; then
  export CUDA_MPS_PIPE_DIRECTORY=/tmp/mps_pipe CUDA_MPS_LOG_DIRECTORY=/tmp/mps_log
  mkdir -p "$CUDA_MPS_PIPE_DIRECTORY" "$CUDA_MPS_LOG_DIRECTORY"
  nvidia-cuda-mps-control -d && echo "MPS started" | tee -a "$OUT/concurrency.txt"
  for n in ${MPS_COUNTS:-4 8 12}; do batch mps "$n"; done
  echo quit | nvidia-cuda-mps-control; cat /tmp/mps_log/control.log 2>/dev/null | tail -5 > "$OUT/mps_control.log"
else
  echo "no nvidia-cuda-mps-control on this machine" | tee -a "$OUT/concurrency.txt"
fi
(cd /tmp/cc && tar cJf "$OUT/concurrency.tar.xz" ./*/r*.log ./*/r*/metrics.jsonl model.hyb)
