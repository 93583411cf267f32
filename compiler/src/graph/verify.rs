//! The graph verifier. Checklist: inputs precede their users; every node's type is what
//! [`infer`] gives for its op and inputs; every parameter node names a parameter of the
//! model, and every parameter of the model is read; the loss is a scalar.

use std::collections::HashSet;

use super::*;
use crate::ir::Model;

pub fn verify(graph: &Graph, model: &Model) -> Result<(), Vec<String>> {
    let params: ParamShapes = model.params.iter().map(|p| (p.name.clone(), p.shape.clone())).collect();
    let mut errors = Vec::new();
    let mut read = HashSet::new();
    for (handle, node) in graph.nodes.iter() {
        if node.inputs.iter().any(|input| input.index() >= handle.index()) {
            errors.push(format!("%{}: an input does not precede it", handle.index()));
            continue;
        }
        let types: Vec<&TensorType> = node.inputs.iter().map(|i| &graph.nodes[*i].ty).collect();
        match infer(&node.op, &types, &params) {
            Ok(ty) if ty == node.ty => {}
            Ok(ty) => errors.push(format!("%{}: typed {:?}, its op gives {:?}", handle.index(), node.ty, ty)),
            Err(message) => errors.push(format!("%{} {}: {message}", handle.index(), node.op.name())),
        }
        if let Op::Param(name) = &node.op {
            read.insert(name.as_str());
        }
    }
    // The tied LM head reads the embedding; every parameter must be used by the step.
    for param in &model.params {
        if !read.contains(param.name.as_str()) {
            errors.push(format!("parameter {} is never read", param.name));
        }
    }
    match graph.loss {
        Some(loss) if graph.nodes[loss].ty.shape.is_empty() => {}
        _ => errors.push("the graph has no scalar loss".to_string()),
    }
    if errors.is_empty() { Ok(()) } else { Err(errors) }
}
