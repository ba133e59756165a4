//! Countdown: reach a target with an arithmetic expression over given numbers.
//!
//! A Countdown problem is a target and a list of numbers ([`CountdownSpec`]), e.g. "make 309
//! from 6, 61, 94, 4". A completion's final expression (see [`crate::extract::extract_expression`])
//! solves it iff
//!
//! * it parses as an arithmetic expression over non-negative integer literals with `+`, `-`,
//!   `*`, `/`, unary `+` / `-` and parentheses ([`evaluate`]);
//! * its literals are exactly the given numbers, each used exactly once (as a multiset: a number
//!   given twice must appear twice);
//! * its value, computed in exact rationals, equals the target. Intermediate fractions are fine
//!   (`(6 / 4) * 2` is `3`), division by zero is not.
//!
//! These are the semantics of reasoning-gym's `countdown` `score_answer` (version 0.1.25): the
//! sorted integer literals must equal the sorted numbers and the value must equal the target.
//! The deviations are listed in `docs/rewards.md`: reasoning-gym evaluates any Python/SymPy
//! expression (`**`, `#` comments) and compares floats with a tolerance of `1e-6`, this parser
//! accepts only the grammar above and compares exactly.
//!
//! Parsing has a bounded cost: expressions longer than [`MAX_EXPRESSION_BYTES`], nested deeper
//! than [`MAX_EXPRESSION_DEPTH`] or with literals longer than [`MAX_LITERAL_DIGITS`] digits are
//! rejected, and every step is checked arithmetic.

use std::fmt;

use crate::error::EvalError;
use crate::extract::extract_expression;
use crate::normalize::{Canonical, Rational};
use crate::verify::{GaveUp, Score, VerifierConfig};

/// Longest expression, in bytes after trimming, that [`evaluate`] reads.
pub const MAX_EXPRESSION_BYTES: usize = 1024;

/// Deepest nesting of parentheses and unary signs that [`evaluate`] accepts.
pub const MAX_EXPRESSION_DEPTH: usize = 64;

/// Most digits an integer literal may have.
pub const MAX_LITERAL_DIGITS: usize = 12;

/// Most numbers a [`CountdownSpec`] may hold.
pub const MAX_NUMBERS: usize = 64;

/// Largest number a [`CountdownSpec`] may hold (the largest literal [`evaluate`] reads).
pub const MAX_NUMBER: i64 = 999_999_999_999;

/// Why an expression was not evaluated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ExpressionError {
    /// Nothing but whitespace.
    #[error("empty expression")]
    Empty,
    /// Longer than [`MAX_EXPRESSION_BYTES`].
    #[error("expression longer than {MAX_EXPRESSION_BYTES} bytes")]
    TooLong,
    /// Nested deeper than [`MAX_EXPRESSION_DEPTH`].
    #[error("expression nested deeper than {MAX_EXPRESSION_DEPTH} levels")]
    TooDeep,
    /// A byte that does not fit the grammar at this point.
    #[error("unexpected character at byte {offset}")]
    UnexpectedChar {
        /// Byte offset in the trimmed expression.
        offset: usize,
    },
    /// The expression stops where an operand or `)` is needed.
    #[error("unexpected end of expression")]
    UnexpectedEnd,
    /// A multi-digit literal starting with `0` (Python rejects `07`).
    #[error("literal with a leading zero at byte {offset}")]
    LeadingZero {
        /// Byte offset in the trimmed expression.
        offset: usize,
    },
    /// A literal with more than [`MAX_LITERAL_DIGITS`] digits.
    #[error("literal longer than {MAX_LITERAL_DIGITS} digits at byte {offset}")]
    LiteralTooLong {
        /// Byte offset in the trimmed expression.
        offset: usize,
    },
    /// A division by zero.
    #[error("division by zero")]
    DivisionByZero,
    /// An intermediate value does not fit an `i128` rational.
    #[error("arithmetic overflow")]
    Overflow,
}

/// The value of an expression and the integer literals it uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Evaluation {
    /// The exact value.
    pub value: Rational,
    /// The integer literals, in the order they appear.
    pub numbers: Vec<i64>,
}

