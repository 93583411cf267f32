//! The `blocks` form of a kernel for NVIDIA GPUs: the generator's function, written with
//! strided memref arguments, PTX math and atomic shared sums (`emit::Config::gpu`),
//! inside a `gpu.module` for the target architecture, called by a `gpu.func` kernel that
//! gives each thread one point of the launch's iteration space.
//!
//! The kernel takes, per argument of the generated function, the argument's memref and
//! an `i64` split flag, then the number of points. A split argument's leading dim is
//! divided over the points: point `p` sees rows `[p·n/P, (p+1)·n/P)` of it (one batch
//! element or row of a non-flat view; its share of a flat one); a whole or summed
//! argument is seen whole by every point (a summed one is added into atomically).
//!
//! Point `p = block_id x · block_dim y + thread_id y`. The `blocks` form launches a
//! block of one thread per point ([`Launch::Blocks`]); the `lanes` form a column of
//! threads per block, a point each ([`Launch::Points`]), or, for a kernel with lanes
//! (the scan, the convolution, attention: [`KernelKey::lanes`]), one point per block
//! with its lanes along `block_id y · block_dim x + thread_id x`, which the generator
//! reads itself; the `chunked` form a block of [`BLOCK_THREADS`] per point and block row
//! ([`Launch::Block`]), its threads working together (`Parallel::Block`).

use std::fmt::Write;

use hyb_target::{Elem, Form};

use crate::emit::block_threads;
use crate::key::{KernelKey, NoForm};

/// How a kernel's threads are laid out (the host's side of the form).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Launch {
    /// The `blocks` form's: a block of one thread per point, or one block when the call
    /// adds into a shared argument (every argument then seen whole).
    Blocks,
    /// One thread per point of the iteration space, up to [`THREADS`] per block.
    Points,
    /// One block row per point, and per point one thread per lane: the lanes are the
    /// product of `dims[axes]` of argument `arg`, times its [`Slices`].
    Lanes { arg: usize, axes: &'static [usize], slices: Slices },
    /// The chunked form's: per point, one block of [`BLOCK_THREADS`] threads per block
    /// row, working together; the rows are the product of `dims[axes]` of argument
    /// `arg`, times its [`Slices`].
    Block { arg: usize, axes: &'static [usize], slices: Slices },
}

/// What divides a lane's work further, multiplying a point's lanes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Slices {
    One,
    /// A scan's key channels: [`crate::scan::key_slices`] of the state's `DK`, `DV`
    /// (`dims[2]`, `dims[3]`).
    KeyChannels,
    /// The convolution's tokens: [`crate::conv::time_chunks`] of `T` (`dims[1]`).
    TimeChunks,
    /// A norm's row: [`crate::norms::ROW_LANES`] lanes, a warp.
    Warp,
    /// A chunked scan's blocks of value channels: [`crate::scan::chunked::value_blocks`]
    /// of its kind and the state's `DK × DV` (`dims[2]`, `dims[3]`).
    ValueBlocks(crate::scan::chunked::Kind),
}

impl Slices {
    /// The lanes per `dims[axes]` lane, for argument dims `dims`.
    pub fn count(self, dims: &[usize]) -> usize {
        match self {
            Slices::One => 1,
            Slices::KeyChannels => crate::scan::key_slices(dims[2], dims[3]),
            Slices::TimeChunks => crate::conv::time_chunks(dims[1]),
            Slices::Warp => crate::norms::ROW_LANES,
            Slices::ValueBlocks(kind) => crate::scan::chunked::value_blocks(kind, dims[2], dims[3]),
        }
    }
}

/// Threads per block.
pub const THREADS: usize = 128;

/// Threads per block row of a launch of `points` points with `lanes` lanes each on a GPU
/// of `multiprocessors`: [`THREADS`], or fewer — halved down to a warp — while the
/// launch would give the multiprocessors under two blocks each. A scan has few lanes (one
/// per state column): at 128 a row, B=4 with 16 heads of 128 columns is 64 blocks for an
/// H200's 132 multiprocessors. Measured there: the same time either way — each lane's
/// walk over the tokens is a chain of dependent reads, so its length is the time.
/// Never more than the lanes.
pub fn lane_row(lanes: usize, points: usize, multiprocessors: usize) -> usize {
    let mut row = THREADS;
    while row > 32 && points * lanes.div_ceil(row) < 2 * multiprocessors {
        row /= 2;
    }
    row.min(lanes.max(1))
}

