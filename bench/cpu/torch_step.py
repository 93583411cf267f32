#!/usr/bin/env python3
"""PyTorch-eager CPU baseline: one training step of examples/tiny/mqar_gdn_3to1.hyb.

This file owns a self-contained, hand-written PyTorch model of the tiny 3:1 Gated DeltaNet
hybrid (vocab 512, d_model 128, layers = gdn x 3 then softmax attention), and a benchmark of
one full training step on it: forward, next-token cross-entropy, backward, gradient clipping
and AdamW. The figure it reports, tokens/s = batch * seq_len / median step time, is the
yardstick to hold our compiled runtime against on the same CPU and thread count.

Parameter names and shapes follow flash-linear-attention (fla), as listed in
tests/fla/NOTES.md, so `model.named_parameters()` gives e.g.
`model.layers.0.attn.q_conv1d.weight [128, 1, 4]` and `lm_head.weight [512, 128]`.

The Gated DeltaNet recurrence is implemented twice (`--gdn recurrent|chunked`):

* recurrent: a plain Python loop over the T tokens, batched over batch and heads;
* chunked:   the WY / UT-transform chunk form (chunk size 64), in pure PyTorch, in the
             spirit of fla's "naive chunk" reference code.

Both must agree: the script checks that at startup on a tiny double-precision input (the
GDN kernel alone, forward and gradients, and the whole model's loss and parameter
gradients) and stops if any difference exceeds 1e-6. `--check` runs only that check.

Usage (see bench/cpu/README.md):
    /work/venv-torch/bin/python bench/cpu/torch_step.py --threads 2 --steps 10
"""

import argparse
import json
import math
import statistics
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

# ----------------------------------------------------------------------------------------
# Model configuration: examples/tiny/mqar_gdn_3to1.hyb
# ----------------------------------------------------------------------------------------

VOCAB = 512
D_MODEL = 128
MLP_WIDTH = 512  # fla's default for d=128: 256 * ceil(int(128 * 4 * 2/3) / 256)
LAYERS = ("gdn", "gdn", "gdn", "attn")
NORM_EPS = 1e-6
INIT_STD = 0.02

GDN_HEADS = 2
GDN_HEAD_K = 64
GDN_HEAD_V = 64  # head_dim * expand_v (1)
CONV_SIZE = 4
CHUNK_SIZE = 64

ATTN_HEADS = 4
ATTN_HEAD_DIM = D_MODEL // ATTN_HEADS  # 32
ROPE_BASE = 10000.0

# AdamW, as the .hyb's train block (and the runtime's defaults for betas/eps) say.
LR = 3e-3
BETAS = (0.9, 0.95)
ADAM_EPS = 1e-8
WEIGHT_DECAY = 0.1
CLIP = 1.0

CHECK_TOL = 1e-6


# ----------------------------------------------------------------------------------------
# Gated DeltaNet recurrence, two ways. Shapes: q, k [B, H, T, dk]; v [B, H, T, dv];
# g (log-decay, <= 0) and beta [B, H, T]. Returns o [B, H, T, dv] and the final state
# S [B, H, dk, dv]. Per token:  S' = exp(g_t) S;  u = beta_t (v_t - S'^T k_t);
# S = S' + k_t u^T;  o_t = scale * S^T q_t.
# ----------------------------------------------------------------------------------------


def gdn_recurrent(q, k, v, g, beta, scale):
    """The delta rule as written: one step per token, batched over batch and heads."""
    b, h, t_len, dk = q.shape
    dv = v.shape[-1]
    q = q * scale
    alpha = g.exp()
    state = q.new_zeros(b, h, dk, dv)
    outputs = []
    for t in range(t_len):
        k_t = k[:, :, t].unsqueeze(-2)  # [B, H, 1, dk]
        state = state * alpha[:, :, t, None, None]  # S' = exp(g_t) S
        read = k_t @ state  # (S'^T k_t)^T       [B, H, 1, dv]
        u = beta[:, :, t, None, None] * (v[:, :, t].unsqueeze(-2) - read)
        state = state + k_t.transpose(-1, -2) @ u  # S = S' + k_t u^T
        outputs.append(q[:, :, t].unsqueeze(-2) @ state)  # (S^T q_t)^T  [B, H, 1, dv]
    return torch.cat(outputs, dim=2), state


