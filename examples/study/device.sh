#!/usr/bin/env bash
# A study's sweep on the GPU machine's CPU cores (16 there, 2 here): `hybc sweep --jobs`
# under a time limit, then the report of every finished run, sent back to $OUT in one
# archive with each run's result.json and metrics (checkpoints stay behind). Expects
# .device/hybc.xz (a stripped release hybc, xz-compressed). FILE: the study; JOBS:
# shards at once; SWEEP_S: seconds.
#   run: OUT=$OUT FILE=examples/study/recall_load.hyb JOBS=18 SWEEP_S=500 bash examples/study/device.sh
set -uo pipefail
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"
xz -dc .device/hybc.xz > /tmp/hybc && chmod +x /tmp/hybc
name=$(basename "$FILE" .hyb)
runs=/tmp/runs/$name
nproc | sed 's/^/cores: /' | tee "$OUT/machine.txt"
started=$(date +%s)
timeout ${SWEEP_S:-500} /tmp/hybc sweep "$FILE" --jobs ${JOBS:-16} --out "$runs" > "$OUT/sweep.log" 2>&1
echo "sweep exit $? after $(( $(date +%s) - started )) s" | tee -a "$OUT/sweep.log"
/tmp/hybc sweep "$FILE" --out "$runs" --report > "$OUT/report.log" 2>&1
# One archive (the machine returns at most 8 files): the report and every run's results.
(cd "$runs" && find . -maxdepth 1 -type f \( -name '*.md' -o -name '*.csv' -o -name '*.svg' -o -name '*.log' \) \
  && find . -name result.json -o -name metrics.jsonl) | tar cJf "$OUT/$name.tar.xz" -C "$runs" -T -
tail -5 "$OUT/sweep.log"; head -40 "$runs/results.md"