/// The launch of `key`'s `form` with `count` arguments.
pub fn launch(key: &KernelKey, form: Form, count: usize) -> Launch {
    match (form, key.lanes(count)) {
        (Form::Lanes, Some((arg, axes))) => Launch::Lanes { arg, axes, slices: key.lane_slices() },
        (Form::Lanes, None) => Launch::Points,
        (Form::Chunked, Some((arg, _))) => {
            let kind = match key {
                KernelKey::ScanBackward { spec, .. } => crate::scan::chunked::kind(spec),
                _ => None,
            };
            let kind = kind.unwrap_or_else(|| panic!("`{key}` has no chunked form"));
            Launch::Block { arg, axes: &[1], slices: Slices::ValueBlocks(kind) }
        }
        (Form::Chunked, None) => panic!("`{key}` has no chunked form"),
        (Form::Blocks, _) => Launch::Blocks,
        (Form::Loops, _) => panic!("`{key}`: the loops form is the CPU's"),
    }
}

/// CUDA's largest grid along y, where a point's blocks of lanes or block rows lie.
pub const MAX_GRID_Y: usize = 65_535;

/// The grid and block of a launch of `points` points whose arguments have the dims
/// `dims`, on a GPU of `multiprocessors`.
pub fn shape(
    launch: Launch,
    points: usize,
    dims: &[&[usize]],
    multiprocessors: usize,
) -> ((u32, u32, u32), (u32, u32, u32)) {
    let rows_of = |arg: usize, axes: &[usize], slices: Slices| {
        axes.iter().map(|axis| dims[arg][*axis]).product::<usize>().max(1) * slices.count(dims[arg])
    };
    match launch {
        Launch::Blocks => ((points as u32, 1, 1), (1, 1, 1)),
        Launch::Points => {
            let column = points.min(THREADS);
            ((points.div_ceil(column) as u32, 1, 1), (1, column as u32, 1))
        }
        Launch::Lanes { arg, axes, slices } => {
            let lanes = rows_of(arg, axes, slices);
            let row = lane_row(lanes, points, multiprocessors);
            let rows = lanes.div_ceil(row);
            assert!(rows <= MAX_GRID_Y, "{lanes} lanes need {rows} blocks along y; CUDA allows {MAX_GRID_Y}");
            ((points as u32, rows as u32, 1), (row as u32, 1, 1))
        }
        Launch::Block { arg, axes, slices } => {
            let rows = rows_of(arg, axes, slices);
            assert!(rows <= MAX_GRID_Y, "{rows} block rows; CUDA allows {MAX_GRID_Y} along y");
            ((points as u32, rows as u32, 1), (block_threads() as u32, 1, 1))
        }
    }
}

/// The points of a launch of `key` over `space` rows: one a row, or for a key whose
/// lanes walk several ([`KernelKey::rows_per_point`]) one per group of the largest
/// count up to it that divides `space` (a point's rows are `space / points` of them,
/// none left over).
pub fn points(key: &KernelKey, launch: Launch, space: usize) -> usize {
    let space = space.max(1);
    if !matches!(launch, Launch::Lanes { .. }) {
        return space;
    }
    space / hyb_target::largest_divisor(space, key.rows_per_point())
}

/// The `blocks` or `lanes` form of `key` for `chip`, its arguments of the element types
/// of `signature`: the MLIR module whose kernel is `name`.
pub fn generate(key: &KernelKey, name: &str, chip: &str, signature: &[Elem], form: Form) -> Result<String, NoForm> {
    let no_form = || NoForm { key: key.to_string(), form, storage: crate::key::storage_of(signature) };
    if !key.forms().contains(&form) {
        return Err(no_form());
    }
    let body = crate::key::generate_gpu_body(key, &format!("{name}_body"), form, signature).ok_or_else(no_form)?;
    let block_threads = (form == Form::Chunked).then_some(block_threads() as u32);
    // A malformed switch never gets here: `hyb_driver::codegen` refuses it first.
    let overrides = register_overrides().unwrap_or_default();
    let max_registers = overridden_registers(&overrides, name).unwrap_or(key.max_registers(form));
    module(&body, name, chip, Bounds { max_registers, block_threads }).ok_or_else(no_form)
}

