//! DAPO's dynamic sampling (Yu et al. 2025, arXiv 2503.14476, §3.2): sample further rounds of
//! prompts and keep only the groups whose rewards differ, until the step has its B groups. A
//! group whose answers all tie (E4 zero variance) gives the outcome-only methods no gradient;
//! dropping it is the "just drop the tied groups" baseline EP-GRPO is compared with.
//!
//! Rounds are capped (`rollout.dynamic_sampling_rounds`); when the cap is reached the batch is
//! filled with tied groups in sampling order, so every step keeps B × G answers (the minibatch
//! split stays valid) and the report says how many had to be kept.

use crate::error::CliError;
use crate::rollout::Rollout;

/// The batch one step trains on, and what it cost to collect.
#[derive(Debug, Clone)]
pub struct Collected {
    /// B groups, the informative ones first in sampling order, then tied ones if the rounds
    /// ran out.
    pub rollout: Rollout,
    /// Rounds of B prompts sampled (1 when the first round had no tied group).
    pub rounds: usize,
    /// Groups sampled over all rounds.
    pub groups_sampled: usize,
    /// Answer tokens generated over all rounds (the step's rollout cost).
    pub tokens_generated: usize,
    /// Tied groups the batch had to keep because the rounds ran out.
    pub tied_kept: usize,
}

impl Collected {
    /// One round taken as it is (dynamic sampling off).
    pub fn single(rollout: Rollout) -> Self {
        Self {
            rounds: 1,
            groups_sampled: rollout.problems.len(),
            tokens_generated: rollout.completions.iter().map(|c| c.tokens.len()).sum(),
            tied_kept: 0,
            rollout,
        }
    }
}

/// Whether a group's rewards all tie: sample std below `tolerance`, the E4 rule.
pub fn is_tied(rewards: &[f64], tolerance: f64) -> bool {
    if rewards.len() < 2 {
        return true;
    }
    let n = rewards.len() as f64;
    let mean = rewards.iter().sum::<f64>() / n;
    let variance = rewards.iter().map(|r| (r - mean).powi(2)).sum::<f64>() / (n - 1.0);
    variance.sqrt() < tolerance
}

/// Samples rounds with `sample(round)` (round 0 is the step's ordinary rollout) until `groups`
/// groups of `group_size` answers with differing rewards are collected or `max_rounds` rounds
/// are spent, and returns the step's batch.
pub fn collect(
    groups: usize,
    group_size: usize,
    max_rounds: usize,
    tolerance: f64,
    mut sample: impl FnMut(usize) -> Result<Rollout, CliError>,
) -> Result<Collected, CliError> {
    let mut rounds: Vec<Rollout> = Vec::new();
    let mut informative: Vec<(usize, usize)> = Vec::new();
    let mut tied: Vec<(usize, usize)> = Vec::new();
    while informative.len() < groups && rounds.len() < max_rounds.max(1) {
        let rollout = sample(rounds.len())?;
        for group in 0..rollout.problems.len() {
            let rewards = &rollout.rewards[group * group_size..(group + 1) * group_size];
            let slot = (rounds.len(), group);
            if is_tied(rewards, tolerance) {
                tied.push(slot);
            } else {
                informative.push(slot);
            }
        }
        rounds.push(rollout);
    }
    let tokens_generated = rounds
        .iter()
        .flat_map(|r| &r.completions)
        .map(|c| c.tokens.len())
        .sum();
    let groups_sampled = rounds.iter().map(|r| r.problems.len()).sum();
    informative.truncate(groups);
    let tied_kept = groups - informative.len();
    let chosen: Vec<(usize, usize)> = informative
        .into_iter()
        .chain(tied.into_iter().take(tied_kept))
        .collect();
    Ok(Collected {
        rollout: select_groups(&rounds, &chosen, group_size),
        rounds: rounds.len(),
        groups_sampled,
        tokens_generated,
        tied_kept,
    })
}

/// The groups `chosen` (round, group) of `rounds` as one rollout, prompt-major, each group's
/// answers in their sampling order.
fn select_groups(rounds: &[Rollout], chosen: &[(usize, usize)], group_size: usize) -> Rollout {
    let mut out = Rollout {
        problems: Vec::with_capacity(chosen.len()),
        prompts: Vec::with_capacity(chosen.len()),
        completions: Vec::with_capacity(chosen.len() * group_size),
        rewards: Vec::new(),
        texts: Vec::new(),
        pad: rounds.first().map_or(0, |r| r.pad),
        correct: Vec::new(),
        scores: Vec::new(),
    };
    for (index, &(round, group)) in chosen.iter().enumerate() {
        let source = &rounds[round];
        out.problems.push(source.problems[group].clone());
        out.prompts.push(source.prompts[group].clone());
        let answers = group * group_size..(group + 1) * group_size;
        for row in answers.clone() {
            let mut completion = source.completions[row].clone();
            completion.prompt = index;
            out.completions.push(completion);
        }
        out.rewards
            .extend_from_slice(&source.rewards[answers.clone()]);
        out.texts.extend_from_slice(&source.texts[answers.clone()]);
        out.correct
            .extend_from_slice(&source.correct[answers.clone()]);
        out.scores.extend_from_slice(&source.scores[answers]);
    }
    out
}

