//! Running a [`Program`] on the CPU: the arena, parameters and AdamW moments as host
//! memory; kernels called through their JIT entry points, in parallel over slices of
//! their batch (or rows) when their arguments allow; GEMMs through `matrixmultiply`
//! (threaded inside).

use std::rc::Rc;

use rayon::prelude::*;

use hyb_kernels::jit::{Compiled, Entry, RawDescriptor};

use hyb_lower::program::{ADAM, Arg, HOST_LEN, Input, Instr, Program, SQUARES, Share, Store};

/// One step's inputs, each `[batch, seq_len]` row-major: the token ids, and the token
/// each position should predict (negative: none).
#[derive(Clone, Copy, Debug)]
pub struct Batch<'a> {
    pub tokens: &'a [i32],
    pub targets: &'a [i32],
}

impl Batch<'_> {
    /// No inputs: for the instructions that read none (the optimizer's).
    pub const NONE: Batch<'static> = Batch { tokens: &[], targets: &[] };

    /// Language-modelling targets: each position predicts the next token; the last none.
    pub fn next_token_targets(tokens: &[i32], seq_len: usize) -> Vec<i32> {
        tokens.chunks(seq_len).flat_map(|row| row[1..].iter().copied().chain(std::iter::once(-1))).collect()
    }
}

/// The memory a program runs over.
pub struct Memory {
    pub arena: Vec<f32>,
    pub temp: Vec<f32>,
    pub host: Vec<f32>,
    pub cache: Vec<f32>,
    pub params: Vec<Vec<f32>>,
    pub moment1: Vec<Vec<f32>>,
    pub moment2: Vec<Vec<f32>>,
}

impl Memory {
    /// Zeroed memory for `program`; AdamW's moments only if it has an optimizer step (a
    /// decoding program does not: generation from a large model needs its weights alone).
    pub fn new(program: &Program) -> Memory {
        let zeros = || program.params.iter().map(|p| vec![0.0; p.shape.iter().product()]).collect::<Vec<_>>();
        let optimizer = program.update_start < program.instrs.len();
        let moments = || if optimizer { zeros() } else { vec![Vec::new(); program.params.len()] };
        Memory {
            arena: vec![0.0; program.arena_len],
            temp: vec![0.0; program.temp_len],
            host: vec![0.0; HOST_LEN],
            cache: vec![0.0; program.cache_len],
            params: zeros(),
            moment1: moments(),
            moment2: moments(),
        }
    }

    fn base(&mut self, store: Store) -> *mut f32 {
        match store {
            Store::Arena => self.arena.as_mut_ptr(),
            Store::Temp => self.temp.as_mut_ptr(),
            Store::Host => self.host.as_mut_ptr(),
            Store::Cache => self.cache.as_mut_ptr(),
            Store::Param(i) => self.params[i].as_mut_ptr(),
            Store::Moment1(i) => self.moment1[i].as_mut_ptr(),
            Store::Moment2(i) => self.moment2[i].as_mut_ptr(),
        }
    }

    fn len(&self, store: Store) -> usize {
        match store {
            Store::Arena => self.arena.len(),
            Store::Temp => self.temp.len(),
            Store::Host => self.host.len(),
            Store::Cache => self.cache.len(),
            Store::Param(i) => self.params[i].len(),
            Store::Moment1(i) => self.moment1[i].len(),
            Store::Moment2(i) => self.moment2[i].len(),
        }
    }

    /// A pointer to the argument's first element, bounds-checked.
    fn pointer(&mut self, arg: &Arg) -> Ptr {
        assert!(arg.offset + arg.len() <= self.len(arg.store), "{arg:?} is outside its store");
        // SAFETY: in bounds, checked above.
        Ptr(unsafe { self.base(arg.store).add(arg.offset) })
    }

    pub fn slice(&mut self, arg: &Arg) -> &mut [f32] {
        let Ptr(pointer) = self.pointer(arg);
        // SAFETY: in bounds (checked by `pointer`), borrowed mutably from self.
        unsafe { std::slice::from_raw_parts_mut(pointer, arg.len()) }
    }
}

