//! Running a [`Program`] on a [`Device`]: one device buffer per store, and each
//! instruction as a launch, a GEMM, a zeroing or a copy — nothing of the step runs on
//! the host.
//!
//! The host's part of a program lives in one staging buffer: every `Fill`'s constants,
//! written once when the stores are made, and the step's token ids and targets, written
//! before a range runs. `Fill` and `Input` are then copies from staging into their
//! (reused) arena slots, in program order, so a range of instructions issues device work
//! alone and a device that records work ([`Device::begin_recording`], a CUDA graph) can
//! replay a whole step ([`Recordings`]).

use hyb_lower::program::{ADAM, Arg, HOST_LEN, Input, Instr, Program, Store, iteration_space};

use crate::device::{BufferId, Device, DeviceError, Gemm, View, f32_bytes, i32_bytes};

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

/// The device buffer of every store of a program.
pub struct Stores {
    staging: Staging,
    arena: BufferId,
    temp: BufferId,
    host: BufferId,
    cache: BufferId,
    params: Vec<BufferId>,
    moment1: Vec<BufferId>,
    moment2: Vec<BufferId>,
}

impl Stores {
    /// Zeroed buffers for `program`; AdamW's moments only if it has an optimizer step (a
    /// decoding program does not: generation from a large model needs its weights alone).
    pub fn new(program: &Program, device: &mut dyn Device) -> Result<Stores, DeviceError> {
        let optimizer = program.trains();
        let mut per_param = |with: bool| -> Result<Vec<BufferId>, DeviceError> {
            program
                .params
                .iter()
                .map(|p| device.alloc(if with { 4 * p.shape.iter().product::<usize>() } else { 0 }))
                .collect()
        };
        let (params, moment1, moment2) = (per_param(true)?, per_param(optimizer)?, per_param(optimizer)?);
        Ok(Stores {
            staging: Staging::new(program, device)?,
            arena: device.alloc(program.arena_bytes)?,
            temp: device.alloc(program.temp_bytes)?,
            host: device.alloc(HOST_LEN * 4)?,
            cache: device.alloc(program.cache_bytes)?,
            params,
            moment1,
            moment2,
        })
    }

    /// The bytes [`Stores::new`] allocates for `program`.
    pub fn bytes(program: &Program) -> usize {
        program.store_bytes() + Staging::layout(program).bytes
    }

    pub fn buffer(&self, store: Store) -> BufferId {
        match store {
            Store::Arena => self.arena,
            Store::Temp => self.temp,
            Store::Host => self.host,
            Store::Cache => self.cache,
            Store::Param(i) => self.params[i],
            Store::Moment1(i) => self.moment1[i],
            Store::Moment2(i) => self.moment2[i],
        }
    }

    /// Where an argument lives on the device.
    pub fn view(&self, arg: &Arg) -> View {
        View {
            buffer: self.buffer(arg.store),
            offset: arg.offset,
            elem: arg.elem,
            dims: arg.dims.clone(),
            flat: arg.flat,
            share: arg.share,
        }
    }
}

/// The staging buffer: each `Fill`'s values (expanded to its length) and the step's
/// token ids and targets, each at its own byte offset.
struct Staging {
    /// Per instruction of the program, where its `Fill` or `Input` copies from.
    sources: Vec<Option<View>>,
    tokens: Option<View>,
    targets: Option<View>,
}

struct Layout {
    bytes: usize,
    /// Per instruction: the byte offset and length in elements of its source.
    sources: Vec<Option<(usize, usize)>>,
}

impl Staging {
    fn layout(program: &Program) -> Layout {
        let mut bytes = 0;
        // The next `len` 4-byte elements: (offset, len).
        let mut place = |len: usize| {
            bytes += 4 * len;
            (bytes - 4 * len, len)
        };
        let mut inputs = [None, None];
        let sources = program
            .instrs
            .iter()
            .map(|instr| match instr {
                Instr::Fill(arg, _) => Some(place(arg.len())),
                // Every `Input` of one kind reads the same ids: one source per kind.
                Instr::Input(which, arg) => Some(*inputs[*which as usize].get_or_insert_with(|| place(arg.len()))),
                _ => None,
            })
            .collect();
        Layout { bytes, sources }
    }

