//! Every example checks, and its `--emit ir` and `--emit report` output is a snapshot.

use hyb_compiler::{ir, report};

use crate::{compile, example_files, relative, render, root, settings, snapshot_name};

/// Studies of pure linear stacks on recall on purpose: the warning that such a model
/// has no attention is what they expect, and nothing else.
const PURE_RECALL: &[&str] = &[
    "examples/study/distance.hyb",
    "examples/study/distance_gdn.hyb",
    "examples/study/distance_gdn_1e3.hyb",
    "examples/study/distance_gdn_tie.hyb",
    "examples/study/distance_long.hyb",
    "examples/study/gains_pure_long.hyb",
    "examples/study/hgrn2_pure_bound.hyb",
    "examples/study/hgrn2_untied.hyb",
    "examples/study/hgrn2_parts.hyb",
];

#[test]
fn every_example_checks_without_diagnostics() {
    let files = example_files();
    assert!(files.len() >= 40, "expected the paper grid and more, found {}", files.len());
    for file in files {
        let compilation = compile(&file);
        let diagnostics = &compilation.checked.diagnostics;
        let expected = |d: &hyb_grammar::diag::Diagnostic| {
            PURE_RECALL.contains(&relative(&file).as_str()) && d.message.contains("the model has no attention layer")
        };
        assert!(diagnostics.iter().all(expected), "{}:\n{}", relative(&file), render(&compilation));
        assert!(compilation.model().is_some());
    }
}

#[test]
fn example_ir_snapshots() {
    let base = root().join("examples");
    for file in example_files() {
        let compilation = compile(&file);
        let model = compilation.model().unwrap_or_else(|| panic!("{} does not check", relative(&file)));
        settings().bind(|| {
            insta::assert_snapshot!(format!("ir__{}", snapshot_name(&file, &base)), ir::print::print_model(model))
        });
    }
}

#[test]
fn example_report_snapshots() {
    let base = root().join("examples");
    for file in example_files() {
        let compilation = compile(&file);
        let model = compilation.model().unwrap_or_else(|| panic!("{} does not check", relative(&file)));
        let report = hyb_driver::report(model, None, hyb_driver::Target::Cpu).expect("plans");
        let text = report::to_text(&report);
        settings().bind(|| insta::assert_snapshot!(format!("report__{}", snapshot_name(&file, &base)), text));
    }
}

#[test]
fn report_json_carries_the_promised_keys() {
    let compilation = compile(&root().join("examples/paper/gdn_r3.hyb"));
    let model = compilation.model().expect("checks");
    let json: serde_json::Value = serde_json::from_str(&report::to_json(
        &hyb_driver::report(model, Some(4096), hyb_driver::Target::Cpu).expect("plans"),
    ))
    .expect("valid JSON");
    for key in ["params_total", "params_non_embedding", "layers", "state_bytes", "kv_cache_bytes"] {
        assert!(json.get(key).is_some(), "missing {key}");
    }
    assert_eq!(json["params_total"], 390_976_640u64);
    let layers = json["layers"].as_array().expect("a list");
    assert_eq!(layers.len(), 24);
    assert_eq!(layers[2]["mixer"], "attn");
    assert_eq!(layers[2]["index"], 2);
    assert_eq!(layers[0]["mixer"], "gdn");
    // 16 GDN layers of 4 heads × 256 × 256 fp32 states plus conv caches of 3072 × 4 bf16.
    assert_eq!(json["state_bytes"], 16u64 * (4 * 256 * 256 * 4 + 3 * 1024 * 4 * 2));
    // 8 attention layers of 2 × 16 × 64 bf16 per token at 4096 tokens.
    assert_eq!(json["kv_cache_bytes"], 8u64 * 2 * 16 * 64 * 2 * 4096);
}

#[test]
fn every_example_verifies() {
    for file in example_files() {
        let compilation = compile(&file);
        let model = compilation.model().expect("checks");
        assert_eq!(hyb_compiler::ir::verify::verify(model), Ok(()), "{}", relative(&file));
    }
}

