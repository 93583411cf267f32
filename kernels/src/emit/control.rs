//! Control flow: `scf.for` with and without loop-carried values, `scf.if`, and the
//! reductions built from them. Each takes its body as a closure that receives the
//! builder and the loop's values, so every region is closed where it is opened.

use super::builder::{Builder, list};
use super::types::{Scalar, Ty, Value};

impl Builder {
    /// `scf.for i = from to to step 1 { body(i) }`.
    pub fn for_(&mut self, from: &Value, to: &Value, body: impl FnOnce(&mut Builder, Value)) {
        let step = self.c1();
        self.for_step(from, to, &step, body);
    }

    /// `scf.for i = from to to step step { body(i) }`.
    pub fn for_step(&mut self, from: &Value, to: &Value, step: &Value, body: impl FnOnce(&mut Builder, Value)) {
        self.assert_unnamed("for_");
        let index = Value::new(self.fresh(), from.ty());
        self.line(&format!("scf.for {index} = {from} to {to} step {step} {{"));
        self.depth += 1;
        body(self, index);
        self.close_block();
    }

    /// `scf.for` over `[from, to)` carrying values that start at `inits`; `body` gets the
    /// index and the carried values and returns their next values. Returns the final ones.
    pub fn fold(
        &mut self,
        from: &Value,
        to: &Value,
        inits: &[&Value],
        body: impl FnOnce(&mut Builder, Value, Vec<Value>) -> Vec<Value>,
    ) -> Vec<Value> {
        let step = self.c1();
        self.fold_step(from, to, &step, inits, body)
    }

    /// [`Builder::fold`] over `from, from + step, …` below `to`.
    pub fn fold_step(
        &mut self,
        from: &Value,
        to: &Value,
        step: &Value,
        inits: &[&Value],
        body: impl FnOnce(&mut Builder, Value, Vec<Value>) -> Vec<Value>,
    ) -> Vec<Value> {
        self.assert_unnamed("fold");
        let results: Vec<Value> = inits.iter().map(|init| Value::new(self.fresh(), init.ty())).collect();
        let index = Value::new(self.fresh(), from.ty());
        let carried: Vec<Value> = inits.iter().map(|init| Value::new(self.fresh(), init.ty())).collect();
        let args: Vec<String> = carried.iter().zip(inits).map(|(value, init)| format!("{value} = {init}")).collect();
        let types: Vec<String> = inits.iter().map(|init| init.ty().to_string()).collect();
        let result_list = list(&results.iter().collect::<Vec<_>>());
        self.line(&format!(
            "{result_list} = scf.for {index} = {from} to {to} step {step} iter_args({}) -> ({}) {{",
            args.join(", "),
            types.join(", ")
        ));
        self.depth += 1;
        let next = body(self, index, carried);
        assert_eq!(next.len(), inits.len(), "a fold yields one value per carried value");
        for (value, init) in next.iter().zip(inits) {
            assert_eq!(value.ty(), init.ty(), "{value} yielded for a carried {}", init.ty());
        }
        self.line(&format!("scf.yield {} : {}", list(&next.iter().collect::<Vec<_>>()), types.join(", ")));
        self.close_block();
        results
    }

    /// [`Builder::fold`] with one carried value.
    pub fn fold1(
        &mut self,
        from: &Value,
        to: &Value,
        init: &Value,
        body: impl FnOnce(&mut Builder, Value, Value) -> Value,
    ) -> Value {
        let mut results = self.fold(from, to, &[init], |e, index, carried| {
            let accumulator = carried.into_iter().next().expect("one carried value");
            vec![body(e, index, accumulator)]
        });
        results.pop().expect("one result")
    }

    /// `Σ_{i ∈ [0, to)} body(i)`, in the compute type. The body may write other ops too;
    /// the addition to the running sum is the loop's last op.
    pub fn sum(&mut self, to: &Value, body: impl FnOnce(&mut Builder, &Value) -> Value) -> Value {
        let from = self.c0();
        self.sum_over(&from, to, body)
    }

    /// `Σ_{i ∈ [from, to)} body(i)`, as [`Builder::sum`].
    pub fn sum_over(&mut self, from: &Value, to: &Value, body: impl FnOnce(&mut Builder, &Value) -> Value) -> Value {
        let step = self.c1();
        self.sum_step(from, to, &step, body)
    }

    /// `Σ body(i)` over `i = from, from + step, …` below `to`, as [`Builder::sum`].
    pub fn sum_step(
        &mut self,
        from: &Value,
        to: &Value,
        step: &Value,
        body: impl FnOnce(&mut Builder, &Value) -> Value,
    ) -> Value {
        let zero = self.zero();
        let mut results = self.fold_step(from, to, step, &[&zero], |e, index, carried| {
            let accumulator = carried.into_iter().next().expect("one carried value");
            let term = body(e, &index);
            vec![e.add(&accumulator, &term)]
        });
        results.pop().expect("one result")
    }

