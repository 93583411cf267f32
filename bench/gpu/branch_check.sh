#!/usr/bin/env bash
# One device call that checks a branch of GPU changes before it merges: the runtime's
# GPU suite (`gpu::` tests: forward, gradients and decoding against the CPU), `hybc
# verify` of bench/gpu/verify.sh's models (inside the first A/B), then bench/gpu/env_ab.sh
# once per A/B switch the branch carries (A: the switch's old behaviour, B: the new
# default). Expects BUNDLE, a tar.xz holding `hybc` (stripped release build) and `rt`
# (the stripped `runtime` test binary), built together from the branch and compressed
# with one long dictionary so the pair travels in one carry:
#   tar cf - -C DIR hybc rt | xz -T1 --lzma2=preset=9,dict=400MiB > .device_c/NAME.tar.xz
# Logs to $OUT: summary.txt (written as each step ends, so a call cut short keeps what
# finished), and all.tar.xz with every log (the machine returns 8 files).
#   run: OUT=$OUT BUNDLE=.device_c/coalesced.tar.xz SWITCHES="HYB_SOME_SWITCH=old HYB_OTHER=0" \
#        bash bench/gpu/branch_check.sh
set -uo pipefail
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"
work=/tmp/branch_check; bin=/tmp/branch_bin
mkdir -p "$work" "$bin"
started=$(date +%s)
elapsed() { echo "$1 exit $2 at $(( $(date +%s) - started )) s" | tee -a "$OUT/summary.txt"; }
xz -dc "${BUNDLE:?a tar.xz of hybc and rt}" | tar xf - -C "$bin" && chmod +x "$bin"/*
nvidia-smi -L >> "$OUT/summary.txt"
(cd runtime && timeout "${RT_S:-200}" "$bin/rt" gpu:: --test-threads 1 > "$work/rt.log" 2>&1; elapsed rt $?)
grep -E "^test |test result" "$work/rt.log" >> "$OUT/summary.txt"
verify=1
for switch in ${SWITCHES:?the A/B switches, e.g. HYB_SOME_SWITCH=old}; do
  name=$(printf '%s' "$switch" | tr -c 'A-Za-z0-9_.-' '_')
  # Each run in a fresh folder of its own (env_ab.sh's /tmp/ab is shared between calls).
  rm -rf /tmp/ab
  OUT=$work/$name VERIFY=${verify:+1} HYBC=$bin/hybc A=$switch B= MIXERS=${MIXERS:-gdn} ROUNDS=${ROUNDS:-1} \
    STEPS=${STEPS:-30} timeout "${AB_S:-200}" bash bench/gpu/env_ab.sh > "$work/$name.out" 2>&1
  elapsed "$switch" $?
  cat "$work/$name/env_ab.txt" >> "$OUT/summary.txt" 2>/dev/null
  verify=
done
tar cJf "$OUT/all.tar.xz" -C "$work" .
