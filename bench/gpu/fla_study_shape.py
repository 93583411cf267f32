"""fla's chunked kernels at the GPU study's shape (examples/study/gpu.hyb: batch 64,
256 tokens, two heads a layer at d 128), forward and forward + backward, median ms.

The first measurement docs/CHUNKED_SCAN.md asks for: if fla's chunked kernels at this
shape are not well under our reverse scan's ~1.2 ms a call, the study's step is bound by
launches and small shapes, and a chunked form pays at the large models only. Each
mixer at the key and value widths its preset takes at d 128 (fla's defaults: GLA
expand_k 0.5, RetNet expand_v 2), in float32 (what the study trains in) and bfloat16.
Needs fla on PYTHONPATH (bench/gpu/make_fla_bundle.sh). Writes $OUT/fla_study_shape.json.
"""
import json, math, os
import torch
import torch.nn.functional as F
from triton.testing import do_bench

B, T, H = int(os.environ.get("B", 64)), int(os.environ.get("T", 256)), int(os.environ.get("H", 2))
# (key width, value width) a head, from each preset at d 128 with two heads.
WIDTHS = {"gated_deltanet": (64, 64), "deltanet": (64, 64), "gla": (32, 64), "retnet": (64, 128)}
torch.manual_seed(0)
results = {}


def median_ms(fn):
    return do_bench(fn, warmup=25, rep=200, return_mode="median")


def leaf(*shape, dtype):
    return torch.randn(*shape, device="cuda").to(dtype).requires_grad_(True)


def kernel(name, dtype):
    dk, dv = WIDTHS[name]
    q, k, v = leaf(B, T, H, dk, dtype=dtype), leaf(B, T, H, dk, dtype=dtype), leaf(B, T, H, dv, dtype=dtype)
    unit = lambda x: F.normalize(x.detach().float(), dim=-1).to(dtype).requires_grad_(True)
    scale = dk ** -0.5
    if name == "gated_deltanet":
        from fla.ops.gated_delta_rule import chunk_gated_delta_rule
        beta = torch.rand(B, T, H, device="cuda").to(dtype).requires_grad_(True)
        g = F.logsigmoid(torch.randn(B, T, H, device="cuda")).requires_grad_(True)
        qn, kn = unit(q), unit(k)
        return lambda: chunk_gated_delta_rule(qn, kn, v, g, beta, scale=scale)[0], dv
    if name == "deltanet":
        from fla.ops.delta_rule import chunk_delta_rule
        beta = torch.rand(B, T, H, device="cuda").to(dtype).requires_grad_(True)
        qn, kn = unit(q), unit(k)
        return lambda: chunk_delta_rule(qn, kn, v, beta, scale=scale)[0], dv
    if name == "gla":
        from fla.ops.gla import chunk_gla
        gk = (F.logsigmoid(torch.randn(B, T, H, dk, device="cuda")) / 16).requires_grad_(True)
        return lambda: chunk_gla(q, k, v, gk, scale=scale)[0], dv
    from fla.ops.simple_gla import chunk_simple_gla
    gs = torch.full((B, T, H), math.log(1 - 2 ** -5), device="cuda")
    return lambda: chunk_simple_gla(q, k, v, gs, scale=scale)[0], dv


for dtype in (torch.float32, torch.bfloat16):
    for name in os.environ.get("ONLY", ",".join(WIDTHS)).split(","):
        label = f"{name} {str(dtype).removeprefix('torch.')}"
        try:
            forward, dv = kernel(name, dtype)
            grad = torch.randn(B, T, H, dv, device="cuda", dtype=dtype)
            fwd = median_ms(forward)
            both = median_ms(lambda: forward().backward(grad))
            results[label] = {"fwd_ms": fwd, "fwdbwd_ms": both}
            print(f"{label:24s} fwd {fwd:7.3f} ms   fwd+bwd {both:7.3f} ms", flush=True)
        except Exception as e:  # a kernel fla refuses for a dtype or width
            print(f"{label:24s} FAILED: {str(e)[:200]}", flush=True)

print(f"shape: B {B}, T {T}, H {H}; {torch.cuda.get_device_name()}")
with open(os.path.join(os.environ.get("OUT", "."), "fla_study_shape.json"), "w") as out:
    json.dump({"B": B, "T": T, "H": H, "device": torch.cuda.get_device_name(), "results": results}, out, indent=1)
