//! Answer normalisation and equivalence.
//!
//! [`canonicalize`] turns an answer string (extracted from a completion, or a reference) into a
//! [`Canonical`] form, and [`Canonical::matches`] decides whether two forms are the same answer.
//! The rules are documented in full in `docs/rewards.md`; in short:
//!
//! * Presentation is removed first: surrounding `$...$`, `$$...$$`, `\(...\)`, `\[...\]`,
//!   a whole-answer `\boxed{}` / `\fbox{}`, trailing periods, LaTeX spacing (`\,` `\;` `\:` `\!`
//!   `\ ` `~` `\quad` `\qquad`), `\left` / `\right`, `\displaystyle`, degree marks, and a leading
//!   `x =` (one variable, one `=`). `\dfrac` and `\tfrac` become `\frac`, `{,}` becomes `,`, and
//!   the unicode minus `−` becomes `-`.
//! * `\text{}`, `\mbox{}`, `\mathrm{}` (and bold/italic variants) are replaced by their content.
//!   When that does not give a number, the answer is tried again with those groups dropped, so a
//!   unit such as `5\text{ cm}` reads as `5`, while `\text{yes}` stays the text `yes`.
//! * Numbers: optional sign (`+`, `-`), `$` signs before or after the number (`$5`, `-$5`,
//!   `$-5`), thousands separators (`1,234` with
//!   groups of exactly three digits), decimals (`0.5`, `.5`), fractions `a/b` and
//!   `\frac{a}{b}` / `\frac12`. A trailing `%` (or `\%`) is a unit and is dropped: `50\%` equals
//!   `50`, and does **not** equal `0.5`. This keeps equivalence transitive and matches references
//!   that state percentages as plain numbers (GSM8K, MATH).
//! * Numbers are exact rationals over `i128` with checked arithmetic; when a value does not fit,
//!   it falls back to `f64` and compares with a relative tolerance of [`REL_TOLERANCE`]. A number
//!   with more than [`MAX_NUMBER_DIGITS`] digits is not read as a number at all.
//! * Anything else compares as text: the cleaned string with all whitespace removed, lowercased.

use crate::extract::braced_group;

/// Relative tolerance used when at least one side of a numeric comparison is an `f64`.
pub const REL_TOLERANCE: f64 = 1e-9;

/// Numbers with more digits than this (integer and fractional digits together) are compared as
/// text, never parsed.
pub const MAX_NUMBER_DIGITS: usize = 100;

/// How many nested wrapper layers (`$`, `\boxed{}`, ...) are peeled off at most.
const MAX_WRAPPER_LAYERS: usize = 8;

/// How deep `\text{\text{...}}` groups are expanded; deeper content is kept verbatim.
const MAX_TEXT_DEPTH: usize = 4;

/// An exact rational number in lowest terms with a positive denominator.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Rational {
    num: i128,
    den: i128,
}

impl Rational {
    /// Builds `num / den` in lowest terms; `None` when `den` is zero or a value overflows.
    pub fn new(num: i128, den: i128) -> Option<Self> {
        if den == 0 {
            return None;
        }
        let g = gcd(num.unsigned_abs(), den.unsigned_abs());
        let g = i128::try_from(g).ok()?;
        let (mut num, mut den) = (num / g, den / g);
        if den < 0 {
            num = num.checked_neg()?;
            den = den.checked_neg()?;
        }
        Some(Self { num, den })
    }

    /// The numerator (carries the sign).
    pub fn numer(self) -> i128 {
        self.num
    }

    /// The denominator (always positive).
    pub fn denom(self) -> i128 {
        self.den
    }

    /// The nearest `f64` (approximately).
    pub fn to_f64(self) -> f64 {
        self.num as f64 / self.den as f64
    }

    /// The integer `n` as a rational.
    pub fn from_integer(n: i128) -> Self {
        Self { num: n, den: 1 }
    }

