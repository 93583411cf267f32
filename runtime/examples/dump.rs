fn main() {
    let text = std::env::args().nth(1).unwrap();
    let c = hyb_compiler::pipeline::check_text("x.hyb", &text);
    let model = c.model().unwrap();
    let graph = hyb_compiler::graph::build::build(model);
    let grad = hyb_compiler::grad::differentiate(model, graph);
    print!("{}", hyb_compiler::graph::print::print_graph(&grad.forward));
    print!("{}", hyb_compiler::grad::print(&grad));
    let program = hyb_runtime::program::build(model, &grad, 2, 7).unwrap();
    for (i, instr) in program.instrs.iter().enumerate() {
        println!("{i}: {instr:?}");
    }
    for (i, n) in program.kernels.names.iter().enumerate() {
        println!("k{i} {n}");
    }
}
