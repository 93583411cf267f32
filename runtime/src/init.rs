//! Parameter initialisation as the model IR states it per parameter (fla's scheme):
//! normal with the config's std, ones, zeros, and Mamba's `A_log` and `dt_bias`.

use hyb_compiler::ir::Init;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

/// Standard normal by Box–Muller.
fn normal(rng: &mut SmallRng) -> f64 {
    let u1: f64 = rng.random_range(f64::EPSILON..1.0);
    let u2: f64 = rng.random();
    (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
}

/// Fills `values` by `init` from `rng`.
pub fn fill(init: &Init, values: &mut [f32], rng: &mut SmallRng) {
    for value in values.iter_mut() {
        *value = match init {
            Init::Normal { std } => (std * normal(rng)) as f32,
            Init::Ones => 1.0,
            Init::Zeros => 0.0,
            // A = U(0, 16), A_log = log A (kept away from log 0).
            Init::MambaALog => rng.random_range(1e-4f64..16.0).ln() as f32,
            // dt = exp U(ln 1e-3, ln 1e-1) floored at 1e-4; dt_bias = softplus⁻¹(dt).
            Init::MambaDtBias => {
                let dt = rng.random_range(1e-3f64.ln()..1e-1f64.ln()).exp().max(1e-4);
                (dt + (-(-dt).exp_m1()).ln()) as f32
            }
        };
    }
}

/// A generator seeded by `seed`.
pub fn rng(seed: u64) -> SmallRng {
    SmallRng::seed_from_u64(seed)
}
