"""A trainer from Python: steps on numpy token ids, the logits against the loss the
runtime computes, parameters by fla name, generation against the full forward pass,
checkpoints, and the errors a caller's mistake gets."""

import numpy as np
import pytest

import hyb


def tokens(batch, seq_len, seed=0, vocab=64):
    return np.random.default_rng(seed).integers(0, vocab, size=(batch, seq_len), dtype=np.int64)


def cross_entropy(logits, targets):
    """The mean next-token loss over the positions with a target, in float64."""
    logits = logits.astype(np.float64)
    top = logits.max(-1, keepdims=True)
    log_probs = logits - top - np.log(np.exp(logits - top).sum(-1, keepdims=True))
    mask = targets >= 0
    picked = np.take_along_axis(log_probs, np.maximum(targets, 0)[..., None], -1)[..., 0]
    return -(picked * mask).sum() / mask.sum()


def test_logits_give_the_runtime_loss(tiny):
    trainer = tiny.trainer(batch=2, seq_len=16, seed=3)
    ids = tokens(2, 16)
    logits = trainer.logits(ids)
    assert logits.shape == (2, 16, 64) and logits.dtype == np.float32
    targets = np.concatenate([ids[:, 1:], -np.ones((2, 1), np.int64)], axis=1)
    assert trainer.forward(ids) == pytest.approx(cross_entropy(logits, targets), rel=1e-5)
    # Targets given explicitly: only the positions with one count.
    sparse = np.full_like(ids, -1)
    sparse[:, 5] = ids[:, 6]
    assert trainer.forward(ids, sparse) == pytest.approx(cross_entropy(logits, sparse), rel=1e-5)


def test_int32_and_int64_ids_agree(tiny):
    trainer = tiny.trainer(batch=2, seq_len=16, seed=3)
    ids = tokens(2, 16)
    assert np.array_equal(trainer.logits(ids), trainer.logits(ids.astype(np.int32)))
    assert np.array_equal(trainer.logits(ids), trainer.logits(ids.tolist()))


def test_evaluator_matches_trainer(tiny):
    trainer = tiny.trainer(batch=2, seq_len=16, seed=3)
    evaluator = tiny.trainer(batch=2, seq_len=16, seed=3, training=False)
    assert not evaluator.training
    ids = tokens(2, 16)
    np.testing.assert_array_equal(trainer.logits(ids), evaluator.logits(ids))
    with pytest.raises(hyb.HybError, match="forward alone"):
        evaluator.step(ids)


def test_steps_lower_the_loss(tiny):
    trainer = tiny.trainer(batch=4, seq_len=16, seed=0)
    ids = tokens(4, 16, seed=1)
    first = trainer.step(ids, lr=1e-2)
    for _ in range(5):
        last = trainer.step(ids, lr=1e-2)
    assert last["step"] == 6 and trainer.steps_taken == 6
    assert last["loss"] < first["loss"] - 0.1
    assert np.isfinite(first["grad_norm"])
    assert trainer.grad("model.embeddings.weight").shape == (64, 32)


def test_param_round_trip(tiny):
    trainer = tiny.trainer(batch=1, seq_len=8, seed=0)
    shapes = trainer.param_shapes()
    assert list(shapes) == trainer.param_names() == [name for name, _ in tiny.params()]
    assert shapes["model.embeddings.weight"] == (64, 32)
    name = "model.layers.1.attn.q_proj.weight"
    new = np.random.default_rng(0).standard_normal(shapes[name])  # float64: converted
    trainer.set_param(name, new)
    back = trainer.param(name)
    assert back.dtype == np.float32 and back.shape == shapes[name]
    np.testing.assert_array_equal(back, new.astype(np.float32))
    assert set(trainer.params()) == set(shapes)
    # The logits change with the parameter, and come back with it.
    ids = tokens(1, 8)
    before = trainer.logits(ids)
    trainer.set_param(name, np.zeros(shapes[name], np.float32))
    assert not np.array_equal(before, trainer.logits(ids))
    trainer.set_param(name, new)
    np.testing.assert_array_equal(before, trainer.logits(ids))