    /// The staging buffer of `program`, its constants written.
    fn new(program: &Program, device: &mut dyn Device) -> Result<Staging, DeviceError> {
        let layout = Staging::layout(program);
        let buffer = device.alloc(layout.bytes)?;
        let view = |(offset, len), elem| View { elem, ..View::floats(buffer, offset, len) };
        let mut staging = Staging { sources: Vec::new(), tokens: None, targets: None };
        for (instr, source) in program.instrs.iter().zip(&layout.sources) {
            let source = source.map(|at| match instr {
                Instr::Fill(arg, values) => {
                    let source = view(at, hyb_target::Elem::F32);
                    let values = if values.len() == 1 { vec![values[0]; arg.len()] } else { values.clone() };
                    device.write(&source, f32_bytes(&values));
                    source
                }
                Instr::Input(which, _) => {
                    let source = view(at, hyb_target::Elem::I32);
                    match which {
                        Input::Tokens => staging.tokens = Some(source.clone()),
                        Input::Targets => staging.targets = Some(source.clone()),
                    }
                    source
                }
                _ => unreachable!("only fills and inputs have sources"),
            });
            staging.sources.push(source);
        }
        Ok(staging)
    }

    /// Writes the step's token ids and targets where the program's inputs copy them from.
    fn stage(&self, device: &mut dyn Device, batch: &Batch) {
        for (view, ids) in [(&self.tokens, batch.tokens), (&self.targets, batch.targets)] {
            if let Some(view) = view {
                assert_eq!(ids.len(), view.len(), "a step's inputs are batch × seq_len");
                device.write(view, i32_bytes(ids));
            }
        }
    }
}

/// Time spent per kernel (or instruction kind), when profiling. An instruction's first
/// run is kept apart: it pays one-time costs (the driver loading a module's code on
/// first launch, a GEMM library choosing and loading its kernel for a shape) that on a
/// GPU can outweigh a short profile's every later call of that kernel together.
#[derive(Default, Debug)]
pub struct Profile {
    /// Seconds and calls per label, first runs left out.
    pub seconds: std::collections::BTreeMap<String, (f64, usize)>,
    /// Seconds and calls per label of each instruction's first run.
    pub first: std::collections::BTreeMap<String, (f64, usize)>,
    /// The instructions run so far, by index.
    ran: std::collections::HashSet<usize>,
}

impl Profile {
    fn add(&mut self, instr: usize, label: String, seconds: f64) {
        let map = if self.ran.insert(instr) { &mut self.first } else { &mut self.seconds };
        let entry = map.entry(label).or_default();
        entry.0 += seconds;
        entry.1 += 1;
    }

    /// One line per label, the most expensive first, with its share of the total: the
    /// calls after each instruction's first (all of them when none ran twice), then the
    /// first runs' total.
    pub fn table(&self) -> String {
        let again = !self.seconds.is_empty();
        let mut out = rows(if again { &self.seconds } else { &self.first });
        if again {
            let first: f64 = self.first.values().map(|(s, _)| s).sum();
            let calls: usize = self.first.values().map(|(_, n)| n).sum();
            out.push_str(&format!(
                "{:>8.2} ms in the first run of each of {calls} instructions, left out above \
                 (one-time costs: loading code, choosing GEMM kernels)\n",
                first * 1e3
            ));
        }
        out
    }
}

/// `table`'s lines for one map.
fn rows(seconds: &std::collections::BTreeMap<String, (f64, usize)>) -> String {
    let total: f64 = seconds.values().map(|(s, _)| s).sum();
    let mut rows: Vec<_> = seconds.iter().collect();
    rows.sort_by(|a, b| b.1.0.total_cmp(&a.1.0));
    rows.iter()
        .map(|(label, (seconds, count))| {
            format!("{:>8.2} ms {:>5.1}% {count:>6}× {label}\n", seconds * 1e3, 100.0 * seconds / total)
        })
        .collect()
}

