//! Final-answer extraction from a model completion.
//!
//! The formats are tried in a fixed order and the first one that yields a non-empty answer wins:
//!
//! 1. [`AnswerFormat::AnswerTag`]: the content of the last complete `<answer>...</answer>` pair
//!    (or of the last `\boxed{...}` inside it, when it holds one);
//! 2. [`AnswerFormat::Boxed`]: the content of the last complete `\boxed{...}` or `\fbox{...}`,
//!    with balanced nested braces (`\boxed{\frac{1}{2}}` gives `\frac{1}{2}`);
//! 3. [`AnswerFormat::Hashes`]: the text after the last GSM8K-style `####`, up to the end of
//!    its line;
//! 4. [`AnswerFormat::LastNumber`]: the last number-looking token of the text (optional sign,
//!    thousands separators `,` / `{,}` / `\,`, decimals, or a fraction `a/b`).
//!
//! Every scan here is linear in the length of its input, and brace matching gives up beyond
//! [`MAX_BRACED_LEN`] bytes or [`MAX_BRACE_DEPTH`] levels, so extraction has a bounded cost. The
//! caller decides how much of a completion to hand in (see [`tail`]).

use serde::Deserialize;

/// Longest content, in bytes, that a `\boxed{...}` (or any braced group) may have.
pub const MAX_BRACED_LEN: usize = 4096;

/// Deepest brace nesting accepted inside a braced group.
pub const MAX_BRACE_DEPTH: usize = 64;

/// How many `\boxed` / `\fbox` occurrences, counted from the end, are tried before giving up.
const MAX_BOXED_CANDIDATES: usize = 16;

/// The format a final answer was found in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AnswerFormat {
    /// `<answer>...</answer>` tags.
    AnswerTag,
    /// `\boxed{...}` or `\fbox{...}`.
    Boxed,
    /// GSM8K-style `#### N`.
    Hashes,
    /// Fallback: the last number in the text.
    LastNumber,
    /// Fallback for expressions (Countdown): the last non-blank line of the text.
    LastLine,
}

/// An answer extracted from a completion.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Extracted {
    /// The answer text, trimmed, still un-normalised (e.g. `\frac{1}{2}` or `1,234`).
    pub text: String,
    /// The format the answer was found in.
    pub format: AnswerFormat,
}

/// Extracts the final answer of `completion`, trying the formats in the documented order.
///
/// Returns `None` when no format yields a non-empty answer.
pub fn extract_answer(completion: &str) -> Option<Extracted> {
    extract_with(completion, true)
}

/// Like [`extract_answer`], but the last-number fallback is only tried when
/// `allow_last_number` is true.
pub fn extract_with(completion: &str, allow_last_number: bool) -> Option<Extracted> {
    extract_marked(completion).or_else(|| {
        if allow_last_number {
            last_number(completion).and_then(|t| found(t, AnswerFormat::LastNumber))
        } else {
            None
        }
    })
}

/// The trimmed, non-empty `text` in `format`.
fn found(text: &str, format: AnswerFormat) -> Option<Extracted> {
    let text = text.trim();
    (!text.is_empty()).then(|| Extracted {
        text: text.to_string(),
        format,
    })
}

/// The answer in an explicit marker, in order of precedence: `<answer>` (or a `\boxed{...}`
/// inside it), the last `\boxed{...}`, `#### ...`.
fn extract_marked(completion: &str) -> Option<Extracted> {
    extract_answer_tag(completion)
        .map(|t| extract_boxed(t).unwrap_or(t))
        .and_then(|t| found(t, AnswerFormat::AnswerTag))
        .or_else(|| extract_boxed(completion).and_then(|t| found(t, AnswerFormat::Boxed)))
        .or_else(|| extract_hashes(completion).and_then(|t| found(t, AnswerFormat::Hashes)))
}

/// Extracts the final *expression* of `completion` (Countdown answers such as `94*4 - 61 - 6`).
///
/// Tries, in order, [`AnswerFormat::AnswerTag`] (or a `\boxed{...}` inside it),
/// [`AnswerFormat::Boxed`], [`AnswerFormat::Hashes`] and, when `allow_last_line` is true,
/// [`AnswerFormat::LastLine`]: the last line that is not blank. The number fallback of
/// [`extract_answer`] is not used, since it would cut an expression into its last number.
pub fn extract_expression(completion: &str, allow_last_line: bool) -> Option<Extracted> {
    extract_marked(completion).or_else(|| {
        if allow_last_line {
            let line = completion.lines().rev().find(|l| !l.trim().is_empty())?;
            found(line, AnswerFormat::LastLine)
        } else {
            None
        }
    })
}

