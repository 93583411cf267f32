#!/usr/bin/env bash
# Studies' sweeps on the GPU machine's CPU cores (16 there, 2 here): each `hybc sweep
# --jobs` under one time limit, side by side, then the report of every finished run,
# sent back to $OUT in one archive per study with its logs, report, and each run's
# result.json and metrics (checkpoints stay behind). Expects .device/hybc.xz (a
# stripped release hybc, xz-compressed), a hybc at $HYBC, or BUNDLE, a tar.xz holding
# one as `hybc` (bench/gpu/branch_check.sh's; unpacked once a machine).
#   STUDIES: space-separated `FILE=JOBS` (shards at once for that study), or
#   `FILE=JOBS@cuda` to train that study's runs on the GPU (runs/<stem>-cuda);
#   SWEEP_S: seconds for all of them (keep it 30 s under the call's limit: a call cut
#   short sends back only the runs finished by the last minute's archive): each sweep
#   starts only the runs it expects to finish within them (`--time-limit`, a run's
#   length guessed from the finished or stopped runs most like it; with none yet a run
#   may still be cut by `timeout`, and then leaves stopped.json to go by);
#   each study's plan.log is what the call planned to start (`hybc sweep --list
#   --time-limit`), to set beside what it did;
#   runs go to runs/<stem>, so a sweep stopped by the time limit resumes in the next
#   call when runs/<stem> is carried back from the last call's archive (runs with a
#   result.json are skipped; an unfinished run starts again).
#   SUITE=1 with a BUNDLE that also holds `rt` (bench/gpu/branch_check.sh's, the
#   stripped `runtime` test binary): first the runtime's GPU suite (`rt gpu::`, about
#   170 s on an H100; $OUT/rt.log), then the sweeps — SWEEP_S counts from after it.
#   run: OUT=$OUT STUDIES="examples/study/forgetting.hyb=11 examples/study/lm.hyb=5" SWEEP_S=540 bash examples/study/device.sh
set -uo pipefail
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"
if [ -n "${BUNDLE-}" ]; then
  [ -x /tmp/branch_bin/hybc ] || { mkdir -p /tmp/branch_bin && xz -dc "$BUNDLE" | tar xf - -C /tmp/branch_bin; }
  HYBC=/tmp/branch_bin/hybc
fi
if [ -n "${SUITE-}" ]; then
  (cd runtime && timeout "${RT_S:-220}" /tmp/branch_bin/rt gpu:: --test-threads 1 > "$OUT/rt.log" 2>&1
   echo "rt exit $?" >> "$OUT/rt.log")
  grep -E "^test |test result|rt exit" "$OUT/rt.log"
fi
if [ -z "${HYBC-}" ]; then xz -dc .device/hybc.xz > /tmp/hybc && chmod +x /tmp/hybc; fi
HYBC=${HYBC:-/tmp/hybc}
nproc | sed 's/^/cores: /' | tee "$OUT/machine.txt"
started=$(date +%s)
# One study's fields from `FILE=JOBS[@cuda]`: file, jobs, runs (runs/<stem>[-cuda]), target.
parse() {
  file=${1%=*}; jobs=${1#*=}; jobs=${jobs%@*}; runs=runs/$(basename "$file" .hyb); target=()
  if [[ $1 == *@cuda ]]; then runs=$runs-cuda; target=(--target cuda); fi
}
# One archive a study (the machine returns at most 8 files): its logs, report, each
# run's result.json and each stopped run's stopped.json, with metrics.jsonl when `full`.
archive() {
  local dir=$1 what=(-name result.json -o -name stopped.json) listed
  [ "${2-}" = full ] && what+=(-o -name metrics.jsonl)
  listed=$(mktemp)
  (cd "$dir" && find . -maxdepth 1 -type f \( -name '*.md' -o -name '*.csv' -o -name '*.svg' -o -name '*.log' \) \
    && find . \( "${what[@]}" \)) > "$listed"
  # Logs still growing make tar warn and exit 1; its archive is whole all the same.
  tar cJf "$OUT/${dir#runs/}.tar.xz.part" --warning=no-file-changed -C "$dir" -T "$listed"
  [ $? -le 1 ] && mv "$OUT/${dir#runs/}.tar.xz.part" "$OUT/${dir#runs/}.tar.xz"
  rm -f "$listed" "$OUT/${dir#runs/}.tar.xz.part"
}
# Every minute the finished runs so far, so that a call cut by its limit (SWEEP_S
# longer than the call's time left) still sends back what finished before it. Stopped
# by TERM only between archives (bash runs the trap once tar is done), its sleep with it.
(trap 'kill "${nap-}" 2>/dev/null; exit 0' TERM
 while :; do
   sleep 60 & nap=$!; wait "$nap"
   for study in $STUDIES; do parse "$study"; [ -d "$runs" ] && archive "$runs"; done
 done) > /dev/null 2>&1 &
saver=$!; sweeps=()
for study in $STUDIES; do
  parse "$study"; mkdir -p "$runs"
  # What the call plans to start, each run's guessed length (beside what it then did).
  "$HYBC" sweep "$file" "${target[@]}" --out "$runs" --list --time-limit "$(( ${SWEEP_S:-500} - 5 ))s" \
    --jobs "$jobs" 2>&1 | grep -E '^#|^error' > "$runs/plan.log"
  (timeout "${SWEEP_S:-500}" "$HYBC" sweep "$file" --jobs "$jobs" "${target[@]}" --out "$runs" \
     --time-limit "$(( ${SWEEP_S:-500} - 5 ))s" > "$runs/sweep.log" 2>&1
   echo "sweep exit $? after $(( $(date +%s) - started )) s" >> "$runs/sweep.log") &
  sweeps+=($!)
done
[ ${#sweeps[@]} -gt 0 ] && wait "${sweeps[@]}"
kill "$saver" 2>/dev/null; wait "$saver" 2>/dev/null
for study in $STUDIES; do
  parse "$study"
  "$HYBC" sweep "$file" "${target[@]}" --out "$runs" --report > "$runs/report.log" 2>&1
  archive "$runs" full
  echo "== $runs"; tail -3 "$runs/sweep.log"; echo "finished runs: $(find "$runs" -name result.json | wc -l)"
done
