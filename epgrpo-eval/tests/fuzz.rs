//! Property and robustness tests: thousands of generated inputs, fixed seeds.
//!
//! * Arbitrary strings (lossy UTF-8 from random bytes, and soups of the tokens the parsers care
//!   about) through extraction, canonicalisation, the verifier and the JSONL loader: nothing may
//!   panic, an extracted answer is a substring of the completion, canonical forms are reflexive
//!   and deterministic, equivalence is symmetric, rewards take only their configured values, and
//!   an extracted answer always matches itself as a reference.
//! * Pathological inputs (10,000-digit runs, deep or unbalanced braces, long runs of markers)
//!   large enough that a quadratic scan would not finish in reasonable time.
//! * Generated numbers in many spellings, checked against an exact rational oracle.
//! * pass@k: range and monotonicity over random `(n, c, k)`.
//! * Countdown: arbitrary strings and expression soups through the expression parser, the spec
//!   parser and the Countdown verifier (no panic, verdicts consistent with [`evaluate`]);
//!   pathological expressions; random expression trees rendered with minimal or redundant
//!   parentheses, checked against the tree's exact value.

use std::path::Path;

use epgrpo_eval::{
    AnswerFormat, Canonical, CountdownSpec, CountdownVerifier, DatasetConfig, ExpressionError,
    MathVerifier, Number, Problem, Rational, TaskKind, Verifier, VerifierConfig, answers_match,
    canonicalize, evaluate, extract_answer, parse_jsonl, pass_at_k,
};

/// SplitMix64: a tiny, seeded, reproducible generator.
struct SplitMix64(u64);

impl SplitMix64 {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform-ish integer in `0..n` (`n > 0`).
    fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }

    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.below(items.len() as u64) as usize]
    }
}

const TOKENS: &[&str] = &[
    "0",
    "1",
    "2",
    "3",
    "5",
    "7",
    "9",
    "42",
    "1000",
    "{",
    "}",
    "{{",
    "}}",
    "\\",
    "\\\\",
    "\\boxed{",
    "\\boxed",
    "\\fbox{",
    "####",
    "#",
    "<answer>",
    "</answer>",
    "<answer",
    "\\frac",
    "\\dfrac",
    "\\tfrac{",
    "\\text{",
    "\\mbox{",
    "\\mathrm{",
    "\\left(",
    "\\right)",
    "\\left",
    "$",
    "$$",
    "%",
    "\\%",
    "\\$",
    ",",
    "{,}",
    "\\,",
    "\\!",
    "\\ ",
    "~",
    ".",
    "/",
    "-",
    "+",
    "\u{2212}",
    "=",
    "x",
    "x =",
    "^\\circ",
    "^{\\circ}",
    "\u{00b0}",
    "e",
    "\u{00e9}",
    "\u{4e2d}",
    "\u{1F642}",
    "\u{feff}",
    "\u{0301}",
    "\n",
    "\r\n",
    " ",
    "\t",
    "(",
    ")",
    "[",
    "]",
    "\\(",
    "\\)",
    "\\[",
    "\\]",
    "\\quad",
    "\\displaystyle",
    "\"",
    "null",
    ":",
    "\0",
];

fn random_lossy(rng: &mut SplitMix64) -> String {
    let len = rng.below(512) as usize;
    let bytes: Vec<u8> = (0..len).map(|_| rng.next_u64() as u8).collect();
    String::from_utf8_lossy(&bytes).into_owned()
}

fn random_soup(rng: &mut SplitMix64) -> String {
    let len = rng.below(200) as usize;
    (0..len).map(|_| rng.pick(TOKENS)).collect()
}

fn verifier(format_reward: f64) -> MathVerifier {
    let config = VerifierConfig {
        format_reward,
        ..VerifierConfig::default()
    };
    match MathVerifier::new(config) {
        Ok(v) => v,
        Err(e) => panic!("{e}"),
    }
}

