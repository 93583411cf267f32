#!/usr/bin/env bash
# A/Bs of register bounds on the GPU kernels, for one call. `HYB_MAXNREG_KERNELS=label:N`
# (a measurement switch, kernels/src/gpu.rs) bounds the registers of the kernels whose
# names end in `_label` at N, 0 unbounded. Each A/B is bench/gpu/env_ab.sh without verify
# (a bound changes no arithmetic: the losses must agree at every step), its figures in
# $OUT/<A>/env_ab.txt and summary.txt. B is the default (the lanes form's reverse scan at
# 128), or the chunked form unbounded (whose delta-rule scans take 255 registers: two
# blocks a multiprocessor).
#   run: OUT=$OUT HYBC=/tmp/branch_bin/hybc bash bench/gpu/maxnreg_ab.sh   (a bundle's hybc)
#   or:  OUT=$OUT bash bench/gpu/maxnreg_ab.sh      (carry .device: hybc.xz)
set -uo pipefail
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"
if [ -z "${HYBC-}" ]; then xz -dc .device/hybc.xz > /tmp/hybc && chmod +x /tmp/hybc; fi
HYBC=${HYBC:-/tmp/hybc}
started=$(date +%s)
ab() {
  local mixers=$1 a=$2 b=${3-} name
  name=$(printf '%s' "$a" | tr -c 'A-Za-z0-9_.-' '_')
  rm -rf /tmp/ab
  OUT=$OUT/$name VERIFY= HYBC=$HYBC A="$a" B="$b" MIXERS="$mixers" ROUNDS=1 STEPS=30 \
    PROFILE_MIXER=${mixers%% *} PROFILE_STEPS="${PROFILE_STEPS:-8}" timeout 240 bash bench/gpu/env_ab.sh \
    > "$OUT/$name.out" 2>&1
  { echo "== $a against ${b:-the default} ($mixers) exit $? at $(( $(date +%s) - started )) s"
    cat "$OUT/$name/env_ab.txt"; } >> "$OUT/summary.txt"
}
nvidia-smi -L >> "$OUT/summary.txt"
# Does the reverse scan's bound of 128 pay for the other mixers too (A: unbounded)?
ab "gdn hgrn2 gla deltanet retnet" "HYB_MAXNREG_KERNELS=scan_bwd:0"
# Tighter bounds on the reverse scan, and a bound on the forward scan and attention's backward.
ab gdn "HYB_MAXNREG_KERNELS=scan_bwd:96"
ab gdn "HYB_MAXNREG_KERNELS=scan_bwd:64"
ab gdn "HYB_MAXNREG_KERNELS=scan_fwd:128"
ab gdn "HYB_MAXNREG_KERNELS=attention_bwd:128"
# The chunked form's delta-rule scans at 128 registers (four blocks a multiprocessor).
ab "gdn deltanet" "HYB_GPU_FORM=chunked HYB_MAXNREG_KERNELS=scan_bwd:128" "HYB_GPU_FORM=chunked"
cat "$OUT/summary.txt"
