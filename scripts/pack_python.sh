#!/usr/bin/env bash
# Packs the Python package `hyb` for the GPU machine (which has Python and no Rust):
# its Python files and a stripped release extension module, as .device/hyb.tar.xz
# (untar it into a directory on PYTHONPATH). bench/gpu/fla_logits.sh uses it.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release -p hyb-python
staging=$(mktemp -d)
mkdir -p "$staging/hyb" .device
cp python/hyb/*.py "$staging/hyb/"
strip -o "$staging/hyb/_hyb.abi3.so" target/release/lib_hyb.so
tar cJf .device/hyb.tar.xz -C "$staging" hyb
rm -rf "$staging"
ls -l .device/hyb.tar.xz
