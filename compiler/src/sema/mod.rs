//! Semantic analysis: a parsed file (and its imports) to the model IR.
//!
//! Steps, in order: [`scope::collect`] gathers items across imports; the `model` block
//! gives the width and vocabulary; [`schedule::expand`] flattens `layers`; each mixer
//! the schedule names is resolved once by [`mixer::resolve`] to the generic
//! description (every mixer declared in the checked file is checked, used or not);
//! parameters are derived
//! by [`crate::ir::params`]; [`train`] checks the `train` and `eval` blocks. Errors are
//! collected, not thrown: one run reports every independent mistake it can.

pub mod mixer;
pub mod presets;
pub mod schedule;
pub mod scope;
pub mod settings;
pub mod sweep;
pub mod tasks;
pub mod train;
pub mod values;

use std::collections::HashMap;

use hyb_grammar::ast::{Expr, ExprKind};
use hyb_grammar::{Diagnostic, FileId, Span};

use crate::arena::{Arena, Handle};
use crate::ir::*;
use crate::source::SourceMap;
use mixer::MixerCx;
use values::{Args, Cx, unknown_name};

/// The outcome of checking: the model if there were no errors, and every diagnostic
/// (warnings included), sorted by position.
pub struct Checked {
    pub model: Option<Model>,
    pub diagnostics: Vec<Diagnostic>,
}

impl Checked {
    pub fn has_errors(&self) -> bool {
        self.diagnostics.iter().any(Diagnostic::is_error)
    }
}

pub const MODEL_FIELDS: &[&str] =
    &["vocab", "d_model", "layers", "mlp", "norm", "tie_embeddings", "init_std", "max_position"];

/// Checks the file `root` (already loaded into `sources`) and everything it imports.
pub fn check(sources: &mut SourceMap, root: FileId) -> Checked {
    check_with(sources, root, &[])
}

/// [`check`] with command-line `--set name=value` texts laid over the train and eval
/// blocks (see [`settings`]).
pub fn check_with(sources: &mut SourceMap, root: FileId, sets: &[String]) -> Checked {
    let mut diagnostics = Vec::new();
    let settings = settings::parse(sources, sets, &mut diagnostics);
    let root_name = sources.file(root).path.display().to_string();
    let model = scope::collect(sources, root, &mut diagnostics).and_then(|mut scope| {
        settings::apply(&mut scope, &settings, &root_name, &mut diagnostics);
        let cx = Cx::new(&scope);
        let model = build_model(&cx);
        diagnostics.extend(cx.diagnostics.into_inner());
        model
    });
    diagnostics.sort_by_key(|d| (d.primary_span().map(|s| (s.file, s.start)), d.severity));
    let has_errors = diagnostics.iter().any(Diagnostic::is_error);
    Checked { model: if has_errors { None } else { model }, diagnostics }
}

