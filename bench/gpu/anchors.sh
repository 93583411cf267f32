#!/usr/bin/env bash
# Unpacks the full anchor bundle (fla, FlashQLA, TileLang: `.bundle/anchors.tar.xz`, made
# by ../shared/bench/make_bundle.sh) into /tmp/site on the GPU machine and runs fla's and
# FlashQLA's kernels once, so their first compiles (TileLang's nvcc, Triton's autotuning)
# are paid in this call and cached on the machine. A later call on the same warm machine
# (`run.sh`, which then finds /tmp/site) times them beside our binary, which does not fit
# one call's 64 MiB together with this bundle. Logs under $OUT.
set -uo pipefail
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"
mkdir -p /tmp/site && tar xJf .bundle/anchors.tar.xz -C /tmp/site && touch /tmp/site/.full
export PYTHONPATH=/tmp/site LD_LIBRARY_PATH=/tmp/site/z3/lib:/tmp/site/tilelang/lib PYTHONUNBUFFERED=1
for only in ${ONLY:-flashqla,gdn sdpa delta gla}; do
  echo "== $only (first use)" | tee -a "$OUT/anchors_first.log"
  ONLY=$only timeout ${ANCHOR_S:-300} python3 .anchors/fla_kernels.py 2>&1 | tail -12 | tee -a "$OUT/anchors_first.log"
done
