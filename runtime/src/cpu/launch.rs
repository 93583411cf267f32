//! A kernel launch on the CPU: the iteration space split into one part per thread,
//! each part calling the kernel on its slice of the `Split` views; each part
//! accumulates `Sum` views into a private zeroed copy, added in afterwards.

use rayon::prelude::*;

use hyb_kernels::jit::{Entry, RawDescriptor};
use hyb_lower::program::Share;

use super::{Cpu, Ptr};
use crate::device::View;

/// A launch over fewer elements than this (all its views together) runs on the calling
/// thread: handing parts to rayon's threads costs ~10 µs, more than such a call's work
/// (a decoding step's norms and gates).
const PARALLEL_MIN: usize = 1 << 14;

pub(super) fn launch(cpu: &mut Cpu, entry: Entry, space: usize, args: &[View]) {
    let pointers: Vec<Ptr> = args.iter().map(|a| cpu.pointer(a)).collect();
    let total: usize = args.iter().map(View::len).sum();
    let parts = if total < PARALLEL_MIN { 1 } else { rayon::current_num_threads().min(space).max(1) };
    let summed: Vec<usize> =
        if parts > 1 { (0..args.len()).filter(|i| args[*i].share == Share::Sum).collect() } else { Vec::new() };
    // private[p][k]: part p's copy of the k-th summed view.
    let mut private: Vec<Vec<Vec<f32>>> =
        (0..parts).map(|_| summed.iter().map(|i| vec![0.0; args[*i].len()]).collect()).collect();
    let private_pointers: Vec<Vec<Ptr>> =
        private.iter_mut().map(|copies| copies.iter_mut().map(|c| Ptr(c.as_mut_ptr().cast())).collect()).collect();
    let run_part = |part: usize| {
        let (start, end) = (space * part / parts, space * (part + 1) / parts);
        let mut descriptors: Vec<RawDescriptor> = args
            .iter()
            .enumerate()
            .map(|(index, arg)| {
                let mut dims = arg.dims.clone();
                let mut base = pointers[index].0;
                if arg.share == Share::Split && parts > 1 {
                    let row_bytes = arg.bytes() / arg.dims[0];
                    // SAFETY: rows [start, end) of the view, in bounds.
                    base = unsafe { base.add(start * row_bytes) };
                    dims[0] = end - start;
                }
                if let Some(k) = summed.iter().position(|i| *i == index) {
                    base = private_pointers[part][k].0;
                }
                if arg.flat {
                    dims = vec![dims.iter().product()];
                }
                RawDescriptor::new(base, &dims)
            })
            .collect();
        let mut raw: Vec<*mut ()> = descriptors.iter_mut().map(|d| d.as_ptr()).collect();
        // SAFETY: every descriptor describes live memory of the kernel's expected rank
        // and element type (the program verifier checked both); parallel parts write
        // disjoint rows of the split views and their own copies of the summed ones, and
        // only read the rest.
        unsafe { entry.call(&mut raw) };
    };
    if parts > 1 {
        (0..parts).into_par_iter().for_each(run_part);
    } else {
        run_part(0);
    }
    for (k, index) in summed.iter().enumerate() {
        let Ptr(target) = cpu.pointer(&args[*index]);
        // SAFETY: the summed view is f32, in bounds (checked by `pointer`).
        let target = unsafe { std::slice::from_raw_parts_mut(target.cast::<f32>(), args[*index].len()) };
        for copies in &private {
            for (t, v) in target.iter_mut().zip(&copies[k]) {
                *t += v;
            }
        }
    }
}
