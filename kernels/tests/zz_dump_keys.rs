//! TEMPORARY: dumps generated MLIR for many keys into $DUMP_DIR (byte-identity check).
use hyb_kernels::attention::AttentionSpec;
use hyb_kernels::key::{KernelKey, generate};
use hyb_kernels::pointwise::{Binary, Expr, MapSpec, Unary};
use hyb_kernels::scan::{Decay, ScanSpec, ScanUpdate};
use hyb_target::{Elem, Form};

pub fn keys() -> Vec<KernelKey> {
    let mut keys = vec![KernelKey::Gather, KernelKey::Scatter];
    for gated in [false, true] {
        keys.push(KernelKey::RmsForward { eps: 1e-6, gated });
        keys.push(KernelKey::RmsBackward { eps: 1e-5, gated });
    }
    keys.extend([
        KernelKey::L2Forward { eps: 1e-6 },
        KernelKey::L2Backward { eps: 1e-6 },
        KernelKey::SumNormForward,
        KernelKey::SumNormBackward,
    ]);
    for bias in [false, true] {
        keys.extend([KernelKey::ConvForward { bias }, KernelKey::ConvBackward { bias }, KernelKey::ConvStep { bias }]);
    }
    keys.extend([
        KernelKey::FloorForward { layer: 2 },
        KernelKey::FloorBackward { layer: 3 },
        KernelKey::Rope { theta: 10000.0, inverse: false },
        KernelKey::Rope { theta: 500000.0, inverse: true },
        KernelKey::RopeAt { theta: 10000.0 },
    ]);
    for update in [ScanUpdate::Additive, ScanUpdate::Delta] {
        for decay in [Decay::None, Decay::PerHead, Decay::Scalar, Decay::Vector] {
            for (q_per_state, states_per_key, query) in [(1, 1, true), (2, 1, true), (1, 2, false)] {
                let spec = ScanSpec { update, decay, q_per_state, states_per_key, scale: 0.125, query };
                keys.push(KernelKey::ScanTrain { spec, chunk: 16 });
                keys.push(KernelKey::ScanBackward { spec, chunk: 8 });
                keys.push(KernelKey::ScanStep { spec });
            }
        }
    }
    for (group, window) in [(1, None), (2, Some(4))] {
        let spec = AttentionSpec { group, window, scale: 0.25 };
        keys.extend([
            KernelKey::AttentionForward { spec },
            KernelKey::AttentionBackward { spec },
            KernelKey::AttentionDecode { spec },
        ]);
    }
    let x = |i| Expr::Input(i);
    let all = [Unary::Neg, Unary::Exp, Unary::Log, Unary::Sigmoid, Unary::Silu, Unary::Softplus, Unary::LogSigmoid, Unary::Relu, Unary::Sqrt];
    let outputs: Vec<Expr> = all
        .iter()
        .map(|u| Expr::binary(Binary::Max, Expr::unary(*u, x(0)), Expr::binary(Binary::Div, x(1), Expr::Const(0.5))))
        .collect();
    let spec = MapSpec { inputs: 2, outputs };
    keys.push(KernelKey::Map { spec: spec.clone(), broadcast: vec![false, true] });
    keys.push(KernelKey::Map { spec: hyb_kernels::pointwise::backward(&spec), broadcast: vec![false; 2 + all.len()] });
    keys.extend([
        KernelKey::SumRows,
        KernelKey::Columns { src_col: 3, dst_col: 5, width: 7 },
        KernelKey::Clip,
        KernelKey::CrossEntropy,
        KernelKey::SumOfSquares,
        KernelKey::AdamW,
    ]);
    keys
}

#[test]
fn dump() {
    let Ok(dir) = std::env::var("DUMP_DIR") else { return };
    std::fs::create_dir_all(&dir).unwrap();
    for (i, key) in keys().iter().enumerate() {
        let text = generate(key, Form::Loops, Elem::F32, &format!("k{i}")).unwrap();
        std::fs::write(format!("{dir}/{i:03}_{}.mlir", key.label()), format!("// {key}\n{text}")).unwrap();
    }
}
