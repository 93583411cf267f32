//! Running a [`Program`] on a [`Device`]: one device buffer per store, and each
//! instruction as a launch, a GEMM, a zeroing or a copy from the host — nothing of the
//! step runs on the host.

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
        let optimizer = program.update_start < program.instrs.len();
        let mut per_param = |with: bool| -> Result<Vec<BufferId>, DeviceError> {
            program
                .params
                .iter()
                .map(|p| device.alloc(if with { 4 * p.shape.iter().product::<usize>() } else { 0 }))
                .collect()
        };
        let (params, moment1, moment2) = (per_param(true)?, per_param(optimizer)?, per_param(optimizer)?);
        Ok(Stores {
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
        let optimizer = program.update_start < program.instrs.len();
        let params: usize = program.params.iter().map(|p| 4 * p.shape.iter().product::<usize>()).sum();
        let moments = if optimizer { 2 * params } else { 0 };
        program.arena_bytes + program.temp_bytes + HOST_LEN * 4 + program.cache_bytes + params + moments
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
        Instr::Call { kernel, .. } | Instr::AdamW { kernel, .. } => program.kernels.name(*kernel),
        Instr::Gemm { .. } => "gemm".into(),
        Instr::Zero(_) => "zero".into(),
        Instr::Fill(..) | Instr::Input(..) => "copy from host".into(),
    }
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
    for instr in &program.instrs[range] {
        let started = profile.is_some().then(std::time::Instant::now);
        execute(instr, device, stores, batch);
        if let (Some(profile), Some(started)) = (profile.as_deref_mut(), started) {
            device.synchronize();
            profile.add(label(program, instr), started.elapsed().as_secs_f64());
        }
    }
}

fn execute(instr: &Instr, device: &mut dyn Device, stores: &Stores, batch: &Batch) {
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
        Instr::Fill(arg, values) => {
            let values = if values.len() == 1 { vec![values[0]; arg.len()] } else { values.clone() };
            device.write(&stores.view(arg), f32_bytes(&values));
        }
        Instr::Input(which, arg) => {
            let ids = match which {
                Input::Tokens => batch.tokens,
                Input::Targets => batch.targets,
            };
            assert_eq!(ids.len(), arg.len(), "a step's inputs are batch × seq_len");
            device.write(&stores.view(arg), i32_bytes(ids));
        }
        Instr::AdamW { kernel, param, grad } => {
            let views = adamw_views(*param, grad, stores);
            device.launch(*kernel, views[1].dims[0], &views);
        }
    }
}

/// AdamW's arguments: the parameter, its gradient and moments split in rows alike (the
/// update is elementwise), and the host scalars.
fn adamw_views(param: usize, grad: &Arg, stores: &Stores) -> [View; 5] {
    let grad = grad.in_rows();
    let rows = |store| stores.view(&Arg { store, offset: 0, ..grad.clone() });
    [
        rows(Store::Param(param)),
        stores.view(&grad),
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
    execute(&program.instrs[index], device, stores, batch);
}