/// Returns the last `max_bytes` bytes of `text`, moved forward to a character boundary.
pub fn tail(text: &str, max_bytes: usize) -> &str {
    let mut start = text.len().saturating_sub(max_bytes);
    while start < text.len() && !text.is_char_boundary(start) {
        start += 1;
    }
    text.get(start..).unwrap_or("")
}

/// Content of the last complete `<answer>...</answer>` pair.
fn extract_answer_tag(text: &str) -> Option<&str> {
    const OPEN: &str = "<answer>";
    const CLOSE: &str = "</answer>";
    let close = text.rfind(CLOSE)?;
    let before = text.get(..close)?;
    let open = before.rfind(OPEN)?;
    before.get(open + OPEN.len()..)
}

/// Content of the last complete `\boxed{...}` / `\fbox{...}`.
fn extract_boxed(text: &str) -> Option<&str> {
    let mut end = text.len();
    for _ in 0..MAX_BOXED_CANDIDATES {
        let prefix = text.get(..end)?;
        let boxed = prefix.rfind("\\boxed").map(|i| (i, "\\boxed".len()));
        let fbox = prefix.rfind("\\fbox").map(|i| (i, "\\fbox".len()));
        let (start, len) = match (boxed, fbox) {
            (Some(b), Some(f)) => {
                if b.0 > f.0 {
                    b
                } else {
                    f
                }
            }
            (Some(b), None) => b,
            (None, Some(f)) => f,
            (None, None) => return None,
        };
        let after = text.get(start + len..)?;
        let trimmed = after.trim_start_matches(' ');
        if let Some(content) = braced_group(trimmed) {
            return Some(content);
        }
        end = start;
    }
    None
}

/// If `text` starts with `{`, returns the content up to its matching `}`.
///
/// Gives up (returns `None`) when the group is unbalanced, longer than [`MAX_BRACED_LEN`] or
/// nested deeper than [`MAX_BRACE_DEPTH`]. A backslash escapes the next byte, so `\{` and `\}`
/// do not count as braces.
pub(crate) fn braced_group(text: &str) -> Option<&str> {
    let bytes = text.as_bytes();
    if bytes.first() != Some(&b'{') {
        return None;
    }
    let mut depth = 0usize;
    let mut i = 0usize;
    let limit = bytes.len().min(MAX_BRACED_LEN + 2);
    while i < limit {
        match bytes[i] {
            b'\\' => i += 1,
            b'{' => {
                depth += 1;
                if depth > MAX_BRACE_DEPTH {
                    return None;
                }
            }
            b'}' => {
                depth -= 1;
                if depth == 0 {
                    return text.get(1..i);
                }
            }
            _ => {}
        }
        i += 1;
    }
    None
}

/// Text after the last `####`, up to the end of its line.
fn extract_hashes(text: &str) -> Option<&str> {
    let start = text.rfind("####")? + "####".len();
    let rest = text.get(start..)?;
    let line = rest.split('\n').next().unwrap_or(rest);
    Some(line.trim_start_matches('#'))
}

/// The last number-looking token of `text`.
pub(crate) fn last_number(text: &str) -> Option<&str> {
    let bytes = text.as_bytes();
    let mut last = None;
    let mut i = 0usize;
    while i < bytes.len() {
        match scan_number(text, i) {
            Some((start, end)) => {
                last = Some((start, end));
                i = end;
            }
            None => i += 1,
        }
    }
    let (start, end) = last?;
    text.get(start..end)
}

