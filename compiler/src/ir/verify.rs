//! The model IR's verifier. Sema builds only verified models (checked after every
//! `sema::check` in debug builds and on every example in the tests); a verified model
//! never makes a later stage panic. The checklist:
//!
//! 1. every layer names a mixer of the arena, and every arena mixer is used;
//! 2. parameter names are unique, every dimension is at least 1, and layer parameters
//!    sit under `model.layers.N.` of their own layer;
//! 3. each linear mixer's heads are consistent: keys/values grouped (GQA) or values
//!    multiplied (GVA), a vector state has one head, the delta rule has normalised keys;
//! 4. routed layers have at least two branches and none is itself routed;
//! 5. `model.lower_bounds` exists exactly when a layer has a layer-wise bound, with one
//!    row per layer.

use std::collections::HashSet;

use super::*;

#[derive(Debug, PartialEq)]
pub struct VerifyError {
    /// The entity, printed as in the IR text (`layer3`, `mixer gdn`, a parameter name).
    pub entity: String,
    pub message: String,
}

pub fn verify(model: &Model) -> Result<(), Vec<VerifyError>> {
    let mut errors = Vec::new();
    let mut fail = |entity: String, message: &str| errors.push(VerifyError { entity, message: message.to_string() });
    let mut used = vec![false; model.mixers.len()];
    for (index, layer) in model.layers.iter().enumerate() {
        match used.get_mut(layer.mixer.index()) {
            Some(flag) => *flag = true,
            None => fail(format!("layer{index}"), "names a mixer outside the arena"),
        }
    }
    for ((_, mixer), used) in model.mixers.iter().zip(&used) {
        if !used {
            fail(format!("mixer {}", mixer.name), "no layer uses it");
        }
        verify_mixer(&mixer.kind, &format!("mixer {}", mixer.name), &mut fail, false);
    }
    let mut names = HashSet::new();
    for param in &model.params {
        if !names.insert(param.name.as_str()) {
            fail(param.name.clone(), "defined twice");
        }
        if param.shape.is_empty() || param.shape.contains(&0) {
            fail(param.name.clone(), "has an empty dimension");
        }
        if let Some(layer) = param.layer
            && (layer >= model.layers.len() || !param.name.starts_with(&format!("model.layers.{layer}.")))
        {
            fail(param.name.clone(), "is not under its layer's prefix");
        }
    }
    let bounded = model.layers.iter().any(|layer| params::lower_bound_width(&model.mixers[layer.mixer].kind).is_some());
    match model.params.iter().find(|p| p.name == "model.lower_bounds") {
        Some(bounds) if !bounded => fail(bounds.name.clone(), "exists but no layer is bounded"),
        Some(bounds) if bounds.shape.first() != Some(&(model.layers.len() as u64)) => {
            fail(bounds.name.clone(), "does not have one row per layer")
        }
        None if bounded => fail("model.lower_bounds".to_string(), "is missing for bounded layers"),
        _ => {}
    }
    if errors.is_empty() { Ok(()) } else { Err(errors) }
}

fn verify_mixer(kind: &MixerKind, entity: &str, fail: &mut impl FnMut(String, &str), in_branch: bool) {
    match kind {
        MixerKind::Linear(linear) => {
            let gqa = linear.k_heads == linear.v_heads && linear.heads % linear.k_heads == 0;
            let gva = linear.k_heads == linear.heads && linear.v_heads % linear.heads == 0;
            if !(gqa || gva) {
                fail(entity.to_string(), "has inconsistent head grouping");
            }
            if linear.state == StateKind::Vector && (linear.heads != 1 || linear.head_k_dim != linear.head_v_dim) {
                fail(entity.to_string(), "has a vector state with more than one head or two widths");
            }
            if matches!(linear.update, Update::Delta { .. }) && linear.qk_norm == QkNorm::None {
                fail(entity.to_string(), "uses the delta rule with unnormalised keys");
            }
            if [linear.heads, linear.k_heads, linear.v_heads, linear.head_k_dim, linear.head_v_dim].contains(&0) {
                fail(entity.to_string(), "has a zero head count or dimension");
            }
        }
        MixerKind::Attention(attention) => {
            if attention.kv_heads == 0 || attention.heads % attention.kv_heads != 0 || attention.head_dim % 2 != 0 {
                fail(entity.to_string(), "has inconsistent attention heads");
            }
        }
        MixerKind::Routed(routed) => {
            if in_branch {
                fail(entity.to_string(), "nests routing");
            }
            if routed.branches.len() < 2 {
                fail(entity.to_string(), "routes fewer than two branches");
            }
            for branch in &routed.branches {
                verify_mixer(&branch.kind, &format!("{entity} branch {}", branch.name), fail, true);
            }
        }
    }
}
