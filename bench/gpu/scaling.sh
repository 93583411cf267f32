#!/usr/bin/env bash
# Issue 14's measurement, for a machine with several GPUs (not yet lent): the 340M
# GatedDeltaNet 3:1 hybrid in mixed precision (bench/gpu/gdn_r3_text_bf16.hyb) trained
# with one global batch on 1, 2, 4 and 8 GPUs (`hybc train --gpus N`), then
#  - tokens/s at each count against one GPU (the median of steps 3–STEPS; scaling
#    efficiency = rate(N) / (N · rate(1)), the goal ≥ 90 % at 8), and
#  - the loss trajectory of each count against one GPU's, with two one-GPU runs giving
#    the floor (the kernels' atomic sums make runs differ from step 1): a count passes
#    when every step's |Δ loss| is within TOL nats (0.02: bf16 activations) or within
#    twice the two one-GPU runs' difference at that step.
# Expects .device/hybc.xz. Env: GPUS ("1 2 4 8"), BATCH (32: 4 rows a GPU at 8), STEPS
# (12), TOL (0.02). Logs, metrics and the comparison under $OUT.
#   run: OUT=$OUT bash bench/gpu/scaling.sh          (kind nvidia-h200-x8)
set -uo pipefail
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT" /tmp/s
GPUS=${GPUS:-1 2 4 8}; BATCH=${BATCH:-32}; STEPS=${STEPS:-12}; TOL=${TOL:-0.02}
xz -dc .device/hybc.xz > /tmp/hybc && chmod +x /tmp/hybc
lib=$(python3 -c "import nvidia.nccl, os; print(os.path.join(list(nvidia.nccl.__path__)[0], 'lib'))" 2>/dev/null)
[ -f "$lib/libnccl.so.2" ] || lib=$(find / -name 'libnccl.so.2' -printf '%h\n' 2>/dev/null | head -1)
mkdir -p /tmp/nccl && ln -sf "$lib/libnccl.so.2" /tmp/nccl/libnccl.so
export LD_LIBRARY_PATH=/tmp/nccl:$lib:${LD_LIBRARY_PATH:-} NCCL_NVLS_ENABLE=0
nvidia-smi --query-gpu=index,name,memory.total --format=csv | tee "$OUT/gpus.txt"
nvidia-smi topo -m >> "$OUT/gpus.txt" 2>&1
M=bench/gpu/gdn_r3_text_bf16.hyb
run() { local name=$1; shift; timeout 1200 /tmp/hybc train $M --target cuda --steps "$STEPS" --batch "$BATCH" \
          --out "/tmp/s/$name" "$@" > "$OUT/$name.log" 2>&1; echo "$name: exit $?" | tee -a "$OUT/runs.txt"; }
run one_a --gpus 1
run one_b --gpus 1
for n in $GPUS; do [ "$n" = 1 ] || run "gpus_$n" --gpus "$n"; done
(cd /tmp/s && tar cJf "$OUT/metrics.tar.xz" */metrics.jsonl)
python3 - "$TOL" $GPUS <<'PY' | tee "$OUT/scaling.txt"
import json, statistics, sys
tol, counts = float(sys.argv[1]), [int(n) for n in sys.argv[2:]]
def steps(name):
    try:
        return {l["step"]: l for l in map(json.loads, open(f"/tmp/s/{name}/metrics.jsonl")) if "train/loss" in l}
    except OSError:
        return {}
def rate(s):
    r = [s[k]["train/tokens_per_s"] for k in sorted(s) if k >= 3]
    return statistics.median(r) if r else float("nan")
one, again = steps("one_a"), steps("one_b")
base = rate(one)
floor = {k: abs(one[k]["train/loss"] - again[k]["train/loss"]) for k in one if k in again}
print(f"1 GPU: {base:.0f} tokens/s; two 1-GPU runs differ by at most {max(floor.values(), default=float('nan')):.2e}")
for n in counts:
    s = one if n == 1 else steps(f"gpus_{n}")
    if not s:
        print(f"{n} GPUs: no run"); continue
    d = {k: abs(s[k]["train/loss"] - one[k]["train/loss"]) for k in s if k in one}
    bad = [k for k in d if d[k] > max(tol, 2 * floor.get(k, 0.0))]
    print(f"{n} GPUs: {rate(s):.0f} tokens/s, {rate(s) / base:.2f}x, efficiency {rate(s) / (n * base):.1%}; "
          f"largest |Δ loss| {max(d.values(), default=float('nan')):.2e} over {len(d)} steps; "
          + ("trajectory within tolerance" if not bad else f"outside tolerance at steps {bad}"))
PY
