//! One program on two devices in lockstep: after every instruction the values it may
//! have written (but a kernel's working memory, `KernelKey::scratch_argument`) are read
//! back from both and compared; where the candidate parts from
//! the reference beyond the tolerance, the divergence is recorded; and wherever its
//! bytes differ at all (within the tolerance too) the reference's values are copied over
//! the candidate's, so every later instruction is checked on equal inputs. The device
//! suite says that a gradient is wrong; this says which kernel made it so, and lists
//! every faulty kernel of a step in one run.

use hyb_lower::program::{Instr, Program};
use hyb_target::Elem;

use crate::device::{Device, View};
use crate::exec::{self, Batch, Stores};

/// A device with a program's stores on it.
pub struct Side<'a> {
    pub device: &'a mut dyn Device,
    pub stores: &'a Stores,
}

/// Where the candidate first parted from the reference in one instruction.
#[derive(Clone, Debug)]
pub struct Divergence {
    /// The instruction's index in the program, and its label (the kernel's name).
    pub instr: usize,
    pub label: String,
    /// Which of the instruction's written views (a kernel's argument index).
    pub arg: usize,
    /// The worst element: its index, the candidate's and the reference's values, and
    /// its error relative to the view's largest reference magnitude (infinite where
    /// exactly one of the two is not finite).
    pub at: usize,
    pub got: f64,
    pub want: f64,
    pub error: f64,
    /// How many elements exceed the tolerance, of how many.
    pub wrong: usize,
    pub len: usize,
}

impl std::fmt::Display for Divergence {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "#{} {} arg {}: {} of {} elements off; worst [{}] got {} want {} (error {:.1e})",
            self.instr, self.label, self.arg, self.wrong, self.len, self.at, self.got, self.want, self.error
        )
    }
}

/// Runs instructions `range` of `program` on both sides, comparing after each; returns
/// every divergence beyond `tolerance` (relative to each view's largest magnitude).
pub fn run(
    program: &Program,
    reference: Side,
    candidate: Side,
    range: std::ops::Range<usize>,
    batch: &Batch,
    tolerance: f64,
) -> Vec<Divergence> {
    let mut found = Vec::new();
    for index in range {
        exec::run_one(program, reference.device, reference.stores, index, batch);
        exec::run_one(program, candidate.device, candidate.stores, index, batch);
        let views = exec::written(&program.instrs[index], reference.stores);
        let theirs = exec::written(&program.instrs[index], candidate.stores);
        let scratch = match &program.instrs[index] {
            Instr::Call { kernel, .. } => program.kernels.keys[*kernel].scratch_argument(),
            _ => None,
        };
        for (arg, (want_view, got_view)) in views.iter().zip(&theirs).enumerate() {
            // A kernel's working memory is no result: each form may fill it its own way.
            if scratch == Some(arg) {
                continue;
            }
            let want_bytes = read(&*reference.device, want_view);
            let got_bytes = read(&*candidate.device, got_view);
            let (want, got) = (values(&want_bytes, want_view.elem), values(&got_bytes, got_view.elem));
            if let Some(mut divergence) = compare(&got, &want, tolerance) {
                divergence.instr = index;
                divergence.label = exec::instr_label(program, index);
                divergence.arg = arg;
                found.push(divergence);
            }
            // The next instruction runs on the reference's values on both devices, so
            // each kernel is judged on its own rounding, not on differences carried in.
            if got_bytes != want_bytes {
                candidate.device.write(got_view, &want_bytes);
            }
        }
    }
    found
}

fn read(device: &dyn Device, view: &View) -> Vec<u8> {
    let mut bytes = vec![0u8; view.bytes()];
    device.read(view, &mut bytes);
    bytes
}

/// Elements as f64, whatever their storage type.
fn values(bytes: &[u8], elem: Elem) -> Vec<f64> {
    match elem {
        Elem::F32 | Elem::Bf16 => crate::device::floats(bytes, elem).into_iter().map(f64::from).collect(),
        Elem::I32 => bytes.chunks_exact(4).map(|b| i32::from_le_bytes(b.try_into().unwrap()) as f64).collect(),
    }
}

/// The worst element of `got` against `want` if any is beyond `tolerance` of `want`'s
/// largest finite magnitude. Two NaNs agree (both unwritten, under poison); one does not.
fn compare(got: &[f64], want: &[f64], tolerance: f64) -> Option<Divergence> {
    let scale = want.iter().filter(|v| v.is_finite()).fold(1e-30f64, |m, v| m.max(v.abs()));
    let error = |g: f64, w: f64| match (g.is_finite(), w.is_finite()) {
        (true, true) => (g - w).abs() / scale,
        (false, false) if g.is_nan() == w.is_nan() && (g.is_nan() || g == w) => 0.0,
        _ => f64::INFINITY,
    };
    let errors: Vec<f64> = got.iter().zip(want).map(|(g, w)| error(*g, *w)).collect();
    let wrong = errors.iter().filter(|e| **e > tolerance).count();
    if wrong == 0 {
        return None;
    }
    let at = (0..errors.len()).max_by(|a, b| errors[*a].total_cmp(&errors[*b])).expect("an element");
    Some(Divergence {
        instr: 0,
        label: String::new(),
        arg: 0,
        at,
        got: got[at],
        want: want[at],
        error: errors[at],
        wrong,
        len: got.len(),
    })
}

#[cfg(test)]
mod tests {
    use super::compare;

    #[test]
    fn agreement_within_tolerance_is_no_divergence() {
        assert!(compare(&[1.0, 2.0, f64::NAN], &[1.0, 2.0 + 1e-7, f64::NAN], 1e-6).is_none());
    }

    #[test]
    fn the_worst_element_and_the_count_are_reported() {
        let d = compare(&[1.0, 2.5, 3.0, 9.0], &[1.0, 2.0, 3.0, 4.0], 1e-3).expect("diverges");
        assert_eq!((d.at, d.wrong, d.len), (3, 2, 4));
        assert!((d.error - 5.0 / 4.0).abs() < 1e-12);
    }

    #[test]
    fn one_nan_against_a_number_diverges() {
        let d = compare(&[f64::NAN, 1.0], &[0.5, 1.0], 1e-3).expect("diverges");
        assert_eq!(d.at, 0);
        assert!(d.error.is_infinite());
    }
}