/// A measurement switch: `HYB_MAXNREG_KERNELS=label:N,…` bounds the registers a thread
/// of each kernel whose name ends in `_label` (`scan_bwd` for `k19_scan_bwd`) at `N`, 0
/// for none, in place of its key's bound (`bench/gpu/maxnreg_ab.sh` times the choices).
/// Unset, no override; a malformed value is an error (`hyb_driver::codegen` refuses it).
pub fn register_overrides() -> Result<Vec<(String, u32)>, String> {
    std::env::var("HYB_MAXNREG_KERNELS").map_or(Ok(Vec::new()), |text| parse_register_overrides(&text))
}

/// `label:N,…` as [`register_overrides`] reads it: each label's bound, N 0 (none) or 16
/// to 255.
pub fn parse_register_overrides(text: &str) -> Result<Vec<(String, u32)>, String> {
    let malformed = || format!("HYB_MAXNREG_KERNELS=`{text}`: expected label:N,… (e.g. scan_bwd:128; 0 for no bound)");
    text.split(',')
        .map(|item| {
            let (label, n) = item.split_once(':').ok_or_else(malformed)?;
            let n: u32 = n.trim().parse().map_err(|_| malformed())?;
            let label = label.trim();
            if label.is_empty() || !(n == 0 || (16..=255).contains(&n)) {
                return Err(malformed());
            }
            Ok((label.to_string(), n))
        })
        .collect()
}

/// The bound `overrides` set for kernel `name`: `Some(None)` for unbounded, `None` where
/// no label matches.
fn overridden_registers(overrides: &[(String, u32)], name: &str) -> Option<Option<u32>> {
    let (_, n) = overrides.iter().find(|(label, _)| name.ends_with(&format!("_{label}")))?;
    Some((*n > 0).then_some(*n))
}

/// What a kernel promises ptxas about its threads.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Bounds {
    /// The registers a thread may take (`nvvm.maxnreg`, ptxas spilling past it).
    pub max_registers: Option<u32>,
    /// The threads of every block, along x (`known_block_size`, PTX's `.maxntid`): the
    /// chunked form's, whose barriers need the whole block.
    pub block_threads: Option<u32>,
}

/// One argument of a generated function: its name and memref type, its rank.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Param {
    pub name: String,
    pub ty: String,
    pub rank: usize,
    pub elem: String,
}

/// The arguments of `func.func @name(...)` in `body`.
pub fn params(body: &str, name: &str) -> Option<Vec<Param>> {
    let start = body.find(&format!("func.func @{name}("))? + "func.func @(".len() + name.len();
    let mut depth = 0usize;
    let mut end = start;
    for (offset, c) in body[start..].char_indices() {
        match c {
            '(' | '<' | '[' => depth += 1,
            ')' | '>' | ']' if depth > 0 => depth -= 1,
            ')' => {
                end = start + offset;
                break;
            }
            _ => {}
        }
    }
    let list = &body[start..end];
    let mut params = Vec::new();
    let (mut depth, mut from) = (0usize, 0usize);
    for (offset, c) in list.char_indices().chain(std::iter::once((list.len(), ','))) {
        match c {
            '<' | '[' | '(' => depth += 1,
            '>' | ']' | ')' => depth -= 1,
            ',' if depth == 0 => {
                let item = list[from..offset].trim();
                from = offset + 1;
                let (name, ty) = item.split_once(':')?;
                let ty = ty.trim().to_string();
                let inner = ty.strip_prefix("memref<")?;
                let rank = inner.matches("?x").count();
                let elem = inner[rank * 2..].split([',', '>']).next()?.trim().to_string();
                params.push(Param { name: name.trim().trim_start_matches('%').to_string(), ty, rank, elem });
            }
            _ => {}
        }
    }
    Some(params)
}

