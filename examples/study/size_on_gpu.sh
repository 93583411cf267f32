#!/usr/bin/env bash
# Sizes a GPU study before it runs: trains the study file's model with each listed value
# of `let linear` for a few steps, all at once on the GPU (as `hybc sweep --jobs N
# --target cuda` runs them), and archives each run's metrics.jsonl (tokens/s a step) and
# log to $OUT/size.tar.xz. Expects .device/hybc.xz (a stripped release hybc, xz'd).
#   FILE (examples/study/gpu.hyb), MIXERS ("gdn hgrn gla retnet"), STEPS (40); a pilot
#   of a study keeps its evaluations: WARMUP (4), EVAL_EVERY (none), LOG_EVERY (1), and
#   TIMEOUT_S (none) cuts the runs, their metrics so far archived.
#   run: OUT=$OUT bash examples/study/size_on_gpu.sh
set -uo pipefail
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT" /tmp/size
FILE=${FILE:-examples/study/gpu.hyb}; STEPS=${STEPS:-40}
xz -dc .device/hybc.xz > /tmp/hybc-size && chmod +x /tmp/hybc-size
for mixer in ${MIXERS:-gdn hgrn gla retnet}; do
  # The file with this mixer, a short schedule, a log line every step and no evaluation.
  sed -E -e "s/^let linear( *)= .*/let linear\1= $mixer/" -e "s/steps( *)= [0-9_]+/steps\1= $STEPS/" \
      -e "s/warmup: [0-9]+/warmup: ${WARMUP:-4}/" -e "s/eval_every( *)= .*/eval_every\1= ${EVAL_EVERY:-none}/" \
      -e "s/log_every( *)= .*/log_every\1= ${LOG_EVERY:-1}/" "$FILE" > "/tmp/size/$mixer.hyb"
  (timeout "${TIMEOUT_S:-0}" /tmp/hybc-size train "/tmp/size/$mixer.hyb" --target cuda --out "/tmp/size/$mixer" \
     > "/tmp/size/$mixer.log" 2>&1
   echo "exit $?" >> "/tmp/size/$mixer.log") &
done
wait
(cd /tmp/size && tar cJf "$OUT/size.tar.xz" ./*.log ./*.hyb ./*/metrics.jsonl)
for log in /tmp/size/*.log; do echo "== $log"; tail -2 "$log"; done