#[test]
fn the_verifier_catches_broken_ir() {
    let compilation = compile(&root().join("examples/tiny/hgrn_2to1.hyb"));
    let mut model = compilation.model().expect("checks").clone();
    model.params.retain(|p| p.name != "model.lower_bounds");
    let duplicate = model.params[3].clone();
    model.params.push(duplicate);
    model.params[5].shape.push(0);
    let errors = hyb_compiler::ir::verify::verify(&model).expect_err("broken");
    let messages: Vec<String> = errors.iter().map(|e| format!("{}: {}", e.entity, e.message)).collect();
    assert!(messages.iter().any(|m| m.contains("lower_bounds: is missing")), "{messages:?}");
    assert!(messages.iter().any(|m| m.ends_with("defined twice")), "{messages:?}");
    assert!(messages.iter().any(|m| m.ends_with("has an empty dimension")), "{messages:?}");
}

/// print → parse → print is the identity on every example (the printer omits nothing).
#[test]
fn ir_text_round_trips() {
    for file in example_files() {
        let compilation = compile(&file);
        let printed = ir::print::print_model(compilation.model().expect("checks"));
        let parsed = ir::parse::parse_model(&printed).unwrap_or_else(|e| panic!("{}: {e}", relative(&file)));
        assert_eq!(ir::print::print_model(&parsed), printed, "{}", relative(&file));
        assert_eq!(ir::verify::verify(&parsed), Ok(()), "{}", relative(&file));
    }
}

/// Every example builds a forward graph that verifies (types re-inferred, every
/// parameter read, a scalar loss); the tiny CPU models' graphs are snapshots.
#[test]
fn every_example_builds_a_verified_graph() {
    let base = root().join("examples");
    for file in example_files() {
        let compilation = compile(&file);
        let model = compilation.model().expect("checks");
        let graph = hyb_driver::graph(model);
        if let Err(errors) = hyb_compiler::graph::verify::verify(&graph, model) {
            panic!("{}: {errors:#?}", relative(&file));
        }
        if file.starts_with(base.join("tiny")) {
            let text = hyb_compiler::graph::print::print_graph(&graph);
            settings().bind(|| insta::assert_snapshot!(format!("graph__{}", snapshot_name(&file, &base)), text));
        }
    }
}

#[test]
fn the_graph_verifier_catches_a_wrong_type() {
    let compilation = compile(&root().join("examples/tiny/gla_2to1.hyb"));
    let model = compilation.model().expect("checks");
    let mut graph = hyb_driver::graph(model);
    let (handle, _) =
        graph.nodes.iter().find(|(_, n)| matches!(n.op, hyb_compiler::graph::Op::MatMul)).expect("a matmul");
    let mut broken = hyb_compiler::graph::Graph::default();
    for (h, node) in graph.nodes.iter() {
        let mut node = node.clone();
        if h == handle {
            node.ty = hyb_compiler::graph::btn(7);
        }
        broken.nodes.alloc(node);
    }
    broken.loss = graph.loss.take();
    let errors = hyb_compiler::graph::verify::verify(&broken, model).expect_err("broken");
    assert!(errors.iter().any(|e| e.contains("its op gives")), "{errors:?}");
}

/// Every example compiles through the driver — its training step at a shape that is a
/// multiple of no block size, and its decoding step — to a program the verifier
/// accepts, and every kernel module JIT-compiles through the CPU pipeline (each
/// distinct module once); the tiny GDN hybrid's program and MLIR are snapshots.
#[test]
fn every_examples_program_verifies_and_its_kernels_compile() {
    use hyb_driver::{Shape, Target};
    let mut seen = std::collections::HashSet::new();
    for file in example_files() {
        let compilation = compile(&file);
        let model = compilation.model().expect("checks");
        for shape in [Shape::Train { batch: 2, seq_len: 37 }, Shape::Decode { batch: 2, max_len: 9 }] {
            let build = hyb_driver::compile(model, Target::Cpu, shape)
                .unwrap_or_else(|e| panic!("{} at {shape:?}: {e}", relative(&file)));
            assert_eq!(build.modules.len(), build.program.kernels.len(), "{}", relative(&file));
            for module in &build.modules {
                let body = module.text.replace(&module.name, "k");
                if seen.insert(body)
                    && let Err(error) = hyb_kernels::jit::compile(&module.text)
                {
                    panic!("{}: kernel {}: {error}", relative(&file), module.name);
                }
            }
        }
    }
    assert!(seen.len() >= 10, "only {} distinct kernels", seen.len());
    let compilation = compile(&root().join("examples/tiny/gdn_2to1.hyb"));
    let model = compilation.model().expect("checks");
    let options = |context| hyb_driver::EmitOptions { context: Some(context), ..Default::default() };
    let emit = |stage, context| hyb_driver::emit(model, stage, options(context)).expect("emits");
    settings().bind(|| insta::assert_snapshot!("mlir__tiny__gdn_2to1", emit(hyb_driver::Stage::Mlir, 64)));
    settings().bind(|| insta::assert_snapshot!("program__tiny__gdn_2to1", emit(hyb_driver::Stage::Program, 16)));
}

