//! Every example checks, and its `--emit ir` and `--emit report` output is a snapshot.

use hyb_compiler::{ir, report};

use crate::{compile, example_files, relative, render, root, settings, snapshot_name};

#[test]
fn every_example_checks_without_diagnostics() {
    let files = example_files();
    assert!(files.len() >= 40, "expected the paper grid and more, found {}", files.len());
    for file in files {
        let compilation = compile(&file);
        assert!(compilation.checked.diagnostics.is_empty(), "{}:\n{}", relative(&file), render(&compilation));
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
        let context = model.train.as_ref().map_or(4096, |t| t.seq_len);
        let text = report::to_text(&report::report(model, context));
        settings().bind(|| insta::assert_snapshot!(format!("report__{}", snapshot_name(&file, &base)), text));
    }
}

#[test]
fn report_json_carries_the_promised_keys() {
    let compilation = compile(&root().join("examples/paper/gdn_r3.hyb"));
    let model = compilation.model().expect("checks");
    let json: serde_json::Value =
        serde_json::from_str(&report::to_json(&report::report(model, 4096))).expect("valid JSON");
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
        let graph = hyb_compiler::graph::build::build(model);
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
    let mut graph = hyb_compiler::graph::build::build(model);
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

/// Every kernel of every example lowers through the CPU pipeline and JIT-compiles
/// (each distinct kernel once); the tiny GDN hybrid's MLIR is a snapshot.
#[test]
fn every_examples_kernels_compile() {
    let mut seen = std::collections::HashSet::new();
    for file in example_files() {
        let compilation = compile(&file);
        let graph = hyb_compiler::graph::build::build(compilation.model().expect("checks"));
        for kernel in hyb_lower::kernels(&graph) {
            let body = kernel.mlir.replace(&kernel.name, "k");
            if seen.insert(body)
                && let Err(error) = hyb_kernels::jit::compile(&kernel.mlir)
            {
                panic!("{}: kernel {}: {error}", relative(&file), kernel.name);
            }
        }
    }
    assert!(seen.len() >= 10, "only {} distinct kernels", seen.len());
    let compilation = compile(&root().join("examples/tiny/gdn_2to1.hyb"));
    let graph = hyb_compiler::graph::build::build(compilation.model().expect("checks"));
    settings().bind(|| insta::assert_snapshot!("mlir__tiny__gdn_2to1", hyb_lower::emit_mlir(&graph)));
}

/// Every example differentiates: each parameter gets one gradient of its shape, every
/// backward value is defined before use; the tiny GDN hybrid's grad IR is a snapshot.
#[test]
fn every_example_differentiates() {
    for file in example_files() {
        let compilation = compile(&file);
        let model = compilation.model().expect("checks");
        let grad = hyb_compiler::grad::differentiate(model, hyb_compiler::graph::build::build(model));
        if let Err(errors) = hyb_compiler::grad::rules::verify(&grad, model) {
            panic!("{}: {errors:#?}", relative(&file));
        }
        let updates = grad.backward.iter().filter(|n| matches!(n.op, hyb_compiler::grad::BwdOp::AdamW { .. })).count();
        assert_eq!(updates, model.params.len(), "{}: one AdamW update per parameter", relative(&file));
    }
    let compilation = compile(&root().join("examples/tiny/gdn_2to1.hyb"));
    let model = compilation.model().expect("checks");
    let grad = hyb_compiler::grad::differentiate(model, hyb_compiler::graph::build::build(model));
    settings().bind(|| insta::assert_snapshot!("grad__tiny__gdn_2to1", hyb_compiler::grad::print(&grad)));
}

/// The buffer plan never lets two buffers live at the same time share bytes, and its
/// arena lies between the largest buffer and the sum of all.
#[test]
fn buffer_plans_are_sound() {
    for file in example_files().into_iter().filter(|f| f.starts_with(root().join("examples/tiny"))) {
        let compilation = compile(&file);
        let model = compilation.model().expect("checks");
        let grad = hyb_compiler::grad::differentiate(model, hyb_compiler::graph::build::build(model));
        let plan = hyb_compiler::plan::plan(&grad, 2, 37);
        let buffers = &plan.buffers;
        for (index, a) in buffers.iter().enumerate() {
            for b in &buffers[index + 1..] {
                let live_together = a.first <= b.last && b.first <= a.last;
                let bytes_overlap = a.offset < b.offset + b.bytes && b.offset < a.offset + a.bytes;
                assert!(!(live_together && bytes_overlap), "{}: {:?} and {:?} overlap", relative(&file), a, b);
            }
        }
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
        let grad = hyb_compiler::grad::differentiate(model, hyb_compiler::graph::build::build(model));
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
    let grad = hyb_compiler::grad::differentiate(model, hyb_compiler::graph::build::build(model));
    let text = fuse::print(&grad.forward, &fuse::training_plan(&grad));
    settings().bind(|| insta::assert_snapshot!("kernels__tiny__gdn_2to1", text));
}
