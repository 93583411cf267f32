//! The column copy and the clipping factor against plain Rust on random inputs; the
//! column copy also through strided arguments (the GPU form's layout) on views with an
//! offset and row strides wider than the rows.

use hyb_kernels::copy;
use hyb_kernels::emit::{Config, Layout};
use hyb_kernels::jit::{self, AsDescriptor, MemRef};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

use crate::common::{f32s, random_in};

/// `(rows, source width, destination width, src_col, dst_col, width)`.
const COPIES: [(usize, usize, usize, usize, usize, usize); 5] =
    [(1, 1, 1, 0, 0, 1), (3, 5, 8, 0, 3, 5), (4, 9, 4, 6, 1, 3), (7, 6, 6, 2, 2, 0), (2, 12, 20, 4, 11, 8)];

/// `dst` after the copy, written plainly.
fn copied(src: &[f32], dst: &[f32], [ws, wd]: [usize; 2], [src_col, dst_col, width]: [usize; 3]) -> Vec<f32> {
    let mut want = dst.to_vec();
    for r in 0..src.len() / ws {
        for j in 0..width {
            want[r * wd + dst_col + j] = src[r * ws + src_col + j];
        }
    }
    want
}

/// Bit-for-bit equality (a copy moves values; NaN never passes, as `==` is false on it).
fn assert_same(what: &str, got: &[f32], want: &[f32]) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    for (index, (g, w)) in got.iter().zip(want).enumerate() {
        assert!(g == w && g.to_bits() == w.to_bits(), "{what}[{index}]: kernel {g}, want {w}");
    }
}

#[test]
fn columns_copies_the_columns_and_nothing_else() {
    let mut rng = SmallRng::seed_from_u64(41);
    for (rows, ws, wd, src_col, dst_col, width) in COPIES {
        let kernel = jit::compile(&copy::columns(src_col, dst_col, width, "columns")).expect("compiles");
        let src = f32s(&random_in(&mut rng, rows * ws, -2.0, 2.0));
        let dst = f32s(&random_in(&mut rng, rows * wd, -2.0, 2.0));
        let want = copied(&src, &dst, [ws, wd], [src_col, dst_col, width]);
        let mut src_m = MemRef::new([rows, ws], src.clone());
        let mut dst_m = MemRef::new([rows, wd], dst);
        // SAFETY: src is [rows, ws] and dst [rows, wd], wide enough for the columns.
        unsafe { kernel.call("columns", &mut [&mut src_m as &mut dyn AsDescriptor, &mut dst_m]) }.expect("runs");
        assert_same(&format!("columns {rows}x{ws} -> {rows}x{wd}"), &dst_m.data, &want);
        assert_same("columns' source", &src_m.data, &src);
    }
}

/// A rank-2 descriptor `[allocated, aligned, offset, sizes, strides]` of a view.
fn view(data: &mut [f32], offset: usize, sizes: [usize; 2], strides: [usize; 2]) -> Vec<i64> {
    let last = offset + (sizes[0] - 1) * strides[0] + (sizes[1] - 1) * strides[1];
    assert!(last < data.len(), "the view lies in its buffer");
    let pointer = data.as_mut_ptr() as i64;
    vec![pointer, pointer, offset as i64, sizes[0] as i64, sizes[1] as i64, strides[0] as i64, strides[1] as i64]
}

