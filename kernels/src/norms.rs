//! Row norms, generated as MLIR, on `[R, W]` rows (a tensor's leading dims and its head
//! groups flattened into R): RMSNorm `x̂ · w` with `x̂ = x / sqrt(mean x² + ε)`, its gated
//! form `x̂ · w · silu(z)`, L2 normalisation `x / sqrt(Σ x² + ε)` and sum normalisation
//! `x / Σ x`; each with its backward. The weight gradient accumulates over rows (zero it first).

use crate::emit::{Emitter, accumulate, f32_constant, memref_params};

const ROWS: &str = "memref<?x?xf32>";

fn header(e: &mut Emitter, name: &str, args: &[(&str, usize)], eps: f64) {
    e.begin_function(name, &memref_params(args));
    e.line(&format!("%eps = {}", f32_constant(eps)));
    e.line(&format!("%R = memref.dim %x, %c0 : {ROWS}"));
    e.line(&format!("%W = memref.dim %x, %c1 : {ROWS}"));
    e.line("%w_i = arith.index_cast %W : index to i64");
    e.line("%w_f = arith.sitofp %w_i : i64 to f32");
}

/// `1 / sqrt(Σ x² / W + ε)` (mean) or `1 / sqrt(Σ x² + ε)` (sum) of row `r`.
fn inverse_norm(e: &mut Emitter, r: &str, mean: bool) -> String {
    let sum = e.dot("%W", |e, j| {
        let x = e.op(&format!("memref.load %x[{r}, {j}] : {ROWS}"));
        (x.clone(), x)
    });
    let scaled = if mean { e.op(&format!("arith.divf {sum}, %w_f : f32")) } else { sum };
    let shifted = e.op(&format!("arith.addf {scaled}, %eps : f32"));
    e.op(&format!("math.rsqrt {shifted} : f32"))
}

/// `silu(z)` and `silu'(z)`.
fn silu(e: &mut Emitter, z: &str) -> (String, String) {
    let neg = e.op(&format!("arith.negf {z} : f32"));
    let exp = e.op(&format!("math.exp {neg} : f32"));
    let den = e.op(&format!("arith.addf %one, {exp} : f32"));
    let sig = e.op(&format!("arith.divf %one, {den} : f32"));
    let value = e.op(&format!("arith.mulf {z}, {sig} : f32"));
    // silu' = σ (1 + z (1 − σ))
    let one_minus = e.op(&format!("arith.subf %one, {sig} : f32"));
    let z_term = e.op(&format!("arith.mulf {z}, {one_minus} : f32"));
    let inner = e.op(&format!("arith.addf %one, {z_term} : f32"));
    let slope = e.op(&format!("arith.mulf {sig}, {inner} : f32"));
    (value, slope)
}

/// RMSNorm forward: `y = x̂ · w` (`· silu(z)` when gated). Args: x, [z], w, y.
pub fn rms_forward(eps: f64, gated: bool, name: &str) -> String {
    let mut e = Emitter::default();
    let mut args = vec![("x", 2)];
    if gated {
        args.push(("z", 2));
    }
    args.extend([("w", 1), ("y", 2)]);
    header(&mut e, name, &args, eps);
    let r = e.open_for("%c0", "%R");
    let inv = inverse_norm(&mut e, &r, true);
    let j = e.open_for("%c0", "%W");
    let x = e.op(&format!("memref.load %x[{r}, {j}] : {ROWS}"));
    let w = e.op(&format!("memref.load %w[{j}] : memref<?xf32>"));
    let xn = e.op(&format!("arith.mulf {x}, {inv} : f32"));
    let mut y = e.op(&format!("arith.mulf {xn}, {w} : f32"));
    if gated {
        let z = e.op(&format!("memref.load %z[{r}, {j}] : {ROWS}"));
        let (gate, _) = silu(&mut e, &z);
        y = e.op(&format!("arith.mulf {y}, {gate} : f32"));
    }
    e.line(&format!("memref.store {y}, %y[{r}, {j}] : {ROWS}"));
    e.close();
    e.close();
    e.end_function()
}

