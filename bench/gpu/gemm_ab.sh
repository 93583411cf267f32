#!/usr/bin/env bash
# cuBLASLt against cuBLAS for hyb's GEMMs (`HYB_GPU_GEMM=lt` or `blas`), on the GPU study's
# models (examples/study/gpu.hyb: 8 layers at d 128, MQAR 32 pairs × 256 tokens, batch 64):
# first gemm_lt.cu (every cuBLASLt candidate and cublasSgemm on the profile's shapes),
# then each mixer's 3:1 model trained STEPS steps with each library, alternating ROUNDS
# times (median tokens/s of the steps after the tenth), then a `--profile` of each
# library's GatedDeltaNet step. Expects .device/hybc.xz. Logs to $OUT.
#   run: OUT=$OUT bash bench/gpu/gemm_ab.sh
set -uo pipefail
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT" /tmp/ab
FILE=${FILE:-examples/study/gpu.hyb}
xz -dc .device/hybc.xz > /tmp/hybc-ab && chmod +x /tmp/hybc-ab
if [ -n "${GEMM_LT-1}" ]; then
  nvcc -O2 -o /tmp/gemm_lt bench/gpu/gemm_lt.cu -lcublasLt -lcublas > "$OUT/gemm_lt.txt" 2>&1 &&
    timeout 120 /tmp/gemm_lt >> "$OUT/gemm_lt.txt" 2>&1
  echo "gemm_lt: exit $?"
fi
# The median tokens/s of a run's steps after the tenth.
median() {
  python3 -c "import json,statistics as s,sys;r=[json.loads(l) for l in open(sys.argv[1])];
t=[x['train/tokens_per_s'] for x in r if 'train/tokens_per_s' in x][10:];
print(f'median {s.median(t):.0f} min {min(t):.0f} max {max(t):.0f} over {len(t)} steps')" "$1"
}
for mixer in ${MIXERS:-gdn hgrn2 retnet}; do
  sed -E -e "s/^let linear( *)= .*/let linear\1= $mixer/" -e "s/warmup: [0-9]+/warmup: 4/" \
      -e "s/eval_every( *)= .*/eval_every\1= none/" -e "s/log_every( *)= .*/log_every\1= 1/" \
      "$FILE" > "/tmp/ab/$mixer.hyb"
  for round in $(seq "${ROUNDS:-2}"); do
    for library in lt blas; do
      run=/tmp/ab/$mixer.$library.$round
      HYB_GPU_GEMM=$library timeout 200 /tmp/hybc-ab train "/tmp/ab/$mixer.hyb" --target cuda \
        --steps "${STEPS:-60}" --out "$run" > "$run.log" 2>&1
      echo "$mixer $library round $round: exit $?, $(median "$run/metrics.jsonl"), final $(grep -o 'loss [0-9.]*' "$run.log" | tail -1)" |
        tee -a "$OUT/gemm_ab.txt"
    done
  done
done
for library in lt blas; do
  HYB_GPU_GEMM=$library timeout 200 /tmp/hybc-ab train /tmp/ab/gdn.hyb --target cuda --steps "${PROFILE_STEPS:-5}" \
    --profile --out "/tmp/ab/gdn.prof.$library" > "$OUT/gdn.profile.$library.log" 2>&1
  echo "profile $library: exit $?"
done
