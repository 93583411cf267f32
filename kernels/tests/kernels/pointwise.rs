//! Fused elementwise chains against f64 evaluation, and their symbolic backward against
//! central finite differences, on random expressions and on the chains the models use.
//! Tolerances: forward 1e-5, backward 1e-3, relative to max(1, |reference|).

use hyb_kernels::jit::{self, AsDescriptor, MemRef};
use hyb_kernels::pointwise::{self, Binary, Expr, MapSpec, Unary};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

const LEN: usize = 257;

/// A random expression over `inputs` inputs; logs, roots and divisions get positive
/// arguments (`softplus(·) + 0.5`) so every value is finite.
fn random_expr(rng: &mut SmallRng, inputs: usize, depth: usize) -> Expr {
    if depth == 0 || rng.random_bool(0.25) {
        return if rng.random_bool(0.8) {
            Expr::Input(rng.random_range(0..inputs))
        } else {
            Expr::Const(rng.random_range(-2.0..2.0f32) as f64)
        };
    }
    let positive = |x: Expr| Expr::binary(Binary::Add, Expr::unary(Unary::Softplus, x), Expr::Const(0.5));
    let x = random_expr(rng, inputs, depth - 1);
    match rng.random_range(0..14) {
        0 => Expr::unary(Unary::Neg, x),
        1 => Expr::unary(Unary::Exp, Expr::unary(Unary::LogSigmoid, x)),
        2 => Expr::unary(Unary::Log, positive(x)),
        3 => Expr::unary(Unary::Sigmoid, x),
        4 => Expr::unary(Unary::Silu, x),
        5 => Expr::unary(Unary::Softplus, x),
        6 => Expr::unary(Unary::LogSigmoid, x),
        7 => Expr::unary(Unary::Relu, x),
        8 => Expr::unary(Unary::Sqrt, positive(x)),
        9 => Expr::binary(Binary::Add, x, random_expr(rng, inputs, depth - 1)),
        10 => Expr::binary(Binary::Sub, x, random_expr(rng, inputs, depth - 1)),
        11 => Expr::binary(Binary::Mul, x, random_expr(rng, inputs, depth - 1)),
        12 => Expr::binary(Binary::Div, x, positive(random_expr(rng, inputs, depth - 1))),
        _ => Expr::binary(Binary::Max, x, random_expr(rng, inputs, depth - 1)),
    }
}

fn run(spec: &MapSpec, inputs: &[Vec<f64>]) -> Vec<Vec<f32>> {
    let compiled = jit::compile(&pointwise::generate(spec, "map")).unwrap_or_else(|e| panic!("{e}\n{spec:?}"));
    let mut ins: Vec<MemRef<1>> =
        inputs.iter().map(|v| MemRef::new([LEN], v.iter().map(|x| *x as f32).collect())).collect();
    let mut outs: Vec<MemRef<1>> = spec.outputs.iter().map(|_| MemRef::zeros([LEN])).collect();
    {
        let mut args: Vec<&mut dyn AsDescriptor> = Vec::new();
        for m in ins.iter_mut().chain(outs.iter_mut()) {
            args.push(m);
        }
        // SAFETY: every argument is a flat buffer of LEN elements.
        unsafe { compiled.call("map", &mut args) }.expect("runs");
    }
    outs.into_iter().map(|m| m.data).collect()
}

fn check_close(what: &str, got: f32, want: f64, tolerance: f64) {
    let error = (got as f64 - want).abs() / want.abs().max(1.0);
    assert!(got.is_finite() && error <= tolerance, "{what}: kernel {got}, reference {want} (error {error:e})");
}