/// The program verifier finds a read of bytes nothing wrote, a read of ids as floats,
/// an argument outside its store and a call of a kernel the program does not have.
#[test]
fn the_program_verifier_catches_broken_programs() {
    use hyb_driver::{Shape, Target};
    use hyb_lower::program::Instr;
    let compilation = compile(&root().join("examples/tiny/gdn_2to1.hyb"));
    let model = compilation.model().expect("checks");
    let build =
        hyb_driver::compile_program(model, Target::Cpu, Shape::Train { batch: 2, seq_len: 16 }).expect("builds");
    let verify =
        |program: &hyb_lower::program::Program| hyb_lower::verify::verify(program).expect_err("broken").join("\n");
    let mut program = build.program;
    assert_eq!(hyb_lower::verify::verify(&program), Ok(()));
    // The first call of the forward reads the embedding's token ids.
    let first_call = program.instrs.iter().position(|i| matches!(i, Instr::Call { .. })).expect("a call");
    let Instr::Call { kernel, args } = program.instrs[first_call].clone() else { unreachable!() };
    // Without the instruction that copies the tokens in, the ids are read unwritten.
    let mut unwritten = program.clone();
    unwritten.instrs.retain(|i| !matches!(i, Instr::Input(hyb_lower::program::Input::Tokens, _)));
    assert!(verify(&unwritten).contains("not written before"), "{}", verify(&unwritten));
    let mut as_floats = program.clone();
    let mut wrong = args.clone();
    wrong[1].elem = hyb_compiler::graph::Elem::F32;
    as_floats.instrs[first_call] = Instr::Call { kernel, args: wrong };
    assert!(verify(&as_floats).contains("where i32 is read"), "{}", verify(&as_floats));
    let mut outside = program.clone();
    let mut far = args.clone();
    far[2].offset = program.arena_bytes;
    outside.instrs[first_call] = Instr::Call { kernel, args: far };
    assert!(verify(&outside).contains("outside arena"), "{}", verify(&outside));
    program.instrs[first_call] = Instr::Call { kernel: 999, args };
    assert!(verify(&program).contains("does not have"), "{}", verify(&program));
}

/// Every example differentiates: each parameter gets one gradient of its shape, every
/// backward value is defined before use; the tiny GDN hybrid's grad IR is a snapshot.
#[test]
fn every_example_differentiates() {
    for file in example_files() {
        let compilation = compile(&file);
        let model = compilation.model().expect("checks");
        let grad = hyb_driver::grad(model);
        if let Err(errors) = hyb_compiler::grad::rules::verify(&grad, model) {
            panic!("{}: {errors:#?}", relative(&file));
        }
        let updates = grad.backward.iter().filter(|n| matches!(n.op, hyb_compiler::grad::BwdOp::AdamW { .. })).count();
        assert_eq!(updates, model.params.len(), "{}: one AdamW update per parameter", relative(&file));
    }
    let compilation = compile(&root().join("examples/tiny/gdn_2to1.hyb"));
    let model = compilation.model().expect("checks");
    let grad = hyb_driver::grad(model);
    settings().bind(|| insta::assert_snapshot!("grad__tiny__gdn_2to1", hyb_compiler::grad::print(&grad)));
}

