//! The [`Builder`] itself: the text it writes, SSA names, the kernel function around
//! the body, constants, casts and memref access. Arithmetic is in `ops.rs`, control flow
//! in `control.rs`.

use std::fmt::Write;

use super::ops::Cmp;
use super::types::{Config, Layout, Parallel, Scalar, Ty, Value, Wrap};

/// Writes one kernel module, `module { func.func @name(...) { ... } }` (or the function
/// alone: [`Wrap::Bare`]), typed.
///
/// Every op method writes one line (or a few, for compound helpers) at the current
/// nesting and returns its result as a [`Value`] of the type the op gives. Results are
/// named `%v1`, `%v2`, ... in the order they are made, unless [`Builder::named`] gives
/// the next one a name (`%B`, `%scale`), as the kernels do for the values defined once
/// at the top of the function.
pub struct Builder {
    pub(super) text: String,
    pub(super) depth: usize,
    /// The last fresh name's number.
    pub(super) next: usize,
    /// The name [`Builder::named`] gave the next result.
    pub(super) pending_name: Option<String>,
    pub(super) config: Config,
    args: Vec<Value>,
    /// The nesting of the function body: an op written at this depth dominates the rest
    /// of the function (its body is one block), so constants there can be shared.
    body_depth: usize,
    /// Index constants `%cN` defined at the top of the function body.
    index_constants: Vec<(u64, Value)>,
    /// The function's name, which names its tiles.
    function: String,
    /// The workgroup globals of the chunked form's tiles ([`Builder::tile`]), written
    /// before the function.
    globals: Vec<String>,
    /// Each tile's name and dims, for [`Builder::poison`].
    tiles: Vec<(String, Vec<u64>)>,
    /// How many `scf.if` regions enclose the op being written: a barrier in one would
    /// wait for threads that never come.
    pub(super) conditional: usize,
}