    /// `self + other`, exactly; `None` on overflow.
    pub fn checked_add(self, other: Self) -> Option<Self> {
        let num = self
            .num
            .checked_mul(other.den)?
            .checked_add(other.num.checked_mul(self.den)?)?;
        Self::new(num, self.den.checked_mul(other.den)?)
    }

    /// `self - other`, exactly; `None` on overflow.
    pub fn checked_sub(self, other: Self) -> Option<Self> {
        self.checked_add(other.checked_neg()?)
    }

    /// `self * other`, exactly; `None` on overflow.
    pub fn checked_mul(self, other: Self) -> Option<Self> {
        // Cross-cancel first so that products of reduced fractions overflow as late as possible.
        let g1 = i128::try_from(gcd(self.num.unsigned_abs(), other.den.unsigned_abs())).ok()?;
        let g2 = i128::try_from(gcd(other.num.unsigned_abs(), self.den.unsigned_abs())).ok()?;
        let num = (self.num / g1).checked_mul(other.num / g2)?;
        let den = (self.den / g2).checked_mul(other.den / g1)?;
        Self::new(num, den)
    }

    /// `self / other`, exactly; `None` on division by zero or overflow.
    pub fn checked_div(self, other: Self) -> Option<Self> {
        let num = self.num.checked_mul(other.den)?;
        let den = self.den.checked_mul(other.num)?;
        Self::new(num, den)
    }

    /// `-self`; `None` on overflow.
    pub fn checked_neg(self) -> Option<Self> {
        Some(Self {
            num: self.num.checked_neg()?,
            den: self.den,
        })
    }
}

/// Greatest common divisor; `gcd(0, 0)` is 1 so that it can always divide.
fn gcd(mut a: u128, mut b: u128) -> u128 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a.max(1)
}

/// A numeric answer.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Number {
    /// An exact rational value.
    Exact(Rational),
    /// A finite value that did not fit an `i128` rational.
    Approx(f64),
}

impl Number {
    /// The value as an `f64`.
    pub fn to_f64(self) -> f64 {
        match self {
            Number::Exact(r) => r.to_f64(),
            Number::Approx(x) => x,
        }
    }

    /// Equality: exact for two rationals, relative tolerance [`REL_TOLERANCE`] otherwise.
    pub fn matches(self, other: Number) -> bool {
        match (self, other) {
            (Number::Exact(a), Number::Exact(b)) => a == b,
            (Number::Exact(_) | Number::Approx(_), Number::Exact(_) | Number::Approx(_)) => {
                let (x, y) = (self.to_f64(), other.to_f64());
                (x - y).abs() <= REL_TOLERANCE * x.abs().max(y.abs())
            }
        }
    }

    fn negated(self) -> Option<Number> {
        match self {
            Number::Exact(r) => Rational::new(r.num.checked_neg()?, r.den).map(Number::Exact),
            Number::Approx(x) => Some(Number::Approx(-x)),
        }
    }

    fn divided_by(self, other: Number) -> Option<Number> {
        if let (Number::Exact(a), Number::Exact(b)) = (self, other) {
            if b.num == 0 {
                return None;
            }
            if let Some(q) = a.checked_div(b) {
                return Some(Number::Exact(q));
            }
        }
        let q = self.to_f64() / other.to_f64();
        q.is_finite().then_some(Number::Approx(q))
    }
}

/// The canonical form of an answer.
#[derive(Debug, Clone, PartialEq)]
pub enum Canonical {
    /// The answer reads as a number.
    Number(Number),
    /// Any other answer: cleaned, whitespace removed, lowercased.
    Text(String),
}

impl Canonical {
    /// Whether two canonical answers are the same answer (symmetric).
    pub fn matches(&self, other: &Canonical) -> bool {
        match (self, other) {
            (Canonical::Number(a), Canonical::Number(b)) => a.matches(*b),
            (Canonical::Text(a), Canonical::Text(b)) => a == b,
            (Canonical::Number(_), Canonical::Text(_))
            | (Canonical::Text(_), Canonical::Number(_)) => false,
        }
    }
}