    /// Sums over `[from, to)` (`from ≤ to`) kept as `ways` partial sums each: an
    /// iteration applies `body` to `ways` consecutive indices, each on its own partials,
    /// so their loads issue together and no add waits on another way's; the indices
    /// past the last whole group run in a loop after, on the first way's partials; the
    /// partials are added at the end. `body` must add its terms into the carried values
    /// it is given (they start at 0): the terms are the same, only the order of the
    /// additions differs. `ways` of 1 is [`Builder::fold`] from zeros.
    pub fn fold_sums(
        &mut self,
        from: &Value,
        to: &Value,
        ways: u64,
        sums: usize,
        body: impl Fn(&mut Builder, &Value, Vec<Value>) -> Vec<Value>,
    ) -> Vec<Value> {
        let zero = self.zero();
        if ways <= 1 {
            return self.fold(from, to, &vec![&zero; sums], |e, index, carried| body(e, &index, carried));
        }
        let group = self.constant_index(ways);
        let count = self.sub(to, from);
        let groups = self.divui(&count, &group);
        let whole = self.mul(&groups, &group);
        let grouped_end = self.add(from, &whole);
        let starts = vec![&zero; sums * ways as usize];
        let partials = self.fold_step(from, &grouped_end, &group, &starts, |e, index, carried| {
            let mut next = Vec::with_capacity(carried.len());
            for (way, own) in carried.chunks(sums).enumerate() {
                let at = match way {
                    0 => index.clone(),
                    _ => {
                        let offset = e.constant_index(way as u64);
                        e.add(&index, &offset)
                    }
                };
                next.extend(body(e, &at, own.to_vec()));
            }
            next
        });
        let first: Vec<&Value> = partials[..sums].iter().collect();
        let mut totals = self.fold(&grouped_end, to, &first, |e, index, carried| body(e, &index, carried));
        for others in partials[sums..].chunks(sums) {
            for (total, part) in totals.iter_mut().zip(others) {
                *total = self.add(total, part);
            }
        }
        totals
    }

    /// `Σ_{i ∈ [0, to)} body(i)` as `ways` partial sums ([`Builder::fold_sums`]).
    pub fn sum_split(&mut self, to: &Value, ways: u64, body: impl Fn(&mut Builder, &Value) -> Value) -> Value {
        let from = self.c0();
        let mut totals = self.fold_sums(&from, to, ways, 1, |e, index, carried| {
            let term = body(e, index);
            vec![e.add(&carried[0], &term)]
        });
        totals.pop().expect("one sum")
    }

    /// `Σ_{i ∈ [0, to)} a(i) · b(i)`, the factors written by `factors`.
    pub fn dot(&mut self, to: &Value, factors: impl FnOnce(&mut Builder, &Value) -> (Value, Value)) -> Value {
        self.sum(to, |e, index| {
            let (a, b) = factors(e, index);
            e.mul(&a, &b)
        })
    }

    /// The maximum of `load(i)` over `i ∈ [0, to)` and `Σ exp(load(i) − max)`: the two
    /// passes of a stable softmax or log-sum-exp. The maximum's fold starts at −∞.
    pub fn max_and_sum_exp(&mut self, to: &Value, load: &dyn Fn(&mut Builder, &Value) -> Value) -> (Value, Value) {
        let negative_infinity = self.constant(f64::NEG_INFINITY);
        let from = self.c0();
        let max = self.fold1(&from, to, &negative_infinity, |e, index, accumulator| {
            let x = load(e, &index);
            e.max(&accumulator, &x)
        });
        let sum = self.sum(to, |e, index| {
            let x = load(e, index);
            let shifted = e.sub(&x, &max);
            e.exp(&shifted)
        });
        (max, sum)
    }

    /// `scf.if condition { then() }`.
    pub fn if_(&mut self, condition: &Value, then: impl FnOnce(&mut Builder)) {
        self.assert_unnamed("if_");
        self.line(&format!("scf.if {condition} {{"));
        self.depth += 1;
        self.conditional += 1;
        then(self);
        self.conditional -= 1;
        self.close_block();
    }

    /// Stops the kernel (`llvm.intr.trap`) where `condition` holds: a call whose
    /// arguments break what the kernel was generated for.
    pub fn trap_if(&mut self, condition: &Value) {
        self.if_(condition, |e| e.line("\"llvm.intr.trap\"() : () -> ()"));
    }

    /// `scf.if condition { then() } else { otherwise() }`.
    pub fn if_else(
        &mut self,
        condition: &Value,
        then: impl FnOnce(&mut Builder),
        otherwise: impl FnOnce(&mut Builder),
    ) {
        self.assert_unnamed("if_else");
        self.line(&format!("scf.if {condition} {{"));
        self.depth += 1;
        self.conditional += 1;
        then(self);
        self.depth -= 1;
        self.line("} else {");
        self.depth += 1;
        otherwise(self);
        self.conditional -= 1;
        self.close_block();
    }

    /// `%r = scf.if condition -> (ty) { yield then() } else { yield otherwise() }`.
    pub fn if_else_value(
        &mut self,
        condition: &Value,
        ty: Scalar,
        then: impl FnOnce(&mut Builder) -> Value,
        otherwise: impl FnOnce(&mut Builder) -> Value,
    ) -> Value {
        let name = self.result_name();
        self.line(&format!("{name} = scf.if {condition} -> ({}) {{", ty.mlir()));
        self.depth += 1;
        self.conditional += 1;
        let yes = then(self);
        self.line(&format!("scf.yield {yes} : {}", ty.mlir()));
        self.depth -= 1;
        self.line("} else {");
        self.depth += 1;
        let no = otherwise(self);
        self.conditional -= 1;
        self.line(&format!("scf.yield {no} : {}", ty.mlir()));
        self.close_block();
        Value::new(name, Ty::Scalar(ty))
    }
}
