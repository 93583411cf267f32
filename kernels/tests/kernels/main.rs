//! Kernels against plain references, on random inputs of several shapes (T = 1, T not a
//! multiple of the checkpoint interval, several heads, batch > 1, grouped heads).
//!
//! Forward: f32 kernel against an f64 recurrence, relative error ≤ 2e-5 of the largest
//! reference value. Backward: every gradient (q, k, v, log-decays, β, initial state)
//! against central finite differences of the f64 recurrence (ε = 1e-5), relative error
//! ≤ 2e-4 of the largest gradient. NaN never passes.

mod attention;
mod chunked;
mod common;
mod copy;
mod decode;
mod emit;
mod gpu;
mod norms;
mod ops;
mod pointwise;
mod ptx_form;

use hyb_kernels::emit::{Config, Parallel};
use hyb_kernels::jit::{self, AsDescriptor, Compiled, MemRef};
use hyb_kernels::scan::{self, Decay, ScanSpec, ScanUpdate};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

#[derive(Clone, Copy)]
struct Shape {
    batch: usize,
    time: usize,
    state_heads: usize,
    dk: usize,
    dv: usize,
}

impl Shape {
    fn key_heads(&self, spec: &ScanSpec) -> usize {
        self.state_heads / spec.states_per_key as usize
    }
    fn query_heads(&self, spec: &ScanSpec) -> usize {
        self.key_heads(spec) * spec.q_per_state as usize
    }
    fn out_heads(&self, spec: &ScanSpec) -> usize {
        self.state_heads * spec.q_per_state as usize
    }
}

/// One problem: every input as f64 values exactly representable in f32.
#[derive(Clone)]
struct Data {
    q: Vec<f64>,
    k: Vec<f64>,
    v: Vec<f64>,
    g: Vec<f64>,
    beta: Vec<f64>,
    s0: Vec<f64>,
}

fn random(rng: &mut SmallRng, len: usize, low: f64, high: f64) -> Vec<f64> {
    (0..len).map(|_| rng.random_range(low..high) as f32 as f64).collect()
}

fn problem(spec: &ScanSpec, s: Shape, seed: u64) -> Data {
    let mut rng = SmallRng::seed_from_u64(seed);
    let (b, t) = (s.batch, s.time);
    let q = if spec.query { random(&mut rng, b * t * s.query_heads(spec) * s.dk, -1.0, 1.0) } else { Vec::new() };
    let mut k = random(&mut rng, b * t * s.key_heads(spec) * s.dk, -1.0, 1.0);
    if spec.update == ScanUpdate::Delta {
        // The delta rule's keys are unit vectors.
        for row in k.chunks_mut(s.dk) {
            let norm = row.iter().map(|x| x * x).sum::<f64>().sqrt().max(1e-6);
            row.iter_mut().for_each(|x| *x = (*x / norm) as f32 as f64);
        }
    }
    let v = random(&mut rng, b * t * s.state_heads * s.dv, -1.0, 1.0);
    let g = match spec.decay {
        Decay::None => Vec::new(),
        Decay::PerHead => random(&mut rng, s.state_heads, -0.5, -0.01),
        Decay::Scalar => random(&mut rng, b * t * s.state_heads, -1.0, -0.01),
        Decay::Vector => random(&mut rng, b * t * s.key_heads(spec) * s.dk, -1.0, -0.01),
    };
    let beta =
        if spec.update == ScanUpdate::Delta { random(&mut rng, b * t * s.state_heads, 0.05, 0.95) } else { Vec::new() };
    let s0 = random(&mut rng, b * s.state_heads * s.dk * s.dv, -0.5, 0.5);
    Data { q, k, v, g, beta, s0 }
}

/// `q[index]`, or 1 for a readout without a query.
fn query(x: &Data, index: usize) -> f64 {
    if x.q.is_empty() { 1.0 } else { x.q[index] }
}

