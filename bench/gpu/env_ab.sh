#!/usr/bin/env bash
# An A/B of one hybc under two environments (an A/B switch a commit carries for one
# measurement, e.g. A="HYB_SOME_SWITCH=old" B=""), on the GPU study's models
# (examples/study/gpu.hyb: 8 layers at d 128, MQAR 32 pairs × 256 tokens, batch 64):
# first `hybc verify` of B (bench/gpu/verify.sh: every kernel against the CPU), then
# each mixer's 3:1 model trained STEPS steps under A and under B, alternating ROUNDS
# times (median tokens/s of the steps after the tenth, with min and max), then a
# `--profile` of GatedDeltaNet's step (PROFILE_MIXER's) under each. Expects .device/hybc.xz, or a hybc at
# $HYBC. Logs to $OUT.
#   run: OUT=$OUT A="HYB_SOME_SWITCH=old" B="" bash bench/gpu/env_ab.sh
set -uo pipefail
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT" /tmp/ab
FILE=${FILE:-examples/study/gpu.hyb}
A=${A:?the first environment, e.g. A=HYB_SOME_SWITCH=old}; B=${B-}
if [ -z "${HYBC-}" ]; then xz -dc .device/hybc.xz > /tmp/hybc && chmod +x /tmp/hybc; fi
HYBC=${HYBC:-/tmp/hybc}
if [ -n "${VERIFY-1}" ]; then
  env $B HYBC=$HYBC OUT=$OUT BIG_S=90 bash bench/gpu/verify.sh > /dev/null 2>&1
  echo "verify (B): $(grep -c 'agrees with the cpu' "$OUT/verify.log") agree" | tee -a "$OUT/env_ab.txt"
fi
median() {
  python3 -c "import json,statistics as s,sys;r=[json.loads(l) for l in open(sys.argv[1])];
t=[x['train/tokens_per_s'] for x in r if 'train/tokens_per_s' in x][10:];
print(f'median {s.median(t):.0f} min {min(t):.0f} max {max(t):.0f} over {len(t)} steps')" "$1"
}
for mixer in ${MIXERS:-gdn hgrn2 retnet gla deltanet hgrn}; do
  sed -E -e "s/^let linear( *)= .*/let linear\1= $mixer/" -e "s/warmup: [0-9]+/warmup: 4/" \
      -e "s/eval_every( *)= .*/eval_every\1= none/" -e "s/log_every( *)= .*/log_every\1= 1/" \
      -e "s/^let attn_every( *)= .*/let attn_every\1= ${ATTN_EVERY:-4}/" "$FILE" > "/tmp/ab/$mixer.hyb"
  for round in $(seq "${ROUNDS:-2}"); do
    for side in A B; do
      run=/tmp/ab/$mixer.$side.$round; rm -rf "$run"
      env ${!side} timeout 200 "$HYBC" train "/tmp/ab/$mixer.hyb" --target cuda \
        --steps "${STEPS:-30}" --out "$run" > "$run.log" 2>&1
      echo "$mixer $side round $round: exit $?, $(median "$run/metrics.jsonl"), $(grep -oE 'final loss [^ ;]+' "$run.log" | tail -1)" |
        tee -a "$OUT/env_ab.txt"
    done
  done
done
profiled=${PROFILE_MIXER:-gdn}  # one of MIXERS
for side in A B; do
  rm -rf "/tmp/ab/$profiled.prof.$side"
  env ${!side} timeout 200 "$HYBC" train "/tmp/ab/$profiled.hyb" --target cuda --steps "${PROFILE_STEPS:-8}" \
    --profile --out "/tmp/ab/$profiled.prof.$side" > "$OUT/$profiled.profile.$side.log" 2>&1
  echo "profile $side: exit $?"
done