/// Parses and evaluates an arithmetic expression (grammar in the module docs).
///
/// Leading and trailing whitespace is ignored. Inside the expression, spaces, tabs and form
/// feeds may separate tokens anywhere; line breaks only inside parentheses (as in Python).
pub fn evaluate(expression: &str) -> Result<Evaluation, ExpressionError> {
    let trimmed = expression.trim_matches(|c: char| c.is_ascii_whitespace() || c == '\x0b');
    if trimmed.is_empty() {
        return Err(ExpressionError::Empty);
    }
    if trimmed.len() > MAX_EXPRESSION_BYTES {
        return Err(ExpressionError::TooLong);
    }
    let mut parser = Parser {
        bytes: trimmed.as_bytes(),
        pos: 0,
        depth: 0,
        open_parens: 0,
        numbers: Vec::new(),
    };
    let value = parser.sum()?;
    parser.skip_space();
    if parser.pos < parser.bytes.len() {
        return Err(ExpressionError::UnexpectedChar { offset: parser.pos });
    }
    Ok(Evaluation {
        value,
        numbers: parser.numbers,
    })
}

/// Recursive-descent parser; `depth` bounds the recursion.
struct Parser<'a> {
    bytes: &'a [u8],
    pos: usize,
    depth: usize,
    open_parens: usize,
    numbers: Vec<i64>,
}

impl Parser<'_> {
    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.pos).copied()
    }

    fn skip_space(&mut self) {
        while let Some(b) = self.peek() {
            match b {
                b' ' | b'\t' | b'\x0c' => self.pos += 1,
                b'\n' | b'\r' if self.open_parens > 0 => self.pos += 1,
                _ => break,
            }
        }
    }

    fn enter(&mut self) -> Result<(), ExpressionError> {
        self.depth += 1;
        if self.depth > MAX_EXPRESSION_DEPTH {
            return Err(ExpressionError::TooDeep);
        }
        Ok(())
    }

    fn unexpected(&self) -> ExpressionError {
        if self.pos >= self.bytes.len() {
            ExpressionError::UnexpectedEnd
        } else {
            ExpressionError::UnexpectedChar { offset: self.pos }
        }
    }

    /// `sum := product (('+' | '-') product)*`
    fn sum(&mut self) -> Result<Rational, ExpressionError> {
        let mut acc = self.product()?;
        loop {
            self.skip_space();
            let op = match self.peek() {
                Some(op @ (b'+' | b'-')) => op,
                _ => return Ok(acc),
            };
            self.pos += 1;
            let rhs = self.product()?;
            let result = if op == b'+' {
                acc.checked_add(rhs)
            } else {
                acc.checked_sub(rhs)
            };
            acc = result.ok_or(ExpressionError::Overflow)?;
        }
    }

    /// `product := unary (('*' | '/') unary)*`
    fn product(&mut self) -> Result<Rational, ExpressionError> {
        let mut acc = self.unary()?;
        loop {
            self.skip_space();
            let op = match self.peek() {
                Some(op @ (b'*' | b'/')) => op,
                _ => return Ok(acc),
            };
            self.pos += 1;
            let rhs = self.unary()?;
            acc = if op == b'*' {
                acc.checked_mul(rhs).ok_or(ExpressionError::Overflow)?
            } else if rhs.numer() == 0 {
                return Err(ExpressionError::DivisionByZero);
            } else {
                acc.checked_div(rhs).ok_or(ExpressionError::Overflow)?
            };
        }
    }

    /// `unary := ('+' | '-') unary | primary`
    fn unary(&mut self) -> Result<Rational, ExpressionError> {
        self.skip_space();
        match self.peek() {
            Some(sign @ (b'+' | b'-')) => {
                self.pos += 1;
                self.enter()?;
                let value = self.unary()?;
                self.depth -= 1;
                if sign == b'-' {
                    value.checked_neg().ok_or(ExpressionError::Overflow)
                } else {
                    Ok(value)
                }
            }
            _ => self.primary(),
        }
    }

    /// `primary := literal | '(' sum ')'`
    fn primary(&mut self) -> Result<Rational, ExpressionError> {
        match self.peek() {
            Some(b'(') => {
                self.pos += 1;
                self.enter()?;
                self.open_parens += 1;
                let value = self.sum()?;
                self.skip_space();
                if self.peek() != Some(b')') {
                    return Err(self.unexpected());
                }
                self.pos += 1;
                self.open_parens -= 1;
                self.depth -= 1;
                Ok(value)
            }
            Some(b'0'..=b'9') => self.literal(),
            _ => Err(self.unexpected()),
        }
    }

    fn literal(&mut self) -> Result<Rational, ExpressionError> {
        let start = self.pos;
        while self.peek().is_some_and(|b| b.is_ascii_digit()) {
            self.pos += 1;
        }
        let digits = &self.bytes[start..self.pos];
        if digits.len() > MAX_LITERAL_DIGITS {
            return Err(ExpressionError::LiteralTooLong { offset: start });
        }
        if digits.len() > 1 && digits[0] == b'0' {
            return Err(ExpressionError::LeadingZero { offset: start });
        }
        let n = digits
            .iter()
            .fold(0i64, |n, &d| n * 10 + i64::from(d - b'0'));
        self.numbers.push(n);
        Ok(Rational::from_integer(i128::from(n)))
    }
}

