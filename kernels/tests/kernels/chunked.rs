//! The reverse scan's chunked form ([`Parallel::Phases`]: the form's code with its phases
//! run one after another on the CPU), RetNet's recurrence and the delta rule's, against
//! finite differences of the recurrence on small shapes (relative error ≤ 2e-4 of the
//! largest gradient), and against the loops form (itself checked so; ≤ 1e-4) where a
//! state takes several blocks of value channels; its GPU launch and PTX (shared tiles,
//! barriers, the block size promised to ptxas).

use hyb_kernels::emit::{Config, Parallel};
use hyb_kernels::gpu::{self, Launch, Slices};
use hyb_kernels::key::KernelKey;
use hyb_kernels::scan::chunked::{self, Kind, MAX_CHUNK, vector};
use hyb_kernels::scan::{Decay, ScanSpec, ScanUpdate};
use hyb_target::Form;

use crate::{Shape, assert_close, check_backward_with, run_backward, spec};

/// The chunked form's phases in order, and last first: a phase whose items read one
/// another's results gives a different answer (or NaN, from the poisoned tiles) in one
/// of the two.
const PHASES: [Config; 2] = [
    Config { parallel: Parallel::Phases { reversed: false }, ..Config::CPU },
    Config { parallel: Parallel::Phases { reversed: true }, ..Config::CPU },
];

/// The additive recurrence undecayed, with RetNet's fixed decay a head and with GLA's
/// decay a key channel a token, at T = 1, T a multiple of the interval, T not a
/// multiple, one chunk longer than T, batch and heads above one, and a chunk of 64
/// (GLA's in two sub-chunks, the last short).
#[test]
fn chunked_reverse_scan_matches_finite_differences() {
    let cases = [
        (1, 1, 1, 3, 2, 1),
        (2, 6, 2, 3, 2, 3),
        (1, 7, 2, 4, 3, 3),
        (2, 5, 1, 3, 4, 8),
        (1, 9, 1, 5, 6, 4),
        (1, 50, 1, 3, 2, 64),
    ];
    check_each(ScanUpdate::Additive, &[Decay::None, Decay::PerHead, Decay::Vector], &cases, 5000);
}

/// [`check_backward_with`] in both orders of the phases, for each decay and case
/// `(batch, time, state heads, dk, dv, chunk)`, seeds counted from `seed`.
fn check_each(update: ScanUpdate, decays: &[Decay], cases: &[(usize, usize, usize, usize, usize, u64)], seed: u64) {
    let mut seed = seed;
    for &decay in decays {
        for &(batch, time, state_heads, dk, dv, chunk) in cases {
            seed += 1;
            let shape = Shape { batch, time, state_heads, dk, dv };
            for phases in &PHASES {
                check_backward_with(spec(update, decay, dk, dv), shape, chunk, seed, phases);
            }
        }
    }
}

/// The delta rule (DeltaNet's, and GatedDeltaNet's decay a head a token): the same
/// shapes, and checkpoint intervals past a sub-chunk (32 and 64 tokens: sub-chunks of
/// 16 whose start states the kernel recomputes into its scratch, the last short).
#[test]
fn chunked_delta_rule_matches_finite_differences() {
    let cases = [
        (1, 1, 1, 3, 2, 1),
        (2, 6, 2, 3, 2, 3),
        (1, 7, 2, 4, 3, 3),
        (2, 5, 1, 3, 4, 8),
        (1, 40, 1, 4, 3, 32),
        (1, 50, 1, 3, 2, 64),
    ];
    check_each(ScanUpdate::Delta, &[Decay::None, Decay::Scalar], &cases, 6000);
}

