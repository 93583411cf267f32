"""Compiling from Python: the report and the IR as ``hybc compile --emit`` prints them,
every stage, and a file's errors as a ``HybError`` carrying the rendered diagnostic."""

import json
import subprocess

import pytest

import hyb
from conftest import REPO, TINY


def test_report_and_ir(tiny):
    report = json.loads(tiny.report(format="json"))
    assert report["params_total"] == tiny.n_params
    assert tiny.vocab == 64 and tiny.d_model == 32 and tiny.n_layers == 2
    text = tiny.report()
    assert "params" in text and f"{tiny.n_params:,}" in text
    ir = tiny.ir_text()
    names = [name for name, _ in tiny.params()]
    assert "model.embeddings.weight" in names
    # Layer parameters print under their layer, by the rest of the name.
    assert all(f"param {name.split('.', 3)[-1] if '.layers.' in name else name} " in ir for name in names)
    assert json.loads(tiny.ir_text(format="json"))


def test_every_stage(tiny):
    for stage in ["ir", "graph", "grad", "kernels", "plan", "program", "passes", "report", "fla-config"]:
        assert tiny.emit(stage).strip(), stage
    assert "func.func" in tiny.emit("mlir")
    with pytest.raises(hyb.HybError, match="unknown stage `llvm-ir`"):
        tiny.emit("llvm-ir")
    with pytest.raises(hyb.HybError, match="GPU target"):
        tiny.emit("ptx")


def test_same_text_as_the_command_line(tiny_file, hybc):
    model = hyb.compile_file(tiny_file)
    for stage in ["report", "ir", "program"]:
        cli = subprocess.run([hybc, "compile", str(tiny_file), "--emit", stage], capture_output=True, text=True)
        assert cli.returncode == 0, cli.stderr
        assert model.emit(stage) == cli.stdout, stage


def test_example_file():
    model = hyb.compile_file(REPO / "examples/tiny/gdn_2to1.hyb")
    assert model.n_layers == 4 and model.warnings == ""


def test_error_carries_the_rendered_diagnostic(tmp_path):
    bad = TINY.replace("heads: 2, head_dim: 16", "heads: 2, head_dimm: 16")
    with pytest.raises(hyb.HybError) as raised:
        hyb.compile_text(bad, path="bad.hyb")
    message = str(raised.value)
    assert "head_dimm" in message and "head_dim" in message  # did-you-mean
    assert "bad.hyb:2:" in message  # file:line:col, as rustc renders it
    assert message.rstrip().endswith("error: bad.hyb has 1 error")
    assert isinstance(raised.value, Exception)


def test_error_matches_the_command_line(tmp_path, hybc):
    path = tmp_path / "bad.hyb"
    path.write_text(TINY.replace("d_model = 32", "d_model = -32"))
    with pytest.raises(hyb.HybError) as raised:
        hyb.compile_file(path)
    cli = subprocess.run([hybc, "check", str(path)], capture_output=True, text=True)
    assert cli.returncode == 1
    assert str(raised.value).strip() == cli.stderr.strip()


def test_missing_file():
    with pytest.raises(hyb.HybError, match="cannot read `nowhere.hyb`"):
        hyb.compile_file("nowhere.hyb")


def test_sets_override_the_train_block(tiny_file):
    model = hyb.compile_file(tiny_file, sets=["seq_len=48", "data=mqar(vocab: 64, seq_len: 48, pairs: 4)"])
    assert model.seq_len == 48
    with pytest.raises(hyb.HybError, match="<--set>"):
        hyb.compile_file(tiny_file, sets=["stepz=3"])
