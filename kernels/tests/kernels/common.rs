//! Helpers the kernel tests share: random inputs exactly representable in f32, the
//! comparison, and central finite differences.

use rand::Rng;
use rand::rngs::SmallRng;

/// `len` values uniform in `[low, high)`, rounded to f32 so kernel and reference see
/// the same inputs.
pub fn random_in(rng: &mut SmallRng, len: usize, low: f64, high: f64) -> Vec<f64> {
    (0..len).map(|_| rng.random_range(low..high) as f32 as f64).collect()
}

pub fn f32s(values: &[f64]) -> Vec<f32> {
    values.iter().map(|v| *v as f32).collect()
}

/// Every `got` within `tolerance · max(floor, max |want|)` of `want`; NaN never passes.
pub fn assert_close(what: &str, got: &[f32], want: &[f64], tolerance: f64, floor: f64) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    let scale = want.iter().fold(floor, |m, v| m.max(v.abs()));
    for (index, (g, w)) in got.iter().zip(want).enumerate() {
        let error = (*g as f64 - w).abs() / scale;
        assert!(
            g.is_finite() && error <= tolerance,
            "{what}[{index}]: kernel {g}, reference {w} (relative error {error:e})"
        );
    }
}

/// `∂f/∂values` by central differences with step `h`.
pub fn finite_differences(values: &[f64], h: f64, f: &dyn Fn(&[f64]) -> f64) -> Vec<f64> {
    let mut probe = values.to_vec();
    (0..values.len())
        .map(|k| {
            probe[k] = values[k] + h;
            let up = f(&probe);
            probe[k] = values[k] - h;
            let down = f(&probe);
            probe[k] = values[k];
            (up - down) / (2.0 * h)
        })
        .collect()
}