impl Builder {
    pub fn new(config: Config) -> Builder {
        Builder {
            text: String::new(),
            depth: 0,
            next: 0,
            pending_name: None,
            config,
            args: Vec::new(),
            body_depth: usize::MAX,
            index_constants: Vec::new(),
            function: String::new(),
            globals: Vec::new(),
            tiles: Vec::new(),
            conditional: 0,
        }
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The type tensors are computed in.
    pub fn compute(&self) -> Scalar {
        self.config.types.compute
    }

    /// A memref type of `rank` with the kernel's storage element type.
    pub fn tensor(&self, rank: usize) -> Ty {
        Ty::memref(rank, self.config.types.storage)
    }

    /// Opens `module { func.func @name(args) attributes {llvm.emit_c_interface} {` with
    /// one memref argument of the storage element type per `(name, rank)`, and defines
    /// the constants every kernel uses: [`Builder::c0`], [`Builder::c1`],
    /// [`Builder::zero`], [`Builder::one`].
    pub fn begin_function(&mut self, name: &str, args: &[(&str, usize)]) {
        let typed: Vec<(&str, Ty)> = args.iter().map(|(arg, rank)| (*arg, self.tensor(*rank))).collect();
        self.begin_function_typed(name, &typed);
    }

    /// [`Builder::begin_function`] with each argument's type given. Memref arguments
    /// take the configuration's [`Layout`](super::Layout), and float ones flagged in
    /// [`Config::bf16_args`] hold bf16; under [`Wrap::Bare`] the
    /// function is written alone, with no module and no attributes.
    pub fn begin_function_typed(&mut self, name: &str, args: &[(&str, Ty)]) {
        let layout = self.config.layout;
        let bf16 = self.config.bf16_args;
        let stored = |position: usize, ty: Ty| match ty {
            Ty::MemRef { rank, elem, layout } if elem.is_float() && bf16 >> position & 1 == 1 => {
                Ty::MemRef { rank, elem: Scalar::Bf16, layout }
            }
            ty => ty,
        };
        self.args = args
            .iter()
            .enumerate()
            .map(|(i, (arg, ty))| Value::new(format!("%{arg}"), stored(i, *ty).with_layout(layout)))
            .collect();
        if self.config.parallel == Parallel::OneLane {
            self.args.push(Value::new("%lane_id", Ty::memref(1, Scalar::I32).with_layout(layout)));
        }
        let params: Vec<String> = self.args.iter().map(|arg| format!("{arg}: {}", arg.ty())).collect();
        self.function = name.to_string();
        match self.config.wrap {
            Wrap::Module => {
                self.line("module {");
                self.depth += 1;
                self.line(&format!("func.func @{name}({}) attributes {{llvm.emit_c_interface}} {{", params.join(", ")));
            }
            Wrap::Bare => self.line(&format!("func.func @{name}({}) {{", params.join(", "))),
        }
        self.depth += 1;
        self.body_depth = self.depth;
        for n in [0, 1] {
            self.constant_index(n);
        }
        let compute = self.compute().mlir();
        self.line(&format!("%zero = arith.constant 0.0 : {compute}"));
        self.line(&format!("%one = arith.constant 1.0 : {compute}"));
    }

    /// Returns and closes what [`Builder::begin_function`] opened; yields the text, the
    /// tiles' workgroup globals first.
    pub fn finish(mut self) -> String {
        self.line("return");
        while self.depth > 0 {
            self.close_block();
        }
        assert!(self.globals.is_empty() || self.config.wrap == Wrap::Bare, "workgroup tiles live in a gpu.module");
        let mut text: String = self.globals.iter().map(|global| format!("{global}\n")).collect();
        text.push_str(&self.text);
        text
    }

    /// The function argument `%name`; a name that is not an argument is a generator bug.
    pub fn arg(&self, name: &str) -> Value {
        let wanted = format!("%{name}");
        let found = self.args.iter().find(|arg| arg.name() == wanted);
        found.unwrap_or_else(|| panic!("the kernel has no argument {wanted}")).clone()
    }

    /// Index 0, defined at the top of every kernel.
    pub fn c0(&self) -> Value {
        Value::new("%c0", Ty::Scalar(Scalar::Index))
    }

    /// Index 1, defined at the top of every kernel.
    pub fn c1(&self) -> Value {
        Value::new("%c1", Ty::Scalar(Scalar::Index))
    }

    /// 0 in the compute type, defined at the top of every kernel.
    pub fn zero(&self) -> Value {
        Value::new("%zero", Ty::Scalar(self.compute()))
    }

    /// 1 in the compute type, defined at the top of every kernel.
    pub fn one(&self) -> Value {
        Value::new("%one", Ty::Scalar(self.compute()))
    }

    /// Names the next op's result `%name` instead of a fresh `%vN`. Only for ops that
    /// write one line; a compound helper given a name is a generator bug.
    pub fn named(&mut self, name: &str) -> &mut Builder {
        assert!(self.pending_name.is_none(), "two names for one value");
        self.pending_name = Some(format!("%{name}"));
        self
    }

    /// Panics if [`Builder::named`] named a compound helper's result, which would name
    /// its first step instead.
    pub(super) fn assert_unnamed(&self, helper: &str) {
        assert!(self.pending_name.is_none(), "{helper} writes several ops: name none of them");
    }

    pub(super) fn fresh(&mut self) -> String {
        self.next += 1;
        format!("%v{}", self.next)
    }

    /// The next result's name: the pending one, or a fresh one.
    pub(super) fn result_name(&mut self) -> String {
        match self.pending_name.take() {
            Some(name) => name,
            None => self.fresh(),
        }
    }

    pub(super) fn line(&mut self, line: &str) {
        let _ = writeln!(self.text, "{}{line}", "  ".repeat(self.depth));
    }

    /// Writes `%result = rhs` and returns the result, typed `ty`.
    pub(super) fn define(&mut self, rhs: &str, ty: Ty) -> Value {
        let name = self.result_name();
        self.line(&format!("{name} = {rhs}"));
        Value::new(name, ty)
    }

    pub(super) fn define_scalar(&mut self, rhs: &str, ty: Scalar) -> Value {
        self.define(rhs, Ty::Scalar(ty))
    }

    /// Writes `}` one level out.
    pub(super) fn close_block(&mut self) {
        self.depth -= 1;
        self.line("}");
    }

    /// A float constant of type `ty`, written as its bit pattern (exact, and valid MLIR)
    /// with its decimal value in a comment when it is finite.
    pub fn constant_f(&mut self, value: f64, ty: Scalar) -> Value {
        let bits = match ty {
            Scalar::F32 => format!("0x{:08X}", (value as f32).to_bits()),
            Scalar::Bf16 => format!("0x{:04X}", hyb_target::bf16_bits(value as f32)),
            other => panic!("a float constant of type {}", other.mlir()),
        };
        let comment = if value.is_finite() { format!(" // {value}") } else { String::new() };
        self.define_scalar(&format!("arith.constant {bits} : {}{comment}", ty.mlir()), ty)
    }

    /// A float constant of the compute type.
    pub fn constant(&mut self, value: f64) -> Value {
        self.constant_f(value, self.compute())
    }

    /// An integer constant (`i1`, `i32`, `i64` or `index`).
    pub fn constant_int(&mut self, value: i64, ty: Scalar) -> Value {
        assert!(!ty.is_float(), "an integer constant of type {}", ty.mlir());
        self.define_scalar(&format!("arith.constant {value} : {}", ty.mlir()), ty)
    }

    /// An index constant. Those written at the top of the function body are named `%cN`
    /// and shared by every later use; [`Builder::c0`] and [`Builder::c1`] always exist.
    pub fn constant_index(&mut self, value: u64) -> Value {
        if self.pending_name.is_none() {
            if let Some((_, shared)) = self.index_constants.iter().find(|(n, _)| *n == value) {
                return shared.clone();
            }
            if self.depth == self.body_depth {
                self.pending_name = Some(format!("%c{value}"));
                let constant = self.constant_int(value as i64, Scalar::Index);
                self.index_constants.push((value, constant.clone()));
                return constant;
            }
        }
        self.constant_int(value as i64, Scalar::Index)
    }

    fn cast(&mut self, op: &str, x: &Value, to: Scalar) -> Value {
        let from = x.scalar();
        self.define_scalar(&format!("arith.{op} {x} : {} to {}", from.mlir(), to.mlir()), to)
    }

    /// Between `index` and an integer type.
    pub fn index_cast(&mut self, x: &Value, to: Scalar) -> Value {
        self.cast("index_cast", x, to)
    }

    /// A signed integer to a float.
    pub fn sitofp(&mut self, x: &Value, to: Scalar) -> Value {
        self.cast("sitofp", x, to)
    }

    /// An unsigned integer (or a boolean: 1 or 0) to a float.
    pub fn uitofp(&mut self, x: &Value, to: Scalar) -> Value {
        self.cast("uitofp", x, to)
    }

    /// A float to a signed integer, rounding toward zero.
    pub fn fptosi(&mut self, x: &Value, to: Scalar) -> Value {
        self.cast("fptosi", x, to)
    }

    /// The same bits as another type of the same width.
    pub fn bitcast(&mut self, x: &Value, to: Scalar) -> Value {
        self.cast("bitcast", x, to)
    }

    /// A float to a wider float.
    pub fn extf(&mut self, x: &Value, to: Scalar) -> Value {
        self.cast("extf", x, to)
    }

    /// A float to a narrower float, rounding to nearest.
    pub fn truncf(&mut self, x: &Value, to: Scalar) -> Value {
        self.cast("truncf", x, to)
    }

    /// `memref.dim` along `axis`.
    pub fn dim(&mut self, memref: &Value, axis: usize) -> Value {
        let name = self.pending_name.take();
        let axis = self.constant_index(axis as u64);
        self.pending_name = name;
        self.define_scalar(&format!("memref.dim {memref}, {axis} : {}", memref.ty()), Scalar::Index)
    }

    /// `memref[indices]`, extended to the compute type when the memref stores a
    /// narrower float.
    pub fn load(&mut self, memref: &Value, indices: &[&Value]) -> Value {
        let (elem, rank) = memref.memref();
        assert_eq!(indices.len(), rank, "{memref} has rank {rank}");
        let compute = self.compute();
        let at = format!("memref.load {memref}[{}] : {}", list(indices), memref.ty());
        if !elem.is_float() || elem == compute {
            return self.define_scalar(&at, elem);
        }
        // A name given to the load belongs to the extended value.
        let name = self.pending_name.take();
        let loaded = self.define_scalar(&at, elem);
        self.pending_name = name;
        self.extf(&loaded, compute)
    }

    /// `memref[indices] = value`, truncated to the memref's element type when that is a
    /// narrower float.
    pub fn store(&mut self, value: &Value, memref: &Value, indices: &[&Value]) {
        let (elem, rank) = memref.memref();
        assert_eq!(indices.len(), rank, "{memref} has rank {rank}");
        let value = if value.scalar() != elem && elem.is_float() { self.truncf(value, elem) } else { value.clone() };
        assert_eq!(value.scalar(), elem, "storing {value} into {memref}");
        self.line(&format!("memref.store {value}, {memref}[{}] : {}", list(indices), memref.ty()));
    }

    /// `memref[indices] += value`.
    pub fn accumulate(&mut self, memref: &Value, indices: &[&Value], value: &Value) {
        self.assert_unnamed("accumulate");
        let elem = memref.memref().0;
        assert_eq!(elem, self.compute(), "{memref}: a sum kept in memory is of the arithmetic's type, not {elem:?}");
        let old = self.load(memref, indices);
        let new = self.add(&old, value);
        self.store(&new, memref, indices);
    }

    /// `memref[indices] += value` into an output other parts of the launch add into too
    /// (a `sum` argument; a gradient several lanes contribute to): a read-modify-write
    /// when each part owns its copy ([`Parallel::Parts`]), an atomic add when the
    /// threads share one ([`Parallel::Blocks`], [`Parallel::Threads`]). Under
    /// `Threads`, a warp whose 32 threads are here together and add into one element
    /// (a row kernel's column sums: the threads are rows walking the columns in step)
    /// sums over the warp first and adds once — 32 threads adding into one address
    /// wait on each other (the RMSNorm weight's gradient over 16K rows took 2.1 ms on
    /// the H200); threads apart, or adding into different elements, add one by one.
    pub fn accumulate_shared(&mut self, memref: &Value, indices: &[&Value], value: &Value) {
        match self.config.parallel {
            Parallel::Parts | Parallel::OneLane | Parallel::Phases { .. } => self.accumulate(memref, indices, value),
            Parallel::Blocks | Parallel::Block => self.atomic_add(memref, indices, value),
            Parallel::Threads => {
                let together = self.whole_warp_on(indices);
                self.if_else(
                    &together,
                    |e| {
                        let total = e.warp_sum(value);
                        let lane = e.define_scalar("nvvm.read.ptx.sreg.laneid : i32", Scalar::I32);
                        let c0 = e.constant_int(0, Scalar::I32);
                        let first = e.cmp(Cmp::Eq, &lane, &c0);
                        e.if_(&first, |e| e.atomic_add(memref, indices, &total));
                    },
                    |e| e.atomic_add(memref, indices, value),
                );
            }
        }
    }

    /// Whether all 32 threads of this warp are here together (`activemask` full) with
    /// the same `indices` (`match.sync.all` on each): a GPU's, under [`Parallel::Threads`].
    fn whole_warp_on(&mut self, indices: &[&Value]) -> Value {
        let mask = self.define_scalar("nvvm.inline_ptx \"activemask.b32 $0;\" -> i32", Scalar::I32);
        let everyone = self.constant_int(-1, Scalar::I32);
        let full = self.cmp(Cmp::Eq, &mask, &everyone);
        // The match runs only where the warp is whole (a `match.sync` must be reached by
        // every thread of its mask): a select would issue it in a partial warp too.
        self.if_else_value(
            &full,
            Scalar::I1,
            |e| {
                let mut same = e.constant_int(1, Scalar::I1);
                for index in indices {
                    let narrow = e.index_cast(index, Scalar::I32);
                    let matched = e.fresh();
                    e.line(&format!(
                        "{matched} = nvvm.match.sync all {everyone}, {narrow} : i32 -> !llvm.struct<(i32, i1)>"
                    ));
                    let extract = format!("llvm.extractvalue {matched}[1] : !llvm.struct<(i32, i1)>");
                    let equal = e.define_scalar(&extract, Scalar::I1);
                    same = e.and(&same, &equal);
                }
                same
            },
            |e| e.constant_int(0, Scalar::I1),
        )
    }

    /// `memref[indices] += value` as one atomic add (f32).
    pub(crate) fn atomic_add(&mut self, memref: &Value, indices: &[&Value], value: &Value) {
        self.assert_unnamed("accumulate_shared");
        let (elem, rank) = memref.memref();
        assert_eq!(indices.len(), rank, "{memref} has rank {rank}");
        assert_eq!((elem, value.scalar()), (Scalar::F32, Scalar::F32), "atomic adds are f32");
        let rhs = format!(
            "memref.atomic_rmw addf {value}, {memref}[{}] : ({}, {}) -> f32",
            list(indices),
            "f32",
            memref.ty()
        );
        self.define_scalar(&rhs, Scalar::F32);
    }

    /// `Σ x` over the 32 threads of this warp, in every one of them (a butterfly of
    /// `gpu.shuffle xor`): every thread of the warp must reach it.
    pub fn warp_sum(&mut self, x: &Value) -> Value {
        let stages: Vec<(i64, Option<Value>)> = [16, 8, 4, 2, 1].into_iter().map(|offset| (offset, None)).collect();
        self.warp_butterfly(x, &stages)
    }

    /// A butterfly over this warp's threads: for each `(offset, keep)`, `x` plus its value
    /// in the thread `offset` away (`gpu.shuffle xor`), kept where `keep` holds (always
    /// without one; `keep` must be the same in every thread of the warp). Offsets that
    /// are distinct powers of two sum over the threads whose lane numbers differ only in
    /// those bits, and give every one of them the same total. Every thread of the warp
    /// must reach it.
    pub fn warp_butterfly(&mut self, x: &Value, stages: &[(i64, Option<Value>)]) -> Value {
        assert!(self.config.parallel.on_gpu_threads(), "warps exist on a GPU");
        let width = self.constant_int(32, Scalar::I32);
        let mut total = x.clone();
        for (offset, keep) in stages {
            let offset = self.constant_int(*offset, Scalar::I32);
            let (other, valid) = (self.result_name(), self.result_name());
            self.line(&format!("{other}, {valid} = gpu.shuffle xor {total}, {offset}, {width} : f32"));
            let sum = self.add(&total, &Value::new(other, Ty::Scalar(Scalar::F32)));
            total = match keep {
                Some(keep) => self.select(keep, &sum, &total),
                None => sum,
            };
        }
        total
    }

    /// This thread's lane, `gpu.block_id y · gpu.block_dim x + gpu.thread_id x` (a
    /// kernel with lanes: `KernelKey::lanes`), or the `%lane_id` argument's
    /// ([`Parallel::OneLane`]).
    pub fn lane(&mut self) -> Value {
        if self.config.parallel == Parallel::OneLane {
            let (lanes, c0) = (self.arg("lane_id"), self.c0());
            let lane = self.load(&lanes, &[&c0]);
            return self.named("lane").index_cast(&lane, Scalar::Index);
        }
        let (thread, block, width) =
            (self.gpu_index("thread_id x"), self.gpu_index("block_id y"), self.gpu_index("block_dim x"));
        let first = self.mul(&block, &width);
        self.named("lane").add(&first, &thread)
    }

    /// The part of `[0, count)` this call walks: all of it, or with `lanes` under
    /// [`Parallel::Threads`] this thread's lane alone (empty past the end).
    pub fn lane_range(&mut self, count: &Value, lanes: bool) -> (Value, Value) {
        let one = self.c1();
        self.lane_grid(count, &one, lanes).outer
    }

    /// A lane's place in a grid of `outer × inner` points, lane `o · inner + i`: one-long
    /// ranges of `o` (empty past `outer`) and of `i`, and the lane itself; with `lanes`
    /// false or a configuration without lanes, the whole grid and no lane.
    pub fn lane_grid(&mut self, outer: &Value, inner: &Value, lanes: bool) -> LaneGrid {
        let c0 = self.c0();
        if !lanes || !self.config.parallel.has_lanes() {
            return LaneGrid { lane: None, outer: (c0.clone(), outer.clone()), inner: (c0, inner.clone()) };
        }
        let lane = self.lane();
        let o = self.named("lane_outer").divui(&lane, inner);
        let i = self.named("lane_inner").remui(&lane, inner);
        let c1 = self.c1();
        let next_o = self.add(&o, &c1);
        let o_end = self.min(&next_o, outer);
        let i_end = self.add(&i, &c1);
        LaneGrid { lane: Some(lane), outer: (o, o_end), inner: (i, i_end) }
    }

    /// A GPU index of the running thread: `gpu.thread_id x`, `gpu.block_id y`,
    /// `gpu.block_dim x`, ... (`what` is the op's name and dimension).
    pub fn gpu_index(&mut self, what: &str) -> Value {
        assert!(self.config.parallel.on_gpu_threads(), "thread indices exist on a GPU");
        self.define_scalar(&format!("gpu.{what}"), Scalar::Index)
    }

    /// A stack buffer of `elem` with the given dynamic sizes, freed when the function
    /// returns. Under [`Parallel::Threads`] a vector of [`LANE_LOCAL_MAX`] elements seen
    /// at its dynamic size: a GPU thread's frame of fixed size, since two dynamic PTX
    /// `alloca`s in one function gave wrong results on the H200 (the lanes form's
    /// attention and delta-rule backward); a larger size traps.
    pub fn alloca(&mut self, elem: Scalar, sizes: &[&Value]) -> Value {
        let ty = Ty::memref(sizes.len(), elem);
        if self.config.parallel != Parallel::Threads {
            return self.define(&format!("memref.alloca({}) : {ty}", list(sizes)), ty);
        }
        assert_eq!(sizes.len(), 1, "a thread's local vectors are one-dimensional");
        let name = self.pending_name.take();
        let cap = self.constant_index(LANE_LOCAL_MAX);
        let too_long = self.cmp(Cmp::Gt, sizes[0], &cap);
        self.trap_if(&too_long);
        let fixed = format!("memref<{LANE_LOCAL_MAX}x{}>", elem.mlir());
        let local = self.fresh();
        self.line(&format!("{local} = memref.alloca() : {fixed}"));
        self.pending_name = name;
        self.define(&format!("memref.cast {local} : {fixed} to {ty}"), ty)
    }
}

/// The chunked form's cooperation ([`Parallel::Block`] on a GPU, [`Parallel::Phases`] on
/// the CPU): tiles, phases and the block's place.
impl Builder {
    /// A tile of `dims` elements of `elem` the block's threads share, dynamically typed
    /// (`memref<?x?xf32, …>`) so that loads and stores read as any memref's: in shared
    /// memory on a GPU (a workgroup `memref.global` named after the function), on the
    /// stack on the CPU. Made at the top of the function body, once.
    pub fn tile(&mut self, elem: Scalar, dims: &[u64]) -> Value {
        assert!(self.config.parallel.is_block(), "tiles belong to the chunked form");
        assert_eq!(self.depth, self.body_depth, "a tile is made at the top of the function");
        let shape: String = dims.iter().map(|d| format!("{d}x")).collect();
        let on_gpu = self.config.parallel == Parallel::Block;
        let space = if on_gpu { ", #gpu.address_space<workgroup>" } else { "" };
        let fixed = format!("memref<{shape}{}{space}>", elem.mlir());
        let layout = if on_gpu { Layout::Workgroup } else { Layout::Identity };
        let ty = Ty::MemRef { rank: dims.len(), elem, layout };
        let name = self.pending_name.take();
        let local = self.fresh();
        if on_gpu {
            let global = format!("{}_tile{}", self.function, self.globals.len());
            self.globals.push(format!("memref.global \"private\" @{global} : {fixed} = uninitialized"));
            self.line(&format!("{local} = memref.get_global @{global} : {fixed}"));
        } else {
            self.line(&format!("{local} = memref.alloca() : {fixed}"));
        }
        self.pending_name = name;
        let tile = self.define(&format!("memref.cast {local} : {fixed} to {ty}"), ty);
        self.tiles.push((tile.name().to_string(), dims.to_vec()));
        tile
    }

