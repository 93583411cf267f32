//! The step program's verifier. A verified program never makes a backend index outside
//! its memory or read a buffer nothing wrote. Checklist, each error naming the
//! instruction:
//!
//! 1. every kernel a call names is in the program's kernel set;
//! 2. every argument lies inside its store, its offset a multiple of its element size;
//! 3. every byte a call, GEMM or copy reads of the arena or scratch was written earlier
//!    in the step (the step's inputs by its `input` instructions), as the same element
//!    type; parameters, AdamW's moments, the decoding cache and the host scalars are
//!    state the runtime sets;
//! 4. element types agree with what reads them: token ids are i32 where a kernel reads
//!    ids; a kernel's other arguments are of its signature (f32, or bf16 where the
//!    program stores bf16); a GEMM's operands are of one float type; AdamW reads f32;
//! 5. an argument a split call accumulates into (`sum`) is one the kernel updates, and
//!    nothing accumulates into bf16 (each add would round);
//! 6. GEMM operands hold their `m × k`, `k × n` and `m × n` elements; column copies
//!    stay inside both matrices' rows.
//!
//! That no two buffers live at once share bytes is the buffer plan's own check
//! (`hyb_compiler::plan::verify`), run on the plan the program was built from.

use std::collections::BTreeMap;

use hyb_compiler::graph::Elem;
use hyb_kernels::key::{Access, KernelKey};

use crate::print::{argument, store_name};
use crate::program::{Arg, HOST_LEN, Instr, Program, Share, Store};

/// Checks `program`; every error found, in instruction order.
pub fn verify(program: &Program) -> Result<(), Vec<String>> {
    let mut checker = Checker { program, errors: Vec::new(), arena: Written::default(), temp: Written::default() };
    for (index, instr) in program.instrs.iter().enumerate() {
        checker.instruction(index, instr);
    }
    if checker.errors.is_empty() { Ok(()) } else { Err(checker.errors) }
}

struct Checker<'p> {
    program: &'p Program,
    errors: Vec<String>,
    arena: Written,
    temp: Written,
}

