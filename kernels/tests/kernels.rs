//! Kernels against plain references, on random inputs of several shapes (T = 1, T not a
//! multiple of anything, several heads, batch > 1). Tolerance: 2e-5 relative to the
//! largest reference value (f32 kernel, f64 reference). NaN never passes.

use hyb_kernels::jit::{self, MemRef};
use hyb_kernels::scan::{self, Decay, ScanSpec, ScanUpdate};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

struct Shape {
    batch: usize,
    time: usize,
    state_heads: usize,
    dk: usize,
    dv: usize,
}

fn random(rng: &mut SmallRng, len: usize, low: f32, high: f32) -> Vec<f32> {
    (0..len).map(|_| rng.random_range(low..high)).collect()
}

/// L2-normalises rows of length `width` (the delta rule's keys are unit vectors).
fn normalise_rows(data: &mut [f32], width: usize) {
    for row in data.chunks_mut(width) {
        let norm = row.iter().map(|x| x * x).sum::<f32>().sqrt().max(1e-6);
        row.iter_mut().for_each(|x| *x /= norm);
    }
}

struct Inputs {
    q: MemRef<4>,
    k: MemRef<4>,
    v: MemRef<4>,
    g1: Option<MemRef<1>>,
    g3: Option<MemRef<3>>,
    g4: Option<MemRef<4>>,
    beta: Option<MemRef<3>>,
    state: MemRef<4>,
}

fn inputs(spec: &ScanSpec, s: &Shape, seed: u64) -> Inputs {
    let mut rng = SmallRng::seed_from_u64(seed);
    let key_heads = s.state_heads / spec.states_per_key as usize;
    let query_heads = key_heads * spec.q_per_state as usize;
    let (b, t) = (s.batch, s.time);
    let q = MemRef::new([b, t, query_heads, s.dk], random(&mut rng, b * t * query_heads * s.dk, -1.0, 1.0));
    let mut k_data = random(&mut rng, b * t * key_heads * s.dk, -1.0, 1.0);
    if spec.update == ScanUpdate::Delta {
        normalise_rows(&mut k_data, s.dk);
    }
    let k = MemRef::new([b, t, key_heads, s.dk], k_data);
    let v = MemRef::new([b, t, s.state_heads, s.dv], random(&mut rng, b * t * s.state_heads * s.dv, -1.0, 1.0));
    let (mut g1, mut g3, mut g4) = (None, None, None);
    match spec.decay {
        Decay::None => {}
        Decay::PerHead => g1 = Some(MemRef::new([s.state_heads], random(&mut rng, s.state_heads, -0.5, -0.01))),
        Decay::Scalar => {
            g3 = Some(MemRef::new([b, t, s.state_heads], random(&mut rng, b * t * s.state_heads, -1.0, -0.01)))
        }
        Decay::Vector => {
            g4 = Some(MemRef::new([b, t, key_heads, s.dk], random(&mut rng, b * t * key_heads * s.dk, -1.0, -0.01)))
        }
    }
    let beta = (spec.update == ScanUpdate::Delta)
        .then(|| MemRef::new([b, t, s.state_heads], random(&mut rng, b * t * s.state_heads, 0.05, 0.95)));
    let state =
        MemRef::new([b, s.state_heads, s.dk, s.dv], random(&mut rng, b * s.state_heads * s.dk * s.dv, -0.5, 0.5));
    Inputs { q, k, v, g1, g3, g4, beta, state }
}

/// The token recurrence, written plainly in f64.
fn reference(spec: &ScanSpec, s: &Shape, x: &Inputs) -> (Vec<f64>, Vec<f64>) {
    let (spk, qps) = (spec.states_per_key as usize, spec.q_per_state as usize);
    let out_heads = s.state_heads * qps;
    let mut out = vec![0.0; s.batch * s.time * out_heads * s.dv];
    let mut states: Vec<f64> = x.state.data.iter().map(|v| *v as f64).collect();
    for b in 0..s.batch {
        for h in 0..s.state_heads {
            let hk = h / spk;
            let base = ((b * s.state_heads) + h) * s.dk * s.dv;
            let st = &mut states[base..base + s.dk * s.dv];
            for t in 0..s.time {
                let alpha = |i: usize| -> f64 {
                    match spec.decay {
                        Decay::None => 1.0,
                        Decay::PerHead => (x.g1.as_ref().unwrap().at([h]) as f64).exp(),
                        Decay::Scalar => (x.g3.as_ref().unwrap().at([b, t, h]) as f64).exp(),
                        Decay::Vector => (x.g4.as_ref().unwrap().at([b, t, hk, i]) as f64).exp(),
                    }
                };
                let k: Vec<f64> = (0..s.dk).map(|i| x.k.at([b, t, hk, i]) as f64).collect();
                let v: Vec<f64> = (0..s.dv).map(|j| x.v.at([b, t, h, j]) as f64).collect();
                for i in 0..s.dk {
                    for j in 0..s.dv {
                        st[i * s.dv + j] *= alpha(i);
                    }
                }
                match spec.update {
                    ScanUpdate::Additive => {
                        for i in 0..s.dk {
                            for j in 0..s.dv {
                                st[i * s.dv + j] += k[i] * v[j];
                            }
                        }
                    }
                    ScanUpdate::Delta => {
                        let beta = x.beta.as_ref().unwrap().at([b, t, h]) as f64;
                        let u: Vec<f64> = (0..s.dv)
                            .map(|j| beta * (v[j] - (0..s.dk).map(|i| st[i * s.dv + j] * k[i]).sum::<f64>()))
                            .collect();
                        for i in 0..s.dk {
                            for j in 0..s.dv {
                                st[i * s.dv + j] += k[i] * u[j];
                            }
                        }
                    }
                }
                for r in 0..qps {
                    let (qh, oh) = (hk * qps + r, h * qps + r);
                    for j in 0..s.dv {
                        let dot: f64 = (0..s.dk).map(|i| st[i * s.dv + j] * x.q.at([b, t, qh, i]) as f64).sum();
                        out[((b * s.time + t) * out_heads + oh) * s.dv + j] = spec.scale * dot;
                    }
                }
            }
        }
    }
    (out, states)
}

