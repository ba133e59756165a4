//! The problems of a run: integer arithmetic generated from a seed (`37+58` → `95`, the
//! default task), or JSONL files; and the character vocabulary the small scratch decoder reads
//! and writes.
//!
//! An arithmetic problem belongs to the held-out split when a hash of its operands and operator
//! falls in one tenth of the hash range; training never samples those, so held-out accuracy
//! measures generalisation, not memorisation. File problems are held out by being in the
//! evaluation file.

use epgrpo_eval::{DatasetConfig, Problem, TaskKind, load_jsonl};

use crate::config::TaskConfig;
use crate::error::CliError;

/// Token ids of the character vocabulary: `<pad>`, `<bos>`, `<eos>`, the ten digits, `+ - * =`.
#[derive(Debug, Clone, Copy)]
pub struct CharVocab;

impl CharVocab {
    /// Filler id.
    pub const PAD: u32 = 0;
    /// Start of a prompt.
    pub const BOS: u32 = 1;
    /// End of an answer.
    pub const EOS: u32 = 2;
    /// Number of ids.
    pub const SIZE: usize = 17;
    const SYMBOLS: &'static str = "0123456789+-*=";

    /// Ids of `text`, or the first character that is not in the vocabulary.
    pub fn encode(text: &str) -> Result<Vec<u32>, char> {
        text.chars()
            .map(|c| Self::SYMBOLS.find(c).map(|i| i as u32 + 3).ok_or(c))
            .collect()
    }

    /// Text of `ids` up to the first `<eos>`; `<pad>`/`<bos>` are dropped.
    pub fn decode(ids: &[u32]) -> String {
        ids.iter()
            .take_while(|&&id| id != Self::EOS)
            .filter_map(|&id| Self::SYMBOLS.chars().nth((id as usize).checked_sub(3)?))
            .collect()
    }

    /// The text of one id: `<pad>`, `<bos>`, `<eos>` or the character (`None` past the end).
    pub fn token(id: u32) -> Option<String> {
        match id {
            Self::PAD => Some("<pad>".into()),
            Self::BOS => Some("<bos>".into()),
            Self::EOS => Some("<eos>".into()),
            _ => Self::SYMBOLS
                .chars()
                .nth((id as usize).checked_sub(3)?)
                .map(String::from),
        }
    }

    /// `<bos>` followed by the question's characters.
    pub fn prompt(question: &str) -> Result<Vec<u32>, char> {
        let mut ids = vec![Self::BOS];
        ids.extend(Self::encode(question)?);
        Ok(ids)
    }
}

/// Which split a problem is drawn from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Split {
    /// Problems used for SFT and RL.
    Train,
    /// Problems used only for evaluation.
    HeldOut,
}

/// The procedural arithmetic task.
#[derive(Debug, Clone)]
pub struct ArithmeticTask {
    max_operand: u32,
    operators: Vec<char>,
}

/// SplitMix64 finaliser: a good 64-bit mix of one word.
fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

impl ArithmeticTask {
    /// The task of a (validated) `[task]` section: [`TrainConfig::validate`] has checked with
    /// [`ArithmeticTask::check_splits`] that both splits hold a problem.
    ///
    /// [`TrainConfig::validate`]: crate::config::TrainConfig::validate
    pub fn new(config: &TaskConfig) -> Self {
        Self {
            max_operand: config.max_operand,
            operators: config.operators.chars().collect(),
        }
    }

