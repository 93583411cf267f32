#!/usr/bin/env bash
# Fuzz targets on the GPU machine's CPU cores (16 there): libFuzzer's fork mode, several
# targets side by side under one time limit, each from its committed corpus, then one
# archive a target back to $OUT with its log, its grown corpus and any findings.
# Expects .bundle/<target>.xz: the instrumented binary that `cargo fuzz build -s none -a`
# writes to fuzz/target/x86_64-unknown-linux-gnu/release/<target>, xz-compressed (the
# machine has no Rust).
#   TARGETS: space-separated `TARGET=FORKS` (fork jobs for that target);
#   FUZZ_S: seconds for all of them.
#   run: OUT=$OUT TARGETS="parse_check=12 parquet=4" FUZZ_S=540 bash fuzz/device.sh
set -uo pipefail
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"
nproc | sed 's/^/cores: /' | tee "$OUT/machine.txt"
for pair in $TARGETS; do
  target=${pair%=*}; forks=${pair#*=}
  xz -dc ".bundle/$target.xz" > "/tmp/$target" && chmod +x "/tmp/$target"
  mkdir -p "/tmp/corpus/$target" "/tmp/artifacts/$target"
  cp "fuzz/corpus/$target/"* "/tmp/corpus/$target/"
  ("/tmp/$target" "/tmp/corpus/$target" -fork="$forks" -max_total_time="${FUZZ_S:-540}" -max_len=4096 \
     -timeout=5 -rss_limit_mb=4096 -ignore_crashes=1 -ignore_timeouts=1 -ignore_ooms=1 \
     -print_final_stats=1 -artifact_prefix="/tmp/artifacts/$target/" > "/tmp/$target.log" 2>&1
   echo "fuzz exit $?" >> "/tmp/$target.log") &
done
wait
for pair in $TARGETS; do
  target=${pair%=*}
  cp "/tmp/$target.log" "/tmp/corpus/$target.log"
  tar cJf "$OUT/$target.tar.xz" -C /tmp "corpus/$target" "corpus/$target.log" "artifacts/$target"
  echo "== $target"; grep -E '^#[0-9]+' "/tmp/$target.log" | tail -2; tail -1 "/tmp/$target.log"
  echo "artifacts: $(ls "/tmp/artifacts/$target" | wc -l)"
done