def gdn_chunked(q, k, v, g, beta, scale, chunk_size=CHUNK_SIZE):
    """The same recurrence in chunk form (WY representation / UT transform).

    Within a chunk with start state S0 and inclusive cumulative log-decay G_i, unrolling
    the recurrence gives
        S_i = e^{G_i} S0 + sum_{j<=i} e^{G_i - G_j} k_j u_j^T,
        u_i = beta_i v_i - beta_i e^{G_i} S0^T k_i - sum_{j<i} beta_i e^{G_i-G_j} (k_i.k_j) u_j,
    i.e. (I + A) U = diag(beta) V - diag(beta e^G) K S0 with A strictly lower triangular,
    A_ij = beta_i e^{G_i-G_j} k_i.k_j. One unit-lower-triangular solve per chunk (done for
    all chunks at once, it does not depend on S0) gives U = U_v - W S0. Then
        o_i = e^{G_i} q_i^T S0 + sum_{j<=i} e^{G_i-G_j} (q_i.k_j) u_j,
        S_C = e^{G_C} S0 + sum_j e^{G_C-G_j} k_j u_j^T,
    and only the short loop over chunks (T / 64 steps) is sequential. All exponents are of
    differences G_i - G_j with j <= i, so they are <= 0 and nothing overflows.
    (fla's naive reference inverts (I + A) by forward substitution in a Python loop; we use
    torch.linalg.solve_triangular, which is exact and differentiable.)
    """
    b, h, t_len, dk = q.shape
    dv = v.shape[-1]
    c = chunk_size
    pad = (-t_len) % c
    if pad:
        # Padding tokens have k = 0, beta = 0 and g = 0: they leave the state untouched.
        q, k, v = (F.pad(x, (0, 0, 0, pad)) for x in (q, k, v))
        g, beta = (F.pad(x, (0, pad)) for x in (g, beta))
    n = (t_len + pad) // c
    q = (q * scale).reshape(b, h, n, c, dk)
    k = k.reshape(b, h, n, c, dk)
    v = v.reshape(b, h, n, c, dv)
    beta = beta.reshape(b, h, n, c)
    G = g.reshape(b, h, n, c).cumsum(-1)  # inclusive cumulative log-decay within each chunk

    causal = torch.ones(c, c, dtype=torch.bool, device=q.device).tril()  # j <= i
    strict = causal.tril(-1)  # j < i
    # decay[i, j] = exp(G_i - G_j) for j <= i, else 0 (mask before exp: no inf * 0).
    decay = (G[..., :, None] - G[..., None, :]).masked_fill(~causal, float("-inf")).exp()

    # A = strictly lower part of diag(beta) (K K^T * decay); solve (I + A) X = rhs.
    a = (beta[..., :, None] * (k @ k.transpose(-1, -2)) * decay).masked_fill(~strict, 0.0)
    eye = torch.eye(c, dtype=q.dtype, device=q.device)
    rhs = torch.cat([beta[..., None] * v, (beta * G.exp())[..., None] * k], dim=-1)
    solved = torch.linalg.solve_triangular(a + eye, rhs, upper=False, unitriangular=True)
    u_v, w = solved.split([dv, dk], dim=-1)  # U = u_v - w @ S0

    qk = (q @ k.transpose(-1, -2)) * decay  # causal, diagonal included
    q_decayed = q * G.exp()[..., None]  # e^{G_i} q_i
    g_last = G[..., -1]  # [B, H, n]
    k_to_end = k * (g_last[..., None] - G).exp()[..., None]  # e^{G_C - G_j} k_j

    state = q.new_zeros(b, h, dk, dv)
    outputs = []
    for i in range(n):
        u = u_v[:, :, i] - w[:, :, i] @ state  # [B, H, C, dv]
        outputs.append(q_decayed[:, :, i] @ state + qk[:, :, i] @ u)
        state = state * g_last[:, :, i, None, None].exp() + k_to_end[:, :, i].transpose(-1, -2) @ u
    o = torch.stack(outputs, dim=2).reshape(b, h, n * c, dv)[:, :, :t_len]
    return o, state


