#!/usr/bin/env bash
# Registers, stack frame and spills of every GPU kernel of a model, without a GPU:
# `hybc compile --emit ptx` then NVIDIA's ptxas (-v) per kernel module, for sm_90a.
# ptxas comes from PyPI's nvidia-cuda-nvcc-cu12 wheel (pinned), fetched once into
# target/ptxas/ with pip. Register pressure decides how many warps a multiprocessor
# holds; spills go to local memory. A static look only: time it on the device.
#   scripts/ptxinfo.sh examples/study/gpu.hyb [NAME-FILTER]   e.g. scan, attention
set -euo pipefail
cd "$(dirname "$0")/.."
file=${1:?usage: scripts/ptxinfo.sh FILE.hyb [NAME-FILTER]}
filter=${2:-}
wheel_version=12.9.86
ptxas=target/ptxas/nvidia/cuda_nvcc/bin/ptxas
if [ ! -x "$ptxas" ]; then
  mkdir -p target/ptxas
  python3 -m pip download --quiet --no-deps "nvidia-cuda-nvcc-cu12==$wheel_version" -d target/ptxas
  python3 -m zipfile -e target/ptxas/nvidia_cuda_nvcc_cu12-"$wheel_version"-*.whl target/ptxas
  chmod +x "$ptxas"
fi
hybc=${HYBC:-target/release/hybc}
[ -x "$hybc" ] || cargo build --release -p hybc
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
"$hybc" compile "$file" --emit ptx --target cuda > "$dir/all.ptx"
# One file per kernel module: each starts at its `// kN_name (form)` line.
awk -v d="$dir" '/^\/\/ k[0-9]+_.* form\)$/{out=d"/"$2".ptx"} out{print > out}' "$dir/all.ptx"
printf '%-28s %9s %12s %14s %13s %11s\n' kernel registers "stack bytes" "spill stores" "spill loads" "smem bytes"
for module in "$dir"/k*"$filter"*.ptx; do
  name=$(basename "$module" .ptx)
  info=$("$ptxas" -v --gpu-name sm_90a "$module" -o /dev/null 2>&1)
  # The kernel's own lines (a non-inlined `_body` function reports apart: its spills
  # are added, its registers are the kernel's).
  registers=$(grep -o "Used [0-9]* registers" <<< "$info" | awk '{print $2}' | sort -n | tail -1)
  stack=$(grep -o "[0-9]* bytes stack frame" <<< "$info" | awk '{s+=$1} END {print s+0}')
  stores=$(grep -o "[0-9]* bytes spill stores" <<< "$info" | awk '{s+=$1} END {print s+0}')
  loads=$(grep -o "[0-9]* bytes spill loads" <<< "$info" | awk '{s+=$1} END {print s+0}')
  # Shared memory: the chunked form's tiles (`HYB_GPU_FORM=chunked`).
  smem=$( (grep -o "[0-9]* bytes smem" <<< "$info" || true) | awk '{print $1}' | sort -n | tail -1)
  printf '%-28s %9s %12s %14s %13s %11s\n' "$name" "${registers:-?}" "$stack" "$stores" "$loads" "${smem:-0}"
done
