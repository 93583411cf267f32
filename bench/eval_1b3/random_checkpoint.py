# A random bf16 checkpoint for the model whose IR is on stdin (`hybc compile F --emit ir`),
# written as fla names in one safetensors file: model.safetensors in the given directory.
import sys, json, re, os, numpy as np
out = sys.argv[1]; os.makedirs(out, exist_ok=True)
params, layer = [], None
for line in sys.stdin:
    m = re.match(r'^layer(\d+) ', line)
    if m: layer = int(m.group(1)); continue
    m = re.match(r'^(\s*)param (\S+) \[([\d, ]+)\] (\S+)', line)
    if not m: continue
    name = m.group(2) if not m.group(1) else f"model.layers.{layer}.{m.group(2)}"
    params.append((name, [int(x) for x in m.group(3).split(',')], m.group(4)))
rng = np.random.default_rng(0)
header, offset, chunks = {}, 0, []
for name, shape, init in params:
    n = int(np.prod(shape))
    if init == 'ones': v = np.ones(n, np.float32)
    elif init.startswith('normal'): v = (rng.standard_normal(n, dtype=np.float32) * 0.02)
    elif init == 'mamba_a_log': v = np.log(rng.uniform(1, 16, n)).astype(np.float32)
    elif init == 'mamba_dt_bias': v = np.full(n, -4.0, np.float32)
    else: v = np.zeros(n, np.float32)
    b = (v.view(np.uint32) >> 16).astype(np.uint16).tobytes()
    header[name] = {"dtype": "BF16", "shape": shape, "data_offsets": [offset, offset + len(b)]}
    offset += len(b); chunks.append(b)
h = json.dumps(header).encode(); h += b' ' * ((8 - len(h) % 8) % 8)
with open(os.path.join(out, 'model.safetensors'), 'wb') as f:
    f.write(len(h).to_bytes(8, 'little')); f.write(h)
    for c in chunks: f.write(c)
print(len(params), "tensors,", offset, "bytes")
