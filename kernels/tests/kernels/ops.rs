//! Short convolution, embedding, fused cross-entropy and AdamW against plain references;
//! the convolution's and the loss's gradients against central finite differences.

use hyb_kernels::emit::{Config, Parallel};
use hyb_kernels::jit::{self, AsDescriptor, MemRef};
use hyb_kernels::{conv, embed, loss, optim};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

use crate::common::{assert_close, f32s, finite_differences, random_in};

fn random(rng: &mut SmallRng, len: usize) -> Vec<f64> {
    random_in(rng, len, -1.0, 1.0)
}

fn close(what: &str, got: &[f32], want: &[f64], tolerance: f64) {
    assert_close(what, got, want, tolerance, 1.0);
}

fn fd(values: &[f64], f: &dyn Fn(&[f64]) -> f64) -> Vec<f64> {
    finite_differences(values, 1e-6, f)
}

#[derive(Clone, Copy)]
struct ConvShape {
    b: usize,
    t: usize,
    c: usize,
    w_len: usize,
}

/// `Σ dy ⊙ conv(x)`.
fn conv_loss(shape: ConvShape, x: &[f64], w: &[f64], bias: &[f64], dy: &[f64]) -> f64 {
    let ConvShape { b, t, c, w_len } = shape;
    let mut total = 0.0;
    for bi in 0..b {
        for ti in 0..t {
            for ci in 0..c {
                let mut y = bias.get(ci).copied().unwrap_or(0.0);
                for j in 0..w_len {
                    if ti + j >= w_len - 1 {
                        y += w[ci * w_len + j] * x[(bi * t + ti + j - (w_len - 1)) * c + ci];
                    }
                }
                total += y * dy[(bi * t + ti) * c + ci];
            }
        }
    }
    total
}

#[test]
fn short_convolution_and_its_gradients() {
    // Channel counts past a vector's width and not a multiple of it (the CPU's channel
    // loop is vectorised), sequences shorter than the filter.
    let cases = [
        (1, 1, 1, 4, false),
        (2, 9, 5, 4, true),
        (1, 3, 2, 4, false),
        (2, 6, 3, 2, true),
        (3, 7, 37, 4, true),
        (2, 2, 19, 4, false),
        // Sequences past one chunk of a GPU lane's tokens (16), and not a multiple of it.
        (2, 37, 5, 4, true),
        (1, 33, 3, 3, false),
    ];
    // The CPU's form, and the GPU's lanes (one per channel and chunk of tokens) run lane
    // by lane.
    let configs = [Config::CPU, crate::ONE_LANE];
    for (seed, ((b, t, c, w_len, with_bias), config)) in
        cases.into_iter().flat_map(|case| configs.map(|config| (case, config))).enumerate()
    {
        let lanes = (config.parallel == Parallel::OneLane).then_some(c * conv::time_chunks(t));
        let shape = ConvShape { b, t, c, w_len };
        let mut rng = SmallRng::seed_from_u64(seed as u64);
        let (x, w, bias, dy) = (
            random(&mut rng, b * t * c),
            random(&mut rng, c * w_len),
            random(&mut rng, c),
            random(&mut rng, b * t * c),
        );
        let bias_used: Vec<f64> = if with_bias { bias.clone() } else { Vec::new() };
        let forward = jit::compile(&conv::forward_with(with_bias, "f", &config)).expect("compiles");
        let backward = jit::compile(&conv::backward_with(with_bias, "b", &config)).expect("compiles");
        let (mut xm, mut wm, mut bm) =
            (MemRef::new([b, t, c], f32s(&x)), MemRef::new([c, 1, w_len], f32s(&w)), MemRef::new([c], f32s(&bias)));
        // Outputs poisoned: the forward and dx overwrite theirs.
        let mut y = MemRef::new([b, t, c], vec![f32::NAN; b * t * c]);
        {
            let mut args: Vec<&mut dyn AsDescriptor> = vec![&mut xm, &mut wm];
            if with_bias {
                args.push(&mut bm);
            }
            args.push(&mut y);
            crate::call(&forward, "f", &mut args, lanes);
        }
        let want: Vec<f64> = (0..b * t * c)
            .map(|at| {
                let mut one_hot = vec![0.0; b * t * c];
                one_hot[at] = 1.0;
                conv_loss(shape, &x, &w, &bias_used, &one_hot)
            })
            .collect();
        close("conv forward", &y.data, &want, 1e-5);
        let mut dym = MemRef::new([b, t, c], f32s(&dy));
        // dw and dbias accumulate: they start from values of their own, subtracted below.
        let (dw_start, db_start) = (random(&mut rng, c * w_len), random(&mut rng, c));
        let (mut dx, mut dw, mut db) = (
            MemRef::new([b, t, c], vec![f32::NAN; b * t * c]),
            MemRef::new([c, 1, w_len], f32s(&dw_start)),
            MemRef::new([c], f32s(&db_start)),
        );
        {
            let mut args: Vec<&mut dyn AsDescriptor> = vec![&mut xm, &mut wm, &mut dym, &mut dx, &mut dw];
            if with_bias {
                args.push(&mut db);
            }
            crate::call(&backward, "b", &mut args, lanes);
        }
        let plus = |start: &[f64], grad: Vec<f64>| -> Vec<f64> { start.iter().zip(grad).map(|(s, g)| s + g).collect() };
        close("conv dx", &dx.data, &fd(&x, &|x| conv_loss(shape, x, &w, &bias_used, &dy)), 1e-4);
        close("conv dw", &dw.data, &plus(&dw_start, fd(&w, &|w| conv_loss(shape, &x, w, &bias_used, &dy))), 1e-4);
        let db_want =
            if with_bias { plus(&db_start, fd(&bias, &|bias| conv_loss(shape, &x, &w, bias, &dy))) } else { db_start };
        close("conv dbias", &db.data, &db_want, 1e-4);
    }
}

