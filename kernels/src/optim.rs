//! The optimizer step's kernels: the sum of squares of a gradient (the host adds them
//! over parameters for the global norm that clipping needs), and AdamW with decoupled
//! weight decay, as PyTorch's `AdamW` computes it:
//! `p ← p · (1 − lr · wd)`; `m ← β₁ m + (1 − β₁) g`; `v ← β₂ v + (1 − β₂) g²`;
//! `p ← p − lr · (m / (1 − β₁ᵗ)) / (sqrt(v / (1 − β₂ᵗ)) + ε)`, with `g` the gradient
//! times the clipping factor. The step's scalars arrive in a small buffer, so one
//! compiled kernel serves every step: `[lr, β₁, β₂, ε, wd, 1 − β₁ᵗ, 1 − β₂ᵗ, clip]`.

use crate::emit::{Builder, Config, Scalar, Ty, Value};

/// Args: g `[n]`, out `[1]` (accumulates Σ g²).
pub fn sum_of_squares(name: &str) -> String {
    sum_of_squares_with(name, &Config::CPU)
}

/// [`sum_of_squares`] under any [`Config`]; `out` is f32 under every one (a host scalar,
/// as `clip` reads it).
pub fn sum_of_squares_with(name: &str, config: &Config) -> String {
    let mut e = Builder::new(*config);
    let g = e.tensor(1);
    e.begin_function_typed(name, &[("g", g), ("out", Ty::memref(1, Scalar::F32))]);
    let (g, out) = (e.arg("g"), e.arg("out"));
    let n = e.named("n").dim(&g, 0);
    let total = e.dot(&n, |e, i| {
        let g = e.load(&g, &[i]);
        (g.clone(), g)
    });
    let c0 = e.c0();
    e.accumulate_shared(&out, &[&c0], &total);
    e.finish()
}

/// The step's scalars, read once from the scalar buffer, and the factors derived from them.
struct Step {
    lr: Value,
    b1: Value,
    b2: Value,
    eps: Value,
    bc1: Value,
    bc2: Value,
    clip: Value,
    /// `1 − lr · wd`.
    shrink: Value,
    one_b1: Value,
    one_b2: Value,
}

fn read_step(e: &mut Builder) -> Step {
    let buffer = e.arg("s");
    let names = ["lr", "b1", "b2", "eps", "wd", "bc1", "bc2", "clip"];
    let scalars: Vec<Value> = names
        .iter()
        .enumerate()
        .map(|(index, scalar)| {
            let position = e.named(&format!("i{index}")).constant_index(index as u64);
            e.named(scalar).load(&buffer, &[&position])
        })
        .collect();
    let [lr, b1, b2, eps, wd, bc1, bc2, clip] = <[Value; 8]>::try_from(scalars).expect("eight scalars");
    let one = e.one();
    let lr_wd = e.named("lr_wd").mul(&lr, &wd);
    let shrink = e.named("shrink").sub(&one, &lr_wd);
    let one_b1 = e.named("one_b1").sub(&one, &b1);
    let one_b2 = e.named("one_b2").sub(&one, &b2);
    Step { lr, b1, b2, eps, bc1, bc2, clip, shrink, one_b1, one_b2 }
}

/// Args: p, g, m, v (all `[n]`), scalars `[8]`. Updates p, m, v in place.
pub fn adamw(name: &str) -> String {
    adamw_with(name, &Config::CPU)
}

/// [`adamw`] under any [`Config`]; the scalars are f32 under every one (host scalars).
pub fn adamw_with(name: &str, config: &Config) -> String {
    let mut e = Builder::new(*config);
    let tensor = e.tensor(1);
    let scalars = Ty::memref(1, Scalar::F32);
    let args = [("p", tensor), ("g", tensor), ("m", tensor), ("v", tensor), ("s", scalars)];
    e.begin_function_typed(name, &args);
    let (p, g, m, v) = (e.arg("p"), e.arg("g"), e.arg("m"), e.arg("v"));
    let step = read_step(&mut e);
    let n = e.named("n").dim(&p, 0);
    let c0 = e.c0();
    e.for_(&c0, &n, |e, i| {
        let raw = e.load(&g, &[&i]);
        let grad = e.mul(&raw, &step.clip);
        let m_old = e.load(&m, &[&i]);
        let v_old = e.load(&v, &[&i]);
        let m_keep = e.mul(&step.b1, &m_old);
        let m_add = e.mul(&step.one_b1, &grad);
        let m_new = e.add(&m_keep, &m_add);
        let g2 = e.mul(&grad, &grad);
        let v_keep = e.mul(&step.b2, &v_old);
        let v_add = e.mul(&step.one_b2, &g2);
        let v_new = e.add(&v_keep, &v_add);
        e.store(&m_new, &m, &[&i]);
        e.store(&v_new, &v, &[&i]);
        let m_hat = e.div(&m_new, &step.bc1);
        let v_hat = e.div(&v_new, &step.bc2);
        let root = e.sqrt(&v_hat);
        let den = e.add(&root, &step.eps);
        let ratio = e.div(&m_hat, &den);
        let lr_step = e.mul(&step.lr, &ratio);
        let p_old = e.load(&p, &[&i]);
        let decayed = e.mul(&p_old, &step.shrink);
        let p_new = e.sub(&decayed, &lr_step);
        e.store(&p_new, &p, &[&i]);
    });
    e.finish()
}
