//! The runtime's tests: whole models compiled through the MLIR path and run on the CPU,
//! compared with an independent burn oracle (`oracle.rs`) — the loss and every
//! parameter's gradient — for every preset, compositions that are no preset, head-wise
//! routing and a 4-layer hybrid over five AdamW steps.
//!
//! Tolerances: the runtime computes in f32, the oracle in f64. Loss: relative 1e-5.
//! Gradients: per tensor, every element within 2e-3 of the tensor's largest reference
//! magnitude (floor 1e-6). NaN never passes.

mod decode;
mod gpu;
mod lockstep;
mod oracle;
mod precision;

use std::collections::HashMap;

use hyb_compiler::ir::{Init, Model};
use hyb_runtime::{Batch, Trainer};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

/// Shapes every case runs: T = 1 (nothing to predict: zero loss and gradients, no NaN),
/// a short odd length, and one past the scan's checkpoint interval (64) that is no
/// multiple of it, with batch > 1.
const SHAPES: [(usize, usize); 3] = [(1, 1), (2, 7), (3, 70)];

fn model(text: &str) -> Model {
    let compilation = hyb_compiler::pipeline::check_text("case.hyb", text);
    assert!(!compilation.checked.has_errors(), "{}", compilation.render());
    compilation.model().expect("checks").clone()
}

/// A tiny model around `mixers`: d_model 32, vocab 64.
fn tiny(mixers: &str, layers: &str) -> Model {
    model(&format!("{mixers}\nmodel {{\n    vocab = 64\n    d_model = 32\n    layers = {layers}\n}}\n"))
}

/// Random parameters that make every path matter: weights larger than at init, norm
/// weights around 1, the Mamba gate's parameters as initialised, HGRN's bounds spread.
fn random_params(model: &Model, seed: u64) -> HashMap<String, Vec<f64>> {
    let mut rng = SmallRng::seed_from_u64(seed);
    let mut uniform = |low: f64, high: f64| rng.random_range(low..high) as f32 as f64;
    model
        .params
        .iter()
        .map(|p| {
            let n = p.numel() as usize;
            let values = match p.init {
                Init::Ones => (0..n).map(|_| uniform(0.5, 1.5)).collect(),
                Init::MambaALog => (0..n).map(|_| uniform(-1.0, 1.0)).collect(),
                Init::MambaDtBias => (0..n).map(|_| uniform(-3.0, 0.0)).collect(),
                Init::Zeros if p.name == "model.lower_bounds" => (0..n).map(|_| uniform(-1.0, 1.0)).collect(),
                _ => {
                    let scale = 1.5 / (*p.shape.last().expect("a shape") as f64).sqrt();
                    (0..n).map(|_| uniform(-scale, scale)).collect()
                }
            };
            (p.name.clone(), values)
        })
        .collect()
}

fn random_tokens(vocab: u64, count: usize, seed: u64) -> Vec<i32> {
    let mut rng = SmallRng::seed_from_u64(seed);
    (0..count).map(|_| rng.random_range(0..vocab as i32)).collect()
}

fn assert_close(what: &str, got: &[f32], want: &[f64], tolerance: f64) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    let scale = want.iter().fold(1e-6f64, |m, v| m.max(v.abs()));
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        let error = (*g as f64 - w).abs() / scale;
        assert!(
            g.is_finite() && error <= tolerance,
            "{what}[{i}]: runtime {g}, oracle {w} (error {error:e} of {scale:e})"
        );
    }
}

/// Loss and every gradient of `model` equal the oracle's at every shape.
fn check_against_oracle(name: &str, model: &Model) {
    let params = random_params(model, 7);
    for (batch, seq_len) in SHAPES {
        let mut trainer = Trainer::new(model, batch, seq_len).unwrap_or_else(|e| panic!("{name}: {e}"));
        for (param, values) in &params {
            trainer.set_param(param, &values.iter().map(|v| *v as f32).collect::<Vec<_>>()).expect("known");
        }
        let tokens = random_tokens(model.config.vocab, batch * seq_len, 11);
        let targets = Batch::next_token_targets(&tokens, seq_len);
        let loss = trainer.forward_backward(&Batch { tokens: &tokens, targets: &targets }).expect("runs");
        let case = format!("{name} B={batch} T={seq_len}");
        if seq_len == 1 {
            assert_eq!(loss, 0.0, "{case}: nothing to predict");
            for p in &model.params {
                assert!(trainer.grad(&p.name).expect("known").iter().all(|g| *g == 0.0), "{case}: {}", p.name);
            }
            continue;
        }
        let oracle = oracle::Oracle::new(model, &params);
        let (want_loss, want_grads) = oracle.loss_and_grads(&tokens, batch, seq_len);
        assert!(((loss as f64 - want_loss) / want_loss).abs() < 1e-5, "{case}: loss {loss} vs oracle {want_loss}");
        for p in &model.params {
            let got = trainer.grad(&p.name).expect("known");
            assert_close(&format!("{case}: ∂{}", p.name), &got, &want_grads[&p.name], 2e-3);
        }
    }
}

