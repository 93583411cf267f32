"""What the command line does, from Python: ``train`` with a callback (a notebook's
progress), ``evaluate``, ``load``, ``generate`` — compared with the run's files and
with ``hybc`` itself."""

import json
import subprocess

import numpy as np
import pytest

import hyb


def test_train_reports_to_the_callback(tiny_file, tmp_path):
    history = hyb.History()
    result = hyb.train(tiny_file, out=tmp_path / "run", callback=history, checkpoint_every=2)
    kinds = [m["kind"] for m in history.messages]
    assert kinds[0] == "start" and kinds.count("step") == 4 and kinds.count("checkpoint") == 2
    assert [step for step, _ in history.losses] == [1, 2, 3, 4]
    assert result["final_loss"] == history.losses[-1][1]
    assert result["stopped_at"] is None and result["out"] == tmp_path / "run"
    # The run's files: the losses of metrics.jsonl, the kept model, the checkpoint.
    lines = [json.loads(line) for line in (tmp_path / "run/metrics.jsonl").read_text().splitlines()]
    # A step's line: `train/loss` (or `loss` on a line without `eval`, as older logs wrote).
    logged = [(line["step"], line.get("train/loss", line.get("loss"))) for line in lines if "eval" not in line]
    logged = [(step, loss) for step, loss in logged if loss is not None]
    assert [(s, pytest.approx(l)) for s, l in history.losses] == logged
    assert (tmp_path / "run/model.hyb").read_text() == tiny_file.read_text()
    (score,) = result["scores"]
    assert score["task"] == "mqar(seq_len: 32, pairs: 4)" and score["total"] > 0
    # The trainer it returns holds the last checkpoint's weights.
    loaded = hyb.load(tmp_path / "run", batch=4, seq_len=32)
    trainer = result["trainer"]
    assert trainer.steps_taken == 4
    for name, values in trainer.params().items():
        np.testing.assert_array_equal(values, loaded.param(name))


def test_printer_prints_lines(tiny_file, tmp_path, capsys):
    hyb.train(tiny_file, steps=2, out=tmp_path / "run")
    printed = capsys.readouterr().out
    assert "step     1  loss" in printed and "step     2  loss" in printed
    assert "checkpoint     2" in printed and "eval     2  mqar" in printed


def test_callback_raising_stops_at_a_checkpoint(tiny_file, tmp_path):
    def stop_at_two(message):
        if message["kind"] == "step" and message["step"] == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        hyb.train(tiny_file, out=tmp_path / "run", callback=stop_at_two)
    assert (tmp_path / "run/checkpoints/step_000002").is_dir()
    # Resuming finishes the run from there.
    history = hyb.History()
    result = hyb.train(tiny_file, out=tmp_path / "run", resume=True, callback=history)
    assert [step for step, _ in history.losses] == [3, 4] and result["stopped_at"] is None


def test_evaluate_matches_hybc_eval(tiny_file, tmp_path, hybc):
    hyb.train(tiny_file, out=tmp_path / "run", callback=None)
    (score,) = hyb.evaluate(tmp_path / "run")
    cli = subprocess.run([hybc, "eval", "--ckpt", str(tmp_path / "run")], capture_output=True, text=True)
    assert cli.returncode == 0, cli.stderr
    (written,) = json.loads((tmp_path / "run/checkpoints/step_000004/eval.json").read_text())["tasks"]
    assert score == written
    # A train-block field no evaluation reads is refused, not ignored.
    with pytest.raises(hyb.HybError, match="would be ignored"):
        hyb.evaluate(tmp_path / "run", sets=["steps=9"])
    with pytest.raises(hyb.HybError, match="precision"):
        hyb.load(tmp_path / "run", sets=["precision=bf16"])


def test_generate_matches_hybc_and_the_forward(tiny_file, tmp_path, hybc):
    hyb.train(tiny_file, out=tmp_path / "run", callback=None)
    prompt = "5 40 17 33 9 50 17"
    text = hyb.generate(tmp_path / "run", prompt, max_new_tokens=5)
    cli = subprocess.run(
        [hybc, "generate", "--ckpt", str(tmp_path / "run"), "--prompt", prompt, "--tokens", "5"],
        capture_output=True,
        text=True,
    )
    assert cli.returncode == 0, cli.stderr
    assert cli.stdout.strip() == f"{prompt} {text}"
    # The same continuation from the full forward pass's logits, one token at a time.
    ids = [int(t) for t in prompt.split()]
    evaluator = hyb.load(tmp_path / "run", seq_len=len(ids) + 5)
    for _ in range(5):
        padded = np.array([ids + [0] * (evaluator.seq_len - len(ids))])
        ids.append(int(evaluator.logits(padded)[0, len(ids) - 1].argmax()))
    assert " ".join(map(str, ids[-5:])) == text


def test_load_model_of_a_run(tiny_file, tmp_path):
    hyb.train(tiny_file, out=tmp_path / "run", callback=None, sets=["steps=1"])
    model = hyb.load_model(tmp_path / "run")
    assert model.n_params == hyb.compile_file(tiny_file).n_params
    with pytest.raises(hyb.HybError, match="no model.hyb beside"):
        hyb.load_model(tmp_path)


def test_train_errors(tiny_file, tmp_path):
    with pytest.raises(hyb.HybError, match="error: .*has 1 error"):
        hyb.train(tiny_file, sets=["steps=-1"], out=tmp_path / "run")
    hyb.train(tiny_file, out=tmp_path / "run", callback=None, steps=1)
    with pytest.raises(hyb.HybError, match="already holds checkpoints"):
        hyb.train(tiny_file, out=tmp_path / "run", callback=None, steps=1)