/// Whether two answer strings are equivalent; `false` when either is empty after cleaning.
pub fn answers_match(a: &str, b: &str) -> bool {
    match (canonicalize(a), canonicalize(b)) {
        (Some(a), Some(b)) => a.matches(&b),
        _ => false,
    }
}

/// Canonical form of `answer`, or `None` when nothing is left after cleaning.
///
/// The cost is linear in the length of `answer`.
pub fn canonicalize(answer: &str) -> Option<Canonical> {
    let pre = answer
        .replace('\u{2212}', "-")
        .replace("{,}", ",")
        .replace("^{\\circ}", "")
        .replace("^\\circ", "")
        .replace('\u{00b0}', "")
        .replace('~', " ");
    let core = strip_wrappers(&pre);
    let mut with_text = String::with_capacity(core.len());
    let mut without_text = String::with_capacity(core.len());
    rewrite_macros(core, 0, &mut with_text, &mut without_text);
    let with_text = strip_assignment(&squeeze(&with_text)).to_string();
    let without_text = squeeze(&without_text);
    let without_text = strip_assignment(&without_text);
    if with_text.is_empty() {
        return None;
    }
    if let Some(n) = parse_number(&with_text) {
        return Some(Canonical::Number(n));
    }
    if !without_text.is_empty()
        && without_text != with_text
        && let Some(n) = parse_number(without_text)
    {
        return Some(Canonical::Number(n));
    }
    Some(Canonical::Text(with_text.to_lowercase()))
}

/// Whether `answer` holds a number [`canonicalize`] does not read for its size: a run of digits
/// (with `,` separators and a `.`) of more than [`MAX_NUMBER_DIGITS`] digits.
pub fn too_many_digits(answer: &str) -> bool {
    answer
        .split(|c: char| !(c.is_ascii_digit() || c == ',' || c == '.'))
        .any(|run| run.bytes().filter(u8::is_ascii_digit).count() > MAX_NUMBER_DIGITS)
}

/// Removes all whitespace, then trailing periods.
fn squeeze(s: &str) -> String {
    let mut out: String = s.chars().filter(|c| !c.is_whitespace()).collect();
    while out.ends_with('.') {
        out.pop();
    }
    out
}

/// Peels surrounding `$`, `\(..\)`, `\[..\]`, whole-answer `\boxed{}` / `\fbox{}`, whitespace
/// and trailing periods.
fn strip_wrappers(s: &str) -> &str {
    let mut s = s;
    for _ in 0..MAX_WRAPPER_LAYERS {
        let trimmed = s.trim().trim_end_matches('.').trim_end();
        let inner = strip_pair(trimmed, "$", "$")
            .or_else(|| strip_pair(trimmed, "\\(", "\\)"))
            .or_else(|| strip_pair(trimmed, "\\[", "\\]"))
            .or_else(|| strip_command_group(trimmed, "\\boxed"))
            .or_else(|| strip_command_group(trimmed, "\\fbox"));
        match inner {
            Some(inner) => s = inner,
            None => return trimmed,
        }
    }
    s.trim()
}

fn strip_pair<'a>(s: &'a str, open: &str, close: &str) -> Option<&'a str> {
    if s.len() >= open.len() + close.len() {
        s.strip_prefix(open)?.strip_suffix(close)
    } else {
        None
    }
}

/// If all of `s` is `command{...}`, the content of the braces.
fn strip_command_group<'a>(s: &'a str, command: &str) -> Option<&'a str> {
    let after = s.strip_prefix(command)?.trim_start();
    let content = braced_group(after)?;
    (content.len() + 2 == after.len()).then_some(content)
}

/// Drops a leading `x =` / `\theta =` when the answer holds exactly one `=`.
fn strip_assignment(s: &str) -> &str {
    let mut parts = s.split('=');
    let (Some(lhs), Some(rhs), None) = (parts.next(), parts.next(), parts.next()) else {
        return s;
    };
    let mut chars = lhs.chars();
    let starts_ok = chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '\\');
    let rest_ok = chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '{' | '}'));
    if starts_ok && rest_ok && !rhs.is_empty() {
        rhs
    } else {
        s
    }
}

