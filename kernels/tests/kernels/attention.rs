//! Attention and RoPE against plain f64 references; gradients against central finite
//! differences (ε = 1e-5). Tolerances: 2e-5 forward, 2e-4 gradients, relative to the
//! largest reference value.

use hyb_kernels::attention::{self, AttentionSpec};
use hyb_kernels::emit::{Config, Parallel};
use hyb_kernels::jit::{self, AsDescriptor, MemRef};
use rand::SeedableRng;
use rand::rngs::SmallRng;

use crate::common::{f32s, random_in};

fn random(rng: &mut SmallRng, len: usize) -> Vec<f64> {
    random_in(rng, len, -1.0, 1.0)
}

fn assert_close(what: &str, got: &[f32], want: &[f64], tolerance: f64) {
    crate::common::assert_close(what, got, want, tolerance, 1e-3);
}

#[derive(Clone, Copy)]
pub struct Dims {
    pub batch: usize,
    pub time: usize,
    pub heads: usize,
    pub kv_heads: usize,
    pub dim: usize,
}

/// Causal softmax attention, written plainly: the output `[B,T,H,D]`.
pub fn reference(spec: &AttentionSpec, s: Dims, q: &[f64], k: &[f64], v: &[f64]) -> Vec<f64> {
    let group = spec.group as usize;
    let mut out = vec![0.0; s.batch * s.time * s.heads * s.dim];
    for b in 0..s.batch {
        for h in 0..s.heads {
            let hk = h / group;
            for t in 0..s.time {
                let first = spec.window.map_or(0, |w| (t + 1).saturating_sub(w as usize));
                let qi = |d: usize| q[((b * s.time + t) * s.heads + h) * s.dim + d];
                let ki = |u: usize, d: usize| k[((b * s.time + u) * s.kv_heads + hk) * s.dim + d];
                let scores: Vec<f64> =
                    (first..=t).map(|u| spec.scale * (0..s.dim).map(|d| qi(d) * ki(u, d)).sum::<f64>()).collect();
                let max = scores.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
                let weights: Vec<f64> = scores.iter().map(|x| (x - max).exp()).collect();
                let total: f64 = weights.iter().sum();
                for d in 0..s.dim {
                    out[((b * s.time + t) * s.heads + h) * s.dim + d] = (first..=t)
                        .zip(&weights)
                        .map(|(u, w)| w / total * v[((b * s.time + u) * s.kv_heads + hk) * s.dim + d])
                        .sum::<f64>();
                }
            }
        }
    }
    out
}

/// The forward against softmax attention written plainly and the backward against
/// finite differences, on the CPU and under [`crate::ONE_LANE`] (the GPU's lanes form,
/// a lane per (query head, row), lane by lane), outputs and gradients poisoned first.
fn check(spec: AttentionSpec, s: Dims, seed: u64) {
    for config in [Config::CPU, crate::ONE_LANE] {
        check_with(spec, s, seed, &config);
    }
}

fn check_with(spec: AttentionSpec, s: Dims, seed: u64, config: &Config) {
    let lanes = (config.parallel == Parallel::OneLane).then_some(s.heads * s.time);
    let label =
        format!("{spec:?} B={} T={} H={} Hkv={} D={} lanes={lanes:?}", s.batch, s.time, s.heads, s.kv_heads, s.dim);
    let mut rng = SmallRng::seed_from_u64(seed);
    let (q, k, v) = (
        random(&mut rng, s.batch * s.time * s.heads * s.dim),
        random(&mut rng, s.batch * s.time * s.kv_heads * s.dim),
        random(&mut rng, s.batch * s.time * s.kv_heads * s.dim),
    );
    let weights = random(&mut rng, q.len());
    let forward = jit::compile(&attention::forward_with(&spec, "attn_fwd", config)).expect("compiles");
    let backward = jit::compile(&attention::backward_with(&spec, "attn_bwd", config)).expect("compiles");
    let q_shape = [s.batch, s.time, s.heads, s.dim];
    let kv_shape = [s.batch, s.time, s.kv_heads, s.dim];
    let (mut qm, mut km, mut vm) =
        (MemRef::new(q_shape, f32s(&q)), MemRef::new(kv_shape, f32s(&k)), MemRef::new(kv_shape, f32s(&v)));
    let mut o = MemRef::new(q_shape, vec![f32::NAN; q.len()]);
    let mut lse = MemRef::new([s.batch, s.heads, s.time], vec![f32::NAN; s.batch * s.heads * s.time]);
    {
        // Shapes as AttentionSpec::forward_arguments describes.
        let mut args: Vec<&mut dyn AsDescriptor> = vec![&mut qm, &mut km, &mut vm, &mut o, &mut lse];
        crate::call(&forward, "attn_fwd", &mut args, lanes);
    }
    assert_close(&format!("{label} output"), &o.data, &reference(&spec, s, &q, &k, &v), 2e-5);

    let mut dout = MemRef::new(q_shape, f32s(&weights));
    let (mut dq, mut dk, mut dv) = (MemRef::zeros(q_shape), MemRef::zeros(kv_shape), MemRef::zeros(kv_shape));
    {
        // Shapes as AttentionSpec::backward_arguments describes.
        let mut args: Vec<&mut dyn AsDescriptor> =
            vec![&mut qm, &mut km, &mut vm, &mut o, &mut lse, &mut dout, &mut dq, &mut dk, &mut dv];
        crate::call(&backward, "attn_bwd", &mut args, lanes);
    }
    let loss = |q: &[f64], k: &[f64], v: &[f64]| -> f64 {
        reference(&spec, s, q, k, v).iter().zip(&weights).map(|(a, b)| a * b).sum()
    };
    let epsilon = 1e-5;
    let fd = |which: usize| -> Vec<f64> {
        let mut inputs = [q.clone(), k.clone(), v.clone()];
        (0..inputs[which].len())
            .map(|index| {
                let original = inputs[which][index];
                inputs[which][index] = original + epsilon;
                let up = loss(&inputs[0], &inputs[1], &inputs[2]);
                inputs[which][index] = original - epsilon;
                let down = loss(&inputs[0], &inputs[1], &inputs[2]);
                inputs[which][index] = original;
                (up - down) / (2.0 * epsilon)
            })
            .collect()
    };
    for (name, got, which) in [("dq", &dq.data, 0), ("dk", &dk.data, 1), ("dv", &dv.data, 2)] {
        assert!(got.iter().all(|x| x.is_finite()), "{label} {name}: non-finite");
        assert_close(&format!("{label} {name}"), got, &fd(which), 2e-4);
    }
}

