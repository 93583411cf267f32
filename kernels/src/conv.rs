//! The short causal depthwise convolution: `y[t, c] = Σ_j w[c, j] · x[t − (W − 1) + j, c]`
//! (+ bias), zero history, the last tap on the current token (fla's `ShortConvolution`),
//! and its backward (`dx`, and `dw`, `db` accumulated over batch and time).
//! Shapes: x, y `[B, T, C]`; w `[C, 1, W]`; bias `[C]`.
//!
//! Channels are independent, and so are positions once the backward gathers `dx`
//! (`dx[s] = Σ_j w[j] · dy[s + W − 1 − j]`): under [`crate::emit::Parallel::Threads`]
//! each lane walks one channel over one chunk of [`TIME_CHUNK`] tokens
//! (`KernelKey::lanes`, [`time_chunks`] chunks a sequence; neighbouring lanes
//! neighbouring channels), summing each output in a register and adding its share of
//! `dw`, `db` atomically. The CPU ([`Parallel::Parts`]) walks each position's taps with
//! the channels innermost, so that loop runs over contiguous memory and vectorises: the
//! filter is first copied into a `[W, C]` stack buffer, and `dw` summed there before its
//! one add.

use crate::emit::{Builder, Cmp, Config, Parallel, Value};

/// Tokens a GPU lane walks in the training forward and backward: short, so that a
/// batch of `B` sequences of `T` tokens and `C` channels is `B · C · T / 16` lanes
/// rather than `B · C` lanes each walking all `T` (a few thousand threads on a GPU of
/// 132 multiprocessors; one chunk a sequence was 1.19× slower for GatedDeltaNet's 3:1
/// step on an H100, `runtime/benches/README.md`).
pub const TIME_CHUNK: usize = 16;

/// The chunks a sequence of `time` tokens is walked in by a GPU's lanes ([`TIME_CHUNK`]).
pub fn time_chunks(time: usize) -> usize {
    time.div_ceil(TIME_CHUNK).max(1)
}

/// The sizes every convolution kernel reads first: batch, time, channels, the filter
/// width W, and `W − 1`.
struct Sizes {
    batch: Value,
    time: Value,
    width: Value,
    width1: Value,
    /// The channels this call (or lane) walks.
    lanes: (Value, Value),
    /// The positions this call (or lane) walks: all of them, or a lane's chunk.
    times: (Value, Value),
}

/// The sizes; with `chunked`, a GPU lane's positions are one chunk of [`TIME_CHUNK`]
/// tokens (the lanes `chunk · C + c`), else every position.
fn header(e: &mut Builder, name: &str, args: &[(&str, usize)], chunked: bool) -> Sizes {
    e.begin_function(name, args);
    // `%c2` at the top, for the dims along axis 2 and any later use.
    e.constant_index(2);
    let (x, w) = (e.arg("x"), e.arg("w"));
    let batch = e.named("B").dim(&x, 0);
    let time = e.named("T").dim(&x, 1);
    let channels = e.named("C").dim(&x, 2);
    let width = e.named("W").dim(&w, 2);
    let c1 = e.c1();
    let width1 = e.named("W1").sub(&width, &c1);
    if !(chunked && e.config().parallel.has_lanes()) {
        let lanes = e.lane_range(&channels, true);
        let times = (e.c0(), time.clone());
        return Sizes { batch, time, width, width1, lanes, times };
    }
    let chunk = e.named("chunk").constant_index(TIME_CHUNK as u64);
    let below = e.sub(&chunk, &c1);
    let padded = e.add(&time, &below);
    let chunks = e.named("chunks").divui(&padded, &chunk);
    let grid = e.lane_grid(&chunks, &channels, true);
    let first = e.named("t_first").mul(&grid.outer.0, &chunk);
    let after = e.mul(&grid.outer.1, &chunk);
    let last = e.named("t_end").min(&after, &time);
    Sizes { batch, time, width, width1, lanes: grid.inner, times: (first, last) }
}

/// `body(b, t, c)` for every position and channel this call (or lane) walks.
fn for_positions(e: &mut Builder, sizes: &Sizes, body: impl FnOnce(&mut Builder, Value, Value, Value)) {
    let c0 = e.c0();
    e.for_(&c0, &sizes.batch, |e, b| {
        e.for_(&sizes.times.0, &sizes.times.1, |e, t| {
            e.for_(&sizes.lanes.0, &sizes.lanes.1, |e, c| body(e, b, t, c));
        });
    });
}