/// A state of several value blocks (64 × 96: two blocks of 48), whose sums over value
/// channels (dq, dk, dβ, the decay's gradient) each block adds a part of, against the
/// loops form on the same inputs: RetNet's recurrence at a chunk of 4, GLA's and
/// GatedDeltaNet's at 32 (two sub-chunks of the delta rule), and GLA's at a key width
/// of 96 (sub-chunks of 16, two blocks of 48 channels).
#[test]
fn chunked_value_blocks_add_up_to_the_loops_form() {
    for kind in [Kind::Fixed, Kind::Vector, Kind::Delta] {
        assert_eq!(chunked::value_blocks(kind, 64, 96), 2, "{kind:?}");
    }
    assert_eq!([64, 96, 128, 256].map(vector::sub_chunk), [32, 16, 16, 8], "GLA's sub-chunks by key width");
    assert_eq!(chunked::value_blocks(Kind::Vector, 96, 96), 2);
    let shape = Shape { batch: 2, time: 11, state_heads: 2, dk: 64, dv: 96 };
    let delta_shape = Shape { time: 37, ..shape };
    let wide_key = Shape { time: 37, dk: 96, ..shape };
    let cases = [
        (ScanUpdate::Additive, Decay::PerHead, shape, 4),
        (ScanUpdate::Additive, Decay::Vector, delta_shape, 32),
        (ScanUpdate::Delta, Decay::Scalar, delta_shape, 32),
        (ScanUpdate::Additive, Decay::Vector, wide_key, 32),
    ];
    for (update, decay, shape, chunk) in cases {
        let spec = spec(update, decay, shape.dk, shape.dv);
        let want = run_backward(spec, shape, chunk, 77, &Config::CPU);
        let got = run_backward(spec, shape, chunk, 77, &PHASES[1]);
        let wide = |values: &[f32]| values.iter().map(|v| *v as f64).collect::<Vec<_>>();
        let mut pairs = vec![
            ("dq", got.dq.as_ref().expect("dq"), want.dq.as_ref().expect("dq")),
            ("dk", &got.dk, &want.dk),
            ("dv", &got.dv, &want.dv),
            ("d state0", &got.dstate, &want.dstate),
            ("dg", got.dg.as_ref().expect("dg"), want.dg.as_ref().expect("dg")),
        ];
        if update == ScanUpdate::Delta {
            pairs.push(("dbeta", got.dbeta.as_ref().expect("dβ"), want.dbeta.as_ref().expect("dβ")));
        }
        for (name, got, want) in pairs {
            assert!(got.iter().all(|v| v.is_finite()), "{update:?} {name}: non-finite");
            assert_close(&format!("{update:?} {} × {} {name}", shape.dk, shape.dv), got, &wide(want), 1e-4);
        }
    }
}

/// The specs with a chunked form: with a query, no grouped heads, chunks up to 64 and a
/// key width whose tile fits, the additive update with no decay, a fixed one (RetNet) or
/// one a key channel (GLA, HGRN-2), and the delta rule with none or one a head a token
/// (DeltaNet, GatedDeltaNet).
#[test]
fn the_chunked_form_covers_four_families() {
    let retnet = spec(ScanUpdate::Additive, Decay::PerHead, 64, 128);
    assert!(chunked::supports(&retnet, 16));
    assert!(chunked::supports(&retnet, MAX_CHUNK));
    assert!(!chunked::supports(&retnet, MAX_CHUNK + 1), "the score tiles hold 64 tokens");
    assert!(chunked::supports(&spec(ScanUpdate::Additive, Decay::None, 64, 64), 8));
    assert!(chunked::supports(&spec(ScanUpdate::Additive, Decay::Vector, 64, 64), 64), "GLA, HGRN-2");
    assert!(!chunked::supports(&spec(ScanUpdate::Additive, Decay::Scalar, 64, 64), 16));
    assert!(chunked::supports(&spec(ScanUpdate::Delta, Decay::Scalar, 64, 64), 64), "GatedDeltaNet");
    assert!(chunked::supports(&spec(ScanUpdate::Delta, Decay::None, 64, 64), 16), "DeltaNet");
    assert!(!chunked::supports(&spec(ScanUpdate::Delta, Decay::PerHead, 64, 64), 16));
    assert!(!chunked::supports(&spec(ScanUpdate::Delta, Decay::Vector, 64, 64), 16));
    assert!(!chunked::supports(&ScanSpec { q_per_state: 2, ..retnet }, 16));
    assert!(!chunked::supports(&ScanSpec { query: false, ..retnet }, 16));
    let key = |spec, chunk| KernelKey::ScanBackward { spec, chunk };
    assert!(key(retnet, 16).forms().contains(&Form::Chunked));
    let gla = spec(ScanUpdate::Additive, Decay::Vector, 64, 64);
    assert!(key(gla, 16).forms().contains(&Form::Chunked));
    assert!(key(gla, 64).forms().contains(&Form::Chunked));
    assert!(!KernelKey::ScanTrain { spec: retnet, chunk: 16 }.forms().contains(&Form::Chunked));
    // Each kind's tiles stay within 48 KiB at its own value block, and a key too wide
    // for a kind's tiles at one value channel a block has no chunked form.
    for kind in [Kind::Fixed, Kind::Vector, Kind::Delta] {
        for (dk, dv) in [(64, 128), (128, 256), (256, 64), (96, 80), (310, 64)] {
            let width = chunked::value_block(kind, dk, dv);
            assert!(dv % width == 0 && width <= 64, "{kind:?} {dk} × {dv}: {width}");
            assert!(kind.tile_floats(dk as u64, width as u64) * 4 <= 48 * 1024, "{kind:?} {dk} × {dv}: {width}");
        }
    }
    assert_eq!(chunked::value_block(Kind::Fixed, 64, 128), 64);
    assert_eq!(chunked::value_block(Kind::Fixed, 128, 256), 32);
    assert_eq!(chunked::value_block(Kind::Delta, 64, 64), 64, "GatedDeltaNet's study shape");
    assert_eq!(chunked::value_block(Kind::Fixed, 512, 512), 8, "RetNet's blocks keep their own budget");
    let gla = |dk| spec(ScanUpdate::Additive, Decay::Vector, dk, 64);
    assert!(chunked::supports(&gla(310), 32));
    assert!(chunked::supports(&gla(480), 32), "sub-chunks of 8");
    assert!(!chunked::supports(&gla(500), 32), "GLA's tiles pass 48 KiB even in sub-chunks of 8");
    assert!(chunked::supports(&spec(ScanUpdate::Delta, Decay::Scalar, 512, 64), 64));
}