/// The token recurrence, written plainly in f64: (outputs, final states).
fn reference(spec: &ScanSpec, s: Shape, x: &Data) -> (Vec<f64>, Vec<f64>) {
    let (spk, qps) = (spec.states_per_key as usize, spec.q_per_state as usize);
    let (hq, hk_count, ho) = (s.query_heads(spec), s.key_heads(spec), s.out_heads(spec));
    let mut out = vec![0.0; s.batch * s.time * ho * s.dv];
    let mut states = x.s0.clone();
    for b in 0..s.batch {
        for h in 0..s.state_heads {
            let hk = h / spk;
            let base = (b * s.state_heads + h) * s.dk * s.dv;
            let st = &mut states[base..base + s.dk * s.dv];
            for t in 0..s.time {
                let alpha = |i: usize| -> f64 {
                    match spec.decay {
                        Decay::None => 1.0,
                        Decay::PerHead => x.g[h].exp(),
                        Decay::Scalar => x.g[(b * s.time + t) * s.state_heads + h].exp(),
                        Decay::Vector => x.g[((b * s.time + t) * hk_count + hk) * s.dk + i].exp(),
                    }
                };
                let k: Vec<f64> = (0..s.dk).map(|i| x.k[((b * s.time + t) * hk_count + hk) * s.dk + i]).collect();
                let v: Vec<f64> = (0..s.dv).map(|j| x.v[((b * s.time + t) * s.state_heads + h) * s.dv + j]).collect();
                for i in 0..s.dk {
                    for j in 0..s.dv {
                        st[i * s.dv + j] *= alpha(i);
                    }
                }
                let write: Vec<f64> = match spec.update {
                    ScanUpdate::Additive => v.clone(),
                    ScanUpdate::Delta => {
                        let beta = x.beta[(b * s.time + t) * s.state_heads + h];
                        (0..s.dv)
                            .map(|j| beta * (v[j] - (0..s.dk).map(|i| st[i * s.dv + j] * k[i]).sum::<f64>()))
                            .collect()
                    }
                };
                for i in 0..s.dk {
                    for j in 0..s.dv {
                        st[i * s.dv + j] += k[i] * write[j];
                    }
                }
                for r in 0..qps {
                    let (qh, oh) = (hk * qps + r, h * qps + r);
                    for j in 0..s.dv {
                        let dot: f64 = (0..s.dk)
                            .map(|i| st[i * s.dv + j] * query(x, ((b * s.time + t) * hq + qh) * s.dk + i))
                            .sum();
                        out[((b * s.time + t) * ho + oh) * s.dv + j] = spec.scale * dot;
                    }
                }
            }
        }
    }
    (out, states)
}

fn f32s(values: &[f64]) -> Vec<f32> {
    values.iter().map(|v| *v as f32).collect()
}

fn assert_close(what: &str, got: &[f32], want: &[f64], tolerance: f64) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    let largest = want.iter().fold(0.0f64, |m, v| m.max(v.abs())).max(1e-3);
    for (index, (g, w)) in got.iter().zip(want).enumerate() {
        let error = (*g as f64 - w).abs() / largest;
        assert!(error <= tolerance, "{what}[{index}]: kernel {g}, reference {w} (relative error {error:e})");
    }
}

/// Memrefs of the inputs, in [`ScanSpec`]'s argument order.
struct Buffers {
    q: Option<MemRef<4>>,
    k: MemRef<4>,
    v: MemRef<4>,
    g1: Option<MemRef<1>>,
    g3: Option<MemRef<3>>,
    g4: Option<MemRef<4>>,
    beta: Option<MemRef<3>>,
}

impl Buffers {
    fn new(spec: &ScanSpec, s: Shape, x: &Data) -> Buffers {
        let (b, t) = (s.batch, s.time);
        let (mut g1, mut g3, mut g4) = (None, None, None);
        match spec.decay {
            Decay::None => {}
            Decay::PerHead => g1 = Some(MemRef::new([s.state_heads], f32s(&x.g))),
            Decay::Scalar => g3 = Some(MemRef::new([b, t, s.state_heads], f32s(&x.g))),
            Decay::Vector => g4 = Some(MemRef::new([b, t, s.key_heads(spec), s.dk], f32s(&x.g))),
        }
        Buffers {
            q: spec.query.then(|| MemRef::new([b, t, s.query_heads(spec), s.dk], f32s(&x.q))),
            k: MemRef::new([b, t, s.key_heads(spec), s.dk], f32s(&x.k)),
            v: MemRef::new([b, t, s.state_heads, s.dv], f32s(&x.v)),
            g1,
            g3,
            g4,
            beta: (spec.update == ScanUpdate::Delta).then(|| MemRef::new([b, t, s.state_heads], f32s(&x.beta))),
        }
    }

