#!/usr/bin/env bash
# A GPU study's sweep end to end with its shards under MPS: a miniature of
# examples/study/gpu.hyb (GatedDeltaNet and HGRN at 3:1, two rates, two seeds, 40 steps)
# with `hybc sweep --jobs JOBS`, which starts an MPS daemon for shards that share the GPU.
# Expects .device/hybc.xz. The sweep's report and logs to $OUT/sweep_mps.tar.xz.
#   run: OUT=$OUT bash bench/gpu/study_sweep_mps.sh
set -uo pipefail
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT" /tmp/sm
xz -dc .device/hybc.xz > /tmp/hybc-sm && chmod +x /tmp/hybc-sm
sed -E -e "s/^( *linear *)= \[.*\]/\1= [gdn, hgrn]/" -e "s/^( *attn_every *)= \[.*\]/\1= [4]/" \
    -e "s/^( *lr *)= \[.*\]/\1= [1e-3, 3.16e-3]/" -e "s/^( *seeds *)= 3/\1= 2/" \
    -e "s/^( *tokens *)= .*/\1= 655_360/" -e "s/samples = 1024/samples = 256/" \
    -e "s/warmup: [0-9]+/warmup: 4/" -e "s/eval_every( *)= .*/eval_every\1= 20/" examples/study/gpu.hyb > /tmp/sm/mini.hyb
start=$(date +%s)
/tmp/hybc-sm sweep /tmp/sm/mini.hyb --jobs "${JOBS:-4}" --out /tmp/sm/runs ${FLAGS:-} > "$OUT/sweep_mps.log" 2>&1
echo "sweep: exit $?, $(( $(date +%s) - start )) s" | tee -a "$OUT/sweep_mps.log"
grep -E "MPS|shard|second wave|finished" "$OUT/sweep_mps.log" | head -20
(cd /tmp/sm && tar cJf "$OUT/sweep_mps.tar.xz" mini.hyb runs/*.md runs/*.csv runs/shard-*.log)
