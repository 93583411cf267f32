"""hyb from Python: compile, train, evaluate and generate hybrid linear-attention models.

The native module ``hyb._hyb`` (Rust, pyo3) does the work through the same library
functions as the ``hybc`` command line; this package adds the progress display of
``train``. Every failure raises :class:`HybError`, whose message is the text ``hybc``
prints (a file's diagnostics rendered with their place in the file).

    >>> import hyb, numpy as np
    >>> model = hyb.compile_text(TEXT)            # or hyb.compile_file("model.hyb")
    >>> trainer = model.trainer(batch=2, seq_len=16, seed=0)
    >>> trainer.step(np.zeros((2, 16), np.int32))["loss"]
    >>> trainer.logits(tokens).shape              # (2, 16, vocab), float32
    >>> trainer.param("model.embeddings.weight")  # by fla's parameter name
"""

from ._hyb import (
    HybError,
    Model,
    Tokenizer,
    Trainer,
    __version__,
    compile_file,
    compile_text,
    evaluate,
    generate,
    load,
    load_model,
    tokenizer,
)
from ._hyb import train as _train
from .progress import History, Printer

__all__ = [
    "HybError",
    "History",
    "Model",
    "Printer",
    "Tokenizer",
    "Trainer",
    "__version__",
    "compile_file",
    "compile_text",
    "evaluate",
    "generate",
    "load",
    "load_model",
    "tokenizer",
    "train",
]


def train(file, *, callback="print", **options):
    """Trains a ``.hyb`` file as ``hybc train FILE`` does.

    ``options`` are the command line's flags as keywords: ``steps``, ``batch``,
    ``seq_len``, ``lr``, ``seed``, ``out``, ``resume``, ``init_from``,
    ``checkpoint_every``, ``sets`` (a list of ``"FIELD=VALUE"``, as ``--set``) and
    ``target``. ``callback`` receives a dict per message (``kind``: ``note``, ``start``,
    ``step``, ``eval``, ``checkpoint``); the default prints lines as the command line
    does (they show in a notebook); ``None`` is silent. Raising in the callback, or an
    interrupt, stops the run at the next step with a checkpoint, then re-raises.

    Returns ``{"final_loss", "scores", "stopped_at", "seconds", "out", "trainer"}``.
    """
    if isinstance(callback, str) and callback == "print":
        callback = Printer()
    return _train(str(file), callback=callback, **options)
