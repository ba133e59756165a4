//! The math verifier: scores a completion against a reference answer.
//!
//! The reward of one completion is
//!
//! ```text
//! reward = (correct ? correct_reward : incorrect_reward)
//!        + (answer found in one of rewarded_formats ? format_reward : 0)
//! ```
//!
//! A call never panics and has a bounded cost: only the last
//! [`VerifierConfig::max_scan_bytes`] bytes of a completion are scanned, every scan after that
//! is linear, brace matching and number parsing have fixed limits (see [`crate::extract`] and
//! [`crate::normalize`]). When one of those limits decided the verdict, the score says so
//! ([`Score::gave_up`]), so that training can report how often it happens.

use serde::{Deserialize, Serialize};

use crate::countdown::CountdownVerifier;
use crate::dataset::Problem;
use crate::error::EvalError;
use crate::extract::{AnswerFormat, Extracted, extract_with, tail};
use crate::normalize::{Canonical, canonicalize, too_many_digits};

/// Upper bound accepted for [`VerifierConfig::max_scan_bytes`] (1 MiB).
pub const MAX_SCAN_BYTES_LIMIT: usize = 1 << 20;

/// Settings of a [`MathVerifier`].
///
/// Every field has a default, so an empty TOML/JSON table is a valid config; unknown fields are
/// rejected.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct VerifierConfig {
    /// Reward for a correct answer. Default `1.0`.
    pub correct_reward: f64,
    /// Reward for a wrong or missing answer. Default `0.0`.
    pub incorrect_reward: f64,
    /// Added when the answer was found in one of `rewarded_formats`, whether or not it is
    /// correct. Default `0.0` (no format reward).
    pub format_reward: f64,
    /// The formats that earn `format_reward`. Default: `answer_tag`, `boxed`, `hashes`.
    pub rewarded_formats: Vec<AnswerFormat>,
    /// Whether the last number of the text counts as the answer when no explicit format is
    /// found (for Countdown: the last non-blank line). Default `true`.
    pub allow_last_number: bool,
    /// How many bytes at the end of a completion are scanned. Default `16384` (16 KiB); must be
    /// between 1 and [`MAX_SCAN_BYTES_LIMIT`].
    pub max_scan_bytes: usize,
}

impl Default for VerifierConfig {
    fn default() -> Self {
        Self {
            correct_reward: 1.0,
            incorrect_reward: 0.0,
            format_reward: 0.0,
            rewarded_formats: vec![
                AnswerFormat::AnswerTag,
                AnswerFormat::Boxed,
                AnswerFormat::Hashes,
            ],
            allow_last_number: true,
            max_scan_bytes: 16 * 1024,
        }
    }
}

impl VerifierConfig {
    /// The [`Score`] of a verdict: `correct` or not, plus the format bonus when `extracted` is
    /// in one of `rewarded_formats` (the formula of the module docs).
    pub fn score(
        &self,
        correct: bool,
        extracted: Option<Extracted>,
        answer: Option<Canonical>,
        gave_up: Option<GaveUp>,
    ) -> Score {
        let format_ok = extracted
            .as_ref()
            .is_some_and(|e| self.rewarded_formats.contains(&e.format));
        let base = if correct {
            self.correct_reward
        } else {
            self.incorrect_reward
        };
        let bonus = if format_ok { self.format_reward } else { 0.0 };
        Score {
            reward: base + bonus,
            correct,
            format_ok,
            extracted,
            answer,
            gave_up,
        }
    }

    /// [`GaveUp::ScanLimit`] when `completion` is longer than `max_scan_bytes`.
    pub fn scan_limit(&self, completion: &str) -> Option<GaveUp> {
        (completion.len() > self.max_scan_bytes).then_some(GaveUp::ScanLimit)
    }