fn build_model(cx: &Cx) -> Option<Model> {
    let block = &cx.scope.model;
    let Some(model_span) = block.span else {
        cx.error(
            Diagnostic::error("no `model { ... }` block")
                .at(
                    Span { file: cx.scope.root, start: 0, end: 0 },
                    "expected a model block in this file or its imports",
                )
                .help(if cx.scope.mixers.is_empty() && cx.scope.lets.is_empty() {
                    "add `model { d_model = 256  layers = (gdn × 3, attn) × 2 }`"
                } else {
                    "this file declares mixers or lets but no model, like a library: check a file that imports it, or add a `model` block"
                }),
        );
        return None;
    };
    for (name, def) in &block.fields {
        if !MODEL_FIELDS.contains(&name.as_str()) {
            cx.error(unknown_name(name, def.name_span, "model field", MODEL_FIELDS));
        }
    }
    let field = |name: &str| block.fields.get(name).map(|def| &def.value);
    let single = |name: &str| -> Option<&Expr> {
        let field = field(name)?;
        if field.value.seq.len() != 1 || !field.value.rules.is_empty() {
            cx.error(
                Diagnostic::error(format!("`{name}` takes one value"))
                    .at(field.value.span, "a list of values")
                    .help("only `layers` takes a comma-separated schedule"),
            );
            return None;
        }
        Some(&field.value.seq[0])
    };
    let required = |name: &str, example: &str| {
        if field(name).is_none() {
            cx.error(
                Diagnostic::error(format!("the model block has no `{name}`"))
                    .at(model_span, format!("`{name}` is required"))
                    .help(format!("add `{name} = {example}`")),
            );
        }
    };
    required("d_model", "256");
    required("layers", "(gdn × 3, attn) × 2");
    let vocab = match single("vocab") {
        Some(expr) => cx.count(expr, "vocab", 2, 1 << 24),
        None if field("vocab").is_none() => Some(32000),
        None => None,
    };
    let d_model = single("d_model").and_then(|expr| cx.count(expr, "d_model", 1, 1 << 16));
    let tie_embeddings = match single("tie_embeddings") {
        Some(expr) => cx.bool(expr, "tie_embeddings"),
        None => Some(false),
    };
    let init_std = match single("init_std") {
        Some(expr) => cx.float(expr, "init_std", 0.0, 10.0),
        None => Some(0.02),
    };
    let max_position = match single("max_position") {
        Some(expr) => cx.count(expr, "max_position", 1, 1 << 24),
        None => Some(2048),
    };
    let norm_eps = match single("norm") {
        Some(expr) => norm(cx, expr),
        None => Some(1e-6),
    };
    let Some(d_model) = d_model else {
        // Without a width no mixer can be resolved; the train and eval blocks still can.
        let fallback = ModelConfig {
            vocab: vocab.unwrap_or(u64::MAX),
            d_model: 1,
            mlp: Mlp { intermediate: 1, ratio: None, explicit: true, act: Act::Silu },
            norm_eps: 1e-6,
            tie_embeddings: false,
            init_std: 0.02,
            max_position: 1,
        };
        let train = train::check_train(cx, &fallback);
        train::check_eval(cx, &fallback, train.as_ref(), &Arena::default(), &[]);
        return None;
    };
    let mcx = MixerCx { cx, d_model, defining: None };

    // Every mixer declared in this file is checked, used or not; an imported library's
    // mixers are checked where they are used (a library may hold mixers too wide for
    // this model's width).
    let mut resolved_by_name: HashMap<String, mixer::Resolved> = HashMap::new();
    for (name, def) in cx.scope.mixers.iter().filter(|(_, def)| def.name_span.file == cx.scope.root) {
        if let Some(resolved) = mixer::resolve(MixerCx { defining: Some(name.as_str()), ..mcx }, &def.value, 0) {
            resolved_by_name.insert(name.clone(), resolved);
        }
    }
    let layers_value = &field("layers")?.value;
    let slots = schedule::expand(cx, layers_value)?;
    let mut mixers: Arena<Mixer> = Arena::default();
    // Each mixer resolved once; `None` remembers a failure (already reported).
    let mut handles: HashMap<String, Option<Handle<Mixer>>> = HashMap::new();
    let mut layers = Vec::new();
    for slot in &slots {
        let name = mixer_label(slot.mixer);
        let handle = match handles.get(&name) {
            Some(Some(handle)) => *handle,
            Some(None) => continue,
            None => {
                let resolved = match &slot.mixer.kind {
                    ExprKind::Name(ident) if cx.scope.mixers.contains_key(&ident.text) => {
                        let def = &cx.scope.mixers[&ident.text];
                        if def.name_span.file == cx.scope.root {
                            // Resolved above; a failure there was reported there.
                            resolved_by_name.remove(&ident.text)
                        } else {
                            mixer::resolve(MixerCx { defining: Some(ident.text.as_str()), ..mcx }, &def.value, 0)
                        }
                    }
                    _ => mixer::resolve(mcx, slot.mixer, 0),
                };
                let Some(resolved) = resolved else {
                    handles.insert(name, None);
                    continue;
                };
                let handle = mixers.alloc(Mixer {
                    name: name.clone(),
                    preset: resolved.preset,
                    kind: resolved.kind,
                    span: slot.mixer.span,
                });
                handles.insert(name, Some(handle));
                handle
            }
        };
        layers.push(Layer { mixer: handle, span: slot.span });
    }
    if cx.has_errors() {
        return None;
    }
    let mlp = mlp(cx, field("mlp").and_then(|_| single("mlp")), d_model, &mixers, &layers)?;
    let config = ModelConfig {
        vocab: vocab?,
        d_model,
        mlp,
        norm_eps: norm_eps?,
        tie_embeddings: tie_embeddings?,
        init_std: init_std?,
        max_position: max_position?,
    };
    check_lower_bounds(cx, &mixers, &layers)?;
    let params = params::model_params(&config, &mixers, &layers);
    let train = train::check_train(cx, &config);
    let eval = train::check_eval(cx, &config, train.as_ref(), &mixers, &layers);
    let sweep = sweep::check_sweep(cx, train.as_ref());
    if cx.has_errors() {
        return None;
    }
    let model = Model { config, mixers, layers, params, train, eval, sweep };
    #[cfg(debug_assertions)]
    if let Err(errors) = crate::ir::verify::verify(&model) {
        panic!("sema built an IR that does not verify (a compiler bug): {errors:?}");
    }
    Some(model)
}