impl Checker<'_> {
    fn instruction(&mut self, index: usize, instr: &Instr) {
        match instr {
            Instr::Call { kernel, args } => self.call(index, *kernel, args),
            Instr::Gemm { m, k, n, a, b, c } => {
                for (operand, needed) in [(&a.0, m * k), (&b.0, k * n), (c, m * n)] {
                    if operand.len() < needed {
                        self.error(index, format!("GEMM operand {} holds fewer than {needed}", argument(operand)));
                    }
                }
                if a.0.elem != b.0.elem || a.0.elem == Elem::I32 || c.elem == Elem::I32 {
                    let operands = format!("{} · {} → {}", a.0.elem, b.0.elem, c.elem);
                    self.error(index, format!("a GEMM of {operands}: operands of one float type"));
                }
                self.read(index, &a.0, Some(a.0.elem));
                self.read(index, &b.0, Some(b.0.elem));
                self.write(index, c, Some(c.elem));
            }
            Instr::Zero(arg) => self.write(index, arg, None),
            Instr::Fill(arg, values) => {
                if values.len() != 1 && values.len() != arg.len() {
                    self.error(index, format!("fills {} with {} values", argument(arg), values.len()));
                }
                self.write(index, arg, Some(Elem::F32));
            }
            Instr::Input(_, arg) => self.write(index, arg, Some(Elem::I32)),
            Instr::AdamW { kernel, param, grad } => {
                self.kernel_exists(index, *kernel);
                if *param >= self.program.params.len() {
                    self.error(index, format!("updates parameter {param}, which does not exist"));
                }
                self.read(index, grad, Some(Elem::F32));
            }
        }
    }

    fn call(&mut self, index: usize, kernel: usize, args: &[Arg]) {
        if !self.kernel_exists(index, kernel) {
            return;
        }
        let key = &self.program.kernels.keys[kernel];
        if let KernelKey::Columns { src_col, dst_col, width } = key {
            let fits =
                |arg: Option<&Arg>, col: usize| arg.is_some_and(|a| a.dims.len() == 2 && col + width <= a.dims[1]);
            if !fits(args.first(), *src_col) || !fits(args.get(1), *dst_col) {
                self.error(index, "a column copy outside its rows".into());
            }
        }
        let outputs = key.outputs(args.len());
        let signature = &self.program.kernels.signatures[kernel];
        for (position, arg) in args.iter().enumerate() {
            let elem = match signature.get(position) {
                Some(elem) => *elem,
                None if key.id_arguments().contains(&position) => Elem::I32,
                None => Elem::F32,
            };
            let access = outputs.iter().find(|(i, _)| *i == position).map(|(_, access)| *access);
            if access == Some(Access::Update) && arg.elem == Elem::Bf16 {
                self.error(index, format!("`{key}` accumulates into {}, stored as bf16", argument(arg)));
            }
            if arg.share == Share::Sum && access != Some(Access::Update) {
                self.error(
                    index,
                    format!("argument {position} is summed over the split but `{key}` does not update it"),
                );
            }
            if access != Some(Access::Write) {
                self.read(index, arg, Some(elem));
            } else {
                self.in_bounds(index, arg);
                if arg.elem != elem {
                    self.error(index, format!("writes {} where `{key}` writes {elem}", argument(arg)));
                }
            }
        }
        for (position, _) in outputs {
            if let Some(arg) = args.get(position) {
                self.write(index, arg, Some(arg.elem));
            } else {
                self.error(index, format!("`{key}` writes argument {position} of {}", args.len()));
            }
        }
    }

    fn kernel_exists(&mut self, index: usize, kernel: usize) -> bool {
        let exists = kernel < self.program.kernels.len();
        if !exists {
            self.error(index, format!("calls kernel k{kernel}, which the program does not have"));
        }
        exists
    }

    /// Bytes of `store`, or `None` for a store the program does not size.
    fn store_bytes(&self, store: Store) -> usize {
        let param = |i: usize| self.program.params.get(i).map_or(0, |p| 4 * p.shape.iter().product::<usize>());
        match store {
            Store::Arena => self.program.arena_bytes,
            Store::Temp => self.program.temp_bytes,
            Store::Cache => self.program.cache_bytes,
            Store::Host => HOST_LEN * 4,
            Store::Param(i) | Store::Moment1(i) | Store::Moment2(i) => param(i),
        }
    }

    fn in_bounds(&mut self, index: usize, arg: &Arg) -> bool {
        let size = self.store_bytes(arg.store);
        let aligned = arg.offset.is_multiple_of(arg.elem.bytes() as usize);
        if arg.end() > size || !aligned {
            let store = store_name(arg.store);
            self.error(index, format!("{} lies outside {store} ({size} bytes) or is misaligned", argument(arg)));
            return false;
        }
        true
    }

    /// Checks a read: in bounds, written before (arena, scratch), as `elem` if given.
    fn read(&mut self, index: usize, arg: &Arg, elem: Option<Elem>) {
        if !self.in_bounds(index, arg) {
            return;
        }
        if let Some(elem) = elem
            && arg.elem != elem
        {
            self.error(index, format!("reads {} where {elem} is read", argument(arg)));
        }
        let written = match arg.store {
            Store::Arena => &self.arena,
            Store::Temp => &self.temp,
            _ => return,
        };
        if let Err(problem) = written.check(arg.offset, arg.end(), arg.elem) {
            self.error(index, format!("reads {}, {problem}", argument(arg)));
        }
    }

    fn write(&mut self, index: usize, arg: &Arg, elem: Option<Elem>) {
        if !self.in_bounds(index, arg) {
            return;
        }
        if let Some(elem) = elem
            && arg.elem != elem
        {
            self.error(index, format!("writes {} where {elem} is written", argument(arg)));
        }
        match arg.store {
            Store::Arena => self.arena.insert(arg.offset, arg.end(), arg.elem),
            Store::Temp => self.temp.insert(arg.offset, arg.end(), arg.elem),
            _ => {}
        }
    }

    fn error(&mut self, index: usize, message: String) {
        self.errors.push(format!("i{index}: {message}"));
    }
}

/// The byte ranges of a store written so far, each with its element type.
#[derive(Default)]
struct Written {
    /// start → (end, elem); disjoint.
    ranges: BTreeMap<usize, (usize, Elem)>,
}

impl Written {
    fn insert(&mut self, start: usize, end: usize, elem: Elem) {
        let overlapping: Vec<(usize, (usize, Elem))> =
            self.ranges.range(..end).filter(|(s, (e, _))| *e > start && **s < end).map(|(s, v)| (*s, *v)).collect();
        for (s, (e, old)) in overlapping {
            self.ranges.remove(&s);
            if s < start {
                self.ranges.insert(s, (start, old));
            }
            if e > end {
                self.ranges.insert(end, (e, old));
            }
        }
        self.ranges.insert(start, (end, elem));
    }

    /// Whether `[start, end)` is wholly written as `elem`.
    fn check(&self, start: usize, end: usize, elem: Elem) -> Result<(), String> {
        let mut at = start;
        let first = self.ranges.range(..=start).next_back().map_or(start, |(s, _)| *s);
        for (s, (e, written)) in self.ranges.range(first..end) {
            if *e <= at {
                continue;
            }
            if *s > at {
                break;
            }
            if *written != elem {
                return Err(format!("bytes {at}.. were written as {written}"));
            }
            at = *e;
            if at >= end {
                return Ok(());
            }
        }
        if at >= end { Ok(()) } else { Err(format!("bytes {at}.. are not written before")) }
    }
}
