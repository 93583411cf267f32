//! The GPU form's wrapper: a strided function inside a `gpu.module`, each block viewing
//! its rows of the split arguments, lowers to PTX for sm_90a with no libdevice call.

use hyb_kernels::{gpu, ptx};

const BODY: &str = "func.func @k_body(%x: memref<?x?xf32, strided<[?, ?], offset: ?>>, %ids: memref<?xi32, strided<[?], offset: ?>>, %y: memref<?x?xf32, strided<[?, ?], offset: ?>>) {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %n = memref.dim %x, %c0 : memref<?x?xf32, strided<[?, ?], offset: ?>>
  %m = memref.dim %x, %c1 : memref<?x?xf32, strided<[?, ?], offset: ?>>
  scf.for %i = %c0 to %n step %c1 {
    scf.for %j = %c0 to %m step %c1 {
      %v = memref.load %x[%i, %j] : memref<?x?xf32, strided<[?, ?], offset: ?>>
      %w = arith.mulf %v, %v : f32
      memref.store %w, %y[%i, %j] : memref<?x?xf32, strided<[?, ?], offset: ?>>
    }
  }
  return
}";

#[test]
fn the_wrapper_reads_the_arguments_and_lowers_to_ptx() {
    let params = gpu::params(BODY, "k_body").expect("a signature");
    let shapes: Vec<(&str, usize, &str)> = params.iter().map(|p| (p.name.as_str(), p.rank, p.elem.as_str())).collect();
    assert_eq!(shapes, [("x", 2, "f32"), ("ids", 1, "i32"), ("y", 2, "f32")]);
    let module = gpu::module(BODY, "k", "sm_90a", gpu::Bounds::default()).expect("wraps");
    let ptx = ptx::compile(&module, "sm_90a").unwrap_or_else(|e| panic!("{e}\n{module}"));
    assert!(ptx.contains(".target sm_90a"), "{ptx}");
    assert!(ptx.contains(".entry k("), "{ptx}");
    assert!(!ptx.contains("__nv_"), "no libdevice: {ptx}");
    // Per memref argument: allocated and aligned pointers, offset, sizes, strides; then
    // its split flag; then the number of points.
    let params = ptx.matches(".param .u64").count() + ptx.matches(".param .u32").count();
    assert_eq!(params, (2 + 1 + 2 + 2 + 1) * 2 + (2 + 1 + 1 + 1 + 1) + 1, "{ptx}");
    assert!(!ptx.contains(".maxnreg"), "no register bound asked: {ptx}");
    let bounded =
        gpu::module(BODY, "k", "sm_90a", gpu::Bounds { max_registers: Some(128), block_threads: None }).expect("wraps");
    let ptx = ptx::compile(&bounded, "sm_90a").unwrap_or_else(|e| panic!("{e}\n{bounded}"));
    assert!(ptx.contains(".maxnreg 128"), "the bound reaches the PTX: {ptx}");
}

/// A launch with lanes keeps 128 threads a block row when that fills the GPU, and
/// narrows its rows down to a warp when it would leave multiprocessors idle.
#[test]
fn lane_rows_narrow_until_every_multiprocessor_has_work() {
    // Attention at B=4, T=4096, 16 heads: 65,536 lanes a point, plenty of blocks.
    assert_eq!(gpu::lane_row(65_536, 4, 132), 128);
    // A scan at B=4, 16 heads of 128 value columns: 64 blocks of 128, 256 of 32.
    assert_eq!(gpu::lane_row(2_048, 4, 132), 32);
    // 16 points: 256 blocks of 128 are under 2 × 132, 512 of 64 are not.
    assert_eq!(gpu::lane_row(2_048, 16, 132), 64);
    assert_eq!(gpu::lane_row(2_048, 8, 132), 32);
    // Fewer lanes than a warp: one row of them.
    assert_eq!(gpu::lane_row(12, 1, 132), 12);
    assert_eq!(gpu::lane_row(0, 1, 132), 1);
}