/// Why a [`CountdownSpec`] is invalid.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SpecError {
    /// No numbers, or more than [`MAX_NUMBERS`].
    #[error("must hold between 1 and {MAX_NUMBERS} numbers, found {0}")]
    NumberCount(usize),
    /// A number below 0 or above [`MAX_NUMBER`].
    #[error("must hold numbers between 0 and {MAX_NUMBER}, found {0}")]
    NumberOutOfRange(i64),
}

/// A Countdown problem: the target and the numbers to use, each exactly once.
///
/// Its text form, which the dataset loader stores as the problem's reference answer, is
/// `"<target> using <n1>, <n2>, ..."`, e.g. `"309 using 6, 61, 94, 4"` ([`fmt::Display`] and
/// [`CountdownSpec::parse`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CountdownSpec {
    target: i64,
    numbers: Vec<i64>,
}

impl CountdownSpec {
    /// A spec with 1 to [`MAX_NUMBERS`] numbers, each between 0 and [`MAX_NUMBER`].
    pub fn new(target: i64, numbers: Vec<i64>) -> Result<Self, SpecError> {
        if numbers.is_empty() || numbers.len() > MAX_NUMBERS {
            return Err(SpecError::NumberCount(numbers.len()));
        }
        if let Some(&n) = numbers.iter().find(|&&n| !(0..=MAX_NUMBER).contains(&n)) {
            return Err(SpecError::NumberOutOfRange(n));
        }
        Ok(Self { target, numbers })
    }

    /// Reads the text form `"<target> using <n1>, <n2>, ..."`; `None` when it is not one.
    pub fn parse(text: &str) -> Option<Self> {
        let (target, numbers) = text.split_once(" using ")?;
        let target = target.trim().parse().ok()?;
        let mut parsed = Vec::new();
        for n in numbers.split(',') {
            if parsed.len() == MAX_NUMBERS {
                return None;
            }
            parsed.push(n.trim().parse().ok()?);
        }
        Self::new(target, parsed).ok()
    }

    /// The target value.
    pub fn target(&self) -> i64 {
        self.target
    }

    /// The numbers, in the given order.
    pub fn numbers(&self) -> &[i64] {
        &self.numbers
    }

    /// Whether an evaluated expression uses exactly these numbers and equals the target.
    pub fn is_solved_by(&self, evaluation: &Evaluation) -> bool {
        if evaluation.numbers.len() != self.numbers.len()
            || evaluation.value != Rational::from_integer(i128::from(self.target))
        {
            return false;
        }
        let mut used = evaluation.numbers.clone();
        let mut given = self.numbers.clone();
        used.sort_unstable();
        given.sort_unstable();
        used == given
    }

    /// Whether `expression` parses and solves this problem.
    pub fn accepts(&self, expression: &str) -> bool {
        evaluate(expression).is_ok_and(|e| self.is_solved_by(&e))
    }
}

impl fmt::Display for CountdownSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} using ", self.target)?;
        for (i, n) in self.numbers.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            write!(f, "{n}")?;
        }
        Ok(())
    }
}

/// Scores completions of Countdown problems.
///
/// The reward has the same shape as [`crate::MathVerifier`]'s and uses the same
/// [`VerifierConfig`]:
///
/// ```text
/// reward = (solved ? correct_reward : incorrect_reward)
///        + (expression found in one of rewarded_formats ? format_reward : 0)
/// ```
///
/// The expression is found by [`extract_expression`]; `allow_last_number` switches its
/// last-line fallback. Only the last `max_scan_bytes` bytes of a completion are read.
#[derive(Debug, Clone)]
pub struct CountdownVerifier {
    config: VerifierConfig,
}

