//! The step program as stable text (`hybc compile --emit program`): its stores and
//! parameters, its kernels by key, then every instruction in order — buffers as
//! `store@byte-offset elem[dims]`, each call with its iteration space. What this prints
//! is the list the runtime executes.

use std::fmt::Write;

use crate::program::{Arg, Input, Instr, Program, Share, Store, iteration_space};

/// The program's text.
pub fn print(program: &Program) -> String {
    let mut out = String::new();
    let what = match program.max_len {
        Some(max_len) => format!("decode batch={} max_len={max_len}", program.batch),
        None => format!("train batch={} seq_len={}", program.batch, program.seq_len),
    };
    let _ = writeln!(out, "program {what} target={}", program.target);
    let _ = writeln!(
        out,
        "stores arena={} temp={} cache={} bytes",
        program.arena_bytes, program.temp_bytes, program.cache_bytes
    );
    for (index, param) in program.params.iter().enumerate() {
        let _ = writeln!(out, "param{index} f32{:?} {}", param.shape, param.name);
    }
    for (index, key) in program.kernels.keys.iter().enumerate() {
        let _ = writeln!(out, "k{index} = {key}{}", signature(program, index));
    }
    let sections = [
        (0, "forward"),
        (program.forward_end, "backward"),
        (program.optimizer_start, "gradient norm"),
        (program.update_start, "update"),
    ];
    for (index, instr) in program.instrs.iter().enumerate() {
        for (_, section) in sections.iter().filter(|(start, _)| *start == index) {
            let _ = writeln!(out, "{section}:");
        }
        let _ = writeln!(out, "  i{index} {}", instruction(instr));
    }
    out
}

/// A mixed-precision kernel's argument types (` [bf16, f32, ...]`); nothing for one on
/// f32 alone, as every kernel was before bf16 storage.
fn signature(program: &Program, index: usize) -> String {
    if !program.kernels.mixed(index) {
        return String::new();
    }
    let elems: Vec<&str> = program.kernels.signatures[index].iter().map(|e| e.name()).collect();
    format!(" [{}]", elems.join(", "))
}

fn instruction(instr: &Instr) -> String {
    match instr {
        Instr::Call { kernel, args } => {
            let args: Vec<String> = args.iter().map(argument).collect();
            format!("call k{kernel} over [{}] ({})", iteration_space(instr), args.join(", "))
        }
        Instr::Gemm { m, k, n, a, b, c } => format!(
            "gemm m={m} k={k} n={n} a={} strides {:?} b={} strides {:?} c={}",
            argument(&a.0),
            a.1,
            argument(&b.0),
            b.1,
            argument(c)
        ),
        Instr::Zero(arg) => format!("zero {}", argument(arg)),
        Instr::Fill(arg, values) => {
            let shown: Vec<String> = values.iter().take(4).map(|v| v.to_string()).collect();
            let more = if values.len() > 4 { ", ..." } else { "" };
            format!("fill {} = [{}{more}]", argument(arg), shown.join(", "))
        }
        Instr::Input(which, arg) => {
            let which = match which {
                Input::Tokens => "tokens",
                Input::Targets => "targets",
            };
            format!("input {which} -> {}", argument(arg))
        }
        Instr::AdamW { kernel, param, grad } => format!("adamw k{kernel} param{param} grad={}", argument(grad)),
    }
}

/// `arena@1024 f32[2, 16, 64] split`.
pub fn argument(arg: &Arg) -> String {
    let store = store_name(arg.store);
    let dims: Vec<String> = arg.dims.iter().map(|d| d.to_string()).collect();
    let flat = if arg.flat { " flat" } else { "" };
    let share = match arg.share {
        Share::Whole => "",
        Share::Split => " split",
        Share::Sum => " sum",
    };
    format!("{store}@{} {}[{}]{flat}{share}", arg.offset, arg.elem, dims.join(", "))
}

pub fn store_name(store: Store) -> String {
    match store {
        Store::Arena => "arena".into(),
        Store::Temp => "temp".into(),
        Store::Host => "host".into(),
        Store::Cache => "cache".into(),
        Store::Param(i) => format!("param{i}"),
        Store::Moment1(i) => format!("m1.{i}"),
        Store::Moment2(i) => format!("m2.{i}"),
    }
}
