//! The learning rate at each step (1-based): linear warmup from 0, then cosine or linear
//! decay to `min_lr × lr` at the last step, or constant.

use hyb_compiler::ir::train::LrSchedule;

pub fn learning_rate(schedule: &LrSchedule, lr: f64, step: u64, steps: u64) -> f64 {
    let warmup = match schedule {
        LrSchedule::Cosine { warmup, .. } | LrSchedule::Linear { warmup, .. } | LrSchedule::Constant { warmup } => {
            *warmup
        }
    };
    if step <= warmup && warmup > 0 {
        return lr * step as f64 / warmup as f64;
    }
    let decay_steps = steps.saturating_sub(warmup).max(1);
    let progress = ((step - warmup.min(step)) as f64 / decay_steps as f64).clamp(0.0, 1.0);
    match schedule {
        LrSchedule::Constant { .. } => lr,
        LrSchedule::Cosine { min_lr, .. } => {
            let cosine = 0.5 * (1.0 + (std::f64::consts::PI * progress).cos());
            lr * (min_lr + (1.0 - min_lr) * cosine)
        }
        LrSchedule::Linear { min_lr, .. } => lr * (min_lr + (1.0 - min_lr) * (1.0 - progress)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn warmup_then_cosine_to_the_floor() {
        let schedule = LrSchedule::Cosine { warmup: 10, min_lr: 0.1 };
        assert_eq!(learning_rate(&schedule, 1.0, 5, 110), 0.5);
        assert_eq!(learning_rate(&schedule, 1.0, 10, 110), 1.0);
        assert!((learning_rate(&schedule, 1.0, 60, 110) - 0.55).abs() < 1e-12);
        assert!((learning_rate(&schedule, 1.0, 110, 110) - 0.1).abs() < 1e-12);
        let linear = LrSchedule::Linear { warmup: 0, min_lr: 0.0 };
        assert!((learning_rate(&linear, 2.0, 50, 100) - 1.0).abs() < 1e-12);
        assert_eq!(learning_rate(&LrSchedule::Constant { warmup: 0 }, 3.0, 7, 9), 3.0);
    }
}
