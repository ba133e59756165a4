//! `epgrpo-eval`: verifiable rewards and evaluation.
//!
//! Pure Rust (no Burn), shared by training (rewards) and evaluation:
//!
//! * [`extract`]: find the final answer of a completion (`<answer>` tags, `\boxed{}`,
//!   GSM8K `#### N`, or the last number);
//! * [`normalize`]: canonical forms and equivalence of answers (exact rationals, percentages,
//!   thousands separators, simple LaTeX);
//! * [`verify`]: [`MathVerifier`], the reward function, with a bounded cost per call, and
//!   [`Verifier`], which scores a completion against a [`Problem`] of any task;
//! * [`countdown`]: Countdown expressions (numbers and a target), parsed and evaluated exactly;
//! * [`dataset`]: JSONL problem sets with errors that name the file and line;
//! * [`metrics`]: greedy pass@1, avg@n, unbiased pass@k and maj@k.
//!
//! ```
//! use epgrpo_eval::{MathVerifier, VerifierConfig};
//!
//! let verifier = MathVerifier::new(VerifierConfig::default())?;
//! let score = verifier.score("Half of 144 is 72.\n#### 72", "72");
//! assert!(score.correct);
//! assert_eq!(score.reward, 1.0);
//! # Ok::<(), epgrpo_eval::EvalError>(())
//! ```
//!
//! A Countdown problem set is loaded with [`DatasetConfig::numbers_field`] set, and scored by a
//! [`Verifier`] of [`TaskKind::Countdown`]:
//!
//! ```
//! use epgrpo_eval::{DatasetConfig, TaskKind, Verifier, VerifierConfig, parse_jsonl};
//!
//! let line = r#"{"question": "Make 309 from 6, 61, 94, 4.", "answer": 309, "numbers": [6, 61, 94, 4]}"#;
//! let config = DatasetConfig {
//!     numbers_field: Some("numbers".to_string()),
//!     ..DatasetConfig::default()
//! };
//! let problems = parse_jsonl(line.as_bytes(), "countdown.jsonl".as_ref(), &config)?;
//! let verifier = Verifier::new(TaskKind::Countdown, VerifierConfig::default())?;
//! assert!(verifier.score("<answer>94*4 - 61 - 6</answer>", &problems[0]).correct);
//! assert!(!verifier.score("<answer>94*4 - 61 - 6*1</answer>", &problems[0]).correct);
//! # Ok::<(), epgrpo_eval::EvalError>(())
//! ```
//!
//! The reward and equivalence rules are described in `docs/rewards.md`.

pub mod countdown;
pub mod dataset;
pub mod error;
pub mod extract;
pub mod metrics;
pub mod normalize;
pub mod verify;

pub use countdown::{CountdownSpec, CountdownVerifier, Evaluation, ExpressionError, evaluate};
pub use dataset::{DatasetConfig, Problem, load_jsonl, parse_jsonl};
pub use error::EvalError;
pub use extract::{AnswerFormat, Extracted, extract_answer, extract_expression};
pub use metrics::{
    MetricsReport, SampleOutcome, aggregate, avg_at_n, maj_at_k, pass_at_1_greedy, pass_at_k,
};
pub use normalize::{Canonical, Number, Rational, answers_match, canonicalize};
pub use verify::{GaveUp, MathVerifier, Score, TaskKind, Verifier, VerifierConfig};
