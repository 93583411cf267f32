//! The statistics of a sweep's report, small and written out so they can be checked by
//! hand: a mean with its 95 % interval (Student's t), the difference of two means
//! (Welch's interval), and the slope of a trend within groups (least squares with a mean
//! per group, its interval from the residuals). Every interval is two-sided 95 %; a
//! figure with no degrees of freedom left has no interval (`None`), never a made-up one.

/// Two-sided 95 % quantiles of Student's t for 1 to 30 degrees of freedom.
const T95: [f64; 30] = [
    12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160, 2.145, 2.131, 2.120,
    2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048, 2.045, 2.042,
];

/// Beyond 30 degrees of freedom: (df, quantile), interpolated linearly in 1/df; 1.96 at ∞.
const T95_TAIL: [(f64, f64); 4] = [(30.0, 2.042), (40.0, 2.021), (60.0, 2.000), (120.0, 1.980)];

/// The two-sided 95 % quantile of Student's t with `df` degrees of freedom (a
/// fractional df is rounded down, which widens the interval); none below 1.
pub fn t95(df: f64) -> Option<f64> {
    if df.is_nan() || df < 1.0 {
        return None;
    }
    if df < 31.0 {
        return Some(T95[df.floor() as usize - 1]);
    }
    let pairs = T95_TAIL.iter().copied().chain(std::iter::once((f64::INFINITY, 1.960)));
    let windows: Vec<(f64, f64)> = pairs.collect();
    let segment = windows.windows(2).find(|w| df <= w[1].0).expect("∞ closes the table");
    let ((d0, t0), (d1, t1)) = (segment[0], segment[1]);
    let share = (1.0 / d0 - 1.0 / df) / (1.0 / d0 - 1.0 / d1);
    Some(t0 + (t1 - t0) * share)
}

/// An estimate with its 95 % interval `[low, high]` (none without degrees of freedom).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Estimate {
    pub value: f64,
    pub interval: Option<(f64, f64)>,
}

impl Estimate {
    fn with_error(value: f64, standard_error: f64, df: f64) -> Estimate {
        let interval = t95(df).filter(|_| standard_error.is_finite()).map(|t| {
            let half = t * standard_error;
            (value - half, value + half)
        });
        Estimate { value, interval }
    }

    /// The interval cut to what the estimate can be (`low` – `high`): a difference of two
    /// accuracies lies within ±1 whatever three seeds' t interval says. Its sign is kept.
    pub fn clipped(self, low: f64, high: f64) -> Estimate {
        let interval = self.interval.map(|(a, b)| (a.max(low), b.min(high)));
        Estimate { interval, ..self }
    }

    /// Above zero, below it, or neither, by its interval.
    pub fn sign(&self) -> Sign {
        match self.interval {
            Some((low, _)) if low > 0.0 => Sign::Positive,
            Some((_, high)) if high < 0.0 => Sign::Negative,
            _ => Sign::Unclear,
        }
    }

    /// `12.3 [4.5, 20.1]` with `digits` decimals after multiplying by `scale`.
    pub fn text(&self, scale: f64, digits: usize) -> String {
        let value = self.value * scale;
        match self.interval {
            Some((low, high)) => format!("{value:+.digits$} [{:+.digits$}, {:+.digits$}]", low * scale, high * scale),
            None => format!("{value:+.digits$} (no interval: too few runs)"),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Sign {
    Positive,
    Negative,
    Unclear,
}

/// The mean, the sample standard deviation and the half-width of the 95 % interval of
/// the mean (Student's t) of `values`; the spread and half-width are 0 for one value.
pub fn mean_spread(values: &[f64]) -> (f64, f64, f64) {
    let n = values.len() as f64;
    let mean = values.iter().sum::<f64>() / n;
    if values.len() < 2 {
        return (mean, 0.0, 0.0);
    }
    let sd = (values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1.0)).sqrt();
    let t = t95(n - 1.0).expect("n ≥ 2");
    (mean, sd, t * sd / n.sqrt())
}

/// How often each key occurs, in order of first appearance.
pub fn tally<'a>(keys: impl IntoIterator<Item = &'a str>) -> Vec<(&'a str, usize)> {
    let mut counts: Vec<(&str, usize)> = Vec::new();
    for key in keys {
        match counts.iter_mut().find(|(k, _)| *k == key) {
            Some((_, n)) => *n += 1,
            None => counts.push((key, 1)),
        }
    }
    counts
}

/// The sample variance (n − 1 in the denominator); none below two values.
fn variance(values: &[f64]) -> Option<f64> {
    let n = values.len() as f64;
    if values.len() < 2 {
        return None;
    }
    let mean = values.iter().sum::<f64>() / n;
    Some(values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1.0))
}