fn label(program: &Program, instr: &Instr) -> String {
    match instr {
        Instr::Call { kernel, .. } | Instr::AdamW { kernel, .. } => program.kernels.name(*kernel),
        Instr::Gemm { m, k, n, a, b, c } => gemm_label(*m, *k, *n, a, b, c),
        Instr::Zero(_) => "zero".into(),
        Instr::Fill(..) | Instr::Input(..) => "copy from host".into(),
    }
}

/// A GEMM's profile label: `gemm M×K×N`, each operand row-major (`n`) or transposed
/// (`t`), and the alignment its offsets share (cuBLASLt's kernels depend on all three).
fn gemm_label(m: usize, k: usize, n: usize, a: &(Arg, [isize; 2]), b: &(Arg, [isize; 2]), c: &Arg) -> String {
    let layout = |strides: &[isize; 2]| if strides[1] == 1 { 'n' } else { 't' };
    let offsets = [a.0.offset, b.0.offset, c.offset];
    let align = offsets.iter().map(|offset| crate::device::alignment(*offset as u64)).min().unwrap_or(256);
    format!("gemm {m}×{k}×{n} {}{} {align} B", layout(&a.1), layout(&b.1))
}

/// Runs instructions `range` of the program (timing each into `profile` if given).
pub fn run(
    program: &Program,
    device: &mut dyn Device,
    stores: &Stores,
    range: std::ops::Range<usize>,
    batch: &Batch,
    mut profile: Option<&mut Profile>,
) {
    stage(program, device, stores, range.clone(), batch);
    for index in range {
        let started = profile.is_some().then(std::time::Instant::now);
        execute(program, index, device, stores);
        if let (Some(profile), Some(started)) = (profile.as_deref_mut(), started) {
            device.synchronize();
            profile.add(index, label(program, &program.instrs[index]), started.elapsed().as_secs_f64());
        }
    }
}

/// Runs instructions `range`: one by one, timed into `profile`, when profiling; else
/// as one recording ([`replay`]).
pub fn run_or_replay(
    program: &Program,
    device: &mut dyn Device,
    stores: &Stores,
    range: std::ops::Range<usize>,
    batch: &Batch,
    profile: Option<&mut Profile>,
    recordings: &mut Recordings,
) {
    match profile {
        Some(profile) => run(program, device, stores, range, batch, Some(profile)),
        None => replay(program, device, stores, range, batch, recordings),
    }
}

/// Writes the batch to staging if instructions `range` read it.
fn stage(program: &Program, device: &mut dyn Device, stores: &Stores, range: std::ops::Range<usize>, batch: &Batch) {
    if program.instrs[range].iter().any(|instr| matches!(instr, Instr::Input(..))) {
        stores.staging.stage(device, batch);
    }
}

/// The ranges of a program a device has recorded, each replayed as one unit of work.
#[derive(Default)]
pub struct Recordings {
    recorded: std::collections::HashMap<std::ops::Range<usize>, usize>,
}

impl Recordings {
    /// How many ranges are recorded.
    pub fn len(&self) -> usize {
        self.recorded.len()
    }

    pub fn is_empty(&self) -> bool {
        self.recorded.is_empty()
    }
}

/// Runs instructions `range` as one recording of the device's (recorded on first use,
/// replayed after: the same work as [`run`], issued at once); runs them one by one
/// where the device does not record.
pub fn replay(
    program: &Program,
    device: &mut dyn Device,
    stores: &Stores,
    range: std::ops::Range<usize>,
    batch: &Batch,
    recordings: &mut Recordings,
) {
    stage(program, device, stores, range.clone(), batch);
    let recording = match recordings.recorded.get(&range) {
        Some(recording) => *recording,
        None => {
            let recording = device.begin_recording();
            range.clone().for_each(|index| execute(program, index, device, stores));
            if !recording {
                return;
            }
            let recording = device.end_recording();
            recordings.recorded.insert(range, recording);
            recording
        }
    };
    device.replay(recording);
}