GDN_IMPLS = {"recurrent": gdn_recurrent, "chunked": gdn_chunked}


# ----------------------------------------------------------------------------------------
# Model (fla names)
# ----------------------------------------------------------------------------------------


def rms_norm(x, weight, eps=NORM_EPS):
    """x * rsqrt(mean(x^2) + eps) * w over the last dimension."""
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps) * weight


class RMSNorm(nn.Module):
    def __init__(self, width):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(width))

    def forward(self, x):
        return rms_norm(x, self.weight)


def linear(d_in, d_out):
    return nn.Linear(d_in, d_out, bias=False)


class ShortConv(nn.Module):
    """Depthwise causal conv, weight [C, 1, W], no bias; the last tap sees the current token
    and history before t = 0 is zero (fla's ShortConvolution without its activation)."""

    def __init__(self, channels, size=CONV_SIZE):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(channels, 1, size))

    def forward(self, x):  # x [B, T, C]
        t_len = x.shape[1]
        y = F.conv1d(x.transpose(1, 2), self.weight, padding=self.weight.shape[-1] - 1, groups=x.shape[-1])
        return y[..., :t_len].transpose(1, 2)


class GatedDeltaNet(nn.Module):
    def __init__(self, gdn_impl):
        super().__init__()
        hk, hv = GDN_HEADS * GDN_HEAD_K, GDN_HEADS * GDN_HEAD_V
        self.gdn_impl = gdn_impl  # "recurrent" or "chunked"
        self.A_log = nn.Parameter(torch.empty(GDN_HEADS))
        self.dt_bias = nn.Parameter(torch.empty(GDN_HEADS))
        self.q_proj = linear(D_MODEL, hk)
        self.k_proj = linear(D_MODEL, hk)
        self.v_proj = linear(D_MODEL, hv)
        self.a_proj = linear(D_MODEL, GDN_HEADS)
        self.b_proj = linear(D_MODEL, GDN_HEADS)
        self.q_conv1d = ShortConv(hk)
        self.k_conv1d = ShortConv(hk)
        self.v_conv1d = ShortConv(hv)
        self.g_proj = linear(D_MODEL, hv)
        self.o_norm = RMSNorm(GDN_HEAD_V)  # one weight shared by the heads
        self.o_proj = linear(hv, D_MODEL)

    def forward(self, x):  # x [B, T, d]
        b, t_len, _ = x.shape
        h = GDN_HEADS

        def heads(y, dim):  # [B, T, H*dim] -> [B, H, T, dim]
            return y.view(b, t_len, h, dim).transpose(1, 2)

        q = F.silu(self.q_conv1d(self.q_proj(x)))
        k = F.silu(self.k_conv1d(self.k_proj(x)))
        v = F.silu(self.v_conv1d(self.v_proj(x)))
        q, k, v = heads(q, GDN_HEAD_K), heads(k, GDN_HEAD_K), heads(v, GDN_HEAD_V)
        # L2 norm per head: x / sqrt(sum x^2 + 1e-6).
        q = q * torch.rsqrt(q.pow(2).sum(-1, keepdim=True) + 1e-6)
        k = k * torch.rsqrt(k.pow(2).sum(-1, keepdim=True) + 1e-6)
        beta = torch.sigmoid(self.b_proj(x)).transpose(1, 2)  # [B, H, T]
        g = (-self.A_log.exp() * F.softplus(self.a_proj(x) + self.dt_bias)).transpose(1, 2)

        o, _ = GDN_IMPLS[self.gdn_impl](q, k, v, g, beta, GDN_HEAD_K**-0.5)
        o = self.o_norm(o.transpose(1, 2))  # [B, T, H, dv], per-head RMSNorm
        o = o * F.silu(self.g_proj(x)).view(b, t_len, h, GDN_HEAD_V)
        return self.o_proj(o.reshape(b, t_len, h * GDN_HEAD_V))