def test_train_under_a_launcher_is_a_rank(tiny_file, tmp_path, monkeypatch):
    """Under torchrun the process is a rank of a data-parallel run, which runs on GPUs:
    on the CPU it says so before writing anything; inconsistent variables are named."""
    for name, value in [("RANK", "0"), ("WORLD_SIZE", "1"), ("LOCAL_RANK", "0")]:
        monkeypatch.setenv(name, value)
    with pytest.raises(hyb.HybError, match="rank 0 of 1 .*data-parallel training runs on GPUs"):
        hyb.train(tiny_file, out=tmp_path / "ranked", callback=None, steps=1)
    assert not (tmp_path / "ranked").exists()
    monkeypatch.delenv("WORLD_SIZE")
    with pytest.raises(hyb.HybError, match="WORLD_SIZE is not set"):
        hyb.train(tiny_file, out=tmp_path / "ranked", callback=None, steps=1)


def test_load_a_published_directory(tiny_file, tmp_path, hybc):
    """An fla directory (`hybc export --format fla`, bf16) loads as the model its
    config.json describes, with the logits of the checkpoint it came from (bf16 rounding)."""
    hyb.train(tiny_file, out=tmp_path / "run", callback=None, steps=1)
    published = tmp_path / "fla"
    cli = subprocess.run(
        [hybc, "export", str(tiny_file), "--ckpt", str(tmp_path / "run"), "--dtype", "bf16", "-o", str(published)],
        capture_output=True,
        text=True,
    )
    assert cli.returncode == 0, cli.stderr
    ids = np.random.default_rng(0).integers(0, 64, (1, 32))
    original = hyb.load(tmp_path / "run", seq_len=32).logits(ids)
    loaded = hyb.load(published, seq_len=32)
    assert loaded.model.n_params == hyb.compile_file(tiny_file).n_params
    np.testing.assert_allclose(loaded.logits(ids), original, atol=0.05)
    assert not np.array_equal(loaded.logits(ids), original)  # bf16, not the f32 weights


GRID = """
mixer gdn  = gated_deltanet(heads: 2, head_dim: 16, expand_v: 1)
mixer gla  = gla(heads: 2)
mixer attn = attention(heads: 2)
let linear = gdn

model {
    vocab   = 64
    d_model = 32
    layers  = linear × 2 with attn every 2
}

train {
    data      = mqar(vocab: 64, seq_len: 32, pairs: 4)
    batch     = 2
    steps     = 2
    optimizer = adamw(lr: 3e-3)
}

eval {
    mqar(seq_len: 32, pairs: 4)
    samples = 8
    batch   = 4
}

sweep {
    linear = [gdn, gla]
    seeds  = 2
}
"""


def test_sweep_runs_the_grid_as_hybc_does(tmp_path, hybc):
    file = tmp_path / "grid.hyb"
    file.write_text(GRID)
    history = hyb.History()
    result = hyb.sweep(file, out=tmp_path / "py", callback=history)
    runs = sorted(result["runs"], key=lambda r: r["run"])
    assert [r["run"] for r in runs] == ["linear=gdn,seed=0", "linear=gdn,seed=1", "linear=gla,seed=0", "linear=gla,seed=1"]
    assert not result["stopped"] and result["out"] == tmp_path / "py"
    assert result["report"] == (tmp_path / "py/results.md").read_text()
    assert "gdn" in result["report"] and "gla" in result["report"]
    assert (tmp_path / "py/results.csv").is_file() and (tmp_path / "py/recall.png").is_file()
    lines = [m["text"] for m in history.messages if m["kind"] == "sweep"]
    assert lines[0].startswith("sweep ") and sum(line.startswith("[") for line in lines) == 4
    assert [m["kind"] for m in history.messages].count("start") == 4
    # The command line's sweep of the same file: the same runs, the same losses.
    if hybc is None:
        pytest.skip("no hybc binary to compare with")
    done = subprocess.run([hybc, "sweep", str(file), "--out", str(tmp_path / "cli")], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    for run in runs:
        cli = json.loads((tmp_path / "cli" / run["run"] / "result.json").read_text())
        assert cli["final_loss"] == pytest.approx(run["final_loss"], rel=1e-6), run["run"]
        assert cli["accuracy"] == run["accuracy"]
    # Run again: every run was done before; the report alone.
    again = hyb.sweep(file, out=tmp_path / "py", callback=history)
    assert len(again["runs"]) == 4
    assert sum("done before" in m["text"] for m in history.messages if m["kind"] == "sweep") == 4


def test_sweep_time_limit(tmp_path):
    file = tmp_path / "grid.hyb"
    file.write_text(GRID)
    history = hyb.History()
    result = hyb.sweep(file, out=tmp_path / "late", time_limit=0, callback=history)
    assert result["runs"] == [] and result["report"] is None and not result["stopped"]
    lines = [m["text"] for m in history.messages if m["kind"] == "sweep"]
    assert sum("not started (the time limit has passed)" in line for line in lines) == 4, lines
    with pytest.raises(hyb.HybError, match="time_limit = -1"):
        hyb.sweep(file, out=tmp_path / "late", time_limit=-1, callback=None)


def test_sweep_errors(tiny_file, tmp_path):
    with pytest.raises(hyb.HybError, match="has no sweep block"):
        hyb.sweep(tiny_file, out=tmp_path / "none", callback=None)
    file = tmp_path / "grid.hyb"
    file.write_text(GRID)
    with pytest.raises(hyb.HybError, match="no run of the sweep has finished"):
        hyb.sweep(file, out=tmp_path / "empty", report_only=True, callback=None)
