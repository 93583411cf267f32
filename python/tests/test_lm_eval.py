"""The lm-eval adapter (``hyb.lm_eval``) on a tiny byte-level text model: its methods
against log-likelihoods computed here from the model's logits, and — when lm-eval is
installed — lm-eval itself scoring a local task through ``--model hyb``."""

import json
import subprocess
import sys

import numpy as np
import pytest

import hyb
from conftest import REPO
from hyb.lm_eval import HybLM

TEXT_MODEL = f"""
mixer gdn  = gated_deltanet(heads: 2, head_dim: 16, expand_v: 1)
mixer attn = attention(heads: 2)

model {{
    vocab   = 256
    d_model = 32
    layers  = (gdn, attn)
}}

train {{
    data      = text("{REPO / 'examples/tiny/data/tiny.txt'}", tokenizer: bytes, split: 0.95)
    seq_len   = 16
    batch     = 2
    steps     = 2
    optimizer = adamw(lr: 1e-3)
}}

eval {{
    perplexity(data: text("{REPO / 'examples/tiny/data/tiny.txt'}"))
    samples = 4
    batch   = 2
}}
"""


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    directory = tmp_path_factory.mktemp("lm_eval")
    (directory / "text.hyb").write_text(TEXT_MODEL)
    hyb.train(directory / "text.hyb", out=directory / "run", callback=None)
    return directory / "run"


@pytest.fixture(scope="module")
def lm(run):
    return HybLM(run, batch_size=2)


def log_softmax(logits):
    logits = logits.astype(np.float64)
    return logits - logits.max(-1, keepdims=True) - np.log(np.exp(logits - logits.max(-1, keepdims=True)).sum(-1, keepdims=True))


def by_hand(run, ids, position_of_first, count):
    """The log-probabilities of ``ids[position_of_first:][:count]`` given everything
    before each, from one forward pass of the whole (at most 17 tokens: 16 inputs)."""
    evaluator = hyb.load(run, batch=1, seq_len=16)
    padded = np.zeros((1, 16), np.int32)
    padded[0, : len(ids) - 1] = ids[:-1]  # the last token is only predicted
    log_probs = log_softmax(evaluator.logits(padded)[0])
    positions = range(position_of_first, position_of_first + count)
    return [log_probs[p - 1, ids[p]] for p in positions], [log_probs[p - 1].argmax() == ids[p] for p in positions]


def test_loglikelihood_by_hand(run, lm):
    assert lm.tokenizer.kind == "bytes" and lm.max_length == 16
    context, continuation = "Call me ", "Ishmael"
    # The context's trailing space moves to the continuation, as lm-eval's HF model does.
    ids = list(b"Call me Ishmael")
    expected, greedy = by_hand(run, ids, len("Call me"), len(" Ishmael"))
    (logprob, is_greedy), empty, blank = lm.loglikelihood([(context, continuation), ("abc", ""), ("", "Call")])
    assert logprob == pytest.approx(sum(expected), rel=1e-6)
    assert is_greedy == all(greedy)
    assert empty == (0.0, True)
    expected, _ = by_hand(run, [0] + list(b"Call"), 1, 4)  # an empty context: the prefix token
    assert blank[0] == pytest.approx(sum(expected), rel=1e-6)


def test_loglikelihood_rolling(run, lm):
    short = "whale"
    (rolling,) = lm.loglikelihood_rolling([(short,)])
    assert rolling == pytest.approx(lm.loglikelihood([("", short)])[0][0], rel=1e-9)
    # Longer than max_length: every token once, in lm-eval's windows (its LM docstring):
    # the targets in chunks of 16, each read from the 16 tokens before its chunk's end
    # (the last chunk's window full-sized), the text after the prefix token.
    text = "It is not down on any map; true places never are."
    ids = [0] + list(text.encode())
    targets = len(ids) - 1
    expected = 0.0
    for position in range(1, len(ids)):
        chunk_end = min(targets, ((position - 1) // 16 + 1) * 16)
        start = max(0, chunk_end - 16)
        window = ids[start : position + 1]
        log_probs, _ = by_hand(run, window, len(window) - 1, 1)
        expected += log_probs[0]
    (rolling,) = lm.loglikelihood_rolling([(text,)])
    assert rolling == pytest.approx(expected, rel=1e-5)


def test_generate_until(run, lm):
    trainer = hyb.load(run, seq_len=16)
    new = trainer.generate(list(b"The sea "), max_new_tokens=12)
    (generated,) = lm.generate_until([("The sea ", {"max_gen_toks": 12})])
    assert generated == hyb.tokenizer(run).decode(new)
    stop = generated[3:5]
    (cut,) = lm.generate_until([("The sea ", {"until": [stop], "max_gen_toks": 12})])
    assert cut == generated[: generated.index(stop)]


def test_lm_eval_scores_a_local_task(run, tmp_path):
    lm_eval = pytest.importorskip("lm_eval", reason="lm-eval is not installed (pip install lm-eval)")
    from lm_eval.tasks import TaskManager

    import hyb.lm_eval  # noqa: F401  (registers --model hyb)

    docs = [
        {"question": "Call me", "choices": [" Ishmael", " Ahab", " Queequeg"], "answer": 0},
        {"question": "The white", "choices": [" whale", " cat"], "answer": 0},
    ]
    (tmp_path / "docs.jsonl").write_text("".join(json.dumps(d) + "\n" for d in docs))
    (tmp_path / "task.yaml").write_text(
        f"""task: hyb_tiny_choice
dataset_path: json
dataset_kwargs:
  data_files:
    test: {tmp_path / 'docs.jsonl'}
test_split: test
output_type: multiple_choice
doc_to_text: "{{{{question}}}}"
doc_to_choice: "{{{{choices}}}}"
doc_to_target: "{{{{answer}}}}"
metric_list:
  - metric: acc
"""
    )
    results = lm_eval.simple_evaluate(
        model="hyb",
        model_args=f"path={run},batch_size=2",
        tasks=["hyb_tiny_choice"],
        task_manager=TaskManager(include_path=str(tmp_path)),
    )
    acc = results["results"]["hyb_tiny_choice"]["acc,none"]
    # The same choice by hand: the continuation of the highest log-likelihood.
    lm = HybLM(run)
    right = 0
    for doc in docs:
        scores = [lm.loglikelihood([(doc["question"], c)])[0][0] for c in doc["choices"]]
        right += int(np.argmax(scores) == doc["answer"])
    assert acc == pytest.approx(right / len(docs))
    # lm-eval's command line through `python -m hyb.lm_eval`: the same figure.
    cli = subprocess.run(
        [sys.executable, "-m", "hyb.lm_eval", "run", "--model", "hyb", "--model_args", f"path={run}"]
        + ["--tasks", "hyb_tiny_choice", "--include_path", str(tmp_path), "--output_path", str(tmp_path / "out")],
        capture_output=True,
        text=True,
    )
    assert cli.returncode == 0, cli.stderr[-2000:]
    (written,) = (tmp_path / "out").rglob("results_*.json")
    assert json.loads(written.read_text())["results"]["hyb_tiny_choice"]["acc,none"] == pytest.approx(acc)