def rotate_half(x):
    x1, x2 = x.chunk(2, dim=-1)
    return torch.cat((-x2, x1), dim=-1)


class Attention(nn.Module):
    def __init__(self):
        super().__init__()
        self.q_proj = linear(D_MODEL, D_MODEL)
        self.k_proj = linear(D_MODEL, D_MODEL)
        self.v_proj = linear(D_MODEL, D_MODEL)
        self.o_proj = linear(D_MODEL, D_MODEL)
        self._rope_cache = {}

    def rope(self, t_len, dtype, device):
        """cos, sin [T, head_dim] for rotate-half (GPT-NeoX) RoPE, positions 0..T-1."""
        key = (t_len, dtype, device)
        if key not in self._rope_cache:
            half = torch.arange(0, ATTN_HEAD_DIM, 2, dtype=torch.float64) / ATTN_HEAD_DIM
            inv_freq = 1.0 / (ROPE_BASE**half)
            freqs = torch.arange(t_len, dtype=torch.float64)[:, None] * inv_freq[None]
            emb = torch.cat((freqs, freqs), dim=-1)
            self._rope_cache[key] = (emb.cos().to(device, dtype), emb.sin().to(device, dtype))
        return self._rope_cache[key]

    def forward(self, x):
        b, t_len, _ = x.shape

        def heads(y):
            return y.view(b, t_len, ATTN_HEADS, ATTN_HEAD_DIM).transpose(1, 2)

        q, k, v = heads(self.q_proj(x)), heads(self.k_proj(x)), heads(self.v_proj(x))
        cos, sin = self.rope(t_len, x.dtype, x.device)
        q = q * cos + rotate_half(q) * sin
        k = k * cos + rotate_half(k) * sin
        o = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        return self.o_proj(o.transpose(1, 2).reshape(b, t_len, D_MODEL))


class MLP(nn.Module):
    """SwiGLU: down(silu(gate(x)) * up(x))."""

    def __init__(self):
        super().__init__()
        self.gate_proj = linear(D_MODEL, MLP_WIDTH)
        self.up_proj = linear(D_MODEL, MLP_WIDTH)
        self.down_proj = linear(MLP_WIDTH, D_MODEL)

    def forward(self, x):
        return self.down_proj(F.silu(self.gate_proj(x)) * self.up_proj(x))


class Block(nn.Module):
    def __init__(self, kind, gdn_impl):
        super().__init__()
        self.attn_norm = RMSNorm(D_MODEL)
        self.attn = GatedDeltaNet(gdn_impl) if kind == "gdn" else Attention()
        self.mlp_norm = RMSNorm(D_MODEL)
        self.mlp = MLP()

    def forward(self, h):
        h = h + self.attn(self.attn_norm(h))
        return h + self.mlp(self.mlp_norm(h))


class Backbone(nn.Module):
    def __init__(self, gdn_impl):
        super().__init__()
        self.embeddings = nn.Embedding(VOCAB, D_MODEL)
        self.layers = nn.ModuleList(Block(kind, gdn_impl) for kind in LAYERS)
        self.norm = RMSNorm(D_MODEL)

    def forward(self, tokens):
        h = self.embeddings(tokens)
        for layer in self.layers:
            h = layer(h)
        return self.norm(h)


class HybridForCausalLM(nn.Module):
    def __init__(self, gdn_impl):
        super().__init__()
        self.model = Backbone(gdn_impl)
        self.lm_head = linear(D_MODEL, VOCAB)  # untied

    def forward(self, tokens):
        """Mean next-token cross-entropy: position t predicts token t+1, over B*(T-1)."""
        logits = self.lm_head(self.model(tokens))
        return F.cross_entropy(logits[:, :-1].reshape(-1, VOCAB), tokens[:, 1:].reshape(-1))


def no_weight_decay(name):
    # fla marks A_log and dt_bias `_no_weight_decay`, and so does hyb's IR (params.rs).
    return name.endswith("A_log") or name.endswith("dt_bias")


