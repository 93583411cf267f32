#!/usr/bin/env bash
# Data parallelism on the lent single-GPU machine (issue 14): NCCL found and linked where
# cudarc looks for it, the NCCL collective's own test, then `hybc train --gpus 1` (one
# rank through NCCL, the step in bucket ranges) against the plain run — loss trajectory
# and tokens/s — a resume across GPU counts, `--gpus 2` on one GPU, and two ranks made
# by hand on the one GPU (NCCL refuses a GPU shared by two ranks of a communicator: the
# run must stop with a clear error, not hang). Expects .device/hybc.xz and
# .device/dist.xz (the hyb-dist integration tests, release). Logs under $OUT.
#   run: OUT=$OUT bash bench/gpu/ranks.sh
set -uo pipefail
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT" /tmp/r
xz -dc .device/hybc.xz > /tmp/hybc && chmod +x /tmp/hybc
xz -dc .device/dist.xz > /tmp/dist_tests && chmod +x /tmp/dist_tests
# cudarc loads libnccl.so; the nvidia-nccl wheel ships libnccl.so.2 alone.
lib=$(python3 -c "import nvidia.nccl, os; print(os.path.join(list(nvidia.nccl.__path__)[0], 'lib'))" 2>/dev/null)
[ -f "$lib/libnccl.so.2" ] || lib=$(find / -name 'libnccl.so.2' -printf '%h\n' 2>/dev/null | head -1)
mkdir -p /tmp/nccl && ln -sf "$lib/libnccl.so.2" /tmp/nccl/libnccl.so
export LD_LIBRARY_PATH=/tmp/nccl:$lib:${LD_LIBRARY_PATH:-}
echo "NCCL from $lib: $(ls "$lib")" | tee "$OUT/nccl.txt"
nvidia-smi --query-gpu=name,memory.used,memory.total --format=csv | tee -a "$OUT/nccl.txt"

/tmp/dist_tests --nocapture nccl > "$OUT/dist_nccl.log" 2>&1; echo "dist nccl test: exit $?" | tee -a "$OUT/nccl.txt"

M=examples/tiny/mqar_quick.hyb
run() { local name=$1; shift; timeout 300 /tmp/hybc train "$@" > "$OUT/$name.log" 2>&1; echo "$name: exit $?" | tee -a "$OUT/runs.txt"; }
run plain  $M --target cuda --steps 200 --out /tmp/r/plain
run one    $M --target cuda --steps 200 --gpus 1 --out /tmp/r/one
# The same again: GPU kernels add with atomics, so two runs differ by rounding (the floor).
run plain2 $M --target cuda --steps 200 --out /tmp/r/plain2
# Many small buckets: the step in many ranges, a sum after each.
HYB_BUCKET_MIB=0.02 run small  $M --target cuda --steps 200 --gpus 1 --out /tmp/r/small
# The same run on one rank to step 200, resumed from its step-100 checkpoint without NCCL.
run mix_a  $M --target cuda --steps 200 --gpus 1 --out /tmp/r/mix --checkpoint-every 100
rm -rf /tmp/r/mix/checkpoints/step_000200
run mix_b  $M --target cuda --steps 200 --out /tmp/r/mix --resume
run two    $M --target cuda --steps 20 --gpus 2 --out /tmp/r/two

# Throughput at the GPU study's size (d 128, 8 layers, 64 × 256 tokens a step).
sed -E -e 's/steps( *)= [0-9_]+/steps\1= 80/' -e 's/warmup: [0-9]+/warmup: 4/' \
    -e 's/eval_every( *)= .*/eval_every\1= none/' -e 's/log_every( *)= .*/log_every\1= 1/' \
    examples/study/gpu.hyb > /tmp/r/study.hyb
run study_plain /tmp/r/study.hyb --out /tmp/r/study_plain
run study_one   /tmp/r/study.hyb --gpus 1 --out /tmp/r/study_one
run study_plain2 /tmp/r/study.hyb --out /tmp/r/study_plain2

# The 340M GDN 3:1 hybrid: 63 buckets of 25 MiB, 4 steps each way.
run big_plain bench/gpu/gdn_r3_text.hyb --steps 4 --out /tmp/r/big_plain
run big_one   bench/gpu/gdn_r3_text.hyb --steps 4 --gpus 1 --out /tmp/r/big_one

# Two ranks by hand on the one GPU.
port=$((29500 + RANDOM % 1000))
for rank in 0 1; do
  (RANK=$rank WORLD_SIZE=2 LOCAL_RANK=0 LOCAL_WORLD_SIZE=1 MASTER_ADDR=127.0.0.1 MASTER_PORT=$port \
   timeout 200 /tmp/hybc train $M --target cuda --steps 20 --out /tmp/r/shared > "$OUT/shared_$rank.log" 2>&1
   echo "shared rank $rank: exit $?" | tee -a "$OUT/runs.txt") &
done
wait

python3 - "$OUT" <<'PY' | tee "$OUT/compare.txt"
import json, statistics, sys
def steps(d):
    try:
        lines = [json.loads(l) for l in open(f"/tmp/r/{d}/metrics.jsonl")]
    except OSError:
        return {}
    return {l["step"]: l for l in lines if "train/loss" in l}
plain = steps("plain")
for name, run in [("plain again", "plain2"), ("--gpus 1", "one"), ("--gpus 1, buckets of 0.02 MiB", "small"),
                  ("--gpus 1 to step 100, then resumed without NCCL", "mix")]:
    other = steps(run)
    common = sorted(set(plain) & set(other))
    if not common:
        print(name, "no steps to compare"); continue
    d = {s: abs(plain[s]["train/loss"] - other[s]["train/loss"]) for s in common}
    first = next((s for s in common if d[s] != 0), None)
    early = max(d[s] for s in common if s <= 20)
    print(f"{name} vs plain: first differing step {first}, largest |difference| to step 20 {early:.2e}, "
          f"over {len(common)} steps {max(d.values()):.2e}; final loss {other[common[-1]]['train/loss']:.4f} "
          f"vs {plain[common[-1]]['train/loss']:.4f}")
for name in ["plain", "one", "plain2", "small", "study_plain", "study_one", "study_plain2", "big_plain", "big_one"]:
    s = steps(name)
    rates = [s[k]["train/tokens_per_s"] for k in sorted(s)][5 if len(s) > 20 else 1:]
    if rates:
        q = statistics.quantiles(rates, n=4)
        print(f"{name}: tokens/s median {statistics.median(rates):.0f} (quartiles {q[0]:.0f}-{q[2]:.0f}, {len(rates)} steps)")
PY
(cd /tmp/r && tar cJf "$OUT/metrics.tar.xz" */metrics.jsonl)
grep -h "buckets\|NCCL\|in use at most\|final loss" "$OUT/small.log" "$OUT/big_plain.log" "$OUT/big_one.log"
for f in two shared_0 shared_1; do echo "== $f"; tail -4 "$OUT/$f.log"; done