/// `body(j, source)` for each tap `j` of the filter at output position `t` that reads
/// inside the sequence, `source = t + j − (W − 1)` its input position.
fn for_valid_taps(e: &mut Builder, sizes: &Sizes, t: &Value, body: impl FnOnce(&mut Builder, Value, Value)) {
    let c0 = e.c0();
    e.for_(&c0, &sizes.width, |e, j| {
        let sum = e.add(t, &j);
        let valid = e.cmp(Cmp::Ge, &sum, &sizes.width1);
        e.if_(&valid, |e| {
            let source = e.sub(&sum, &sizes.width1);
            body(e, j, source);
        });
    });
}

/// Whether the CPU's channel-innermost form applies: parts of the CPU, f32 storage.
fn by_rows(e: &Builder, stored: &Value) -> bool {
    e.config().parallel == Parallel::Parts && stored.memref().0 == e.compute()
}

/// A `[W, C]` stack buffer of the compute type named `name`: the filter transposed
/// (`w[c, 0, j]` at `[j, c]`) when `fill`, else zeros (a sum of `dw`'s shape).
fn taps_by_channel(e: &mut Builder, sizes: &Sizes, name: &str, fill: bool) -> Value {
    let channels = &sizes.lanes.1;
    let compute = e.compute();
    let taps = e.named(name).alloca(compute, &[&sizes.width, channels]);
    let (w, c0) = (e.arg("w"), e.c0());
    e.for_(&c0, &sizes.width, |e, j| {
        e.for_(&c0, channels, |e, c| {
            let value = if fill { e.load(&w, &[&c, &c0, &j]) } else { e.zero() };
            e.store(&value, &taps, &[&j, &c]);
        });
    });
    taps
}

/// Code emitted at one `(b, t, c)`.
type AtChannel<'a> = &'a mut dyn FnMut(&mut Builder, &Value, &Value, &Value);

/// At every position `(b, t)`: `start(b, t, c)` for every channel when given, then for
/// each tap reading inside the sequence `tap(b, t, j, source, c)` for every channel —
/// the channel loop innermost.
fn for_taps_by_channel(
    e: &mut Builder,
    sizes: &Sizes,
    mut start: Option<AtChannel>,
    mut tap: impl FnMut(&mut Builder, [&Value; 5]),
) {
    let c0 = e.c0();
    e.for_(&c0, &sizes.batch, |e, b| {
        e.for_(&c0, &sizes.time, |e, t| {
            if let Some(start) = start.as_mut() {
                e.for_(&sizes.lanes.0, &sizes.lanes.1, |e, c| start(e, &b, &t, &c));
            }
            for_valid_taps(e, sizes, &t, |e, j, source| {
                e.for_(&sizes.lanes.0, &sizes.lanes.1, |e, c| tap(e, [&b, &t, &j, &source, &c]));
            });
        });
    });
}

/// Args: x, w, [bias], y.
pub fn forward(bias: bool, name: &str) -> String {
    forward_with(bias, name, &Config::CPU)
}

/// [`forward`] under any [`Config`].
pub fn forward_with(bias: bool, name: &str, config: &Config) -> String {
    let mut e = Builder::new(*config);
    let mut args = vec![("x", 3), ("w", 3)];
    if bias {
        args.push(("bias", 1));
    }
    args.push(("y", 3));
    let sizes = header(&mut e, name, &args, true);
    let y = e.arg("y");
    let bias = bias.then(|| e.arg("bias"));
    if by_rows(&e, &y) {
        forward_by_rows(&mut e, &sizes, bias.as_ref(), &y);
        return e.finish();
    }
    // Each output summed in a register, stored once.
    for_positions(&mut e, &sizes, |e, b, t, c| {
        let start = match &bias {
            Some(bias) => e.load(bias, &[&c]),
            None => e.zero(),
        };
        let taps = tap_sum(e, &sizes, [&b, &t, &c]);
        let total = e.add(&start, &taps);
        e.store(&total, &y, &[&b, &t, &c]);
    });
    e.finish()
}

/// The forward with the channels innermost (the CPU's): `y` set to the bias, then each
/// tap's `x · w` added over all channels at once.
fn forward_by_rows(e: &mut Builder, sizes: &Sizes, bias: Option<&Value>, y: &Value) {
    let taps = taps_by_channel(e, sizes, "taps", true);
    let x = e.arg("x");
    for_taps_by_channel(
        e,
        sizes,
        Some(&mut |e, b, t, c| {
            let start = match bias {
                Some(bias) => e.load(bias, &[c]),
                None => e.zero(),
            };
            e.store(&start, y, &[b, t, c]);
        }),
        |e, [b, t, j, source, c]| {
            let x = e.load(&x, &[b, source, c]);
            let w = e.load(&taps, &[j, c]);
            let xw = e.mul(&x, &w);
            e.accumulate(y, &[b, t, c], &xw);
        },
    );
}

