//! The `blocks` form of a kernel for NVIDIA GPUs: the generator's function, written with
//! strided memref arguments and PTX math (`emit::Config` for the GPU), inside a
//! `gpu.module` for the target architecture, called by a `gpu.func` kernel that gives
//! each thread block one point of the launch's iteration space.
//!
//! The kernel takes, per argument of the generated function, the argument's memref and
//! an `i64` split flag. A split argument's leading dim is divided over the grid: block
//! `b` sees rows `[b·n/G, (b+1)·n/G)` of it (one batch element or row of a non-flat
//! view; its share of a flat one); a whole argument is seen whole by every block. The
//! host launches one block per point of the iteration space, or one block with every
//! flag clear when the call accumulates into a shared (`sum`) argument. One thread per
//! block does the work: the first, correctness-first form; a chunked tensor-core form
//! is another form of the same key.

use std::fmt::Write;

use hyb_target::{Elem, Form};

use crate::key::{KernelKey, NoForm};

/// The `blocks` form of `key` for `chip`: the MLIR module whose kernel is `name`.
pub fn generate(key: &KernelKey, name: &str, chip: &str, storage: Elem) -> Result<String, NoForm> {
    let no_form = || NoForm { key: key.to_string(), form: Form::Blocks, storage };
    if !key.forms().contains(&Form::Blocks) || storage != Elem::F32 {
        return Err(no_form());
    }
    let body = crate::key::generate_gpu_body(key, &format!("{name}_body")).ok_or_else(no_form)?;
    module(&body, name, chip).ok_or_else(no_form)
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
/// function `{name}_body` (strided arguments, no libdevice calls).
pub fn module(body: &str, name: &str, chip: &str) -> Option<String> {
    let params = params(body, &format!("{name}_body"))?;
    let mut out = String::new();
    let _ = writeln!(out, "module attributes {{gpu.container_module}} {{");
    let _ = writeln!(out, "gpu.module @{name}_module [#nvvm.target<chip = \"{chip}\", features = \"+ptx80\">] {{");
    out.push_str(body);
    out.push('\n');
    let signature: Vec<String> =
        params.iter().map(|p| format!("%{}: {}, %{}_split: i64", p.name, p.ty, p.name)).collect();
    let _ = writeln!(out, "gpu.func @{name}({}) kernel {{", signature.join(", "));
    out.push_str(
        "  %block = gpu.block_id x\n  %grid = gpu.grid_dim x\n  %thread = gpu.thread_id x\n  \
         %c0 = arith.constant 0 : index\n  %no = arith.constant 0 : i64\n  \
         %first = arith.cmpi eq, %thread, %c0 : index\n  scf.if %first {\n",
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

/// This block's view of argument `p`: its rows when split, all of it otherwise.
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
    let _ = writeln!(out, "    %{n}_part = arith.divui %{n}_size0, %grid : index");
    let _ = writeln!(out, "    %{n}_rows = arith.select %{n}_is_split, %{n}_part, %{n}_size0 : index");
    let _ = writeln!(out, "    %{n}_step = arith.muli %{n}_part, %{n}_stride0 : index");
    let _ = writeln!(out, "    %{n}_at = arith.muli %block, %{n}_step : index");
    let _ = writeln!(out, "    %{n}_shift = arith.select %{n}_is_split, %{n}_at, %c0 : index");
    let _ = writeln!(out, "    %{n}_start = arith.addi %{n}_offset, %{n}_shift : index");
    let mut view_sizes = vec![format!("%{n}_rows")];
    view_sizes.extend(sizes[1..].iter().cloned());
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