const PRESETS: &str = "mixer hgrn     = hgrn()
mixer hgrn2    = hgrn2(heads: 2)
mixer retnet   = retnet(heads: 2)
mixer gla      = gla(heads: 2)
mixer deltanet = deltanet(heads: 2)
mixer gdn      = gated_deltanet(heads: 2, head_dim: 16, expand_v: 1)
mixer attn     = attention(heads: 2)
mixer gqa      = attention(heads: 4, kv_heads: 2, window: 5)";

#[test]
fn hgrn_matches_the_oracle() {
    check_against_oracle("hgrn", &tiny(PRESETS, "hgrn × 2"));
}

#[test]
fn hgrn2_matches_the_oracle() {
    check_against_oracle("hgrn2", &tiny(PRESETS, "hgrn2 × 2"));
}

#[test]
fn retnet_matches_the_oracle() {
    check_against_oracle("retnet", &tiny(PRESETS, "retnet × 2"));
}

#[test]
fn gla_matches_the_oracle() {
    check_against_oracle("gla", &tiny(PRESETS, "gla × 2"));
}

#[test]
fn deltanet_matches_the_oracle() {
    check_against_oracle("deltanet", &tiny(PRESETS, "deltanet × 2"));
}

#[test]
fn gated_deltanet_matches_the_oracle() {
    check_against_oracle("gdn", &tiny(PRESETS, "gdn × 2"));
}

#[test]
fn attention_matches_the_oracle() {
    check_against_oracle("attention", &tiny(PRESETS, "(attn, gqa)"));
    check_against_oracle("attention with convolutions", &tiny(ATTENTION_CONV, "(conv, gqa_conv)"));
}

/// Attention with a short convolution on q, k and v: plain, and grouped with a window,
/// SiLU after it and a bias.
const ATTENTION_CONV: &str = "mixer conv = attention(heads: 2, short_conv: 4)
mixer gqa_conv = attention(heads: 4, kv_heads: 2, window: 5, qkv_bias: true, short_conv: 3, conv_act: silu, conv_bias: true)";

/// Not presets: the delta rule with a per-channel gate; a scalar gate with an additive
/// update; a vector state with the layer-wise floor inside a hybrid; ungated elu
/// features with sum normalisation; GVA with negative eigenvalues.
#[test]
fn compositions_match_the_oracle() {
    let delta_vector = "mixer m = linear(heads: 2, head_dim: 16, update: delta, \
        gate: vector(logsigmoid, normalizer: 16, low_rank: 4), short_conv: 4, conv_act: identity, \
        qk_act: silu, v_act: silu, qk_norm: l2, output_gate: silu)";
    check_against_oracle("delta + vector gate", &tiny(delta_vector, "m × 2"));
    let scalar_additive = "mixer m = linear(heads: 2, head_dim: 16, update: additive, \
        gate: scalar(logsigmoid, normalizer: 16), short_conv: 4, qk_act: silu, output_gate: silu)";
    check_against_oracle("scalar gate + additive", &tiny(scalar_additive, "m × 2"));
    let vector_bound = "mixer rnn = linear(state: vector, gate: vector(logsigmoid), lower_bound: layerwise, \
        tie_key_to_gate: true, head_dim: 32, v_act: silu, output_gate: silu, output_norm: full)
        mixer attn = attention(heads: 2)";
    check_against_oracle("vector state + floor in a hybrid", &tiny(vector_bound, "(rnn, attn, rnn)"));
    let sum_norm = "mixer m = linear(heads: 2, head_dim: 16, update: additive, gate: none, qk_act: elu, qk_norm: sum)";
    check_against_oracle("elu features, sum normalised", &tiny(sum_norm, "m × 2"));
    let gva = "mixer gdn = gated_deltanet(heads: 2, head_dim: 8, expand_v: 2, v_heads: 4, neg_eigval: true)";
    check_against_oracle("gdn with GVA", &tiny(gva, "gdn × 2"));
}

#[test]
fn head_wise_routing_matches_the_oracle() {
    let concat = "mixer gdn = gated_deltanet(heads: 2, head_dim: 8, expand_v: 1)
        mixer attn = attention(heads: 2)
        mixer duo = heads(gdn: 2, attn: 2, combine: concat)";
    check_against_oracle("routed concat", &tiny(concat, "(duo, gdn)"));
    let mean = "mixer gla = gla(heads: 2)
        mixer attn = attention(heads: 2)
        mixer par = heads(gla: 2, attn: 2, combine: mean)";
    check_against_oracle("routed mean", &tiny(mean, "par × 2"));
}

