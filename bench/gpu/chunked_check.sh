#!/usr/bin/env bash
# The chunked form's first device calls (docs/CHUNKED_SCAN.md, "Built"): the reverse
# scans of RetNet, GLA, HGRN-2, DeltaNet and GatedDeltaNet in the chunked form
# (`HYB_GPU_FORM=chunked`) against the CPU, then timed against the lanes form.
#   PART=check (about 6 minutes of one H100 / H200):
#     1. the runtime's GPU suite under the switch (loss and every gradient of every
#        preset, compositions, every kernel in lockstep), RT_S seconds at most;
#     2. `hybc verify` under the switch of bench/gpu/verify/every_mixer.hyb at three
#        shapes, and of the GPU study's 3:1 model of each family at its own shape
#        (B 64, T 256: chunks of 16, value blocks of 64).
#   PART=ab (about 5 minutes): bench/gpu/env_ab.sh on examples/study/gpu.hyb's 3:1
#     models, lanes (A) against chunked (B), ROUNDS rounds of STEPS steps, and a
#     --profile of PROFILE_MIXER's step under each (the scan's share of a step).
#   PART=threads (about 2 minutes): the chunked form's blocks of THREADS threads (256;
#     `HYB_CHUNKED_THREADS`) against its 128, on MIXERS' 3:1 models (gdn retnet gla).
#   PART=split (about 3 minutes): the chunked form's long sums in one chain
#     (`HYB_CHUNKED_SPLIT=1`, its default) against four partial sums (`=4`; measured
#     slower on 2026-12-06, docs/CHUNKED_SCAN.md),
#     on MIXERS' 3:1 models (gdn retnet gla deltanet hgrn2).
#   PART=kernels (about 2 minutes): one layer at the anchors' kernel shape (B 4,
#     T 4096, 16 heads of 128: bench/gpu/kernel_{gla,deltanet,gdn}.hyb, chunks of 64)
#     profiled under each form, beside runtime/benches/README.md's lanes figures and
#     fla's (bench/gpu/anchors.sh).
#   PART=blocks (about 5 minutes): the chunked form's value blocks capped at 32 and 16
#     channels (`HYB_CHUNKED_VALUE_BLOCK`: more blocks, each recomputing the scores)
#     against its default (64 at the study's shapes: 128 blocks for 132
#     multiprocessors), on GatedDeltaNet's and RetNet's 3:1 models.
# Expects BUNDLE, a tar.xz of `hybc` and `rt` built together from main (as
# branch_check.sh's). Logs to $OUT: summary.txt as each step ends, the logs beside it.
#   run: OUT=$OUT BUNDLE=.device_c/main.tar.xz PART=check bash bench/gpu/chunked_check.sh
set -uo pipefail
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"
bin=/tmp/branch_bin; mkdir -p "$bin"
started=$(date +%s)
elapsed() { echo "$1 exit $2 at $(( $(date +%s) - started )) s" | tee -a "$OUT/summary.txt"; }
[ -x "$bin/hybc" ] || { xz -dc "${BUNDLE:?a tar.xz of hybc and rt}" | tar xf - -C "$bin" && chmod +x "$bin"/*; }
nvidia-smi -L >> "$OUT/summary.txt"
families="gdn retnet gla deltanet hgrn2"
if [ "${PART:-check}" = check ]; then
  (cd runtime && HYB_GPU_FORM=chunked timeout "${RT_S:-240}" "$bin/rt" gpu::every_preset gpu::compositions \
    gpu::every_kernel --test-threads 1 > "$OUT/rt.log" 2>&1; elapsed "rt (chunked)" $?)
  grep -E "^test |test result" "$OUT/rt.log" >> "$OUT/summary.txt"
  {
    for shape in "1 1" "2 7" "3 70"; do
      set -- $shape
      echo "== every_mixer B=$1 T=$2 (chunked)"
      HYB_GPU_FORM=chunked timeout 60 "$bin/hybc" verify bench/gpu/verify/every_mixer.hyb --target cuda \
        --batch "$1" --seq-len "$2"
    done
    for mixer in $families; do
      sed "s/^let linear     = gdn/let linear     = $mixer/" examples/study/gpu.hyb > "/tmp/$mixer.study.hyb"
      echo "== the study's $mixer 3:1, B=64 T=256 (chunked)"
      HYB_GPU_FORM=chunked timeout 60 "$bin/hybc" verify "/tmp/$mixer.study.hyb" --target cuda --batch 64 --seq-len 256
    done
  } > "$OUT/verify.log" 2>&1
  elapsed "verify (chunked): $(grep -c 'agrees with the cpu' "$OUT/verify.log") of 8 agree" 0
elif [ "$PART" = blocks ]; then
  for width in 32 16; do
    rm -rf /tmp/ab
    OUT=$OUT/blocks_$width VERIFY= HYBC=$bin/hybc A="HYB_GPU_FORM=chunked" \
      B="HYB_GPU_FORM=chunked HYB_CHUNKED_VALUE_BLOCK=$width" MIXERS="gdn retnet" PROFILE_MIXER=gdn ROUNDS=1 \
      STEPS=${STEPS:-30} timeout 150 bash bench/gpu/env_ab.sh > "$OUT/blocks_$width.out" 2>&1
    elapsed "value blocks of $width" $?
    cat "$OUT/blocks_$width/env_ab.txt" >> "$OUT/summary.txt" 2>/dev/null
  done
elif [ "$PART" = threads ]; then
  rm -rf /tmp/ab
  OUT=$OUT/threads VERIFY= HYBC=$bin/hybc A="HYB_GPU_FORM=chunked" \
    B="HYB_GPU_FORM=chunked HYB_CHUNKED_THREADS=${THREADS:-256}" MIXERS="${MIXERS:-gdn retnet gla}" \
    PROFILE_MIXER=${PROFILE_MIXER:-gdn} ROUNDS=1 STEPS=${STEPS:-30} timeout "${AB_S:-150}" bash bench/gpu/env_ab.sh \
    > "$OUT/threads.out" 2>&1
  elapsed "chunked blocks of ${THREADS:-256} threads" $?
  cat "$OUT/threads/env_ab.txt" >> "$OUT/summary.txt" 2>/dev/null
elif [ "$PART" = split ]; then
  rm -rf /tmp/ab
  OUT=$OUT/split VERIFY= HYBC=$bin/hybc A="HYB_GPU_FORM=chunked HYB_CHUNKED_SPLIT=1" B="HYB_GPU_FORM=chunked HYB_CHUNKED_SPLIT=4" \
    MIXERS="${MIXERS:-gdn retnet gla deltanet hgrn2}" PROFILE_MIXER=${PROFILE_MIXER:-gdn} ROUNDS=1 STEPS=${STEPS:-30} \
    timeout "${AB_S:-200}" bash bench/gpu/env_ab.sh > "$OUT/split.out" 2>&1
  elapsed "chunked sums in one chain (A) against four partial sums (B)" $?
  cat "$OUT/split/env_ab.txt" >> "$OUT/summary.txt" 2>/dev/null
elif [ "$PART" = kernels ]; then
  for layer in gla deltanet gdn; do
    for form in lanes chunked; do
      rm -rf "/tmp/kernels.$layer.$form"
      HYB_GPU_FORM=$form timeout 120 "$bin/hybc" train "bench/gpu/kernel_$layer.hyb" --target cuda --profile \
        --steps "${STEPS:-4}" --out "/tmp/kernels.$layer.$form" > "$OUT/kernel_$layer.$form.log" 2>&1
      elapsed "kernel_$layer ($form)" $?
      grep -E "scan_bwd|tokens/s" "$OUT/kernel_$layer.$form.log" | head -4 >> "$OUT/summary.txt"
    done
  done
else
  rm -rf /tmp/ab
  OUT=$OUT VERIFY= HYBC=$bin/hybc A="HYB_GPU_FORM=lanes" B="HYB_GPU_FORM=chunked" MIXERS="${MIXERS:-$families}" \
    PROFILE_MIXER=${PROFILE_MIXER:-gdn} ROUNDS=${ROUNDS:-2} STEPS=${STEPS:-30} timeout "${AB_S:-420}" \
    bash bench/gpu/env_ab.sh > "$OUT/ab.out" 2>&1
  elapsed "A/B lanes → chunked" $?
  cat "$OUT/env_ab.txt" >> "$OUT/summary.txt" 2>/dev/null
fi