/// RMSNorm backward. Args: x, [z], w, dy, dx, [dz], dw (dw accumulates).
/// `dx = r (g − x̂ · mean(g ⊙ x̂))` with `g = dy · w (· silu(z))`, `dw += Σ dy ⊙ x̂ (· silu(z))`,
/// `dz = dy · x̂ w · silu'(z)`.
pub fn rms_backward(eps: f64, gated: bool, name: &str) -> String {
    let mut e = Emitter::default();
    let mut args = vec![("x", 2)];
    if gated {
        args.push(("z", 2));
    }
    args.extend([("w", 1), ("dy", 2), ("dx", 2)]);
    if gated {
        args.push(("dz", 2));
    }
    args.push(("dw", 1));
    header(&mut e, name, &args, eps);
    let r = e.open_for("%c0", "%R");
    let inv = inverse_norm(&mut e, &r, true);
    // The upstream gradient of x̂ · w, with the gate folded in.
    let upstream = |e: &mut Emitter, j: &str| -> (String, String, String) {
        let x = e.op(&format!("memref.load %x[{r}, {j}] : {ROWS}"));
        let xn = e.op(&format!("arith.mulf {x}, {inv} : f32"));
        let dy = e.op(&format!("memref.load %dy[{r}, {j}] : {ROWS}"));
        let d = if gated {
            let z = e.op(&format!("memref.load %z[{r}, {j}] : {ROWS}"));
            let (gate, _) = silu(e, &z);
            e.op(&format!("arith.mulf {dy}, {gate} : f32"))
        } else {
            dy
        };
        let w = e.op(&format!("memref.load %w[{j}] : memref<?xf32>"));
        let g = e.op(&format!("arith.mulf {d}, {w} : f32"));
        (xn, d, g)
    };
    let total = e.dot("%W", |e, j| {
        let (xn, _, g) = upstream(e, j);
        (g, xn)
    });
    let mean = e.op(&format!("arith.divf {total}, %w_f : f32"));
    let j = e.open_for("%c0", "%W");
    let (xn, d, g) = upstream(&mut e, &j);
    let correction = e.op(&format!("arith.mulf {xn}, {mean} : f32"));
    let diff = e.op(&format!("arith.subf {g}, {correction} : f32"));
    let dx = e.op(&format!("arith.mulf {inv}, {diff} : f32"));
    e.line(&format!("memref.store {dx}, %dx[{r}, {j}] : {ROWS}"));
    let dw = e.op(&format!("arith.mulf {d}, {xn} : f32"));
    accumulate(&mut e, &format!("%dw[{j}] : memref<?xf32>"), &dw);
    if gated {
        let dy = e.op(&format!("memref.load %dy[{r}, {j}] : {ROWS}"));
        let w = e.op(&format!("memref.load %w[{j}] : memref<?xf32>"));
        let z = e.op(&format!("memref.load %z[{r}, {j}] : {ROWS}"));
        let (_, slope) = silu(&mut e, &z);
        let xw = e.op(&format!("arith.mulf {xn}, {w} : f32"));
        let dyxw = e.op(&format!("arith.mulf {dy}, {xw} : f32"));
        let dz = e.op(&format!("arith.mulf {dyxw}, {slope} : f32"));
        e.line(&format!("memref.store {dz}, %dz[{r}, {j}] : {ROWS}"));
    }
    e.close();
    e.close();
    e.end_function()
}

/// L2 normalisation forward. Args: x, y.
pub fn l2_forward(eps: f64, name: &str) -> String {
    let mut e = Emitter::default();
    header(&mut e, name, &[("x", 2), ("y", 2)], eps);
    let r = e.open_for("%c0", "%R");
    let inv = inverse_norm(&mut e, &r, false);
    let j = e.open_for("%c0", "%W");
    let x = e.op(&format!("memref.load %x[{r}, {j}] : {ROWS}"));
    let y = e.op(&format!("arith.mulf {x}, {inv} : f32"));
    e.line(&format!("memref.store {y}, %y[{r}, {j}] : {ROWS}"));
    e.close();
    e.close();
    e.end_function()
}