fn check(spec: &MapSpec, seed: u64) {
    let mut rng = SmallRng::seed_from_u64(seed);
    let inputs: Vec<Vec<f64>> =
        (0..spec.inputs).map(|_| (0..LEN).map(|_| rng.random_range(-3.0..3.0f32) as f64).collect()).collect();
    let point = |k: usize| -> Vec<f64> { inputs.iter().map(|v| v[k]).collect() };
    let outputs = run(spec, &inputs);
    for (o, expr) in spec.outputs.iter().enumerate() {
        for (k, got) in outputs[o].iter().enumerate() {
            check_close(&format!("{expr:?} at {k}"), *got, expr.eval(&point(k)), 1e-5);
        }
    }
    // Backward: d inputs from random output gradients, against finite differences.
    let d_out: Vec<Vec<f64>> =
        spec.outputs.iter().map(|_| (0..LEN).map(|_| rng.random_range(-1.0..1.0f32) as f64).collect()).collect();
    let backward = pointwise::backward(spec);
    let mut all_inputs = inputs.clone();
    all_inputs.extend(d_out.iter().cloned());
    let grads = run(&backward, &all_inputs);
    let epsilon = 1e-6;
    for i in 0..spec.inputs {
        for k in 0..LEN {
            let mut up = point(k);
            let mut down = point(k);
            up[i] += epsilon;
            down[i] -= epsilon;
            let fd: f64 = spec
                .outputs
                .iter()
                .enumerate()
                .map(|(o, expr)| d_out[o][k] * (expr.eval(&up) - expr.eval(&down)) / (2.0 * epsilon))
                .sum();
            check_close(&format!("d input {i} of {:?} at {k}", spec.outputs), grads[i][k], fd, 1e-3);
        }
    }
}

#[test]
fn random_chains_and_their_backward() {
    let mut rng = SmallRng::seed_from_u64(11);
    for seed in 0..40 {
        let inputs = rng.random_range(1..4);
        let outputs = (0..rng.random_range(1..3)).map(|_| random_expr(&mut rng, inputs, 4)).collect();
        check(&MapSpec { inputs, outputs }, seed);
    }
}

#[test]
fn the_models_chains() {
    let x = |i| Expr::Input(i);
    // GLA's gate: logsigmoid(z) / 16.
    let gla = Expr::binary(Binary::Div, Expr::unary(Unary::LogSigmoid, x(0)), Expr::Const(16.0));
    // HGRN-2's tied key: 1 − e^g.
    let tied = Expr::binary(Binary::Sub, Expr::Const(1.0), Expr::unary(Unary::Exp, x(0)));
    // SwiGLU: silu(gate) · up.
    let swiglu = Expr::binary(Binary::Mul, Expr::unary(Unary::Silu, x(0)), x(1));
    // Gated DeltaNet's decay: −exp(A_log) · softplus(a + dt_bias).
    let mamba = Expr::binary(
        Binary::Mul,
        Expr::unary(Unary::Neg, Expr::unary(Unary::Exp, x(1))),
        Expr::unary(Unary::Softplus, Expr::binary(Binary::Add, x(0), x(2))),
    );
    for (seed, (inputs, expr)) in [(1, gla), (1, tied), (2, swiglu), (3, mamba)].into_iter().enumerate() {
        check(&MapSpec { inputs, outputs: vec![expr] }, 100 + seed as u64);
    }
}

