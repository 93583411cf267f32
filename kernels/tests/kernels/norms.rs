//! Row norms against f64 references; backward against central finite differences.
//! Tolerances: forward 2e-5, backward 5e-4, relative to max(1, largest |reference|).

use hyb_kernels::jit::{self, AsDescriptor, MemRef};
use hyb_kernels::norms;
use rand::SeedableRng;
use rand::rngs::SmallRng;

use crate::common::{assert_close, f32s, finite_differences, random_in};

fn random(rng: &mut SmallRng, len: usize) -> Vec<f64> {
    random_in(rng, len, -2.0, 2.0)
}

fn close(what: &str, got: &[f32], want: &[f64], tolerance: f64) {
    assert_close(what, got, want, tolerance, 1.0);
}

fn fd(values: &[f64], f: &dyn Fn(&[f64]) -> f64) -> Vec<f64> {
    finite_differences(values, 1e-6, f)
}

const EPS: f64 = 1e-6;

fn silu(z: f64) -> f64 {
    z / (1.0 + (-z).exp())
}

/// `Σ dy ⊙ y` for y the RMSNorm (gated or not) or the L2 normalisation of rows of x.
fn loss(kind: &str, rows: usize, width: usize, x: &[f64], z: &[f64], w: &[f64], dy: &[f64]) -> f64 {
    let mut total = 0.0;
    for r in 0..rows {
        let row = &x[r * width..(r + 1) * width];
        let sum: f64 = row.iter().map(|v| v * v).sum();
        let inv = if kind == "l2" { 1.0 / (sum + EPS).sqrt() } else { 1.0 / (sum / width as f64 + EPS).sqrt() };
        for (j, weight) in w.iter().enumerate().take(width) {
            let at = r * width + j;
            let y = match kind {
                "l2" => x[at] * inv,
                "rms" => x[at] * inv * weight,
                _ => x[at] * inv * weight * silu(z[at]),
            };
            total += y * dy[at];
        }
    }
    total
}

fn check(kind: &str, rows: usize, width: usize, seed: u64) {
    let mut rng = SmallRng::seed_from_u64(seed);
    let (x, z, w, dy) = (
        random(&mut rng, rows * width),
        random(&mut rng, rows * width),
        random(&mut rng, width),
        random(&mut rng, rows * width),
    );
    let gated = kind == "gated";
    let (forward, backward) = match kind {
        "l2" => (norms::l2_forward(EPS, "f"), norms::l2_backward(EPS, "b")),
        _ => (norms::rms_forward(EPS, gated, "f"), norms::rms_backward(EPS, gated, "b")),
    };
    let forward = jit::compile(&forward).unwrap_or_else(|e| panic!("{e}"));
    let backward = jit::compile(&backward).unwrap_or_else(|e| panic!("{e}"));
    let mut xm = MemRef::new([rows, width], f32s(&x));
    let mut zm = MemRef::new([rows, width], f32s(&z));
    let mut wm = MemRef::new([width], f32s(&w));
    let mut y = MemRef::zeros([rows, width]);
    {
        let mut args: Vec<&mut dyn AsDescriptor> = vec![&mut xm];
        if gated {
            args.push(&mut zm);
        }
        if kind != "l2" {
            args.push(&mut wm);
        }
        args.push(&mut y);
        // SAFETY: rows × width buffers as the generator's arguments say.
        unsafe { forward.call("f", &mut args) }.expect("runs");
    }
    // The forward value, through the loss with one-hot weights.
    let want: Vec<f64> = (0..rows * width)
        .map(|at| {
            let mut one_hot = vec![0.0; rows * width];
            one_hot[at] = 1.0;
            loss(kind, rows, width, &x, &z, &w, &one_hot)
        })
        .collect();
    close(&format!("{kind} forward"), &y.data, &want, 2e-5);

    let mut dym = MemRef::new([rows, width], f32s(&dy));
    let (mut dx, mut dz, mut dw) = (MemRef::zeros([rows, width]), MemRef::zeros([rows, width]), MemRef::zeros([width]));
    {
        let mut args: Vec<&mut dyn AsDescriptor> = vec![&mut xm];
        if gated {
            args.push(&mut zm);
        }
        if kind != "l2" {
            args.push(&mut wm);
        }
        args.extend([&mut dym as &mut dyn AsDescriptor, &mut dx]);
        if gated {
            args.push(&mut dz);
        }
        if kind != "l2" {
            args.push(&mut dw);
        }
        // SAFETY: as above.
        unsafe { backward.call("b", &mut args) }.expect("runs");
    }
    close(&format!("{kind} dx"), &dx.data, &fd(&x, &|x| loss(kind, rows, width, x, &z, &w, &dy)), 5e-4);
    if kind != "l2" {
        close(&format!("{kind} dw"), &dw.data, &fd(&w, &|w| loss(kind, rows, width, &x, &z, w, &dy)), 5e-4);
    }
    if gated {
        close(&format!("{kind} dz"), &dz.data, &fd(&z, &|z| loss(kind, rows, width, &x, z, &w, &dy)), 5e-4);
    }
}

#[test]
fn norms_match_references_and_finite_differences() {
    for (seed, kind) in ["rms", "gated", "l2"].into_iter().enumerate() {
        check(kind, 1, 1, seed as u64);
        check(kind, 7, 16, 10 + seed as u64);
        check(kind, 3, 33, 20 + seed as u64);
    }
}