/// With strided arguments the kernel reads and writes through each view's offset and
/// strides: views of rows `1..` of wider buffers.
#[test]
fn columns_through_strided_views() {
    let config = Config { layout: Layout::Strided, ..Config::CPU };
    let mut rng = SmallRng::seed_from_u64(42);
    for (rows, ws, wd, src_col, dst_col, width) in COPIES {
        let text = copy::columns_with(src_col, dst_col, width, "columns", &config);
        assert!(text.contains("%src: memref<?x?xf32, strided<[?, ?], offset: ?>>"), "{text}");
        let kernel = jit::compile(&text).unwrap_or_else(|error| panic!("{error}\n{text}"));
        // Buffers of rows + 1 rows, 3 columns wider than the view; the view starts at row 1.
        let (src_pitch, dst_pitch) = (ws + 3, wd + 3);
        let mut src = f32s(&random_in(&mut rng, (rows + 1) * src_pitch, -2.0, 2.0));
        let mut dst = f32s(&random_in(&mut rng, (rows + 1) * dst_pitch, -2.0, 2.0));
        let mut want = dst.clone();
        for r in 0..rows {
            for j in 0..width {
                want[(r + 1) * dst_pitch + dst_col + j] = src[(r + 1) * src_pitch + src_col + j];
            }
        }
        let before = src.clone();
        let mut src_view = view(&mut src, src_pitch, [rows, ws], [src_pitch, 1]);
        let mut dst_view = view(&mut dst, dst_pitch, [rows, wd], [dst_pitch, 1]);
        let entry = kernel.entry("columns").expect("the function");
        let mut pointers = [src_view.as_mut_ptr() as *mut (), dst_view.as_mut_ptr() as *mut ()];
        // SAFETY: both descriptors describe views inside their live buffers.
        unsafe { entry.call(&mut pointers) };
        assert_same(&format!("strided columns {rows}x{ws} -> {rows}x{wd}"), &dst, &want);
        assert_same("strided columns' source", &src, &before);
    }
}

/// `(norm, factor)` written plainly, in f64.
fn clip_reference(squares: f32, max: f32) -> (f64, f64) {
    let norm = (squares as f64).sqrt();
    (norm, (max as f64 / (norm + 1e-6)).min(1.0))
}

fn run_clip(kernel: &jit::Compiled, squares: f32, max: f32) -> (f32, f32) {
    let mut squares_m = MemRef::new([1], vec![squares]);
    let mut max_m = MemRef::new([1], vec![max]);
    let mut factor = MemRef::new([1], vec![f32::NAN]);
    let mut args: Vec<&mut dyn AsDescriptor> = vec![&mut squares_m, &mut max_m, &mut factor];
    // SAFETY: three buffers of one element.
    unsafe { kernel.call("clip", &mut args) }.expect("runs");
    (squares_m.data[0], factor.data[0])
}

#[test]
fn clip_gives_the_norm_and_the_factor() {
    let kernel = jit::compile(&copy::clip("clip")).expect("compiles");
    let mut rng = SmallRng::seed_from_u64(43);
    let mut cases: Vec<(f32, f32)> = (0..200)
        .map(|_| {
            let squares = 10f64.powf(rng.random_range(-8.0..8.0)) as f32;
            let max = 10f64.powf(rng.random_range(-3.0..3.0)) as f32;
            (squares, max)
        })
        .collect();
    // No gradient at all, no clipping (+∞), a norm exactly at the bound.
    cases.extend([(0.0, 1.0), (0.0, f32::INFINITY), (3.0, f32::INFINITY), (4.0, 2.0)]);
    for (squares, max) in cases {
        let (norm, factor) = run_clip(&kernel, squares, max);
        let (want_norm, want_factor) = clip_reference(squares, max);
        let what = format!("clip(squares={squares}, max={max})");
        assert!(norm.is_finite() && factor.is_finite(), "{what}: norm {norm}, factor {factor}");
        assert!((norm as f64 - want_norm).abs() <= 1e-6 * want_norm, "{what}: norm {norm}, want {want_norm}");
        assert!(
            (factor as f64 - want_factor).abs() <= 2e-6 * want_factor,
            "{what}: factor {factor}, want {want_factor}"
        );
        assert!(factor <= 1.0, "{what}: factor {factor} above 1");
    }
    // A NaN in the gradients is not hidden by clipping: the norm and the factor are NaN.
    let (norm, factor) = run_clip(&kernel, f32::NAN, 1.0);
    assert!(norm.is_nan() && factor.is_nan(), "clip of NaN squares: norm {norm}, factor {factor}");
}
