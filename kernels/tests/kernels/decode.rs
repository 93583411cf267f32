//! The decoding kernels, one token at a time, against the plain references of the whole
//! sequence: attention over a key/value cache, RoPE at a position, the convolution's
//! window. Tolerance 2e-5 of the largest reference value; NaN never passes.

use hyb_kernels::attention::{self, AttentionSpec};
use hyb_kernels::conv;
use hyb_kernels::jit::{self, AsDescriptor, MemRef};
use rand::SeedableRng;
use rand::rngs::SmallRng;

use crate::attention::{Dims, reference, rope_reference};
use crate::common::{assert_close, f32s, random_in};

/// Row `t` of a `[B, T, ...]` tensor of `width` elements per (b, t), as `[B, 1, ...]`.
fn row(x: &[f64], batch: usize, time: usize, width: usize, t: usize) -> Vec<f64> {
    (0..batch).flat_map(|b| x[(b * time + t) * width..][..width].to_vec()).collect()
}

fn check_attention(spec: AttentionSpec, s: Dims, seed: u64) {
    let mut rng = SmallRng::seed_from_u64(seed);
    let q = random_in(&mut rng, s.batch * s.time * s.heads * s.dim, -1.0, 1.0);
    let k = random_in(&mut rng, s.batch * s.time * s.kv_heads * s.dim, -1.0, 1.0);
    let v = random_in(&mut rng, s.batch * s.time * s.kv_heads * s.dim, -1.0, 1.0);
    let want = reference(&spec, s, &q, &k, &v);
    let compiled = jit::compile(&attention::decode(&spec, "decode")).expect("compiles");
    let longest = s.time + 3;
    let cache_shape = [s.batch, longest, s.kv_heads, s.dim];
    let (mut k_cache, mut v_cache) = (MemRef::zeros(cache_shape), MemRef::zeros(cache_shape));
    let (q_width, kv_width) = (s.heads * s.dim, s.kv_heads * s.dim);
    for t in 0..s.time {
        let new = |x: &[f64], width: usize, heads: usize| {
            MemRef::new([s.batch, 1, heads, s.dim], f32s(&row(x, s.batch, s.time, width, t)))
        };
        let (mut qm, mut km, mut vm) =
            (new(&q, q_width, s.heads), new(&k, kv_width, s.kv_heads), new(&v, kv_width, s.kv_heads));
        let mut pos = MemRef::new([1], vec![t as f32]);
        let mut o = MemRef::zeros([s.batch, 1, s.heads, s.dim]);
        let mut args: Vec<&mut dyn AsDescriptor> =
            vec![&mut qm, &mut km, &mut vm, &mut k_cache, &mut v_cache, &mut pos, &mut o];
        // SAFETY: shapes as attention::decode documents.
        unsafe { compiled.call("decode", &mut args) }.expect("runs");
        let label = format!("{spec:?} token {t}");
        assert_close(&label, &o.data, &row(&want, s.batch, s.time, q_width, t), 2e-5, 1e-3);
    }
}

#[test]
fn attention_decodes_over_its_cache_as_over_the_whole_sequence() {
    let full = AttentionSpec { group: 1, window: None, scale: 0.5, head_dim: 4 };
    check_attention(full, Dims { batch: 2, time: 9, heads: 2, kv_heads: 2, dim: 4 }, 1);
    let gqa = AttentionSpec { group: 2, window: None, scale: 0.35, head_dim: 6 };
    check_attention(gqa, Dims { batch: 1, time: 7, heads: 4, kv_heads: 2, dim: 6 }, 2);
    let windowed = AttentionSpec { group: 1, window: Some(3), scale: 0.5, head_dim: 4 };
    check_attention(windowed, Dims { batch: 2, time: 10, heads: 2, kv_heads: 2, dim: 4 }, 3);
}

#[test]
fn rope_at_a_position_rotates_as_at_that_row() {
    let shape = [2, 11, 3, 8];
    let [batch, time, heads, dim] = shape;
    let mut rng = SmallRng::seed_from_u64(4);
    let x = random_in(&mut rng, shape.iter().product(), -1.0, 1.0);
    let want = rope_reference(&x, shape, 10000.0);
    let compiled = jit::compile(&attention::rope_at(10000.0, "rope_at")).expect("compiles");
    for t in 0..time {
        let mut xm = MemRef::new([batch, 1, heads, dim], f32s(&row(&x, batch, time, heads * dim, t)));
        let mut pos = MemRef::new([1], vec![t as f32]);
        let mut y = MemRef::zeros([batch, 1, heads, dim]);
        let mut args: Vec<&mut dyn AsDescriptor> = vec![&mut xm, &mut pos, &mut y];
        // SAFETY: x, y [B,1,H,D]; pos [1].
        unsafe { compiled.call("rope_at", &mut args) }.expect("runs");
        assert_close(&format!("rope at {t}"), &y.data, &row(&want, batch, time, heads * dim, t), 2e-5, 1e-3);
    }
}

/// The causal depthwise convolution over the whole sequence, `[B, T, C]`.
fn conv_reference(x: &[f64], w: &[f64], bias: Option<&[f64]>, [b, t, c, width]: [usize; 4]) -> Vec<f64> {
    let mut y = vec![0.0; b * t * c];
    for bi in 0..b {
        for ti in 0..t {
            for ci in 0..c {
                let taps = (0..width).filter(|j| ti + j + 1 >= width);
                let sum: f64 = taps.map(|j| w[ci * width + j] * x[(bi * t + ti + j + 1 - width) * c + ci]).sum();
                y[(bi * t + ti) * c + ci] = sum + bias.map_or(0.0, |bias| bias[ci]);
            }
        }
    }
    y
}

#[test]
fn convolution_steps_through_its_window_as_over_the_whole_sequence() {
    for (seed, (b, t, c, width, with_bias)) in
        [(2, 9, 5, 4, true), (1, 6, 3, 2, false), (2, 3, 2, 1, true)].into_iter().enumerate()
    {
        let mut rng = SmallRng::seed_from_u64(seed as u64);
        let x = random_in(&mut rng, b * t * c, -1.0, 1.0);
        let w = random_in(&mut rng, c * width, -1.0, 1.0);
        let bias = random_in(&mut rng, c, -1.0, 1.0);
        let want = conv_reference(&x, &w, with_bias.then_some(&bias[..]), [b, t, c, width]);
        let compiled = jit::compile(&conv::step(with_bias, "step")).expect("compiles");
        let mut wm = MemRef::new([c, 1, width], f32s(&w));
        let mut bm = MemRef::new([c], f32s(&bias));
        let mut window = MemRef::zeros([b, width, c]);
        for ti in 0..t {
            let mut xm = MemRef::new([b, 1, c], f32s(&row(&x, b, t, c, ti)));
            let mut y = MemRef::zeros([b, 1, c]);
            let mut args: Vec<&mut dyn AsDescriptor> = vec![&mut xm, &mut wm];
            if with_bias {
                args.push(&mut bm);
            }
            args.extend([&mut window as &mut dyn AsDescriptor, &mut y]);
            // SAFETY: shapes as conv::step documents.
            unsafe { compiled.call("step", &mut args) }.expect("runs");
            assert_close(&format!("conv step {ti} (W={width})"), &y.data, &row(&want, b, t, c, ti), 2e-5, 1e-3);
        }
    }
}
