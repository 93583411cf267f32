#!/usr/bin/env bash
# Installs what hyb needs beyond the Rust toolchain: Debian's LLVM/MLIR 22 packages,
# which melior (the MLIR bindings of kernels/) builds against, TensorBoard for a test, and
# pytest and NumPy for the Python package's tests. Idempotent and quick when
# everything is already there. The paths the build uses are in .cargo/config.toml.
set -euo pipefail

packages=(llvm-22-dev libmlir-22-dev mlir-22-tools libclang-22-dev libpolly-22-dev
          libzstd-dev libz3-dev libxml2-dev zlib1g-dev
          fonts-dejavu-core)  # the PNG plots' labels

missing=()
for package in "${packages[@]}"; do
    dpkg -s "$package" >/dev/null 2>&1 || missing+=("$package")
done

if [ ${#missing[@]} -gt 0 ]; then
    echo "setup: installing ${missing[*]}" >&2
    sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
fi

# TensorBoard's own reader checks the event files hyb writes (hybc/tests/cli.rs).
python3 -c 'import tensorboard' 2>/dev/null || {
    echo "setup: installing tensorboard (pip)" >&2
    python3 -m pip install -q tensorboard >/dev/null 2>&1 || echo "setup: tensorboard did not install; its reader's test will say so" >&2
}

# The Python package's tests (python/tests, run by `cargo test` through python/tests/pytest.rs).
python3 -c 'import pytest, numpy' 2>/dev/null || {
    echo "setup: installing pytest and numpy (pip)" >&2
    python3 -m pip install -q pytest numpy >/dev/null 2>&1 || echo "setup: pytest / numpy did not install; the Python package's tests will fail" >&2
}

test -f /usr/lib/llvm-22/lib/libMLIR.so || { echo "setup: MLIR 22 not found under /usr/lib/llvm-22" >&2; exit 1; }