/// The chunked launch: a block of 128 threads per (point, state head, value block).
#[test]
fn the_chunked_launch_gives_a_block_per_head_and_value_block() {
    let key = KernelKey::ScanBackward { spec: spec(ScanUpdate::Additive, Decay::PerHead, 64, 128), chunk: 16 };
    // q, k, v, g, ckpt, dout, dstate, buf, dq, dk, dv, dg.
    let launch = gpu::launch(&key, Form::Chunked, 12);
    assert_eq!(launch, Launch::Block { arg: 6, axes: &[1], slices: Slices::ValueBlocks(Kind::Fixed) });
    assert_eq!(gpu::points(&key, launch, 64), 64, "a point per batch element");
    let dstate = [64, 2, 64, 128];
    let mut dims: Vec<&[usize]> = vec![&[]; 12];
    dims[6] = &dstate;
    assert_eq!(gpu::shape(launch, 64, &dims, 132), ((64, 4, 1), (128, 1, 1)), "2 heads × 2 value blocks");
}

/// The chunked form lowers to PTX with its tiles in shared memory, its barriers, the
/// block size promised and no register bound (the lanes form's 128 is its own).
#[test]
fn the_chunked_form_lowers_to_shared_tiles_and_barriers() {
    let key = KernelKey::ScanBackward { spec: spec(ScanUpdate::Additive, Decay::PerHead, 64, 128), chunk: 16 };
    let signature = vec![hyb_target::Elem::F32; 12];
    let module = gpu::generate(&key, "k0_scan_bwd", "sm_90a", &signature, Form::Chunked).expect("a chunked form");
    let ptx = hyb_kernels::ptx::compile(&module, "sm_90a").unwrap_or_else(|e| panic!("{e}\n{module}"));
    assert!(ptx.contains(".shared .align"), "tiles in shared memory: {ptx}");
    assert!(ptx.contains("bar.sync"), "barriers: {ptx}");
    assert!(ptx.contains(".maxntid 128, 1, 1"), "the block size: {ptx}");
    assert!(!ptx.contains(".maxnreg"), "no register bound: {ptx}");
    assert!(!ptx.contains("__nv_"), "no libdevice: {ptx}");
    let lanes = gpu::generate(&key, "k0_scan_bwd", "sm_90a", &signature, Form::Lanes).expect("a lanes form");
    let ptx = hyb_kernels::ptx::compile(&lanes, "sm_90a").unwrap_or_else(|e| panic!("{e}\n{lanes}"));
    assert!(ptx.contains(".maxnreg 128"), "the lanes form keeps its bound");
    let gdn = KernelKey::ScanBackward { spec: spec(ScanUpdate::Delta, Decay::Scalar, 64, 64), chunk: 64 };
    let signature = vec![hyb_target::Elem::F32; 14];
    let module = gpu::generate(&gdn, "k1_scan_bwd", "sm_90a", &signature, Form::Chunked).expect("a chunked form");
    let ptx = hyb_kernels::ptx::compile(&module, "sm_90a").unwrap_or_else(|e| panic!("{e}\n{module}"));
    assert!(ptx.contains(".shared .align") && ptx.contains("bar.sync"), "{ptx}");
    // bf16 activations (q, k, v, the checkpoints, dO) beside f32 gradients and scratch.
    let mut mixed = signature.clone();
    for position in [0, 1, 2, 5, 6] {
        mixed[position] = hyb_target::Elem::Bf16;
    }
    let module = gpu::generate(&gdn, "k1_scan_bwd", "sm_90a", &mixed, Form::Chunked).expect("a chunked form");
    assert!(module.contains("%q: memref<?x?x?x?xbf16"), "{module}");
    let ptx = hyb_kernels::ptx::compile(&module, "sm_90a").unwrap_or_else(|e| panic!("{e}\n{module}"));
    assert!(ptx.contains("bar.sync"), "{ptx}");
    let gla = KernelKey::ScanBackward { spec: spec(ScanUpdate::Additive, Decay::Vector, 128, 256), chunk: 64 };
    let module = gpu::generate(&gla, "k2_scan_bwd", "sm_90a", &signature, Form::Chunked).expect("a chunked form");
    let ptx = hyb_kernels::ptx::compile(&module, "sm_90a").unwrap_or_else(|e| panic!("{e}\n{module}"));
    assert!(ptx.contains("bar.sync"), "GLA at a 340M model's head: {ptx}");
    let hgrn = KernelKey::ScanBackward {
        spec: ScanSpec { query: false, ..spec(ScanUpdate::Additive, Decay::Scalar, 1, 1) },
        chunk: 16,
    };
    assert!(
        gpu::generate(&hgrn, "k3", "sm_90a", &signature, Form::Chunked).is_err(),
        "HGRN's 1 × 1 states keep their lanes"
    );
}