/// `Σ_taps x · w` at `(b, t, c)` in a register: a tap before the sequence reads position
/// 0 and adds nothing.
fn tap_sum(e: &mut Builder, sizes: &Sizes, [b, t, c]: [&Value; 3]) -> Value {
    let (x, w, c0) = (e.arg("x"), e.arg("w"), e.c0());
    e.sum_over(&c0, &sizes.width, |e, j| {
        let sum = e.add(t, j);
        let valid = e.cmp(Cmp::Ge, &sum, &sizes.width1);
        let shifted = e.sub(&sum, &sizes.width1);
        let source = e.select(&valid, &shifted, &c0);
        let (x, w) = (e.load(&x, &[b, &source, c]), e.load(&w, &[c, &c0, j]));
        let product = e.mul(&x, &w);
        let zero = e.zero();
        e.select(&valid, &product, &zero)
    })
}

/// Args: x, w, dy, dx, dw, [dbias]. `dx` is overwritten; `dw`, `dbias` accumulate.
pub fn backward(bias: bool, name: &str) -> String {
    backward_with(bias, name, &Config::CPU)
}

/// [`backward`] under any [`Config`].
pub fn backward_with(bias: bool, name: &str, config: &Config) -> String {
    let mut e = Builder::new(*config);
    let mut args = vec![("x", 3), ("w", 3), ("dy", 3), ("dx", 3), ("dw", 3)];
    if bias {
        args.push(("dbias", 1));
    }
    let sizes = header(&mut e, name, &args, true);
    let (dy, dx, dw) = (e.arg("dy"), e.arg("dx"), e.arg("dw"));
    let dbias = bias.then(|| e.arg("dbias"));
    if by_rows(&e, &dx) {
        backward_by_rows(&mut e, &sizes, dbias.as_ref());
        return e.finish();
    }
    let c0 = e.c0();
    e.for_(&c0, &sizes.batch, |e, b| {
        // dx gathered: each position's taps summed in a register, stored once.
        e.for_(&sizes.times.0, &sizes.times.1, |e, s| {
            e.for_(&sizes.lanes.0, &sizes.lanes.1, |e, c| {
                let total = gathered_dx(e, &sizes, [&b, &s, &c]);
                e.store(&total, &dx, &[&b, &s, &c]);
            });
        });
        // The filter's and bias's gradients from these positions: summed in a register,
        // then added once (a GPU's lanes add atomically, and an atomic add per token and
        // tap made the backward 0.8 ms at B=64, T=256 on the H200).
        e.for_(&sizes.lanes.0, &sizes.lanes.1, |e, c| {
            if let Some(dbias) = &dbias {
                let total = e.sum_over(&sizes.times.0, &sizes.times.1, |e, t| e.load(&dy, &[&b, t, &c]));
                e.accumulate_shared(dbias, &[&c], &total);
            }
            let x = e.arg("x");
            e.for_(&c0, &sizes.width, |e, j| {
                // Tap j of output t reads input t − (W − 1 − j): outputs from W − 1 − j on.
                let lag = e.sub(&sizes.width1, &j);
                let from = e.max(&lag, &sizes.times.0);
                let total = e.sum_over(&from, &sizes.times.1, |e, t| {
                    let source = e.sub(t, &lag);
                    let dy = e.load(&dy, &[&b, t, &c]);
                    let x = e.load(&x, &[&b, &source, &c]);
                    e.mul(&dy, &x)
                });
                e.accumulate_shared(&dw, &[&c, &c0, &j], &total);
            });
        });
    });
    e.finish()
}

/// `dx[b, s, c] = Σ_j w[c, j] · dy[b, s + W − 1 − j, c]` over the taps whose output lies
/// inside the sequence, in a register (a tap past the end reads position `s` and adds
/// nothing).
fn gathered_dx(e: &mut Builder, sizes: &Sizes, [b, s, c]: [&Value; 3]) -> Value {
    let (dy, w, c0) = (e.arg("dy"), e.arg("w"), e.c0());
    e.sum_over(&c0, &sizes.width, |e, j| {
        let lag = e.sub(&sizes.width1, j);
        let output = e.add(s, &lag);
        let inside = e.cmp(Cmp::Lt, &output, &sizes.time);
        let read = e.select(&inside, &output, s);
        let (dy, w) = (e.load(&dy, &[b, &read, c]), e.load(&w, &[c, &c0, j]));
        let product = e.mul(&dy, &w);
        let zero = e.zero();
        e.select(&inside, &product, &zero)
    })
}