    /// Fills `tile` with NaN on the CPU ([`Parallel::Phases`]), so that an entry read
    /// before any phase wrote it poisons the result; nothing on a GPU.
    pub fn poison(&mut self, tile: &Value) {
        if !matches!(self.config.parallel, Parallel::Phases { .. }) {
            return;
        }
        let dims = self.tiles.iter().find(|(name, _)| name == tile.name()).map(|(_, dims)| dims.clone());
        let dims = dims.unwrap_or_else(|| panic!("{tile} is not a tile"));
        let nan = self.constant(f64::NAN);
        let sizes: Vec<Value> = dims.iter().map(|d| self.constant_index(*d)).collect();
        self.poison_from(tile, &nan, &sizes, &mut Vec::new());
    }

    fn poison_from(&mut self, tile: &Value, nan: &Value, sizes: &[Value], at: &mut Vec<Value>) {
        let Some((size, rest)) = sizes.split_first() else {
            let indices: Vec<&Value> = at.iter().collect();
            return self.store(nan, tile, &indices);
        };
        let c0 = self.c0();
        self.for_(&c0, size, |e, i| {
            at.push(i);
            e.poison_from(tile, nan, rest, at);
            at.pop();
        });
    }

    /// Waits for every thread of the block (`gpu.barrier`); nothing on the CPU. Never
    /// inside an `scf.if`, whose threads may not all come.
    pub fn barrier(&mut self) {
        assert_eq!(self.conditional, 0, "a barrier inside a conditional region");
        if self.config.parallel == Parallel::Block {
            self.line("gpu.barrier");
        }
    }

