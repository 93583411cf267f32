//! Decoding one token at a time equals the full forward pass: at every position of two
//! sequences, the decoder's logits match the forward's (relative 1e-4 of the largest
//! logit) and so does the greedy next token, for every mixer kind — each preset,
//! compositions with short convolutions and per-channel gates, head-wise routing and a
//! hybrid with windowed, grouped attention. A reset decoder starts over.

use hyb_compiler::ir::Model;
use hyb_runtime::{Batch, Trainer};

use crate::{PRESETS, assert_close, random_params, random_tokens, tiny};

const BATCH: usize = 2;
const LEN: usize = 9;

fn argmax(row: &[f32]) -> usize {
    (0..row.len()).max_by(|a, b| row[*a].total_cmp(&row[*b])).expect("a row")
}

/// The gap between the largest and the second largest logit.
fn margin(row: &[f32]) -> f32 {
    let best = argmax(row);
    let second = row.iter().enumerate().filter(|(i, _)| *i != best).map(|(_, v)| *v).fold(f32::MIN, f32::max);
    row[best] - second
}

fn check_decoding(name: &str, model: &Model) {
    let vocab = model.config.vocab as usize;
    let mut trainer = Trainer::new(model, BATCH, LEN).unwrap_or_else(|e| panic!("{name}: {e}"));
    for (param, values) in random_params(model, 5) {
        trainer.set_param(&param, &values.iter().map(|v| *v as f32).collect::<Vec<_>>()).expect("known");
    }
    let tokens = random_tokens(model.config.vocab, BATCH * LEN, 3);
    let targets = Batch::next_token_targets(&tokens, LEN);
    trainer.forward(&Batch { tokens: &tokens, targets: &targets }).expect("runs");
    let full: Vec<f64> = trainer.logits().iter().map(|v| *v as f64).collect();
    let mut decoder = trainer.decoder(BATCH, LEN + 2).unwrap_or_else(|e| panic!("{name}: {e}"));
    for pass in 0..2 {
        decoder.reset();
        for t in 0..LEN {
            let step: Vec<i32> = (0..BATCH).map(|b| tokens[b * LEN + t]).collect();
            let got = decoder.step(&step).expect("decodes").to_vec();
            for b in 0..BATCH {
                let row = &got[b * vocab..][..vocab];
                let want = &full[(b * LEN + t) * vocab..][..vocab];
                assert_close(&format!("{name} pass {pass} b={b} t={t}"), row, want, 1e-4);
                let want_f32: Vec<f32> = want.iter().map(|v| *v as f32).collect();
                if margin(&want_f32) > 1e-3 {
                    assert_eq!(argmax(row), argmax(&want_f32), "{name} b={b} t={t}: greedy token");
                }
            }
        }
    }
}

#[test]
fn decoding_matches_the_forward_pass_for_every_mixer() {
    for layers in ["hgrn × 2", "hgrn2 × 2", "retnet × 2", "gla × 2", "deltanet × 2", "gdn × 2", "(attn, gqa)"] {
        check_decoding(layers, &tiny(PRESETS, layers));
    }
    let delta_vector = "mixer m = linear(heads: 2, head_dim: 16, update: delta, \
        gate: vector(logsigmoid, normalizer: 16, low_rank: 4), short_conv: 4, conv_act: identity, \
        qk_act: silu, v_act: silu, qk_norm: l2, output_gate: silu)";
    check_decoding("delta + vector gate + conv", &tiny(delta_vector, "m × 2"));
    let attention_conv = "mixer conv = attention(heads: 2, short_conv: 4)
        mixer gqa_conv = attention(heads: 4, kv_heads: 2, window: 5, short_conv: 3, conv_act: silu, conv_bias: true)";
    check_decoding("attention with convolutions", &tiny(attention_conv, "(conv, gqa_conv)"));
    let vector_bound = "mixer rnn = linear(state: vector, gate: vector(logsigmoid), lower_bound: layerwise, \
        tie_key_to_gate: true, head_dim: 32, v_act: silu, output_gate: silu, output_norm: full)
        mixer attn = attention(heads: 2)";
    check_decoding("vector state + floor in a hybrid", &tiny(vector_bound, "(rnn, attn, rnn)"));
    let routed = "mixer gdn = gated_deltanet(heads: 2, head_dim: 8, expand_v: 1)
        mixer attn = attention(heads: 2)
        mixer duo = heads(gdn: 2, attn: 2, combine: concat)";
    check_decoding("routed concat", &tiny(routed, "(duo, gdn)"));
    let hybrid = format!("{PRESETS}\nmixer gva = gated_deltanet(heads: 2, head_dim: 8, expand_v: 2, v_heads: 4)");
    check_decoding("hybrid", &tiny(&hybrid, "(gva, gqa, hgrn2, attn)"));
}

#[test]
fn decoding_refuses_what_it_cannot_hold() {
    let model = tiny(PRESETS, "(gdn, attn)");
    let trainer = Trainer::new(&model, 1, 4).expect("compiles");
    let mut decoder = trainer.decoder(1, 2).expect("compiles");
    assert!(decoder.step(&[1, 2]).is_err(), "two tokens for one sequence");
    assert!(decoder.step(&[64]).is_err(), "outside the vocabulary");
    decoder.step(&[1]).expect("first");
    decoder.step(&[2]).expect("second");
    let error = decoder.step(&[3]).expect_err("past max_len").to_string();
    assert!(error.contains("at most 2 tokens"), "{error}");
}
