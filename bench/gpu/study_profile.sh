#!/usr/bin/env bash
# Where a small model's GPU step goes (the GPU study's size: examples/study/gpu.hyb, 8
# layers at d 128, MQAR 32 pairs × 256 tokens, batch 64): each mixer's 3:1 model alone
# on the GPU, first STEPS steps plain (tokens/s a step), then PROFILE_STEPS with
# `--profile` (each kernel timed; kernel by kernel, so slower than the plain run).
# Expects .device/hybc.xz. Logs and metrics to $OUT/study_profile.tar.xz.
#   run: OUT=$OUT bash bench/gpu/study_profile.sh
set -uo pipefail
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT" /tmp/sp
FILE=${FILE:-examples/study/gpu.hyb}
xz -dc .device/hybc.xz > /tmp/hybc-sp && chmod +x /tmp/hybc-sp
for mixer in ${MIXERS:-gdn hgrn hgrn2 gla deltanet retnet}; do
  sed -E -e "s/^let linear( *)= .*/let linear\1= $mixer/" -e "s/warmup: [0-9]+/warmup: 4/" \
      -e "s/eval_every( *)= .*/eval_every\1= none/" -e "s/log_every( *)= .*/log_every\1= 1/" \
      "$FILE" > "/tmp/sp/$mixer.hyb"
  timeout 200 /tmp/hybc-sp train "/tmp/sp/$mixer.hyb" --target cuda --steps "${STEPS:-30}" \
    --out "/tmp/sp/$mixer" > "/tmp/sp/$mixer.plain.log" 2>&1; echo "$mixer plain: exit $?"
  timeout 200 /tmp/hybc-sp train "/tmp/sp/$mixer.hyb" --target cuda --steps "${PROFILE_STEPS:-5}" \
    --profile --out "/tmp/sp/$mixer.prof" > "/tmp/sp/$mixer.profile.log" 2>&1; echo "$mixer profile: exit $?"
  grep -A14 "time per kernel" "/tmp/sp/$mixer.profile.log"
done
(cd /tmp/sp && tar cJf "$OUT/study_profile.tar.xz" ./*.log ./*.hyb ./*/metrics.jsonl)
