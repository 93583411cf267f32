//! Fused cross-entropy: the mean loss over the positions that have a target, and its
//! gradient, in one pass. `targets[b, t]` is the token position t should predict, or
//! negative for none (the last position of a language-modelling sequence; every
//! non-answer position of a recall task). Per predicted row: `logsumexp` in f32 with the
//! maximum subtracted; `loss = lse − logit[target]`; `dlogits = (softmax − onehot) / count`;
//! rows without a target get a zero gradient. With no target at all the loss is 0.
//! Shapes: logits, dlogits `[B, T, V]`; targets `[B, T]` i32 (this part's rows), and all
//! the step's targets (for the count of the mean); loss `[1]`, zeroed by the caller and
//! added into by every part.

use crate::emit::{Builder, Cmp, Config, Scalar, Ty, Value};

/// Args: logits, targets, all targets, loss, dlogits.
pub fn cross_entropy(name: &str) -> String {
    cross_entropy_with(name, &Config::CPU)
}

/// [`cross_entropy`] under any [`Config`]: the targets are i32 and the loss f32 (a host
/// scalar, accumulated row by row) under every one.
pub fn cross_entropy_with(name: &str, config: &Config) -> String {
    let mut e = Builder::new(*config);
    let args = [
        ("logits", e.tensor(3)),
        ("targets", Ty::memref(2, Scalar::I32)),
        ("all_targets", Ty::memref(2, Scalar::I32)),
        ("loss", Ty::memref(1, Scalar::F32)),
        ("dlogits", e.tensor(3)),
    ];
    e.begin_function_typed(name, &args);
    let [logits, targets, all, loss, dlogits] =
        ["logits", "targets", "all_targets", "loss", "dlogits"].map(|arg| e.arg(arg));
    e.constant_index(2);
    let none = e.named("none").constant_int(0, Scalar::I32);
    let batch = e.named("B").dim(&logits, 0);
    let time = e.named("T").dim(&logits, 1);
    let vocab = e.named("V").dim(&logits, 2);
    let all_batch = e.named("B_all").dim(&all, 0);
    let all_time = e.named("T_all").dim(&all, 1);
    let (c0, zero) = (e.c0(), e.zero());
    // count = the step's positions with a target (at least 1, so no target means loss 0).
    let count = e.fold1(&c0, &all_batch, &zero, |e, b, total| {
        e.fold1(&c0, &all_time, &total, |e, t, row_total| {
            let id = e.load(&all, &[&b, &t]);
            let valid = e.cmp(Cmp::Ge, &id, &none);
            let compute = e.compute();
            let one = e.uitofp(&valid, compute);
            e.add(&row_total, &one)
        })
    });
    let one = e.one();
    let count = e.max(&count, &one);
    e.for_(&c0, &batch, |e, b| {
        e.for_(&c0, &time, |e, t| {
            let id = e.load(&targets, &[&b, &t]);
            let valid = e.cmp(Cmp::Ge, &id, &none);
            e.if_else(
                &valid,
                |e| {
                    let target = e.index_cast(&id, Scalar::Index);
                    let row = Row { logits: &logits, b: &b, t: &t };
                    predicted_row(e, &row, &vocab, &target, &count, [&loss, &dlogits]);
                },
                |e| {
                    e.for_(&c0, &vocab, |e, v| {
                        let zero = e.zero();
                        e.store(&zero, &dlogits, &[&b, &t, &v]);
                    });
                },
            );
        });
    });
    e.finish()
}

/// The logits of position `(b, t)`.
struct Row<'a> {
    logits: &'a Value,
    b: &'a Value,
    t: &'a Value,
}

impl Row<'_> {
    fn load(&self, e: &mut Builder, v: &Value) -> Value {
        e.load(self.logits, &[self.b, self.t, v])
    }
}

/// A row with a target: its share of the mean loss added to `loss`, and its gradient
/// `(softmax − onehot) / count` written into `dlogits`.
fn predicted_row(
    e: &mut Builder,
    row: &Row,
    vocab: &Value,
    target: &Value,
    count: &Value,
    [loss, dlogits]: [&Value; 2],
) {
    let (max, sum) = e.max_and_sum_exp(vocab, &|e, v| row.load(e, v));
    let log_sum = e.log(&sum);
    let lse = e.add(&max, &log_sum);
    let picked = row.load(e, target);
    let row_loss = e.sub(&lse, &picked);
    let mean_part = e.div(&row_loss, count);
    let c0 = e.c0();
    e.accumulate_shared(loss, &[&c0], &mean_part);
    e.for_(&c0, vocab, |e, v| {
        let x = row.load(e, &v);
        let centred = e.sub(&x, &lse);
        let softmax = e.exp(&centred);
        let is_target = e.cmp(Cmp::Eq, &v, target);
        let compute = e.compute();
        let one_hot = e.uitofp(&is_target, compute);
        let diff = e.sub(&softmax, &one_hot);
        let grad = e.div(&diff, count);
        e.store(&grad, dlogits, &[row.b, row.t, &v]);
    });
}