/// Broadcast inputs: a per-channel bias, the Mamba gate's per-head parameters and HGRN's
/// floor against `[rows, W]` values; forward against f64, and the broadcast inputs'
/// gradients (per-element backward, then `sum_rows`) against finite differences.
#[test]
fn broadcast_chains_and_their_gradients() {
    let (rows, width) = (5, 6);
    let x = |i| Expr::Input(i);
    let bias_add = Expr::binary(Binary::Add, x(0), x(1));
    let mamba = Expr::binary(
        Binary::Mul,
        Expr::unary(Unary::Neg, Expr::unary(Unary::Exp, x(1))),
        Expr::unary(Unary::Softplus, Expr::binary(Binary::Add, x(0), x(2))),
    );
    // log(γ + (1 − γ) e^g), γ in (0, 1)
    let bound = Expr::unary(
        Unary::Log,
        Expr::binary(
            Binary::Add,
            x(1),
            Expr::binary(Binary::Mul, Expr::binary(Binary::Sub, Expr::Const(1.0), x(1)), Expr::unary(Unary::Exp, x(0))),
        ),
    );
    for (seed, (inputs, expr)) in [(2usize, bias_add), (3, mamba), (2, bound)].into_iter().enumerate() {
        let mut rng = SmallRng::seed_from_u64(200 + seed as u64);
        let broadcast: Vec<bool> = (0..inputs).map(|i| i > 0).collect();
        let values: Vec<Vec<f64>> = (0..inputs)
            .map(|i| {
                let len = if broadcast[i] { width } else { rows * width };
                // γ must lie in (0, 1); g ≤ 0 for the bound.
                (0..len)
                    .map(|_| {
                        if seed == 2 {
                            rng.random_range(0.05..0.95f32) as f64
                        } else {
                            rng.random_range(-2.0..2.0f32) as f64
                        }
                    })
                    .collect()
            })
            .collect();
        let values: Vec<Vec<f64>> =
            if seed == 2 { vec![values[0].iter().map(|g| -g).collect(), values[1].clone()] } else { values };
        let at = |k: usize| -> Vec<f64> {
            (0..inputs).map(|i| if broadcast[i] { values[i][k % width] } else { values[i][k] }).collect()
        };
        let spec = MapSpec { inputs, outputs: vec![expr.clone()] };
        let compiled = jit::compile(&pointwise::generate_broadcast(&spec, &broadcast, "map")).expect("compiles");
        let mut ins: Vec<MemRef<1>> =
            values.iter().map(|v| MemRef::new([v.len()], v.iter().map(|x| *x as f32).collect())).collect();
        let mut out = MemRef::zeros([rows * width]);
        {
            let mut args: Vec<&mut dyn AsDescriptor> = Vec::new();
            for m in ins.iter_mut() {
                args.push(m);
            }
            args.push(&mut out);
            // SAFETY: full inputs have rows × width elements, broadcast ones width.
            unsafe { compiled.call("map", &mut args) }.expect("runs");
        }
        for (k, got) in out.data.iter().enumerate() {
            check_close(&format!("{expr:?} at {k}"), *got, expr.eval(&at(k)), 1e-5);
        }
        // The gradient of Σ_k out_k with respect to each broadcast input.
        let per_element = pointwise::backward(&spec);
        let backward_broadcast: Vec<bool> = broadcast.iter().copied().chain([false]).collect();
        let compiled =
            jit::compile(&pointwise::generate_broadcast(&per_element, &backward_broadcast, "bwd")).expect("compiles");
        let sum = jit::compile(&pointwise::sum_rows("sum")).expect("compiles");
        let mut ones = MemRef::new([rows * width], vec![1.0; rows * width]);
        let mut grads: Vec<MemRef<1>> = (0..inputs).map(|_| MemRef::zeros([rows * width])).collect();
        {
            let mut args: Vec<&mut dyn AsDescriptor> = Vec::new();
            for m in ins.iter_mut() {
                args.push(m);
            }
            args.push(&mut ones);
            for g in grads.iter_mut() {
                args.push(g);
            }
            // SAFETY: as above, plus one output gradient and one result per input.
            unsafe { compiled.call("bwd", &mut args) }.expect("runs");
        }
        for i in (0..inputs).filter(|i| broadcast[*i]) {
            let mut total = MemRef::zeros([width]);
            let mut args: Vec<&mut dyn AsDescriptor> = vec![&mut grads[i], &mut total];
            // SAFETY: rows × width in, width out.
            unsafe { sum.call("sum", &mut args) }.expect("runs");
            for c in 0..width {
                let h = 1e-6;
                let eval_total = |delta: f64| -> f64 {
                    (0..rows * width)
                        .map(|k| {
                            let mut point = at(k);
                            if k % width == c {
                                point[i] += delta;
                            }
                            expr.eval(&point)
                        })
                        .sum()
                };
                let fd = (eval_total(h) - eval_total(-h)) / (2.0 * h);
                check_close(&format!("d broadcast input {i} column {c} of {expr:?}"), total.data[c], fd, 1e-3);
            }
        }
    }
}