fn execute(program: &Program, index: usize, device: &mut dyn Device, stores: &Stores) {
    let instr = &program.instrs[index];
    match instr {
        Instr::Call { kernel, args } => {
            let views: Vec<View> = args.iter().map(|a| stores.view(a)).collect();
            device.launch(*kernel, iteration_space(instr), &views);
        }
        Instr::Gemm { m, k, n, a, b, c } => device.gemm(&Gemm {
            m: *m,
            k: *k,
            n: *n,
            a: (stores.view(&a.0), a.1),
            b: (stores.view(&b.0), b.1),
            c: stores.view(c),
        }),
        Instr::Zero(arg) => device.zero(&stores.view(arg)),
        Instr::Fill(arg, _) | Instr::Input(_, arg) => {
            let source = stores.staging.sources[index].as_ref().expect("fills and inputs are staged");
            device.copy(source, &stores.view(arg));
        }
        Instr::AdamW { kernel, param, grad } => {
            let views = adamw_views(*param, grad, stores);
            device.launch(*kernel, views[1].dims[0], &views);
        }
    }
}

/// AdamW's arguments: the parameter, its gradient and moments split in rows alike (the
/// update is elementwise; the gradient's rows as the program gives them), and the host
/// scalars.
fn adamw_views(param: usize, grad: &Arg, stores: &Stores) -> [View; 5] {
    let rows = |store| stores.view(&Arg { store, offset: 0, ..grad.clone() });
    [
        rows(Store::Param(param)),
        stores.view(grad),
        rows(Store::Moment1(param)),
        rows(Store::Moment2(param)),
        stores.view(&Arg::host(ADAM, 8)),
    ]
}

/// What an instruction may have written, as views: a kernel's every argument (its
/// inputs included: cheap, and a kernel that writes an input shows), a GEMM's product,
/// AdamW's parameter and moments. Copies from the host and zeroings are not checked.
pub fn written(instr: &Instr, stores: &Stores) -> Vec<View> {
    match instr {
        Instr::Call { args, .. } => args.iter().map(|a| stores.view(a)).collect(),
        Instr::Gemm { c, .. } => vec![stores.view(c)],
        Instr::AdamW { param, grad, .. } => adamw_views(*param, grad, stores).into_iter().take(4).collect(),
        Instr::Zero(_) | Instr::Fill(..) | Instr::Input(..) => Vec::new(),
    }
}

/// The label of instruction `index` in profiles and reports (a kernel's name).
pub fn instr_label(program: &Program, index: usize) -> String {
    label(program, &program.instrs[index])
}

/// Runs instruction `index` of the program.
pub fn run_one(program: &Program, device: &mut dyn Device, stores: &Stores, index: usize, batch: &Batch) {
    stage(program, device, stores, index..index + 1, batch);
    execute(program, index, device, stores);
}

#[cfg(test)]
mod tests {
    use super::Profile;

    #[test]
    fn a_profile_keeps_each_instructions_first_run_apart() {
        let mut profile = Profile::default();
        profile.add(0, "gemm".into(), 0.100); // its first run: a one-time cost
        profile.add(1, "scan".into(), 0.004);
        profile.add(0, "gemm".into(), 0.001);
        profile.add(1, "scan".into(), 0.003);
        profile.add(0, "gemm".into(), 0.001);
        let table = profile.table();
        let lines: Vec<&str> = table.lines().collect();
        assert_eq!(lines.len(), 3, "{table}");
        assert!(lines[0].contains("3.00 ms  60.0%      1× scan"), "{table}");
        assert!(lines[1].contains("2.00 ms  40.0%      2× gemm"), "{table}");
        assert!(lines[2].contains("104.00 ms in the first run of each of 2 instructions"), "{table}");
    }

    #[test]
    fn a_profile_of_one_run_shows_that_run() {
        let mut profile = Profile::default();
        profile.add(0, "gemm".into(), 0.010);
        profile.add(1, "gemm".into(), 0.030);
        assert_eq!(profile.table().trim(), "40.00 ms 100.0%      2× gemm");
    }
}
