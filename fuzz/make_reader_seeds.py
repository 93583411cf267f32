#!/usr/bin/env python3
"""Writes the seeds of the reader fuzz targets into seeds/<target>/ (numpy and pyarrow
needed). Run from fuzz/. `seeds/token_files/hybc_tokenize.bin` is not made here: it is
`hybc tokenize seeds/jsonl/docs.jsonl seeds/parquet/snappy.parquet -o out` packed as
the token_files target reads a Megatron pair (see its doc in readers.rs)."""
import io, json, struct
import numpy as np, pyarrow as pa, pyarrow.parquet as pq

def st(tensors, meta=True, pad=True):
    header = {"__metadata__": {"format": "pt"}} if meta else {}
    data = b""
    for name, dtype, shape, raw in tensors:
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [len(data), len(data) + len(raw)]}
        data += raw
    j = json.dumps(header, separators=(",", ":")).encode()
    if pad:
        while len(j) % 8: j += b" "
    return struct.pack("<Q", len(j)) + j + data

f32 = lambda *v: struct.pack("<%df" % len(v), *v)
d = "seeds/safetensors/"
open(d+"f32.safetensors","wb").write(st([("embeddings.weight","F32",[2,3],f32(1,2,3,-4,5.5,float("nan"))),("norm.weight","F32",[3],f32(1,1,1))]))
open(d+"bf16.safetensors","wb").write(st([("w","BF16",[2,2],struct.pack("<4H",0x3f80,0xbf80,0x7fc0,0x0001))]))
open(d+"f16.safetensors","wb").write(st([("w","F16",[4],np.array([1,-2,65504,np.inf],dtype="<f2").tobytes())]))
open(d+"int.safetensors","wb").write(st([("ids","I64",[2],struct.pack("<2q",1,2))]))
open(d+"scalar_and_empty.safetensors","wb").write(st([("s","F32",[],f32(3)),("e","F32",[0,5],b""),("x.attn.D","F32",[1],f32(0))], meta=False, pad=False))
open(d+"empty_header.safetensors","wb").write(st([], meta=False))
open(d+"shard.safetensors","wb").write(st([("exp_avg.a","F32",[1,2],f32(0,0)),("exp_avg_sq.a","F32",[1,2],f32(1e-8,3e38))]))

# token_files: the first byte is the mode (see readers.rs)
d = "seeds/token_files/"
def npy(arr, version=None):
    b = io.BytesIO()
    if version: np.lib.format.write_array(b, arr, version=version)
    else: np.save(b, arr)
    return b.getvalue()
for mode, name, arr, ver in [(0,"u2",np.arange(40,dtype="<u2"),None),(2|4|(3<<3),"i4",np.array([1,-5,300],dtype="<i4"),None),
                             (2,"u8_v2",np.array([7,2**40],dtype="<u8"),(2,0)),(0,"u1",np.arange(5,dtype="u1"),None),
                             (8,"i8_v3",np.array([3],dtype="<i8"),(3,0)),(0,"empty",np.zeros(0,dtype="<u2"),None),
                             (0,"big_endian",np.arange(3,dtype=">u2"),None),(0,"float",np.arange(3,dtype="<f4"),None),
                             (0,"2d",np.zeros((2,2),dtype="<u2"),None),(0,"fortran",np.asfortranarray(np.zeros((2,2),dtype="<i4")),None)]:
    open(d+f"npy_{name}.bin","wb").write(bytes([mode])+npy(arr,ver))
def megatron(code, width, lengths):
    n = len(lengths)
    b = b"MMIDIDX\x00\x00" + struct.pack("<Q",1) + bytes([code]) + struct.pack("<QQ", n, n+1)
    b += b"".join(struct.pack("<i",l) for l in lengths)
    p = 0
    for l in lengths: b += struct.pack("<q",p); p += l*width
    b += b"".join(struct.pack("<q",k) for k in range(n+1))
    return b
for name, mode, code, width, lengths, fmt in [("u16",1,8,2,[3,0,2],"<H"),("i32",1|4|(2<<3),4,4,[2,1],"<i"),("u8",1,1,1,[4],"B"),("i64",1,5,8,[1,2],"<q"),("i16",1,3,2,[2],"<h")]:
    idx = megatron(code, width, lengths)
    ids = b"".join(struct.pack(fmt, (i*7)%100) for i in range(sum(lengths)))
    open(d+f"megatron_{name}.bin","wb").write(bytes([mode]) + struct.pack("<H",len(idx)) + idx + ids)
idx = b"MMIDIDX\x00\x00" + struct.pack("<Q",1) + bytes([8]) + struct.pack("<QQ", 3, 3) + struct.pack("<3i",1,2,1) + struct.pack("<3q",0,2,6) + struct.pack("<3q",0,2,3)
open(d+"megatron_grouped.bin","wb").write(bytes([1]) + struct.pack("<H",len(idx)) + idx + struct.pack("<4H",1,2,3,4))
open(d+"raw_u16.bin","wb").write(bytes([0])+struct.pack("<6H",1,2,3,4,5,65535))
open(d+"raw_u32.bin","wb").write(bytes([4|(12<<3)])+struct.pack("<3I",1,70000,2**32-1))
open(d+"raw_odd.bin","wb").write(bytes([4])+b"abcde")

d = "seeds/jsonl/"   # plus tiny.jsonl: the first 3,000 bytes of examples/tiny/data/tiny.jsonl
open(d+"docs.jsonl","w").write('{"text": "Once upon a time"}\n\n{"text": "caf\\u00e9 \\ud83d\\ude00", "id": 3}\r\n{"text": ""}\n')
open(d+"wrong.jsonl","w").write('{"body": "x"}\n')
open(d+"types.jsonl","w").write('{"text": 5}\n[1,2]\n"text"\nnull\n{"text": null}\n{"text": {"text": "a"}}\n')
open(d+"no_newline.jsonl","w").write('{"text": "a\\nb\\t\\"q\\""}')
open(d+"bad_utf8.jsonl","wb").write(b'{"text": "\xff\xfe"}\n')
open(d+"deep.jsonl","w").write('{"text":"a","x":' + "["*200 + "]"*200 + "}\n")

d = "seeds/parquet/"
for name, comp, rows in [("snappy","snappy",["one","two",None,"three"]),("gzip","gzip",["a"*50,"b"]),("none","none",["x","","caf\u00e9"]),
                         ("zstd","zstd",["z"]),("nulls","snappy",[None,None])]:
    t = pa.table({"text": pa.array(rows, type=pa.string()), "id": pa.array(range(len(rows)), type=pa.int32())})
    pq.write_table(t, d+f"{name}.parquet", compression=comp)
pq.write_table(pa.table({"text": pa.array([1,2], type=pa.int64())}), d+"int_column.parquet")
pq.write_table(pa.table({"body": pa.array(["q"])}), d+"other_column.parquet")
pq.write_table(pa.table({"text": pa.array(["a","b","c","d"]*3)}), d+"dict_groups.parquet", row_group_size=4, use_dictionary=True, data_page_version="2.0")
pq.write_table(pa.table({"text": pa.array([["a"],["b","c"]])}), d+"list.parquet")