#[derive(Clone, Copy)]
struct Ptr(*mut f32);
// SAFETY: parallel parts of one call write disjoint slices; the program is sequential
// otherwise.
unsafe impl Send for Ptr {}
unsafe impl Sync for Ptr {}

/// The compiled kernels of a program and their entry points.
pub struct Kernels {
    entries: Vec<Entry>,
    _compiled: Vec<Rc<Compiled>>,
}

impl Kernels {
    /// JIT-compiles every kernel, each its own module, on every core. (Separate modules
    /// compile faster in total than one joined module, and in parallel.) A module this
    /// thread compiled before is reused: the same MLIR text is the same machine code, so
    /// a sweep, an evaluation at another length or a test suite pays LLVM once per kernel.
    pub fn compile(program: &Program) -> Result<Kernels, hyb_kernels::jit::JitError> {
        CACHE.with(|cache| {
            let mut cache = cache.borrow_mut();
            let mut missing: Vec<&String> =
                program.kernels.modules.iter().filter(|m| !cache.contains_key(*m)).collect();
            missing.dedup();
            let compiled: Vec<Compiled> =
                missing.par_iter().map(|m| hyb_kernels::jit::compile(m)).collect::<Result<_, _>>()?;
            for (module, compiled) in missing.into_iter().zip(compiled) {
                cache.insert(module.clone(), Rc::new(compiled));
            }
            let compiled: Vec<Rc<Compiled>> = program.kernels.modules.iter().map(|m| cache[m].clone()).collect();
            let entries =
                compiled.iter().zip(&program.kernels.names).map(|(c, n)| c.entry(n)).collect::<Result<_, _>>()?;
            Ok(Kernels { entries, _compiled: compiled })
        })
    }

    /// Forgets this thread's compiled modules (to measure a cold compile).
    pub fn clear_cache() {
        CACHE.with(|cache| cache.borrow_mut().clear());
    }
}

thread_local! {
    /// Compiled modules by their MLIR text.
    static CACHE: std::cell::RefCell<std::collections::HashMap<String, Rc<Compiled>>> = Default::default();
}

/// Time spent per kernel (or instruction kind), when profiling.
#[derive(Default, Debug)]
pub struct Profile {
    pub seconds: std::collections::BTreeMap<String, (f64, usize)>,
}

impl Profile {
    fn add(&mut self, label: String, seconds: f64) {
        let entry = self.seconds.entry(label).or_default();
        entry.0 += seconds;
        entry.1 += 1;
    }

    /// One line per label, the most expensive first, with its share of the total.
    pub fn table(&self) -> String {
        let total: f64 = self.seconds.values().map(|(s, _)| s).sum();
        let mut rows: Vec<_> = self.seconds.iter().collect();
        rows.sort_by(|a, b| b.1.0.total_cmp(&a.1.0));
        rows.iter()
            .map(|(label, (seconds, count))| {
                format!("{:>8.2} ms {:>5.1}% {count:>6}× {label}\n", seconds * 1e3, 100.0 * seconds / total)
            })
            .collect()
    }
}

fn label(program: &Program, instr: &Instr) -> String {
    match instr {
        Instr::Call { func, .. } | Instr::AdamW { func, .. } => program.kernels.names[*func].clone(),
        Instr::Gemm { .. } => "gemm".into(),
        Instr::Zero(_) => "zero".into(),
        Instr::Fill(..) | Instr::Input(..) | Instr::Clip => "host".into(),
        Instr::Columns { .. } => "columns".into(),
    }
}

/// Runs instructions `range` of the program (timing each into `profile` if given).
pub fn run(
    program: &Program,
    kernels: &Kernels,
    memory: &mut Memory,
    range: std::ops::Range<usize>,
    batch: &Batch,
    clip: Option<f64>,
    mut profile: Option<&mut Profile>,
) {
    for instr in &program.instrs[range] {
        let started = profile.is_some().then(std::time::Instant::now);
        execute(instr, kernels, memory, batch, clip);
        if let (Some(profile), Some(started)) = (profile.as_deref_mut(), started) {
            profile.add(label(program, instr), started.elapsed().as_secs_f64());
        }
    }
}