/// `memref[b, t, c] = 0` for every position and channel of sequence `b`.
fn zero_sequence(e: &mut Builder, sizes: &Sizes, memref: &Value, b: &Value) {
    let c0 = e.c0();
    e.for_(&c0, &sizes.time, |e, t| {
        e.for_(&sizes.lanes.0, &sizes.lanes.1, |e, c| {
            let zero = e.zero();
            e.store(&zero, memref, &[b, &t, &c]);
        });
    });
}

/// The backward with the channels innermost (the CPU's): `dx` zeroed, then per position
/// each tap adds `dy · w` into `dx` at its source and `dy · x` into a `[W, C]` sum of the
/// filter's gradient, added into `dw` once at the end; `dbias` takes `dy` per position.
fn backward_by_rows(e: &mut Builder, sizes: &Sizes, dbias: Option<&Value>) {
    let (x, dy, dx, dw) = (e.arg("x"), e.arg("dy"), e.arg("dx"), e.arg("dw"));
    let taps = taps_by_channel(e, sizes, "taps", true);
    let dtaps = taps_by_channel(e, sizes, "dtaps", false);
    let c0 = e.c0();
    e.for_(&c0, &sizes.batch, |e, b| {
        // dx is zeroed for the whole sequence first: a tap writes to an earlier position.
        zero_sequence(e, sizes, &dx, &b);
    });
    let dy_arg = &dy;
    let mut add_dbias = dbias.map(|dbias| {
        move |e: &mut Builder, b: &Value, t: &Value, c: &Value| {
            let dy = e.load(dy_arg, &[b, t, c]);
            e.accumulate(dbias, &[c], &dy);
        }
    });
    for_taps_by_channel(e, sizes, add_dbias.as_mut().map(|add| add as AtChannel), |e, [b, t, j, source, c]| {
        let dy = e.load(&dy, &[b, t, c]);
        let w = e.load(&taps, &[j, c]);
        let dx_value = e.mul(&dy, &w);
        e.accumulate(&dx, &[b, source, c], &dx_value);
        let x = e.load(&x, &[b, source, c]);
        let dw_value = e.mul(&dy, &x);
        e.accumulate(&dtaps, &[j, c], &dw_value);
    });
    e.for_(&c0, &sizes.width, |e, j| {
        e.for_(&sizes.lanes.0, &sizes.lanes.1, |e, c| {
            let total = e.load(&dtaps, &[&j, &c]);
            e.accumulate(&dw, &[&c, &c0, &j], &total);
        });
    });
}

/// One token per sequence, for decoding. Args: x `[B, 1, C]`, w, [bias], window, y.
/// `window` `[B, W, C]` holds the last W inputs (zero before the sequence starts): the
/// kernel shifts it by one, appends x, and writes `y = Σ_j w[c, j] · window[j, c]`.
pub fn step(bias: bool, name: &str) -> String {
    step_with(bias, name, &Config::CPU)
}

/// [`step`] under any [`Config`].
pub fn step_with(bias: bool, name: &str, config: &Config) -> String {
    let mut e = Builder::new(*config);
    let mut args = vec![("x", 3), ("w", 3)];
    if bias {
        args.push(("bias", 1));
    }
    args.extend([("window", 3), ("y", 3)]);
    let sizes = header(&mut e, name, &args, false);
    let (x, w, window, y) = (e.arg("x"), e.arg("w"), e.arg("window"), e.arg("y"));
    let bias = bias.then(|| e.arg("bias"));
    let (c0, c1) = (e.c0(), e.c1());
    e.for_(&c0, &sizes.batch, |e, b| {
        e.for_(&sizes.lanes.0, &sizes.lanes.1, |e, c| {
            e.for_(&c0, &sizes.width1, |e, j| {
                let next = e.add(&j, &c1);
                let kept = e.load(&window, &[&b, &next, &c]);
                e.store(&kept, &window, &[&b, &j, &c]);
            });
            let x = e.load(&x, &[&b, &c0, &c]);
            e.store(&x, &window, &[&b, &sizes.width1, &c]);
            let sum = e.dot(&sizes.width, |e, j| {
                let w = e.load(&w, &[&c, &c0, j]);
                (w, e.load(&window, &[&b, j, &c]))
            });
            let out = match &bias {
                Some(bias) => {
                    let bias = e.load(bias, &[&c]);
                    e.add(&bias, &sum)
                }
                None => sum,
            };
            e.store(&out, &y, &[&b, &c0, &c]);
        });
    });
    e.finish()
}
