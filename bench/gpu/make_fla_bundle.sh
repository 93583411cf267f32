#!/usr/bin/env bash
# Builds .bundle/fla.tar.xz: fla 0.6.0 alone (pure Python over Triton, which the GPU
# machine has), a few MB where ../shared/bench/make_bundle.sh's bundle with FlashQLA and
# TileLang is ~40 MB, so it travels beside .device/hybc.xz within one call's 64 MiB.
# Run once per checkout, in the repo root.
set -euo pipefail
grep -qx '/.bundle/' .git/info/exclude 2>/dev/null || echo /.bundle/ >> .git/info/exclude
wheels=$(mktemp -d); site=$(mktemp -d)
trap 'rm -rf "$wheels" "$site"' EXIT
python3 -m pip download -q --no-deps --only-binary=:all: -d "$wheels" fla-core==0.6.0 flash-linear-attention==0.6.0
for wheel in "$wheels"/*.whl; do (cd "$site" && unzip -o -q "$wheel"); done
find "$site" -name __pycache__ -prune -exec rm -rf {} +
mkdir -p .bundle && tar cf - -C "$site" . | xz -6 -T0 > .bundle/fla.tar.xz
ls -la .bundle/fla.tar.xz