fn assert_close(what: &str, got: &[f32], want: &[f64]) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    let largest = want.iter().fold(0.0f64, |m, v| m.max(v.abs())).max(1e-3);
    for (index, (g, w)) in got.iter().zip(want).enumerate() {
        let error = (*g as f64 - w).abs() / largest;
        assert!(error <= 2e-5, "{what}[{index}]: kernel {g}, reference {w} (relative error {error:e})");
    }
}

fn run(spec: ScanSpec, shape: Shape, seed: u64) {
    let mlir = scan::forward(&spec, "scan_fwd");
    let compiled = jit::compile(&mlir).unwrap_or_else(|e| panic!("{e}\n{mlir}"));
    let mut x = inputs(&spec, &shape, seed);
    let (want_out, want_state) = reference(&spec, &shape, &x);
    let out_heads = shape.state_heads * spec.q_per_state as usize;
    let mut o = MemRef::zeros([shape.batch, shape.time, out_heads, shape.dv]);
    {
        let mut args: Vec<&mut dyn jit::AsDescriptor> = vec![&mut x.q, &mut x.k, &mut x.v];
        if let Some(g) = x.g1.as_mut() {
            args.push(g);
        }
        if let Some(g) = x.g3.as_mut() {
            args.push(g);
        }
        if let Some(g) = x.g4.as_mut() {
            args.push(g);
        }
        if let Some(beta) = x.beta.as_mut() {
            args.push(beta);
        }
        args.push(&mut o);
        args.push(&mut x.state);
        // SAFETY: every buffer matches the shapes the kernel reads (ScanSpec::arguments).
        unsafe { compiled.call("scan_fwd", &mut args) }.expect("the kernel runs");
    }
    let label =
        format!("{spec:?} B={} T={} Hs={} dk={} dv={}", shape.batch, shape.time, shape.state_heads, shape.dk, shape.dv);
    assert!(o.data.iter().chain(&x.state.data).all(|v| v.is_finite()), "{label}: non-finite output");
    assert_close(&format!("{label} output"), &o.data, &want_out);
    assert_close(&format!("{label} final state"), &x.state.data, &want_state);
}

const SHAPES: [(usize, usize, usize, usize, usize); 3] = [(1, 1, 1, 4, 4), (2, 37, 3, 8, 5), (3, 17, 2, 16, 32)];

#[test]
fn scan_forward_matches_the_recurrence_for_every_update_and_decay() {
    let mut seed = 0;
    for update in [ScanUpdate::Additive, ScanUpdate::Delta] {
        for decay in [Decay::None, Decay::PerHead, Decay::Scalar, Decay::Vector] {
            for (batch, time, state_heads, dk, dv) in SHAPES {
                let spec = ScanSpec { update, decay, q_per_state: 1, states_per_key: 1, scale: (dk as f64).powf(-0.5) };
                seed += 1;
                run(spec, Shape { batch, time, state_heads, dk, dv }, seed);
            }
        }
    }
}

#[test]
fn scan_forward_handles_grouped_heads() {
    // GQA: 2 query heads per state; GVA: 2 states (value heads) per key head.
    let gqa =
        ScanSpec { update: ScanUpdate::Additive, decay: Decay::Vector, q_per_state: 2, states_per_key: 1, scale: 0.5 };
    run(gqa, Shape { batch: 2, time: 9, state_heads: 2, dk: 4, dv: 6 }, 101);
    let gva =
        ScanSpec { update: ScanUpdate::Delta, decay: Decay::Scalar, q_per_state: 1, states_per_key: 2, scale: 0.25 };
    run(gva, Shape { batch: 2, time: 9, state_heads: 4, dk: 8, dv: 8 }, 102);
}

#[test]
fn generated_mlir_is_stable_text() {
    let spec =
        ScanSpec { update: ScanUpdate::Delta, decay: Decay::Scalar, q_per_state: 1, states_per_key: 1, scale: 0.125 };
    let text = scan::forward(&spec, "gdn_scan_fwd");
    assert_eq!(text, scan::forward(&spec, "gdn_scan_fwd"));
    assert!(text.contains("func.func @gdn_scan_fwd(%q: memref<?x?x?x?xf32>, %k: memref<?x?x?x?xf32>, %v: memref<?x?x?x?xf32>, %g: memref<?x?x?xf32>, %beta: memref<?x?x?xf32>, %o: memref<?x?x?x?xf32>, %state: memref<?x?x?x?xf32>) attributes {llvm.emit_c_interface}"), "{text}");
}