/// Every property that must hold for a single arbitrary string.
fn check_string(s: &str, v: &MathVerifier) {
    if let Some(e) = extract_answer(s) {
        assert!(!e.text.is_empty(), "empty extraction from {s:?}");
        assert_eq!(e.text, e.text.trim(), "untrimmed extraction from {s:?}");
        assert!(s.contains(&e.text), "extraction not a substring of {s:?}");
    }
    let canonical = canonicalize(s);
    assert_eq!(
        canonical,
        canonicalize(s),
        "canonical form not deterministic for {s:?}"
    );
    if let Some(c) = &canonical {
        assert!(
            c.matches(c),
            "canonical form does not match itself for {s:?}"
        );
        if let Canonical::Number(Number::Approx(x)) = c {
            assert!(x.is_finite(), "non-finite number from {s:?}");
        }
    }
    let score = v.score(s, s);
    let expected = [0.0, 0.5, 1.0, 1.5];
    assert!(
        expected.contains(&score.reward),
        "reward {} for {s:?}",
        score.reward
    );
    assert_eq!(
        score.answer.is_some() && score.extracted.is_some(),
        score.answer.is_some()
    );
    if let (Some(e), Some(_)) = (&score.extracted, &score.answer) {
        // An answer always equals itself when it parses.
        assert!(
            v.score(s, &e.text).correct,
            "answer {:?} does not match itself",
            e.text
        );
    }
}

fn check_pair(a: &str, b: &str) {
    assert_eq!(
        answers_match(a, b),
        answers_match(b, a),
        "asymmetric: {a:?} vs {b:?}"
    );
}

#[test]
fn arbitrary_strings_never_panic_and_keep_invariants() {
    let v = verifier(0.5);
    let mut rng = SplitMix64(0x5EED_0001);
    let mut previous = String::new();
    for i in 0..6000 {
        let s = if i % 2 == 0 {
            random_lossy(&mut rng)
        } else {
            random_soup(&mut rng)
        };
        check_string(&s, &v);
        check_pair(&s, &previous);
        previous = s;
    }
}

#[test]
fn soups_with_numbers_are_symmetric() {
    // Short strings that often parse as numbers, so symmetry is tested on numeric pairs too.
    const NUMERIC: &[&str] = &[
        "1", "2", "0", ".", ",", "{,}", "/", "-", "\u{2212}", "%", "$", "\\frac", "{", "}", " ",
    ];
    let mut rng = SplitMix64(0x5EED_0002);
    let mut matched = 0;
    for _ in 0..4000 {
        let a: String = (0..rng.below(8)).map(|_| rng.pick(NUMERIC)).collect();
        let b: String = match rng.below(4) {
            0 => (0..rng.below(8)).map(|_| rng.pick(NUMERIC)).collect(),
            1 => format!("$ {a} $"),
            2 => format!("\\boxed{{{a}}}."),
            _ => format!("+{a}"),
        };
        check_pair(&a, &b);
        if answers_match(&a, &b) {
            matched += 1;
        }
    }
    // The generator is useful only if some pairs do match.
    assert!(matched > 500, "only {matched} matching pairs");
}

#[test]
fn pathological_inputs_finish() {
    let v = verifier(0.0);
    let digits: String = (0..10_000)
        .map(|i| char::from(b'0' + (i % 10) as u8))
        .collect();
    let cases = [
        digits.clone(),
        format!("-{digits}.{digits}"),
        format!("{digits}/{digits}"),
        format!("\\frac{{{digits}}}{{{digits}}}"),
        format!("#### {digits}"),
        format!("\\boxed{{{digits}}}"),
        "1,000".repeat(20_000),
        "1{,}000".repeat(20_000),
        "\\boxed{".repeat(40_000),
        format!("{}1{}", "\\boxed{".repeat(5_000), "}".repeat(5_000)),
        format!("{}1{}", "{".repeat(100_000), "}".repeat(100_000)),
        "}".repeat(100_000),
        "####".repeat(50_000),
        "<answer>".repeat(20_000),
        "</answer><answer>".repeat(10_000),
        "\\text{".repeat(30_000),
        format!("{}5{}", "\\text{".repeat(2_000), "}".repeat(2_000)),
        "$".repeat(100_000),
        "\\".repeat(100_000),
        "\\frac{".repeat(30_000),
        "-".repeat(100_000),
        "\u{2212}".repeat(50_000),
        "1/".repeat(50_000),
        ".5".repeat(50_000),
        "x=".repeat(50_000),
        "\u{1F642}".repeat(50_000),
    ];
    for case in &cases {
        check_string(case, &v);
        check_pair(case, &digits);
    }
    // A number too long to parse is compared as text and still equals itself.
    assert!(answers_match(&digits, &digits));
    assert!(!answers_match(&digits, &digits[1..]));
    assert_eq!(
        extract_answer(&format!("#### {digits}")).map(|e| e.text.len()),
        Some(10_000)
    );
}