    /// Checks that both splits of the arithmetic problems of `max_operand` and `operators` hold
    /// a problem (sampling draws until it finds one of the split asked for, so an empty split
    /// would never return); the error names the keys and the smallest `max_operand` that works.
    pub fn check_splits(max_operand: u32, operators: &str) -> Result<(), String> {
        let operators: Vec<char> = operators.chars().collect();
        let missing = |max: u32| {
            let (mut train, mut held_out) = (false, false);
            'all: for a in 0..max {
                for b in 0..max {
                    for &op in &operators {
                        match Self::split_of(a, op, b) {
                            Split::Train => train = true,
                            Split::HeldOut => held_out = true,
                        }
                        if train && held_out {
                            break 'all;
                        }
                    }
                }
            }
            match (train, held_out) {
                (true, true) => None,
                (false, _) => Some(Split::Train),
                (true, false) => Some(Split::HeldOut),
            }
        };
        let Some(split) = missing(max_operand) else {
            return Ok(());
        };
        let name = match split {
            Split::Train => "training",
            Split::HeldOut => "held-out",
        };
        let problems = max_operand as u64 * max_operand as u64 * operators.len() as u64;
        let enough = (max_operand + 1..=max_operand.saturating_add(1000))
            .find(|&max| missing(max).is_none())
            .map_or(String::new(), |max| {
                format!(" (task.max_operand = {max} is the smallest that works)")
            });
        let plural = if problems == 1 { "" } else { "s" };
        Err(format!(
            "task.max_operand = {max_operand} with task.operators = {:?} gives {problems} distinct \
             problem{plural} and none of them falls in the {name} split (about one problem in ten is \
             held out): raise task.max_operand{enough} or add operators",
            operators.iter().collect::<String>()
        ))
    }

    fn split_of(a: u32, op: char, b: u32) -> Split {
        if mix(((a as u64) << 32) ^ ((b as u64) << 8) ^ op as u64) % 10 == 0 {
            Split::HeldOut
        } else {
            Split::Train
        }
    }

    /// Problem number `index` of `split` under `seed`: deterministic, independent of any other
    /// draw, so a run can resume at any step.
    pub fn problem(&self, split: Split, seed: u64, index: u64) -> Problem {
        let mut state = mix(seed ^ mix(index ^ ((split as u64) << 62)));
        loop {
            state = mix(state);
            let a = (state % self.max_operand as u64) as u32;
            let b = ((state >> 21) % self.max_operand as u64) as u32;
            let op = self.operators[((state >> 42) % self.operators.len() as u64) as usize];
            if Self::split_of(a, op, b) != split {
                continue;
            }
            let answer = match op {
                '+' => a as i64 + b as i64,
                '-' => a as i64 - b as i64,
                _ => a as i64 * b as i64,
            };
            return Problem {
                id: format!("{split:?}-{index}"),
                question: format!("{a}{op}{b}"),
                answer: answer.to_string(),
                line: index as usize,
            };
        }
    }

    /// The evaluation set: the first `count` distinct held-out problems (fewer when the split
    /// has fewer).
    pub fn held_out(&self, seed: u64, count: usize) -> Vec<Problem> {
        let mut seen = std::collections::HashSet::new();
        (0..count as u64 * 20)
            .map(|i| self.problem(Split::HeldOut, seed, i))
            .filter(|p| seen.insert(p.question.clone()))
            .take(count)
            .collect()
    }
}

/// Where the problems of a run come from.
#[derive(Debug, Clone)]
pub enum ProblemSource {
    /// Generated arithmetic (`[task] max_operand`, `operators`).
    Arithmetic(ArithmeticTask),
    /// `[task] train_file` and `eval_file`.
    Files {
        /// Training problems, visited in a fresh seeded order every pass.
        train: Vec<Problem>,
        /// Held-out problems.
        held_out: Vec<Problem>,
    },
}

impl ProblemSource {
    /// The source a (validated) `[task]` section describes; reads its files.
    pub fn new(config: &TaskConfig) -> Result<Self, CliError> {
        let (Some(train), Some(eval)) = (&config.train_file, &config.eval_file) else {
            ArithmeticTask::check_splits(config.max_operand, &config.operators)
                .map_err(CliError::Input)?;
            return Ok(Self::Arithmetic(ArithmeticTask::new(config)));
        };
        let fields = DatasetConfig {
            question_field: config.question_field.clone(),
            answer_field: config.answer_field.clone(),
            numbers_field: (config.kind == TaskKind::Countdown)
                .then(|| config.numbers_field.clone()),
            ..DatasetConfig::default()
        };
        let read = |path: &std::path::Path| {
            let problems = load_jsonl(path, &fields).map_err(|e| CliError::Input(e.to_string()))?;
            if problems.is_empty() {
                return Err(CliError::Input(format!("{}: no problems", path.display())));
            }
            Ok(problems)
        };
        Ok(Self::Files {
            train: read(train)?,
            held_out: read(eval)?,
        })
    }

    /// Training problem number `index` under `seed` (deterministic, so a run resumes exactly).
    /// Files are read in passes, each in its own seeded order.
    pub fn train_problem(&self, seed: u64, index: u64) -> Problem {
        match self {
            Self::Arithmetic(task) => task.problem(Split::Train, seed, index),
            Self::Files { train, .. } => {
                let n = train.len() as u64;
                let order = seeded_order(train.len(), mix(seed ^ mix(index / n)));
                train[order[(index % n) as usize]].clone()
            }
        }
    }

    /// The evaluation set: the first `count` held-out problems (fewer when there are fewer).
    pub fn held_out(&self, seed: u64, count: usize) -> Vec<Problem> {
        match self {
            Self::Arithmetic(task) => task.held_out(seed, count),
            Self::Files { held_out, .. } => held_out.iter().take(count).cloned().collect(),
        }
    }
}