/// L2 normalisation backward: `dx = (dy − y (y · dy)) / sqrt(Σ x² + ε)`. Args: x, dy, dx.
pub fn l2_backward(eps: f64, name: &str) -> String {
    let mut e = Emitter::default();
    header(&mut e, name, &[("x", 2), ("dy", 2), ("dx", 2)], eps);
    let r = e.open_for("%c0", "%R");
    let inv = inverse_norm(&mut e, &r, false);
    let y_dot = e.dot("%W", |e, j| {
        let x = e.op(&format!("memref.load %x[{r}, {j}] : {ROWS}"));
        let y = e.op(&format!("arith.mulf {x}, {inv} : f32"));
        (y, e.op(&format!("memref.load %dy[{r}, {j}] : {ROWS}")))
    });
    let j = e.open_for("%c0", "%W");
    let x = e.op(&format!("memref.load %x[{r}, {j}] : {ROWS}"));
    let y = e.op(&format!("arith.mulf {x}, {inv} : f32"));
    let dy = e.op(&format!("memref.load %dy[{r}, {j}] : {ROWS}"));
    let projected = e.op(&format!("arith.mulf {y}, {y_dot} : f32"));
    let diff = e.op(&format!("arith.subf {dy}, {projected} : f32"));
    let dx = e.op(&format!("arith.mulf {diff}, {inv} : f32"));
    e.line(&format!("memref.store {dx}, %dx[{r}, {j}] : {ROWS}"));
    e.close();
    e.close();
    e.end_function()
}

/// `Σ_j x_j` of row `r`.
fn row_sum(e: &mut Emitter, r: &str) -> String {
    e.dot("%W", |e, j| (e.op(&format!("memref.load %x[{r}, {j}] : {ROWS}")), "%one".to_string()))
}

/// Sum normalisation forward, `y = x / Σ x` per row. Args: x, y.
pub fn sum_forward(name: &str) -> String {
    let mut e = Emitter::default();
    header(&mut e, name, &[("x", 2), ("y", 2)], 0.0);
    let r = e.open_for("%c0", "%R");
    let sum = row_sum(&mut e, &r);
    let j = e.open_for("%c0", "%W");
    let x = e.op(&format!("memref.load %x[{r}, {j}] : {ROWS}"));
    let y = e.op(&format!("arith.divf {x}, {sum} : f32"));
    e.line(&format!("memref.store {y}, %y[{r}, {j}] : {ROWS}"));
    e.close();
    e.close();
    e.end_function()
}

/// Sum normalisation backward: `dx = (dy − y · dy) / Σ x`. Args: x, dy, dx.
pub fn sum_backward(name: &str) -> String {
    let mut e = Emitter::default();
    header(&mut e, name, &[("x", 2), ("dy", 2), ("dx", 2)], 0.0);
    let r = e.open_for("%c0", "%R");
    let sum = row_sum(&mut e, &r);
    let y_dot = e.dot("%W", |e, j| {
        let x = e.op(&format!("memref.load %x[{r}, {j}] : {ROWS}"));
        let y = e.op(&format!("arith.divf {x}, {sum} : f32"));
        (y, e.op(&format!("memref.load %dy[{r}, {j}] : {ROWS}")))
    });
    let j = e.open_for("%c0", "%W");
    let dy = e.op(&format!("memref.load %dy[{r}, {j}] : {ROWS}"));
    let diff = e.op(&format!("arith.subf {dy}, {y_dot} : f32"));
    let dx = e.op(&format!("arith.divf {diff}, {sum} : f32"));
    e.line(&format!("memref.store {dx}, %dx[{r}, {j}] : {ROWS}"));
    e.close();
    e.close();
    e.end_function()
}
