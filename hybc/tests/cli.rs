//! The command line: exit codes (0 ok, 1 user error, 2 usage error), outputs, help.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("workspace").to_path_buf()
}

fn hybc(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_hybc")).args(args).current_dir(root()).output().expect("hybc runs")
}

/// [`hybc`] with codegen's environment switches set to `switches` alone (any the caller's
/// shell holds removed).
fn hybc_with(args: &[&str], switches: &[(&str, &str)]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_hybc"));
    for name in
        ["HYB_GPU_FORM", "HYB_MAXNREG_KERNELS", "HYB_CHUNKED_VALUE_BLOCK", "HYB_CHUNKED_THREADS", "HYB_CHUNKED_SPLIT"]
    {
        command.env_remove(name);
    }
    command.args(args).envs(switches.iter().copied()).current_dir(root()).output().expect("hybc runs")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// A path in this run's scratch directory, `hybc-cli` under cargo's target tmp dir:
/// emptied once per run of this binary, so runs do not pile up (a run leaves ~0.5 GB).
fn scratch(name: &str) -> PathBuf {
    static DIR: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    let dir = DIR.get_or_init(|| {
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("hybc-cli");
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("scratch dir");
        dir
    });
    dir.join(name)
}

/// A scratch directory `dir` holding one `.hyb` file `name` with `source` (a sweep
/// test's grid, whose runs go beside it). Returns the directory and the file.
fn grid_file(dir: &str, name: &str, source: impl AsRef<[u8]>) -> (PathBuf, PathBuf) {
    let dir = scratch(dir);
    std::fs::create_dir_all(&dir).expect("scratch dir");
    let file = dir.join(name);
    std::fs::write(&file, source).expect("writable");
    (dir, file)
}

#[test]
fn check_exit_codes() {
    let ok = hybc(&["check", "examples/paper/gdn_r3.hyb", "examples/sketch.hyb"]);
    assert_eq!(ok.status.code(), Some(0), "{}", text(&ok.stderr));
    assert!(text(&ok.stdout).contains("ok: examples/paper/gdn_r3.hyb (24 layers, 390976640 parameters)"));

    let bad = hybc(&["check", "tests/bad/unknown_mixer.hyb"]);
    assert_eq!(bad.status.code(), Some(1));
    let stderr = text(&bad.stderr);
    assert!(stderr.contains("tests/bad/unknown_mixer.hyb:3:16"), "{stderr}");
    assert!(stderr.contains("did you mean `gated_deltanet`?"), "{stderr}");

    let missing = hybc(&["check", "no/such/file.hyb"]);
    assert_eq!(missing.status.code(), Some(2));
    assert!(text(&missing.stderr).contains("cannot read `no/such/file.hyb`"));

    let usage = hybc(&["compile", "examples/sketch.hyb", "--emit", "nonsense"]);
    assert_eq!(usage.status.code(), Some(2));
    assert_eq!(hybc(&["frobnicate"]).status.code(), Some(2));
}

/// A file that is not UTF-8 is a problem in the user's file (exit 1), and the message
/// says what its bytes look like; a UTF-8 byte-order mark is accepted.
#[test]
fn a_file_that_is_not_utf8_is_reported_as_such() {
    let model =
        "mixer attn = attention(heads: 4)\nmodel {\n    vocab = 256\n    d_model = 128\n    layers = attn × 2\n}\n";
    let utf16 = scratch("utf16.hyb");
    let bytes: Vec<u8> = [0xFF, 0xFE].into_iter().chain(model.encode_utf16().flat_map(u16::to_le_bytes)).collect();
    std::fs::write(&utf16, bytes).expect("writable");
    let path = utf16.to_str().expect("utf-8");
    for args in [&["check", path][..], &["compile", path], &["train", path, "--steps", "1"], &["fmt", path]] {
        let out = hybc(args);
        let stderr = text(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {stderr}");
        assert!(stderr.contains("starts with a UTF-16 little-endian byte-order mark (FF FE)"), "{stderr}");
        assert!(stderr.contains("help: save it as UTF-8"), "{stderr}");
    }
    let latin1 = scratch("latin1.hyb");
    std::fs::write(&latin1, b"// caf\xE9 au lait\nmodel { }\n").expect("writable");
    let out = hybc(&["check", latin1.to_str().expect("utf-8")]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("the byte 0xE9 at line 1, column 7 (byte offset 6)"), "{}", text(&out.stderr));
    let importer = scratch("imports_latin1.hyb");
    std::fs::write(&importer, "import \"latin1.hyb\"\n").expect("writable");
    let out = hybc(&["check", importer.to_str().expect("utf-8")]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("is not valid UTF-8"), "{}", text(&out.stderr));
    let marked = scratch("utf8_bom.hyb");
    std::fs::write(&marked, [&[0xEF, 0xBB, 0xBF][..], model.as_bytes()].concat()).expect("writable");
    let out = hybc(&["check", marked.to_str().expect("utf-8")]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
}

#[test]
fn help_reads_well() {
    let help = hybc(&["--help"]);
    assert_eq!(help.status.code(), Some(0));
    let help = text(&help.stdout);
    for command in ["check", "compile", "fmt", "import"] {
        assert!(help.contains(command), "{help}");
    }
    let compile = text(&hybc(&["compile", "--help"]).stdout);
    for emit in ["ir", "report", "fla-config", "hf-layer-types", "megatron-pattern", "--context", "--format"] {
        assert!(compile.contains(emit), "{compile}");
    }
}

#[test]
fn compile_emits_each_stage() {
    let report =
        hybc(&["compile", "examples/paper/gdn_r3.hyb", "--emit", "report", "--format", "json", "--context", "2048"]);
    assert_eq!(report.status.code(), Some(0));
    let json: serde_json::Value = serde_json::from_slice(&report.stdout).expect("JSON report");
    assert_eq!(json["params_total"], 390_976_640u64);
    assert_eq!(json["context"], 2048);
    assert_eq!(json["kv_cache_bytes"], 8u64 * 2 * 16 * 64 * 2 * 2048);

    let text_report = text(&hybc(&["compile", "examples/paper/gdn_r3.hyb"]).stdout);
    assert!(text_report.contains("linear:attention   16:8 (2:1)"), "{text_report}");

    let ir = text(&hybc(&["compile", "examples/tiny/mqar_gdn_3to1.hyb", "--emit", "ir"]).stdout);
    assert!(ir.contains("mixer gdn (preset gated_deltanet) = linear("), "{ir}");

    let config = hybc(&["compile", "examples/paper/gla_r6.hyb", "--emit", "fla-config"]);
    let config: serde_json::Value = serde_json::from_slice(&config.stdout).expect("JSON config");
    assert_eq!(config["model_type"], "gla");

    let refused = hybc(&["compile", "examples/routing/gdn_attn_heads.hyb", "--emit", "fla-config"]);
    assert_eq!(refused.status.code(), Some(1));
    assert!(text(&refused.stderr).contains("help:"));
    assert!(refused.stdout.is_empty(), "nothing wrong may be emitted");

    let pattern =
        hybc(&["compile", "examples/paper/gdn_r6.hyb", "--emit", "megatron-pattern", "--megatron-linear", "M"]);
    assert_eq!(text(&pattern.stdout).trim(), "M-M-M-M-M-*-".repeat(4));
}

/// `--emit program` prints the verified step program the runtime runs; `--emit plan`,
/// `mlir` and `passes` come from the same build.
#[test]
fn compile_emits_the_program_that_runs() {
    let args = ["compile", "examples/tiny/mqar_quick.hyb", "--context", "32"];
    let program = hybc(&[&args[..], &["--emit", "program"]].concat());
    assert_eq!(program.status.code(), Some(0), "{}", text(&program.stderr));
    let program = text(&program.stdout);
    assert!(program.starts_with("program train batch=64 seq_len=32 target=cpu\n"), "{program}");
    for line in ["input tokens -> arena@", "call k0 over [64]", "= scan_fwd(update=delta", "gradient norm:", "adamw k"]
    {
        assert!(program.contains(line), "no `{line}` in\n{program}");
    }
    let plan = text(&hybc(&[&args[..], &["--emit", "plan"]].concat()).stdout);
    let arena = program.lines().nth(1).expect("stores").split_whitespace().nth(1).expect("arena=N").to_string();
    let arena_bytes = arena.trim_start_matches("arena=");
    assert!(plan.contains(arena_bytes), "the plan's arena is the program's ({arena_bytes} bytes):\n{plan}");
    let mlir = text(&hybc(&[&args[..], &["--emit", "mlir"]].concat()).stdout);
    let kernels = program.lines().filter(|l| l.starts_with('k') && l.contains(" = ")).count();
    assert_eq!(mlir.matches("func.func @").count(), kernels, "one module per kernel of the program");
}

/// `--target cuda` compiles as far as this build can, then says no GPU can run it
/// (exit 1, no panic); bf16 storage on the CPU is refused where the file asks for it.
/// On a GPU RetNet's reverse scan runs in its chunked form by default (measured faster)
/// and every other kernel in its lanes form; `HYB_GPU_FORM=lanes` gives every kernel its
/// lanes form; `HYB_GPU_FORM=chunked` gives the reverse scans of RetNet, GLA and the
/// delta rule their chunked form (shared tiles, barriers) and keeps every other kernel's
/// lanes form (HGRN's scan among them: its states are 1 × 1, read without a query). The
/// program stays the same.
#[test]
fn each_key_takes_its_gpu_form() {
    let ptx = |file: &str, form: Option<&str>| {
        let switches: Vec<(&str, &str)> = form.map(|form| ("HYB_GPU_FORM", form)).into_iter().collect();
        let output = hybc_with(&["compile", file, "--target", "cuda", "--emit", "ptx"], &switches);
        assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
        text(&output.stdout)
    };
    let forms = |ptx: &str| -> Vec<String> {
        ptx.lines()
            .filter(|line| line.starts_with("// k") && line.ends_with(" form)"))
            .map(|line| line.to_string())
            .collect()
    };
    // (file, chunked under the switch, chunked by default)
    let files = [
        ("retnet_2to1", true, true),
        ("gdn_2to1", true, false),
        ("gla_2to1", true, false),
        ("hgrn_2to1", false, false),
    ];
    for (file, chunked_scan, by_default) in files {
        let file = format!("examples/tiny/{file}.hyb");
        let lanes = forms(&ptx(&file, Some("lanes")));
        for (form, chunks) in [(Some("chunked"), chunked_scan), (None, by_default)] {
            let got = forms(&ptx(&file, form));
            assert_eq!(lanes.len(), got.len(), "{file}: the same kernels");
            for (before, after) in lanes.iter().zip(&got) {
                assert!(before.ends_with("(lanes form)"), "{before}");
                let changes = chunks && before.contains("scan_bwd");
                let want = if changes { before.replace("(lanes form)", "(chunked form)") } else { before.clone() };
                assert_eq!(after, &want, "{file} under {form:?}");
            }
            let any = got.iter().any(|line| line.ends_with("(chunked form)"));
            assert_eq!(any, chunks, "{file} under {form:?}: {got:?}");
        }
    }
    // A measurement's register bound reaches the PTX of the kernels it names alone; a
    // malformed one is refused.
    let gdn_ptx = ["compile", "examples/tiny/gdn_2to1.hyb", "--target", "cuda", "--emit", "ptx"];
    let bounded = hybc_with(&gdn_ptx, &[("HYB_MAXNREG_KERNELS", "scan_fwd:96")]);
    assert_eq!(bounded.status.code(), Some(0), "{}", text(&bounded.stderr));
    let bounded = text(&bounded.stdout);
    let module = |name: &str| {
        let from = bounded.find(&format!("_{name} (lanes form)")).expect(name);
        let rest = &bounded[from..];
        rest[..rest[1..].find("\n// k").map_or(rest.len(), |end| end + 1)].to_string()
    };
    assert!(module("scan_fwd").contains(".maxnreg 96"), "the bound asked");
    assert!(module("scan_bwd").contains(".maxnreg 128"), "the key's own bound, unchanged");
    let gdn = ["compile", "examples/tiny/gdn_2to1.hyb"];
    let malformed = hybc_with(&gdn, &[("HYB_MAXNREG_KERNELS", "scan_fwd")]);
    assert_eq!(malformed.status.code(), Some(2), "{}", text(&malformed.stderr));
    // A measurement's cap on the chunked form's value blocks (GatedDeltaNet's 64 value
    // channels a head in blocks of 8); a cap past 64 is refused.
    let gdn_mlir = ["compile", "examples/tiny/gdn_2to1.hyb", "--target", "cuda", "--emit", "mlir"];
    let capped = hybc_with(&gdn_mlir, &[("HYB_GPU_FORM", "chunked"), ("HYB_CHUNKED_VALUE_BLOCK", "8")]);
    assert_eq!(capped.status.code(), Some(0), "{}", text(&capped.stderr));
    assert!(text(&capped.stdout).contains("%VB = arith.constant 8 : index"), "blocks of 8 value channels");
    let narrow = hybc_with(&gdn, &[("HYB_CHUNKED_VALUE_BLOCK", "128")]);
    assert_eq!(narrow.status.code(), Some(2), "{}", text(&narrow.stderr));
    // A measurement's threads a chunked block: the phases' stride and the block size
    // promised to ptxas; a count not offered is refused.
    let ptx = ["compile", "examples/tiny/gdn_2to1.hyb", "--target", "cuda", "--emit", "ptx"];
    let wide = hybc_with(&ptx, &[("HYB_GPU_FORM", "chunked"), ("HYB_CHUNKED_THREADS", "256")]);
    assert_eq!(wide.status.code(), Some(0), "{}", text(&wide.stderr));
    assert!(text(&wide.stdout).contains(".maxntid 256"), "blocks of 256 threads");
    let odd = hybc_with(&gdn, &[("HYB_CHUNKED_THREADS", "100")]);
    assert_eq!(odd.status.code(), Some(2), "{}", text(&odd.stderr));
    // A measurement's partial sums: one is the default (one loop a sum), four add
    // the grouped loops; a count not offered is refused.
    let summed = |split: &str| {
        let out = hybc_with(&gdn_mlir, &[("HYB_GPU_FORM", "chunked"), ("HYB_CHUNKED_SPLIT", split)]);
        assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
        text(&out.stdout).matches("scf.for").count()
    };
    assert!(summed("4") > summed("1"), "four partial sums loop in groups");
    let three = hybc_with(&gdn, &[("HYB_CHUNKED_SPLIT", "3")]);
    assert_eq!(three.status.code(), Some(2), "{}", text(&three.stderr));
    let misspelt =
        hybc_with(&["compile", "examples/tiny/retnet_2to1.hyb", "--target", "cuda"], &[("HYB_GPU_FORM", "chunk")]);
    assert_eq!(misspelt.status.code(), Some(2), "a switch naming no form is refused");
    assert!(text(&misspelt.stderr).contains("HYB_GPU_FORM=`chunk` names no GPU form"), "{}", text(&misspelt.stderr));
}

#[test]
fn targets_say_what_they_cannot_do() {
    let run = scratch("cuda-run");
    let cuda = hybc(&[
        "train",
        "examples/tiny/mqar_quick.hyb",
        "--target",
        "cuda",
        "--steps",
        "1",
        "--out",
        run.to_str().expect("utf-8"),
    ]);
    let stderr = text(&cuda.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
    if !cuda.status.success() {
        // No GPU here (CI): compiled as far as it goes, then the reason, exit 1.
        assert_eq!(cuda.status.code(), Some(1), "{stderr}");
        assert!(stderr.contains("compiled for cuda:sm_90a: the step program ("), "{stderr}");
        assert!(stderr.contains("every kernel lowered to PTX"), "{stderr}");
        assert!(stderr.contains("error: cannot run on cuda:sm_90a: no NVIDIA GPU here"), "{stderr}");
    }
    let program = hybc(&["compile", "examples/tiny/mqar_quick.hyb", "--target", "cuda:sm_90a", "--emit", "program"]);
    assert_eq!(program.status.code(), Some(0), "the program is target-neutral: {}", text(&program.stderr));
    assert!(text(&program.stdout).starts_with("program train batch=64 seq_len=128 target=cuda:sm_90a"));
    let ptx = hybc(&["compile", "examples/tiny/mqar_quick.hyb", "--target", "cuda", "--emit", "ptx"]);
    assert_eq!(ptx.status.code(), Some(0), "PTX needs no GPU: {}", text(&ptx.stderr));
    let ptx = text(&ptx.stdout);
    assert_eq!(ptx.matches(".entry k").count(), 30, "a kernel per key of the program");
    assert!(ptx.contains(".target sm_90a") && !ptx.contains("__nv_"), "no libdevice call");
    let cpu_ptx = hybc(&["compile", "examples/tiny/mqar_quick.hyb", "--emit", "ptx"]);
    assert_eq!(cpu_ptx.status.code(), Some(1), "PTX is for a GPU target");
    let usage = hybc(&["compile", "examples/tiny/mqar_quick.hyb", "--target", "tpu"]);
    assert_eq!(usage.status.code(), Some(2));

    let file = scratch("bf16.hyb");
    let source = std::fs::read_to_string(root().join("examples/tiny/mqar_quick.hyb")).expect("readable");
    std::fs::write(&file, source.replace("    batch      = 64\n", "    batch      = 64\n    precision  = bf16\n"))
        .expect("writable");
    // bf16 storage on the CPU: the same mixed-precision program, f32 arithmetic.
    let trained = hybc(&["train", file.to_str().expect("utf-8"), "--steps", "2", "--set", "batch=4"]);
    assert_eq!(trained.status.code(), Some(0), "{}", text(&trained.stderr));
    // On a GPU target the same file compiles to a mixed-precision program: bf16
    // activations, f32 parameters and their gradients, each kernel typed by its call.
    let path = file.to_str().expect("utf-8");
    let mixed = hybc(&["compile", path, "--target", "cuda", "--emit", "program"]);
    assert_eq!(mixed.status.code(), Some(0), "{}", text(&mixed.stderr));
    let mixed = text(&mixed.stdout);
    assert!(mixed.contains(" bf16[64, 128, ") && mixed.contains("param0 f32["), "{mixed}");
    assert!(mixed.lines().any(|l| l.starts_with("k") && l.ends_with("]") && l.contains("[bf16")), "typed kernels");
    let ptx = hybc(&["compile", path, "--target", "cuda", "--emit", "ptx"]);
    assert_eq!(ptx.status.code(), Some(0), "every mixed kernel lowers: {}", text(&ptx.stderr));
    assert!(text(&ptx.stdout).contains(".b16"), "bf16 loads and stores");
    let arena = |program: &str| -> usize {
        let line = program.lines().find(|l| l.starts_with("stores arena=")).expect("stores line");
        line["stores arena=".len()..].split(' ').next().expect("bytes").parse().expect("a number")
    };
    let f32_program = hybc(&["compile", "examples/tiny/mqar_quick.hyb", "--target", "cuda", "--emit", "program"]);
    let (bf16_arena, f32_arena) = (arena(&mixed), arena(&text(&f32_program.stdout)));
    assert!(bf16_arena * 10 < f32_arena * 8, "bf16 activations shrink the arena: {bf16_arena} vs {f32_arena}");

    // A file may carry its target; `--target` overrides it.
    let file = scratch("on_cuda.hyb");
    std::fs::write(&file, source.replace("    batch      = 64\n", "    batch      = 64\n    target     = cuda\n"))
        .expect("writable");
    let path = file.to_str().expect("utf-8");
    let program = hybc(&["compile", path, "--emit", "program"]);
    assert!(text(&program.stdout).starts_with("program train batch=64 seq_len=128 target=cuda:sm_90a"));
    let overridden = hybc(&["compile", path, "--target", "cpu", "--emit", "program"]);
    assert!(text(&overridden.stdout).starts_with("program train batch=64 seq_len=128 target=cpu"));
    assert_eq!(hybc(&["compile", path, "--emit", "ptx"]).status.code(), Some(0), "PTX for the file's target");
    let named = file.with_file_name("on_sm80.hyb");
    std::fs::write(
        &named,
        source.replace("    batch      = 64\n", "    batch      = 64\n    target     = \"cuda:sm_80\"\n"),
    )
    .expect("writable");
    let program = hybc(&["compile", named.to_str().expect("utf-8"), "--emit", "program"]);
    assert!(text(&program.stdout).starts_with("program train batch=64 seq_len=128 target=cuda:sm_80"));
    let wrong = file.with_file_name("on_tpu.hyb");
    std::fs::write(&wrong, source.replace("    batch      = 64\n", "    batch      = 64\n    target     = \"tpu\"\n"))
        .expect("writable");
    let refused = hybc(&["check", wrong.to_str().expect("utf-8")]);
    assert_eq!(refused.status.code(), Some(1));
    assert!(text(&refused.stderr).contains("on_tpu.hyb:18:18"), "{}", text(&refused.stderr));
}

#[test]
fn verify_checks_a_target_against_the_cpu() {
    let same = hybc(&["verify", "bench/gpu/verify/every_mixer.hyb", "--seq-len", "9"]);
    assert_eq!(same.status.code(), Some(0), "{}", text(&same.stderr));
    assert!(text(&same.stdout).starts_with("cpu agrees with the cpu: "), "{}", text(&same.stdout));
    let gpu = hybc(&["verify", "bench/gpu/verify/compositions.hyb", "--target", "cuda", "--seq-len", "9"]);
    let stderr = text(&gpu.stderr);
    if !gpu.status.success() {
        // No GPU here (CI): the reason, exit 1.
        assert!(stderr.contains("cannot run on cuda:sm_90a"), "{stderr}");
        assert_eq!(gpu.status.code(), Some(1), "{stderr}");
    }
    // A bf16 file is checked at one bf16 rounding's tolerance; `--set` reaches the file.
    let mixed = scratch("verify_bf16.hyb");
    let source = std::fs::read_to_string(root().join("examples/tiny/mqar_quick.hyb")).expect("readable");
    std::fs::write(&mixed, source.replace("    batch      = 64\n", "    batch      = 64\n    precision  = bf16\n"))
        .expect("writable");
    let path = mixed.to_str().expect("utf-8");
    let bf16 = hybc(&["verify", path, "--seq-len", "9"]);
    assert_eq!(bf16.status.code(), Some(0), "{}", text(&bf16.stderr));
    assert!(text(&bf16.stdout).contains("within 1e-2"), "{}", text(&bf16.stdout));
    let as_f32 = hybc(&["verify", path, "--seq-len", "9", "--set", "precision=f32"]);
    assert!(text(&as_f32.stdout).contains("within 1e-3"), "{}", text(&as_f32.stdout));
    // The lanes form keeps a head's channels per thread: too wide a head is refused, located.
    let wide = scratch("wide.hyb");
    std::fs::write(
        &wide,
        "mixer attn = attention(heads: 1, head_dim: 1024)\nmodel {\n    vocab = 64\n    d_model = 1024\n    layers = attn\n}\n",
    )
    .expect("writable");
    let lanes = hybc(&["compile", wide.to_str().expect("utf-8"), "--target", "cuda", "--emit", "program"]);
    let stderr = text(&lanes.stderr);
    assert_eq!(lanes.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("mixer `attn` is too wide") && stderr.contains("wide.hyb:5:14"), "{stderr}");
    assert!(stderr.contains("heads of 1024 channels") && stderr.contains("at most 512"), "{stderr}");
}

#[test]
fn fmt_check_and_write() {
    let path = scratch("messy.hyb");
    std::fs::write(&path, "model{d_model=64\nlayers=gla x 2}\n").expect("write");
    let path_text = path.to_str().expect("utf-8 path");
    let check = hybc(&["fmt", "--check", path_text]);
    assert_eq!(check.status.code(), Some(1));
    assert_eq!(hybc(&["fmt", path_text]).status.code(), Some(0));
    assert_eq!(std::fs::read_to_string(&path).expect("read"), "model {\n    d_model = 64\n    layers  = gla × 2\n}\n");
    assert_eq!(hybc(&["fmt", "--check", path_text]).status.code(), Some(0));
}

#[test]
fn import_writes_a_file_that_checks() {
    let out = scratch("imported.hyb");
    let out_text = out.to_str().expect("utf-8 path");
    let import = hybc(&["import", "tests/fla/configs/gdn_340m_r3.json", "-o", out_text]);
    assert_eq!(import.status.code(), Some(0), "{}", text(&import.stderr));
    let imported = std::fs::read_to_string(&out).expect("written");
    assert!(imported.contains("= gdn × 24 with attn every 3\n"), "{imported}");
    let check = hybc(&["check", out_text]);
    assert!(text(&check.stdout).contains("390976640 parameters"), "{}", text(&check.stderr));

    let bad = scratch("bad.json");
    std::fs::write(&bad, "{\"model_type\": \"mamba2\"}").expect("write");
    let refused = hybc(&["import", bad.to_str().expect("utf-8")]);
    assert_eq!(refused.status.code(), Some(1));
}

/// `hybc train` runs the compiled step on the CPU, one line per step, and the loss of a
/// tiny hybrid without a train block falls on the copy task (from about ln 256 toward
/// ln 32 as the alphabet is learned).
#[test]
fn train_prints_a_falling_loss() {
    let (run, file) = (scratch("falling"), scratch("copy.hyb"));
    let model = "mixer gdn = gated_deltanet(heads: 2, head_dim: 64, expand_v: 1)\nmixer attn = attention(heads: 4)\n\
        model {\n    vocab = 256\n    d_model = 128\n    layers = (gdn, attn) × 2\n}\n";
    std::fs::write(&file, model).expect("writable");
    let (file, run) = (file.to_str().expect("utf-8"), run.to_str().expect("utf-8"));
    let out = hybc(&["train", file, "--steps", "30", "--batch", "4", "--seq-len", "32", "--lr", "3e-3", "--out", run]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    let losses: Vec<f64> = stdout
        .lines()
        .filter(|l| l.starts_with("step"))
        .map(|l| l.split_whitespace().nth(3).and_then(|v| v.parse().ok()).expect("step N loss X"))
        .collect();
    assert_eq!(losses.len(), 30, "{stdout}");
    assert!(losses.iter().all(|l| l.is_finite()), "{stdout}");
    let last: f64 = losses[25..].iter().sum::<f64>() / 5.0;
    assert!(losses[0] > 5.0 && last < 4.0, "the loss did not fall: {stdout}");
    let plot = std::fs::read_to_string(Path::new(run).join("loss.svg")).expect("a loss plot next to the run");
    assert!(plot.starts_with("<svg") && plot.contains("<polyline"), "{plot}");
    assert_png(&Path::new(run).join("loss.png"));
}

#[test]
fn train_refuses_a_file_with_errors() {
    let path = scratch("broken_train.hyb");
    std::fs::write(&path, "model { vocab = 0 }\n").expect("writable");
    let out = hybc(&["train", path.to_str().expect("utf-8")]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
}

/// Data-parallel training is refused, before anything runs or is written, where it
/// cannot run: `--gpus` on the CPU, ranks of a launcher on the CPU, `--gpus` under a
/// launcher, inconsistent launch variables.
#[test]
fn data_parallel_training_says_where_it_cannot_run() {
    let run = scratch("ranks_refused");
    let hybc_env = |args: &[&str], env: &[(&str, &str)]| {
        let mut command = Command::new(env!("CARGO_BIN_EXE_hybc"));
        command.args(args).args(["--out", run.to_str().expect("utf-8")]).current_dir(root());
        for name in ["RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT", "SLURM_PROCID", "SLURM_NTASKS"] {
            command.env_remove(name);
        }
        command.envs(env.iter().copied()).output().expect("hybc runs")
    };
    let model = "examples/tiny/mqar_quick.hyb";
    let cpu = hybc_env(&["train", model, "--gpus", "2"], &[]);
    assert_eq!(cpu.status.code(), Some(2));
    assert!(
        text(&cpu.stderr).contains("--gpus 2 trains on GPUs, over NCCL: add --target cuda"),
        "{}",
        text(&cpu.stderr)
    );
    let rank = hybc_env(&["train", model], &[("RANK", "0"), ("WORLD_SIZE", "1"), ("LOCAL_RANK", "0")]);
    assert_eq!(rank.status.code(), Some(1));
    let stderr = text(&rank.stderr);
    assert!(stderr.contains("rank 0 of 1 (local 0): data-parallel training runs on GPUs"), "{stderr}");
    let nested = hybc_env(
        &["train", model, "--gpus", "2"],
        &[
            ("RANK", "0"),
            ("WORLD_SIZE", "2"),
            ("LOCAL_RANK", "0"),
            ("MASTER_ADDR", "127.0.0.1"),
            ("MASTER_PORT", "29500"),
        ],
    );
    assert_eq!(nested.status.code(), Some(2));
    assert!(text(&nested.stderr).contains("--gpus starts the ranks itself"), "{}", text(&nested.stderr));
    let half = hybc_env(&["train", model], &[("RANK", "1")]);
    assert_eq!(half.status.code(), Some(2));
    assert!(text(&half.stderr).contains("WORLD_SIZE is not set"), "{}", text(&half.stderr));
    assert!(!run.exists(), "nothing written");
}

/// A tiny Transformer on its train block's MQAR (8 pairs in 32 tokens), writing to `run`.
fn copy_run(run: &Path, steps: &str, extra: &[&str]) -> Vec<String> {
    let mut args: Vec<String> =
        ["train", "examples/tiny/transformer.hyb", "--steps", steps, "--batch", "2", "--seq-len", "32"]
            .iter()
            .map(|s| s.to_string())
            .collect();
    args.extend(["--out".to_string(), run.to_str().expect("utf-8").to_string()]);
    args.extend(extra.iter().map(|s| s.to_string()));
    if !extra.contains(&"--checkpoint-every") {
        args.extend(["--checkpoint-every".to_string(), "3".to_string()]);
    }
    args
}

/// The metrics of a run without the timing.
fn trajectory(run: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(run.join("metrics.jsonl")).expect("a metrics log");
    text.lines()
        .map(|line| {
            let mut value: serde_json::Value = serde_json::from_str(line).expect("JSON lines");
            value.as_object_mut().expect("an object").remove("train/tokens_per_s");
            value.to_string()
        })
        .collect()
}

/// A run killed with SIGKILL part-way and resumed from its last checkpoint logs exactly
/// the losses (bit for bit) of a run never interrupted.
#[test]
fn a_killed_run_resumes_bit_identically() {
    let (whole, killed) = (scratch("whole"), scratch("killed"));
    let out = hybc(&copy_run(&whole, "24", &[]).iter().map(String::as_str).collect::<Vec<_>>());
    assert!(out.status.success(), "{}", text(&out.stderr));
    let args = copy_run(&killed, "24", &[]);
    let mut child = Command::new(env!("CARGO_BIN_EXE_hybc"))
        .args(&args)
        .current_dir(root())
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("hybc runs");
    let checkpoint = killed.join("checkpoints/step_000006");
    let started = std::time::Instant::now();
    while !checkpoint.exists() {
        assert!(started.elapsed().as_secs() < 120, "no checkpoint appeared");
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    child.kill().expect("SIGKILL");
    child.wait().expect("reaped");
    assert!(!killed.join("checkpoints/step_000024").exists(), "killed before the end");
    let out = hybc(&copy_run(&killed, "24", &["--resume"]).iter().map(String::as_str).collect::<Vec<_>>());
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("resumed from"), "{}", text(&out.stdout));
    assert_eq!(trajectory(&killed), trajectory(&whole));
    // Resuming a finished run trains nothing and reports the same final figures.
    let done = hybc(&copy_run(&whole, "24", &["--resume"]).iter().map(String::as_str).collect::<Vec<_>>());
    assert!(done.status.success(), "{}", text(&done.stderr));
    let (first, again) = (text(&out.stdout), text(&done.stdout));
    assert!(again.contains("the run was complete at step 24"), "{again}");
    let table = |s: &str| s.lines().filter(|l| l.starts_with("| mqar")).map(String::from).collect::<Vec<_>>();
    assert_eq!(table(&again), table(&first));
    let loss = |s: &str| {
        s.lines()
            .find_map(|l| l.split("loss ").nth(1).filter(|_| l.contains("final loss") || l.contains("last loss")))
            .map(String::from)
    };
    assert_eq!(loss(&again), loss(&first));
    assert_eq!(trajectory(&killed), trajectory(&whole), "the log is unchanged");
}

/// `hybc train` of [`copy_run`]'s arguments.
fn train_copy(run: &Path, steps: &str, extra: &[&str]) -> Output {
    hybc(&copy_run(run, steps, extra).iter().map(String::as_str).collect::<Vec<_>>())
}

/// `--resume` of a run stopped before its first checkpoint (its directory holds a log
/// and a half-written checkpoint, or does not exist) starts it afresh and says so.
#[test]
fn resuming_a_run_without_a_checkpoint_starts_it() {
    let (fresh, stopped, missing) = (scratch("fresh"), scratch("stopped_early"), scratch("never_started"));
    let out = train_copy(&fresh, "3", &[]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    std::fs::create_dir_all(stopped.join("checkpoints/step_000003.tmp")).expect("writable");
    std::fs::write(stopped.join("metrics.jsonl"), "{\"step\":1,\"train/loss\":99.0}\n").expect("writable");
    for run in [&stopped, &missing] {
        let out = train_copy(run, "3", &["--resume"]);
        assert!(out.status.success(), "{}", text(&out.stderr));
        assert!(text(&out.stdout).contains("yet; starting the run from step 0"), "{}", text(&out.stdout));
        assert_eq!(trajectory(run), trajectory(&fresh));
    }
}

/// The step lines of a run's log (without evaluations, which a shorter first run adds
/// at its last step).
fn losses(run: &Path) -> Vec<String> {
    trajectory(run).into_iter().filter(|line| !line.contains("\"eval/")).collect()
}

/// A checkpoint that cannot be written (a file-size limit stands in for a full disk)
/// stops the run with the error, leaves no half-written directory and the previous
/// checkpoint as it was, and `--resume` continues from that one bit for bit.
#[test]
fn a_failed_checkpoint_write_keeps_the_previous_one() {
    let (whole, failing) = (scratch("whole_6"), scratch("disk_full"));
    for (run, steps) in [(&whole, "6"), (&failing, "3")] {
        let out = train_copy(run, steps, &[]);
        assert!(out.status.success(), "{}", text(&out.stderr));
    }
    let previous = failing.join("checkpoints/step_000003");
    let weights = std::fs::read(previous.join("model.safetensors")).expect("a checkpoint");
    // Writing past RLIMIT_FSIZE fails with EFBIG once SIGXFSZ is ignored: the step-6
    // weights (over 100 KB) cannot be written, the log and the kept model can.
    let limited = Command::new("sh")
        .args(["-c", "trap '' XFSZ; ulimit -f 64; exec \"$0\" \"$@\"", env!("CARGO_BIN_EXE_hybc")])
        .args(copy_run(&failing, "6", &["--resume"]))
        .current_dir(root())
        .output()
        .expect("sh runs");
    let stderr = text(&limited.stderr);
    assert_eq!(limited.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("error: step 6: the checkpoint was not written: cannot write"), "{stderr}");
    let kept = format!("the previous checkpoint `{}` is intact; `--resume` continues from it", previous.display());
    assert!(stderr.contains(&kept), "{stderr}");
    assert!(!failing.join("checkpoints/step_000006.tmp").exists(), "the half-written checkpoint is removed");
    assert_eq!(std::fs::read(previous.join("model.safetensors")).expect("kept"), weights);
    let out = train_copy(&failing, "6", &["--resume"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("step_000003 (step 3)"), "{}", text(&out.stdout));
    assert_eq!(losses(&failing), losses(&whole));
}

/// `hybc train` with its stdout read line by line.
fn spawn_train(args: &[String]) -> std::process::Child {
    Command::new(env!("CARGO_BIN_EXE_hybc"))
        .args(args)
        .current_dir(root())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("hybc runs")
}

fn send(child: &std::process::Child, signal: i32) {
    // SAFETY: kill(2) on our own child's pid, which it keeps until we wait for it.
    let sent = unsafe { libc::kill(child.id() as i32, signal) };
    assert_eq!(sent, 0, "kill");
}

/// SIGINT during training finishes the step under way, writes a checkpoint there and
/// exits with 130; `--resume` then logs exactly the losses of a run never interrupted.
#[test]
fn sigint_checkpoints_and_the_run_resumes_bit_identically() {
    use std::io::BufRead;
    let (whole, stopped) = (scratch("whole_40"), scratch("sigint"));
    let once = ["--checkpoint-every", "1000"];
    let out = train_copy(&whole, "40", &once);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let mut child = spawn_train(&copy_run(&stopped, "40", &once));
    let mut stdout = String::new();
    let mut lines = std::io::BufReader::new(child.stdout.take().expect("piped")).lines();
    for line in &mut lines {
        let line = line.expect("stdout");
        stdout += &format!("{line}\n");
        if line.starts_with("step") {
            send(&child, libc::SIGINT);
            break;
        }
    }
    lines.for_each(|line| stdout += &format!("{}\n", line.expect("stdout")));
    let status = child.wait().expect("reaped");
    assert_eq!(status.code(), Some(130), "{stdout}");
    let step: u64 = stdout
        .split("stopped by SIGINT after step ")
        .nth(1)
        .and_then(|rest| rest.split(';').next()?.parse().ok())
        .expect("the step it stopped after");
    assert!(step < 40, "{stdout}");
    assert!(stopped.join(format!("checkpoints/step_{step:06}/model.safetensors")).exists(), "{stdout}");
    let out = train_copy(&stopped, "40", &[&once[..], &["--resume"]].concat());
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains(&format!("(step {step})")), "{}", text(&out.stdout));
    assert_eq!(trajectory(&stopped), trajectory(&whole));
}

/// A child training `run` (40 steps), once its signal handlers are installed: it keeps
/// its model text before it compiles.
fn started_run(run: &Path) -> std::process::Child {
    let child = spawn_train(&copy_run(run, "40", &[]));
    let started = std::time::Instant::now();
    while !run.join("model.hyb").exists() {
        assert!(started.elapsed().as_secs() < 60, "the run did not start");
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
    child
}

/// A second signal, 200 ms or more after the first, ends the run at once (here while the
/// step compiles: the process is stopped between the two, so the first has been handled
/// and the loop has not begun): no checkpoint, no summary, the second signal's status.
#[test]
fn a_second_signal_stops_at_once() {
    let run = scratch("two_signals");
    let child = started_run(&run);
    send(&child, libc::SIGTERM);
    std::thread::sleep(std::time::Duration::from_millis(30));
    send(&child, libc::SIGSTOP);
    std::thread::sleep(std::time::Duration::from_millis(400));
    send(&child, libc::SIGINT);
    send(&child, libc::SIGCONT);
    let out = child.wait_with_output().expect("reaped");
    assert_eq!(out.status.code(), Some(130), "{:?}: {}", out.status, text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(!stdout.contains("stopped by") && !stdout.contains("trained"), "{stdout}");
    assert!(any_checkpoint(&run).is_none(), "{stdout}");
}

/// One SIGTERM delivered twice at once — GNU `timeout` signals the command, then its
/// process group — is one request: the run stops at a step boundary, as for one signal.
#[test]
fn a_signal_delivered_twice_is_one_request() {
    let run = scratch("duplicate_signal");
    let child = started_run(&run);
    send(&child, libc::SIGTERM);
    send(&child, libc::SIGTERM);
    let out = child.wait_with_output().expect("reaped");
    assert_eq!(out.status.code(), Some(143), "{:?}: {}", out.status, text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(stdout.contains("stopped by SIGTERM after step "), "{stdout}");
}

fn any_checkpoint(run: &Path) -> Option<PathBuf> {
    let entries = std::fs::read_dir(run.join("checkpoints")).ok()?;
    entries.filter_map(|e| e.ok()).map(|e| e.path()).find(|p| p.is_dir())
}

/// A second run into a directory with checkpoints must say --resume; a checkpoint of
/// another model is refused with the tensor that does not fit.
#[test]
fn checkpoints_are_not_overwritten_or_mixed_up() {
    let run = scratch("guarded");
    let first = hybc(&copy_run(&run, "3", &[]).iter().map(String::as_str).collect::<Vec<_>>());
    assert!(first.status.success(), "{}", text(&first.stderr));
    let again = hybc(&copy_run(&run, "3", &[]).iter().map(String::as_str).collect::<Vec<_>>());
    assert_eq!(again.status.code(), Some(1));
    assert!(text(&again.stderr).contains("--resume"), "{}", text(&again.stderr));
    let mut other = copy_run(&run, "6", &["--resume"]);
    other[1] = "examples/tiny/gdn_2to1.hyb".into();
    let mixed = hybc(&other.iter().map(String::as_str).collect::<Vec<_>>());
    assert_eq!(mixed.status.code(), Some(1));
    assert!(text(&mixed.stderr).contains("model.safetensors"), "{}", text(&mixed.stderr));
}

/// A diverging run stops at the first non-finite loss or gradient, naming the step, and
/// keeps the last good checkpoint.
#[test]
fn a_nan_stops_the_run_and_names_the_step() {
    let run = scratch("diverging");
    let args = copy_run(&run, "20", &["--lr", "1e30", "--checkpoint-every", "1"]);
    let out = hybc(&args.iter().map(String::as_str).collect::<Vec<_>>());
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stdout));
    let stderr = text(&out.stderr);
    assert!(stderr.contains("step ") && stderr.contains("not applied"), "{stderr}");
    let failed: u64 =
        stderr.split("step ").nth(1).and_then(|s| s.split(':').next()).and_then(|s| s.parse().ok()).expect("the step");
    let kept = run.join("checkpoints").join(format!("step_{:06}", failed - 1));
    assert!(failed == 1 || kept.exists(), "the last good checkpoint (step {}) stays: {stderr}", failed - 1);
    assert!(!run.join("checkpoints").join(format!("step_{failed:06}")).exists());
}

/// `hybc export --format fla` writes fla's config.json beside the checkpoint's weights
/// under fla's names (checked once against fla itself: tools/fla_oracle/load_checkpoint.py);
/// a checkpoint of another model is refused.
#[test]
fn export_writes_an_fla_directory() {
    let (run, exported) = (scratch("to_export"), scratch("exported"));
    let out = hybc(&copy_run(&run, "2", &[]).iter().map(String::as_str).collect::<Vec<_>>());
    assert!(out.status.success(), "{}", text(&out.stderr));
    let ckpt = run.join("checkpoints/step_000002");
    let (ckpt, dir) = (ckpt.to_str().expect("utf-8"), exported.to_str().expect("utf-8"));
    let out = hybc(&["export", "examples/tiny/transformer.hyb", "--ckpt", ckpt, "--format", "fla", "-o", dir]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let config: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(exported.join("config.json")).expect("config.json"))
            .expect("JSON");
    assert_eq!(config["model_type"], "transformer");
    let bytes = std::fs::read(exported.join("model.safetensors")).expect("weights");
    let header_len = u64::from_le_bytes(bytes[..8].try_into().expect("8 bytes")) as usize;
    let header: serde_json::Value = serde_json::from_slice(&bytes[8..8 + header_len]).expect("a JSON header");
    let names: Vec<&String> = header.as_object().expect("a map").keys().filter(|k| *k != "__metadata__").collect();
    assert!(names.iter().any(|n| *n == "model.layers.0.attn.q_proj.weight"), "{names:?}");
    assert!(names.iter().any(|n| *n == "model.embeddings.weight") && names.iter().any(|n| *n == "lm_head.weight"));
    assert_eq!(header["model.layers.3.mlp.down_proj.weight"]["shape"], serde_json::json!([128, 512]));
    assert_eq!(config["architectures"], serde_json::json!(["TransformerForCausalLM"]));
    assert_eq!(config["torch_dtype"], "float32");
    let wrong = hybc(&["export", "examples/tiny/gdn_2to1.hyb", "--ckpt", ckpt, "-o", dir]);
    assert_eq!(wrong.status.code(), Some(1), "{}", text(&wrong.stdout));
    assert!(text(&wrong.stderr).contains("not a checkpoint of this model"), "{}", text(&wrong.stderr));

    // bf16: every tensor rounded to nearest, and read back by name (the export loads
    // as a checkpoint: hyb's reader takes fla's directories).
    let half = scratch("exported_bf16");
    let out = hybc(&[
        "export",
        "examples/tiny/transformer.hyb",
        "--ckpt",
        ckpt,
        "--dtype",
        "bf16",
        "-o",
        half.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let config: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(half.join("config.json")).expect("config.json")).expect("JSON");
    assert_eq!(config["torch_dtype"], "bfloat16");
    let bytes = std::fs::read(half.join("model.safetensors")).expect("weights");
    let header_len = u64::from_le_bytes(bytes[..8].try_into().expect("8 bytes")) as usize;
    let header: serde_json::Value = serde_json::from_slice(&bytes[8..8 + header_len]).expect("a JSON header");
    assert_eq!(header["model.embeddings.weight"]["dtype"], "BF16");
    let weights = hyb_train::weights::Weights::open(Path::new(ckpt)).expect("the checkpoint");
    let exported = hyb_train::weights::Weights::open(&half).expect("the export");
    assert_eq!(weights.names(), exported.names(), "every tensor, by name");
    for name in weights.names() {
        let (original, back) = (weights.read(name).expect("reads"), exported.read(name).expect("reads"));
        let rounded: Vec<f32> = original
            .values
            .iter()
            .map(|v| f32::from_bits(u32::from(hyb_train::weights::bf16_bits(*v)) << 16))
            .collect();
        assert_eq!((&back.shape, &back.values), (&original.shape, &rounded), "{name}");
    }

    // The f32 export is a published directory: its config.json is imported as the model,
    // and it continues a prompt exactly as the checkpoint it came from.
    let generate = |ckpt: &str, file: Option<&str>| {
        let mut args = vec!["generate"];
        args.extend(file);
        args.extend(["--ckpt", ckpt, "--prompt", "3 17 42", "--tokens", "4"]);
        let out = hybc(&args);
        assert!(out.status.success(), "{}", text(&out.stderr));
        (text(&out.stdout), text(&out.stderr))
    };
    let (want, _) = generate(ckpt, Some("examples/tiny/transformer.hyb"));
    let (got, notes) = generate(dir, None);
    assert!(notes.contains("config.json`, imported"), "{notes}");
    assert_eq!(got.lines().next(), want.lines().next(), "the same continuation");

    // A run directory means its latest complete checkpoint (a `.tmp` leftover is none).
    std::fs::create_dir_all(run.join("checkpoints/step_000009.tmp")).expect("writable");
    let run_arg = run.to_str().expect("utf-8");
    let using = format!("using {ckpt} (the run's latest checkpoint)");
    let out = hybc(&["export", "examples/tiny/transformer.hyb", "--ckpt", run_arg, "-o", dir]);
    assert!(out.status.success() && text(&out.stderr).contains(&using), "{}", text(&out.stderr));
    let eval = hybc(&["eval", "--ckpt", run_arg]);
    assert!(eval.status.success() && text(&eval.stderr).contains(&using), "{}", text(&eval.stderr));
    // A train-block field no evaluation reads is refused, not ignored.
    let ignored = hybc(&["eval", "--ckpt", run_arg, "--set", "precision=bf16"]);
    assert_eq!(ignored.status.code(), Some(2), "{}", text(&ignored.stderr));
    assert!(text(&ignored.stderr).contains("`--set precision=bf16` would be ignored"), "{}", text(&ignored.stderr));
    let empty = scratch("empty_run");
    std::fs::create_dir_all(empty.join("checkpoints")).expect("writable");
    let none = hybc(&["eval", "--ckpt", empty.to_str().expect("utf-8")]);
    assert_eq!(none.status.code(), Some(2), "{}", text(&none.stderr));
    assert!(text(&none.stderr).contains("without a complete checkpoint"), "{}", text(&none.stderr));
}

/// `hybc sweep` trains every run of the grid (2 mixers × 2 attention periods, each cell
/// a search over 2 learning rates and then 1 seed at the chosen rate), writes the CSV,
/// markdown and SVG, marks the chosen learning rate per cell, and a second invocation
/// finds every run done.
#[test]
fn sweep_runs_the_grid_and_resumes() {
    let (dir, file) = grid_file(
        "sweep",
        "grid.hyb",
        "mixer gdn = gated_deltanet(heads: 2, head_dim: 16, expand_v: 1)\nmixer gla = gla(heads: 2)\n\
         mixer attn = attention(heads: 2)\nlet linear = gdn\nlet attn_every = 2\n\
         model {\n vocab = 64\n d_model = 32\n layers = linear × 4 with attn every attn_every\n}\n\
         train {\n data = mqar(vocab: 64, seq_len: 32, pairs: 4)\n batch = 2\n steps = 2\n}\n\
         eval {\n mqar(seq_len: 32, pairs: 4)\n samples = 8\n batch = 4\n}\n\
         sweep {\n linear = [gdn, gla]\n attn_every = [2, 4]\n lr = [1e-3, 3e-3]\n seeds = 1\n}\n",
    );
    let out = dir.join("runs");
    let args = ["sweep", file.to_str().expect("utf-8"), "--out", out.to_str().expect("utf-8")];
    let with = |extra: &[&str]| sweep_with(&file, &out, extra);
    // As a cluster runs it: the list, two shards as array jobs, a report between them.
    let listed = with(&["--list"]);
    assert_eq!(listed.matches("\tto run\t").count(), 8, "{listed}");
    assert_eq!(listed.matches("\twaits for its search\t").count(), 4, "{listed}");
    assert!(listed.starts_with("0\tto run\tlinear=gdn,attn_every=2,lr=1e-3,seed=1,search\n"), "{listed}");
    // Listing and reporting run nothing: a GPU study lists on a machine without a GPU.
    assert_eq!(with(&["--list", "--target", "cuda"]), listed);
    // A shard's list: its runs, with their indices in the whole grid.
    assert!(listed.ends_with("# 0 done, 8 to run, 4 waiting for their search\n"), "{listed}");
    let second = with(&["--list", "--shard", "1/2"]);
    let wanted: Vec<&str> = listed
        .lines()
        .filter(|line| line.split('\t').next().is_some_and(|i| i.parse::<usize>().is_ok_and(|i| i % 2 == 1)))
        .collect();
    let runs_of =
        |list: &str| list.lines().filter(|line| !line.starts_with('#')).map(str::to_owned).collect::<Vec<_>>();
    assert_eq!(runs_of(&second), wanted, "{second}");
    assert!(second.ends_with("# 0 done, 4 to run, 2 waiting for their search\n"), "the shard's own: {second}");
    assert_eq!(wanted.len(), 6, "{listed}");
    let shard = with(&["--shard", "0/2"]);
    assert!(shard.contains("[1/12]") && shard.contains("[7/12]") && !shard.contains("[2/12]"), "{shard}");
    assert!(shard.contains("[9/12] linear=gdn,attn_every=2,lr=(chosen by the search),seed=0: waits"), "{shard}");
    let partial = with(&["--report"]);
    assert!(partial.contains("4 of 12 runs finished"), "{partial}");
    // What is left, at the pace of the finished runs like each.
    let later = with(&["--list"]);
    let summary = later.lines().last().unwrap_or_default();
    assert!(summary.starts_with("# 4 done, 4 to run, 4 waiting for their search; 8 left: about "), "{later}");
    assert!(summary.contains("s of their machine a run on average"), "{later}");
    assert!(with(&["--report", "--target", "cuda"]).contains("4 of 12 runs finished"));
    let csv = std::fs::read_to_string(out.join("results.csv")).expect("results.csv");
    assert_eq!(csv.lines().count(), 1 + 4, "{csv}");
    // The other half as two jobs at once (each a shard of what is left to run).
    let jobs = with(&["--jobs", "2"]);
    assert!(jobs.contains("2 jobs of ") && jobs.contains("shard 1/2: exit status: 0"), "{jobs}");
    assert!(out.join("shard-0.log").is_file() && out.join("shard-1.log").is_file(), "{jobs}");
    assert!(jobs.contains("second wave"), "a search leaves seeds for a second wave: {jobs}");
    assert!(std::fs::read_to_string(out.join("shard-1.log")).expect("a log").contains("[12/12]"), "{jobs}");
    // The runs shard 0/2 left (the odd searches) dealt over both processes, not left to
    // the one whose shard they were.
    let first = std::fs::read_to_string(out.join("shard-0.log")).expect("a log");
    assert!(first.contains("\n[2/12] linear=gdn,attn_every=2,lr=3e-3,seed=1,search\n"), "{first}");
    assert!(first.contains("\n[6/12] linear=gla,attn_every=2,lr=3e-3,seed=1,search\n"), "{first}");
    // Each run records how many trained at once beside it: one alone, two as jobs.
    let at_once = |run: &str| {
        let result = std::fs::read_to_string(out.join(run).join("result.json")).expect("a result");
        let field = result.lines().find_map(|line| line.trim().strip_prefix("\"at_once\": "));
        field.map(|value| value.trim_end_matches(',').to_string())
    };
    assert_eq!(at_once("linear=gdn,attn_every=2,lr=1e-3,seed=1,search").as_deref(), Some("1"));
    assert_eq!(at_once("linear=gdn,attn_every=2,lr=3e-3,seed=1,search").as_deref(), Some("2"));
    let waves = std::fs::read_dir(&out).expect("runs").filter_map(|e| e.ok()?.file_name().into_string().ok());
    assert_eq!(waves.filter(|name| name.starts_with(".wave")).count(), 0, "the wave's markers go with it");
    // And when it learned, from its log's held-out evaluations: a step or never.
    let result = std::fs::read_to_string(out.join("linear=gdn,attn_every=2,lr=1e-3,seed=1,search/result.json"))
        .expect("a result");
    let learned_at = result.lines().find_map(|line| line.trim().strip_prefix("\"learned_at\": ")).expect("learned_at");
    assert!(learned_at.starts_with("\"never\"") || learned_at.starts_with("{"), "{result}");
    let bad = hybc(&[&args[..], &["--shard", "2/2"]].concat());
    assert_eq!(bad.status.code(), Some(2), "a shard index past the count is a usage error");
    let first = hybc(&args);
    assert!(first.status.success(), "{}{}", text(&first.stdout), text(&first.stderr));
    assert_eq!(text(&first.stdout).matches("done before").count(), 12, "{}", text(&first.stdout));
    let csv = std::fs::read_to_string(out.join("results.csv")).expect("results.csv");
    let rows: Vec<&str> = csv.lines().collect();
    assert_eq!(rows.len(), 1 + 12, "{csv}");
    assert!(rows[0].starts_with("\"linear\",\"attn_every\",lr,seed"), "{csv}");
    let markdown = std::fs::read_to_string(out.join("results.md")).expect("results.md");
    assert_eq!(markdown.matches("(chosen)").count(), 4, "one chosen lr per cell: {markdown}");
    assert!(markdown.contains("| learned at step (each seed) |"), "{markdown}");
    let svg = std::fs::read_to_string(out.join("recall.svg")).expect("recall.svg");
    assert!(svg.contains("<polyline") && svg.contains(">gla<"), "{svg}");
    assert_png(&out.join("recall.png"));
    let run = out.join("linear=gla,attn_every=4,lr=3e-3,seed=1,search/checkpoints/step_000002");
    let eval = hybc(&["eval", "--ckpt", run.to_str().expect("utf-8")]);
    assert!(eval.status.success(), "a sweep run's checkpoint evaluates on its own: {}", text(&eval.stderr));
    let again = hybc(&args);
    assert!(again.status.success(), "{}", text(&again.stderr));
    assert_eq!(text(&again.stdout).matches("done before").count(), 12, "{}", text(&again.stdout));
}

/// `lr_refine = true` with `--jobs 2`: the grid's two rates, then (a second wave) the
/// refinement around the better one — the midpoint 3.16e-3 and half a step beyond the
/// better end — then (a third wave) the seed at the best of the four; listed before as
/// waiting for the search. `lr_extend = 1` adds a slot listed as waiting too, which
/// two steps of training leave not needed (nothing learned: no window to follow), or
/// else trains in a wave of its own.
#[test]
fn a_refined_search_runs_in_three_waves() {
    let (dir, file) = grid_file(
        "sweep_refine",
        "refine.hyb",
        "mixer gdn = gated_deltanet(heads: 2, head_dim: 16, expand_v: 1)\nmixer attn = attention(heads: 2)\n\
         let linear = gdn\nmodel {\n vocab = 64\n d_model = 32\n layers = linear × 2 with attn every 2\n}\n\
         train {\n data = mqar(vocab: 64, seq_len: 32, pairs: 4)\n batch = 2\n steps = 2\n}\n\
         eval {\n mqar(seq_len: 32, pairs: 4)\n samples = 8\n batch = 4\n}\n\
         sweep {\n linear = [gdn]\n lr = [1e-3, 1e-2]\n seeds = 1\n lr_refine = true\n lr_extend = 1\n}\n",
    );
    let out = dir.join("runs");
    let with = |extra: &[&str]| sweep_with(&file, &out, extra);
    let listed = with(&["--list"]);
    assert_eq!(listed.matches("\tto run\t").count(), 2, "{listed}");
    assert!(
        listed.contains("2\twaits for its search\tlinear=gdn,lr=(refined below the search's best),seed=1,search"),
        "{listed}"
    );
    assert!(
        listed.contains("3\twaits for its search\tlinear=gdn,lr=(refined above the search's best),seed=1,search"),
        "{listed}"
    );
    let extension = "4\twaits for its search\tlinear=gdn,lr=(extension 1 past the search's best end),seed=1,search";
    assert!(listed.contains(extension), "{listed}");
    let jobs = with(&["--jobs", "2"]);
    assert!(jobs.contains("first wave: 2 run(s), each cell's learning-rate search"), "{jobs}");
    assert!(jobs.contains("second wave: 2 run(s), each cell's search refined around its best rate"), "{jobs}");
    assert!(jobs.contains("1 run(s), the seeds at each cell's chosen learning rate"), "{jobs}");
    let searched: Vec<String> = std::fs::read_dir(&out)
        .expect("runs")
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|name| name.ends_with(",search"))
        .collect();
    let listed = with(&["--list"]);
    let extended = !listed.contains("\tnot needed\t");
    if extended {
        assert!(jobs.contains("run(s), each cell's search extended past the end its best rate lies at"), "{jobs}");
    } else {
        assert!(jobs.contains("third wave: 1 run(s), the seeds"), "{jobs}");
    }
    assert_eq!(searched.len(), 4 + usize::from(extended), "{searched:?}");
    assert!(searched.contains(&"linear=gdn,lr=3.16e-3,seed=1,search".to_string()), "the midpoint: {searched:?}");
    let beyond = ["linear=gdn,lr=3.16e-4,seed=1,search", "linear=gdn,lr=3.16e-2,seed=1,search"];
    assert!(beyond.iter().any(|run| searched.contains(&run.to_string())), "{searched:?}");
    assert_eq!(listed.matches("\tdone\t").count(), 5 + usize::from(extended), "{listed}");
    let markdown = std::fs::read_to_string(out.join("results.md")).expect("results.md");
    let row = markdown.lines().find(|l| l.starts_with("| gdn | ") && l.contains("3.16e-3: ")).expect("the search row");
    let chosen = listed.lines().find(|l| l.ends_with(",seed=0")).and_then(|l| l.split("lr=").nth(1)).expect("a seed");
    assert!(row.contains(&format!("| {} |", chosen.trim_end_matches(",seed=0"))), "{row} / {listed}");
    assert!(markdown.contains("| refined below | refined above | extended | chosen |"), "{markdown}");
    let result = std::fs::read_to_string(out.join(&searched[0]).join("result.json")).expect("a result");
    assert!(result.contains("\"update\": \"delta\""), "GatedDeltaNet's rule recorded: {result}");
    assert!(result.contains("\"device\": \"cpu ("), "what it trained on recorded: {result}");
}

/// `--time-limit` starts no run that would not finish in time: none once the limit has
/// passed; none guessed (from the longest finished run) to outlast it, alone or under
/// `--jobs`, which then says what is left; every run given room. Each result records
/// its wall time.
#[test]
fn a_time_limit_starts_only_runs_that_fit() {
    let (dir, file) = grid_file(
        "sweep_time_limit",
        "timed.hyb",
        "mixer gdn = gated_deltanet(heads: 2, head_dim: 16, expand_v: 1)\nmixer gla = gla(heads: 2)\n\
         mixer attn = attention(heads: 2)\nlet linear = gdn\n\
         model {\n vocab = 64\n d_model = 32\n layers = linear × 2 with attn every 2\n}\n\
         train {\n data = mqar(vocab: 64, seq_len: 32, pairs: 4)\n batch = 2\n steps = 2\n}\n\
         eval {\n mqar(seq_len: 32, pairs: 4)\n samples = 8\n batch = 4\n}\n\
         sweep {\n linear = [gdn, gla]\n}\n",
    );
    let out = dir.join("runs");
    let with = |extra: &[&str]| sweep_with(&file, &out, extra);
    let passed = with(&["--time-limit", "0s"]);
    assert_eq!(passed.matches("not started (the time limit has passed)").count(), 2, "{passed}");
    assert!(passed.contains("2 run(s) not started within the time limit"), "{passed}");
    assert!(with(&["--list"]).matches("\tto run\t").count() == 2);
    with(&["--shard", "0/2", "--time-limit", "1h"]);
    let gdn = out.join("linear=gdn").join("result.json");
    let result = std::fs::read_to_string(&gdn).expect("gdn's result");
    let seconds: f64 = result
        .lines()
        .find_map(|line| line.trim().strip_prefix("\"seconds\": "))
        .and_then(|figure| figure.trim_end_matches(',').parse().ok())
        .expect("the run's wall time");
    assert!(seconds > 0.0 && seconds < 600.0, "{result}");
    // As if gdn had taken 10,000 s: gla, with no run of its own, is guessed as long.
    let slow = result.replace(&format!("\"seconds\": {seconds}"), "\"seconds\": 10000.0");
    std::fs::write(&gdn, slow).expect("writable");
    let alone = with(&["--time-limit", "1h"]);
    assert!(
        alone.contains("linear=gla: not started (") && alone.contains("a run like it is guessed at 10000 s)"),
        "{alone}"
    );
    let jobs = with(&["--jobs", "2", "--time-limit", "1h"]);
    assert!(jobs.contains("time limit: 1 run(s) left for the next call of the sweep"), "{jobs}");
    assert!(!out.join("linear=gla").join("result.json").exists(), "{jobs}");
    let room = with(&["--time-limit", "5h"]);
    assert!(room.contains("[2/2] linear=gla") && !room.contains("not started"), "{room}");
    assert_eq!(with(&["--list"]).matches("\tdone\t").count(), 2);
    let refused = hybc(&["sweep", file.to_str().expect("utf-8"), "--time-limit", "soon"]);
    assert_eq!(refused.status.code(), Some(2), "{}", text(&refused.stderr));
    assert!(text(&refused.stderr).contains("`soon` is not a duration"), "{}", text(&refused.stderr));
}

/// Under `--time-limit`, `--jobs` starts fewer shards where more runs then fit: one
/// run timed at 100 s alone makes two at once guessed at 233 s each, past a limit of
/// 150 s, while one shard can start its first run.
#[test]
fn a_time_limit_starts_fewer_shards_where_more_runs_then_fit() {
    let (dir, file) = grid_file(
        "sweep_time_limit_shards",
        "timed.hyb",
        "mixer gdn = gated_deltanet(heads: 2, head_dim: 16, expand_v: 1)\nmixer gla = gla(heads: 2)\n\
         mixer gla4 = gla(heads: 4)\nmixer attn = attention(heads: 2)\nlet linear = gdn\n\
         model {\n vocab = 64\n d_model = 32\n layers = linear × 2 with attn every 2\n}\n\
         train {\n data = mqar(vocab: 64, seq_len: 32, pairs: 4)\n batch = 2\n steps = 2\n}\n\
         eval {\n mqar(seq_len: 32, pairs: 4)\n samples = 8\n batch = 4\n}\n\
         sweep {\n linear = [gdn, gla, gla4]\n}\n",
    );
    let out = dir.join("runs");
    sweep_with(&file, &out, &["--shard", "0/3"]);
    let gdn = out.join("linear=gdn").join("result.json");
    let result = std::fs::read_to_string(&gdn).expect("gdn's result");
    let timed: Vec<String> = result
        .lines()
        .map(|line| match line.trim().strip_prefix("\"seconds\": ") {
            Some(_) => "  \"seconds\": 100.0,".to_string(),
            None => line.to_string(),
        })
        .collect();
    assert!(result.contains("\"at_once\": 1"), "a run alone records it: {result}");
    std::fs::write(&gdn, timed.join("\n")).expect("writable");
    // Planned first, training nothing: what such a call would start.
    let plan = sweep_with(&file, &out, &["--list", "--jobs", "2", "--time-limit", "150s"]);
    assert!(plan.contains("# within 150 s, 1 at once (of up to 2): 1 of the 2 ready run(s) would start\n"), "{plan}");
    assert!(plan.contains("#   1\tlinear=gla\tguessed 100 s\n"), "{plan}");
    let alone = sweep_with(&file, &out, &["--list", "--time-limit", "250s"]);
    assert!(alone.contains("1 at once (of up to 1): 2 of the 2 ready run(s) would start"), "{alone}");
    assert!(!out.join("linear=gla").join("result.json").exists(), "a plan trains nothing");
    let path = file.to_str().expect("utf-8");
    for (extra, why) in [
        (&["--list", "--jobs", "2"][..], "--jobs with --list plans a call: give its --time-limit"),
        (&["--list", "--shard", "0/2", "--time-limit", "1h"][..], "leave out --shard"),
    ] {
        let refused = hybc(&[&["sweep", path][..], extra].concat());
        assert_eq!(refused.status.code(), Some(2), "{extra:?}: {}", text(&refused.stderr));
        assert!(text(&refused.stderr).contains(why), "{extra:?}: {}", text(&refused.stderr));
    }
    let jobs = sweep_with(&file, &out, &["--jobs", "2", "--time-limit", "150s"]);
    assert!(jobs.contains("time limit: 1 shard(s) at once rather than 2, so that 1 run(s) can finish"), "{jobs}");
    assert!(out.join("linear=gla").join("result.json").exists(), "{jobs}");
    // The one shard has all the cores.
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let log = std::fs::read_to_string(out.join("shard-0.log")).expect("the shard's log");
    assert!(log.contains(&format!("for cpu ({cores} threads)")), "{log}");
}

/// `hybc sweep FILE --out OUT` with `extra` arguments: its standard output, the test
/// failing with both outputs if it fails.
fn sweep_with(file: &Path, out: &Path, extra: &[&str]) -> String {
    let args = ["sweep", file.to_str().expect("utf-8"), "--out", out.to_str().expect("utf-8")];
    let output = hybc(&[&args[..], extra].concat());
    assert!(output.status.success(), "{}{}", text(&output.stdout), text(&output.stderr));
    text(&output.stdout)
}

/// A PNG of the charts' size at twice the scale (1280 × 800).
fn assert_png(path: &Path) {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    assert!(bytes.starts_with(b"\x89PNG\r\n\x1a\n"), "{} is no PNG", path.display());
    let width = u32::from_be_bytes(bytes[16..20].try_into().expect("IHDR"));
    let height = u32::from_be_bytes(bytes[20..24].try_into().expect("IHDR"));
    assert_eq!((width, height), (1280, 800), "{}", path.display());
}

/// A let holding a whole schedule sweeps pure stacks beside hybrids (what the paper's
/// gain from attention compares, and `attn_every` cannot reach: a rule selecting no
/// layer is an error); each run's share of attention comes from its model, 0 for the
/// pure stack.
#[test]
fn a_sweep_sets_pure_stacks_beside_hybrids() {
    let (dir, file) = grid_file(
        "sweep_stacks",
        "stacks.hyb",
        "mixer gdn = gated_deltanet(heads: 2, head_dim: 16, expand_v: 1)\nmixer attn = attention(heads: 2)\n\
         let linear = gdn\nlet pure = linear × 4\nlet hybrid = linear × 4 with attn every 2\nlet stack = hybrid\n\
         model {\n vocab = 64\n d_model = 32\n layers = stack\n}\n\
         train {\n data = mqar(vocab: 64, seq_len: 32, pairs: 4)\n batch = 2\n steps = 2\n}\n\
         eval {\n mqar(seq_len: 32, pairs: 4)\n samples = 8\n batch = 4\n}\n\
         sweep {\n stack = [pure, hybrid]\n seeds = 1\n}\n",
    );
    let out = dir.join("runs");
    let listed = sweep_with(&file, &out, &["--list"]);
    assert!(listed.contains("\tto run\tstack=pure,seed=0\n") && listed.contains("\tstack=hybrid,seed=0\n"), "{listed}");
    sweep_with(&file, &out, &[]);
    let csv = std::fs::read_to_string(out.join("results.csv")).expect("results.csv");
    let shares: Vec<(String, String)> =
        csv_column(&csv, "stack").into_iter().zip(csv_column(&csv, "attention_share")).collect();
    assert_eq!(shares, [("pure".into(), "0".into()), ("hybrid".into(), "0.5".into())], "{csv}");
}

/// The column `name` of a sweep's results.csv, a field a row, quotes dropped (the lets'
/// names and values are quoted).
fn csv_column(csv: &str, name: &str) -> Vec<String> {
    let fields = |line: &str| line.split(',').map(|f| f.trim_matches('"').to_string()).collect::<Vec<_>>();
    let mut rows = csv.lines().map(fields);
    let header = rows.next().expect("a header");
    let column = header.iter().position(|h| h == name).unwrap_or_else(|| panic!("no {name} column: {csv}"));
    rows.map(|row| row[column].clone()).collect()
}

/// A sweep over a name that is no let is an error pointing at it.
#[test]
fn sweep_refuses_an_unknown_name() {
    let file = scratch("bad_sweep.hyb");
    std::fs::write(&file, "let linear = gdn\nmixer gdn = gated_deltanet(heads: 2)\nmodel {\n vocab = 64\n d_model = 32\n layers = linear\n}\ntrain {\n data = mqar(vocab: 64, seq_len: 32, pairs: 4)\n}\nsweep {\n liner = [gdn]\n}\n").expect("writable");
    let out = hybc(&["check", file.to_str().expect("utf-8")]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("did you mean `linear`?"), "{}", text(&out.stderr));
}

/// `--jobs` on a GPU target places one shard per visible GPU, and with none visible says
/// so before starting anything.
#[test]
fn a_gpu_sweep_needs_a_visible_gpu() {
    let file = scratch("gpu_sweep.hyb");
    std::fs::write(&file, "let linear = gdn\nmixer gdn = gated_deltanet(heads: 2)\nmodel {\n vocab = 64\n d_model = 32\n layers = linear\n}\ntrain {\n data = mqar(vocab: 64, seq_len: 32, pairs: 4)\n steps = 2\n}\nsweep {\n linear = [gdn]\n}\n").expect("writable");
    let path = file.to_str().expect("utf-8");
    let out = Command::new(env!("CARGO_BIN_EXE_hybc"))
        .args(["sweep", path, "--target", "cuda", "--jobs", "2"])
        .env("CUDA_VISIBLE_DEVICES", "")
        .current_dir(root())
        .output()
        .expect("hybc runs");
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains("no GPU is visible"), "{}", text(&out.stderr));
    assert!(!text(&out.stdout).contains("shard 0/2"), "nothing started: {}", text(&out.stdout));
}

/// Shards that share a GPU run under an MPS daemon the sweep starts and stops (here a
/// stand-in `nvidia-cuda-mps-control` on `PATH` that logs its calls; the shards then fail
/// on a machine without a GPU, and the daemon is stopped all the same); without the
/// program the sweep warns that they will take turns; `--no-mps` where nothing shares a
/// GPU is refused.
#[test]
fn shards_sharing_a_gpu_run_under_mps() {
    let file = scratch("mps_sweep.hyb");
    std::fs::write(&file, "let linear = gdn\nmixer gdn = gated_deltanet(heads: 2)\nmodel {\n vocab = 64\n d_model = 32\n layers = linear\n}\ntrain {\n data = mqar(vocab: 64, seq_len: 32, pairs: 4)\n steps = 2\n}\nsweep {\n linear = [gdn]\n}\n").expect("writable");
    let path = file.to_str().expect("utf-8");
    let bin = scratch("fake_mps_bin");
    std::fs::create_dir_all(&bin).expect("writable");
    let control = bin.join("nvidia-cuda-mps-control");
    let log = scratch("fake_mps.log");
    std::fs::write(&control, "#!/bin/sh\ninput=\nif [ \"$1\" != -d ]; then input=$(cat); fi\necho \"args=$* input=$input pipe=$CUDA_MPS_PIPE_DIRECTORY\" >> \"$FAKE_MPS_LOG\"\n").expect("writable");
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&control, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let sweep = |path_var: &str, extra: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_hybc"))
            .args(["sweep", path, "--target", "cuda", "--jobs", "2", "--out"])
            .arg(scratch("mps_sweep_runs"))
            .args(extra)
            .env("CUDA_VISIBLE_DEVICES", "0")
            .env_remove("CUDA_MPS_PIPE_DIRECTORY")
            .env("PATH", path_var)
            .env("FAKE_MPS_LOG", &log)
            .current_dir(root())
            .output()
            .expect("hybc runs")
    };
    let out = sweep(&format!("{}:/usr/bin:/bin", bin.display()), &[]);
    let stdout = text(&out.stdout);
    assert!(stdout.contains("shards share a GPU: started an MPS daemon"), "{stdout}");
    if !out.status.success() {
        assert!(text(&out.stderr).contains("--no-mps runs them without it"), "{}", text(&out.stderr));
    }
    let calls = std::fs::read_to_string(&log).expect("the daemon was called");
    let lines: Vec<&str> = calls.lines().collect();
    assert_eq!(lines.len(), 2, "started once, stopped once: {calls}");
    assert!(lines[0].starts_with("args=-d input= pipe="), "{calls}");
    assert!(lines[1].starts_with("args= input=quit pipe="), "{calls}");
    let pipe = lines[0].rsplit("pipe=").next().expect("a pipe");
    assert!(pipe.contains("hyb-mps-") && lines[1].ends_with(pipe), "the same daemon: {calls}");
    assert!(!Path::new(pipe).exists(), "its directory removed: {pipe}");

    let empty = scratch("empty_path");
    std::fs::create_dir_all(&empty).expect("writable");
    let out = sweep(empty.to_str().expect("utf-8"), &[]);
    assert!(text(&out.stdout).contains("shards share a GPU without MPS"), "{}", text(&out.stdout));
    let out = sweep(&format!("{}:/usr/bin:/bin", bin.display()), &["--no-mps"]);
    assert!(!text(&out.stdout).contains("MPS"), "{}", text(&out.stdout));

    let untouched = scratch("mps_refused_runs");
    let _ = std::fs::remove_dir_all(&untouched);
    let dir = untouched.to_str().expect("utf-8");
    let refused = hybc(&["sweep", path, "--jobs", "2", "--no-mps", "--target", "cpu", "--out", dir]);
    assert_eq!(refused.status.code(), Some(1), "{}", text(&refused.stderr));
    assert!(text(&refused.stderr).contains("--no-mps concerns shards on a GPU"), "{}", text(&refused.stderr));
    assert!(!untouched.exists(), "a refused sweep writes nothing");
    let refused = hybc(&["sweep", path, "--jobs", "1", "--no-mps", "--target", "cuda"]);
    assert!(text(&refused.stderr).contains("with --jobs 1 none share one"), "{}", text(&refused.stderr));
}

/// Ctrl-C (SIGINT to the process group) during `sweep --jobs 2` stops each shard at a
/// checkpoint; the sweep starts no second wave and exits with 130.
#[test]
fn a_signal_stops_every_shard_of_a_sweep() {
    use std::os::unix::process::CommandExt;
    let file = scratch("stopped_sweep.hyb");
    std::fs::write(&file, "let linear = gdn\nmixer gdn = gated_deltanet(heads: 2)\nmodel {\n vocab = 64\n d_model = 32\n layers = linear\n}\ntrain {\n data = mqar(vocab: 64, seq_len: 32, pairs: 4)\n steps = 5000\n log_every = 1\n}\nsweep {\n linear = [gdn]\n lr = [1e-3, 3e-3]\n}\n").expect("writable");
    let out = scratch("stopped_sweep_runs");
    let child = Command::new(env!("CARGO_BIN_EXE_hybc"))
        .args(["sweep", file.to_str().expect("utf-8"), "--jobs", "2", "--out"])
        .arg(&out)
        .current_dir(root())
        .process_group(0)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("hybc runs");
    let started = std::time::Instant::now();
    let training = |out: &Path| {
        let runs = std::fs::read_dir(out).into_iter().flatten().flatten();
        runs.filter(|run| run.path().join("metrics.jsonl").is_file()).count()
    };
    while training(&out) < 2 {
        assert!(started.elapsed().as_secs() < 120, "the shards did not start");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    // SAFETY: kill(2) on the process group of our own child, which leads it.
    assert_eq!(unsafe { libc::kill(-(child.id() as i32), libc::SIGINT) }, 0, "kill");
    let result = child.wait_with_output().expect("reaped");
    let stdout = text(&result.stdout);
    assert_eq!(result.status.code(), Some(130), "{stdout}\n{}", text(&result.stderr));
    assert!(stdout.contains("stopped by SIGINT: each shard at a checkpoint"), "{stdout}");
    assert!(!stdout.contains("second wave"), "{stdout}");
    for shard in ["shard-0.log", "shard-1.log"] {
        let log = std::fs::read_to_string(out.join(shard)).expect("a shard's log");
        assert!(log.contains("stopped by SIGINT"), "{shard}: {log}");
    }
    // Each stopped run says how far it got, for the next call's --time-limit.
    for lr in ["1e-3", "3e-3"] {
        let stopped =
            std::fs::read_to_string(out.join(format!("linear=gdn,lr={lr},seed=3,search")).join("stopped.json"));
        let stopped = stopped.unwrap_or_else(|e| panic!("lr {lr}: {e}"));
        assert!(stopped.contains("\"steps\": 5000") && stopped.contains("\"at_once\": 2"), "{stopped}");
    }
}

/// A result.json as a finished run writes it, with made-up figures.
fn fake_result(dir: &Path, lets: &[(&str, &str)], phase: &str, lr: f64, seed: u64, figures: (f64, f64)) {
    let (held_out, test) = figures;
    let mixer = if lets[0].1 == "gdn" { "gated_deltanet" } else { "retnet" };
    let share = if lets[1].1 == "2" { 0.5 } else { 0.25 };
    let json = serde_json::json!({
        "run": "made up", "lets": lets, "lr": lr, "seed": seed, "params": 1000, "state_bytes": 2048,
        "kv_cache_bytes": 4096, "final_loss": 1.0, "accuracy": [["mqar(seq_len: 32, pairs: 4)", test]],
        "phase": phase, "held_out": ["held-out mqar(seq_len: 32, pairs: 4)", held_out], "steps": 10,
        "mixer": mixer, "attention_share": share,
    });
    std::fs::create_dir_all(dir).expect("writable");
    std::fs::write(dir.join("result.json"), json.to_string()).expect("writable");
}

/// The protocol's selection rule on a made-up table: in every cell the held-out score
/// favours lr 1e-3 and the test score lr 1e-2; the seeds wait for the search, then run
/// at 1e-3. The report's cells (mean ± sd and the 95 % interval, by hand) and its
/// claims follow from the made-up seeds: GatedDeltaNet gains 20 points from 3:1 to
/// 1:1, RetNet 2.
#[test]
fn sweep_chooses_the_rate_on_held_out_scores_not_test_scores() {
    let (dir, file) = grid_file(
        "sweep_choice",
        "choice.hyb",
        "mixer gdn = gated_deltanet(heads: 2, head_dim: 16, expand_v: 1)\nmixer retnet = retnet(heads: 2)\n\
         mixer attn = attention(heads: 2)\nlet linear = gdn\nlet attn_every = 2\n\
         model {\n vocab = 64\n d_model = 32\n layers = linear × 4 with attn every attn_every\n}\n\
         train {\n data = mqar(vocab: 64, seq_len: 32, pairs: 4)\n batch = 2\n steps = 2\n}\n\
         sweep {\n linear = [gdn, retnet]\n attn_every = [2, 4]\n lr = [1e-3, 1e-2]\n seeds = 3\n}\n",
    );
    let out = dir.join("runs");
    let args = ["sweep", file.to_str().expect("utf-8"), "--out", out.to_str().expect("utf-8")];
    let run = |extra: &str| {
        let output = hybc(&[&args[..], &[extra]].concat());
        assert!(output.status.success(), "{}{}", text(&output.stdout), text(&output.stderr));
        text(&output.stdout)
    };
    let recall = |mixer: &str, every: &str| match (mixer, every) {
        ("gdn", "2") => 0.92,
        ("gdn", _) => 0.72,
        (_, "2") => 0.41,
        _ => 0.39,
    };
    for mixer in ["gdn", "retnet"] {
        for every in ["2", "4"] {
            let lets = [("linear", mixer), ("attn_every", every)];
            let cell = format!("linear={mixer},attn_every={every}");
            // Seed 3: one past the measured seeds 0, 1, 2.
            fake_result(&out.join(format!("{cell},lr=1e-3,seed=3,search")), &lets, "search", 1e-3, 3, (0.8, 0.1));
            fake_result(&out.join(format!("{cell},lr=1e-2,seed=3,search")), &lets, "search", 1e-2, 3, (0.2, 0.9));
        }
    }
    let listed = run("--list");
    assert_eq!(listed.matches("\tto run\tlinear=").count(), 12, "{listed}");
    assert!(listed.contains("\tto run\tlinear=retnet,attn_every=4,lr=1e-3,seed=2\n"), "{listed}");
    assert!(!listed.contains("lr=1e-2,seed=0"), "the test score chose nothing: {listed}");
    for mixer in ["gdn", "retnet"] {
        for every in ["2", "4"] {
            let lets = [("linear", mixer), ("attn_every", every)];
            for (seed, offset) in [(0, -0.02), (1, 0.0), (2, 0.02)] {
                let dir = out.join(format!("linear={mixer},attn_every={every},lr=1e-3,seed={seed}"));
                fake_result(&dir, &lets, "seed", 1e-3, seed, (0.5, recall(mixer, every) + offset));
            }
        }
    }
    let report = run("--report");
    assert_eq!(report.matches("1e-3 (chosen)").count(), 4, "{report}");
    // 0.90, 0.92, 0.94: mean 92.0 %, sd 2.0, half-width 4.303 · 2 / √3 = 4.97.
    assert!(report.contains("| gdn | 2 | 1e-3 (chosen) | 3 | 1000 | 2.0 KiB | 4.0 KiB | 10 |"), "{report}");
    assert!(report.contains("92.0 ± 2.0 [87.0, 97.0] %"), "{report}");
    let search_row = "| gdn | 2 | 80.0% | 20.0% | 1e-3 | best at the grid's lowest rate: widen it downwards |";
    assert!(report.contains(search_row), "the search table: {report}");
    // Slopes 0.8 and 0.08 per unit of share, pooled 0.44: 4.4 points per 10.
    assert!(report.contains("| Recall rises with the share of attention. | **supported** |"), "{report}");
    assert!(report.contains("(95 % interval; 12 runs): within each mixer +4.4 ["), "{report}");
    assert!(report.contains("], excludes 0; gated_deltanet alone +8.0 ["), "{report}");
    assert!(report.contains("In hybrids, GatedDeltaNet and HGRN-2 do best. | **supported**"), "{report}");
    assert!(report.contains("retnet − gated_deltanet -7.2 ["), "{report}");
    assert!(report.contains("RetNet gains least from attention. | **supported**"), "{report}");
    assert!(report.contains("barely moves with the ratio. | **not tested by this grid**"), "{report}");
    let svg = std::fs::read_to_string(out.join("recall.svg")).expect("recall.svg");
    assert_eq!(svg.matches("<path d=\"M").count(), 4, "an error bar per cell: {svg}");
    let search = std::fs::read_to_string(out.join("search.svg")).expect("search.svg");
    assert!(search.contains(">gdn, 2<") && search.contains(">1e-2<") && search.contains(">learning rate<"), "{search}");
    let ignored = hybc(&[&args[..], &["--report", "--set", "seed=7"]].concat());
    assert_eq!(ignored.status.code(), Some(1), "{}", text(&ignored.stderr));
    assert!(
        text(&ignored.stderr).contains("`--set seed=7` would be ignored: the sweep's `seeds`"),
        "{}",
        text(&ignored.stderr)
    );
}

/// A miniature of `examples/study/recall.hyb` (its models; a few steps): the budget in
/// tokens becomes steps, the search and the seeds run, a plateau stop with a gain no
/// run can make ends every run after its second evaluation, and the report is written.
#[test]
fn sweep_runs_a_miniature_study() {
    let study = root().join("examples/study/recall.hyb");
    let (dir, file) = grid_file(
        "mini_study",
        "mini.hyb",
        format!(
            "import \"{}\"\ntrain {{\n batch = 2\n schedule = constant()\n eval_every = 1\n}}\n\
             eval {{\n samples = 8\n batch = 4\n}}\n\
             sweep {{\n linear = [gdn, retnet]\n lr = [1e-3, 1e-2]\n seeds = 2\n tokens = 384\n\
             stop = plateau(patience: 1, min_delta: 0.5)\n}}\n",
            study.display()
        ),
    );
    let out = dir.join("runs");
    let run = hybc(&["sweep", file.to_str().expect("utf-8"), "--out", out.to_str().expect("utf-8")]);
    let stdout = text(&run.stdout);
    assert!(run.status.success(), "{stdout}{}", text(&run.stderr));
    assert!(stdout.contains("sweep ") && stdout.contains(": 16 runs into"), "{stdout}");
    assert!(stdout.contains("budget: 384 tokens a run = 3 steps of 2 × 64 tokens"), "{stdout}");
    assert_eq!(stdout.matches("stopped at step 2 of 3: the held-out score had plateaued").count(), 16, "{stdout}");
    let markdown = std::fs::read_to_string(out.join("results.md")).expect("results.md");
    assert_eq!(markdown.matches(" (chosen) | 2 |").count(), 4, "{markdown}");
    assert!(markdown.contains("16 of 16 runs stopped early") && markdown.contains("3 (plateau at 2, 2)"), "{markdown}");
    assert!(markdown.contains("## The paper's claims"), "{markdown}");
    let csv = std::fs::read_to_string(out.join("results.csv")).expect("results.csv");
    let seed_rows: Vec<&str> = csv.lines().skip(1).filter(|row| row.contains(",seed,")).collect();
    assert_eq!(seed_rows.len(), 8, "{csv}");
    assert!(seed_rows[0].contains(",\"gated_deltanet\",0.5,3,2,256,"), "mixer, share, steps, stop, tokens: {csv}");
}

/// Training on a text file (bytes, and a Hugging Face tokenizer.json) and on a u16
/// token file, with perplexity on the validation part; a token id outside the
/// vocabulary is refused.
#[test]
fn trains_on_text_and_token_files() {
    let dir = scratch("text");
    std::fs::create_dir_all(&dir).expect("dir");
    let sentence = "The quick brown fox jumps over the lazy dog; the dog sleeps in the sun. ";
    std::fs::write(dir.join("corpus.txt"), sentence.repeat(60)).expect("writable");
    let ids: Vec<u8> = (0..4000u16).flat_map(|i| ((i * 7) % 300).to_le_bytes()).collect();
    std::fs::write(dir.join("ids.bin"), ids).expect("writable");
    // A word-level Hugging Face tokenizer over the sentence's words.
    let words = [
        "[UNK]", "The", "the", "quick", "brown", "fox", "jumps", "over", "lazy", "dog", ";", "sleeps", "in", "sun", ".",
    ];
    let vocab: serde_json::Map<String, serde_json::Value> =
        words.iter().enumerate().map(|(i, w)| (w.to_string(), serde_json::json!(i))).collect();
    let tokenizer = serde_json::json!({
        "version": "1.0", "truncation": null, "padding": null, "added_tokens": [], "normalizer": null,
        "pre_tokenizer": {"type": "Whitespace"}, "post_processor": null, "decoder": null,
        "model": {"type": "WordLevel", "vocab": vocab, "unk_token": "[UNK]"}
    });
    std::fs::write(dir.join("tokenizer.json"), tokenizer.to_string()).expect("writable");
    let documents: String =
        (0..30).map(|i| format!("{{\"text\": \"{i}: {}\"}}\n", sentence.repeat(1 + i % 3))).collect();
    std::fs::write(dir.join("docs.jsonl"), documents).expect("writable");
    let cases = [
        ("documents", "text(\"docs.jsonl\", split: 0.8)", 257),
        ("text", "text(\"corpus.txt\", split: 0.9)", 256),
        ("tokens", "tokens(\"ids.bin\", dtype: u16, split: 0.9)", 300),
        ("words", "text(\"corpus.txt\", tokenizer: \"tokenizer.json\", split: 0.8)", 16),
    ];
    for (name, data, vocab) in cases {
        let file = dir.join(format!("{name}.hyb"));
        std::fs::write(
            &file,
            format!(
                "mixer gdn = gated_deltanet(heads: 2, head_dim: 16, expand_v: 1)\nmixer attn = attention(heads: 2)\n\
                 model {{\n vocab = {vocab}\n d_model = 32\n layers = (gdn, attn)\n}}\n\
                 train {{\n data = {data}\n seq_len = 32\n batch = 4\n steps = 6\n optimizer = adamw(lr: 1e-2)\n}}\n"
            ),
        )
        .expect("writable");
        let run = dir.join(format!("{name}-run"));
        let out = hybc(&["train", file.to_str().expect("utf-8"), "--out", run.to_str().expect("utf-8")]);
        assert!(out.status.success(), "{name}: {}", text(&out.stderr));
        let stdout = text(&out.stdout);
        assert!(stdout.contains("perplexity(") && stdout.contains("perplexity "), "{stdout}");
        assert_eq!(stdout.contains("bits/byte"), name != "tokens", "{name}: bits per byte where bytes are known");
        if name != "tokens" {
            check_checkpoint_commands(name, &run.join("checkpoints/step_000006"), &stdout, "The quick");
        }
    }
    let small = dir.join("small_vocab.hyb");
    let source =
        std::fs::read_to_string(dir.join("tokens.hyb")).expect("written").replace("vocab = 300", "vocab = 256");
    std::fs::write(&small, source).expect("writable");
    let out = hybc(&["train", small.to_str().expect("utf-8"), "--out", dir.join("small").to_str().expect("utf-8")]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("outside the model's vocab"), "{}", text(&out.stderr));
}

/// `hybc tokenize` writes a Megatron `.bin` + `.idx` of a plain text file (one document)
/// and a JSON Lines file (one per line), byte-level or with a tokenizer.json, that
/// `tokens(...)` trains on; bad input is refused with its place.
#[test]
fn tokenize_writes_a_dataset_that_trains() {
    let dir = scratch("tokenize");
    std::fs::create_dir_all(&dir).expect("dir");
    let path = |name: &str| dir.join(name).to_str().expect("utf-8").to_string();
    std::fs::write(dir.join("a.txt"), "the cat sat on the mat. ".repeat(30)).expect("writable");
    let lines: String = (0..20).map(|i| format!("{{\"body\": \"the mat {i} sat on the cat\"}}\n")).collect();
    std::fs::write(dir.join("b.jsonl"), lines).expect("writable");
    let out = hybc(&["tokenize", &path("a.txt"), &path("b.jsonl"), "--field", "body", "-o", &path("bytes")]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).starts_with("21 documents, "), "{}", text(&out.stdout));
    let bin = std::fs::read(dir.join("bytes.bin")).expect("a .bin");
    assert_eq!(&bin[..4], [b't', 0, b'h', 0], "u16 ids, the bytes of the text");
    let vocab: serde_json::Map<String, serde_json::Value> = ["[UNK]", "</s>", "the", "cat", "sat", "on", "mat", "."]
        .iter()
        .enumerate()
        .map(|(i, w)| (w.to_string(), serde_json::json!(i)))
        .collect();
    let tokenizer = serde_json::json!({
        "version": "1.0", "truncation": null, "padding": null, "added_tokens": [], "normalizer": null,
        "pre_tokenizer": {"type": "Whitespace"}, "post_processor": null, "decoder": null,
        "model": {"type": "WordLevel", "vocab": vocab, "unk_token": "[UNK]"}
    });
    std::fs::write(dir.join("tokenizer.json"), tokenizer.to_string()).expect("writable");
    std::fs::write(dir.join("c.txt"), "on the mat the cat sat. ".repeat(30)).expect("writable");
    let words =
        ["tokenize", &path("a.txt"), &path("c.txt"), "--tokenizer", &path("tokenizer.json"), "-o", &path("words.bin")];
    let out = hybc(&words);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("end of document 1"), "</s> found: {}", text(&out.stdout));
    std::fs::write(
        dir.join("words.hyb"),
        "mixer gla = gla(heads: 2)\nmodel {\n vocab = 8\n d_model = 16\n layers = gla\n}\n\
         train {\n data = tokens(\"words.bin\", split: 0.5)\n seq_len = 16\n batch = 2\n steps = 2\n}\n",
    )
    .expect("writable");
    let out = hybc(&["train", &path("words.hyb"), "--out", &path("words-run")]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("perplexity(words.bin)"), "{}", text(&out.stdout));
    assert!(text(&out.stdout).contains("bits/byte"), "the bytes written beside it: {}", text(&out.stdout));
    std::fs::write(dir.join("bad.jsonl"), "{\"text\": \"a\"}\n{\"text\": 3}\n").expect("writable");
    let bad = hybc(&["tokenize", &path("bad.jsonl"), "-o", &path("bad")]);
    assert_eq!(bad.status.code(), Some(1));
    assert!(text(&bad.stderr).contains("bad.jsonl` line 2: `text` is a number, not a string"), "{}", text(&bad.stderr));
    let wide = hybc(&["tokenize", &path("a.txt"), "--eod", "70000", "--dtype", "u16", "-o", &path("wide")]);
    assert_eq!(wide.status.code(), Some(1));
    assert!(text(&wide.stderr).contains("token id 70000 (document 1, counting from 1) does not fit u16"));
    let missing = hybc(&["tokenize", &path("none.txt"), "-o", &path("none")]);
    assert_eq!(missing.status.code(), Some(2), "{}", text(&missing.stderr));
}

/// `hybc eval` of a run's checkpoint (its model found beside it) reproduces the run's
/// final scores; `hybc generate` continues `prompt` the same way twice (greedy) and
/// differently when sampling hot; a directory without a model is a usage error.
fn check_checkpoint_commands(name: &str, ckpt: &Path, train_stdout: &str, prompt: &str) {
    let ckpt_arg = ckpt.to_str().expect("utf-8");
    let eval = hybc(&["eval", "--ckpt", ckpt_arg]);
    assert!(eval.status.success(), "{name}: {}", text(&eval.stderr));
    for row in text(&eval.stdout).lines().filter(|l| l.starts_with("| ") && !l.starts_with("| task")) {
        let (task, result) = {
            let cells: Vec<&str> = row.split(" | ").collect();
            (cells[0].trim_start_matches("| ").to_string(), cells[1].to_string())
        };
        assert!(train_stdout.contains(&format!("| {task} | {result} |")), "{name}: {row} not in\n{train_stdout}");
    }
    let generate = |extra: &[&str]| {
        let mut args = vec!["generate", "--ckpt", ckpt_arg, "--prompt", prompt, "--tokens", "12"];
        args.extend(extra);
        let out = hybc(&args);
        assert!(out.status.success(), "{name}: {}", text(&out.stderr));
        text(&out.stdout)
    };
    let greedy = generate(&[]);
    assert!(greedy.starts_with(prompt) && greedy.len() > prompt.len(), "{name}: {greedy}");
    assert_eq!(greedy, generate(&[]), "{name}: greedy decoding is deterministic");
    let hot: Vec<String> = (0..3).map(|seed| generate(&["--temperature", "20", "--seed", &seed.to_string()])).collect();
    assert!(hot.iter().any(|h| *h != greedy), "{name}: sampling varies: {hot:?}");
    let lost = hybc(&["generate", "--ckpt", std::env::temp_dir().to_str().expect("utf-8"), "--prompt", prompt]);
    assert_eq!(lost.status.code(), Some(2));
    assert!(text(&lost.stderr).contains("no model.hyb beside"), "{}", text(&lost.stderr));
}

/// Writes `source` as `NAME.hyb` and trains it into `NAME-run`; the run must succeed.
fn train_source(name: &str, source: &str) -> (Output, PathBuf) {
    let (file, run) = (scratch(&format!("{name}.hyb")), scratch(&format!("{name}-run")));
    std::fs::write(&file, source).expect("writable");
    let out = hybc(&["train", file.to_str().expect("utf-8"), "--out", run.to_str().expect("utf-8")]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    (out, run)
}

/// Training and evaluating on forgetting-MQAR.
#[test]
fn trains_on_forgetting_mqar() {
    let (out, _) = train_source(
        "forgetting",
        "mixer attn = attention(heads: 2)\nmodel {\n vocab = 128\n d_model = 32\n layers = attn × 2\n}\n\
         train {\n data = forgetting_mqar(vocab: 128, seq_len: 48, pairs: 8, updates: 4)\n batch = 4\n steps = 3\n}\n",
    );
    assert!(
        text(&out.stdout).contains("forgetting_mqar(seq_len: 48, pairs: 8, updates: 4)  accuracy"),
        "{}",
        text(&out.stdout)
    );
}

/// Training and evaluating on needle-in-a-haystack, accuracy broken down by depth, at
/// two lengths and two variants.
#[test]
fn trains_on_niah_with_a_depth_breakdown() {
    let (out, run) = train_source(
        "niah",
        "mixer attn = attention(heads: 2)\nmodel {\n vocab = 256\n d_model = 32\n layers = attn × 2\n}\n\
         train {\n data = niah(vocab: 256, seq_len: 96, variant: multikey, haystack: noise)\n batch = 4\n steps = 2\n}\n\
         eval {\n niah(seq_len: 96, variant: multikey, haystack: noise)\n\
         niah(seq_len: 192, variant: multivalue, haystack: needles)\n\
         niah(seq_len: 96, haystack: repeat, distances: [8, 80])\n samples = 16\n}\n",
    );
    let stdout = text(&out.stdout);
    assert!(stdout.contains("niah(multivalue, needles, seq_len: 192)  accuracy"), "{stdout}");
    assert!(stdout.contains("niah(single, repeat, seq_len: 96, distances: [8, 80])  accuracy"), "{stdout}");
    let ckpt = run.join("checkpoints/step_000002");
    check_checkpoint_commands("niah", &ckpt, &stdout, "5 17 200");
    let json = std::fs::read_to_string(ckpt.join("eval.json")).expect("eval.json");
    assert!(json.contains("\"depth 0–25%\"") && json.contains("\"accuracy\""), "{json}");
    assert!(json.contains("\"distance 8\"") && json.contains("\"distance 80\""), "{json}");
    assert!(json.contains("\"step\": 2"), "{json}");
    // Evaluation and generation read the weights alone.
    std::fs::remove_file(ckpt.join("optimizer.safetensors")).expect("removable");
    let eval = hybc(&["eval", "--ckpt", ckpt.to_str().expect("utf-8")]);
    assert!(eval.status.success(), "{}", text(&eval.stderr));
    assert_eq!(std::fs::read_to_string(ckpt.join("eval.json")).expect("eval.json"), json);
    assert!(stdout.contains("depth 0–25%"), "{stdout}");
    let metrics = std::fs::read_to_string(run.join("metrics.jsonl")).expect("metrics");
    assert!(metrics.contains("/accuracy/depth 0–25%\":"), "a namespaced key per depth: {metrics}");
}

/// Seeds of one cell are summarised as mean ± standard deviation with the 95 % interval
/// of the mean (Student's t, 2 degrees of freedom for 3 seeds), from the runs' own losses.
#[test]
fn sweep_reports_seeds_with_intervals() {
    let (dir, file) = grid_file(
        "sweep_seeds",
        "seeds.hyb",
        "mixer gla = gla(heads: 2)\nmodel {\n vocab = 64\n d_model = 32\n layers = gla × 1\n}\n\
         train {\n data = mqar(vocab: 64, seq_len: 32, pairs: 4)\n batch = 2\n steps = 2\n}\n\
         sweep {\n seeds = [1, 2, 3]\n}\n",
    );
    let out = dir.join("runs");
    let run = hybc(&["sweep", file.to_str().expect("utf-8"), "--out", out.to_str().expect("utf-8")]);
    assert!(run.status.success(), "{}{}", text(&run.stdout), text(&run.stderr));
    let csv = std::fs::read_to_string(out.join("results.csv")).expect("results.csv");
    let losses: Vec<f64> = csv_column(&csv, "final_loss").iter().map(|l| l.parse().expect("a number")).collect();
    assert_eq!(losses.len(), 3, "{csv}");
    let mean = losses.iter().sum::<f64>() / 3.0;
    let sd = (losses.iter().map(|l| (l - mean).powi(2)).sum::<f64>() / 2.0).sqrt();
    let half = 4.303 * sd / 3f64.sqrt();
    let want = format!("{mean:.4} ± {sd:.4} [{:.4}, {:.4}]", mean - half, mean + half);
    let markdown = std::fs::read_to_string(out.join("results.md")).expect("results.md");
    assert!(markdown.contains("By cell, over its seeds") && markdown.contains(&want), "{want}\n{markdown}");
    assert!(markdown.contains("| 3 |"), "three seeds in the cell: {markdown}");
}

/// `--set` over the train block: the run uses it and keeps it (eval reads it back); a
/// bad value is reported in the `--set` text; a flag and a `--set` of its field together
/// are a usage error.
#[test]
fn set_overrides_the_train_block() {
    let run = scratch("set-run");
    let run_arg = run.to_str().expect("utf-8");
    let file = "examples/tiny/transformer.hyb";
    let sets = ["--set", "steps=2", "--set", "batch=2", "--set", "schedule=constant()", "--set", "seq_len=32"];
    let mut args = vec!["train", file, "--out", run_arg, "--set", "data=mqar(vocab: 256, seq_len: 32, pairs: 4)"];
    args.extend(sets);
    let out = hybc(&args);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("2 steps of batch 2 × 32 tokens"), "{}", text(&out.stdout));
    let eval = hybc(&["eval", "--ckpt", run.join("checkpoints/step_000002").to_str().expect("utf-8")]);
    assert!(eval.status.success(), "the kept --sets apply: {}", text(&eval.stderr));
    let bad = hybc(&["train", file, "--set", "optimizer=adamw(lr: -1)"]);
    assert_eq!(bad.status.code(), Some(1));
    assert!(text(&bad.stderr).contains("<--set>:1:21"), "{}", text(&bad.stderr));
    let unknown = hybc(&["train", file, "--set", "stpes=2"]);
    assert!(text(&unknown.stderr).contains("did you mean `steps`?"), "{}", text(&unknown.stderr));
    let both = hybc(&["train", file, "--steps", "2", "--set", "steps=3"]);
    assert_eq!(both.status.code(), Some(2), "{}", text(&both.stderr));
    assert!(text(&both.stderr).contains("`--steps` and `--set steps=3` both set `steps`"), "{}", text(&both.stderr));
}

/// `keep_checkpoints = 2` (here by `--set`) leaves the newest two checkpoints.
#[test]
fn keep_checkpoints_removes_older_ones() {
    let run = scratch("kept");
    let out = train_copy(&run, "4", &["--checkpoint-every", "1", "--set", "keep_checkpoints=2"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let mut names: Vec<String> = std::fs::read_dir(run.join("checkpoints"))
        .expect("checkpoints")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names, ["step_000003", "step_000004"]);
}

/// A second run of a file goes to `runs/<stem>-2` and says so; a file without a train
/// block says it trains a copy task.
#[test]
fn a_new_run_says_where_it_writes_and_what_it_trains() {
    let (dir, _) = grid_file(
        "second_run",
        "x.hyb",
        "mixer attn = attention(heads: 2)\nmodel {\n vocab = 16\n d_model = 16\n layers = attn\n}\n",
    );
    let train = || {
        let args = ["train", "x.hyb", "--steps", "1", "--batch", "1", "--seq-len", "8"];
        Command::new(env!("CARGO_BIN_EXE_hybc")).args(args).current_dir(&dir).output().expect("hybc runs")
    };
    let first = train();
    assert!(first.status.success(), "{}", text(&first.stderr));
    let stdout = text(&first.stdout);
    assert!(
        stdout.contains("x.hyb has no train block: training a synthetic copy task (8-token sequences)"),
        "{stdout}"
    );
    assert!(!stdout.contains("writing to"), "{stdout}");
    let second = train();
    assert!(second.status.success(), "{}", text(&second.stderr));
    let stdout = text(&second.stdout);
    assert!(stdout.contains("writing to runs/x-2 (runs/x holds an earlier run"), "{stdout}");
    assert!(dir.join("runs/x-2/checkpoints/step_000001").is_dir());
}

/// The run's TensorBoard events, read by TensorBoard's own reader (its
/// `EventAccumulator`, which checks every record's CRC), hold the metrics log's values
/// under `train/...` and `eval/<task>/...`. `scripts/setup.sh` installs TensorBoard; under
/// CI a missing reader fails, elsewhere the check says it is skipped.
#[test]
fn tensorboard_reads_the_runs_events() {
    let probe = std::process::Command::new("python3").args(["-c", "import tensorboard"]).output();
    if !probe.is_ok_and(|out| out.status.success()) {
        assert!(std::env::var("CI").is_err(), "TensorBoard's reader is missing: scripts/setup.sh installs it");
        eprintln!("tensorboard_reads_the_runs_events: skipped: python3 cannot import tensorboard");
        return;
    }
    let run = scratch("tensorboard");
    let out = hybc(&copy_run(&run, "3", &[]).iter().map(String::as_str).collect::<Vec<_>>());
    assert!(out.status.success(), "{}", text(&out.stderr));
    let script = "import sys, json\n\
        from tensorboard.backend.event_processing.event_accumulator import EventAccumulator\n\
        acc = EventAccumulator(sys.argv[1]); acc.Reload()\n\
        print(json.dumps({tag: [[s.step, s.value] for s in acc.Scalars(tag)] for tag in acc.Tags()['scalars']}))\n";
    let read = std::process::Command::new("python3").args(["-c", script, run.to_str().expect("utf-8")]).output();
    let read = read.expect("python3 runs");
    assert!(read.status.success(), "{}", text(&read.stderr));
    let scalars: serde_json::Value = serde_json::from_str(text(&read.stdout).trim()).expect("JSON");
    let log = std::fs::read_to_string(run.join("metrics.jsonl")).expect("metrics.jsonl");
    let lines: Vec<serde_json::Value> = log.lines().map(|l| serde_json::from_str(l).expect("JSON")).collect();
    let losses: Vec<(u64, f32)> = lines
        .iter()
        .filter_map(|l| Some((l["step"].as_u64().expect("a step"), l.get("train/loss")?.as_f64()? as f32)))
        .collect();
    assert!(!losses.is_empty(), "namespaced `train/loss` keys in {log}");
    let read_back: Vec<(u64, f32)> = scalars["train/loss"]
        .as_array()
        .expect("train/loss")
        .iter()
        .map(|p| (p[0].as_u64().expect("a step"), p[1].as_f64().expect("a value") as f32))
        .collect();
    assert_eq!(read_back, losses, "train/loss as logged");
    let (tag, accuracy) = lines
        .iter()
        .flat_map(|l| l.as_object().expect("an object"))
        .find(|(key, _)| key.starts_with("eval/") && key.ends_with("/accuracy"))
        .expect("an evaluation's accuracy");
    let read = scalars[tag][0][1].as_f64().expect("the eval accuracy") as f32;
    assert_eq!(read, accuracy.as_f64().expect("accuracy") as f32, "{tag}");
    assert!(lines.iter().all(|l| l.get("loss").is_none() && l.get("eval").is_none()), "no bare keys: {log}");
}

/// A run's charts: one per kind of figure (a perplexity is never drawn on an accuracy
/// axis), round tick values, and legends that fit the image.
#[test]
fn run_charts_have_one_axis_per_figure_and_round_ticks() {
    let run = scratch("charts");
    let args = ["train", "examples/tiny/text_gla.hyb", "--steps", "2", "--batch", "2", "--seq-len", "32", "--out"];
    let out = hybc(&[&args[..], &[run.to_str().expect("utf-8")]].concat());
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(run.join("perplexity.svg").is_file() && !run.join("eval.svg").exists(), "perplexity has its own chart");
    for chart in ["loss.svg", "perplexity.svg"] {
        let svg = std::fs::read_to_string(run.join(chart)).expect("a chart");
        let ticks: Vec<f64> = svg
            .split("text-anchor=\"end\">")
            .skip(1)
            .map(|rest| rest.split('<').next().expect("a label").parse().expect("a number"))
            .collect();
        assert!(ticks.len() >= 3, "{chart}: {ticks:?}");
        let step = ticks[1] - ticks[0];
        let mantissa = step / 10f64.powf(step.log10().floor());
        assert!([1.0, 2.0, 5.0].iter().any(|m| (mantissa - m).abs() < 1e-9), "{chart}: step {step}");
        assert!(ticks.iter().all(|t| (t / step - (t / step).round()).abs() < 1e-9), "{chart}: {ticks:?}");
        // Every legend entry ends inside the 640-pixel image (about 6.8 pixels a character).
        for entry in svg.split("<text x=\"").skip(1).filter(|t| !t.contains("text-anchor")) {
            let x: f64 = entry.split('"').next().expect("x").parse().expect("a number");
            let label = entry.split('>').nth(1).expect("a label").split('<').next().expect("text");
            assert!(x + 6.8 * label.chars().count() as f64 <= 640.0, "{chart}: `{label}` at {x} runs off");
        }
    }
}

/// `--threads N` sizes the CPU backend's pool (the compile line names the device); 0 is a
/// usage error.
#[test]
fn threads_size_the_cpu_backend() {
    let run = scratch("threads");
    let mut args = copy_run(&run, "1", &[]);
    args.extend(["--threads".to_string(), "1".to_string()]);
    let out = hybc(&args.iter().map(String::as_str).collect::<Vec<_>>());
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("for cpu (1 threads)"), "{}", text(&out.stdout));
    let zero = hybc(&["--threads", "0", "check", "examples/tiny/transformer.hyb"]);
    assert_eq!(zero.status.code(), Some(2), "{}", text(&zero.stderr));
}

/// `--init-from` starts a new run from another run's weights (its latest checkpoint) with
/// a fresh optimizer: at a learning rate of 1e-12 one step leaves them where they were.
#[test]
fn init_from_starts_a_run_from_other_weights() {
    let (first, second) = (scratch("init_source"), scratch("init_target"));
    let out = hybc(&copy_run(&first, "2", &[]).iter().map(String::as_str).collect::<Vec<_>>());
    assert!(out.status.success(), "{}", text(&out.stderr));
    let from = first.to_str().expect("utf-8");
    let args = copy_run(&second, "1", &["--init-from", from, "--lr", "1e-12"]);
    let out = hybc(&args.iter().map(String::as_str).collect::<Vec<_>>());
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("initialised from"), "{}", text(&out.stdout));
    let read = |dir: &Path| hyb_train::weights::Weights::open(dir).expect("a checkpoint");
    let (source, tuned) = (read(&first.join("checkpoints/step_000002")), read(&second.join("checkpoints/step_000001")));
    for name in source.names() {
        let (a, b) = (source.read(name).expect("reads").values, tuned.read(name).expect("reads").values);
        let worst = a.iter().zip(&b).map(|(x, y)| (x - y).abs()).fold(0.0f32, f32::max);
        assert!(worst < 1e-6, "{name}: moved by {worst}");
    }
    let both = hybc(&[&args.iter().map(String::as_str).collect::<Vec<_>>()[..], &["--resume"]].concat());
    assert_eq!(both.status.code(), Some(2), "--init-from and --resume together are a usage error");
}

/// `generate --stop TEXT` ends the continuation once it holds TEXT (printed), and
/// `--max-new-tokens` is `--tokens`; a `--top-p` outside (0, 1] is a usage error.
#[test]
fn generation_stops_at_a_stop_string() {
    let run = scratch("stop");
    let out = hybc(&copy_run(&run, "2", &[]).iter().map(String::as_str).collect::<Vec<_>>());
    assert!(out.status.success(), "{}", text(&out.stderr));
    let ckpt = run.to_str().expect("utf-8");
    let generate = |extra: &[&str]| {
        let out = hybc(&[&["generate", "--ckpt", ckpt, "--prompt", "3 17 42"][..], extra].concat());
        assert!(out.status.success(), "{}", text(&out.stderr));
        text(&out.stdout).trim().to_string()
    };
    let full = generate(&["--max-new-tokens", "6"]);
    let ids: Vec<&str> = full.split(' ').collect();
    assert_eq!(ids.len(), 3 + 6, "{full}");
    let stop = format!(" {}", ids[4]);
    let stopped = generate(&["--tokens", "6", "--stop", &stop]);
    // The continuation printed token by token until it holds the stop text.
    let mut continuation = String::new();
    let mut last = 3;
    for (i, id) in ids.iter().enumerate().skip(3) {
        continuation.push_str(&format!(" {id}"));
        last = i;
        if continuation.contains(&stop) {
            break;
        }
    }
    assert!(last <= 4, "the stop text is in the first two new tokens");
    assert_eq!(stopped, ids[..=last].join(" "), "stops right after the stop text");
    let bad = hybc(&["generate", "--ckpt", ckpt, "--prompt", "3", "--top-p", "1.5"]);
    assert_eq!(bad.status.code(), Some(2));
}

/// `generate --prompts FILE --batch N`: prompts of different lengths decoded together
/// (a last group shorter than the batch too) give each the continuation it gets alone;
/// one JSON line per prompt, in the file's order.
#[test]
fn a_file_of_prompts_decodes_in_batches_as_one_by_one() {
    let run = scratch("prompts");
    let out = hybc(&copy_run(&run, "2", &[]).iter().map(String::as_str).collect::<Vec<_>>());
    assert!(out.status.success(), "{}", text(&out.stderr));
    let ckpt = run.to_str().expect("utf-8");
    let prompts = ["3 17 42", "5", "9 9 1 30 2", "7 8"];
    let file = scratch("prompts.txt");
    std::fs::write(&file, format!("{}\n\n", prompts.join("\n"))).expect("writable");
    let batched = hybc(&[
        "generate",
        "--ckpt",
        ckpt,
        "--prompts",
        file.to_str().expect("utf-8"),
        "--batch",
        "3",
        "--tokens",
        "5",
    ]);
    assert!(batched.status.success(), "{}", text(&batched.stderr));
    let lines: Vec<serde_json::Value> =
        text(&batched.stdout).lines().map(|l| serde_json::from_str(l).expect("a JSON line")).collect();
    assert_eq!(lines.len(), prompts.len(), "empty lines are no prompts");
    for (prompt, line) in prompts.iter().zip(&lines) {
        let alone = hybc(&["generate", "--ckpt", ckpt, "--prompt", prompt, "--tokens", "5"]);
        let alone = text(&alone.stdout).trim().to_string();
        assert_eq!(line["prompt"], *prompt);
        assert_eq!(line["new_tokens"], 5);
        let completion = line["completion"].as_str().expect("text");
        assert_eq!(format!("{prompt}{completion}"), alone, "batched as alone");
    }
    let distinct: std::collections::BTreeSet<&str> = lines.iter().filter_map(|l| l["completion"].as_str()).collect();
    assert!(distinct.len() > 1, "the prompts lead to different continuations: {distinct:?}");
    let both = hybc(&["generate", "--ckpt", ckpt, "--prompt", "3", "--prompts", file.to_str().expect("utf-8")]);
    assert_eq!(both.status.code(), Some(2), "--prompt or --prompts");
    let empty = scratch("no-prompts.txt");
    std::fs::write(&empty, "\n \n").expect("writable");
    let none = hybc(&["generate", "--ckpt", ckpt, "--prompts", empty.to_str().expect("utf-8")]);
    assert_eq!(none.status.code(), Some(1));
    assert!(text(&none.stderr).contains("holds no prompt"), "{}", text(&none.stderr));
}
