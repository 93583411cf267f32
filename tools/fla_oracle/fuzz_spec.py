#!/usr/bin/env python3
"""Random-config cross-check of spec.py (stdlib re-statement) against real fla on meta.

Needs the fla venv; run from the repository root:
    /work/venv-fla/bin/python tools/fla_oracle/fuzz_spec.py [N]
Prints "ok N bad M rejected K"; configs that fla itself rejects (e.g. num_heads not divisible
by num_kv_heads) are counted as rejected. Exit status 1 if any config disagrees.
"""
import glob
import json
import os
import random
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fla_params as fp  # noqa: E402
import spec  # noqa: E402


def gen(rng):
    mt = rng.choice(list(fp.MODELS))
    c = dict(model_type=mt, vocab_size=rng.choice([64, 100]), hidden_size=rng.choice([64, 128]),
             num_hidden_layers=rng.choice([1, 2, 3]), tie_word_embeddings=rng.random() < 0.3,
             fuse_norm=rng.random() < 0.7, elementwise_affine=rng.random() < 0.8,
             hidden_ratio=rng.choice([None, 2, 3, 4]), intermediate_size=rng.choice([None, None, 200]))
    b = lambda p: rng.random() < p  # noqa: E731
    if mt == 'hgrn':
        c.update(expand_ratio=rng.choice([1, 2]), use_short_conv=b(.5), use_lower_bound=b(.5))
    if mt == 'hgrn2':
        c.update(expand_ratio=rng.choice([16, 32, None]), num_heads=rng.choice([2, 4]),
                 use_short_conv=b(.5), use_lower_bound=b(.5))
    if mt in ('gla', 'retnet'):
        c.update(num_heads=rng.choice([1, 2, 4]), num_kv_heads=rng.choice([None, 1, 2]),
                 expand_k=rng.choice([0.5, 1.0]), expand_v=rng.choice([1.0, 2.0]),
                 use_short_conv=b(.5), use_output_gate=b(.5))
    if mt == 'delta_net':
        c.update(num_heads=rng.choice([2, 4]), expand_k=rng.choice([0.5, 1.0]), expand_v=rng.choice([1.0, 2.0]),
                 use_short_conv=b(.7), use_gate=b(.5), use_beta=b(.7))
    if mt == 'gated_deltanet':
        c.update(num_heads=rng.choice([1, 2]), head_dim=rng.choice([16, 32]), num_v_heads=rng.choice([None, 2, 4]),
                 expand_v=rng.choice([1.0, 2.0, 0.5]), use_short_conv=b(.7), use_gate=b(.5))
    if mt == 'transformer':
        c.update(num_heads=rng.choice([2, 4]), num_kv_heads=rng.choice([None, 1, 2]), qkv_bias=b(.5), qk_norm=b(.5))
    if mt != 'transformer' and b(.5):
        c['attn'] = dict(layers=[c['num_hidden_layers'] - 1], num_heads=rng.choice([2, 4]),
                         num_kv_heads=rng.choice([None, 1, 2]), qkv_bias=b(.5))
    return c


def main():
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 400
    defaults = {os.path.basename(f)[:-5]: json.load(open(f)) for f in glob.glob('tests/fla/defaults/*.json')}
    rng = random.Random(0)
    ok = bad = rej = 0
    for _ in range(n):
        c = gen(rng)
        try:
            r = fp.describe(c, 'fuzz')
        except Exception:
            rej += 1
            continue
        ps, bs = spec.params(c, defaults)
        same = ([[a, s] for a, s in ps] == [list(x) for x in r['params']]
                and [[a, s] for a, s in bs] == [list(x) for x in r['buffers']]
                and sum(spec.prod(s) for _, s in ps) == r['params_total'])
        if same:
            ok += 1
        else:
            bad += 1
            print('MISMATCH', json.dumps(c))
    print(f'ok {ok} bad {bad} rejected {rej}')
    return 1 if bad else 0


if __name__ == '__main__':
    sys.exit(main())