    /// Checks that rewards are finite and the scan size is in range.
    pub fn validate(&self) -> Result<(), EvalError> {
        for (field, value) in [
            ("correct_reward", self.correct_reward),
            ("incorrect_reward", self.incorrect_reward),
            ("format_reward", self.format_reward),
        ] {
            if !value.is_finite() {
                return Err(EvalError::InvalidConfig {
                    field,
                    reason: format!("must be a finite number, got {value}"),
                });
            }
        }
        if self.max_scan_bytes == 0 || self.max_scan_bytes > MAX_SCAN_BYTES_LIMIT {
            return Err(EvalError::InvalidConfig {
                field: "max_scan_bytes",
                reason: format!(
                    "must be between 1 and {MAX_SCAN_BYTES_LIMIT}, got {}",
                    self.max_scan_bytes
                ),
            });
        }
        Ok(())
    }
}

/// A limit on size or cost that the verifier hit on a completion: the verdict may differ from
/// what reading the whole answer without limits would give.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GaveUp {
    /// The completion is longer than [`VerifierConfig::max_scan_bytes`]: only its end was read.
    ScanLimit,
    /// The answer holds a number of more than [`crate::normalize::MAX_NUMBER_DIGITS`] digits,
    /// which is compared as text, not as a number.
    NumberTooLong,
    /// The Countdown expression is longer, deeper or has longer literals than
    /// [`crate::countdown`]'s limits, so it was not evaluated.
    ExpressionTooLarge,
}

/// The verdict on one completion.
#[derive(Debug, Clone, PartialEq)]
pub struct Score {
    /// The total reward (correctness plus format).
    pub reward: f64,
    /// Whether the extracted answer equals the reference.
    pub correct: bool,
    /// Whether the answer was found in one of the rewarded formats.
    pub format_ok: bool,
    /// The extracted answer, if any.
    pub extracted: Option<Extracted>,
    /// Canonical form of the extracted answer (what majority voting compares).
    pub answer: Option<Canonical>,
    /// The limit that decided the verdict, if one did.
    pub gave_up: Option<GaveUp>,
}

/// Scores completions against reference answers; see the module docs for the reward.
#[derive(Debug, Clone)]
pub struct MathVerifier {
    config: VerifierConfig,
}

impl MathVerifier {
    /// A verifier with a validated config.
    pub fn new(config: VerifierConfig) -> Result<Self, EvalError> {
        config.validate()?;
        Ok(Self { config })
    }

    /// The verifier's config.
    pub fn config(&self) -> &VerifierConfig {
        &self.config
    }

    /// Scores `completion` against the reference answer string `reference`.
    ///
    /// A reference that is empty after cleaning matches nothing. Like completions, references
    /// are cut to their last `max_scan_bytes` bytes.
    pub fn score(&self, completion: &str, reference: &str) -> Score {
        let reference = canonicalize(tail(reference, self.config.max_scan_bytes));
        self.score_against(completion, reference.as_ref())
    }

    /// Scores a group of completions (e.g. the samples of one prompt) against one reference,
    /// canonicalising the reference once.
    pub fn score_group<S: AsRef<str>>(&self, completions: &[S], reference: &str) -> Vec<Score> {
        let reference = canonicalize(tail(reference, self.config.max_scan_bytes));
        completions
            .iter()
            .map(|c| self.score_against(c.as_ref(), reference.as_ref()))
            .collect()
    }

    /// Scores `completion` against an already canonicalised reference (`None` matches nothing).
    ///
    /// Use this to canonicalise a problem's reference once for a whole group of samples.
    pub fn score_against(&self, completion: &str, reference: Option<&Canonical>) -> Score {
        let scanned = tail(completion, self.config.max_scan_bytes);
        let extracted = extract_with(scanned, self.config.allow_last_number);
        let answer = extracted.as_ref().and_then(|e| canonicalize(&e.text));
        let correct = match (&answer, reference) {
            (Some(a), Some(r)) => a.matches(r),
            _ => false,
        };
        let gave_up = self.config.scan_limit(completion).or_else(|| {
            extracted
                .as_ref()
                .filter(|e| too_many_digits(&e.text))
                .map(|_| GaveUp::NumberTooLong)
        });
        self.config.score(correct, extracted, answer, gave_up)
    }
}

