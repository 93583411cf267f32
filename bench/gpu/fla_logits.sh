#!/usr/bin/env bash
# issue 12's check on the GPU machine: hyb's logits against fla's for a model of every
# family fla builds and saves in bf16 (fla_logits.py says how). Expects .bundle/fla.tar.xz
# (fla 0.6.0's sources) and .device/hyb.tar.xz (the package `hyb` with a stripped release
# extension module: scripts/pack_python.sh). CONFIGS: tests/fla/configs stems; LENGTHS: T.
set -uo pipefail
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"
mkdir -p /tmp/site && tar xJf .bundle/fla.tar.xz -C /tmp/site && tar xJf .device/hyb.tar.xz -C /tmp/site
export PYTHONPATH=/tmp/site PYTHONUNBUFFERED=1
python3 -c "import torch, transformers, triton; print('torch', torch.__version__, 'transformers', transformers.__version__, 'triton', triton.__version__)" | tee "$OUT/versions.txt"
# Every config in a process of its own, all at once: Triton's first compiles (most of
# the time) use the machine's cores, and one that outruns CONFIG_S stops only itself.
for name in ${CONFIGS:-transformer_tiny gdn_tiny deltanet_tiny gla_tiny hgrn_tiny hgrn2_tiny retnet_tiny gdn_tiny_r2 transformer_gqa}; do
  timeout ${CONFIG_S:-420} python3 bench/gpu/fla_logits.py tests/fla/configs/$name.json ${LENGTHS:-40 100} \
    > "/tmp/fla_logits_$name.log" 2>&1 &
done
wait
# One log (the machine returns at most 8 files).
for log in /tmp/fla_logits_*.log; do echo "== $log"; grep -v Warning "$log" | tail -8; done | tee "$OUT/fla_logits.log"
