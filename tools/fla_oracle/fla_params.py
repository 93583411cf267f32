#!/usr/bin/env python3
"""Parameter-name/shape oracle taken from the real flash-linear-attention (fla) library.

For each fla ``config.json`` given, build the fla ``*ForCausalLM`` model on torch's meta
device (no memory, no GPU, no kernels run) and write ``OUT/<config stem>.json``:

    {"fla_version": ..., "torch_version": ..., "transformers_version": ...,
     "model_type": ..., "config": "<file name>", "tied": bool,
     "params_total": N, "params_non_embedding": N,
     "ignored_keys": [...],            # input keys fla's config class does not declare
     "params":  [["name", [shape...]], ...],   # model.named_parameters(), registration order
     "buffers": [["name", [shape...]], ...]}   # model.named_buffers() (e.g. rotary inv_freq)

``params_non_embedding`` = total - model.embeddings.weight - lm_head.weight (the latter only
when it is a separate, untied tensor; named_parameters() lists a tied weight once).

``--dump-defaults DIR`` writes ``DIR/<model_type>.json`` = ``Config().to_dict()`` of fla's
config class for each of the seven model types used by hyb.

Usage (see tests/fla/README.md):
    /work/venv-fla/bin/python tools/fla_oracle/fla_params.py --out tests/fla/params tests/fla/configs/*.json
    /work/venv-fla/bin/python tools/fla_oracle/fla_params.py --dump-defaults tests/fla/defaults

CPU-only notes: importing fla on a machine without a GPU prints "Triton is not supported on
current platform, roll back to CPU" and works. fla's softmax ``Attention`` layer refuses to be
constructed unless ``flash_attn`` is importable; flash-attn cannot be installed without CUDA, so
this script installs a stub ``flash_attn_func`` into ``fla.layers.attn`` before building (it is
never called: nothing runs a forward pass on the meta device).
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import warnings

warnings.filterwarnings("ignore")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

import torch  # noqa: E402
import transformers  # noqa: E402

import fla  # noqa: E402,F401  (registers the fla model types with transformers)
import fla.layers.attn as _fla_attn  # noqa: E402
from fla.models import (  # noqa: E402
    DeltaNetConfig, DeltaNetForCausalLM,
    GatedDeltaNetConfig, GatedDeltaNetForCausalLM,
    GLAConfig, GLAForCausalLM,
    HGRN2Config, HGRN2ForCausalLM,
    HGRNConfig, HGRNForCausalLM,
    RetNetConfig, RetNetForCausalLM,
    TransformerConfig, TransformerForCausalLM,
)

MODELS = {
    "hgrn": (HGRNConfig, HGRNForCausalLM),
    "hgrn2": (HGRN2Config, HGRN2ForCausalLM),
    "retnet": (RetNetConfig, RetNetForCausalLM),
    "gla": (GLAConfig, GLAForCausalLM),
    "delta_net": (DeltaNetConfig, DeltaNetForCausalLM),
    "gated_deltanet": (GatedDeltaNetConfig, GatedDeltaNetForCausalLM),
    "transformer": (TransformerConfig, TransformerForCausalLM),
}


def _flash_attn_stub(*args, **kwargs):  # pragma: no cover - never called on meta
    raise RuntimeError("flash_attn stub: the oracle never runs a forward pass")


if getattr(_fla_attn, "flash_attn_func", None) is None:
    _fla_attn.flash_attn_func = _flash_attn_stub


def versions() -> dict:
    return {
        "fla_version": getattr(fla, "__version__", "unknown"),
        "torch_version": torch.__version__,
        "transformers_version": transformers.__version__,
    }


def build(cfg_dict: dict):
    cfg_dict = dict(cfg_dict)
    model_type = cfg_dict.pop("model_type")
    if model_type not in MODELS:
        raise SystemExit(f"unsupported model_type {model_type!r}; expected one of {sorted(MODELS)}")
    config_cls, model_cls = MODELS[model_type]
    declared = set(config_cls().to_dict())
    ignored = sorted(k for k in cfg_dict if k not in declared)
    config = config_cls(**cfg_dict)
    with torch.device("meta"):
        model = model_cls(config)
    return model_type, config, model, ignored


def describe(cfg_dict: dict, name: str) -> dict:
    model_type, config, model, ignored = build(cfg_dict)
    params = [(n, list(p.shape)) for n, p in model.named_parameters()]
    buffers = [(n, list(b.shape)) for n, b in model.named_buffers()]
    numel = {n: p.numel() for n, p in model.named_parameters()}
    total = sum(numel.values())
    emb = model.model.embeddings.weight
    tied = model.lm_head.weight is emb
    non_emb = total - emb.numel()
    if not tied and "lm_head.weight" in numel:
        non_emb -= numel["lm_head.weight"]
    out = versions()
    out.update({
        "model_type": model_type,
        "config": name,
        "tied": tied,
        "params_total": total,
        "params_non_embedding": non_emb,
        "ignored_keys": ignored,
        "params": params,
        "buffers": buffers,
    })
    return out


def dump_json(obj: dict, path: str) -> None:
    """One parameter per line; everything else on one line per key."""
    lines = ["{"]
    keys = list(obj)
    for i, k in enumerate(keys):
        comma = "," if i + 1 < len(keys) else ""
        v = obj[k]
        if k in ("params", "buffers"):
            if not v:
                lines.append(f'  {json.dumps(k)}: []{comma}')
                continue
            lines.append(f'  {json.dumps(k)}: [')
            for j, item in enumerate(v):
                c2 = "," if j + 1 < len(v) else ""
                lines.append(f"    {json.dumps(item)}{c2}")
            lines.append(f"  ]{comma}")
        else:
            lines.append(f"  {json.dumps(k)}: {json.dumps(v)}{comma}")
    lines.append("}")
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", help="directory for <config stem>.json parameter listings")
    ap.add_argument("--dump-defaults", metavar="DIR",
                    help="write Config().to_dict() for each supported model type to DIR/<model_type>.json")
    ap.add_argument("configs", nargs="*", help="fla config.json files")
    args = ap.parse_args(argv)
    if not args.dump_defaults and not args.configs:
        ap.error("nothing to do: give config files (with --out) and/or --dump-defaults DIR")
    if args.configs and not args.out:
        ap.error("--out DIR is required with config files")

    if args.dump_defaults:
        os.makedirs(args.dump_defaults, exist_ok=True)
        for mt, (config_cls, _) in MODELS.items():
            d = config_cls().to_dict()
            d.pop("transformers_version", None)  # the versions are recorded in tests/fla/README.md
            with open(os.path.join(args.dump_defaults, f"{mt}.json"), "w") as f:
                json.dump(d, f, indent=1, sort_keys=True)
                f.write("\n")
        print(f"wrote {len(MODELS)} default configs to {args.dump_defaults}")

    if args.configs:
        os.makedirs(args.out, exist_ok=True)
        for path in args.configs:
            with open(path) as f:
                cfg = json.load(f)
            stem = os.path.splitext(os.path.basename(path))[0]
            res = describe(cfg, os.path.basename(path))
            dump_json(res, os.path.join(args.out, f"{stem}.json"))
            extra = f"  IGNORED KEYS: {res['ignored_keys']}" if res["ignored_keys"] else ""
            print(f"{stem:24s} {res['model_type']:15s} total={res['params_total']:>12,d} "
                  f"non_emb={res['params_non_embedding']:>12,d} n={len(res['params'])}{extra}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
