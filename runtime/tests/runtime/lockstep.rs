//! Lockstep comparison of two devices (`hyb_runtime::lockstep`): the CPU against itself
//! agrees exactly; a device that corrupts one kernel's output is caught at exactly that
//! kernel's calls, every later instruction checked on the reference's inputs. Also
//! through a wrapped device: a device too small for a program refuses it before
//! allocating anything.

use hyb_driver::{Build, Module, Shape, Target};
use hyb_lower::program::Instr;
use hyb_runtime::cpu::Cpu;
use hyb_runtime::device::{BufferId, Device, DeviceError, Gemm, View, f32_bytes};
use hyb_runtime::{Batch, Trainer};

use crate::{PRESETS, random_params, random_tokens, tiny};

/// The CPU with faults for the tests: after every launch of kernel `broken` its last
/// argument is overwritten; with `free`, it reports that many bytes free (of twice as
/// many); every allocation's bytes are counted in `allocated`.
struct Faulty {
    inner: Cpu,
    broken: Option<usize>,
    free: Option<usize>,
    allocated: std::rc::Rc<std::cell::Cell<usize>>,
}

impl Faulty {
    fn new(broken: Option<usize>, free: Option<usize>) -> Faulty {
        Faulty { inner: Cpu::new(), broken, free, allocated: Default::default() }
    }
}

impl Device for Faulty {
    fn describe(&self) -> String {
        "a faulty cpu".into()
    }
    fn memory(&self) -> Option<(usize, usize)> {
        self.free.map(|free| (free, 2 * free))
    }
    fn alloc(&mut self, bytes: usize) -> Result<BufferId, DeviceError> {
        self.allocated.set(self.allocated.get() + bytes);
        self.inner.alloc(bytes)
    }
    fn write(&mut self, to: &View, bytes: &[u8]) {
        self.inner.write(to, bytes)
    }
    fn read(&self, from: &View, into: &mut [u8]) {
        self.inner.read(from, into)
    }
    fn zero(&mut self, view: &View) {
        self.inner.zero(view)
    }
    fn load(&mut self, modules: &[Module]) -> Result<(), DeviceError> {
        self.inner.load(modules)
    }
    fn launch(&mut self, kernel: usize, space: usize, args: &[View]) {
        self.inner.launch(kernel, space, args);
        if Some(kernel) == self.broken {
            let last = args.last().expect("arguments");
            self.inner.write(last, f32_bytes(&vec![1e3; last.len()]));
        }
    }
    fn gemm(&mut self, gemm: &Gemm) {
        self.inner.gemm(gemm)
    }
    fn synchronize(&mut self) {}
}

fn build(model: &hyb_compiler::ir::Model) -> Build {
    hyb_driver::compile(model, Target::Cpu, Shape::Train { batch: 2, seq_len: 9 }).expect("compiles")
}

fn reference(model: &hyb_compiler::ir::Model) -> Trainer {
    let mut trainer = Trainer::from_build(model, build(model)).expect("builds");
    for (name, values) in random_params(model, 5) {
        trainer.set_param(&name, &values.iter().map(|v| *v as f32).collect::<Vec<_>>()).expect("known");
    }
    trainer
}

#[test]
fn the_cpu_in_lockstep_with_itself_agrees_exactly() {
    let model = tiny(PRESETS, "(gdn, attn)");
    let mut want = reference(&model);
    let mut got = Trainer::from_build(&model, build(&model)).expect("builds");
    let tokens = random_tokens(model.config.vocab, 18, 2);
    let targets = Batch::next_token_targets(&tokens, 9);
    let divergences = got.lockstep(&mut want, &Batch { tokens: &tokens, targets: &targets }, 0.0).expect("alike");
    assert!(divergences.is_empty(), "{divergences:?}");
}

#[test]
fn a_faulty_kernel_is_caught_at_exactly_its_calls() {
    let model = tiny(PRESETS, "(gdn, attn)");
    let built = build(&model);
    let calls_of = |broken: usize| -> Vec<usize> {
        (0..built.program.optimizer_start)
            .filter(|i| matches!(&built.program.instrs[*i], Instr::Call { kernel, .. } if *kernel == broken))
            .collect()
    };
    // The kernel called most often: a fault must be caught at each call, not once.
    let broken = (0..built.program.kernels.keys.len()).max_by_key(|k| calls_of(*k).len()).expect("kernels");
    let calls = calls_of(broken);
    assert!(calls.len() >= 2, "{} is called {} times", built.program.kernels.name(broken), calls.len());
    let device = Box::new(Faulty::new(Some(broken), None));
    let mut got = Trainer::on_device(&model, built, device).expect("builds");
    let mut want = reference(&model);
    let tokens = random_tokens(model.config.vocab, 18, 2);
    let targets = Batch::next_token_targets(&tokens, 9);
    let divergences = got.lockstep(&mut want, &Batch { tokens: &tokens, targets: &targets }, 1e-6).expect("alike");
    let mut at: Vec<usize> = divergences.iter().map(|d| d.instr).collect();
    at.dedup();
    assert_eq!(at, calls, "{}", divergences.iter().map(|d| format!("{d}\n")).collect::<String>());
}

/// A program larger than the device's free memory is refused before anything is
/// allocated, naming the program, what it needs and what is free; one that fits runs.
#[test]
fn a_program_that_does_not_fit_is_refused_before_allocating() {
    let model = tiny(PRESETS, "(gdn, attn)");
    let small = Faulty::new(None, Some(1 << 20));
    let allocated = small.allocated.clone();
    let big = hyb_driver::compile(&model, Target::Cpu, Shape::Train { batch: 8, seq_len: 256 }).expect("compiles");
    let error = Trainer::on_device(&model, big, Box::new(small)).err().expect("refused").to_string();
    assert!(error.starts_with("the training step at 8 × 256 needs "), "{error}");
    assert!(error.contains("GiB on a faulty cpu; 0.00 GiB of its 0.00 GiB are free"), "{error}");
    assert_eq!(allocated.get(), 0, "nothing allocated before the refusal");
    let small = Faulty::new(None, Some(1 << 20));
    let allocated = small.allocated.clone();
    let fits = hyb_driver::compile(&model, Target::Cpu, Shape::Train { batch: 1, seq_len: 2 }).expect("compiles");
    let needed = fits.program.arena_bytes;
    assert!(needed < 1 << 20, "the small program's arena is {needed} bytes");
    Trainer::on_device(&model, fits, Box::new(small)).expect("fits");
    assert!(allocated.get() > 0 && allocated.get() < 1 << 20, "allocated {}", allocated.get());
}