/// [`difference`] of two sets of accuracies (fractions), its interval cut at ±1: what a
/// difference of accuracies can be, whatever three seeds' t interval says.
pub fn accuracy_difference(a: &[f64], b: &[f64]) -> Estimate {
    difference(a, b).clipped(-1.0, 1.0)
}

/// `mean(a) − mean(b)` with Welch's interval (unequal variances, Welch–Satterthwaite
/// degrees of freedom); no interval unless both have two values or more.
pub fn difference(a: &[f64], b: &[f64]) -> Estimate {
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
    let value = mean(a) - mean(b);
    let (Some(var_a), Some(var_b)) = (variance(a), variance(b)) else {
        return Estimate { value, interval: None };
    };
    let (qa, qb) = (var_a / a.len() as f64, var_b / b.len() as f64);
    if qa + qb == 0.0 {
        return Estimate { value, interval: Some((value, value)) };
    }
    let df = (qa + qb).powi(2) / (qa * qa / (a.len() - 1) as f64 + qb * qb / (b.len() - 1) as f64);
    Estimate::with_error(value, (qa + qb).sqrt(), df)
}

/// A slope by least squares with its standard error and degrees of freedom.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Slope {
    pub estimate: Estimate,
    pub standard_error: f64,
    pub df: f64,
}

/// The common slope of `y` against `x` within groups (each group its own mean: the
/// trend inside a group, never between groups), from `(group, x, y)` points; groups
/// whose points share one `x` add nothing. None when no group has two `x`s.
pub fn slope_within<G: PartialEq + Clone>(points: &[(G, f64, f64)]) -> Option<Slope> {
    let mut groups: Vec<(G, Vec<(f64, f64)>)> = Vec::new();
    for (group, x, y) in points {
        match groups.iter_mut().find(|(g, _)| g == group) {
            Some((_, members)) => members.push((*x, *y)),
            None => groups.push((group.clone(), vec![(*x, *y)])),
        }
    }
    groups.retain(|(_, members)| members.iter().any(|(x, _)| *x != members[0].0));
    let centred: Vec<(f64, f64)> = groups
        .iter()
        .flat_map(|(_, members)| {
            let n = members.len() as f64;
            let (mx, my) = members.iter().fold((0.0, 0.0), |(a, b), (x, y)| (a + x / n, b + y / n));
            members.iter().map(move |(x, y)| (x - mx, y - my))
        })
        .collect();
    let sxx: f64 = centred.iter().map(|(dx, _)| dx * dx).sum();
    if groups.is_empty() || sxx == 0.0 {
        return None;
    }
    let slope = centred.iter().map(|(dx, dy)| dx * dy).sum::<f64>() / sxx;
    let df = (centred.len() - groups.len()) as f64 - 1.0;
    let residuals: f64 = centred.iter().map(|(dx, dy)| (dy - slope * dx).powi(2)).sum();
    let standard_error = if df >= 1.0 { (residuals / df / sxx).sqrt() } else { f64::NAN };
    Some(Slope { estimate: Estimate::with_error(slope, standard_error, df), standard_error, df })
}