    /// One phase: `body(item)` for every item of `[0, count)`, the block's threads taking
    /// every [`block_threads`](super::block_threads)-th from their own, then a barrier;
    /// every item in turn on the CPU. Every thread of the block must reach it.
    pub fn for_threads(&mut self, count: &Value, body: impl FnOnce(&mut Builder, Value)) {
        let (from, step) = self.thread_items();
        self.for_step(&from, count, &step, |e, item| {
            let item = e.phase_item(count, item);
            body(e, item)
        });
        self.barrier();
    }

    /// A phase as [`Builder::for_threads`] whose items each give a term: this thread's
    /// sum of its items' terms (on the CPU, of all of them).
    pub fn sum_threads(&mut self, count: &Value, body: impl FnOnce(&mut Builder, &Value) -> Value) -> Value {
        let (from, step) = self.thread_items();
        let total = self.sum_step(&from, count, &step, |e, item| {
            let item = e.phase_item(count, item.clone());
            body(e, &item)
        });
        self.barrier();
        total
    }

    /// The item a phase's loop index stands for: itself, or `count − 1 − index` on the
    /// CPU with its phases reversed.
    fn phase_item(&mut self, count: &Value, index: Value) -> Value {
        if self.config.parallel != (Parallel::Phases { reversed: true }) {
            return index;
        }
        let c1 = self.c1();
        let last = self.sub(count, &c1);
        self.sub(&last, &index)
    }