    fn inputs(&mut self) -> Vec<&mut dyn AsDescriptor> {
        let mut args: Vec<&mut dyn AsDescriptor> = Vec::new();
        if let Some(q) = self.q.as_mut() {
            args.push(q);
        }
        args.extend([&mut self.k as &mut dyn AsDescriptor, &mut self.v]);
        if let Some(g) = self.g1.as_mut() {
            args.push(g);
        }
        if let Some(g) = self.g3.as_mut() {
            args.push(g);
        }
        if let Some(g) = self.g4.as_mut() {
            args.push(g);
        }
        if let Some(beta) = self.beta.as_mut() {
            args.push(beta);
        }
        args
    }
}

fn label(spec: &ScanSpec, s: Shape) -> String {
    format!("{spec:?} B={} T={} Hs={} dk={} dv={}", s.batch, s.time, s.state_heads, s.dk, s.dv)
}

fn check_forward(spec: ScanSpec, s: Shape, seed: u64) {
    let mlir = scan::forward(&spec, "scan_fwd");
    let compiled = jit::compile(&mlir).unwrap_or_else(|e| panic!("{e}\n{mlir}"));
    let x = problem(&spec, s, seed);
    let (want_out, want_state) = reference(&spec, s, &x);
    let mut buffers = Buffers::new(&spec, s, &x);
    // o poisoned: the kernel writes every element before it reads it.
    let mut o = MemRef::new(
        [s.batch, s.time, s.out_heads(&spec), s.dv],
        vec![f32::NAN; s.batch * s.time * s.out_heads(&spec) * s.dv],
    );
    let mut state = MemRef::new([s.batch, s.state_heads, s.dk, s.dv], f32s(&x.s0));
    let mut args = buffers.inputs();
    args.push(&mut o);
    args.push(&mut state);
    // SAFETY: every buffer has the shape ScanSpec::arguments describes.
    unsafe { compiled.call("scan_fwd", &mut args) }.expect("the kernel runs");
    let label = label(&spec, s);
    assert!(o.data.iter().chain(&state.data).all(|v| v.is_finite()), "{label}: non-finite output");
    assert_close(&format!("{label} output"), &o.data, &want_out, 2e-5);
    assert_close(&format!("{label} final state"), &state.data, &want_state, 2e-5);
}

/// Picks one input of a [`Data`].
type Field = fn(&mut Data) -> &mut Vec<f64>;

/// Central finite differences of `loss` with respect to every element of `field`.
fn finite_differences(x: &Data, field: Field, loss: &dyn Fn(&Data) -> f64) -> Vec<f64> {
    let epsilon = 1e-5;
    let mut probe = x.clone();
    let len = field(&mut probe).len();
    (0..len)
        .map(|index| {
            let original = field(&mut probe)[index];
            field(&mut probe)[index] = original + epsilon;
            let up = loss(&probe);
            field(&mut probe)[index] = original - epsilon;
            let down = loss(&probe);
            field(&mut probe)[index] = original;
            (up - down) / (2.0 * epsilon)
        })
        .collect()
}

/// The GPU form's lanes run one after another on the CPU ([`Parallel::OneLane`]).
pub(crate) const ONE_LANE: Config = Config { parallel: Parallel::OneLane, ..Config::CPU };