/// Rewrites LaTeX commands into `with_text` (text groups inlined) and `without_text` (text
/// groups dropped). See the module docs for the list of commands.
fn rewrite_macros(s: &str, depth: usize, with_text: &mut String, without_text: &mut String) {
    let mut rest = s;
    while let Some(c) = rest.chars().next() {
        if c != '\\' {
            with_text.push(c);
            without_text.push(c);
            rest = &rest[c.len_utf8()..];
            continue;
        }
        let after = &rest[1..];
        let name_len = after.bytes().take_while(u8::is_ascii_alphabetic).count();
        if name_len == 0 {
            let Some(symbol) = after.chars().next() else {
                with_text.push('\\');
                without_text.push('\\');
                return;
            };
            match symbol {
                ',' | ';' | ':' | '!' | ' ' => {}
                '%' | '$' => {
                    with_text.push(symbol);
                    without_text.push(symbol);
                }
                _ => {
                    with_text.push('\\');
                    with_text.push(symbol);
                    without_text.push('\\');
                    without_text.push(symbol);
                }
            }
            rest = &after[symbol.len_utf8()..];
            continue;
        }
        let name = &after[..name_len];
        let mut next = &after[name_len..];
        match name {
            "left" | "right" | "quad" | "qquad" | "displaystyle" | "textstyle" => {}
            "dfrac" | "tfrac" => {
                with_text.push_str("\\frac");
                without_text.push_str("\\frac");
            }
            "text" | "mbox" | "textrm" | "textbf" | "textit" | "textnormal" | "mathrm"
            | "mathbf" | "mathit" => {
                let trimmed = next.trim_start();
                if let Some(content) = braced_group(trimmed) {
                    if depth < MAX_TEXT_DEPTH {
                        let mut ignored = String::new();
                        rewrite_macros(content, depth + 1, with_text, &mut ignored);
                    } else {
                        with_text.push_str(content);
                    }
                    with_text.push(' ');
                    without_text.push(' ');
                    next = &trimmed[content.len() + 2..];
                }
            }
            _ => {
                with_text.push('\\');
                with_text.push_str(name);
                without_text.push('\\');
                without_text.push_str(name);
            }
        }
        rest = next;
    }
}

/// Parses a whitespace-free, cleaned answer as a number.
fn parse_number(s: &str) -> Option<Number> {
    let s = s.trim_matches('$');
    let s = s.strip_suffix('%').unwrap_or(s).trim_end_matches('$');
    let (negative, body) = match s.as_bytes().first() {
        Some(b'-') => (true, &s[1..]),
        Some(b'+') => (false, &s[1..]),
        _ => (false, s),
    };
    let body = body.trim_start_matches('$');
    let value = if let Some(args) = body.strip_prefix("\\frac") {
        let (num, rest) = frac_argument(args)?;
        let (den, rest) = frac_argument(rest)?;
        if !rest.is_empty() {
            return None;
        }
        parse_signed_decimal(num)?.divided_by(parse_signed_decimal(den)?)?
    } else if let Some((num, den)) = body.split_once('/') {
        parse_decimal(num)?.divided_by(parse_decimal(den)?)?
    } else {
        parse_decimal(body)?
    };
    if negative {
        value.negated()
    } else {
        Some(value)
    }
}

/// One `\frac` argument: a braced group, or a single character.
fn frac_argument(s: &str) -> Option<(&str, &str)> {
    if s.starts_with('{') {
        let content = braced_group(s)?;
        Some((content, &s[content.len() + 2..]))
    } else {
        let c = s.chars().next()?;
        Some(s.split_at(c.len_utf8()))
    }
}

fn parse_signed_decimal(s: &str) -> Option<Number> {
    match s.as_bytes().first() {
        Some(b'-') => parse_decimal(&s[1..])?.negated(),
        Some(b'+') => parse_decimal(&s[1..]),
        _ => parse_decimal(s),
    }
}

