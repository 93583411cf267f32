"""Callbacks for :func:`hyb.train` and :func:`hyb.sweep`: :class:`Printer` prints the
run as ``hybc train`` does, and a sweep's own lines as ``hybc sweep`` does (plain lines,
which a notebook shows as they come); :class:`History` keeps every message for plotting
afterwards."""


class Printer:
    """Prints notes, the start, a step line every ``every`` steps (default: a
    twentieth of the run), evaluations and checkpoints."""

    def __init__(self, every=None, file=None):
        self.every = every
        self.file = file
        self._steps = 0

    def _print(self, text):
        print(text, file=self.file, flush=True)

    def __call__(self, message):
        kind = message["kind"]
        if kind in ("note", "sweep"):
            self._print(message["text"])
        elif kind == "start":
            self._steps = message["steps"]
            self._print(
                f"compiled in {message['compile_seconds']:.2f} s for {message['device']}: "
                f"{message['kernels']} kernels; {message['steps']} steps of batch "
                f"{message['batch']} × {message['seq_len']} tokens into {message['out']}"
            )
        elif kind == "step":
            every = self.every or max(1, self._steps // 20)
            step = message["step"]
            if step % every == 0 or step == self._steps:
                self._print(
                    f"step {step:>5}  loss {message['loss']:.4f}  grad_norm {message['grad_norm']:.3f}  "
                    f"lr {message['lr']:.2e}  {message['tokens_per_s']:.0f} tokens/s"
                )
        elif kind == "eval":
            for score in message["scores"]:
                figure = (
                    f"perplexity {score['perplexity']:.3f}"
                    if "perplexity" in score
                    else f"accuracy {100 * score['accuracy']:.1f}% ({score['total']} answers)"
                )
                self._print(f"eval {message['step']:>5}  {score['task']}  {figure}  loss {score['loss']:.4f}")
        elif kind == "checkpoint":
            self._print(f"checkpoint {message['step']:>5}  {message['path']}")


class History:
    """Keeps every message; ``losses`` are the (step, loss) pairs of the steps."""

    def __init__(self):
        self.messages = []

    def __call__(self, message):
        self.messages.append(message)

    @property
    def losses(self):
        return [(m["step"], m["loss"]) for m in self.messages if m["kind"] == "step"]