/// The buffer plan never lets two buffers live at the same time share bytes, and its
/// arena lies between the largest buffer and the sum of all.
#[test]
fn buffer_plans_are_sound() {
    for file in example_files().into_iter().filter(|f| f.starts_with(root().join("examples/tiny"))) {
        let compilation = compile(&file);
        let model = compilation.model().expect("checks");
        let shape = hyb_driver::Shape::Train { batch: 2, seq_len: 37 };
        let plan = hyb_driver::compile_program(model, hyb_driver::Target::Cpu, shape).expect("builds").plan;
        let buffers = &plan.buffers;
        for (index, a) in buffers.iter().enumerate() {
            for b in &buffers[index + 1..] {
                let live_together = a.first <= b.last && b.first <= a.last;
                let bytes_overlap = a.offset < b.offset + b.bytes && b.offset < a.offset + a.bytes;
                assert!(!(live_together && bytes_overlap), "{}: {:?} and {:?} overlap", relative(&file), a, b);
            }
        }
        assert_eq!(hyb_compiler::plan::verify(&plan), Ok(()), "{}", relative(&file));
        let mut broken = plan.clone();
        let last = broken.buffers.len() - 1;
        broken.buffers[last].offset = broken.buffers[last - 1].offset;
        broken.buffers[last].first = broken.buffers[last - 1].first;
        assert!(
            hyb_compiler::plan::verify(&broken).is_err(),
            "{}: the plan verifier misses an overlap",
            relative(&file)
        );
        let largest = buffers.iter().map(|b| b.bytes).max().expect("buffers");
        let total: u64 = buffers.iter().map(|b| b.bytes).sum();
        assert!(plan.arena_bytes >= largest && plan.arena_bytes <= total, "{}", relative(&file));
        assert!(plan.arena_bytes < total, "{}: the plan reuses nothing", relative(&file));
        assert_eq!(plan.param_bytes, 4 * model.params_total(), "{}", relative(&file));
    }
}

/// The fusion pass covers every graph node exactly once, fuses chains of the same type,
/// and every fused chain JIT-compiles; the tiny GDN hybrid's kernel plan is a snapshot.
#[test]
fn every_examples_kernel_plan_covers_its_graph() {
    use hyb_lower::fuse::{self, Step};
    let mut compiled = std::collections::HashSet::new();
    for file in example_files() {
        let compilation = compile(&file);
        let model = compilation.model().expect("checks");
        let grad = hyb_driver::grad(model);
        let graph = &grad.forward;
        let steps = fuse::training_plan(&grad);
        let mut seen = std::collections::HashSet::new();
        let mut fused = 0;
        for step in &steps {
            let nodes = match step {
                Step::Fused { nodes, spec, .. } => {
                    fused += nodes.len();
                    let text = hyb_kernels::pointwise::generate(spec, "chain");
                    if compiled.insert(text.clone()) {
                        hyb_kernels::jit::compile(&text).unwrap_or_else(|e| panic!("{}: {e}", relative(&file)));
                    }
                    nodes.clone()
                }
                Step::Broadcast { node, spec, broadcast } => {
                    let text = hyb_kernels::pointwise::generate_broadcast(spec, broadcast, "chain");
                    if compiled.insert(text.clone()) {
                        hyb_kernels::jit::compile(&text).unwrap_or_else(|e| panic!("{}: {e}", relative(&file)));
                    }
                    vec![*node]
                }
                Step::Gemm(id) | Step::Kernel(id) | Step::Host(id) => vec![*id],
            };
            for node in nodes {
                assert!(seen.insert(node), "{}: %{} planned twice", relative(&file), node.index());
            }
        }
        assert_eq!(seen.len(), graph.nodes.len(), "{}: every node planned", relative(&file));
        assert!(fused > 0, "{}: nothing fused", relative(&file));
    }
    let compilation = compile(&root().join("examples/tiny/gdn_2to1.hyb"));
    let model = compilation.model().expect("checks");
    let grad = hyb_driver::grad(model);
    let text = fuse::print(&grad.forward, &fuse::training_plan(&grad));
    settings().bind(|| insta::assert_snapshot!("kernels__tiny__gdn_2to1", text));
}

/// The text of `examples/study/<name>`.
fn study_file(name: &str) -> String {
    std::fs::read_to_string(root().join("examples/study").join(name)).expect("a study file")
}

