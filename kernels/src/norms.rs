//! Row norms, generated as MLIR, on `[R, W]` rows (a tensor's leading dims and its head
//! groups flattened into R): RMSNorm `x̂ · w` with `x̂ = x / sqrt(mean x² + ε)`, its gated
//! form `x̂ · w · silu(z)`, L2 normalisation `x / sqrt(Σ x² + ε)` and sum normalisation
//! `x / Σ x`; each with its backward. The weight gradient accumulates over rows (zero it first).
//!
//! On a GPU ([`Parallel::Threads`], [`KernelKey::lanes`](crate::key::KernelKey::lanes))
//! a warp takes a row: lane `l` walks columns `l, l + 32, …` and the row's sums are a
//! warp's sums (`Builder::warp_sum`), so neighbouring lanes read neighbouring elements.
//! RMSNorm's backward gives a warp a group of rows ([`ROWS_PER_WARP`]), each lane
//! summing the weight's gradient of its columns over them before adding it once.
//! Elsewhere a call walks whole rows.

use crate::emit::{Builder, Config, Parallel, Scalar, Value};

/// The lanes a GPU gives a norm's row: a warp.
pub const ROW_LANES: usize = 32;

/// The rows a GPU warp of RMSNorm's backward walks, summing the weight's gradient over
/// them before its atomic adds: more rows, fewer adds into the same `W` addresses, but
/// fewer warps (16K rows in groups of 32 are 512 warps for 132 multiprocessors; 32 was
/// 1.03× slower than 8 for GatedDeltaNet's 3:1 step on an H100).
pub const ROWS_PER_WARP: usize = 8;

/// What every norm kernel defines first: ε, the row count R, the width W, and W as a
/// float; the columns this thread walks, and whether a row's sums are a warp's.
struct Rows {
    x: Value,
    eps: Value,
    count: Value,
    width: Value,
    width_f: Value,
    /// The first column this thread walks and the step to the next.
    columns: (Value, Value),
    warp: bool,
}

/// The sizes; with `by_warp`, on a GPU a warp's lanes share each row ([`ROW_LANES`]).
fn header(e: &mut Builder, name: &str, args: &[(&str, usize)], eps: f64, by_warp: bool) -> Rows {
    e.begin_function(name, args);
    let x = e.arg("x");
    let eps = e.named("eps").constant(eps);
    let count = e.named("R").dim(&x, 0);
    let width = e.named("W").dim(&x, 1);
    let width_i = e.named("w_i").index_cast(&width, Scalar::I64);
    let compute = e.compute();
    let width_f = e.named("w_f").sitofp(&width_i, compute);
    let warp = by_warp && e.config().parallel == Parallel::Threads;
    let columns = if warp {
        let lane = e.lane();
        (lane, e.named("row_lanes").constant_index(ROW_LANES as u64))
    } else {
        (e.c0(), e.c1())
    };
    Rows { x, eps, count, width, width_f, columns, warp }
}

impl Rows {
    /// `body(r)` for each row r.
    fn for_each_row(&self, e: &mut Builder, body: impl FnOnce(&mut Builder, Value)) {
        let c0 = e.c0();
        e.for_(&c0, &self.count, body);
    }

    /// `body(j)` for each column j this thread walks.
    fn for_each_column(&self, e: &mut Builder, body: impl FnOnce(&mut Builder, Value)) {
        e.for_step(&self.columns.0, &self.width, &self.columns.1, body);
    }

    /// Column `j`'s place among those this lane walks ([`lane_sums`]).
    fn lane_slot(&self, e: &mut Builder, j: &Value) -> Value {
        e.divui(j, &self.columns.1)
    }

    /// `Σ_j a(j) · b(j)` over the row's columns (a warp's sum where it shares the row).
    fn row_dot(&self, e: &mut Builder, factors: impl FnOnce(&mut Builder, &Value) -> (Value, Value)) -> Value {
        if !self.warp {
            return e.dot(&self.width, factors);
        }
        let mine = e.sum_step(&self.columns.0, &self.width, &self.columns.1, |e, j| {
            let (a, b) = factors(e, j);
            e.mul(&a, &b)
        });
        e.warp_sum(&mine)
    }