@torch.no_grad()
def init_params(model, seed):
    """fla's scheme: normal(0, 0.02) weights, ones for norms, Mamba's A_log and dt_bias."""
    gen = torch.Generator().manual_seed(seed)
    for name, p in model.named_parameters():
        if name.endswith("A_log"):
            a = torch.rand(p.shape, generator=gen, dtype=torch.float64) * 16.0  # U(0, 16)
            p.copy_(a.clamp_min(1e-4).log())
        elif name.endswith("dt_bias"):
            lo, hi = math.log(1e-3), math.log(1e-1)
            dt = (torch.rand(p.shape, generator=gen, dtype=torch.float64) * (hi - lo) + lo).exp()
            dt = dt.clamp_min(1e-4)
            p.copy_(dt + torch.log(-torch.expm1(-dt)))  # inverse softplus
        elif "norm" in name:
            p.fill_(1.0)
        else:
            p.copy_(torch.randn(p.shape, generator=gen, dtype=torch.float64) * INIT_STD)


def build(gdn_impl, seed=0, dtype=torch.float32):
    model = HybridForCausalLM(gdn_impl)
    init_params(model, seed)
    return model.to(dtype)


def make_optimizer(model):
    decay = [p for n, p in model.named_parameters() if not no_weight_decay(n)]
    plain = [p for n, p in model.named_parameters() if no_weight_decay(n)]
    groups = [{"params": decay, "weight_decay": WEIGHT_DECAY}, {"params": plain, "weight_decay": 0.0}]
    return torch.optim.AdamW(groups, lr=LR, betas=BETAS, eps=ADAM_EPS)


def train_step(model, opt, tokens):
    opt.zero_grad(set_to_none=True)
    loss = model(tokens)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), CLIP)
    opt.step()
    return loss


# ----------------------------------------------------------------------------------------
# Check: chunked == recurrent, in double precision
# ----------------------------------------------------------------------------------------


def max_diff(a, b):
    """(absolute, relative) worst difference; relative is to the largest |entry| of a."""
    diff = (a - b).abs().max().item()
    return diff, diff / max(a.abs().max().item(), 1e-300)


def worst(pairs):
    """Element-wise max over a list of (absolute, relative) pairs."""
    return tuple(max(p[i] for p in pairs) for i in range(2))


def check_kernels(seed=0):
    """GDN alone, on shapes that exercise padding and several chunks: o, final state and the
    gradients of q, k, v, g and beta (for a random cotangent) must agree."""
    gen = torch.Generator().manual_seed(seed)
    diffs = []
    for b, h, t_len, dk, dv, chunk in [(2, 2, 150, 16, 24, 64), (1, 3, 70, 8, 8, 16), (2, 2, 128, 64, 64, 64)]:
        dt = torch.float64
        q = F.normalize(torch.randn(b, h, t_len, dk, generator=gen, dtype=dt), dim=-1)
        k = F.normalize(torch.randn(b, h, t_len, dk, generator=gen, dtype=dt), dim=-1)
        v = torch.randn(b, h, t_len, dv, generator=gen, dtype=dt)
        g = -F.softplus(torch.randn(b, h, t_len, generator=gen, dtype=dt)) * 2.0  # strong decays too
        beta = torch.sigmoid(torch.randn(b, h, t_len, generator=gen, dtype=dt))
        d_o = torch.randn(b, h, t_len, dv, generator=gen, dtype=dt)
        d_s = torch.randn(b, h, dk, dv, generator=gen, dtype=dt)
        results = []
        for impl in ("recurrent", "chunked"):
            ins = [x.clone().requires_grad_() for x in (q, k, v, g, beta)]
            kwargs = {"chunk_size": chunk} if impl == "chunked" else {}
            o, s = GDN_IMPLS[impl](*ins, dk**-0.5, **kwargs)
            ((o * d_o).sum() + (s * d_s).sum()).backward()
            results.append([o.detach(), s.detach()] + [x.grad for x in ins])
        diffs += [max_diff(x, y) for x, y in zip(*results)]
    return worst(diffs)


