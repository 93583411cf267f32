//! HGRN's layer-wise lower bound: from the trainable `lower_bounds` `[L, W]`, the floor
//! of layer `l` is `γ_l = cumsum(softmax(lower_bounds, axis 0))[l] − softmax[0]`, i.e.
//! `Σ_{1 ≤ i ≤ l} p_i` with `p = softmax` over the layer axis per channel (layer 0 has no
//! floor). Its backward: `∂γ_l/∂b_j = p_j ([1 ≤ j ≤ l] − γ_l)`.
//! Shapes: bounds `[L, W]`, floor and its gradient `[W]`, the bounds' gradient `[L, W]`
//! (overwritten).

use crate::emit::{Builder, Cmp, Config, Value};

/// The softmax over layers of one channel: its column's maximum, `Σ_i exp(b_i − max)`,
/// and the floor `γ_l` read off them.
struct Floor {
    max: Value,
    sum: Value,
    gamma: Value,
}

/// The bounds and their sizes: layers L and channels W.
struct Bounds {
    bounds: Value,
    layers: Value,
    channels: Value,
}

fn header(e: &mut Builder, name: &str, args: &[(&str, usize)]) -> Bounds {
    e.begin_function(name, args);
    let bounds = e.arg("bounds");
    let layers = e.named("L").dim(&bounds, 0);
    let channels = e.named("W").dim(&bounds, 1);
    Bounds { bounds, layers, channels }
}

impl Bounds {
    /// `exp(b_ic − max)`.
    fn exp_shifted(&self, e: &mut Builder, i: &Value, c: &Value, max: &Value) -> Value {
        let b = e.load(&self.bounds, &[i, c]);
        let shifted = e.sub(&b, max);
        e.exp(&shifted)
    }

    /// `γ_l` of channel `c`: `Σ_{i=1..l} p_i`.
    fn floor_of(&self, e: &mut Builder, c: &Value, layer: u64) -> Floor {
        let (max, sum) = e.max_and_sum_exp(&self.layers, &|e, i| e.load(&self.bounds, &[i, c]));
        let upper = e.constant_index(layer + 1);
        let (c1, zero) = (e.c1(), e.zero());
        let partial = e.fold1(&c1, &upper, &zero, |e, i, accumulator| {
            let p = self.exp_shifted(e, &i, c, &max);
            e.add(&accumulator, &p)
        });
        let gamma = e.div(&partial, &sum);
        Floor { max, sum, gamma }
    }
}

/// The floor of `layer` (≥ 1). Args: bounds, floor.
pub fn forward(layer: u64, name: &str) -> String {
    forward_with(layer, name, &Config::CPU)
}

/// [`forward`] under any [`Config`].
pub fn forward_with(layer: u64, name: &str, config: &Config) -> String {
    let mut e = Builder::new(*config);
    let bounds = header(&mut e, name, &[("bounds", 2), ("floor", 1)]);
    let floor = e.arg("floor");
    let c0 = e.c0();
    e.for_(&c0, &bounds.channels, |e, c| {
        let Floor { gamma, .. } = bounds.floor_of(e, &c, layer);
        e.store(&gamma, &floor, &[&c]);
    });
    e.finish()
}

/// Args: bounds, dfloor, dbounds.
pub fn backward(layer: u64, name: &str) -> String {
    backward_with(layer, name, &Config::CPU)
}

/// [`backward`] under any [`Config`].
pub fn backward_with(layer: u64, name: &str, config: &Config) -> String {
    let mut e = Builder::new(*config);
    let bounds = header(&mut e, name, &[("bounds", 2), ("dfloor", 1), ("dbounds", 2)]);
    let (dfloor, dbounds) = (e.arg("dfloor"), e.arg("dbounds"));
    let last = e.named("layer").constant_index(layer);
    let c0 = e.c0();
    e.for_(&c0, &bounds.channels, |e, c| {
        let Floor { max, sum, gamma } = bounds.floor_of(e, &c, layer);
        let dy = e.load(&dfloor, &[&c]);
        e.for_(&c0, &bounds.layers, |e, j| {
            let exp = bounds.exp_shifted(e, &j, &c, &max);
            let p = e.div(&exp, &sum);
            let c1 = e.c1();
            let above = e.cmp(Cmp::Ge, &j, &c1);
            let below = e.cmp(Cmp::Le, &j, &last);
            let inside = e.and(&above, &below);
            let (one, zero) = (e.one(), e.zero());
            let indicator = e.select(&inside, &one, &zero);
            let open = e.sub(&indicator, &gamma);
            let slope = e.mul(&p, &open);
            let grad = e.mul(&dy, &slope);
            e.store(&grad, &dbounds, &[&j, &c]);
        });
    });
    e.finish()
}