/// Parses an unsigned decimal: `123`, `1,234`, `1,234.5`, `0.5`, `.5`.
fn parse_decimal(s: &str) -> Option<Number> {
    let (int_part, frac_part) = match s.split_once('.') {
        Some((i, f)) => (i, f),
        None => (s, ""),
    };
    if int_part.is_empty() && frac_part.is_empty() {
        return None;
    }
    if !frac_part.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let int_digits = integer_digits(int_part)?;
    if int_digits.len() + frac_part.len() > MAX_NUMBER_DIGITS {
        return None;
    }
    let exact = (|| {
        let mut num: i128 = 0;
        for b in int_digits.bytes().chain(frac_part.bytes()) {
            num = num.checked_mul(10)?.checked_add(i128::from(b - b'0'))?;
        }
        let den = 10i128.checked_pow(u32::try_from(frac_part.len()).ok()?)?;
        Rational::new(num, den)
    })();
    match exact {
        Some(r) => Some(Number::Exact(r)),
        None => {
            let int_text = if int_digits.is_empty() {
                "0"
            } else {
                int_digits.as_str()
            };
            let frac_text = if frac_part.is_empty() { "0" } else { frac_part };
            let text = format!("{int_text}.{frac_text}");
            let x: f64 = text.parse().ok()?;
            x.is_finite().then_some(Number::Approx(x))
        }
    }
}