/// Tries to read a number starting at byte `i`; returns its byte span.
///
/// A sign (`+`, `-`, or the unicode minus `−`) counts only when it is not preceded by an
/// alphanumeric character or a closing bracket, so `5-3` reads as `5` and `3`.
fn scan_number(text: &str, i: usize) -> Option<(usize, usize)> {
    let bytes = text.as_bytes();
    let prev = if i == 0 {
        None
    } else {
        bytes.get(i - 1).copied()
    };
    // Never start inside a run of digits or right after a decimal point.
    if matches!(prev, Some(b'0'..=b'9' | b'.')) {
        return None;
    }
    let sign_allowed =
        !matches!(prev, Some(p) if p.is_ascii_alphanumeric() || p == b')' || p == b']');
    let mut j = i;
    if sign_allowed {
        if matches!(bytes.get(j), Some(b'+' | b'-')) {
            j += 1;
        } else if text.get(j..).is_some_and(|s| s.starts_with('\u{2212}')) {
            j += '\u{2212}'.len_utf8();
        }
    }
    let body = j;
    let int_end = scan_integer_part(bytes, j);
    let mut end = int_end;
    if int_end > body {
        // Optional decimals, or a fraction a/b.
        if let Some(dec_end) = scan_decimals(bytes, int_end) {
            end = dec_end;
        } else if bytes.get(int_end) == Some(&b'/') {
            let den_end = scan_digits(bytes, int_end + 1);
            if den_end > int_end + 1 {
                end = den_end;
            }
        }
    } else {
        // A leading decimal point: `.5`.
        end = scan_decimals(bytes, body)?;
    }
    Some((i, end))
}

/// End of a run of ASCII digits starting at `i` (`i` itself when there is none).
fn scan_digits(bytes: &[u8], i: usize) -> usize {
    let mut j = i;
    while bytes.get(j).is_some_and(u8::is_ascii_digit) {
        j += 1;
    }
    j
}

/// End of an integer part: digits, or 1-3 digits followed by groups of exactly three digits,
/// each preceded by a thousands separator `,`, `{,}` or `\,`.
fn scan_integer_part(bytes: &[u8], i: usize) -> usize {
    let end = scan_digits(bytes, i);
    if end == i || end - i > 3 {
        return end;
    }
    let mut j = end;
    loop {
        let rest = bytes.get(j..).unwrap_or(&[]);
        let sep = [&b","[..], b"{,}", b"\\,"]
            .into_iter()
            .find(|sep| rest.starts_with(sep));
        let Some(sep) = sep else { return j };
        let group_start = j + sep.len();
        let group_end = scan_digits(bytes, group_start);
        if group_end == group_start + 3 {
            j = group_end;
        } else {
            return j;
        }
    }
}