/// Renders `n` with a thousands separator.
fn grouped(n: u64, sep: &str) -> String {
    let plain = n.to_string();
    let mut out = String::new();
    for (i, ch) in plain.chars().enumerate() {
        if i > 0 && (plain.len() - i).is_multiple_of(3) {
            out.push_str(sep);
        }
        out.push(ch);
    }
    out
}

#[test]
fn generated_fractions_match_the_rational_oracle() {
    let mut rng = SplitMix64(0x5EED_0003);
    for _ in 0..3000 {
        let p = rng.below(2_000_001) as i64 - 1_000_000;
        let q = rng.below(10_000) as i64 + 1;
        let Some(oracle) = Rational::new(i128::from(p), i128::from(q)) else {
            panic!("valid rational {p}/{q}");
        };
        let (sign, minus) = if p < 0 { ("-", "\u{2212}") } else { ("", "") };
        let a = p.unsigned_abs();
        let spellings = [
            format!("{p}/{q}"),
            format!("\\frac{{{p}}}{{{q}}}"),
            format!("{sign}\\dfrac{{{a}}}{{{q}}}"),
            format!("{minus}\\tfrac{{{a}}}{{{q}}}"),
            format!("$\\boxed{{{sign}\\frac{{{a}}}{{{q}}}}}$."),
            format!(" {sign}{a} / {q} "),
        ];
        for s in &spellings {
            assert_eq!(
                canonicalize(s),
                Some(Canonical::Number(Number::Exact(oracle))),
                "{s:?} should be {p}/{q}"
            );
        }
        assert!(answers_match(&spellings[0], &spellings[4]));
        // A different value never matches: (p + 1) / q.
        assert!(!answers_match(&spellings[0], &format!("{}/{q}", p + 1)));
    }
}

#[test]
fn generated_decimals_match_the_rational_oracle() {
    let mut rng = SplitMix64(0x5EED_0004);
    let seps = [",", "{,}", "\\,", ""];
    for _ in 0..3000 {
        let m = rng.below(1_000_000_000_000);
        let d = rng.below(7) as u32;
        let scale = 10u64.pow(d);
        let Some(oracle) = Rational::new(i128::from(m), i128::from(scale)) else {
            panic!("valid rational {m}/{scale}");
        };
        let int_part = m / scale;
        let frac_part = m % scale;
        let sep = seps[rng.below(seps.len() as u64) as usize];
        let mut text = grouped(int_part, sep);
        if d > 0 {
            text = format!("{text}.{frac_part:0width$}", width = d as usize);
        }
        let wrapped = match rng.below(4) {
            0 => format!("$\\boxed{{{text}}}$"),
            1 => format!("\\${text}"),
            2 => format!("{text}\\text{{ cm}}"),
            _ => format!("{text}."),
        };
        for s in [&text, &wrapped] {
            assert_eq!(
                canonicalize(s),
                Some(Canonical::Number(Number::Exact(oracle))),
                "{s:?} should be {m}/{scale}"
            );
        }
        assert!(answers_match(&text, &format!("\\frac{{{m}}}{{{scale}}}")));
        // Off by one unit in the last place: different.
        assert!(!answers_match(&text, &format!("{}/{scale}", m + 1)));
        // The verifier finds it at the end of a GSM8K-style completion, in any format.
        let completion = format!("Adding up the parts gives the total.\n#### {text}");
        let v = verifier(0.0);
        let score = v.score(&completion, &format!("{m}/{scale}"));
        assert!(score.correct, "{completion:?}");
        assert_eq!(
            score.extracted.map(|e| e.format),
            Some(AnswerFormat::Hashes)
        );
        let sentence = format!("So the answer is {text}.");
        assert!(
            v.score(&sentence, &format!("{m}/{scale}")).correct,
            "{sentence:?}"
        );
    }
}