/// The kind of task a problem set holds, which decides how its completions are scored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TaskKind {
    /// A single final answer compared with the reference ([`MathVerifier`]). The default.
    #[default]
    Math,
    /// A Countdown expression checked against the problem's numbers and target
    /// ([`CountdownVerifier`]); problems come from a dataset loaded with
    /// [`crate::DatasetConfig::numbers_field`] set.
    Countdown,
}

/// The reward function of any task: one entry point for training and evaluation.
#[derive(Debug, Clone)]
pub enum Verifier {
    /// Final-answer equivalence.
    Math(MathVerifier),
    /// Countdown expressions.
    Countdown(CountdownVerifier),
}

impl Verifier {
    /// The verifier of `task`, with a validated config.
    pub fn new(task: TaskKind, config: VerifierConfig) -> Result<Self, EvalError> {
        Ok(match task {
            TaskKind::Math => Self::Math(MathVerifier::new(config)?),
            TaskKind::Countdown => Self::Countdown(CountdownVerifier::new(config)?),
        })
    }

    /// The task this verifier scores.
    pub fn task(&self) -> TaskKind {
        match self {
            Self::Math(_) => TaskKind::Math,
            Self::Countdown(_) => TaskKind::Countdown,
        }
    }

    /// The verifier's config.
    pub fn config(&self) -> &VerifierConfig {
        match self {
            Self::Math(v) => v.config(),
            Self::Countdown(v) => v.config(),
        }
    }

    /// Scores `completion` against `problem`.
    ///
    /// Math: against [`Problem::answer`]. Countdown: against [`Problem::countdown`]; a problem
    /// without Countdown numbers scores every completion as wrong.
    pub fn score(&self, completion: &str, problem: &Problem) -> Score {
        match self {
            Self::Math(v) => v.score(completion, &problem.answer),
            Self::Countdown(v) => v.score(completion, problem.countdown().as_ref()),
        }
    }

