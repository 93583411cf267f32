//! Reads the IR text of [`super::print`] back into a [`Model`], so the printer is
//! tested for completeness: print → parse → print gives the same text (the
//! train/eval settings are not part of the IR text and come back empty).
//!
//! Mixers are read by the `.hyb` front end itself: each printed `linear(...)` and
//! `attention(...)` is valid `.hyb`, and a routed layer's branches are too.

use hyb_grammar::Span;

use super::*;
use crate::pipeline::check_text;

pub fn parse_model(text: &str) -> Result<Model, String> {
    let mut lines = text.lines().peekable();
    let header = lines.next().ok_or("empty IR text")?;
    let config = parse_header(header)?;
    let mut mixers: Arena<Mixer> = Arena::default();
    let mut layers = Vec::new();
    let mut params = Vec::new();
    let mut current_layer: Option<usize> = None;
    while let Some(line) = lines.next() {
        if line.trim().is_empty() || line.starts_with("params total=") {
            continue;
        }
        if let Some(rest) = line.strip_prefix("mixer ") {
            let (head, first) = rest.split_once(" = ").ok_or_else(|| format!("bad mixer line `{line}`"))?;
            let name = head.split(" (preset ").next().unwrap_or(head).to_string();
            let preset = head.split(" (preset ").nth(1).and_then(|p| p.strip_suffix(')')).and_then(preset_named);
            let mut body = first.to_string();
            while depth(&body) > 0 || lines.peek().is_some_and(|next| next.starts_with("    branch ")) {
                body.push('\n');
                body.push_str(lines.next().ok_or("unterminated mixer")?);
            }
            let kind = parse_mixer(&body, config.d_model)?;
            mixers.alloc(Mixer { name, preset, kind, span: Span::default() });
        } else if let Some(rest) = line.strip_prefix("layer") {
            let (index, name) = rest.split_once(' ').ok_or_else(|| format!("bad layer line `{line}`"))?;
            let index: usize = index.parse().map_err(|_| format!("bad layer index in `{line}`"))?;
            let (handle, _) =
                mixers.iter().find(|(_, m)| m.name == name).ok_or_else(|| format!("unknown mixer `{name}`"))?;
            if index != layers.len() {
                return Err(format!("layer{index} out of order"));
            }
            layers.push(Layer { mixer: handle, span: Span::default() });
            current_layer = Some(index);
        } else if let Some(rest) = line.trim_start().strip_prefix("param ") {
            let layer = if line.starts_with("  ") { current_layer } else { None };
            params.push(parse_param(rest, layer)?);
        } else {
            return Err(format!("unexpected line `{line}`"));
        }
    }
    Ok(Model { config, mixers, layers, params, train: None, eval: None, sweep: None })
}

fn depth(text: &str) -> i64 {
    text.chars()
        .map(|c| {
            if c == '(' {
                1
            } else if c == ')' {
                -1
            } else {
                0
            }
        })
        .sum()
}

fn preset_named(name: &str) -> Option<Preset> {
    Preset::ALL.into_iter().find(|p| p.name() == name)
}

const HEADER_KEYS: [&str; 8] =
    ["vocab", "d_model", "layers", "mlp", "norm", "tie_embeddings", "init_std", "max_position"];

fn parse_header(line: &str) -> Result<ModelConfig, String> {
    let rest = line.strip_prefix("model ").ok_or("the IR starts with `model`")?;
    let value = |key: &str| -> Result<&str, String> {
        let start = rest.find(&format!("{key}=")).ok_or(format!("no `{key}=`"))? + key.len() + 1;
        let end = HEADER_KEYS
            .iter()
            .filter_map(|k| rest[start..].find(&format!(" {k}=")))
            .min()
            .map_or(rest.len(), |e| start + e);
        Ok(&rest[start..end])
    };
    let number = |key: &str| -> Result<u64, String> { value(key)?.parse().map_err(|_| format!("bad `{key}`")) };
    let inner = |text: &str, prefix: &str| -> Result<f64, String> {
        text.strip_prefix(prefix)
            .and_then(|t| t.strip_suffix(')'))
            .and_then(|t| t.parse().ok())
            .ok_or(format!("bad `{text}`"))
    };
    let intermediate = inner(value("mlp")?, "swiglu(intermediate: ")? as u64;
    Ok(ModelConfig {
        vocab: number("vocab")?,
        d_model: number("d_model")?,
        mlp: Mlp { intermediate, ratio: None, explicit: true, act: Act::Silu },
        norm_eps: inner(value("norm")?, "rmsnorm(eps: ")?,
        tie_embeddings: value("tie_embeddings")? == "true",
        init_std: value("init_std")?.parse().map_err(|_| "bad `init_std`")?,
        max_position: number("max_position")?,
    })
}

/// A printed mixer: `linear(...)`, `attention(...)`, or `heads(...)` with branch lines.
fn parse_mixer(body: &str, d_model: u64) -> Result<MixerKind, String> {
    let Some(rest) = body.strip_prefix("heads(combine: ") else { return resolve(body, d_model) };
    let (options, branches_text) = rest.split_once(')').ok_or("bad heads(...)")?;
    let (combine, head_dim) = options.split_once(", head_dim: ").ok_or("bad heads(...) options")?;
    let combine = if combine == "mean" { Combine::Mean } else { Combine::Concat };
    let head_dim = head_dim.parse().map_err(|_| "bad head_dim")?;
    let mut branches = Vec::new();
    for chunk in branches_text.split("\n    branch ").skip(1) {
        let (head, text) = chunk.split_once(" = ").ok_or("bad branch")?;
        let name = head.split(" × ").next().unwrap_or(head).to_string();
        branches.push(Branch { name, preset: None, kind: resolve(text, d_model)? });
    }
    Ok(MixerKind::Routed(RoutedMixer { branches, combine, head_dim }))
}

fn resolve(text: &str, d_model: u64) -> Result<MixerKind, String> {
    let source = format!("mixer m = {text}\nmodel {{\n    d_model = {d_model}\n    layers = m\n}}\n");
    let compilation = check_text("<ir>", &source);
    let model = compilation.model().ok_or_else(|| format!("mixer text does not check:\n{}", compilation.render()))?;
    Ok(model.mixer_of(0).kind.clone())
}

fn parse_param(rest: &str, layer: Option<usize>) -> Result<Param, String> {
    let (name, rest) = rest.split_once(" [").ok_or_else(|| format!("bad param `{rest}`"))?;
    let (shape, rest) = rest.split_once("] ").ok_or_else(|| format!("bad shape in `{rest}`"))?;
    let shape =
        shape.split(", ").map(|d| d.parse().map_err(|_| format!("bad dimension `{d}`"))).collect::<Result<_, _>>()?;
    let mut words = rest.split(' ');
    let init = match words.next().unwrap_or("") {
        "ones" => Init::Ones,
        "zeros" => Init::Zeros,
        "mamba_a_log" => Init::MambaALog,
        "mamba_dt_bias" => Init::MambaDtBias,
        other => Init::Normal {
            std: other
                .strip_prefix("normal(")
                .and_then(|t| t.strip_suffix(')'))
                .and_then(|t| t.parse().ok())
                .ok_or_else(|| format!("bad init `{other}`"))?,
        },
    };
    let no_weight_decay = words.next() == Some("no_weight_decay");
    let name = match layer {
        Some(index) => format!("model.layers.{index}.{name}"),
        None => name.to_string(),
    };
    Ok(Param { name, shape, init, no_weight_decay, layer })
}