    /// `1 / sqrt(Σ x² / W + ε)` (mean) or `1 / sqrt(Σ x² + ε)` (sum) of row `r`.
    fn inverse_norm(&self, e: &mut Builder, r: &Value, mean: bool) -> Value {
        let sum = self.row_dot(e, |e, j| {
            let x = e.load(&self.x, &[r, j]);
            (x.clone(), x)
        });
        let scaled = if mean { e.div(&sum, &self.width_f) } else { sum };
        let shifted = e.add(&scaled, &self.eps);
        e.rsqrt(&shifted)
    }

    /// `Σ_j x_j` of row `r`.
    fn row_sum(&self, e: &mut Builder, r: &Value) -> Value {
        e.dot(&self.width, |e, j| (e.load(&self.x, &[r, j]), e.one()))
    }
}

/// `silu(z)` and `silu'(z)`.
fn silu(e: &mut Builder, z: &Value) -> (Value, Value) {
    let one = e.one();
    let neg = e.neg(z);
    let exp = e.exp(&neg);
    let den = e.add(&one, &exp);
    let sig = e.div(&one, &den);
    let value = e.mul(z, &sig);
    // silu' = σ (1 + z (1 − σ))
    let one_minus = e.sub(&one, &sig);
    let z_term = e.mul(z, &one_minus);
    let inner = e.add(&one, &z_term);
    let slope = e.mul(&sig, &inner);
    (value, slope)
}

/// RMSNorm forward: `y = x̂ · w` (`· silu(z)` when gated). Args: x, [z], w, y.
pub fn rms_forward(eps: f64, gated: bool, name: &str) -> String {
    rms_forward_with(eps, gated, name, &Config::CPU)
}

/// [`rms_forward`] under any [`Config`].
pub fn rms_forward_with(eps: f64, gated: bool, name: &str, config: &Config) -> String {
    let mut e = Builder::new(*config);
    let mut args = vec![("x", 2)];
    if gated {
        args.push(("z", 2));
    }
    args.extend([("w", 1), ("y", 2)]);
    let rows = header(&mut e, name, &args, eps, true);
    let (w, y) = (e.arg("w"), e.arg("y"));
    let z = gated.then(|| e.arg("z"));
    rows.for_each_row(&mut e, |e, r| {
        let inv = rows.inverse_norm(e, &r, true);
        rows.for_each_column(e, |e, j| {
            let x = e.load(&rows.x, &[&r, &j]);
            let weight = e.load(&w, &[&j]);
            let xn = e.mul(&x, &inv);
            let mut out = e.mul(&xn, &weight);
            if let Some(z) = &z {
                let z = e.load(z, &[&r, &j]);
                let (gate, _) = silu(e, &z);
                out = e.mul(&out, &gate);
            }
            e.store(&out, &y, &[&r, &j]);
        });
    });
    e.finish()
}

/// The per-element terms of the RMSNorm backward at row r, column j: `x̂`, the upstream
/// gradient `d = dy (· silu(z))` and `g = d · w`.
struct Upstream {
    xn: Value,
    d: Value,
    g: Value,
}

/// RMSNorm backward. Args: x, [z], w, dy, dx, [dz], dw (dw accumulates).
/// `dx = r (g − x̂ · mean(g ⊙ x̂))` with `g = dy · w (· silu(z))`, `dw += Σ dy ⊙ x̂ (· silu(z))`,
/// `dz = dy · x̂ w · silu'(z)`.
pub fn rms_backward(eps: f64, gated: bool, name: &str) -> String {
    rms_backward_with(eps, gated, name, &Config::CPU)
}