/// Calls `name` once, or under [`ONE_LANE`] once per lane (`lanes`), as a GPU launch's
/// threads would run it.
pub(crate) fn call(kernel: &Compiled, name: &str, args: &mut Vec<&mut dyn AsDescriptor>, lanes: Option<usize>) {
    let Some(lanes) = lanes else {
        // SAFETY: the caller's buffers have the shapes the kernel's arguments describe.
        return unsafe { kernel.call(name, args) }.expect("the kernel runs");
    };
    for lane in 0..lanes as i32 {
        let mut id = MemRef::ints([1], vec![lane]);
        let mut with_lane: Vec<&mut dyn AsDescriptor> = args.iter_mut().map(|a| &mut **a as _).collect();
        with_lane.push(&mut id);
        // SAFETY: as above, with the lane's id last.
        unsafe { kernel.call(name, &mut with_lane) }.expect("the lane runs");
    }
}

fn check_backward(spec: ScanSpec, s: Shape, chunk: u64, seed: u64) {
    check_backward_with(spec, s, chunk, seed, &Config::CPU);
}

/// The gradients a reverse scan wrote.
struct Gradients {
    dq: Option<Vec<f32>>,
    dk: Vec<f32>,
    dv: Vec<f32>,
    dstate: Vec<f32>,
    dg: Option<Vec<f32>>,
    dbeta: Option<Vec<f32>>,
}

/// The weights of the loss `Σ w·o + Σ w_S·S_T` the backward checks differentiate.
fn loss_weights(spec: &ScanSpec, s: Shape, seed: u64) -> (Vec<f64>, Vec<f64>) {
    let mut rng = SmallRng::seed_from_u64(seed ^ 0x5eed);
    let out_weights = random(&mut rng, s.batch * s.time * s.out_heads(spec) * s.dv, -1.0, 1.0);
    let state_weights = random(&mut rng, s.batch * s.state_heads * s.dk * s.dv, -1.0, 1.0);
    (out_weights, state_weights)
}

/// [`check_backward`] of the kernels generated under `config`.
fn check_backward_with(spec: ScanSpec, s: Shape, chunk: u64, seed: u64, config: &Config) {
    let label = format!("{} chunk={chunk} {:?}", label(&spec, s), config.parallel);
    let x = problem(&spec, s, seed);
    let (out_weights, state_weights) = loss_weights(&spec, s, seed);
    let loss = |d: &Data| -> f64 {
        let (out, state) = reference(&spec, s, d);
        out.iter().zip(&out_weights).map(|(a, b)| a * b).sum::<f64>()
            + state.iter().zip(&state_weights).map(|(a, b)| a * b).sum::<f64>()
    };
    let got = run_backward(spec, s, chunk, seed, config);
    let tolerance = 2e-4;
    if let Some(dq) = got.dq.as_ref() {
        assert_close(&format!("{label} dq"), dq, &finite_differences(&x, |d| &mut d.q, &loss), tolerance);
    }
    let grads: [(&str, &[f32], Field); 3] =
        [("dk", &got.dk, |d| &mut d.k), ("dv", &got.dv, |d| &mut d.v), ("d state0", &got.dstate, |d| &mut d.s0)];
    for (name, values, field) in grads {
        assert!(values.iter().all(|v| v.is_finite()), "{label} {name}: non-finite");
        assert_close(&format!("{label} {name}"), values, &finite_differences(&x, field, &loss), tolerance);
    }
    if let Some(dg) = got.dg.as_ref() {
        assert_close(&format!("{label} dg"), dg, &finite_differences(&x, |d| &mut d.g, &loss), tolerance);
    }
    if let Some(db) = got.dbeta.as_ref() {
        assert_close(&format!("{label} dbeta"), db, &finite_differences(&x, |d| &mut d.beta, &loss), tolerance);
    }
}