/// The module of the kernel `name` for `chip` (`sm_90a`): `body` holds the generated
/// function `{name}_body` (strided arguments, no libdevice calls; a chunked form's
/// tiles before it) under `bounds`.
pub fn module(body: &str, name: &str, chip: &str, bounds: Bounds) -> Option<String> {
    let params = params(body, &format!("{name}_body"))?;
    let mut out = String::new();
    let _ = writeln!(out, "module attributes {{gpu.container_module}} {{");
    let _ = writeln!(out, "gpu.module @{name}_module [#nvvm.target<chip = \"{chip}\", features = \"+ptx80\">] {{");
    out.push_str(body);
    out.push('\n');
    let mut signature: Vec<String> =
        params.iter().map(|p| format!("%{}: {}, %{}_split: i64", p.name, p.ty, p.name)).collect();
    signature.push("%points_i64: i64".into());
    let mut attributes = Vec::new();
    if let Some(n) = bounds.max_registers {
        attributes.push(format!("nvvm.maxnreg = {n} : i32"));
    }
    if let Some(n) = bounds.block_threads {
        attributes.push(format!("known_block_size = array<i32: {n}, 1, 1>"));
    }
    let attributes =
        if attributes.is_empty() { String::new() } else { format!(" attributes {{{}}}", attributes.join(", ")) };
    let _ = writeln!(out, "gpu.func @{name}({}) kernel{attributes} {{", signature.join(", "));
    out.push_str(
        "  %block = gpu.block_id x\n  %column = gpu.block_dim y\n  %thread = gpu.thread_id y\n  \
         %first_point = arith.muli %block, %column : index\n  %point = arith.addi %first_point, %thread : index\n  \
         %points = arith.index_cast %points_i64 : i64 to index\n  \
         %c0 = arith.constant 0 : index\n  %no = arith.constant 0 : i64\n  \
         %inside = arith.cmpi ult, %point, %points : index\n  scf.if %inside {\n",
    );
    let mut views = Vec::new();
    for p in &params {
        views.push(view(&mut out, p));
    }
    let types: Vec<&str> = params.iter().map(|p| p.ty.as_str()).collect();
    let _ = writeln!(out, "    func.call @{name}_body({}) : ({}) -> ()", views.join(", "), types.join(", "));
    out.push_str("  }\n  gpu.return\n}\n}\n}\n");
    Some(out)
}

/// Whether a memref type's innermost stride is the static 1 ([`crate::emit::Layout`]'s
/// `Rows`: `strided<[?, 1], offset: ?>`, or `strided<[1], ...>` at rank 1).
fn unit_innermost(ty: &str) -> bool {
    ty.contains(", 1], offset") || ty.contains("strided<[1],")
}

/// This point's view of argument `p`: its rows when split, all of it otherwise.
fn view(out: &mut String, p: &Param) -> String {
    let n = &p.name;
    let sizes: Vec<String> = (0..p.rank).map(|i| format!("%{n}_size{i}")).collect();
    let strides: Vec<String> = (0..p.rank).map(|i| format!("%{n}_stride{i}")).collect();
    let index_types = vec!["index"; 2 * p.rank + 1].join(", ");
    let _ = writeln!(
        out,
        "    %{n}_base, %{n}_offset, {}, {} = memref.extract_strided_metadata %{n} : {} -> memref<{}>, {index_types}",
        sizes.join(", "),
        strides.join(", "),
        p.ty,
        p.elem
    );
    let _ = writeln!(out, "    %{n}_is_split = arith.cmpi ne, %{n}_split, %no : i64");
    let _ = writeln!(out, "    %{n}_part = arith.divui %{n}_size0, %points : index");
    let _ = writeln!(out, "    %{n}_rows = arith.select %{n}_is_split, %{n}_part, %{n}_size0 : index");
    let _ = writeln!(out, "    %{n}_step = arith.muli %{n}_part, %{n}_stride0 : index");
    let _ = writeln!(out, "    %{n}_at = arith.muli %point, %{n}_step : index");
    let _ = writeln!(out, "    %{n}_shift = arith.select %{n}_is_split, %{n}_at, %c0 : index");
    let _ = writeln!(out, "    %{n}_start = arith.addi %{n}_offset, %{n}_shift : index");
    let mut view_sizes = vec![format!("%{n}_rows")];
    view_sizes.extend(sizes[1..].iter().cloned());
    // The innermost stride as the type states it: 1 (rows are contiguous), which the
    // runtime's dense views guarantee.
    let mut strides = strides;
    if unit_innermost(&p.ty) {
        strides[p.rank - 1] = "1".to_string();
    }
    let _ = writeln!(
        out,
        "    %{n}_view = memref.reinterpret_cast %{n}_base to offset: [%{n}_start], sizes: [{}], strides: [{}] : memref<{}> to {}",
        view_sizes.join(", "),
        strides.join(", "),
        p.elem,
        p.ty
    );
    format!("%{n}_view")
}
