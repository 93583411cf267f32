"""An lm-evaluation-harness model over hyb: a hyb checkpoint, run directory or published
fla / Hugging Face directory scored by lm-eval's tasks.

    python -m hyb.lm_eval run --model hyb --model_args path=runs/text_gla --tasks ...

(lm-eval finds models registered when their module is imported, so ``python -m
hyb.lm_eval`` imports this one and then runs lm-eval's command line; in Python,
``import hyb.lm_eval`` before ``lm_eval.simple_evaluate(model="hyb", ...)``.)

:class:`HybLM` does the work and needs nothing of lm-eval (its methods take lm-eval's
``Instance`` objects or plain argument tuples); the class registered as ``hyb`` adds
lm-eval's ``LM`` base when lm-eval is installed.

- ``loglikelihood``: ``(context, continuation)`` → (sum of the continuation's token
  log-probabilities, whether greedy decoding gives it). The pair is tokenized as
  lm-eval's Hugging Face model does: the context's trailing spaces move to the
  continuation, the whole is encoded and split after the context's tokens. An empty
  context is replaced by ``prefix_token`` (default 0).
- ``loglikelihood_rolling``: a whole text's log-likelihood, every token predicted once
  with as much context as fits ``max_length`` (windows, the last one full-sized).
- ``generate_until``: greedy (or sampled, with ``do_sample``) continuation, cut at the
  first ``until`` string.

The model runs at ``batch_size × max_length`` (the model's training length unless
given); shorter inputs are padded on the right, which no causal layer reads.
"""

import numpy as np

import hyb


def _args(request):
    """An lm-eval ``Instance``'s arguments, or the tuple itself."""
    return getattr(request, "args", request)


def _log_softmax(logits):
    logits = logits.astype(np.float64)
    top = logits.max(-1, keepdims=True)
    return logits - top - np.log(np.exp(logits - top).sum(-1, keepdims=True))


class HybLM:
    """Scores and generates with a hyb checkpoint (see the module's documentation)."""

    def __init__(self, path, file=None, batch_size=1, max_length=None, target=None, prefix_token=0, **_ignored):
        batch = int(batch_size) if str(batch_size).isdigit() else 1
        seq_len = int(max_length) if max_length is not None else None
        self.trainer = hyb.load(str(path), file=file, batch=batch, seq_len=seq_len, target=target)
        self.tokenizer = hyb.tokenizer(str(path), file=file)
        self.max_length = self.trainer.seq_len
        self.prefix_token = int(prefix_token)

    # Scoring: log-probabilities of inputs of at most max_length tokens.

    def _log_probs(self, inputs):
        """For each list of ids (at most ``max_length``), the log-probabilities of the next
        token at each of its positions: float64 ``[len, vocab]``."""
        batch, length = self.trainer.batch_size, self.max_length
        out = []
        for start in range(0, len(inputs), batch):
            rows = inputs[start : start + batch]
            padded = np.zeros((batch, length), np.int32)
            for row, ids in enumerate(rows):
                assert 0 < len(ids) <= length, "an input of 1 to max_length tokens"
                padded[row, : len(ids)] = ids
            logits = self.trainer.logits(padded)
            out.extend(_log_softmax(logits[row, : len(ids)]) for row, ids in enumerate(rows))
        return out

    def _encode_pair(self, context, continuation):
        spaces = len(context) - len(context.rstrip())
        if spaces > 0:
            context, continuation = context[:-spaces], context[-spaces:] + continuation
        whole = self.tokenizer.encode(context + continuation)
        context_ids = self.tokenizer.encode(context)
        return context_ids, whole[len(context_ids) :]

    def loglikelihood(self, requests, **_options):
        inputs, targets = [], []
        for context, continuation in map(_args, requests):
            context_ids, continuation_ids = self._encode_pair(context, continuation)
            whole = (context_ids or [self.prefix_token]) + continuation_ids
            whole = whole[-(self.max_length + 1) :]
            inputs.append(whole[:-1])
            targets.append(continuation_ids[-self.max_length :])
        scored = iter(self._log_probs([i for i, wanted in zip(inputs, targets) if wanted]))
        results = []
        for wanted in targets:
            if not wanted:  # an empty continuation: certain
                results.append((0.0, True))
                continue
            rows = next(scored)[-len(wanted) :]
            picked = rows[np.arange(len(wanted)), wanted]
            results.append((float(picked.sum()), bool((rows.argmax(-1) == wanted).all())))
        return results

    def _windows(self, ids):
        """(input, number of predicted tokens at its end) covering ``ids`` after the prefix
        token, each input at most ``max_length`` long, every token predicted once."""
        sequence = [self.prefix_token] + ids
        windows, done = [], 0
        while done < len(ids):
            end = min(len(ids), done + self.max_length)  # predict sequence[done + 1 .. end]
            start = max(0, end - self.max_length)
            windows.append((sequence[start:end], end - done))
            done = end
        return windows

    def loglikelihood_rolling(self, requests, **_options):
        results = []
        for (text,) in map(_args, requests):
            ids = self.tokenizer.encode(text)
            windows = self._windows(ids)
            total, position = 0.0, 0
            for log_probs, (window, count) in zip(self._log_probs([w for w, _ in windows]), windows):
                wanted = ids[position : position + count]
                total += float(log_probs[-count:][np.arange(count), wanted].sum())
                position += count
            results.append(total)
        return results

    def generate_until(self, requests, **_options):
        results = []
        for context, options in map(_args, requests):
            options = dict(options or {})
            until = options.get("until") or []
            until = [until] if isinstance(until, str) else list(until)
            sampled = bool(options.get("do_sample", False))
            temperature = float(options.get("temperature", 0.0)) if sampled else 0.0
            prompt = (self.tokenizer.encode(context) or [self.prefix_token])[-self.max_length :]
            new = self.trainer.generate(
                prompt, max_new_tokens=int(options.get("max_gen_toks", 256)), temperature=temperature
            )
            text = self.tokenizer.decode(new)
            cuts = [text.index(stop) for stop in until if stop and stop in text]
            results.append(text[: min(cuts)] if cuts else text)
        return results


try:
    from lm_eval.api.model import LM
    from lm_eval.api.registry import register_model
except ImportError:  # lm-eval is optional: HybLM works without it
    LM = None

if LM is not None:

    @register_model("hyb")
    class HybEvalLM(HybLM, LM):
        """``--model hyb``: :class:`HybLM` as an lm-eval ``LM``."""

        def __init__(self, path, **options):
            LM.__init__(self)
            HybLM.__init__(self, path, **options)


def main():
    """``python -m hyb.lm_eval ARGS``: lm-eval's command line with ``hyb`` registered."""
    if LM is None:
        raise SystemExit("lm-eval is not installed: pip install lm-eval")
    from lm_eval.__main__ import cli_evaluate

    cli_evaluate()


if __name__ == "__main__":
    main()