/// `gpu_conv.hyb` takes gpu.hyb's finished GatedDeltaNet and DeltaNet runs as its own
/// (`gpu_piece.sh prepare` with `SHARED`): that holds only while those cells are the same
/// models trained the same way. Each such cell of both files prints the same model IR,
/// and the blocks after the lets (model, train, eval) read alike but for the sweep's
/// list of mixers.
#[test]
fn gpu_conv_shares_gpu_hybs_gated_deltanet_and_deltanet_cells() {
    let (gpu, conv) = (study_file("gpu.hyb"), study_file("gpu_conv.hyb"));
    let cell = |text: &str, linear: &str, every: &str| {
        let text: String = text
            .lines()
            .map(|line| match line.split_whitespace().collect::<Vec<_>>().as_slice() {
                ["let", "linear", "=", _] => format!("let linear     = {linear}"),
                ["let", "attn_every", "=", _] => format!("let attn_every = {every}"),
                _ => line.to_string(),
            })
            .collect::<Vec<_>>()
            .join("\n");
        let compilation = hyb_compiler::pipeline::check_text("cell.hyb", &text);
        let model = compilation.model().unwrap_or_else(|| panic!("{}", render(&compilation)));
        ir::print::print_model(model)
    };
    for linear in ["gdn", "deltanet"] {
        for every in ["2", "4", "8"] {
            assert_eq!(cell(&gpu, linear, every), cell(&conv, linear, every), "{linear} with attention every {every}");
        }
    }
    let blocks = |text: &str| {
        let from = text.find("model {").expect("a model block");
        let to = text.find("    linear     = [").expect("the sweep's mixers");
        text[from..to].to_string()
    };
    assert_eq!(blocks(&gpu), blocks(&conv), "model, train, eval and the sweep's head");
    let rest = |text: &str| {
        let list = text.find("    linear     = [").expect("the sweep's mixers");
        let after = text[list..].find('\n').expect("a line") + list;
        text[after..].to_string()
    };
    assert_eq!(rest(&gpu), rest(&conv), "the sweep's rates, extension, seeds and budget");
}

/// `gpu_conv_retnet.hyb` spells out fla's RetNet to give it the others' convolution:
/// its parameters are gpu.hyb's RetNet cell's, every one of the same shape, plus the
/// convolution's (the `linear(...)` and the model's MLP ratio stand for the preset).
#[test]
fn gpu_conv_retnet_is_gpu_hybs_retnet_with_a_convolution() {
    let params = |text: &str, every: &str| {
        let text = text.replace("let attn_every = 4", &format!("let attn_every = {every}"));
        let text = text.replace("let linear     = gdn", "let linear     = retnet");
        let compilation = hyb_compiler::pipeline::check_text("cell.hyb", &text);
        let model = compilation.model().unwrap_or_else(|| panic!("{}", render(&compilation)));
        let printed = ir::print::print_model(model);
        printed.lines().filter(|line| line.trim_start().starts_with("param ")).map(str::to_string).collect::<Vec<_>>()
    };
    let (gpu, conv) = (study_file("gpu.hyb"), study_file("gpu_conv_retnet.hyb"));
    for every in ["2", "4", "8"] {
        let (preset, spelled) = (params(&gpu, every), params(&conv, every));
        let without_conv: Vec<&String> = spelled.iter().filter(|line| !line.contains("_conv1d.")).collect();
        assert_eq!(without_conv, preset.iter().collect::<Vec<_>>(), "attention every {every}");
        assert!(spelled.len() > preset.len(), "the convolution's parameters");
    }
}

/// The study README's table of the claims across the grids is what
/// `examples/study/claims.py` prints from the measured reports today: a report
/// re-written, or a grid added, without the table refreshed fails here.
#[test]
fn the_study_readme_holds_the_claims_table_of_its_reports() {
    let output = std::process::Command::new("python3")
        .arg(root().join("examples/study/claims.py"))
        .output()
        .expect("python3 runs (scripts/setup.sh installs it)");
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let printed = String::from_utf8(output.stdout).expect("UTF-8");
    let readme = std::fs::read_to_string(root().join("examples/study/README.md")).expect("the study README");
    let start = readme.find("| grid | recall rises with attention |").expect("the claims table in the README");
    let table = readme[start..].split("\n\n").next().expect("a table");
    assert_eq!(
        table.trim_end(),
        printed.trim_end(),
        "run `python3 examples/study/claims.py` and put its table in examples/study/README.md"
    );
}
