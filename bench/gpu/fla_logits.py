"""hyb's logits against fla's own, for models fla builds and saves (issue 12's check).

Usage (on the GPU machine, fla and hyb on PYTHONPATH; fla_logits.sh sets it up):
    python3 fla_logits.py CONFIG.json [T ...]

For a config of tests/fla/configs/: fla builds the model, its weights are drawn afresh
(linear weights ~ N(0, 1/fan_in), embeddings ~ N(0, 1), norm scales 1 + N(0, 0.1²), the
rest as fla initialises them — fla's own 0.02 initialisation leaves logits nearly
independent of the token mixers), and `save_pretrained` writes it in bf16 (sharded into
~64 KB files when the config's name ends in `_r2`, so the sharded reader is checked too).
Then, on the same random tokens (batch 2, each T; fla's layers take the recurrent path
at T ≤ 64 and the chunked one above):
  fla f32   — fla's model in f32 holding the saved (bf16-rounded) weights, on the GPU;
  fla bf16  — the same model in bf16, as fla runs published checkpoints;
  hyb cpu   — hyb.load(DIR) on the CPU (f32);
  hyb cuda  — hyb.load(DIR, target="cuda") (f32; evaluation programs store f32);
  hyb cuda bf16 train — the forward of a training program storing bf16 activations
              (`precision = bf16`), as mixed-precision fine-tuning from it runs.
Each comparison prints the largest |difference| over the largest |reference logit|, the
mean |difference| over the mean |reference logit| and the share of positions whose
greedy next tokens agree (the reference: fla in f32, or in bf16 where fla refuses f32 —
its chunked DeltaNet), and appends a JSON line to $OUT/fla_logits.jsonl.
"""
import json, math, os, sys, tempfile, time

import numpy as np
import torch
import torch.nn.functional as F
from transformers import AutoConfig, AutoModelForCausalLM

import fla  # noqa: F401  (registers fla's model classes with transformers)
import fla.layers.attn as fattn
import hyb

# fla's attention calls flash-attn, which the GPU machine lacks: SDPA stands in, with
# grouped heads and a sliding window as flash-attn takes them ([B, T, H, D] layout).
if fattn.flash_attn_func is None:
    def _sdpa(q, k, v, causal=True, window_size=(-1, -1), **_):
        q, k, v = (x.transpose(1, 2) for x in (q, k, v))
        mask = None
        if window_size[0] >= 0:
            t = q.shape[2]
            i = torch.arange(t, device=q.device)
            mask = (i[None, :] <= i[:, None]) & (i[:, None] - i[None, :] <= window_size[0])
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, is_causal=causal and mask is None,
                                             enable_gqa=q.shape[1] != k.shape[1])
        return out.transpose(1, 2)
    fattn.flash_attn_func = _sdpa


def redraw(model, seed):
    """Weights that make every layer matter (see the module's doc)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("embeddings.weight"):
                p.copy_(torch.randn(p.shape, generator=g))
            elif p.dim() == 2:
                p.copy_(torch.randn(p.shape, generator=g) / math.sqrt(p.shape[1]))
            elif p.dim() == 3:  # short convolutions [C, 1, K]
                p.copy_(torch.randn(p.shape, generator=g) / math.sqrt(p.shape[-1]))
            elif "norm" in name and name.endswith("weight"):
                p.copy_(1 + 0.1 * torch.randn(p.shape, generator=g))


def compare(ours, ref):
    diff = np.abs(ours - ref)
    return {
        "max_rel": float(diff.max() / np.abs(ref).max()),
        "mean_rel": float(diff.mean() / np.abs(ref).mean()),
        "argmax_agree": float((ours.argmax(-1) == ref.argmax(-1)).mean()),
        "finite": bool(np.isfinite(ours).all()),
    }


def main():
    path, lengths = sys.argv[1], [int(t) for t in sys.argv[2:]] or [40, 100]
    name = os.path.splitext(os.path.basename(path))[0]
    out = os.environ.get("OUT", ".")
    config = json.load(open(path))
    config = AutoConfig.for_model(config.pop("model_type"), **config)
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(config)
    redraw(model, seed=1)
    directory = tempfile.mkdtemp(prefix=f"fla_{name}_")
    shard = "64KB" if name.endswith("_r2") else "10GB"
    model.to(torch.bfloat16).save_pretrained(directory, max_shard_size=shard)
    files = sorted(f for f in os.listdir(directory) if f.endswith(".safetensors"))
    reference = AutoModelForCausalLM.from_pretrained(directory).to("cuda", torch.float32).eval()
    half = AutoModelForCausalLM.from_pretrained(directory).to("cuda", torch.bfloat16).eval()
    for t in lengths:
        tokens = np.random.default_rng(t).integers(0, config.vocab_size, (2, t), dtype=np.int64)
        started = time.time()
        with torch.no_grad():
            x = torch.from_numpy(tokens).cuda()
            fla_bf16 = half(input_ids=x).logits.float().cpu().numpy()
            try:
                fla_f32, against = reference(input_ids=x).logits.float().cpu().numpy(), "fla_f32"
            except AssertionError as refused:  # fla's chunked DeltaNet takes bf16 alone
                print(f"fla in f32 refused ({refused}): comparing with fla in bf16", flush=True)
                fla_f32, against = fla_bf16, "fla_bf16"
        row = {"config": name, "T": t, "files": len(files), "fla_s": round(time.time() - started, 1),
               "against": against, "fla_bf16": compare(fla_bf16, fla_f32)}
        bf16 = ["data=mqar(seq_len: 32, pairs: 4)", "precision=bf16"]  # a train block storing bf16
        for label, target, training, sets in [("hyb_cpu", "cpu", False, []), ("hyb_cuda", "cuda", False, []),
                                              ("hyb_cuda_bf16_train", "cuda", True, bf16)]:
            try:
                trainer = hyb.load(directory, batch=2, seq_len=t, target=target, training=training, sets=sets)
                ours = trainer.logits(tokens.astype(np.int32))
                row[label] = compare(ours, fla_f32)
            except Exception as error:  # a failure is a result too: print it, go on
                row[label] = {"error": str(error).splitlines()[0][:300]}
        print(json.dumps(row), flush=True)
        with open(os.path.join(out, "fla_logits.jsonl"), "a") as f:
            f.write(json.dumps(row) + "\n")


if __name__ == "__main__":
    main()
