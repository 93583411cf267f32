//! Parameter initialisation as the model IR states it per parameter (fla's scheme):
//! normal with the config's std, ones, zeros, and Mamba's `A_log` and `dt_bias`.

use crate::rng::SplitMix64;
use hyb_compiler::ir::Init;

/// Standard normal by Box–Muller.
fn normal(rng: &mut SplitMix64) -> f64 {
    let u1 = 1.0 - rng.unit();
    let u2 = rng.unit();
    (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
}

/// Fills `values` by `init` from `rng`.
pub fn fill(init: &Init, values: &mut [f32], rng: &mut SplitMix64) {
    for value in values.iter_mut() {
        *value = match init {
            Init::Normal { std } => (std * normal(rng)) as f32,
            Init::Ones => 1.0,
            Init::Zeros => 0.0,
            // A = U(0, 16), A_log = log A (kept away from log 0).
            Init::MambaALog => rng.uniform(1e-4, 16.0).ln() as f32,
            // dt = exp U(ln 1e-3, ln 1e-1) floored at 1e-4; dt_bias = softplus⁻¹(dt).
            Init::MambaDtBias => {
                let dt = rng.uniform(1e-3f64.ln(), 1e-1f64.ln()).exp().max(1e-4);
                (dt + (-(-dt).exp_m1()).ln()) as f32
            }
        };
    }
}

/// A generator seeded by `seed`.
pub fn rng(seed: u64) -> SplitMix64 {
    SplitMix64::new(seed)
}