/// The training forward (checked against the recurrence) and the reverse scan generated
/// under `config`, on [`problem`]`(seed)` and the loss of [`loss_weights`]`(seed)`.
fn run_backward(spec: ScanSpec, s: Shape, chunk: u64, seed: u64, config: &Config) -> Gradients {
    let lanes = (config.parallel == Parallel::OneLane).then_some(s.state_heads * s.dv);
    let label = format!("{} chunk={chunk} {:?}", label(&spec, s), config.parallel);
    let forward = jit::compile(&scan::forward_train_with(&spec, "scan_fwd_train", chunk, config))
        .unwrap_or_else(|e| panic!("{e}"));
    let mlir = scan::backward_with(&spec, "scan_bwd", chunk, config);
    let backward = jit::compile(&mlir).unwrap_or_else(|e| panic!("{e}\n{mlir}"));
    let x = problem(&spec, s, seed);
    let (out_weights, state_weights) = loss_weights(&spec, s, seed);

    // Forward with checkpoints.
    let chunks = s.time.div_ceil(chunk as usize);
    let mut buffers = Buffers::new(&spec, s, &x);
    // o poisoned: the kernel writes every element before it reads it.
    let mut o = MemRef::new(
        [s.batch, s.time, s.out_heads(&spec), s.dv],
        vec![f32::NAN; s.batch * s.time * s.out_heads(&spec) * s.dv],
    );
    let mut state = MemRef::new([s.batch, s.state_heads, s.dk, s.dv], f32s(&x.s0));
    let mut ckpt = MemRef::zeros([s.batch, s.state_heads, chunks, s.dk, s.dv]);
    {
        let mut args = buffers.inputs();
        args.extend([&mut o as &mut dyn AsDescriptor, &mut state, &mut ckpt]);
        call(&forward, "scan_fwd_train", &mut args, lanes);
    }
    let (want_out, _) = reference(&spec, s, &x);
    assert_close(&format!("{label} training forward"), &o.data, &want_out, 2e-5);

    // Backward.
    let mut dout = MemRef::new([s.batch, s.time, s.out_heads(&spec), s.dv], f32s(&out_weights));
    let mut dstate = MemRef::new([s.batch, s.state_heads, s.dk, s.dv], f32s(&state_weights));
    // The reverse scan's scratch as the program sizes it, poisoned: every element it
    // reads it must write first.
    let slots = (chunk as usize).min(s.time) + 1;
    let scratch = s.batch * s.state_heads * slots * s.dk * s.dv;
    let mut buf = MemRef::new([s.batch, s.state_heads, slots, s.dk, s.dv], vec![f32::NAN; scratch]);
    let mut dq = buffers.q.as_ref().map(|q| MemRef::zeros(q.shape));
    let mut dk = MemRef::zeros(buffers.k.shape);
    let mut dv = MemRef::zeros(buffers.v.shape);
    let mut dg1 = buffers.g1.as_ref().map(|g| MemRef::zeros(g.shape));
    let mut dg3 = buffers.g3.as_ref().map(|g| MemRef::zeros(g.shape));
    let mut dg4 = buffers.g4.as_ref().map(|g| MemRef::zeros(g.shape));
    let mut dbeta = buffers.beta.as_ref().map(|b| MemRef::zeros(b.shape));
    {
        let mut args = buffers.inputs();
        args.extend([&mut ckpt as &mut dyn AsDescriptor, &mut dout, &mut dstate, &mut buf]);
        if let Some(dq) = dq.as_mut() {
            args.push(dq);
        }
        args.extend([&mut dk as &mut dyn AsDescriptor, &mut dv]);
        if let Some(g) = dg1.as_mut() {
            args.push(g);
        }
        if let Some(g) = dg3.as_mut() {
            args.push(g);
        }
        if let Some(g) = dg4.as_mut() {
            args.push(g);
        }
        if let Some(b) = dbeta.as_mut() {
            args.push(b);
        }
        call(&backward, "scan_bwd", &mut args, lanes);
    }
    let dg = dg1.map(|g| g.data).or(dg3.map(|g| g.data)).or(dg4.map(|g| g.data));
    Gradients {
        dq: dq.map(|g| g.data),
        dk: dk.data,
        dv: dv.data,
        dstate: dstate.data,
        dg,
        dbeta: dbeta.map(|g| g.data),
    }
}