fn execute(instr: &Instr, kernels: &Kernels, memory: &mut Memory, batch: &Batch, clip: Option<f64>) {
    {
        match instr {
            Instr::Call { func, args } => call(kernels.entries[*func], memory, args),
            Instr::Gemm { m, k, n, a, b, c } => {
                let (pa, pb, pc) = (memory.pointer(&a.0), memory.pointer(&b.0), memory.pointer(c));
                assert!(a.0.len() >= m * k && b.0.len() >= k * n && c.len() == m * n, "GEMM operands fit");
                if *m <= SMALL_M && a.1[1] == 1 && b.1[0] == 1 {
                    // SAFETY: as for sgemm below; rows of a and columns of b are contiguous.
                    unsafe { small_gemm(*m, *k, *n, (pa, a.1[0]), (pb, b.1[1]), pc) };
                    return;
                }
                // SAFETY: the operands are in bounds for these strides (asserted above).
                unsafe {
                    matrixmultiply::sgemm(
                        *m,
                        *k,
                        *n,
                        1.0,
                        pa.0,
                        a.1[0],
                        a.1[1],
                        pb.0,
                        b.1[0],
                        b.1[1],
                        0.0,
                        pc.0,
                        *n as isize,
                        1,
                    );
                }
            }
            Instr::Zero(arg) => memory.slice(arg).fill(0.0),
            Instr::Fill(arg, values) => {
                let target = memory.slice(arg);
                if values.len() == 1 {
                    target.fill(values[0]);
                } else {
                    target.copy_from_slice(values);
                }
            }
            Instr::Input(which, arg) => {
                let ids = match which {
                    Input::Tokens => batch.tokens,
                    Input::Targets => batch.targets,
                };
                assert_eq!(ids.len(), arg.len(), "a step's inputs are batch × seq_len");
                for (slot, id) in memory.slice(arg).iter_mut().zip(ids) {
                    *slot = f32::from_bits(*id as u32);
                }
            }
            Instr::Columns { src, dst, src_col, dst_col, width } => {
                let (rows, src_width, dst_width) = (src.dims[0], src.dims[1], dst.dims[1]);
                let from = memory.slice(src).to_vec();
                let to = memory.slice(dst);
                for r in 0..rows {
                    let source = &from[r * src_width + src_col..][..*width];
                    to[r * dst_width + dst_col..][..*width].copy_from_slice(source);
                }
            }
            Instr::Clip => {
                let norm = (memory.host[SQUARES] as f64).sqrt();
                let factor = clip.map_or(1.0, |max| (max / (norm + 1e-6)).min(1.0));
                memory.host[SQUARES] = norm as f32;
                memory.host[ADAM + 7] = factor as f32;
            }
            Instr::AdamW { func, param, grad } => {
                let len = memory.params[*param].len();
                let whole = |store| Arg { store, offset: 0, dims: vec![len], flat: false, share: Share::Whole };
                let scalars = Arg { store: Store::Host, offset: ADAM, dims: vec![8], flat: false, share: Share::Whole };
                let args = [
                    whole(Store::Param(*param)),
                    grad.clone(),
                    whole(Store::Moment1(*param)),
                    whole(Store::Moment2(*param)),
                    scalars,
                ];
                call(kernels.entries[*func], memory, &args);
            }
        }
    }
}

/// Products with this few rows (a decoding step's `1 × k · k × n`) are dot products on
/// the calling thread: matrixmultiply's packing and thread dispatch cost more than the
/// product (measured: 27 µs per 1 × 128 · 128 × 512 product, 81 % of a decoding step).
const SMALL_M: usize = 4;

