"""Loads a directory written by `hybc export --format fla` into fla's
AutoModelForCausalLM with strict name and shape matching, and checks that
`from_pretrained` gives the same weights.

    python tools/fla_oracle/load_checkpoint.py DIR

fla's attention layer refuses to be built without flash-attn (a GPU package); on a CPU
machine a stub module stands in for it: loading weights never calls it.
"""
import sys
import types

try:
    import flash_attn  # noqa: F401
except ImportError:
    import importlib.machinery

    stub = types.ModuleType("flash_attn")
    stub.__spec__ = importlib.machinery.ModuleSpec("flash_attn", None)
    stub.flash_attn_func = stub.flash_attn_varlen_func = lambda *a, **k: None
    sys.modules["flash_attn"] = stub

import torch
import fla  # noqa: F401  (registers fla's models with transformers)
from safetensors.torch import load_file
from transformers import AutoConfig, AutoModelForCausalLM

path = sys.argv[1]
model = AutoModelForCausalLM.from_config(AutoConfig.from_pretrained(path))
model.load_state_dict(load_file(f"{path}/model.safetensors"), strict=True)
count = sum(p.numel() for p in model.parameters())
print(f"strict load: {type(model).__name__}, {count} parameters")
again = AutoModelForCausalLM.from_pretrained(path)
for (name, a), (other, b) in zip(model.state_dict().items(), again.state_dict().items()):
    assert name == other and torch.equal(a, b), name
print("from_pretrained: identical weights")