/// [`rms_backward`] under any [`Config`].
pub fn rms_backward_with(eps: f64, gated: bool, name: &str, config: &Config) -> String {
    let mut e = Builder::new(*config);
    let mut args = vec![("x", 2)];
    if gated {
        args.push(("z", 2));
    }
    args.extend([("w", 1), ("dy", 2), ("dx", 2)]);
    if gated {
        args.push(("dz", 2));
    }
    args.push(("dw", 1));
    let rows = header(&mut e, name, &args, eps, true);
    let (w, dy, dx, dw) = (e.arg("w"), e.arg("dy"), e.arg("dx"), e.arg("dw"));
    let gate = gated.then(|| (e.arg("z"), e.arg("dz")));
    // A warp's rows (a GPU point's group of them, `KernelKey::rows_per_point`) sum the
    // weight's gradient per lane and column first, and add it once after the last row.
    let partial = rows.warp.then(|| lane_sums(&mut e, &rows));
    rows.for_each_row(&mut e, |e, r| {
        let inv = rows.inverse_norm(e, &r, true);
        // The upstream gradient of x̂ · w, with the gate folded in.
        let upstream = |e: &mut Builder, j: &Value| -> Upstream {
            let x = e.load(&rows.x, &[&r, j]);
            let xn = e.mul(&x, &inv);
            let dy = e.load(&dy, &[&r, j]);
            let d = match &gate {
                Some((z, _)) => {
                    let z = e.load(z, &[&r, j]);
                    let (gate, _) = silu(e, &z);
                    e.mul(&dy, &gate)
                }
                None => dy,
            };
            let weight = e.load(&w, &[j]);
            let g = e.mul(&d, &weight);
            Upstream { xn, d, g }
        };
        let total = rows.row_dot(e, |e, j| {
            let Upstream { xn, g, .. } = upstream(e, j);
            (g, xn)
        });
        let mean = e.div(&total, &rows.width_f);
        rows.for_each_column(e, |e, j| {
            let Upstream { xn, d, g } = upstream(e, &j);
            let correction = e.mul(&xn, &mean);
            let diff = e.sub(&g, &correction);
            let dx_value = e.mul(&inv, &diff);
            e.store(&dx_value, &dx, &[&r, &j]);
            let dw_value = e.mul(&d, &xn);
            match &partial {
                Some(partial) => {
                    let slot = rows.lane_slot(e, &j);
                    e.accumulate(partial, &[&slot], &dw_value);
                }
                None => e.accumulate_shared(&dw, &[&j], &dw_value),
            }
            if let Some((z, dz)) = &gate {
                let dy = e.load(&dy, &[&r, &j]);
                let weight = e.load(&w, &[&j]);
                let z = e.load(z, &[&r, &j]);
                let (_, slope) = silu(e, &z);
                let xw = e.mul(&xn, &weight);
                let dyxw = e.mul(&dy, &xw);
                let dz_value = e.mul(&dyxw, &slope);
                e.store(&dz_value, dz, &[&r, &j]);
            }
        });
    });
    if let Some(partial) = &partial {
        rows.for_each_column(&mut e, |e, j| {
            let slot = rows.lane_slot(e, &j);
            let total = e.load(partial, &[&slot]);
            e.accumulate_shared(&dw, &[&j], &total);
        });
    }
    e.finish()
}

/// A zeroed sum per column this lane walks (`⌈W / 32⌉` of them, in its frame).
fn lane_sums(e: &mut Builder, rows: &Rows) -> Value {
    let below = e.constant_index(ROW_LANES as u64 - 1);
    let padded = e.add(&rows.width, &below);
    let slots = e.named("lane_slots").divui(&padded, &rows.columns.1);
    let compute = e.compute();
    let sums = e.named("lane_sums").alloca(compute, &[&slots]);
    let c0 = e.c0();
    e.for_(&c0, &slots, |e, slot| {
        let zero = e.zero();
        e.store(&zero, &sums, &[&slot]);
    });
    sums
}

/// L2 normalisation forward. Args: x, y.
pub fn l2_forward(eps: f64, name: &str) -> String {
    l2_forward_with(eps, name, &Config::CPU)
}