#[cfg(test)]
mod tests {
    use epgrpo_eval::{MathVerifier, Problem, VerifierConfig};
    use epgrpo_models::{Completion, FinishReason};

    use super::*;

    const G: usize = 2;

    /// A round of groups with the given rewards; group k of round r is problem "r.k" and its
    /// answers are 1 + k tokens long.
    fn round(r: usize, rewards: &[[f64; G]]) -> Rollout {
        let score = MathVerifier::new(VerifierConfig::default())
            .unwrap()
            .score("1", "1");
        let mut rollout = Rollout {
            problems: Vec::new(),
            prompts: Vec::new(),
            completions: Vec::new(),
            rewards: Vec::new(),
            texts: Vec::new(),
            pad: 0,
            correct: Vec::new(),
            scores: Vec::new(),
        };
        for (k, group) in rewards.iter().enumerate() {
            rollout.problems.push(Problem {
                id: format!("{r}.{k}"),
                question: String::new(),
                answer: String::new(),
                line: 0,
            });
            rollout.prompts.push(vec![k as u32 + 5]);
            for (sample, reward) in group.iter().enumerate() {
                rollout.completions.push(Completion {
                    prompt: k,
                    sample,
                    tokens: vec![7; 1 + k],
                    logprobs: vec![-0.5; 1 + k],
                    finish: FinishReason::Stop,
                });
                rollout.rewards.push(*reward);
                rollout.texts.push(format!("{r}.{k}.{sample}"));
                rollout.correct.push(*reward > 0.5);
                rollout.scores.push(score.clone());
            }
        }
        rollout
    }

    fn rounds() -> Vec<Rollout> {
        vec![
            round(0, &[[1., 1.], [1., 0.], [0., 0.], [0., 1.]]),
            round(1, &[[0., 0.], [0., 0.], [1., 0.], [1., 1.]]),
            round(2, &[[0., 1.], [1., 0.], [1., 0.], [0., 0.]]),
        ]
    }

    fn ids(rollout: &Rollout) -> Vec<&str> {
        rollout.problems.iter().map(|p| p.id.as_str()).collect()
    }

    #[test]
    fn further_rounds_replace_tied_groups_until_the_batch_is_full() {
        let all = rounds();
        let mut asked = Vec::new();
        let got = collect(4, G, 5, 1e-8, |r| {
            asked.push(r);
            Ok(all[r].clone())
        })
        .unwrap();
        assert_eq!(asked, [0, 1, 2], "stops once four groups differ");
        assert_eq!(ids(&got.rollout), ["0.1", "0.3", "1.2", "2.0"]);
        assert_eq!((got.rounds, got.groups_sampled, got.tied_kept), (3, 12, 0));
        // Every round's answers count in the cost: lengths 1..=4 per group, G answers each.
        assert_eq!(got.tokens_generated, 3 * G * (1 + 2 + 3 + 4));
        let prompts: Vec<usize> = got.rollout.completions.iter().map(|c| c.prompt).collect();
        assert_eq!(prompts, [0, 0, 1, 1, 2, 2, 3, 3]);
        assert_eq!(got.rollout.rewards, [1., 0., 0., 1., 1., 0., 0., 1.]);
        assert_eq!(got.rollout.texts[4], "1.2.0");
        assert_eq!(got.rollout.prompts, [vec![6], vec![8], vec![7], vec![5]]);
    }

    #[test]
    fn tied_groups_fill_the_batch_when_the_rounds_run_out() {
        let all = rounds();
        let got = collect(4, G, 2, 1e-8, |r| Ok(all[r].clone())).unwrap();
        assert_eq!(ids(&got.rollout), ["0.1", "0.3", "1.2", "0.0"]);
        assert_eq!((got.rounds, got.tied_kept), (2, 1));
    }

    #[test]
    fn ties_follow_the_sample_std_rule_of_e4() {
        assert!(is_tied(&[1.0, 1.0, 1.0], 1e-8));
        assert!(!is_tied(&[1.0, 0.0, 1.0], 1e-8));
        assert!(is_tied(&[0.5, 0.5 + 1e-12], 1e-8));
        assert!(is_tied(&[0.3], 1e-8));
    }
}