const SHAPES: [(usize, usize, usize, usize, usize); 3] = [(1, 1, 1, 4, 4), (2, 37, 3, 8, 5), (3, 17, 2, 16, 32)];
const UPDATES: [ScanUpdate; 2] = [ScanUpdate::Additive, ScanUpdate::Delta];
const DECAYS: [Decay; 4] = [Decay::None, Decay::PerHead, Decay::Scalar, Decay::Vector];

fn spec(update: ScanUpdate, decay: Decay, dk: usize, dv: usize) -> ScanSpec {
    let scale = (dk as f64).powf(-0.5);
    ScanSpec { update, decay, q_per_state: 1, states_per_key: 1, scale, query: true, dk: dk as u64, dv: dv as u64 }
}

#[test]
fn scan_forward_matches_the_recurrence_for_every_update_and_decay() {
    let mut seed = 0;
    for update in UPDATES {
        for decay in DECAYS {
            for (batch, time, state_heads, dk, dv) in SHAPES {
                seed += 1;
                check_forward(spec(update, decay, dk, dv), Shape { batch, time, state_heads, dk, dv }, seed);
            }
        }
    }
}

#[test]
fn scan_forward_handles_grouped_heads() {
    // GQA: 2 query heads per state; GVA: 2 states (value heads) per key head.
    let gqa = ScanSpec {
        update: ScanUpdate::Additive,
        decay: Decay::Vector,
        q_per_state: 2,
        states_per_key: 1,
        scale: 0.5,
        query: true,
        dk: 4,
        dv: 6,
    };
    check_forward(gqa, Shape { batch: 2, time: 9, state_heads: 2, dk: 4, dv: 6 }, 101);
    let gva = ScanSpec {
        update: ScanUpdate::Delta,
        decay: Decay::Scalar,
        q_per_state: 1,
        states_per_key: 2,
        scale: 0.25,
        query: true,
        dk: 8,
        dv: 8,
    };
    check_forward(gva, Shape { batch: 2, time: 9, state_heads: 4, dk: 8, dv: 8 }, 102);
}

#[test]
fn scan_backward_matches_finite_differences() {
    let mut seed = 1000;
    // T = 1; T a multiple of the interval; T not a multiple; one chunk longer than T.
    let cases = [(1, 1, 1, 3, 2, 1), (2, 6, 2, 3, 2, 3), (1, 7, 2, 4, 3, 3), (2, 5, 1, 3, 4, 8)];
    for update in UPDATES {
        for decay in DECAYS {
            for (batch, time, state_heads, dk, dv, chunk) in cases {
                seed += 1;
                check_backward(spec(update, decay, dk, dv), Shape { batch, time, state_heads, dk, dv }, chunk, seed);
            }
        }
    }
}

/// The GPU form's lanes (one per state head × value channel), run lane by lane on the
/// CPU, against the same finite differences.
#[test]
fn scan_lanes_match_finite_differences() {
    let mut seed = 3000;
    for update in UPDATES {
        for decay in DECAYS {
            for (batch, time, state_heads, dk, dv, chunk) in [(1, 1, 1, 3, 2, 1), (2, 7, 2, 4, 3, 3)] {
                seed += 1;
                let shape = Shape { batch, time, state_heads, dk, dv };
                check_backward_with(spec(update, decay, dk, dv), shape, chunk, seed, &ONE_LANE);
            }
        }
    }
    // Grouped heads (two query heads per state; two states per key head) and a vector
    // state read without a query (HGRN's: 1 × 1 states).
    let gqa = ScanSpec { q_per_state: 2, scale: 0.5, ..spec(ScanUpdate::Delta, Decay::Vector, 3, 2) };
    check_backward_with(gqa, Shape { batch: 2, time: 5, state_heads: 2, dk: 3, dv: 2 }, 2, 3101, &ONE_LANE);
    let gva = ScanSpec { states_per_key: 2, scale: 0.3, ..spec(ScanUpdate::Additive, Decay::Scalar, 3, 3) };
    check_backward_with(gva, Shape { batch: 1, time: 6, state_heads: 4, dk: 3, dv: 3 }, 4, 3102, &ONE_LANE);
    let vector = ScanSpec { query: false, scale: 1.0, ..spec(ScanUpdate::Additive, Decay::Scalar, 1, 1) };
    check_backward_with(vector, Shape { batch: 2, time: 7, state_heads: 5, dk: 1, dv: 1 }, 3, 3103, &ONE_LANE);
}