/// AdamW as PyTorch computes it, with global-norm clipping, in f64.
fn adamw_f64(
    params: &mut HashMap<String, Vec<f64>>,
    grads: &HashMap<String, Vec<f64>>,
    moments: &mut HashMap<String, (Vec<f64>, Vec<f64>)>,
    adamw: &hyb_runtime::AdamW,
    step: i32,
) {
    let norm = grads.values().flatten().map(|g| g * g).sum::<f64>().sqrt();
    let clip = adamw.clip.map_or(1.0, |max| (max / (norm + 1e-6)).min(1.0));
    let (b1, b2) = adamw.betas;
    for (name, values) in params.iter_mut() {
        let (m, v) = moments.entry(name.clone()).or_insert_with(|| (vec![0.0; values.len()], vec![0.0; values.len()]));
        for i in 0..values.len() {
            let g = grads[name][i] * clip;
            values[i] *= 1.0 - adamw.lr * adamw.weight_decay;
            m[i] = b1 * m[i] + (1.0 - b1) * g;
            v[i] = b2 * v[i] + (1.0 - b2) * g * g;
            let m_hat = m[i] / (1.0 - b1.powi(step));
            let v_hat = v[i] / (1.0 - b2.powi(step));
            values[i] -= adamw.lr * m_hat / (v_hat.sqrt() + adamw.eps);
        }
    }
}

/// A 4-layer hybrid (3 GDN : 1 attention) takes five AdamW steps (clipping active) and
/// its loss trajectory equals the oracle's, which runs the same steps in f64.
#[test]
fn four_layer_hybrid_trains_along_the_oracles_trajectory() {
    let model = tiny(
        "mixer gdn = gated_deltanet(heads: 2, head_dim: 16, expand_v: 1)\nmixer attn = attention(heads: 2)",
        "(gdn × 3, attn)",
    );
    // eps 1e-5, not 1e-8: a gradient that is zero up to f32 noise (~1e-7 here) would
    // otherwise move its parameter by a whole step in a direction the noise picks.
    let adamw = hyb_runtime::AdamW { lr: 3e-3, betas: (0.9, 0.95), eps: 1e-5, weight_decay: 0.1, clip: Some(1.0) };
    let (batch, seq_len) = (2, 33);
    let mut params = random_params(&model, 5);
    let mut trainer = Trainer::new(&model, batch, seq_len).expect("compiles");
    for (name, values) in &params {
        trainer.set_param(name, &values.iter().map(|v| *v as f32).collect::<Vec<_>>()).expect("known");
    }
    let mut moments = HashMap::new();
    let mut clipped = false;
    for step in 1..=5 {
        let tokens = random_tokens(model.config.vocab, batch * seq_len, 100 + step as u64);
        let (want, grads) = oracle::Oracle::new(&model, &params).loss_and_grads(&tokens, batch, seq_len);
        let targets = Batch::next_token_targets(&tokens, seq_len);
        let stats = trainer.step(&Batch { tokens: &tokens, targets: &targets }, &adamw, adamw.lr).expect("runs");
        assert!(
            stats.loss.is_finite() && ((stats.loss as f64 - want) / want).abs() < 1e-4,
            "step {step}: loss {} vs oracle {want}",
            stats.loss
        );
        let norm = grads.values().flatten().map(|g| g * g).sum::<f64>().sqrt();
        // Same parameters at step 1; after it, the two trajectories differ by f32 rounding.
        let tolerance = if step == 1 { 1e-4 } else { 1e-2 };
        let error = ((stats.grad_norm as f64 - norm) / norm).abs();
        assert!(error < tolerance, "step {step}: grad norm {} vs {norm}", stats.grad_norm);
        clipped |= norm > 1.0;
        adamw_f64(&mut params, &grads, &mut moments, &adamw, step);
    }
    assert!(clipped, "the case exercises clipping");
    // Adam moves a parameter by about lr per step whatever its gradient's size, so f32
    // noise in a near-zero gradient shows as a fraction of a step: allow a quarter.
    for (name, values) in &params {
        let got = trainer.param(name).expect("known");
        for (i, (g, w)) in got.iter().zip(values).enumerate() {
            let error = (*g as f64 - w).abs();
            assert!(g.is_finite() && error <= 0.25 * adamw.lr, "{name}[{i}] after 5 steps: {g} vs oracle {w}");
        }
    }
}