#[test]
fn random_jsonl_lines_never_panic() {
    let mut rng = SplitMix64(0x5EED_0005);
    let config = DatasetConfig::default();
    let mut errors = 0;
    for i in 0..3000 {
        let body = if i % 3 == 0 {
            random_lossy(&mut rng)
        } else {
            random_soup(&mut rng)
        };
        let text = match i % 3 {
            0 => body,
            1 => format!(
                "{{\"question\": \"q\", \"answer\": \"{}\"}}",
                body.replace('"', "")
            ),
            _ => format!("{{\"question\": \"q\", \"answer\": {body}}}"),
        };
        let mut bytes = text.into_bytes();
        if i % 7 == 0 {
            bytes.push(0xFF);
        }
        match parse_jsonl(bytes.as_slice(), Path::new("fuzz.jsonl"), &config) {
            Ok(problems) => assert!(problems.iter().all(|p| !p.answer.is_empty())),
            Err(e) => {
                errors += 1;
                assert!(e.to_string().starts_with("fuzz.jsonl:"), "{e}");
            }
        }
    }
    assert!(errors > 100);
}

#[test]
fn pass_at_k_is_a_probability_and_monotone() {
    let mut rng = SplitMix64(0x5EED_0006);
    for _ in 0..5000 {
        let n = rng.below(200) as usize + 1;
        let c = rng.below(n as u64 + 1) as usize;
        let k = rng.below(n as u64) as usize + 1;
        let Ok(v) = pass_at_k(n, c, k) else {
            panic!("valid input n={n} c={c} k={k}")
        };
        assert!((0.0..=1.0).contains(&v), "pass@{k} = {v} for n={n} c={c}");
        if k < n {
            let Ok(next) = pass_at_k(n, c, k + 1) else {
                panic!("valid input")
            };
            assert!(
                next + 1e-12 >= v,
                "pass@k decreases in k at n={n} c={c} k={k}"
            );
        }
        if c < n {
            let Ok(more) = pass_at_k(n, c + 1, k) else {
                panic!("valid input")
            };
            assert!(
                more + 1e-12 >= v,
                "pass@k decreases in c at n={n} c={c} k={k}"
            );
        }
        assert_eq!(v == 0.0, c == 0, "n={n} c={c} k={k}");
    }
}

const EXPRESSION_TOKENS: &[&str] = &[
    "0",
    "1",
    "2",
    "6",
    "7",
    "00",
    "07",
    "94",
    "999999999999",
    "1234567890123",
    "+",
    "-",
    "*",
    "/",
    "**",
    "//",
    "(",
    ")",
    "((",
    "))",
    " ",
    "\t",
    "\n",
    "\r",
    ".",
    "=",
    "\u{00d7}",
    "\u{00f7}",
    "\u{2212}",
    "x",
    "#",
    "<answer>",
    "</answer>",
    "\\boxed{",
    "}",
    "####",
];

fn countdown_verifier() -> CountdownVerifier {
    let config = VerifierConfig {
        format_reward: 0.5,
        ..VerifierConfig::default()
    };
    match CountdownVerifier::new(config) {
        Ok(v) => v,
        Err(e) => panic!("{e}"),
    }
}

fn countdown_problem(answer: String) -> Problem {
    Problem {
        id: "p".to_string(),
        question: "q".to_string(),
        answer,
        line: 1,
    }
}

/// Every property of the Countdown path that must hold for one arbitrary string.
fn check_countdown_string(s: &str, v: &CountdownVerifier, spec: &CountdownSpec) {
    if let Ok(e) = evaluate(s) {
        assert!(
            e.numbers.len() <= s.len(),
            "more numbers than bytes in {s:?}"
        );
        assert!(e.value.denom() > 0);
    }
    let score = v.score(s, Some(spec));
    assert!(
        [0.0, 0.5, 1.0, 1.5].contains(&score.reward),
        "reward {} for {s:?}",
        score.reward
    );
    if score.correct {
        let Some(e) = &score.extracted else {
            panic!("correct without an expression: {s:?}")
        };
        assert!(spec.accepts(&e.text), "{s:?}");
    }
    // Any string as the reference of a Countdown problem: no panic, and a parsed spec reads
    // back from its text form.
    if let Some(parsed) = CountdownSpec::parse(s) {
        assert_eq!(CountdownSpec::parse(&parsed.to_string()), Some(parsed));
    }
    let verifier = Verifier::Countdown(v.clone());
    let problem = countdown_problem(s.to_string());
    assert_eq!(
        verifier.score(s, &problem).correct,
        problem
            .countdown()
            .is_some_and(|p| v.score(s, Some(&p)).correct)
    );
}

