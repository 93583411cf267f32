//! Moving values on the device instead of the host: the column copy of concatenation
//! and its slices' backward, and the clipping factor from the summed squares.

use crate::emit::{Builder, Config, Scalar, Ty};

/// `dst[r, dst_col + j] = src[r, src_col + j]` for `j < width`. Args: src `[R, Ws]`,
/// dst `[R, Wd]`.
pub fn columns(src_col: usize, dst_col: usize, width: usize, name: &str) -> String {
    columns_with(src_col, dst_col, width, name, &Config::CPU)
}

/// [`columns`] under any [`Config`].
pub fn columns_with(src_col: usize, dst_col: usize, width: usize, name: &str, config: &Config) -> String {
    let mut e = Builder::new(*config);
    e.begin_function(name, &[("src", 2), ("dst", 2)]);
    let (src, dst) = (e.arg("src"), e.arg("dst"));
    let rows = e.named("rows").dim(&src, 0);
    let width = e.named("width").constant_index(width as u64);
    let src_col = e.named("src_col").constant_index(src_col as u64);
    let dst_col = e.named("dst_col").constant_index(dst_col as u64);
    let c0 = e.c0();
    e.for_(&c0, &rows, |e, r| {
        e.for_(&c0, &width, |e, j| {
            let from = e.add(&src_col, &j);
            let to = e.add(&dst_col, &j);
            let value = e.load(&src, &[&r, &from]);
            e.store(&value, &dst, &[&r, &to]);
        });
    });
    e.finish()
}

/// The global gradient norm and the clipping factor: `norm = sqrt(squares)` (written
/// over `squares`), `factor = min(max / (norm + 1e-6), 1)` (1 when `max` is +∞).
/// Args: squares `[1]`, max `[1]`, factor `[1]`.
pub fn clip(name: &str) -> String {
    clip_with(name, &Config::CPU)
}

/// [`clip`] under any [`Config`]; its three scalars are f32 under every one (host
/// scalars, as the loss is).
pub fn clip_with(name: &str, config: &Config) -> String {
    let mut e = Builder::new(*config);
    let scalar = Ty::memref(1, Scalar::F32);
    e.begin_function_typed(name, &[("squares", scalar), ("max", scalar), ("factor", scalar)]);
    let [squares, max, factor] = ["squares", "max", "factor"].map(|arg| e.arg(arg));
    let c0 = e.c0();
    let squared = e.load(&squares, &[&c0]);
    let bound = e.load(&max, &[&c0]);
    let norm = e.sqrt(&squared);
    let tiny = e.constant(1e-6);
    let denominator = e.add(&norm, &tiny);
    let ratio = e.div(&bound, &denominator);
    let one = e.one();
    let clipped = e.min(&ratio, &one);
    e.store(&norm, &squares, &[&c0]);
    e.store(&clipped, &factor, &[&c0]);
    e.finish()
}
