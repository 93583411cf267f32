#!/usr/bin/env bash
# One device call for a bundle that changes GPU kernels, when calls are scarce: first
# the timed part on a quiet GPU (chunked_check.sh's PART=ab: the study's 3:1 models,
# lanes against chunked), then the untimed correctness check (PART=check: the runtime's
# GPU suite and `hybc verify` under HYB_GPU_FORM=chunked) beside the GPU study's sweep
# (examples/study/device.sh) for the rest of the call. The sweep's runs count only if
# the check passes. The machine returns 8 files: the logs come back in one archive,
# $OUT/logs.tar.xz (summary.txt inside), beside the sweep's gpu-cuda.tar.xz.
#   run: OUT=$OUT BUNDLE=.device_c/new.tar.xz CALL_S=590 bash bench/gpu/check_and_sweep.sh
#   AB=  skips the A/B; MIXERS the A/B's families; THREADS=256 adds PART=threads
#   (THREAD_MIXERS, THREADS_S seconds); SPLIT=1 adds PART=split (SPLIT_MIXERS,
#   SPLIT_S seconds); STUDIES as device.sh's.
set -uo pipefail
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"
export BUNDLE=${BUNDLE:?a tar.xz of hybc and rt built together}
started=$(date +%s)
logs=/tmp/check_and_sweep; mkdir -p "$logs"
if [ -n "${AB-1}" ]; then
  OUT=$logs PART=ab MIXERS="${MIXERS:-gdn retnet gla deltanet hgrn2}" ROUNDS=1 AB_S=${AB_S:-170} \
    timeout $(( ${AB_S:-170} + 10 )) bash bench/gpu/chunked_check.sh > "$logs/ab.out" 2>&1
fi
if [ -n "${THREADS-}" ]; then
  OUT=$logs PART=threads THREADS=$THREADS MIXERS="${THREAD_MIXERS:-gdn retnet gla}" AB_S=${THREADS_S:-120} \
    timeout $(( ${THREADS_S:-120} + 10 )) bash bench/gpu/chunked_check.sh > "$logs/threads.out" 2>&1
fi
if [ -n "${SPLIT-}" ]; then
  OUT=$logs PART=split MIXERS="${SPLIT_MIXERS:-gdn retnet deltanet}" AB_S=${SPLIT_S:-150} \
    timeout $(( ${SPLIT_S:-150} + 10 )) bash bench/gpu/chunked_check.sh > "$logs/split.out" 2>&1
fi
(OUT=$logs PART=check RT_S=${RT_S:-190} timeout 330 bash bench/gpu/chunked_check.sh > "$logs/check.out" 2>&1) &
check=$!
left=$(( ${CALL_S:-590} - ($(date +%s) - started) - 25 ))
OUT=$OUT STUDIES=${STUDIES:-examples/study/gpu.hyb=8@cuda} SWEEP_S=$left bash examples/study/device.sh \
  > "$logs/sweep.out" 2>&1
wait "$check"
tar cJf "$OUT/logs.tar.xz" -C "$logs" .
cat "$logs/summary.txt"
tail -3 "$logs/sweep.out"
