//! Evaluation metrics: greedy pass@1, avg@n, unbiased pass@k and maj@k.
//!
//! * **pass@1 (greedy)**: the fraction of problems whose single greedy completion is correct.
//! * **avg@n**: per problem, the mean correctness of its `n` samples; averaged over problems.
//! * **pass@k**: the unbiased estimator of Chen et al. (2021), "Evaluating Large Language Models
//!   Trained on Code": with `n` samples of which `c` are correct,
//!   `pass@k = 1 - C(n-c, k) / C(n, k)`, the probability that a random `k`-subset of the samples
//!   holds at least one correct one. It is computed as the product
//!   `1 - prod_{i=n-c+1}^{n} (1 - k/i)`, which never forms large binomials; when `n - c < k`
//!   every `k`-subset holds a correct sample and the value is exactly `1.0`.
//! * **maj@k**: majority vote over the canonical answers of the first `k` samples. Answers vote
//!   together when they [match](crate::Canonical::matches) the first answer of a group; the group
//!   with most votes wins and ties go to the group whose first answer came first. Samples without
//!   an answer do not vote, so "no answer" never wins over a real answer; when no sample among
//!   the first `k` has an answer, maj@k is 0 for that problem. The problem counts as solved when
//!   the winning group's first sample is correct.
//!
//! Per-problem values are aggregated by their mean over problems.

use serde::Serialize;

use crate::error::EvalError;
use crate::normalize::Canonical;
use crate::verify::Score;

/// What metrics need to know about one sampled completion.
#[derive(Debug, Clone, PartialEq)]
pub struct SampleOutcome {
    /// Whether the sample's answer is correct.
    pub correct: bool,
    /// The sample's canonical answer, if one was extracted.
    pub answer: Option<Canonical>,
}

impl From<&Score> for SampleOutcome {
    fn from(score: &Score) -> Self {
        Self {
            correct: score.correct,
            answer: score.answer.clone(),
        }
    }
}

/// Unbiased pass@k for `n` samples of which `c` are correct.
///
/// Errors unless `1 <= k <= n` and `c <= n`.
pub fn pass_at_k(n: usize, c: usize, k: usize) -> Result<f64, EvalError> {
    if k == 0 || k > n || c > n {
        return Err(EvalError::InvalidMetricInput(format!(
            "pass@k needs 1 <= k <= n and c <= n, got n={n}, c={c}, k={k}"
        )));
    }
    if n - c < k {
        return Ok(1.0);
    }
    let k = k as f64;
    let all_wrong: f64 = (n - c + 1..=n).map(|i| 1.0 - k / i as f64).product();
    Ok(1.0 - all_wrong)
}

/// Mean correctness of one problem's samples; errors when there are none.
pub fn avg_at_n(samples: &[SampleOutcome]) -> Result<f64, EvalError> {
    if samples.is_empty() {
        return Err(EvalError::InvalidMetricInput(
            "avg@n needs at least one sample".into(),
        ));
    }
    let correct = samples.iter().filter(|s| s.correct).count();
    Ok(correct as f64 / samples.len() as f64)
}

/// Index of the sample that represents the winning group of a majority vote over `answers`
/// (see the module docs); `None` when no answer is present.
pub fn majority_vote(answers: &[Option<&Canonical>]) -> Option<usize> {
    // (index of the group's first answer, votes), in order of first appearance.
    let mut groups: Vec<(usize, usize)> = Vec::new();
    for (i, answer) in answers.iter().enumerate() {
        let Some(answer) = answer else { continue };
        let group = groups
            .iter_mut()
            .find(|(first, _)| answers[*first].is_some_and(|rep| rep.matches(answer)));
        match group {
            Some((_, votes)) => *votes += 1,
            None => groups.push((i, 1)),
        }
    }
    let mut best: Option<(usize, usize)> = None;
    for &(first, votes) in &groups {
        if best.is_none_or(|(_, best_votes)| votes > best_votes) {
            best = Some((first, votes));
        }
    }
    best.map(|(first, _)| first)
}

/// maj@k of one problem: whether the majority answer of its first `k` samples is correct.
///
/// Errors unless `1 <= k <= samples.len()`.
pub fn maj_at_k(samples: &[SampleOutcome], k: usize) -> Result<bool, EvalError> {
    if k == 0 || k > samples.len() {
        return Err(EvalError::InvalidMetricInput(format!(
            "maj@k needs 1 <= k <= n, got n={}, k={k}",
            samples.len()
        )));
    }
    let answers: Vec<Option<&Canonical>> = samples[..k].iter().map(|s| s.answer.as_ref()).collect();
    Ok(majority_vote(&answers).is_some_and(|i| samples[i].correct))
}