/// `c[i, j] = a_i · b_j` for rows `a_i` (stride `a.1`) and columns `b_j` (stride `b.1`),
/// each `k` contiguous values.
///
/// # Safety
/// Every row and column lies in live memory, `c` holds `m × n` values apart from both.
unsafe fn small_gemm(m: usize, k: usize, n: usize, a: (Ptr, isize), b: (Ptr, isize), c: Ptr) {
    for i in 0..m {
        // SAFETY: the caller's bounds.
        let row = unsafe { std::slice::from_raw_parts(a.0.0.offset(i as isize * a.1), k) };
        for j in 0..n {
            let column = unsafe { std::slice::from_raw_parts(b.0.0.offset(j as isize * b.1), k) };
            unsafe { *c.0.add(i * n + j) = dot(row, column) };
        }
    }
}

/// A dot product in eight lanes (so it vectorises).
fn dot(a: &[f32], b: &[f32]) -> f32 {
    let (a8, b8) = (a.chunks_exact(8), b.chunks_exact(8));
    let tail: f32 = a8.remainder().iter().zip(b8.remainder()).map(|(x, y)| x * y).sum();
    let mut lanes = [0.0f32; 8];
    for (x, y) in a8.zip(b8) {
        for l in 0..8 {
            lanes[l] += x[l] * y[l];
        }
    }
    lanes.iter().sum::<f32>() + tail
}

/// A call over fewer elements than this (all its arguments together) runs on the calling
/// thread: handing parts to rayon's threads costs ~10 µs, more than such a call's work
/// (a decoding step's norms and gates).
const PARALLEL_MIN: usize = 1 << 14;

/// One kernel call, in parallel over slices of the `Split` arguments' leading dim; each
/// part accumulates `Sum` arguments into a private zeroed copy, added in afterwards.
fn call(entry: Entry, memory: &mut Memory, args: &[Arg]) {
    let pointers: Vec<Ptr> = args.iter().map(|a| memory.pointer(a)).collect();
    let leading = args.iter().find(|a| a.is_split()).map_or(1, |a| a.dims[0]);
    let total: usize = args.iter().map(Arg::len).sum();
    let parts = if total < PARALLEL_MIN { 1 } else { rayon::current_num_threads().min(leading).max(1) };
    let summed: Vec<usize> =
        if parts > 1 { (0..args.len()).filter(|i| args[*i].share == Share::Sum).collect() } else { Vec::new() };
    // private[p][k]: part p's copy of the k-th summed argument.
    let mut private: Vec<Vec<Vec<f32>>> =
        (0..parts).map(|_| summed.iter().map(|i| vec![0.0; args[*i].len()]).collect()).collect();
    let private_pointers: Vec<Vec<Ptr>> =
        private.iter_mut().map(|copies| copies.iter_mut().map(|c| Ptr(c.as_mut_ptr())).collect()).collect();
    let run_part = |part: usize| {
        let (start, end) = (leading * part / parts, leading * (part + 1) / parts);
        let mut descriptors: Vec<RawDescriptor> = args
            .iter()
            .enumerate()
            .map(|(index, arg)| {
                let mut dims = arg.dims.clone();
                let mut base = pointers[index].0;
                if arg.is_split() && parts > 1 {
                    let stride = arg.len() / arg.dims[0];
                    // SAFETY: rows [start, end) of the argument, in bounds.
                    base = unsafe { base.add(start * stride) };
                    dims[0] = end - start;
                }
                if let Some(k) = summed.iter().position(|i| *i == index) {
                    base = private_pointers[part][k].0;
                }
                if arg.flat {
                    dims = vec![dims.iter().product()];
                }
                RawDescriptor::new(base, &dims)
            })
            .collect();
        let mut raw: Vec<*mut ()> = descriptors.iter_mut().map(|d| d.as_ptr()).collect();
        // SAFETY: every descriptor describes live memory of the kernel's expected rank;
        // parallel parts write disjoint rows of the split arguments and their own copies
        // of the summed ones, and only read the rest.
        unsafe { entry.call(&mut raw) };
    };
    if parts > 1 {
        (0..parts).into_par_iter().for_each(run_part);
    } else {
        run_part(0);
    }
    for (k, index) in summed.iter().enumerate() {
        let target = memory.slice(&args[*index]);
        for copies in &private {
            for (t, v) in target.iter_mut().zip(&copies[k]) {
                *t += v;
            }
        }
    }
}