    /// Scores a group of completions of one problem, reading the reference once.
    pub fn score_group<S: AsRef<str>>(&self, completions: &[S], problem: &Problem) -> Vec<Score> {
        match self {
            Self::Math(v) => v.score_group(completions, &problem.answer),
            Self::Countdown(v) => {
                let spec = problem.countdown();
                completions
                    .iter()
                    .map(|c| v.score(c.as_ref(), spec.as_ref()))
                    .collect()
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn default_verifier() -> MathVerifier {
        match MathVerifier::new(VerifierConfig::default()) {
            Ok(v) => v,
            Err(e) => panic!("default config must be valid: {e}"),
        }
    }

    #[test]
    fn gsm8k_completion_is_correct() {
        let v = default_verifier();
        let completion = "Weng earns 12/60 = $0.2 per minute.\n\
                          Working 50 minutes, she earned 0.2 x 50 = $10.\n#### 10";
        let s = v.score(completion, "10");
        assert!(s.correct);
        assert_eq!(s.reward, 1.0);
        assert!(s.format_ok);
        assert_eq!(s.extracted.map(|e| e.format), Some(AnswerFormat::Hashes));
    }

    #[test]
    fn wrong_answers_are_rejected() {
        let v = default_verifier();
        assert!(!v.score("so the total is\n#### 72.5", "72").correct);
        assert_eq!(v.score("so the total is\n#### 72.5", "72").reward, 0.0);
        assert!(
            !v.score("The answer is \\boxed{0.33}", "\\frac{1}{3}")
                .correct
        );
        assert!(!v.score("no answer at all", "72").correct);
    }

    #[test]
    fn math_style_answers() {
        let v = default_verifier();
        let completion = "Three of the four outcomes work, so the probability is \
                          $\\boxed{\\dfrac{3}{4}}$.";
        assert!(v.score(completion, "\\frac{3}{4}").correct);
        assert!(v.score(completion, "0.75").correct);
        assert!(v.score("The answer is $1{,}234$.", "1234").correct);
        assert!(v.score("Total: \\boxed{50\\%}", "50").correct);
        assert!(v.score("\\boxed{(1, 2)}", "\\left(1,2\\right)").correct);
    }

    #[test]
    fn group_scoring_matches_single_scoring() {
        let v = default_verifier();
        let group = [
            "#### 18",
            "She makes 9 * 2 = $18 every day.",
            "\\boxed{16}",
            "",
        ];
        let scores = v.score_group(&group, "18");
        let rewards: Vec<f64> = scores.iter().map(|s| s.reward).collect();
        assert_eq!(rewards, vec![1.0, 1.0, 0.0, 0.0]);
        for (completion, score) in group.iter().zip(&scores) {
            assert_eq!(&v.score(completion, "18"), score);
        }
    }

    #[test]
    fn format_reward_and_weights() {
        let config = VerifierConfig {
            correct_reward: 2.0,
            incorrect_reward: -0.5,
            format_reward: 0.25,
            ..VerifierConfig::default()
        };
        let v = match MathVerifier::new(config) {
            Ok(v) => v,
            Err(e) => panic!("{e}"),
        };
        assert_eq!(v.score("\\boxed{7}", "7").reward, 2.25);
        assert_eq!(v.score("\\boxed{8}", "7").reward, -0.25);
        let fallback = v.score("I think it is 7", "7");
        assert!(fallback.correct && !fallback.format_ok);
        assert_eq!(fallback.reward, 2.0);
        assert_eq!(v.score("nothing", "7").reward, -0.5);
    }

    #[test]
    fn rewarded_formats_can_be_restricted() {
        let config = VerifierConfig {
            format_reward: 0.1,
            rewarded_formats: vec![AnswerFormat::AnswerTag],
            allow_last_number: false,
            ..VerifierConfig::default()
        };
        let v = match MathVerifier::new(config) {
            Ok(v) => v,
            Err(e) => panic!("{e}"),
        };
        assert_eq!(v.score("<answer>7</answer>", "7").reward, 1.1);
        assert_eq!(v.score("#### 7", "7").reward, 1.0);
        assert_eq!(v.score("it is 7", "7").reward, 0.0);
    }

    #[test]
    fn only_the_tail_is_scanned() {
        let config = VerifierConfig {
            max_scan_bytes: 64,
            ..VerifierConfig::default()
        };
        let v = match MathVerifier::new(config) {
            Ok(v) => v,
            Err(e) => panic!("{e}"),
        };
        let far = format!("#### 7\n{}", "x".repeat(100));
        assert!(!v.score(&far, "7").correct);
        let near = format!("{}\n#### 7", "x".repeat(100));
        assert!(v.score(&near, "7").correct);
    }

    #[test]
    fn answers_decided_by_a_limit_are_reported() {
        let v = MathVerifier::new(VerifierConfig {
            max_scan_bytes: 64,
            ..VerifierConfig::default()
        })
        .unwrap();
        assert_eq!(v.score("#### 72", "72").gave_up, None);
        // 100 bytes: only the last 64 are read (the answer is still found there).
        let long = format!("{}#### 72", "x".repeat(93));
        let score = v.score(&long, "72");
        assert!(score.correct);
        assert_eq!(score.gave_up, Some(GaveUp::ScanLimit));
        // A 101-digit answer is compared as text, not as a number.
        let v = default_verifier();
        let huge = "7".repeat(101);
        let score = v.score(&format!("#### {huge}"), &huge);
        assert_eq!(score.gave_up, Some(GaveUp::NumberTooLong));
        assert_eq!(score.answer, Some(Canonical::Text(huge)));
        // 100 digits, with separators and a decimal point, are still read as a number.
        let fits = format!("{},{}.{}", "1".repeat(3), "2".repeat(3), "3".repeat(94));
        let score = v.score(&format!("#### {fits}"), "1222");
        assert_eq!(score.gave_up, None);
        assert!(matches!(score.answer, Some(Canonical::Number(_))));
        // The countdown verifier reports expressions past its limits.
        let countdown = Verifier::new(TaskKind::Countdown, VerifierConfig::default()).unwrap();
        let problem = |line: &str| {
            crate::dataset::parse_jsonl(
                line.as_bytes(),
                "c.jsonl".as_ref(),
                &crate::dataset::DatasetConfig {
                    numbers_field: Some("numbers".into()),
                    ..Default::default()
                },
            )
            .unwrap()
            .remove(0)
        };
        let p = problem(r#"{"question": "q", "answer": 10, "numbers": [6, 4]}"#);
        assert_eq!(countdown.score("<answer>6+4</answer>", &p).gave_up, None);
        for expression in ["1234567890123+1".to_string(), "1+".repeat(600) + "1"] {
            let score = countdown.score(&format!("<answer>{expression}</answer>"), &p);
            assert_eq!(
                score.gave_up,
                Some(GaveUp::ExpressionTooLarge),
                "{expression}"
            );
            assert!(!score.correct);
        }
        // A malformed expression is wrong, not given up on.
        assert_eq!(countdown.score("<answer>6+</answer>", &p).gave_up, None);
    }

    #[test]
    fn verifier_dispatches_on_the_task() {
        let kind: Result<TaskKind, _> = serde_json::from_str("\"countdown\"");
        assert_eq!(kind.ok(), Some(TaskKind::Countdown));
        assert_eq!(TaskKind::default(), TaskKind::Math);
        let problem = |answer: &str| Problem {
            id: "1".to_string(),
            question: "q".to_string(),
            answer: answer.to_string(),
            line: 1,
        };
        let math = match Verifier::new(TaskKind::Math, VerifierConfig::default()) {
            Ok(v) => v,
            Err(e) => panic!("{e}"),
        };
        assert_eq!(math.task(), TaskKind::Math);
        assert!(math.score("#### 12", &problem("12")).correct);
        let countdown = match Verifier::new(TaskKind::Countdown, VerifierConfig::default()) {
            Ok(v) => v,
            Err(e) => panic!("{e}"),
        };
        assert_eq!(countdown.task(), TaskKind::Countdown);
        let p = problem("12 using 6, 2");
        let rewards: Vec<f64> = countdown
            .score_group(&["<answer>6*2</answer>", "6 + 6", "2 * 6\n"], &p)
            .iter()
            .map(|s| s.reward)
            .collect();
        assert_eq!(rewards, vec![1.0, 0.0, 1.0]);
        // A plain answer is no Countdown problem: nothing is correct.
        assert!(!countdown.score("12", &problem("12")).correct);
        let bad = VerifierConfig {
            max_scan_bytes: 0,
            ..VerifierConfig::default()
        };
        assert!(Verifier::new(TaskKind::Countdown, bad).is_err());
    }

    #[test]
    fn config_parsing_and_validation() {
        let parsed: Result<VerifierConfig, _> =
            serde_json::from_str(r#"{"format_reward": 0.2, "rewarded_formats": ["boxed"]}"#);
        let parsed = match parsed {
            Ok(c) => c,
            Err(e) => panic!("{e}"),
        };
        assert_eq!(parsed.format_reward, 0.2);
        assert_eq!(parsed.rewarded_formats, vec![AnswerFormat::Boxed]);
        assert_eq!(parsed.correct_reward, 1.0);
        assert_eq!(parsed.max_scan_bytes, 16384);

        let unknown: Result<VerifierConfig, _> = serde_json::from_str(r#"{"corect_reward": 1}"#);
        assert!(unknown.is_err());

        let zero = VerifierConfig {
            max_scan_bytes: 0,
            ..VerifierConfig::default()
        };
        assert!(matches!(
            MathVerifier::new(zero),
            Err(EvalError::InvalidConfig {
                field: "max_scan_bytes",
                ..
            })
        ));
        let nan = VerifierConfig {
            format_reward: f64::NAN,
            ..VerifierConfig::default()
        };
        assert!(matches!(
            MathVerifier::new(nan),
            Err(EvalError::InvalidConfig {
                field: "format_reward",
                ..
            })
        ));
    }
}
