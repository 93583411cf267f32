"""hyb from Python: compile, train, evaluate and generate hybrid linear-attention models.

The native module ``hyb._hyb`` (Rust, pyo3) does the work through the same library
functions as the ``hybc`` command line; this package adds the progress display of
``train`` and ``sweep``. Every failure raises :class:`HybError`, whose message is the text ``hybc``
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
from ._hyb import sweep as _sweep
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
    "sweep",
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

    Started by torchrun or srun (``RANK`` / ``SLURM_PROCID`` set), the process is one rank
    of a data-parallel run on GPUs (``target="cuda"``), as ``hybc train`` is there: each
    rank trains its share of every batch over NCCL, and rank 0 alone calls back and
    writes the run (``torchrun --nproc-per-node 8 script.py``).

    Returns ``{"final_loss", "scores", "stopped_at", "seconds", "out", "trainer"}``.
    """
    if isinstance(callback, str) and callback == "print":
        callback = Printer()
    return _train(str(file), callback=callback, **options)


def sweep(file, *, callback="print", **options):
    """Runs the sweep of a ``.hyb`` file as ``hybc sweep FILE`` does, in this process.

    ``options``: ``out`` (default ``runs/<file stem>``), ``target``, ``sets`` (a list of
    ``"FIELD=VALUE"``, as ``--set``), ``report_only`` (``hybc sweep --report``: the
    tables of the runs done) and ``time_limit`` (seconds, as ``--time-limit``: no run
    starts that would not finish within them; the report waits for a call that
    trains every run). Every run not done before is trained; running the sweep
    again continues it. ``callback`` receives the sweep's lines (``kind: "sweep"``) and
    every run's messages as :func:`train`'s does; the default prints them; ``None`` is
    silent. Raising in the callback, or an interrupt, stops the run under way at the next
    step with a checkpoint, then re-raises. Several processes at once (``hybc sweep
    --jobs N``, shards on a cluster) are the command line's.

    Returns ``{"out", "stopped", "report" (results.md's text), "runs"}``, each run the
    dict its ``result.json`` holds (``run``, ``lets``, ``lr``, ``seed``, ``accuracy``, ...).
    """
    if isinstance(callback, str) and callback == "print":
        callback = Printer()
    return _sweep(str(file), callback=callback, **options)