    /// This thread's first item and the stride between its items.
    fn thread_items(&mut self) -> (Value, Value) {
        assert!(self.config.parallel.is_block(), "phases belong to the chunked form");
        if self.config.parallel != Parallel::Block {
            return (self.c0(), self.c1());
        }
        let thread = self.gpu_index("thread_id x");
        (thread, self.constant_index(super::types::block_threads()))
    }

    /// The block rows of `[0, rows)` this call works on: its own (`gpu.block_id y`) on a
    /// GPU, trapping past the last, every one on the CPU.
    pub fn block_rows(&mut self, rows: &Value) -> (Value, Value) {
        assert!(self.config.parallel.is_block(), "block rows belong to the chunked form");
        if self.config.parallel != Parallel::Block {
            return (self.c0(), rows.clone());
        }
        let row = self.named("block_row").gpu_index("block_id y");
        let past = self.cmp(Cmp::Ge, &row, rows);
        self.trap_if(&past);
        let c1 = self.c1();
        let next = self.add(&row, &c1);
        (row, next)
    }
}

/// The longest vector a GPU thread of the lanes form keeps in its local frame (a head's
/// channels: attention's head dim, the delta rule's value dim).
pub const LANE_LOCAL_MAX: u64 = 512;

/// What [`Builder::lane_grid`] gives: the ranges of both axes this call walks, and the
/// lane when it is one.
pub struct LaneGrid {
    pub lane: Option<Value>,
    pub outer: (Value, Value),
    pub inner: (Value, Value),
}

/// `a, b, c`.
pub(super) fn list(values: &[&Value]) -> String {
    values.iter().map(|value| value.name()).collect::<Vec<_>>().join(", ")
}
