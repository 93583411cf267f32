//! Token embedding: `y[b, t] = table[tokens[b, t]]`, and its backward, a scatter-add of
//! `dy` into the table's rows (accumulating: zero the table gradient first).
//! Shapes: table `[V, d]`, tokens `[B, T]` i32, y `[B, T, d]`.

use crate::emit::{Builder, Config, Scalar, Ty, Value};

/// Opens the function over `table`, `tokens` (i32) and the `tensors` after them, and
/// defines the sizes `%B`, `%T` (of the tokens) and `%D` (the table's width).
fn header(e: &mut Builder, name: &str, tensors: &[(&str, usize)]) -> [Value; 3] {
    let mut args = vec![("table", e.tensor(2)), ("tokens", Ty::memref(2, Scalar::I32))];
    args.extend(tensors.iter().map(|(arg, rank)| (*arg, e.tensor(*rank))));
    e.begin_function_typed(name, &args);
    let (tokens, table) = (e.arg("tokens"), e.arg("table"));
    let batch = e.named("B").dim(&tokens, 0);
    let time = e.named("T").dim(&tokens, 1);
    let width = e.named("D").dim(&table, 1);
    [batch, time, width]
}

/// `body(b, t, row, d)` for every token `(b, t)`, its table row and every column d —
/// under [`crate::emit::Parallel::Threads`], this lane's column alone (`KernelKey::lanes`:
/// a lane per column of the table, walking every token; neighbouring lanes read and
/// write neighbouring columns, and no two lanes add into one element).
fn for_tokens(e: &mut Builder, [batch, time, width]: &[Value; 3], body: impl FnOnce(&mut Builder, [Value; 4])) {
    let (tokens, c0) = (e.arg("tokens"), e.c0());
    let (first, end) = e.lane_range(width, true);
    e.for_(&c0, batch, |e, b| {
        e.for_(&c0, time, |e, t| {
            let id = e.load(&tokens, &[&b, &t]);
            let row = e.index_cast(&id, Scalar::Index);
            e.for_(&first, &end, |e, d| body(e, [b, t, row, d]));
        });
    });
}

/// Args: table, tokens, y.
pub fn gather(name: &str) -> String {
    gather_with(name, &Config::CPU)
}

/// [`gather`] under any [`Config`]; the token ids are i32 under every one.
pub fn gather_with(name: &str, config: &Config) -> String {
    let mut e = Builder::new(*config);
    let sizes = header(&mut e, name, &[("y", 3)]);
    let (table, y) = (e.arg("table"), e.arg("y"));
    for_tokens(&mut e, &sizes, |e, [b, t, row, d]| {
        let value = e.load(&table, &[&row, &d]);
        e.store(&value, &y, &[&b, &t, &d]);
    });
    e.finish()
}

/// Args: table (for its shape), tokens, dy, dtable.
pub fn scatter(name: &str) -> String {
    scatter_with(name, &Config::CPU)
}

/// [`scatter`] under any [`Config`].
pub fn scatter_with(name: &str, config: &Config) -> String {
    let mut e = Builder::new(*config);
    let sizes = header(&mut e, name, &[("dy", 3), ("dtable", 2)]);
    let (dy, dtable) = (e.arg("dy"), e.arg("dtable"));
    for_tokens(&mut e, &sizes, |e, [b, t, row, d]| {
        let value = e.load(&dy, &[&b, &t, &d]);
        e.accumulate_shared(&dtable, &[&row, &d], &value);
    });
    e.finish()
}
