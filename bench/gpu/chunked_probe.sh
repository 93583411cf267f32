#!/usr/bin/env bash
# docs/CHUNKED_SCAN.md's first measurement, in one device call: fla's chunked kernels at
# the GPU study's shape (bench/gpu/fla_study_shape.py; float32 and bfloat16), then where
# our own step goes at that shape for GatedDeltaNet and RetNet 3:1 (study_profile.sh:
# each kernel timed, the reverse scan's ms a call among them). About 10 minutes, most
# of it Triton's autotuning on first use. Expects .bundle/fla.tar.xz
# (bench/gpu/make_fla_bundle.sh) and .device/hybc.xz. Logs to $OUT.
#   run: OUT=$OUT bash bench/gpu/chunked_probe.sh        (carry .bundle and .device)
set -uo pipefail
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT" /tmp/fla_site
tar xJf .bundle/fla.tar.xz -C /tmp/fla_site
nvidia-smi -L | tee "$OUT/machine.txt"
PYTHONPATH=/tmp/fla_site PYTHONUNBUFFERED=1 OUT=$OUT timeout "${FLA_S:-360}" \
  python3 bench/gpu/fla_study_shape.py > "$OUT/fla_study_shape.log" 2>&1
echo "fla: exit $?"; cat "$OUT/fla_study_shape.log" | grep -v "^ *warn" | tail -12
OUT=$OUT MIXERS="${MIXERS:-gdn retnet}" bash bench/gpu/study_profile.sh 2>&1 | tee "$OUT/study_profile.log" | tail -40