#[test]
fn attention_matches_softmax_and_finite_differences() {
    let full = AttentionSpec { group: 1, window: None, scale: 0.5, head_dim: 4 };
    check(full, Dims { batch: 1, time: 1, heads: 1, kv_heads: 1, dim: 4 }, 1);
    check(full, Dims { batch: 2, time: 9, heads: 2, kv_heads: 2, dim: 4 }, 2);
    let gqa = AttentionSpec { group: 2, window: None, scale: 0.35, head_dim: 6 };
    check(gqa, Dims { batch: 2, time: 7, heads: 4, kv_heads: 2, dim: 6 }, 3);
    let windowed = AttentionSpec { group: 1, window: Some(3), scale: 0.5, head_dim: 4 };
    check(windowed, Dims { batch: 1, time: 10, heads: 2, kv_heads: 2, dim: 4 }, 4);
    // Past a warp of rows (the key rows' walk starts at their warp's first row).
    check(full, Dims { batch: 1, time: 40, heads: 1, kv_heads: 1, dim: 4 }, 5);
}

/// The rotate-half RoPE, written plainly.
pub fn rope_reference(x: &[f64], shape: [usize; 4], base: f64) -> Vec<f64> {
    let [batch, time, heads, dim] = shape;
    let half = dim / 2;
    let mut y = x.to_vec();
    for b in 0..batch {
        for t in 0..time {
            for h in 0..heads {
                let at = ((b * time + t) * heads + h) * dim;
                for i in 0..half {
                    let angle = t as f64 * base.powf(-2.0 * i as f64 / dim as f64);
                    let (x1, x2) = (x[at + i], x[at + i + half]);
                    y[at + i] = x1 * angle.cos() - x2 * angle.sin();
                    y[at + i + half] = x2 * angle.cos() + x1 * angle.sin();
                }
            }
        }
    }
    y
}

#[test]
fn rope_rotates_and_its_inverse_is_its_gradient() {
    for config in [Config::CPU, crate::ONE_LANE] {
        check_rope(&config);
    }
}

/// RoPE under `config` (under [`crate::ONE_LANE`] lane by lane, a lane per (row, head)),
/// its output poisoned with NaN first.
fn check_rope(config: &Config) {
    let shape = [2, 13, 3, 8];
    let lanes = (config.parallel == Parallel::OneLane).then_some(shape[1] * shape[2]);
    let mut rng = SmallRng::seed_from_u64(7);
    let x = random(&mut rng, shape.iter().product());
    let run = |inverse: bool, input: &[f64]| -> Vec<f32> {
        let compiled = jit::compile(&attention::rope_with(10000.0, "rope", inverse, config)).expect("compiles");
        let mut xm = MemRef::new(shape, f32s(input));
        let mut y = MemRef::new(shape, vec![f32::NAN; input.len()]);
        let mut args: Vec<&mut dyn AsDescriptor> = vec![&mut xm, &mut y];
        crate::call(&compiled, "rope", &mut args, lanes);
        y.data
    };
    let rotated = run(false, &x);
    assert_close("rope", &rotated, &rope_reference(&x, shape, 10000.0), 2e-5);
    let back = run(true, &rotated.iter().map(|v| *v as f64).collect::<Vec<_>>());
    assert_close("rope then inverse", &back, &x, 1e-5);
    // d/dx Σ w ⊙ rope(x) = rope⁻¹(w): the rotation is orthogonal.
    let w = random(&mut rng, x.len());
    let gradient = run(true, &w);
    let epsilon = 1e-5;
    let loss = |x: &[f64]| rope_reference(x, shape, 10000.0).iter().zip(&w).map(|(a, b)| a * b).sum::<f64>();
    let mut probe = x.clone();
    let fd: Vec<f64> = (0..x.len())
        .map(|index| {
            probe[index] = x[index] + epsilon;
            let up = loss(&probe);
            probe[index] = x[index] - epsilon;
            let down = loss(&probe);
            probe[index] = x[index];
            (up - down) / (2.0 * epsilon)
        })
        .collect();
    assert_close("rope gradient", &gradient, &fd, 2e-4);
}
