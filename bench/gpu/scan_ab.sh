#!/usr/bin/env bash
# The scan's lanes form with the state in registers (the default) against the form that
# kept it in global memory (`HYB_SCAN_LANES=loop`, an A/B switch that exists only in
# commit 7d560f5: build hybc there to run this), on the GPU study's models (examples/study/gpu.hyb: 8 layers at d 128,
# MQAR 32 pairs × 256 tokens, batch 64): each mixer's 3:1 model trained STEPS steps with
# each form, alternating ROUNDS times (median tokens/s of the steps after the tenth),
# then a `--profile` of each form's GatedDeltaNet step, then `hybc verify` (every kernel
# against the CPU) of the new form through bench/gpu/verify.sh. Expects .device/hybc.xz.
#   run: OUT=$OUT bash bench/gpu/scan_ab.sh
set -uo pipefail
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT" /tmp/ab
FILE=${FILE:-examples/study/gpu.hyb}
xz -dc .device/hybc.xz > /tmp/hybc && chmod +x /tmp/hybc
median() {
  python3 -c "import json,statistics as s,sys;r=[json.loads(l) for l in open(sys.argv[1])];
t=[x['train/tokens_per_s'] for x in r if 'train/tokens_per_s' in x][10:];
print(f'median {s.median(t):.0f} min {min(t):.0f} max {max(t):.0f} over {len(t)} steps')" "$1"
}
for mixer in ${MIXERS:-gdn hgrn2 retnet gla deltanet hgrn}; do
  sed -E -e "s/^let linear( *)= .*/let linear\1= $mixer/" -e "s/warmup: [0-9]+/warmup: 4/" \
      -e "s/eval_every( *)= .*/eval_every\1= none/" -e "s/log_every( *)= .*/log_every\1= 1/" \
      "$FILE" > "/tmp/ab/$mixer.hyb"
  for round in $(seq "${ROUNDS:-2}"); do
    for form in loop registers; do
      run=/tmp/ab/$mixer.$form.$round
      HYB_SCAN_LANES=$form timeout 200 /tmp/hybc train "/tmp/ab/$mixer.hyb" --target cuda \
        --steps "${STEPS:-40}" --out "$run" > "$run.log" 2>&1
      echo "$mixer $form round $round: exit $?, $(median "$run/metrics.jsonl"), final $(grep -o 'loss [0-9.]*' "$run.log" | tail -1)" |
        tee -a "$OUT/scan_ab.txt"
    done
  done
done
for form in loop registers; do
  HYB_SCAN_LANES=$form timeout 200 /tmp/hybc train /tmp/ab/gdn.hyb --target cuda --steps "${PROFILE_STEPS:-8}" \
    --profile --out "/tmp/ab/gdn.prof.$form" > "$OUT/gdn.profile.$form.log" 2>&1
  echo "profile $form: exit $?"
done
[ -n "${VERIFY-1}" ] && HYBC=/tmp/hybc OUT=$OUT bash bench/gpu/verify.sh > /dev/null 2>&1
grep -c "agrees with the cpu" "$OUT/verify.log"; grep -i -B2 "differ\|error\|disagree" "$OUT/verify.log" | head -20