/// The digits of an integer part, with thousands separators removed. Separators must split the
/// digits into a first group of 1-3 digits and further groups of exactly 3.
fn integer_digits(s: &str) -> Option<String> {
    if !s.bytes().all(|b| b.is_ascii_digit() || b == b',') {
        return None;
    }
    if s.contains(',') {
        let mut groups = s.split(',');
        let first = groups.next()?;
        if first.is_empty() || first.len() > 3 || !groups.all(|g| g.len() == 3) {
            return None;
        }
    }
    Some(s.chars().filter(|&c| c != ',').collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn exact(num: i128, den: i128) -> Option<Canonical> {
        Rational::new(num, den).map(|r| Canonical::Number(Number::Exact(r)))
    }

    #[test]
    fn one_half_in_many_spellings() {
        let half = exact(1, 2);
        for s in [
            "0.5",
            ".5",
            "1/2",
            "\\frac12",
            "\\frac{1}{2}",
            "\\dfrac{1}{2}",
            "\\tfrac{1}{2}",
            "$\\frac{1}{2}$",
            "\\boxed{\\frac{1}{2}}",
            "0.50",
            "+0.5",
            "\\frac{2}{4}",
        ] {
            assert_eq!(canonicalize(s), half, "{s}");
        }
        assert!(answers_match("\\dfrac{1}{2}", "0.5"));
    }

    #[test]
    fn integers_signs_and_separators() {
        assert_eq!(canonicalize("1,234"), exact(1234, 1));
        assert_eq!(canonicalize("1{,}234"), exact(1234, 1));
        assert_eq!(canonicalize("1\\,234"), exact(1234, 1));
        assert_eq!(canonicalize("$1{,}234$."), exact(1234, 1));
        assert_eq!(canonicalize("-3"), exact(-3, 1));
        assert_eq!(canonicalize("\u{2212}3"), exact(-3, 1));
        assert_eq!(canonicalize("+3"), exact(3, 1));
        assert_eq!(canonicalize("\\$18"), exact(18, 1));
        assert_eq!(canonicalize("$18.00"), exact(18, 1));
        assert_eq!(canonicalize("-\\frac{3}{4}"), exact(-3, 4));
        assert_eq!(canonicalize("\\frac{-3}{4}"), exact(-3, 4));
        assert_eq!(canonicalize("72."), exact(72, 1));
        assert_eq!(canonicalize("-\\$5"), exact(-5, 1));
        assert_eq!(canonicalize("\\$-5"), exact(-5, 1));
        assert_eq!(canonicalize("5$5"), Some(Canonical::Text("5$5".into())));
    }

    #[test]
    fn percent_is_a_unit() {
        assert!(answers_match("50\\%", "50"));
        assert!(answers_match("50%", "50"));
        assert!(!answers_match("50%", "0.5"));
    }

    #[test]
    fn units_and_spacing_are_removed() {
        assert!(answers_match("5\\text{ cm}", "5"));
        assert!(answers_match("12\\mbox{ apples}", "12"));
        assert!(!answers_match("\\text{5 apples}", "5"));
        assert!(answers_match("30^\\circ", "30"));
        assert!(answers_match("30^{\\circ}", "30"));
        assert!(answers_match("\\text{12}", "12"));
        assert!(answers_match("x = 7", "7"));
        assert!(answers_match("\\left( 1, 2 \\right)", "(1,2)"));
        assert!(answers_match("\\text{Yes}", "yes"));
        assert!(!answers_match("\\text{yes}", "no"));
    }

    #[test]
    fn wrong_answers_are_rejected() {
        assert!(!answers_match("72.5", "72"));
        assert!(!answers_match("1/3", "0.33"));
        assert!(!answers_match("0.333333333333", "\\frac{1}{3}"));
        assert!(!answers_match("-3", "3"));
        assert!(!answers_match("1,23", "123"));
        assert!(!answers_match("12", "(1,2)"));
        assert!(!answers_match("2x=10", "10"));
        assert!(!answers_match("", ""));
        assert!(!answers_match("2\\frac{1}{2}", "2.5"));
        assert!(!answers_match("\\sqrt2", "\\sqrt{2}"));
        assert!(!answers_match("5 cm", "5"));
    }

    #[test]
    fn division_by_zero_is_text() {
        assert_eq!(canonicalize("1/0"), Some(Canonical::Text("1/0".into())));
        assert_eq!(
            canonicalize("\\frac{1}{0}"),
            Some(Canonical::Text("\\frac{1}{0}".into()))
        );
    }

    #[test]
    fn big_numbers_use_f64_with_relative_tolerance() {
        let big = "1".repeat(45);
        let Some(Canonical::Number(Number::Approx(x))) = canonicalize(&big) else {
            panic!("45 digits must fall back to f64");
        };
        assert!((x / 1.111_111_111_111_111e44 - 1.0).abs() < 1e-12);
        // Equal to within 1e-9 relative: the two differ in the 44th digit.
        let close = format!("{}2", "1".repeat(44));
        assert!(answers_match(&big, &close));
        // Off by 1e-6 relative: different.
        let far = format!("1111112{}", "1".repeat(38));
        assert!(!answers_match(&big, &far));
        // Too many digits: compared as text, still equal to itself.
        let huge = "9".repeat(MAX_NUMBER_DIGITS + 1);
        assert_eq!(canonicalize(&huge), Some(Canonical::Text(huge.clone())));
        assert!(answers_match(&huge, &huge));
    }

    #[test]
    fn values_beyond_i128_fall_back_to_f64() {
        // A 39-digit numerator does not fit i128: f64, compared with tolerance to an exact value.
        let a = format!("\\frac{{{}}}{{3}}", "3".repeat(39));
        assert!(answers_match(&a, &"1".repeat(39)));
        // Both parts fit, but the exact quotient 10^30 / 10^-31 overflows.
        let b = format!("\\frac{{1{}}}{{0.{}1}}", "0".repeat(30), "0".repeat(30));
        assert!(answers_match(&b, &format!("1{}", "0".repeat(61))));
        assert!(!answers_match(&b, &format!("1{}", "0".repeat(60))));
    }

    #[test]
    fn rational_constructor() {
        assert_eq!(
            Rational::new(4, -6).map(|r| (r.numer(), r.denom())),
            Some((-2, 3))
        );
        assert_eq!(
            Rational::new(0, 5).map(|r| (r.numer(), r.denom())),
            Some((0, 1))
        );
        assert_eq!(Rational::new(1, 0), None);
        assert_eq!(Rational::new(1, i128::MIN), None);
    }
}