#[test]
fn scan_backward_handles_grouped_heads() {
    let gqa = ScanSpec {
        update: ScanUpdate::Delta,
        decay: Decay::Vector,
        q_per_state: 2,
        states_per_key: 1,
        scale: 0.5,
        query: true,
        dk: 3,
        dv: 2,
    };
    check_backward(gqa, Shape { batch: 2, time: 5, state_heads: 2, dk: 3, dv: 2 }, 2, 201);
    let gva = ScanSpec {
        update: ScanUpdate::Additive,
        decay: Decay::Scalar,
        q_per_state: 1,
        states_per_key: 2,
        scale: 0.3,
        query: true,
        dk: 3,
        dv: 3,
    };
    check_backward(gva, Shape { batch: 1, time: 6, state_heads: 4, dk: 3, dv: 3 }, 4, 202);
}

#[test]
fn generated_mlir_is_stable_text() {
    let spec = ScanSpec {
        update: ScanUpdate::Delta,
        decay: Decay::Scalar,
        q_per_state: 1,
        states_per_key: 1,
        scale: 0.125,
        query: true,
        dk: 8,
        dv: 8,
    };
    let text = scan::forward(&spec, "gdn_scan_fwd");
    assert_eq!(text, scan::forward(&spec, "gdn_scan_fwd"));
    assert!(text.contains("func.func @gdn_scan_fwd(%q: memref<?x?x?x?xf32>, %k: memref<?x?x?x?xf32>, %v: memref<?x?x?x?xf32>, %g: memref<?x?x?xf32>, %beta: memref<?x?x?xf32>, %o: memref<?x?x?x?xf32>, %state: memref<?x?x?x?xf32>) attributes {llvm.emit_c_interface}"), "{text}");
}

/// A vector state (HGRN: `h_t = α_t ⊙ h_{t-1} + k_t ⊙ v_t`, `o_t = h_t`) is the same
/// kernel with one 1 × 1 state per channel and no query; checked against that recurrence
/// written directly, and its gradients against finite differences.
#[test]
fn vector_state_is_the_same_kernel() {
    let spec = ScanSpec {
        update: ScanUpdate::Additive,
        decay: Decay::Scalar,
        q_per_state: 1,
        states_per_key: 1,
        scale: 1.0,
        query: false,
        dk: 1,
        dv: 1,
    };
    let (batch, time, width) = (2, 11, 6);
    let shape = Shape { batch, time, state_heads: width, dk: 1, dv: 1 };
    let x = problem(&spec, shape, 301);
    let mut h = x.s0.clone();
    let mut want = Vec::new();
    for b in 0..batch {
        for t in 0..time {
            for c in 0..width {
                let at = (b * time + t) * width + c;
                let state = &mut h[b * width + c];
                *state = x.g[at].exp() * *state + x.k[at] * x.v[at];
                want.push((at, *state));
            }
        }
    }
    want.sort_by_key(|(at, _)| *at);
    let compiled = jit::compile(&scan::forward(&spec, "hgrn_fwd")).expect("compiles");
    let mut buffers = Buffers::new(&spec, shape, &x);
    let mut o = MemRef::new([batch, time, width, 1], vec![f32::NAN; batch * time * width]);
    let mut state = MemRef::new([batch, width, 1, 1], f32s(&x.s0));
    let mut args = buffers.inputs();
    args.extend([&mut o as &mut dyn AsDescriptor, &mut state]);
    // SAFETY: shapes as ScanSpec::arguments describes.
    unsafe { compiled.call("hgrn_fwd", &mut args) }.expect("runs");
    let want: Vec<f64> = want.into_iter().map(|(_, v)| v).collect();
    assert_close("vector state output", &o.data, &want, 2e-5);
    assert_close("vector state final", &state.data, &h, 2e-5);
    check_backward(spec, shape, 4, 302);
}
