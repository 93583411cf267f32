#!/usr/bin/env bash
# The GPU study in pieces, one device call at a time (README, "Sized for one GPU"): the
# finished runs are kept in the repository (each run's result.json under
# examples/study/measured/gpu/runs/; a run the call's end stopped keeps its stopped.json
# until it finishes), so that every call resumes the sweep where the last one stopped
# (`--time-limit` starts only the runs a call can finish). Read the device's status
# before a call: its idle and start time count, and SWEEP_S must stay 30 s under the
# call's limit. What a call would start, planned here:
#   target/release/hybc sweep examples/study/gpu.hyb --out runs/gpu-cuda --list --time-limit 540s --jobs 8 | tail
#   before a call:  bash examples/study/gpu_piece.sh prepare
#                   (fills runs/gpu-cuda from the kept results; carry .device/hybc.xz
#                   and runs/gpu-cuda)
#   the call:       OUT=$OUT STUDIES="examples/study/gpu.hyb=8@cuda" SWEEP_S=545 bash examples/study/device.sh
#   after it:       bash examples/study/gpu_piece.sh collect FILES_AT/gpu-cuda.tar.xz
#                   (keeps every finished run's result.json and writes the report of all
#                   of them into examples/study/measured/gpu/)
#   between calls:  bash examples/study/gpu_piece.sh merge FILES_AT/gpu-cuda.tar.xz
#                   (keeps the finished runs, no report: a second or two, so the next
#                   call goes out before the warm machine's idle release)
# STUDY, RUNS and KEEP name another study, its runs and where its results are kept;
# SHARED="DIR PREFIX..." has `prepare` also take the finished runs of DIR whose names
# start with a PREFIX (another study's cells of the same definitions and lets:
# gpu_conv.hyb's GatedDeltaNet and DeltaNet cells are gpu.hyb's).
set -euo pipefail
cd "$(dirname "$0")/../.."
study=${STUDY:-examples/study/gpu.hyb}
runs=${RUNS:-runs/gpu-cuda}
keep=${KEEP:-examples/study/measured/gpu}
hybc=${HYBC:-target/release/hybc}
case "${1:-}" in
  prepare)
    mkdir -p "$runs"
    if [ -d "$keep/runs" ]; then cp -r "$keep/runs/." "$runs/"; fi
    if [ -n "${SHARED:-}" ]; then
      read -r from prefixes <<< "$SHARED"
      for prefix in $prefixes; do
        for dir in "$from/$prefix"*/; do
          [ -f "$dir/result.json" ] || continue
          mkdir -p "$runs/$(basename "$dir")" && cp "$dir/result.json" "$runs/$(basename "$dir")/"
        done
      done
    fi
    echo "$runs: $(find "$runs" -name result.json | wc -l) finished runs"
    ;;
  merge | collect)
    archive=${2:?$1 needs the archive device.sh sent back}
    unpacked=$(mktemp -d)
    trap 'rm -rf "$unpacked"' EXIT
    tar xJf "$archive" -C "$unpacked"
    mkdir -p "$keep/runs" "$runs"
    # Finished runs' results, and what stopped runs got through (`stopped.json`: the next
    # call's --time-limit guesses their like from it), minus those finished since.
    (cd "$unpacked" && find . -name result.json -o -name stopped.json) | while read -r result; do
      mkdir -p "$keep/runs/$(dirname "$result")" "$runs/$(dirname "$result")"
      cp "$unpacked/$result" "$keep/runs/$result"
      cp "$unpacked/$result" "$runs/$result"
    done
    for dir in "$keep/runs"/*/ "$runs"/*/; do
      [ -f "$dir/result.json" ] && rm -f "$dir/stopped.json"
    done
    if [ "$1" = merge ]; then
      echo "$runs: $(find "$runs" -name result.json | wc -l) finished runs (report with collect)"
      # What is left, at the finished runs' pace (the built hybc, if any: no build here).
      [ -x "$hybc" ] && "$hybc" sweep "$study" --out "$runs" --list | tail -1
      exit 0
    fi
    # the report of this checkout's hybc, never a stale build (a no-op when it is current)
    [ -n "${HYBC:-}" ] || cargo build --release --locked -p hybc --quiet
    "$hybc" sweep "$study" --out "$runs" --report
    for report in results.md results.csv recall.svg search.svg; do
      [ -f "$runs/$report" ] && cp "$runs/$report" "$keep/"
    done
    echo "$keep: $(find "$keep/runs" -name result.json | wc -l) finished runs kept"
    ;;
  *)
    echo "usage: $0 prepare | merge ARCHIVE | collect ARCHIVE" >&2
    exit 2
    ;;
esac