#[test]
fn countdown_arbitrary_strings_never_panic() {
    let v = countdown_verifier();
    let spec = match CountdownSpec::new(309, vec![6, 61, 94, 4]) {
        Ok(s) => s,
        Err(e) => panic!("{e}"),
    };
    let mut rng = SplitMix64(0x5EED_0007);
    let mut parsed = 0;
    for i in 0..6000 {
        let s: String = match i % 3 {
            0 => random_lossy(&mut rng),
            1 => random_soup(&mut rng),
            _ => {
                // Mostly well-formed: operands and operators alternate, with stray tokens.
                const OPERANDS: &[&str] = &["6", "61", "94", "4", "0", "(2)", "-3", "(1 - 1)"];
                const OPERATORS: &[&str] = &["+", "-", "*", "/", " + ", " * "];
                let mut out = String::from(rng.pick(OPERANDS));
                for _ in 0..rng.below(8) {
                    out.push_str(rng.pick(OPERATORS));
                    out.push_str(rng.pick(OPERANDS));
                    if rng.below(10) == 0 {
                        out.push_str(rng.pick(EXPRESSION_TOKENS));
                    }
                }
                out
            }
        };
        check_countdown_string(&s, &v, &spec);
        parsed += usize::from(evaluate(&s).is_ok());
    }
    // The soups must reach the evaluator's success path too.
    assert!(parsed > 100, "only {parsed} strings parsed");
}

#[test]
fn countdown_pathological_inputs_finish() {
    let v = countdown_verifier();
    let spec = match CountdownSpec::new(1, vec![1]) {
        Ok(s) => s,
        Err(e) => panic!("{e}"),
    };
    let cases = [
        "(".repeat(100_000),
        format!("{}1{}", "(".repeat(50_000), ")".repeat(50_000)),
        format!("{}1", "-".repeat(100_000)),
        "1+".repeat(100_000),
        "9".repeat(100_000),
        "1/0*".repeat(50_000),
        format!("<answer>{}</answer>", "1*".repeat(600)),
        format!("{}1", "\n".repeat(100_000)),
        " ".repeat(100_000),
        "\u{00d7}".repeat(50_000),
        format!("({}1{})", "\n".repeat(50_000), "\n".repeat(50_000)),
    ];
    for case in &cases {
        check_countdown_string(case, &v, &spec);
    }
    assert_eq!(evaluate(&cases[0]), Err(ExpressionError::TooLong));
    // Within the length limit, depth is the bound.
    let deep = format!("{}1{}", "(".repeat(400), ")".repeat(400));
    assert_eq!(evaluate(&deep), Err(ExpressionError::TooDeep));
}

/// A random expression tree: leaves are integers, inner nodes binary operators or negation.
enum Tree {
    Leaf(i64),
    Neg(Box<Tree>),
    Op(u8, Box<Tree>, Box<Tree>),
}

fn random_tree(rng: &mut SplitMix64, depth: u32) -> Tree {
    if depth == 0 || rng.below(3) == 0 {
        return Tree::Leaf(rng.below(101) as i64);
    }
    if rng.below(8) == 0 {
        return Tree::Neg(Box::new(random_tree(rng, depth - 1)));
    }
    let op = [b'+', b'-', b'*', b'/'][rng.below(4) as usize];
    Tree::Op(
        op,
        Box::new(random_tree(rng, depth - 1)),
        Box::new(random_tree(rng, depth - 1)),
    )
}

/// The exact value (`None` on division by zero), and the leaves in order.
fn oracle(tree: &Tree, leaves: &mut Vec<i64>) -> Option<Rational> {
    match tree {
        Tree::Leaf(n) => {
            leaves.push(*n);
            Some(Rational::from_integer(i128::from(*n)))
        }
        Tree::Neg(t) => oracle(t, leaves)?.checked_neg(),
        Tree::Op(op, l, r) => {
            let (l, r) = (oracle(l, leaves), oracle(r, leaves));
            let (l, r) = (l?, r?);
            match op {
                b'+' => l.checked_add(r),
                b'-' => l.checked_sub(r),
                b'*' => l.checked_mul(r),
                _ if r.numer() == 0 => None,
                _ => l.checked_div(r),
            }
        }
    }
}