/// A phase (and so a barrier) inside an `scf.if` is refused when the kernel is written:
/// the threads the condition leaves out would never reach the barrier.
#[test]
#[should_panic(expected = "a barrier inside a conditional region")]
fn a_phase_inside_a_condition_is_refused() {
    use hyb_kernels::emit::{Builder, Cmp};
    let mut e = Builder::new(Config::gpu_form(hyb_kernels::emit::Scalar::F32, Parallel::Block));
    e.begin_function("k", &[("x", 1)]);
    let x = e.arg("x");
    let n = e.dim(&x, 0);
    let c0 = e.c0();
    let some = e.cmp(Cmp::Gt, &n, &c0);
    e.if_(&some, |e| e.for_threads(&n, |_, _| {}));
}

/// The reverse scan's working memory (`buf`) is its scratch argument, which comparisons
/// of two devices skip: each form fills it its own way. RetNet's scan alone prefers its
/// chunked form on a GPU.
#[test]
fn the_reverse_scans_scratch_and_preferred_form() {
    for (update, decay) in [(ScanUpdate::Additive, Decay::PerHead), (ScanUpdate::Delta, Decay::Scalar)] {
        let spec = spec(update, decay, 64, 64);
        let key = KernelKey::ScanBackward { spec, chunk: 16 };
        let buf = key.scratch_argument().expect("a scratch");
        assert_eq!(spec.backward_arguments()[buf].0, "buf", "{update:?}");
        let preferred = key.preferred_gpu_form();
        assert_eq!(preferred, (update == ScanUpdate::Additive).then_some(Form::Chunked), "{update:?}");
    }
    let retnet = spec(ScanUpdate::Additive, Decay::PerHead, 64, 128);
    assert_eq!(KernelKey::ScanTrain { spec: retnet, chunk: 16 }.scratch_argument(), None);
    assert_eq!(KernelKey::ScanTrain { spec: retnet, chunk: 16 }.preferred_gpu_form(), None);
}
