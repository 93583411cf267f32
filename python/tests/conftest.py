"""Shared fixtures: a tiny GatedDeltaNet–attention hybrid (a few seconds to compile in
a debug build), its text written to a temporary file when a test needs a path, and the
``hybc`` binary of the build (for the tests that compare with the command line)."""

import os
import pathlib
import shutil

import pytest

import hyb

REPO = pathlib.Path(__file__).resolve().parents[2]

TINY = """
mixer gdn  = gated_deltanet(heads: 2, head_dim: 16, expand_v: 1)
mixer attn = attention(heads: 2)

model {
    vocab   = 64
    d_model = 32
    layers  = (gdn, attn)
}

train {
    data       = mqar(vocab: 64, seq_len: 32, pairs: 4)
    batch      = 4
    steps      = 4
    optimizer  = adamw(lr: 3e-3)
    seed       = 1
}

eval {
    mqar(seq_len: 32, pairs: 4)
    samples = 8
    batch   = 4
}
"""


@pytest.fixture(scope="session")
def tiny():
    return hyb.compile_text(TINY, path="tiny.hyb")


@pytest.fixture()
def tiny_file(tmp_path):
    path = tmp_path / "tiny.hyb"
    path.write_text(TINY)
    return path


def hybc_binary():
    """``hybc`` from $HYBC, else the build's (``cargo test`` builds it), else PATH."""
    candidates = [os.environ.get("HYBC")]
    target = os.environ.get("CARGO_TARGET_DIR", str(REPO / "target"))
    candidates += [os.path.join(target, profile, "hybc") for profile in ("debug", "release")]
    candidates.append(shutil.which("hybc"))
    found = [c for c in candidates if c and os.path.isfile(c)]
    return max(found, key=os.path.getmtime) if found else None


@pytest.fixture(scope="session")
def hybc():
    binary = hybc_binary()
    if binary is None:
        pytest.skip("no hybc binary: build it (`cargo build -p hybc`) or set HYBC")
    return binary