def check_model(seed=0):
    """The whole model in double, tiny batch: loss and every parameter gradient must agree."""
    tokens = torch.randint(0, VOCAB, (2, 80), generator=torch.Generator().manual_seed(seed))
    grads = {}
    losses = {}
    for impl in ("recurrent", "chunked"):
        model = build(impl, seed=seed, dtype=torch.float64)
        loss = model(tokens)
        loss.backward()
        losses[impl] = loss.detach()
        grads[impl] = {n: p.grad for n, p in model.named_parameters()}
    diffs = [max_diff(losses["recurrent"], losses["chunked"])]
    diffs += [max_diff(grad, grads["chunked"][name]) for name, grad in grads["recurrent"].items()]
    return worst(diffs)


def run_check():
    kernel = check_kernels()
    model = check_model()
    # The tolerance is absolute; the relative figure (to each tensor's largest entry) is
    # printed too, since the model's parameter gradients at init are small.
    ok = kernel[0] <= CHECK_TOL and model[0] <= CHECK_TOL
    status = "PASS" if ok else "FAIL"
    print(
        f"check (float64, chunked vs recurrent, tol {CHECK_TOL:g}): {status}  "
        f"GDN kernel fwd+grads max|diff| = {kernel[0]:.3e} (rel {kernel[1]:.1e}); "
        f"model loss+param grads max|diff| = {model[0]:.3e} (rel {model[1]:.1e})",
        flush=True,
    )
    return ok


# ----------------------------------------------------------------------------------------
# Benchmark
# ----------------------------------------------------------------------------------------


def bench(impl, args):
    torch.manual_seed(args.seed)
    model = build(impl, seed=args.seed)
    opt = make_optimizer(model)
    gen = torch.Generator().manual_seed(args.seed + 1)
    total = args.warmup + args.steps
    batches = [torch.randint(0, VOCAB, (args.batch, args.seq_len), generator=gen) for _ in range(total)]
    times = []
    for i, tokens in enumerate(batches):
        start = time.perf_counter()
        loss = train_step(model, opt, tokens)
        elapsed = time.perf_counter() - start
        if i >= args.warmup:
            times.append(elapsed)
    step = statistics.median(times)
    tokens_per_s = args.batch * args.seq_len / step
    print(
        f"{impl:>9}: median step {step * 1e3:9.1f} ms  (min {min(times) * 1e3:.1f}, max {max(times) * 1e3:.1f})"
        f"  {tokens_per_s:9.1f} tokens/s  final loss {loss.item():.4f}",
        flush=True,
    )
    return {
        "variant": impl,
        "tokens_per_s": round(tokens_per_s, 2),
        "step_ms": round(step * 1e3, 3),
        "min_step_ms": round(min(times) * 1e3, 3),
        "threads": args.threads,
        "batch": args.batch,
        "seq_len": args.seq_len,
        "steps": args.steps,
        "torch": torch.__version__,
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--gdn", choices=["recurrent", "chunked", "both"], default="both",
                        help="GDN implementation to time (default: both)")
    parser.add_argument("--threads", type=int, default=2, help="torch.set_num_threads (default 2)")
    parser.add_argument("--steps", type=int, default=10, help="timed steps (default 10)")
    parser.add_argument("--warmup", type=int, default=3, help="untimed warm-up steps (default 3)")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--seq-len", type=int, default=256)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--check", action="store_true",
                        help="only run the chunked-vs-recurrent check, then exit (0 on pass)")
    args = parser.parse_args()

    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, float32, "
          f"batch {args.batch} x seq_len {args.seq_len}, warm-up {args.warmup}, timed {args.steps}", flush=True)
    n_params = sum(p.numel() for p in build("chunked").parameters())
    print(f"model: examples/tiny/mqar_gdn_3to1.hyb, {n_params} parameters", flush=True)

    if not run_check():
        sys.exit(1)
    if args.check:
        return

    variants = ["recurrent", "chunked"] if args.gdn == "both" else [args.gdn]
    results = [bench(impl, args) for impl in variants]
    print(json.dumps(results))


if __name__ == "__main__":
    main()
