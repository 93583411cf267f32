"""The GEMMs of a `hybc train --profile` log beside PyTorch's at the same shapes.

Reads the profile's `gemm M×K×N ab align` lines (a, b: `n` row-major, `t` transposed),
times `torch.matmul` in f32 (TF32 off, as hyb's cuBLASLt plans compute in f32) at each
shape and layout two ways: per call with a synchronise after it, as `--profile` times
ours (host side included), and the GPU time alone (CUDA events over 200 calls).
    run: python3 bench/gpu/gemm_shapes.py PROFILE_LOG
"""
import re
import sys
import time

import torch

torch.backends.cuda.matmul.allow_tf32 = False
LINE = re.compile(r"^\s*([\d.]+) ms\s+[\d.]+%\s+(\d+)× gemm (\d+)×(\d+)×(\d+) ([nt])([nt]) (\d+) B")


def operand(rows, cols, layout):
    x = torch.randn(rows, cols, device="cuda") if layout == "n" else torch.randn(cols, rows, device="cuda").t()
    return x


def timed(a, b, calls=200):
    for _ in range(10):
        torch.matmul(a, b)
    torch.cuda.synchronize()
    started = time.perf_counter()
    for _ in range(calls):
        torch.matmul(a, b)
        torch.cuda.synchronize()
    synced = (time.perf_counter() - started) / calls
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    start.record()
    for _ in range(calls):
        torch.matmul(a, b)
    end.record()
    torch.cuda.synchronize()
    return synced, start.elapsed_time(end) / 1e3 / calls


rows = []
for line in open(sys.argv[1]):
    found = LINE.match(line)
    if found:
        ms, count, m, k, n, la, lb, align = found.groups()
        rows.append((float(ms) / int(count) * 1e-3, int(count), int(m), int(k), int(n), la, lb, int(align)))
print(f"{'shape (m×k×n ab align)':32} {'calls':>5} {'hyb µs':>8} {'torch µs':>9} {'torch GPU µs':>12} {'hyb/torch':>9}")
total_hyb = total_torch = 0.0
for per_call, count, m, k, n, la, lb, align in rows:
    synced, gpu = timed(operand(m, k, la), operand(k, n, lb))
    total_hyb += per_call * count
    total_torch += synced * count
    shape = f"{m}×{k}×{n} {la}{lb} {align} B"
    print(f"{shape:32} {count:>5} {per_call * 1e6:>8.1f} {synced * 1e6:>9.1f} {gpu * 1e6:>12.1f} {per_call / synced:>9.2f}")
print(f"all GEMMs: hyb {total_hyb * 1e3:.1f} ms, torch (synced per call) {total_torch * 1e3:.1f} ms")