/// `a − b` of two independent slopes, with the Welch–Satterthwaite degrees of freedom.
pub fn slope_difference(a: &Slope, b: &Slope) -> Estimate {
    let value = a.estimate.value - b.estimate.value;
    let (qa, qb) = (a.standard_error.powi(2), b.standard_error.powi(2));
    if !(qa + qb).is_finite() || a.df < 1.0 || b.df < 1.0 {
        return Estimate { value, interval: None };
    }
    if qa + qb == 0.0 {
        return Estimate { value, interval: Some((value, value)) };
    }
    let df = (qa + qb).powi(2) / (qa * qa / a.df + qb * qb / b.df);
    Estimate::with_error(value, (qa + qb).sqrt(), df)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-9
    }

    /// t quantiles: the table, the tail interpolated in 1/df, none below one.
    #[test]
    fn t_quantiles() {
        assert_eq!(t95(2.0), Some(4.303));
        assert_eq!(t95(2.7), Some(4.303), "a fractional df rounds down");
        assert_eq!(t95(60.0), Some(2.000));
        let at_45 = t95(45.0).expect("a quantile");
        // 1/45 lies between 1/40 and 1/60: a third of the way from 1/40 in 1/df.
        assert!(close(at_45, 2.021 + (2.000 - 2.021) * ((1.0 / 40.0 - 1.0 / 45.0) / (1.0 / 40.0 - 1.0 / 60.0))));
        assert!((t95(1e9).expect("a quantile") - 1.96).abs() < 1e-6);
        assert_eq!(t95(0.5), None);
    }

    /// 1, 2, 3, 4: mean 2.5, sd √(5/3), half-width 3.182 · sd / 2.
    #[test]
    fn mean_and_interval_by_hand() {
        let (mean, sd, half) = mean_spread(&[1.0, 2.0, 3.0, 4.0]);
        assert!(close(mean, 2.5) && close(sd, (5.0f64 / 3.0).sqrt()));
        assert!(close(half, 3.182 * (5.0f64 / 3.0).sqrt() / 2.0));
        assert_eq!(mean_spread(&[7.0]), (7.0, 0.0, 0.0));
    }

    /// a = 1, 2, 3 (var 1), b = 0, 0, 0, 4 (var 4): difference 1, standard error
    /// √(1/3 + 1), df = (4/3)² / ((1/3)²/2 + 1/3) = 4.571… → 4 → t 2.776.
    #[test]
    fn a_tally_counts_in_order_of_first_appearance() {
        assert_eq!(tally(["done", "to run", "done"]), vec![("done", 2), ("to run", 1)]);
        assert_eq!(tally(Vec::<&str>::new()), Vec::new());
        let recalls = accuracy_difference(&[0.775, 0.845, 0.377], &[0.011, 0.026, 0.009]);
        assert_eq!(recalls.interval.map(|(_, high)| high), Some(1.0), "cut at +1");
    }

    #[test]
    fn a_clipped_interval_keeps_its_value_and_sign() {
        let wide = Estimate { value: 0.65, interval: Some((0.022, 1.278)) };
        let clipped = wide.clipped(-1.0, 1.0);
        assert_eq!(clipped, Estimate { value: 0.65, interval: Some((0.022, 1.0)) });
        assert_eq!(clipped.sign(), Sign::Positive);
        let none = Estimate { value: 0.5, interval: None };
        assert_eq!(none.clipped(-1.0, 1.0), none);
    }

    #[test]
    fn welch_difference_by_hand() {
        let d = difference(&[1.0, 2.0, 3.0], &[0.0, 0.0, 0.0, 4.0]);
        let half = 2.776 * (4.0f64 / 3.0).sqrt();
        assert!(close(d.value, 1.0));
        let (low, high) = d.interval.expect("an interval");
        assert!(close(low, 1.0 - half) && close(high, 1.0 + half), "{d:?}");
        assert_eq!(d.sign(), Sign::Unclear);
        assert_eq!(difference(&[1.0], &[0.0, 1.0]).interval, None, "one value has no variance");
    }

    /// Two groups with their own levels and the same trend: y = 2x + level (+ noise of
    /// ±0.1 on alternate points). Within-group slope by hand.
    #[test]
    fn slope_within_groups_by_hand() {
        let points = [
            ("a", 0.0, 0.1),
            ("a", 1.0, 1.9),
            ("a", 2.0, 4.1),
            ("b", 0.0, 10.0 - 0.1),
            ("b", 1.0, 12.1),
            ("b", 2.0, 13.9),
        ];
        let slope = slope_within(&points).expect("a slope");
        // Centred x: −1, 0, 1 in each group (sxx = 4); Σ dx·dy = (4.1 − 0.1) + (13.9 − 9.9) = 8.
        assert!(close(slope.estimate.value, 2.0));
        // Residuals: centred y minus 2·dx: a: (0.1 − 2.0333) + 2, …; df = 6 − 2 − 1 = 3.
        let a_mean = (0.1 + 1.9 + 4.1) / 3.0;
        let b_mean = (9.9 + 12.1 + 13.9) / 3.0;
        let residuals: f64 = [(0.1, a_mean, -1.0), (1.9, a_mean, 0.0), (4.1, a_mean, 1.0)]
            .iter()
            .chain(&[(9.9, b_mean, -1.0), (12.1, b_mean, 0.0), (13.9, b_mean, 1.0)])
            .map(|(y, m, dx): &(f64, f64, f64)| (y - m - 2.0 * dx).powi(2))
            .sum();
        assert_eq!(slope.df, 3.0);
        assert!(close(slope.standard_error, (residuals / 3.0 / 4.0).sqrt()));
        let (low, high) = slope.estimate.interval.expect("an interval");
        assert!(close(high - low, 2.0 * 3.182 * slope.standard_error));
        assert_eq!(slope.estimate.sign(), Sign::Positive);
        assert!(slope_within(&[("a", 1.0, 1.0), ("a", 1.0, 2.0)]).is_none(), "one x: no trend");
    }
}
