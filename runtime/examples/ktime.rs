fn main() {
    let path = std::env::args().nth(1).unwrap();
    let c = hyb_compiler::pipeline::check_path(std::path::Path::new(&path)).unwrap();
    let model = c.model().unwrap();
    let t0 = std::time::Instant::now();
    let graph = hyb_compiler::graph::build::build(model);
    let grad = hyb_compiler::grad::differentiate(model, graph);
    let program = hyb_lower::program::build(model, &grad, 2, 8).unwrap();
    println!("build {:?}", t0.elapsed());
    let mut total = std::time::Duration::ZERO;
    for (name, m) in program.kernels.names.iter().zip(&program.kernels.modules) {
        let t = std::time::Instant::now();
        let compiled = hyb_kernels::jit::compile(m).unwrap();
        let c = t.elapsed();
        compiled.entry(name).unwrap();
        print!("compile {c:?} ");
        total += t.elapsed();
        println!("{name} {:?} {} lines", t.elapsed(), m.lines().count());
    }
    println!("separately {total:?}");
    let t = std::time::Instant::now();
    hyb_runtime::exec::Kernels::compile(&program).unwrap();
    println!("parallel {:?}", t.elapsed());
}