impl CountdownVerifier {
    /// A verifier with a validated config.
    pub fn new(config: VerifierConfig) -> Result<Self, EvalError> {
        config.validate()?;
        Ok(Self { config })
    }

    /// The verifier's config.
    pub fn config(&self) -> &VerifierConfig {
        &self.config
    }

    /// Scores `completion` against `spec` (`None`, e.g. a problem whose reference is not a
    /// Countdown spec, scores every completion as wrong).
    ///
    /// The score's `answer` is the expression with its whitespace removed, so majority voting
    /// groups identical expressions.
    pub fn score(&self, completion: &str, spec: Option<&CountdownSpec>) -> Score {
        let scanned = crate::extract::tail(completion, self.config.max_scan_bytes);
        let extracted = extract_expression(scanned, self.config.allow_last_number);
        let evaluation = extracted.as_ref().map(|e| evaluate(&e.text));
        let correct = match (&evaluation, spec) {
            (Some(Ok(evaluation)), Some(spec)) => spec.is_solved_by(evaluation),
            _ => false,
        };
        let too_large = matches!(
            evaluation,
            Some(Err(ExpressionError::TooLong
                | ExpressionError::TooDeep
                | ExpressionError::LiteralTooLong { .. }))
        );
        let gave_up = self
            .config
            .scan_limit(completion)
            .or(too_large.then_some(GaveUp::ExpressionTooLarge));
        let answer = extracted
            .as_ref()
            .map(|e| Canonical::Text(e.text.chars().filter(|c| !c.is_whitespace()).collect()));
        self.config.score(correct, extracted, answer, gave_up)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::extract::AnswerFormat;

    fn value(expression: &str) -> Result<(i128, i128), ExpressionError> {
        evaluate(expression).map(|e| (e.value.numer(), e.value.denom()))
    }

    fn spec(target: i64, numbers: &[i64]) -> CountdownSpec {
        match CountdownSpec::new(target, numbers.to_vec()) {
            Ok(s) => s,
            Err(e) => panic!("{e}"),
        }
    }

    #[test]
    fn precedence_associativity_and_signs() {
        assert_eq!(value("94*4 - 61 - 6"), Ok((309, 1)));
        assert_eq!(value("2 + 3 * 4"), Ok((14, 1)));
        assert_eq!(value("(2 + 3) * 4"), Ok((20, 1)));
        assert_eq!(value("10 - 4 - 3"), Ok((3, 1)));
        assert_eq!(value("8 / 4 / 2"), Ok((1, 1)));
        assert_eq!(value("1 / 3 + 1 / 6"), Ok((1, 2)));
        assert_eq!(value("-(-5) - -2"), Ok((7, 1)));
        assert_eq!(value("+5 * -+-2"), Ok((10, 1)));
        assert_eq!(value(" \t( 1 +\n 2 )\r\n"), Ok((3, 1)));
        assert_eq!(value("0"), Ok((0, 1)));
        let e = evaluate("(6 / 4) * 2 + 6");
        assert_eq!(e.map(|e| e.numbers), Ok(vec![6, 4, 2, 6]));
    }

    #[test]
    fn malformed_expressions_are_errors() {
        use ExpressionError::*;
        assert_eq!(value(""), Err(Empty));
        assert_eq!(value(" \n "), Err(Empty));
        assert_eq!(value("1 +"), Err(UnexpectedEnd));
        assert_eq!(value("(1 + 2"), Err(UnexpectedEnd));
        assert_eq!(value("1 + 2)"), Err(UnexpectedChar { offset: 5 }));
        assert_eq!(value("2 ** 3"), Err(UnexpectedChar { offset: 3 }));
        assert_eq!(value("7 // 2"), Err(UnexpectedChar { offset: 3 }));
        assert_eq!(value("2(3)"), Err(UnexpectedChar { offset: 1 }));
        assert_eq!(value("2 3"), Err(UnexpectedChar { offset: 2 }));
        assert_eq!(value("1 +\n2"), Err(UnexpectedChar { offset: 3 }));
        assert_eq!(value("6.0"), Err(UnexpectedChar { offset: 1 }));
        assert_eq!(value("2 \u{00d7} 3"), Err(UnexpectedChar { offset: 2 }));
        assert_eq!(value("1 = 1"), Err(UnexpectedChar { offset: 2 }));
        assert_eq!(value("07"), Err(LeadingZero { offset: 0 }));
        assert_eq!(value("1234567890123"), Err(LiteralTooLong { offset: 0 }));
        assert_eq!(value("1 / (2 - 2)"), Err(DivisionByZero));
        assert_eq!(value(&"1+".repeat(600)), Err(TooLong));
        assert_eq!(
            value(&format!("{}1{}", "(".repeat(65), ")".repeat(65))),
            Err(TooDeep)
        );
        assert_eq!(value(&format!("{}1", "-".repeat(65))), Err(TooDeep));
        assert!(value(&format!("{}1{}", "(".repeat(64), ")".repeat(64))).is_ok());
        let huge = format!("{}1", "999999999999*".repeat(4));
        assert_eq!(value(&huge), Err(Overflow));
    }

    #[test]
    fn numbers_are_used_exactly_once() {
        let s = spec(309, &[6, 61, 94, 4]);
        assert!(s.accepts("94*4 - 61 - 6"));
        assert!(s.accepts("(4 * 94) - (6 + 61)"));
        assert!(!s.accepts("94*4 - 61 - 6 + 0"), "extra number");
        assert!(!s.accepts("94*4 - 67"), "missing numbers");
        assert!(!s.accepts("94*4 - 61 - 61"), "reused number");
        assert!(!s.accepts("94*4 - 61 + 6"), "wrong value");
        let twice = spec(12, &[6, 6]);
        assert!(twice.accepts("6 + 6"));
        assert!(!twice.accepts("6 * 2"));
        assert!(!twice.accepts("12"));
        // An intermediate fraction is fine.
        assert!(spec(3, &[6, 4, 2]).accepts("6 / 4 * 2"));
        assert!(!spec(1, &[3, 2]).accepts("3 / 2"));
    }

    #[test]
    fn spec_text_round_trip_and_validation() {
        let s = spec(309, &[6, 61, 94, 4]);
        assert_eq!(s.to_string(), "309 using 6, 61, 94, 4");
        assert_eq!(CountdownSpec::parse("309 using 6, 61, 94, 4"), Some(s));
        assert_eq!(
            CountdownSpec::parse(" -3 using 1,2 ").map(|s| s.numbers().to_vec()),
            Some(vec![1, 2])
        );
        assert_eq!(CountdownSpec::parse("309"), None);
        assert_eq!(CountdownSpec::parse("309 using "), None);
        assert_eq!(CountdownSpec::parse("309 using 1, -2"), None);
        assert_eq!(CountdownSpec::parse("x using 1"), None);
        assert_eq!(
            CountdownSpec::new(1, vec![]),
            Err(SpecError::NumberCount(0))
        );
        assert_eq!(
            CountdownSpec::new(1, vec![1; MAX_NUMBERS + 1]),
            Err(SpecError::NumberCount(MAX_NUMBERS + 1))
        );
        assert_eq!(
            CountdownSpec::new(1, vec![MAX_NUMBER + 1]),
            Err(SpecError::NumberOutOfRange(MAX_NUMBER + 1))
        );
    }

    #[test]
    fn verifier_rewards_and_formats() {
        let config = VerifierConfig {
            format_reward: 0.1,
            ..VerifierConfig::default()
        };
        let v = match CountdownVerifier::new(config) {
            Ok(v) => v,
            Err(e) => panic!("{e}"),
        };
        let s = spec(309, &[6, 61, 94, 4]);
        let tagged = v.score(
            "I multiply first.\n<answer> 94*4 - 61 - 6 </answer>",
            Some(&s),
        );
        assert!(tagged.correct && tagged.format_ok);
        assert_eq!(tagged.reward, 1.1);
        assert_eq!(
            tagged.answer,
            Some(Canonical::Text("94*4-61-6".to_string()))
        );
        let last_line = v.score("Let me think.\n94*4 - 61 - 6\n\n", Some(&s));
        assert!(last_line.correct && !last_line.format_ok);
        assert_eq!(
            last_line.extracted.map(|e| e.format),
            Some(AnswerFormat::LastLine)
        );
        let wrong = v.score("<answer>94*4 - 61 - 6 = 309</answer>", Some(&s));
        assert!(!wrong.correct);
        assert_eq!(wrong.reward, 0.1);
        assert!(!v.score("<answer>94*4 - 61 - 6</answer>", None).correct);
        assert_eq!(v.score("", Some(&s)).reward, 0.0);
    }
}