/// The name a layer's mixer is known by: the identifier, or the call's text.
fn mixer_label(expr: &Expr) -> String {
    match &expr.kind {
        ExprKind::Name(name) => name.text.clone(),
        _ => crate::fmt::expr_to_string(expr),
    }
}

/// `norm = rmsnorm(eps: 1e-6)`.
fn norm(cx: &Cx, expr: &Expr) -> Option<f64> {
    let call = cx.call(expr, "a norm", &["rmsnorm"], "`norm = rmsnorm(eps: 1e-6)`")?;
    let args = Args::new(cx, call.name, call.span, call.args, &["eps"], 0);
    presets::opt_float(cx, &args, "eps", 1e-6, 1e-12, 1.0)
}

/// `mlp = swiglu(ratio: 4)` or `swiglu(intermediate: 2816)`; fla's width rounding.
fn mlp(cx: &Cx, expr: Option<&Expr>, d_model: u64, mixers: &Arena<Mixer>, layers: &[Layer]) -> Option<Mlp> {
    // fla's RetNet config defaults hidden_ratio to 2; every other family to 4.
    let all_retnet =
        layers.iter().all(|l| matches!(mixers[l.mixer].preset, Some(Preset::RetNet) | Some(Preset::Attention)))
            && layers.iter().any(|l| mixers[l.mixer].preset == Some(Preset::RetNet));
    let default_ratio = if all_retnet { 2.0 } else { 4.0 };
    let (ratio, intermediate) = match expr {
        None => (default_ratio, None),
        Some(expr) => {
            let call =
                cx.call(expr, "an MLP", &["swiglu"], "`mlp = swiglu(ratio: 4)` or `swiglu(intermediate: 2816)`")?;
            let args = Args::new(cx, call.name, call.span, call.args, &["ratio", "intermediate"], 0);
            let ratio = presets::opt_float(cx, &args, "ratio", default_ratio, 0.01, 64.0)?;
            let intermediate = match args.get("intermediate") {
                Some(expr) => Some(cx.count(expr, "intermediate", 1, 1 << 20)?),
                None => None,
            };
            (ratio, intermediate)
        }
    };
    Some(match intermediate {
        Some(width) => Mlp { intermediate: width, ratio: Some(ratio), explicit: true, act: Act::Silu },
        None => {
            Mlp { intermediate: fla_intermediate(d_model, ratio), ratio: Some(ratio), explicit: false, act: Act::Silu }
        }
    })
}

/// fla's `intermediate_size`: `256 · ceil(int(d · ratio · 2/3) / 256)`.
pub fn fla_intermediate(d_model: u64, ratio: f64) -> u64 {
    let raw = (d_model as f64 * ratio * 2.0 / 3.0) as u64;
    raw.div_ceil(256) * 256
}

/// All layer-wise lower bounds share one `[L, width]` parameter, so their gate widths
/// must agree.
fn check_lower_bounds(cx: &Cx, mixers: &Arena<Mixer>, layers: &[Layer]) -> Option<()> {
    let mut first: Option<(u64, Span)> = None;
    for layer in layers {
        let mixer = &mixers[layer.mixer];
        let Some(width) = params::lower_bound_width(&mixer.kind) else {
            continue;
        };
        match first {
            None => first = Some((width, mixer.span)),
            Some((expected, span)) if expected != width => {
                cx.error(
                    Diagnostic::error(format!("layer-wise lower bounds of width {expected} and {width} in one model"))
                        .at(mixer.span, format!("gate width {width}"))
                        .also(span, format!("gate width {expected}"))
                        .help("the bounds are one [layers, width] parameter; give these mixers the same gate width"),
                );
                return None;
            }
            Some(_) => {}
        }
    }
    Some(())
}
