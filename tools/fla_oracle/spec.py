#!/usr/bin/env python3
"""Dependency-free re-statement of fla 0.6.0's parameter names and shapes.

This is the rule set written down in tests/fla/NOTES.md, as code, checked against the oracle
output of fla itself (tests/fla/params/*.json). It needs only the Python standard library, so
it is a readable reference for hyb's Rust name/shape generation.

    python3 tools/fla_oracle/spec.py --check tests/fla      # exit 1 on any mismatch

Missing config keys are filled from tests/fla/defaults/<model_type>.json (fla's own defaults).
"""
import argparse
import glob
import json
import os
import sys


def mlp_width(d, hidden_ratio, intermediate_size):
    if intermediate_size is not None:          # intermediate_size wins over hidden_ratio
        return intermediate_size
    if hidden_ratio is None:
        hidden_ratio = 4
    i = int(d * hidden_ratio * 2 / 3)
    return 256 * ((i + 255) // 256)


def attention(c, d, spec, qk_norm=False):
    """fla.layers.attn.Attention (transformer layers and hybrid `attn` layers)."""
    H = spec["num_heads"]
    Hkv = spec.get("num_kv_heads") or H
    hd = d // H
    kv = Hkv * hd
    bias = spec.get("qkv_bias", False)
    p = [("q_proj.weight", [d, d])] + ([("q_proj.bias", [d])] if bias else [])
    p += [("k_proj.weight", [kv, d])] + ([("k_proj.bias", [kv])] if bias else [])
    p += [("v_proj.weight", [kv, d])] + ([("v_proj.bias", [kv])] if bias else [])
    p += [("o_proj.weight", [d, d])]
    if qk_norm:
        p += [("q_norm.weight", [hd]), ("k_norm.weight", [hd])]
    return p, [("rotary.inv_freq", [(hd + 1) // 2])]


def out_norm(c, dv, gated_name="g_norm_swish_gate"):
    """GLA / RetNet output norm: fused gated norm only if swish & fuse_norm & output gate."""
    fused = c["hidden_act"] == "swish" and c["fuse_norm"] and c["use_output_gate"]
    if not c.get("elementwise_affine", True):
        return []
    return [((gated_name if fused else "g_norm") + ".weight", [dv])]


def mixer(mt, c, d):
    """Native mixer of one layer: (params, buffers), names relative to `attn.`."""
    W = c.get("conv_size", 4)
    aff = c.get("elementwise_affine", True)
    if mt == "hgrn":
        D = int(d * c["expand_ratio"])
        p = [("i_proj.weight", [D, d]), ("f_proj.weight", [D, d]), ("g_proj.weight", [D, d])]
        if c["use_short_conv"]:
            p += [("f_conv1d.weight", [D, 1, W]), ("i_conv1d.weight", [D, 1, W])]
        p += [("g_norm.weight", [D])] if aff else []
        p += [("o_proj.weight", [d, D])]
        return p, []
    if mt == "hgrn2":
        e, H = c["expand_ratio"], c.get("num_heads")
        if e is not None:
            H = d // e                               # expand_ratio wins over num_heads
        else:
            e = d // H
        F = H * e
        p = [("q_proj.weight", [F, d]), ("f_proj.weight", [F, d]), ("i_proj.weight", [d, d])]
        if c["use_short_conv"]:
            p += [("q_conv1d.weight", [F, 1, W]), ("f_conv1d.weight", [F, 1, W]), ("i_conv1d.weight", [d, 1, W])]
        p += [("g_norm.weight", [d])] if aff else []
        p += [("o_proj.weight", [d, d])]
        return p, []
    if mt in ("retnet", "gla"):
        H = c["num_heads"]
        g = H // (c.get("num_kv_heads") or H)
        Dk, Dv = round(d * c["expand_k"]), round(d * c["expand_v"])
        p = [("q_proj.weight", [Dk, d]), ("k_proj.weight", [Dk // g, d]), ("v_proj.weight", [Dv // g, d])]
        if c["use_output_gate"]:
            p += [("g_proj.weight", [Dv, d])]
        if mt == "retnet":                           # RetNetBlock never passes use_short_conv
            return p + [("o_proj.weight", [d, Dv])] + out_norm(c, Dv // H), [("rotary.inv_freq", [(Dk // H + 1) // 2])]
        if c["use_short_conv"]:
            p += [("q_conv1d.weight", [Dk, 1, W]), ("k_conv1d.weight", [Dk // g, 1, W]), ("v_conv1d.weight", [Dv // g, 1, W])]
        r = 16                                       # gate_low_rank_dim: layer default, not a config key
        p += [("gk_proj.0.weight", [r, d]), ("gk_proj.1.weight", [Dk // g, r]), ("gk_proj.1.bias", [Dk // g])]
        return p + [("o_proj.weight", [d, Dv])] + out_norm(c, Dv // H), []
    if mt == "delta_net":
        H = c["num_heads"]
        Dk, Dv = round(d * c["expand_k"]), round(d * c["expand_v"])
        p = [("q_proj.weight", [Dk, d]), ("k_proj.weight", [Dk, d]), ("v_proj.weight", [Dv, d])]
        if c["use_beta"]:
            p += [("b_proj.weight", [H, d])]
        if c["use_short_conv"]:
            p += [("q_conv1d.weight", [Dk, 1, W]), ("k_conv1d.weight", [Dk, 1, W]), ("v_conv1d.weight", [Dv, 1, W])]
        if c["use_gate"]:
            p += [("g_proj.weight", [Dv, d])]
        return p + [("o_norm.weight", [Dv // H]), ("o_proj.weight", [d, Dv])], []
    if mt == "gated_deltanet":
        H, hd = c["num_heads"], c["head_dim"]
        Hv = c.get("num_v_heads") or H
        dv = int(hd * c["expand_v"])
        Dk, Dv = H * hd, Hv * dv
        p = [("A_log", [Hv]), ("dt_bias", [Hv])]     # direct parameters: listed before sub-modules
        p += [("q_proj.weight", [Dk, d]), ("k_proj.weight", [Dk, d]), ("v_proj.weight", [Dv, d]),
              ("a_proj.weight", [Hv, d]), ("b_proj.weight", [Hv, d])]
        if c["use_short_conv"]:
            p += [("q_conv1d.weight", [Dk, 1, W]), ("k_conv1d.weight", [Dk, 1, W]), ("v_conv1d.weight", [Dv, 1, W])]
        if c["use_gate"]:
            p += [("g_proj.weight", [Dv, d])]
        return p + [("o_norm.weight", [dv]), ("o_proj.weight", [d, Dv])], []
    if mt == "transformer":
        return attention(c, d, c, qk_norm=c["qk_norm"])
    raise ValueError(mt)


def attn_spec_for(c, i):
    a = c.get("attn")
    if a is None:
        return None
    for s in ([a] if isinstance(a, dict) else a):
        if i in s["layers"]:
            return s
    return None


def params(cfg, defaults):
    mt = cfg["model_type"]
    c = dict(defaults[mt])
    c.update(cfg)
    d, L, V = c["hidden_size"], c["num_hidden_layers"], c["vocab_size"]
    if c.get("attnres_block_size") is not None:
        raise NotImplementedError("attnres_block_size (fla 0.6.0 attention residuals) not modelled")
    I = mlp_width(d, c["hidden_ratio"], c["intermediate_size"])
    ps, bs = [], []
    if mt in ("hgrn", "hgrn2") and c["use_lower_bound"]:
        width = int(d * c["expand_ratio"]) if mt == "hgrn" else d
        ps.append(("model.lower_bounds", [L, width]))   # direct parameter of *Model: first
    ps.append(("model.embeddings.weight", [V, d]))
    for i in range(L):
        pre = f"model.layers.{i}."
        spec = attn_spec_for(c, i) if mt != "transformer" else None
        mp, mb = attention(c, d, spec) if spec else mixer(mt, c, d)
        ps.append((pre + "attn_norm.weight", [d]))
        ps += [(pre + "attn." + n, s) for n, s in mp]
        bs += [(pre + "attn." + n, s) for n, s in mb]
        ps += [(pre + "mlp_norm.weight", [d]), (pre + "mlp.gate_proj.weight", [I, d]),
               (pre + "mlp.up_proj.weight", [I, d]), (pre + "mlp.down_proj.weight", [d, I])]
    ps.append(("model.norm.weight", [d]))
    if not c["tie_word_embeddings"]:
        ps.append(("lm_head.weight", [V, d]))
    return ps, bs


def prod(s):
    n = 1
    for x in s:
        n *= x
    return n


def check(root):
    defaults = {}
    for f in glob.glob(os.path.join(root, "defaults", "*.json")):
        defaults[os.path.splitext(os.path.basename(f))[0]] = json.load(open(f))
    bad = 0
    files = sorted(glob.glob(os.path.join(root, "configs", "*.json")))
    for f in files:
        stem = os.path.splitext(os.path.basename(f))[0]
        cfg = json.load(open(f))
        want = json.load(open(os.path.join(root, "params", stem + ".json")))
        ps, bs = params(cfg, defaults)
        got_p = [[n, s] for n, s in ps]
        got_b = [[n, s] for n, s in bs]
        total = sum(prod(s) for _, s in ps)
        ok = got_p == want["params"] and got_b == want["buffers"] and total == want["params_total"]
        if not ok:
            bad += 1
            print(f"MISMATCH {stem}")
            for a, b in zip(got_p, want["params"]):
                if a != b:
                    print(f"   spec {a}  fla {b}")
                    break
            if len(got_p) != len(want["params"]):
                print(f"   spec has {len(got_p)} params, fla {len(want['params'])}")
    print(f"{len(files) - bad} passed, {bad} failed")
    return 1 if bad else 0


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--check", metavar="TESTS_FLA_DIR", default="tests/fla")
    sys.exit(check(ap.parse_args().check))