/// A scan's lanes per state column: the most of 8, 4, 2 that divides the key channels
/// and makes a head's lanes whole warps (the shuffles over a column's lanes and over a
/// warp need every thread of the warp), else one.
#[test]
fn a_scans_key_slices_keep_its_heads_in_whole_warps() {
    use hyb_kernels::scan::key_slices;
    assert_eq!(key_slices(64, 64), 8);
    assert_eq!(key_slices(16, 16), 8);
    assert_eq!(key_slices(12, 8), 4, "8 does not divide 12");
    assert_eq!(key_slices(6, 16), 2);
    assert_eq!(key_slices(64, 3), 1, "no slicing makes 3 columns whole warps");
    assert_eq!(key_slices(1, 1), 1, "HGRN's 1 × 1 states");
    for (dk, dv) in [(64, 64), (12, 8), (6, 16), (128, 4), (32, 24)] {
        let slices = key_slices(dk, dv);
        assert!(
            dk.is_multiple_of(slices) && (slices == 1 || (dv * slices).is_multiple_of(32)),
            "{dk} × {dv}: {slices}"
        );
    }
}

/// The lanes and points a GPU launch takes for the keys that divide a lane's work or a
/// point's rows: a conv lane per channel and chunk of 16 tokens; a norm's row a warp,
/// RMSNorm's backward a warp over a group of rows (the largest of up to 8 that divides
/// the rows); any other key a point per row.
#[test]
fn launches_take_their_lanes_and_points_from_the_key() {
    use hyb_kernels::key::KernelKey;
    use hyb_target::Form;
    let lanes = |key: &KernelKey, dims: &[usize]| match gpu::launch(key, Form::Lanes, 3) {
        gpu::Launch::Lanes { arg: 0, axes, slices } => {
            axes.iter().map(|a| dims[*a]).product::<usize>() * slices.count(dims)
        }
        other => panic!("{key}: {other:?}"),
    };
    let conv = KernelKey::ConvForward { bias: false };
    assert_eq!(lanes(&conv, &[64, 256, 128]), 128 * 16);
    assert_eq!(lanes(&conv, &[2, 37, 5]), 5 * 3, "a last chunk of 5 tokens");
    let rms_bwd = KernelKey::RmsBackward { eps: 1e-6, gated: false };
    assert_eq!(lanes(&rms_bwd, &[16_384, 128]), 32);
    let launch = gpu::launch(&rms_bwd, Form::Lanes, 5);
    assert_eq!(gpu::points(&rms_bwd, launch, 16_384), 2_048);
    assert_eq!(gpu::points(&rms_bwd, launch, 21), 3, "21 rows in groups of 7");
    assert_eq!(gpu::points(&rms_bwd, launch, 13), 13, "a prime: one row a point");
    assert_eq!(gpu::points(&rms_bwd, gpu::Launch::Points, 16_384), 16_384, "other launches: a point per row");
    let l2 = KernelKey::L2Forward { eps: 1e-6 };
    assert_eq!(gpu::points(&l2, gpu::launch(&l2, Form::Lanes, 2), 16_384), 16_384);
}

/// `HYB_MAXNREG_KERNELS`, a measurement's register bounds: `label:N` pairs, N 0 (no
/// bound) or 16 – 255; anything else is refused, not ignored.
#[test]
fn register_overrides_parse_or_are_refused() {
    let parsed = gpu::parse_register_overrides("scan_bwd:96, attention_bwd:0").expect("well formed");
    assert_eq!(parsed, [("scan_bwd".to_string(), 96), ("attention_bwd".to_string(), 0)]);
    for bad in ["scan_bwd", "scan_bwd:x", ":96", "scan_bwd:8", "scan_bwd:300", ""] {
        let error = gpu::parse_register_overrides(bad).expect_err(bad);
        assert!(error.contains("expected label:N"), "{bad}: {error}");
    }
}