def test_caller_mistakes(tiny):
    trainer = tiny.trainer(batch=2, seq_len=8, seed=0)
    with pytest.raises(hyb.HybError, match=r"no parameter `model.nothing`"):
        trainer.param("model.nothing")
    with pytest.raises(hyb.HybError, match=r"has shape \[64, 32\], got an array of shape \[32, 64\]"):
        trainer.set_param("model.embeddings.weight", np.zeros((32, 64)))
    with pytest.raises(hyb.HybError, match=r"takes batch × seq_len = \[2, 8\], got \[2, 9\]"):
        trainer.forward(tokens(2, 9))
    with pytest.raises(hyb.HybError, match=r"token id 64 is outside the vocabulary \[0, 64\)"):
        trainer.forward(np.full((2, 8), 64))
    with pytest.raises(hyb.HybError, match="token id 4294967296 does not fit int32"):
        trainer.forward(np.full((2, 8), 2**32))
    with pytest.raises(hyb.HybError, match="expected a 2-D integer array"):
        trainer.forward(np.zeros((2, 8), np.float32))


def test_cuda_without_a_gpu_says_so(tiny):
    try:
        tiny.trainer(batch=1, seq_len=8, target="cuda")
    except hyb.HybError as error:
        assert "cuda" in str(error)
    else:
        pytest.skip("a GPU is here: cuda runs")
    with pytest.raises(hyb.HybError, match="unknown target `tpu`"):
        tiny.trainer(target="tpu")


def test_greedy_generation_is_the_argmax_of_the_forward(tiny):
    trainer = tiny.trainer(batch=1, seq_len=12, seed=5, training=False)
    prompt = [3, 17, 42, 9, 5, 30]
    new = trainer.generate(prompt, max_new_tokens=6)
    assert len(new) == 6
    sequence = prompt + new
    logits = trainer.logits(np.array([sequence]))
    expected = logits[0, len(prompt) - 1 : -1].argmax(-1)
    assert new == expected.tolist()
    # A stop id ends it after that token.
    assert trainer.generate(prompt, max_new_tokens=6, stop_ids=[new[1]]) == new[:2]
    sampled = trainer.generate(prompt, max_new_tokens=6, temperature=1.0, top_k=5, top_p=0.9, seed=1)
    assert len(sampled) == 6 and all(0 <= t < 64 for t in sampled)
    assert sampled == trainer.generate(prompt, max_new_tokens=6, temperature=1.0, top_k=5, top_p=0.9, seed=1)
    with pytest.raises(hyb.HybError, match="top_p 1.5"):
        trainer.generate(prompt, top_p=1.5, temperature=1.0)


def test_checkpoint_round_trip(tiny, tmp_path):
    trainer = tiny.trainer(batch=2, seq_len=8, seed=0)
    ids = tokens(2, 8)
    trainer.step(ids)
    trainer.step(ids)
    path = trainer.save_checkpoint(tmp_path / "checkpoints", seed=7)
    assert path.name == "step_000002"
    saved_logits = trainer.logits(ids)
    other = tiny.trainer(batch=2, seq_len=8, seed=99)
    assert other.load_checkpoint(tmp_path / "checkpoints" / "step_000002") == 7
    assert other.steps_taken == 2
    for name, values in trainer.params().items():
        np.testing.assert_array_equal(values, other.param(name))
    # Restored moments: the next step is the same in both.
    assert trainer.step(ids) == other.step(ids)
    # The weights alone, into an evaluator of another shape.
    evaluator = tiny.trainer(batch=2, seq_len=8, seed=99, training=False)
    evaluator.load_weights(path)
    np.testing.assert_array_equal(evaluator.logits(ids), saved_logits)
    (tmp_path / "empty").mkdir()
    with pytest.raises(hyb.HybError, match="empty"):
        evaluator.load_weights(tmp_path / "empty")
