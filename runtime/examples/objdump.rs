fn main() {
    let which = std::env::args().nth(1).unwrap();
    let text = match which.as_str() {
        "adamw" => hyb_kernels::optim::adamw("k"),
        "rms" => hyb_kernels::norms::rms_forward(1e-6, false, "k"),
        _ => {
            let spec = hyb_kernels::scan::ScanSpec {
                update: hyb_kernels::scan::ScanUpdate::Delta,
                decay: hyb_kernels::scan::Decay::Scalar,
                q_per_state: 1,
                states_per_key: 1,
                scale: 0.125,
                query: true,
            };
            hyb_kernels::scan::forward_train(&spec, "k", 64)
        }
    };
    let compiled = hyb_kernels::jit::compile(&text).unwrap();
    compiled.entry("k").unwrap();
    compiled.dump("/tmp/k.o");
}