/// If `bytes[i]` is a `.` followed by at least one digit, the end of those digits.
fn scan_decimals(bytes: &[u8], i: usize) -> Option<usize> {
    if bytes.get(i) != Some(&b'.') {
        return None;
    }
    let end = scan_digits(bytes, i + 1);
    (end > i + 1).then_some(end)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ex(text: &str) -> Option<(String, AnswerFormat)> {
        extract_answer(text).map(|e| (e.text, e.format))
    }

    #[test]
    fn gsm8k_chain_of_thought_ends_in_hashes() {
        let completion = "Natalia sold 48/2 = 24 clips in May.\n\
                          Natalia sold 48 + 24 = 72 clips altogether in April and May.\n#### 72";
        assert_eq!(ex(completion), Some(("72".into(), AnswerFormat::Hashes)));
    }

    #[test]
    fn last_hashes_wins_and_stops_at_end_of_line() {
        let completion = "#### 10\nwait, let me recheck.\n#### 12 \nThat is all.";
        assert_eq!(ex(completion), Some(("12".into(), AnswerFormat::Hashes)));
    }

    #[test]
    fn boxed_with_nested_braces() {
        let completion = "So the probability is $\\boxed{\\dfrac{3}{4}}$.";
        assert_eq!(
            ex(completion),
            Some(("\\dfrac{3}{4}".into(), AnswerFormat::Boxed))
        );
    }

    #[test]
    fn last_boxed_wins_and_fbox_counts() {
        assert_eq!(
            ex("\\boxed{1} then \\boxed{2}"),
            Some(("2".into(), AnswerFormat::Boxed))
        );
        assert_eq!(
            ex("\\boxed{1} then \\fbox{3}"),
            Some(("3".into(), AnswerFormat::Boxed))
        );
        assert_eq!(
            ex("\\fbox{3} then \\boxed {4}"),
            Some(("4".into(), AnswerFormat::Boxed))
        );
    }

    #[test]
    fn truncated_last_boxed_falls_back_to_previous_complete_one() {
        let completion = "First try \\boxed{5}. Actually \\boxed{\\frac{1}{2";
        assert_eq!(ex(completion), Some(("5".into(), AnswerFormat::Boxed)));
    }

    #[test]
    fn escaped_braces_do_not_count() {
        assert_eq!(
            ex("\\boxed{\\{1,2\\}}"),
            Some(("\\{1,2\\}".into(), AnswerFormat::Boxed))
        );
    }

    #[test]
    fn answer_tag_has_priority_over_boxed_and_hashes() {
        let completion = "<think>\\boxed{3} #### 4</think><answer> 7 </answer>";
        assert_eq!(ex(completion), Some(("7".into(), AnswerFormat::AnswerTag)));
        let two = "<answer>1</answer> no, <answer>2</answer>";
        assert_eq!(ex(two), Some(("2".into(), AnswerFormat::AnswerTag)));
        let boxed_inside = "<answer>so it is \\boxed{\\frac{1}{2}}.</answer>";
        assert_eq!(
            ex(boxed_inside),
            Some(("\\frac{1}{2}".into(), AnswerFormat::AnswerTag))
        );
    }

    #[test]
    fn empty_or_unclosed_answer_tag_falls_through() {
        assert_eq!(
            ex("<answer>  </answer> #### 9"),
            Some(("9".into(), AnswerFormat::Hashes))
        );
        assert_eq!(
            ex("<answer>9"),
            Some(("9".into(), AnswerFormat::LastNumber))
        );
    }

    #[test]
    fn last_number_fallback_forms() {
        assert_eq!(
            ex("The answer is $1,234.50."),
            Some(("1,234.50".into(), AnswerFormat::LastNumber))
        );
        assert_eq!(
            ex("so x = -3."),
            Some(("-3".into(), AnswerFormat::LastNumber))
        );
        assert_eq!(
            ex("so x = \u{2212}3"),
            Some(("\u{2212}3".into(), AnswerFormat::LastNumber))
        );
        assert_eq!(
            ex("half is 1/2"),
            Some(("1/2".into(), AnswerFormat::LastNumber))
        );
        assert_eq!(
            ex("it is .5 now"),
            Some((".5".into(), AnswerFormat::LastNumber))
        );
        assert_eq!(ex("5-3=2"), Some(("2".into(), AnswerFormat::LastNumber)));
        assert_eq!(
            ex("values 1,2,3"),
            Some(("3".into(), AnswerFormat::LastNumber))
        );
        assert_eq!(
            ex("is $1{,}234$."),
            Some(("1{,}234".into(), AnswerFormat::LastNumber))
        );
        assert_eq!(
            ex("is 12\\,345\\,678"),
            Some(("12\\,345\\,678".into(), AnswerFormat::LastNumber))
        );
        assert_eq!(
            ex("is 1{,}23"),
            Some(("23".into(), AnswerFormat::LastNumber))
        );
        assert_eq!(ex("no digits here"), None);
    }

    #[test]
    fn last_number_can_be_disabled() {
        assert_eq!(extract_with("the answer is 5", false), None);
        let boxed = extract_with("\\boxed{5}", false).map(|e| e.format);
        assert_eq!(boxed, Some(AnswerFormat::Boxed));
    }

    #[test]
    fn braced_group_limits() {
        let deep = format!(
            "{}x{}",
            "{".repeat(MAX_BRACE_DEPTH + 1),
            "}".repeat(MAX_BRACE_DEPTH + 1)
        );
        assert_eq!(braced_group(&deep), None);
        let ok = format!(
            "{}x{}",
            "{".repeat(MAX_BRACE_DEPTH),
            "}".repeat(MAX_BRACE_DEPTH)
        );
        assert!(braced_group(&ok).is_some());
        let long = format!("{{{}}}", "a".repeat(MAX_BRACED_LEN + 1));
        assert_eq!(braced_group(&long), None);
        let fits = format!("{{{}}}", "a".repeat(MAX_BRACED_LEN));
        assert_eq!(braced_group(&fits).map(str::len), Some(MAX_BRACED_LEN));
    }

    #[test]
    fn tail_respects_char_boundaries() {
        let text = "ab\u{2212}cd";
        assert_eq!(tail(text, 3), "cd");
        assert_eq!(tail(text, 5), "\u{2212}cd");
        assert_eq!(tail(text, 100), text);
        assert_eq!(tail(text, 0), "");
    }
}