#[test]
fn embedding_gathers_and_scatters() {
    for config in [Config::CPU, crate::ONE_LANE] {
        check_embedding(&config);
    }
}

/// Gather and scatter under `config` (lane by lane under [`crate::ONE_LANE`]: a lane per
/// column) against plain loops, with repeated ids.
fn check_embedding(config: &Config) {
    let (vocab, d, b, t) = (7, 3, 2, 5);
    let lanes = (config.parallel == Parallel::OneLane).then_some(d);
    let mut rng = SmallRng::seed_from_u64(3);
    let table = random(&mut rng, vocab * d);
    let ids: Vec<i32> = (0..b * t).map(|_| rng.random_range(0..vocab as i32)).collect();
    let mut tm = MemRef::new([vocab, d], f32s(&table));
    let mut tokens = MemRef::ints([b, t], ids.clone());
    let mut y = MemRef::new([b, t, d], vec![f32::NAN; b * t * d]);
    let gather = jit::compile(&embed::gather_with("g", config)).expect("compiles");
    crate::call(&gather, "g", &mut vec![&mut tm, &mut tokens, &mut y], lanes);
    let want: Vec<f64> = ids.iter().flat_map(|id| table[*id as usize * d..(*id as usize + 1) * d].to_vec()).collect();
    close(&format!("gather lanes={lanes:?}"), &y.data, &want, 0.0);
    let dy = random(&mut rng, b * t * d);
    let mut dym = MemRef::new([b, t, d], f32s(&dy));
    let mut dtable = MemRef::zeros([vocab, d]);
    let scatter = jit::compile(&embed::scatter_with("s", config)).expect("compiles");
    crate::call(&scatter, "s", &mut vec![&mut tm, &mut tokens, &mut dym, &mut dtable], lanes);
    let mut want = vec![0.0; vocab * d];
    for (k, id) in ids.iter().enumerate() {
        for j in 0..d {
            want[*id as usize * d + j] += dy[k * d + j];
        }
    }
    assert!(ids.len() > vocab, "some id repeats");
    close(&format!("scatter lanes={lanes:?}"), &dtable.data, &want, 1e-6);
}

/// Mean cross-entropy over the rows with a target (negative: none), written plainly.
fn ce(v: usize, logits: &[f64], targets: &[i32]) -> f64 {
    let mut total = 0.0;
    let mut count = 0;
    for (row, target) in logits.chunks(v).zip(targets) {
        if *target < 0 {
            continue;
        }
        let max = row.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
        let lse = max + row.iter().map(|x| (x - max).exp()).sum::<f64>().ln();
        total += lse - row[*target as usize];
        count += 1;
    }
    total / count.max(1) as f64
}

