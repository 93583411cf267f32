//! One run of a sweep: its text compiled with the run's lets, trained into its
//! directory, and its figures written to `result.json` — or, stopped by a signal, how
//! far it got to `stopped.json` ([`crate::deadline::Stopped`]).

use std::path::Path;

use hyb_compiler::ir::Model;
use hyb_compiler::ir::train::{SweepConfig, budget_steps};

use super::{Result, Run, Setup};
use crate::train::{Options, Protocol};

/// Trains one run into `dir` and writes its `result.json`; `Some(status)` when a
/// signal stopped it.
pub(super) fn train_run(
    setup: &Setup,
    config: &SweepConfig,
    run: &Run,
    dir: &Path,
) -> std::result::Result<Option<u8>, String> {
    let file = setup.file;
    let model = compile_run(file, run, setup.sets)?;
    let train_block = model.train.as_ref().ok_or("a sweep's run needs a train block")?;
    let steps = config.tokens.map(|tokens| budget_steps(tokens, train_block));
    let options = Options {
        job: hyb_train::job::Options {
            steps,
            lr: run.lr,
            seed: run.seed,
            out: Some(dir.to_path_buf()),
            resume_if_any: true,
            model_source: Some((run.source(file), run.path(file))),
            sets: setup.sets.to_vec(),
            target: setup.target,
            protocol: config.held_out().then_some(Protocol { plateau: config.plateau }),
            ..Default::default()
        },
        interrupt: setup.interrupt.cloned(),
    };
    let at_once = setup.runs_at_once();
    let started = std::time::Instant::now();
    let outcome = setup.console.train(file, &model, &options)?;
    let seconds = started.elapsed().as_secs_f64();
    if let Some(status) = outcome.stopped {
        let to = outcome.stopped_at.unwrap_or(outcome.resumed_at);
        let (lets, device, steps, from) = (run.lets.clone(), outcome.device.clone(), outcome.steps, outcome.resumed_at);
        let stopped = crate::deadline::Stopped { lets, seconds, at_once, device, steps, from, to };
        // The stop matters more than the record of it: a failed write is said, not returned.
        if let Err(message) = stopped.write(dir) {
            setup.console.line(&format!("warning: {message}"));
        }
        return Ok(Some(status));
    }
    let report = hyb_driver::report(&model, None, setup.target).map_err(|e| e.to_string())?;
    let mut scores: Vec<(String, f64)> = outcome
        .scores
        .iter()
        .map(|s| (s.name.clone(), if s.perplexity { s.perplexity() } else { s.accuracy() }))
        .collect();
    let chance = outcome.scores.first().and_then(|s| s.chance);
    let held_out = if config.held_out() { scores.pop() } else { None };
    let tests = &outcome.scores[..scores.len()];
    let by_group = tests
        .iter()
        .flat_map(|s| {
            let accuracy = |right: u64, total: u64| right as f64 / total.max(1) as f64;
            s.by_group
                .iter()
                .map(move |(group, right, total)| (s.name.clone(), group.clone(), accuracy(*right, *total)))
        })
        .collect();
    let (mixer, attention_share) = composition(&model);
    let learned_at = learned_at(dir, held_out.as_ref().or(scores.first()), chance);
    let done_steps = outcome.plateaued_at.unwrap_or(outcome.steps);
    let result = Result {
        run: run.name(),
        lets: run.lets.clone(),
        lr: run.lr.unwrap_or_else(|| hyb_runtime::AdamW::of(&model).lr),
        seed: run.seed.unwrap_or(train_block.seed),
        params: report.params_total,
        state_bytes: report.state_bytes,
        kv_cache_bytes: report.kv_cache_bytes,
        final_loss: outcome.final_loss,
        accuracy: scores,
        phase: run.phase,
        held_out,
        steps: outcome.steps,
        plateaued_at: outcome.plateaued_at,
        tokens: done_steps * train_block.batch * train_block.seq_len * train_block.grad_accum.max(1),
        mixer,
        attention_share,
        chance,
        by_group,
        update: update_rule(&model),
        seconds,
        at_once,
        learned_at,
        device: outcome.device.clone(),
    };
    // Written whole, then renamed: another shard reading it sees all of it or nothing.
    let (done, partial) = (dir.join("result.json"), dir.join("result.json.tmp"));
    let json = serde_json::to_string_pretty(&result).expect("JSON");
    std::fs::write(&partial, json).map_err(|e| format!("cannot write `{}`: {e}", partial.display()))?;
    std::fs::rename(&partial, &done).map_err(|e| format!("cannot write `{}`: {e}", done.display()))?;
    let _ = std::fs::remove_file(dir.join(crate::deadline::STOPPED));
    Ok(None)
}

/// When the run in `dir` first reached `chance` + 5 points on `figure` (the held-out
/// set, else the first test set), from its `metrics.jsonl`; unrecorded for perplexity.
pub(super) fn learned_at(
    dir: &Path,
    figure: Option<&(String, f64)>,
    chance: Option<f64>,
) -> crate::learned::Transition {
    let (Some((name, _)), Some(chance)) = (figure, chance) else { return crate::learned::Transition::Unrecorded };
    let metrics = std::fs::read_to_string(dir.join("metrics.jsonl")).unwrap_or_default();
    crate::learned::transition(&metrics, name, chance)
}

/// The model's linear mixer (preset names, `+`-joined when several; `none` without
/// one) and its share of attention layers.
pub(super) fn composition(model: &Model) -> (String, f64) {
    use hyb_compiler::ir::MixerKind;
    let mut linear: Vec<String> = Vec::new();
    let mut attention = 0;
    for layer in &model.layers {
        let mixer = &model.mixers[layer.mixer];
        let label = match &mixer.kind {
            MixerKind::Attention(_) => {
                attention += 1;
                continue;
            }
            MixerKind::Linear(_) => mixer.preset.map_or_else(|| mixer.name.clone(), |p| p.name().to_string()),
            MixerKind::Routed(_) => format!("routed {}", mixer.name),
        };
        if !linear.contains(&label) {
            linear.push(label);
        }
    }
    let label = if linear.is_empty() { "none".to_string() } else { linear.join("+") };
    (label, attention as f64 / model.layers.len().max(1) as f64)
}

/// `delta` when every linear mixer of the model (routed branches included) writes by the
/// delta rule, `additive` when every one adds to a decayed state, else empty.
pub(super) fn update_rule(model: &Model) -> String {
    use hyb_compiler::ir::{MixerKind, Update};
    fn rules(kind: &MixerKind, found: &mut Vec<&'static str>) {
        match kind {
            MixerKind::Linear(linear) => found.push(match linear.update {
                Update::Delta { .. } => "delta",
                Update::Additive => "additive",
            }),
            MixerKind::Routed(routed) => routed.branches.iter().for_each(|b| rules(&b.kind, found)),
            MixerKind::Attention(_) => {}
        }
    }
    let mut found = Vec::new();
    model.layers.iter().for_each(|layer| rules(&model.mixers[layer.mixer].kind, &mut found));
    match found.first() {
        Some(first) if found.iter().all(|rule| rule == first) => first.to_string(),
        _ => String::new(),
    }
}

/// The run's text checked, with the command line's `--set`s over it.
pub(super) fn compile_run(file: &Path, run: &Run, sets: &[String]) -> std::result::Result<Model, String> {
    let compilation = hyb_compiler::pipeline::check_source(&run.path(file), &run.source(file), sets);
    match compilation.model() {
        Some(model) => Ok(model.clone()),
        None => Err(format!("run {} does not check:\n{}", run.name(), compilation.render())),
    }
}