/// A permutation of `0..n` drawn from `seed` (Fisher–Yates).
fn seeded_order(n: usize, seed: u64) -> Vec<usize> {
    let mut order: Vec<usize> = (0..n).collect();
    let mut state = seed;
    for i in (1..n).rev() {
        state = mix(state);
        order.swap(i, (state % (i as u64 + 1)) as usize);
    }
    order
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vocabulary_round_trips_and_rejects_other_characters() {
        let ids = CharVocab::encode("12+-*=90").unwrap();
        assert_eq!(CharVocab::decode(&ids), "12+-*=90");
        assert_eq!(CharVocab::decode(&[3, 4, CharVocab::EOS, 5]), "01");
        assert_eq!(CharVocab::encode("1 + 2"), Err(' '));
        assert!(ids.iter().all(|&id| (id as usize) < CharVocab::SIZE));
    }

    #[test]
    fn problem_files_are_visited_in_seeded_passes_and_bad_lines_named() {
        let dir = std::env::temp_dir().join(format!("epgrpo-task-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let (train, eval) = (dir.join("train.jsonl"), dir.join("eval.jsonl"));
        let lines: String = (0..5)
            .map(|i| format!("{{\"q\": \"{i}+1\", \"a\": {}}}\n", i + 1))
            .collect();
        std::fs::write(&train, lines).unwrap();
        std::fs::write(&eval, "{\"q\": \"9+9\", \"a\": 18}\n").unwrap();
        let config = TaskConfig {
            train_file: Some(train.clone()),
            eval_file: Some(eval.clone()),
            question_field: "q".into(),
            answer_field: "a".into(),
            ..TaskConfig::default()
        };
        let source = ProblemSource::new(&config).unwrap();
        for pass in 0..3u64 {
            let mut seen: Vec<String> = (0..5)
                .map(|i| source.train_problem(7, pass * 5 + i).question)
                .collect();
            seen.sort();
            assert_eq!(seen, ["0+1", "1+1", "2+1", "3+1", "4+1"], "pass {pass}");
        }
        assert_eq!(source.train_problem(7, 3), source.train_problem(7, 3));
        assert_eq!(source.held_out(7, 10).len(), 1);
        std::fs::write(&eval, "{\"q\": \"9+9\"}\n").unwrap();
        let error = ProblemSource::new(&config).unwrap_err().to_string();
        assert!(error.contains("eval.jsonl:1"), "{error}");
        // A file without a problem (blank lines only) is refused, not sampled forever.
        std::fs::write(&eval, "\n  \n").unwrap();
        let error = ProblemSource::new(&config).unwrap_err().to_string();
        assert!(error.contains("eval.jsonl: no problems"), "{error}");
        std::fs::remove_dir_all(&dir).ok();
    }

    #[test]
    fn small_tasks_with_an_empty_split_are_refused_and_the_others_sample_both() {
        let mut refused = 0;
        for operators in ["+", "-", "*", "+-", "+-*"] {
            for max_operand in 1..=6u32 {
                let config = TaskConfig {
                    max_operand,
                    operators: operators.into(),
                    ..TaskConfig::default()
                };
                let task = ArithmeticTask::new(&config);
                let space = (max_operand * max_operand) as usize * operators.len();
                match ArithmeticTask::check_splits(max_operand, operators) {
                    Ok(()) => {
                        assert_eq!(task.held_out(3, 1).len(), 1);
                        task.problem(Split::Train, 3, 0);
                    }
                    Err(error) => {
                        refused += 1;
                        assert!(
                            error.contains(&format!("task.max_operand = {max_operand}"))
                                && error.contains("task.operators")
                                && error.contains("smallest that works"),
                            "{error}"
                        );
                        // Every problem there is lands in the one split that exists.
                        let seen: std::collections::HashSet<String> =
                            if error.contains("held-out split") {
                                (0..2000)
                                    .map(|i| task.problem(Split::Train, 0, i).question)
                                    .collect()
                            } else {
                                task.held_out(0, space)
                                    .into_iter()
                                    .map(|p| p.question)
                                    .collect()
                            };
                        assert_eq!(seen.len(), space, "{error}");
                        let resolved = ProblemSource::new(&config).unwrap_err();
                        assert!(resolved.to_string().contains("task.max_operand"));
                    }
                }
            }
        }
        assert!(refused > 0, "no small task has an empty split");
    }

    #[test]
    fn problems_are_deterministic_correct_and_split_apart() {
        let task = ArithmeticTask::new(&TaskConfig {
            max_operand: 100,
            ..TaskConfig::default()
        });
        let held_out: std::collections::HashSet<String> = task
            .held_out(0, 500)
            .into_iter()
            .map(|p| p.question)
            .collect();
        for i in 0..2000 {
            let p = task.problem(Split::Train, 7, i);
            assert_eq!(p, task.problem(Split::Train, 7, i));
            assert!(
                !held_out.contains(&p.question),
                "{} is held out",
                p.question
            );
            let lhs = p.question.as_str();
            let op = lhs.find(['+', '-']).unwrap();
            let (a, b): (i64, i64) = (lhs[..op].parse().unwrap(), lhs[op + 1..].parse().unwrap());
            let want = if &lhs[op..op + 1] == "+" {
                a + b
            } else {
                a - b
            };
            assert_eq!(p.answer, want.to_string());
        }
        assert_eq!(held_out.len(), 500, "held-out problems are distinct");
        // A small task has fewer held-out problems than asked for: all of them, once each.
        let small = ArithmeticTask::new(&TaskConfig {
            max_operand: 20,
            ..TaskConfig::default()
        });
        let all = small.held_out(0, 1000);
        assert!(all.len() > 50 && all.len() < 120, "{}", all.len());
    }
}