#[test]
fn cross_entropy_and_its_gradient() {
    let (b, t, v) = (2, 6, 11);
    let mut rng = SmallRng::seed_from_u64(5);
    let logits: Vec<f64> = random(&mut rng, b * t * v).iter().map(|x| x * 4.0 - 120.0).collect();
    // Some positions without a target (−1, −100), as the last of a sequence and the
    // non-answer positions of a recall task have.
    let ids: Vec<i32> =
        (0..b * t).map(|_| rng.random_range(-2..v as i32)).map(|id| if id == -2 { -100 } else { id }).collect();
    assert!(ids.iter().any(|i| *i < 0) && ids.iter().any(|i| *i >= 0), "both kinds of rows");
    let kernel = jit::compile(&loss::cross_entropy("ce")).expect("compiles");
    let mut lm = MemRef::new([b, t, v], f32s(&logits));
    let mut tokens = MemRef::ints([b, t], ids.clone());
    let mut all = MemRef::ints([b, t], ids.clone());
    let mut out = MemRef::zeros([1]);
    let mut grad = MemRef::zeros([b, t, v]);
    {
        let mut args: Vec<&mut dyn AsDescriptor> = vec![&mut lm, &mut tokens, &mut all, &mut out, &mut grad];
        // SAFETY: shapes as loss::cross_entropy documents.
        unsafe { kernel.call("ce", &mut args) }.expect("runs");
    }
    // Logits near −120: the maximum must start from −∞ (from 0, exp underflows to 0).
    close("loss", &out.data, &[ce(v, &logits, &ids)], 1e-5);
    close("dlogits", &grad.data, &fd(&logits, &|l| ce(v, l, &ids)), 1e-4);
    // Split by sequence, as a launch's parts run it: each part sees its rows and all the
    // targets (for the mean's count) and adds its share of the loss.
    let mut split_out = MemRef::zeros([1]);
    let mut split_grad = Vec::new();
    for part in 0..b {
        let rows = part * t * v..(part + 1) * t * v;
        let mut lm = MemRef::new([1, t, v], f32s(&logits[rows.clone()]));
        let mut tokens = MemRef::ints([1, t], ids[part * t..(part + 1) * t].to_vec());
        let mut grad = MemRef::zeros([1, t, v]);
        let mut args: Vec<&mut dyn AsDescriptor> = vec![&mut lm, &mut tokens, &mut all, &mut split_out, &mut grad];
        // SAFETY: as above, one sequence of rows.
        unsafe { kernel.call("ce", &mut args) }.expect("runs");
        split_grad.extend(grad.data);
    }
    let widen = |x: &[f32]| x.iter().map(|v| *v as f64).collect::<Vec<_>>();
    close("loss in parts", &split_out.data, &widen(&out.data), 1e-6);
    close("dlogits in parts", &split_grad, &widen(&grad.data), 1e-6);
}

#[test]
fn adamw_matches_pytorch_formulas() {
    let n = 9;
    let mut rng = SmallRng::seed_from_u64(9);
    let (p, g, m, v) = (
        random(&mut rng, n),
        random(&mut rng, n),
        random(&mut rng, n),
        random(&mut rng, n).iter().map(|x| x.abs()).collect::<Vec<_>>(),
    );
    let (lr, b1, b2, eps, wd, step, clip) = (1e-2, 0.9, 0.95, 1e-8, 0.1, 3.0, 0.5);
    let scalars = vec![lr, b1, b2, eps, wd, 1.0 - f64::powf(b1, step), 1.0 - f64::powf(b2, step), clip];
    let (mut pm, mut gm, mut mm, mut vm, mut sm) = (
        MemRef::new([n], f32s(&p)),
        MemRef::new([n], f32s(&g)),
        MemRef::new([n], f32s(&m)),
        MemRef::new([n], f32s(&v)),
        MemRef::new([8], f32s(&scalars)),
    );
    let kernel = jit::compile(&optim::adamw("adamw")).expect("compiles");
    {
        let mut args: Vec<&mut dyn AsDescriptor> = vec![&mut pm, &mut gm, &mut mm, &mut vm, &mut sm];
        // SAFETY: four [n] buffers and eight scalars.
        unsafe { kernel.call("adamw", &mut args) }.expect("runs");
    }
    let (mut want_p, mut want_m, mut want_v) = (Vec::new(), Vec::new(), Vec::new());
    for k in 0..n {
        let grad = g[k] * clip;
        let m_new = b1 * m[k] + (1.0 - b1) * grad;
        let v_new = b2 * v[k] + (1.0 - b2) * grad * grad;
        let update = (m_new / scalars[5]) / ((v_new / scalars[6]).sqrt() + eps);
        want_p.push(p[k] * (1.0 - lr * wd) - lr * update);
        want_m.push(m_new);
        want_v.push(v_new);
    }
    close("p", &pm.data, &want_p, 1e-6);
    close("m", &mm.data, &want_m, 1e-6);
    close("v", &vm.data, &want_v, 1e-6);

    let squares = jit::compile(&optim::sum_of_squares("sq")).expect("compiles");
    let mut total = MemRef::new([1], vec![1.5]);
    {
        let mut args: Vec<&mut dyn AsDescriptor> = vec![&mut gm, &mut total];
        // SAFETY: one [n] buffer and one accumulator.
        unsafe { squares.call("sq", &mut args) }.expect("runs");
    }
    close("sum of squares", &total.data, &[1.5 + g.iter().map(|x| x * x).sum::<f64>()], 1e-6);
}