fn precedence(tree: &Tree) -> u8 {
    match tree {
        Tree::Op(b'+' | b'-', ..) => 1,
        Tree::Op(..) => 2,
        Tree::Neg(_) => 3,
        Tree::Leaf(_) => 4,
    }
}

/// Renders `tree` with only the parentheses its shape needs, plus random redundant ones and
/// random spacing.
fn render(tree: &Tree, rng: &mut SplitMix64, out: &mut String) {
    let space = |rng: &mut SplitMix64| [" ", "", "", "  ", "\t"][rng.below(5) as usize];
    let child = |t: &Tree, needs: bool, rng: &mut SplitMix64, out: &mut String| {
        if needs || rng.below(6) == 0 {
            out.push('(');
            out.push_str(space(rng));
            render(t, rng, out);
            out.push_str(space(rng));
            out.push(')');
        } else {
            render(t, rng, out);
        }
    };
    match tree {
        Tree::Leaf(n) => out.push_str(&n.to_string()),
        Tree::Neg(t) => {
            out.push('-');
            child(t, precedence(t) < 3, rng, out);
        }
        Tree::Op(op, l, r) => {
            let p = precedence(tree);
            child(l, precedence(l) < p, rng, out);
            out.push_str(space(rng));
            out.push(char::from(*op));
            out.push_str(space(rng));
            let right_needs =
                precedence(r) < p || (precedence(r) == p && matches!(op, b'-' | b'/'));
            child(r, right_needs, rng, out);
        }
    }
}

#[test]
fn generated_expressions_match_the_tree_oracle() {
    let mut rng = SplitMix64(0x5EED_0008);
    let (mut fractions, mut zero_divisions) = (0, 0);
    for _ in 0..4000 {
        let tree = random_tree(&mut rng, 4);
        let mut leaves = Vec::new();
        let expected = oracle(&tree, &mut leaves);
        let mut text = String::new();
        render(&tree, &mut rng, &mut text);
        let got = evaluate(&text);
        match expected {
            Some(value) => {
                let Ok(e) = got else {
                    panic!("{text:?}: {got:?}, expected {value:?}")
                };
                assert_eq!(e.value, value, "{text:?}");
                assert_eq!(e.numbers, leaves, "{text:?}");
                fractions += usize::from(value.denom() != 1);
                // The spec built from the tree accepts the rendering, and rejects it against a
                // shifted target (whenever the value is an integer).
                if value.denom() == 1
                    && let Ok(target) = i64::try_from(value.numer())
                    && let Ok(spec) = CountdownSpec::new(target, leaves.clone())
                {
                    assert!(spec.accepts(&text), "{text:?}");
                    let shifted = CountdownSpec::new(target.wrapping_add(1), leaves.clone());
                    assert!(shifted.is_ok_and(|s| !s.accepts(&text)), "{text:?}");
                }
            }
            None => {
                assert_eq!(got, Err(ExpressionError::DivisionByZero), "{text:?}");
                zero_divisions += 1;
            }
        }
    }
    assert!(
        fractions > 200 && zero_divisions > 20,
        "{fractions} {zero_divisions}"
    );
}

#[test]
fn verifier_entry_point_matches_the_task_verifiers() {
    let math = verifier(0.5);
    let countdown = countdown_verifier();
    let mut rng = SplitMix64(0x5EED_0009);
    let Ok(entry) = Verifier::new(TaskKind::Math, math.config().clone()) else {
        panic!("valid config")
    };
    let Ok(entry_countdown) = Verifier::new(TaskKind::Countdown, countdown.config().clone()) else {
        panic!("valid config")
    };
    for _ in 0..2000 {
        let completion = random_soup(&mut rng);
        let reference = random_soup(&mut rng);
        let problem = countdown_problem(reference.clone());
        assert_eq!(
            entry.score(&completion, &problem),
            math.score(&completion, &reference)
        );
        let group = [completion.clone(), reference.clone()];
        assert_eq!(
            entry_countdown.score_group(&group, &problem)[0],
            entry_countdown.score(&completion, &problem)
        );
    }
}
