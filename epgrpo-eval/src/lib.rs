//! `epgrpo-eval`: verifiable rewards and evaluation.
//!
//! This crate will hold answer extraction (`#### N`, `\boxed{}`, `<answer>`), equivalence checks
//! for numbers, fractions and simple LaTeX, JSONL problem sets and the pass@1 / pass@k / maj@k
//! metrics shared by training and evaluation.