/// [`l2_forward`] under any [`Config`].
pub fn l2_forward_with(eps: f64, name: &str, config: &Config) -> String {
    let mut e = Builder::new(*config);
    let rows = header(&mut e, name, &[("x", 2), ("y", 2)], eps, true);
    let y = e.arg("y");
    rows.for_each_row(&mut e, |e, r| {
        let inv = rows.inverse_norm(e, &r, false);
        rows.for_each_column(e, |e, j| {
            let x = e.load(&rows.x, &[&r, &j]);
            let out = e.mul(&x, &inv);
            e.store(&out, &y, &[&r, &j]);
        });
    });
    e.finish()
}

/// L2 normalisation backward: `dx = (dy − y (y · dy)) / sqrt(Σ x² + ε)`. Args: x, dy, dx.
pub fn l2_backward(eps: f64, name: &str) -> String {
    l2_backward_with(eps, name, &Config::CPU)
}

/// [`l2_backward`] under any [`Config`].
pub fn l2_backward_with(eps: f64, name: &str, config: &Config) -> String {
    let mut e = Builder::new(*config);
    let rows = header(&mut e, name, &[("x", 2), ("dy", 2), ("dx", 2)], eps, true);
    let (dy, dx) = (e.arg("dy"), e.arg("dx"));
    rows.for_each_row(&mut e, |e, r| {
        let inv = rows.inverse_norm(e, &r, false);
        let y_dot = rows.row_dot(e, |e, j| {
            let x = e.load(&rows.x, &[&r, j]);
            let y = e.mul(&x, &inv);
            (y, e.load(&dy, &[&r, j]))
        });
        rows.for_each_column(e, |e, j| {
            let x = e.load(&rows.x, &[&r, &j]);
            let y = e.mul(&x, &inv);
            let dy = e.load(&dy, &[&r, &j]);
            let projected = e.mul(&y, &y_dot);
            let diff = e.sub(&dy, &projected);
            let dx_value = e.mul(&diff, &inv);
            e.store(&dx_value, &dx, &[&r, &j]);
        });
    });
    e.finish()
}

/// Sum normalisation forward, `y = x / Σ x` per row. Args: x, y.
pub fn sum_forward(name: &str) -> String {
    sum_forward_with(name, &Config::CPU)
}

/// [`sum_forward`] under any [`Config`].
pub fn sum_forward_with(name: &str, config: &Config) -> String {
    let mut e = Builder::new(*config);
    let rows = header(&mut e, name, &[("x", 2), ("y", 2)], 0.0, false);
    let y = e.arg("y");
    rows.for_each_row(&mut e, |e, r| {
        let sum = rows.row_sum(e, &r);
        rows.for_each_column(e, |e, j| {
            let x = e.load(&rows.x, &[&r, &j]);
            let out = e.div(&x, &sum);
            e.store(&out, &y, &[&r, &j]);
        });
    });
    e.finish()
}

/// Sum normalisation backward: `dx = (dy − y · dy) / Σ x`. Args: x, dy, dx.
pub fn sum_backward(name: &str) -> String {
    sum_backward_with(name, &Config::CPU)
}

/// [`sum_backward`] under any [`Config`].
pub fn sum_backward_with(name: &str, config: &Config) -> String {
    let mut e = Builder::new(*config);
    let rows = header(&mut e, name, &[("x", 2), ("dy", 2), ("dx", 2)], 0.0, false);
    let (dy, dx) = (e.arg("dy"), e.arg("dx"));
    rows.for_each_row(&mut e, |e, r| {
        let sum = rows.row_sum(e, &r);
        let y_dot = e.dot(&rows.width, |e, j| {
            let x = e.load(&rows.x, &[&r, j]);
            let y = e.div(&x, &sum);
            (y, e.load(&dy, &[&r, j]))
        });
        rows.for_each_column(e, |e, j| {
            let dy = e.load(&dy, &[&r, &j]);
            let diff = e.sub(&dy, &y_dot);
            let dx_value = e.div(&diff, &sum);
            e.store(&dx_value, &dx, &[&r, &j]);
        });
    });
    e.finish()
}