/// Greedy pass@1: the fraction of problems whose greedy completion is correct.
///
/// Errors when there are no problems.
pub fn pass_at_1_greedy(correct: &[bool]) -> Result<f64, EvalError> {
    if correct.is_empty() {
        return Err(EvalError::InvalidMetricInput(
            "pass@1 needs at least one problem".into(),
        ));
    }
    Ok(correct.iter().filter(|&&c| c).count() as f64 / correct.len() as f64)
}

/// Metrics over a set of problems, each the mean of the per-problem values.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MetricsReport {
    /// Number of problems aggregated.
    pub num_problems: usize,
    /// Mean of per-problem avg@n.
    pub avg_at_n: f64,
    /// `(k, mean pass@k)` for each requested `k`, in the requested order.
    pub pass_at_k: Vec<(usize, f64)>,
    /// `(k, mean maj@k)` for each requested `k`, in the requested order.
    pub maj_at_k: Vec<(usize, f64)>,
}

/// Aggregates sampled outcomes (one `Vec` per problem, samples in generation order) into
/// avg@n, pass@k and maj@k for every `k` in `ks`.
///
/// Problems may have different sample counts; every problem needs at least `max(ks)` samples.
/// Errors when there are no problems or a problem has too few samples.
pub fn aggregate(
    problems: &[Vec<SampleOutcome>],
    ks: &[usize],
) -> Result<MetricsReport, EvalError> {
    if problems.is_empty() {
        return Err(EvalError::InvalidMetricInput(
            "no problems to aggregate".into(),
        ));
    }
    let count = problems.len() as f64;
    let mut avg = 0.0;
    let mut pass = vec![0.0; ks.len()];
    let mut maj = vec![0.0; ks.len()];
    for (p, samples) in problems.iter().enumerate() {
        let context = |e: EvalError| match e {
            EvalError::InvalidMetricInput(msg) => {
                EvalError::InvalidMetricInput(format!("problem {p}: {msg}"))
            }
            other => other,
        };
        avg += avg_at_n(samples).map_err(context)?;
        let n = samples.len();
        let c = samples.iter().filter(|s| s.correct).count();
        for (j, &k) in ks.iter().enumerate() {
            pass[j] += pass_at_k(n, c, k).map_err(context)?;
            if maj_at_k(samples, k).map_err(context)? {
                maj[j] += 1.0;
            }
        }
    }
    Ok(MetricsReport {
        num_problems: problems.len(),
        avg_at_n: avg / count,
        pass_at_k: ks
            .iter()
            .zip(&pass)
            .map(|(&k, &s)| (k, s / count))
            .collect(),
        maj_at_k: ks.iter().zip(&maj).map(|(&k, &s)| (k, s / count)).collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::normalize::canonicalize;

    fn ok<T>(r: Result<T, EvalError>) -> T {
        match r {
            Ok(v) => v,
            Err(e) => panic!("{e}"),
        }
    }

    /// Fraction of all k-subsets of n samples (the first c correct) holding a correct one.
    fn brute_force_pass_at_k(n: usize, c: usize, k: usize) -> f64 {
        let (mut hit, mut total) = (0u64, 0u64);
        for mask in 0u32..(1 << n) {
            if mask.count_ones() as usize == k {
                total += 1;
                if mask & ((1u32 << c) - 1) != 0 {
                    hit += 1;
                }
            }
        }
        hit as f64 / total as f64
    }

    fn sample(answer: &str, reference: &str) -> SampleOutcome {
        let answer = canonicalize(answer);
        let correct = match (&answer, canonicalize(reference)) {
            (Some(a), Some(r)) => a.matches(&r),
            _ => false,
        };
        SampleOutcome { correct, answer }
    }

    fn no_answer() -> SampleOutcome {
        SampleOutcome {
            correct: false,
            answer: None,
        }
    }

    #[test]
    fn pass_at_k_from_the_definition() {
        // 1 - C(3,2)/C(5,2) = 1 - 3/10.
        assert!((ok(pass_at_k(5, 2, 2)) - 0.7).abs() < 1e-12);
        // 1 - C(9,1)/C(10,1) = 0.1: pass@1 is the plain accuracy.
        assert!((ok(pass_at_k(10, 1, 1)) - 0.1).abs() < 1e-12);
        assert_eq!(ok(pass_at_k(5, 0, 3)), 0.0);
        // n - c < k: every subset holds a correct sample.
        assert_eq!(ok(pass_at_k(5, 4, 2)), 1.0);
        assert_eq!(ok(pass_at_k(4, 4, 4)), 1.0);
    }

    #[test]
    fn pass_at_k_matches_brute_force_enumeration() {
        for n in 1..=10 {
            for c in 0..=n {
                for k in 1..=n {
                    let expected = brute_force_pass_at_k(n, c, k);
                    let got = ok(pass_at_k(n, c, k));
                    assert!((got - expected).abs() < 1e-12, "n={n} c={c} k={k}");
                }
            }
        }
    }

    #[test]
    fn pass_at_k_is_stable_for_large_n() {
        // C(1000, 500) overflows f64; the product form does not.
        let v = ok(pass_at_k(1000, 1, 500));
        assert!((v - 0.5).abs() < 1e-12);
    }

    #[test]
    fn pass_at_k_rejects_bad_input() {
        assert!(pass_at_k(5, 2, 0).is_err());
        assert!(pass_at_k(5, 2, 6).is_err());
        assert!(pass_at_k(5, 6, 2).is_err());
    }

    #[test]
    fn majority_vote_groups_equivalent_answers() {
        let samples = vec![
            sample("0.5", "1/2"),
            sample("3", "1/2"),
            sample("\\frac{1}{2}", "1/2"),
            sample("3", "1/2"),
            sample("50%", "1/2"),
        ];
        // 0.5 has two votes, 3 has two votes, 50 has one: the tie goes to 0.5 (first seen).
        assert!(ok(maj_at_k(&samples, 5)));
        assert!(ok(maj_at_k(&samples, 1)));
        // First two samples: one vote each, the first wins.
        assert!(ok(maj_at_k(&samples, 2)));
        let samples = vec![
            sample("3", "1/2"),
            sample("0.5", "1/2"),
            sample(".5", "1/2"),
        ];
        assert!(!ok(maj_at_k(&samples, 2)));
        assert!(ok(maj_at_k(&samples, 3)));
    }

    #[test]
    fn missing_answers_do_not_win() {
        let samples = vec![no_answer(), no_answer(), sample("4", "4"), no_answer()];
        assert!(ok(maj_at_k(&samples, 4)));
        assert!(!ok(maj_at_k(&samples, 2)));
        assert_eq!(majority_vote(&[None, None]), None);
    }

    #[test]
    fn avg_and_greedy() {
        let samples = vec![
            sample("1", "1"),
            sample("2", "1"),
            sample("1.0", "1"),
            no_answer(),
        ];
        assert_eq!(ok(avg_at_n(&samples)), 0.5);
        assert!(avg_at_n(&[]).is_err());
        assert_eq!(ok(pass_at_1_greedy(&[true, false, false, true])), 0.5);
        assert!(pass_at_1_greedy(&[]).is_err());
    }

    #[test]
    fn aggregate_over_problems() {
        let p1 = vec![sample("72", "72"), sample("70", "72"), sample("72", "72")];
        let p2 = vec![sample("5", "6"), sample("7", "6"), sample("7", "6")];
        let report = ok(aggregate(&[p1, p2], &[1, 2, 3]));
        assert_eq!(report.num_problems, 2);
        // avg: (2/3 + 0) / 2.
        assert!((report.avg_at_n - 1.0 / 3.0).abs() < 1e-12);
        // pass@1 = avg; pass@2 for n=3, c=2 is 1; pass@3 likewise.
        let pass: Vec<f64> = report.pass_at_k.iter().map(|&(_, v)| v).collect();
        assert!((pass[0] - 1.0 / 3.0).abs() < 1e-12);
        assert_eq!(pass[1], 0.5);
        assert_eq!(pass[2], 0.5);
        assert_eq!(report.maj_at_k, vec![(1, 0.5), (2, 0.5), (3, 0.5)]);
        assert!(aggregate(&[], &[1]).is_err());
        let short = vec![sample("1", "1")];
        assert!(aggregate(&[short], &[2]).is_err());
    }
}