/// The oracle itself against central differences of its own f64 loss, for a few
/// parameters of every op family (projections, convolution, gates, norms, the floor,
/// attention, the head), since it is what everything else is checked against.
#[test]
fn the_oracles_gradients_match_finite_differences() {
    let model = tiny(
        "mixer gdn = gated_deltanet(heads: 2, head_dim: 8, expand_v: 1)
        mixer rnn = hgrn()
        mixer attn = attention(heads: 2, window: 4)",
        "(rnn, gdn, attn, rnn)",
    );
    let mut params = random_params(&model, 3);
    let (batch, seq_len) = (2, 6);
    let tokens = random_tokens(model.config.vocab, batch * seq_len, 4);
    let (_, grads) = oracle::Oracle::new(&model, &params).loss_and_grads(&tokens, batch, seq_len);
    let probes = [
        "model.embeddings.weight",
        "model.layers.1.attn.q_conv1d.weight",
        "model.layers.1.attn.A_log",
        "model.layers.1.attn.dt_bias",
        "model.layers.1.attn.b_proj.weight",
        "model.layers.1.attn.o_norm.weight",
        "model.layers.2.attn.k_proj.weight",
        "model.layers.3.attn.f_proj.weight",
        "model.lower_bounds",
        "model.norm.weight",
        "lm_head.weight",
    ];
    for name in probes {
        for k in [0, 3, 7].map(|k| k % params[name].len()) {
            let base = params[name][k];
            let h = 1e-5;
            let mut at = |value: f64| {
                params.get_mut(name).expect("a parameter")[k] = value;
                oracle::Oracle::new(&model, &params).loss(&tokens, batch, seq_len).into_scalar()
            };
            let fd = (at(base + h) - at(base - h)) / (2.0 * h);
            params.get_mut(name).expect("a parameter")[k] = base;
            let want = grads[name][k];
            assert!((fd - want).abs() <= 1e-6 + 1e-5 * want.abs(), "{name}[{k}]: oracle {want}, differences {fd}");
        }
    }
}

/// A trainer or decoder sets flush-to-zero on the threads that run the step (a trained
/// model's subnormal values otherwise slow every kernel several times over).
#[test]
fn the_step_flushes_subnormals_on_every_thread() {
    let model = tiny(PRESETS, "(gdn, attn)");
    let _trainer = Trainer::new(&model, 1, 4).expect("compiles");
    assert!(hyb_runtime::cpu::denormals::flushing(), "this thread");
    assert!(rayon::broadcast(|_| hyb_runtime::cpu::denormals::flushing()).into_iter().all(|f| f), "rayon's threads");
}

/// An evaluator runs the training step's forward alone: the same loss and logits as a
/// trainer's forward, with no gradients or AdamW moments and a smaller planned arena; it
/// refuses a backward.
#[test]
fn an_evaluator_is_the_forward_alone() {
    let model = tiny(PRESETS, "(gdn, attn, gla)");
    let (batch, seq_len) = (2, 19);
    let mut trainer = Trainer::new(&model, batch, seq_len).expect("compiles");
    for (param, values) in random_params(&model, 3) {
        trainer.set_param(&param, &values.iter().map(|v| *v as f32).collect::<Vec<_>>()).expect("known");
    }
    let mut evaluator = trainer.evaluation(batch, seq_len).expect("compiles");
    evaluator.poison_scratch();
    let tokens = random_tokens(model.config.vocab, batch * seq_len, 5);
    let targets = Batch::next_token_targets(&tokens, seq_len);
    let inputs = Batch { tokens: &tokens, targets: &targets };
    let (want, got) = (trainer.forward(&inputs).expect("runs"), evaluator.forward(&inputs).expect("runs"));
    assert_eq!(got.to_bits(), want.to_bits(), "the same loss: {got} vs {want}");
    assert_eq!(evaluator.logits(), trainer.logits(), "the same logits");
    assert!(!evaluator.trains() && evaluator.program.grads.is_empty());
    assert!(
        evaluator.program.arena_bytes < trainer.program.arena_bytes,
        "forward-only arena {} against the step's {}",
        evaluator.program.arena_bytes,
        trainer.program.arena_bytes
    );
    assert!(evaluator.forward_backward(&inputs).is_err(), "no backward");
    assert!(!evaluator.resized(1, 7).expect("compiles").trains(), "resizing keeps it an evaluator");
    // Moved to another shape: an evaluator still, the same parameters; to its own
    // shape: itself.
    let params = evaluator.params();
    let moved = evaluator.into_resized(1, 7).expect("compiles");
    assert!(!moved.trains() && (moved.program.batch, moved.program.seq_len) == (1, 7));
    assert_eq!(moved.params(), params, "the parameters moved over");
    let instrs = moved.program.instrs.len();
    let same = moved.into_resized(1, 7).expect("itself");
    assert_eq!(same.program.instrs.len(), instrs);
}
