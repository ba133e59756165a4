//! Drawing the next token from one row of logits on the host: greedy or temperature sampling
//! with optional top-k and top-p truncation, driven by a small seeded generator per sequence
//! (SplitMix64) so that every sample is reproducible from `(seed, prompt, sample)`. A random
//! draw maps one uniform `u` to the kept token (in id order) at which the normalised
//! cumulative weight first exceeds `u`; [`crate::device_sampling`] does the same on the
//! device, and this host sampler is its test oracle.

/// How the next token is chosen.
#[derive(Debug, Clone, PartialEq)]
pub enum Sampling {
    /// The most likely token (the lowest id among ties); log-probs at temperature 1.
    Greedy,
    /// A draw from `softmax(logits / temperature)` restricted to the `top_k` most likely tokens
    /// and then to the smallest prefix holding probability `top_p` (renormalised).
    Random {
        /// Softmax temperature, `> 0`.
        temperature: f32,
        /// Keep only this many most likely tokens (`None`: all).
        top_k: Option<usize>,
        /// Keep the smallest most-likely prefix with this much probability (`None`: all).
        top_p: Option<f32>,
    },
}

/// A sampled token and its log-probability under `log_softmax(logits / temperature)` over the
/// whole vocabulary (before top-k / top-p truncation): the quantity a policy-gradient loss
/// recomputes by teacher forcing.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Draw {
    /// Token id.
    pub token: u32,
    /// Its log-probability.
    pub logprob: f32,
}

/// SplitMix64: a tiny, fast, seedable generator (one per sequence).
#[derive(Debug, Clone)]
pub struct SequenceRng {
    state: u64,
}

impl SequenceRng {
    /// Generator for sample `sample` of prompt `prompt` under run seed `seed`.
    pub fn for_sequence(seed: u64, prompt: usize, sample: usize) -> Self {
        let a = Self { state: seed }.next_u64();
        let b = Self {
            state: a ^ prompt as u64,
        }
        .next_u64();
        Self {
            state: b ^ (sample as u64).rotate_left(32),
        }
    }

    /// Next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform draw in `[0, 1)` with 53 random bits.
    pub fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// Sampling requests that cannot be served.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SamplingError {
    /// A parameter of [`Sampling`] is out of range.
    #[error("sampling setting `{field}`: {reason}")]
    InvalidSetting {
        /// `temperature`, `top_k` or `top_p`.
        field: &'static str,
        /// What is wrong.
        reason: &'static str,
    },
    /// A random draw needs one uniform per row.
    #[error("{got} uniform draws for {rows} rows")]
    DrawCount {
        /// Rows of logits.
        rows: usize,
        /// Uniforms given.
        got: usize,
    },
    /// A uniform draw is not in `[0, 1)`.
    #[error("uniform draw {value} of row {row} is not in [0, 1)")]
    DrawRange {
        /// Its row.
        row: usize,
        /// The value.
        value: f64,
    },
    /// There is nothing to sample from.
    #[error("logits of shape [{rows}, {vocab}]: need at least one row and one token")]
    EmptyLogits {
        /// Rows.
        rows: usize,
        /// Vocabulary size.
        vocab: usize,
    },
}

impl Sampling {
    /// Checks the parameters: temperature positive and finite, `top_k ≥ 1`, `top_p` in
    /// `(0, 1]`.
    pub fn validate(&self) -> Result<(), SamplingError> {
        let bad = |field, reason| Err(SamplingError::InvalidSetting { field, reason });
        match self {
            Sampling::Greedy => Ok(()),
            Sampling::Random {
                temperature,
                top_k,
                top_p,
            } => {
                if !(*temperature > 0.0 && temperature.is_finite()) {
                    return bad("temperature", "must be positive and finite");
                }
                if *top_k == Some(0) {
                    return bad("top_k", "must be at least 1");
                }
                if top_p.is_some_and(|p| !(p > 0.0 && p <= 1.0)) {
                    return bad("top_p", "must be in (0, 1]");
                }
                Ok(())
            }
        }
    }

    /// Chooses the next token from one row of logits (`[vocab]`), taking one uniform draw
    /// from `rng` when sampling at random.
    ///
    /// # Panics
    /// If `logits` is empty.
    pub fn draw(&self, logits: &[f32], rng: &mut SequenceRng) -> Draw {
        match self {
            Sampling::Greedy => self.draw_with_uniform(logits, 0.0),
            Sampling::Random { .. } => self.draw_with_uniform(logits, rng.next_f64()),
        }
    }

    /// [`Sampling::draw`] with the uniform draw `u` in `[0, 1)` given (ignored when greedy):
    /// the kept token (in id order) at which the normalised cumulative weight first exceeds
    /// `u`. The device sampler ([`crate::device_sampling::draw_rows`]) maps the same `u` to
    /// the same token.
    ///
    /// # Panics
    /// If `logits` is empty.
    pub fn draw_with_uniform(&self, logits: &[f32], u: f64) -> Draw {
        assert!(!logits.is_empty(), "empty logits row");
        match self {
            Sampling::Greedy => {
                let token = argmax(logits);
                Draw {
                    token: token as u32,
                    logprob: log_softmax_at(logits, 1.0, token),
                }
            }
            Sampling::Random {
                temperature,
                top_k,
                top_p,
            } => {
                let t = *temperature;
                let token = sample_truncated(logits, t, *top_k, *top_p, u);
                Draw {
                    token: token as u32,
                    logprob: log_softmax_at(logits, t, token),
                }
            }
        }
    }
}

fn argmax(logits: &[f32]) -> usize {
    let mut best = 0;
    for (i, &x) in logits.iter().enumerate() {
        if x > logits[best] {
            best = i;
        }
    }
    best
}

/// `log_softmax(logits / temperature)[index]`, computed in f64.
fn log_softmax_at(logits: &[f32], temperature: f32, index: usize) -> f32 {
    let t = f64::from(temperature);
    let max = logits
        .iter()
        .fold(f64::NEG_INFINITY, |m, &x| m.max(f64::from(x) / t));
    let sum: f64 = logits.iter().map(|&x| (f64::from(x) / t - max).exp()).sum();
    (f64::from(logits[index]) / t - max - sum.ln()) as f32
}

fn sample_truncated(
    logits: &[f32],
    temperature: f32,
    top_k: Option<usize>,
    top_p: Option<f32>,
    u: f64,
) -> usize {
    let t = f64::from(temperature);
    let max = logits
        .iter()
        .fold(f64::NEG_INFINITY, |m, &x| m.max(f64::from(x) / t));
    let weight = |i: usize| (f64::from(logits[i]) / t - max).exp();
    let mut candidates = kept_tokens(logits, temperature, top_k, top_p);
    // The draw walks the kept tokens in id order (as the device sampler's cumulative sum over
    // the vocabulary does): the first token whose normalised cumulative weight exceeds `u`.
    candidates.sort_unstable();
    let weights: Vec<f64> = candidates.iter().map(|&i| weight(i)).collect();
    let total: f64 = weights.iter().sum();
    let mut cumulative = 0.0;
    for (&i, &w) in candidates.iter().zip(&weights) {
        cumulative += w;
        if cumulative / total > u {
            return i;
        }
    }
    // Rounding left `u` at or above the last normalised cumulative weight.
    candidates[candidates.len() - 1]
}

/// The tokens a truncated draw may return, most likely first (ties: lower id first): the
/// `top_k` most likely, then the smallest prefix of those holding probability `top_p` of
/// their renormalised distribution. `top_p ≥ 1` keeps all of them. Unordered when there is no
/// truncation.
fn kept_tokens(
    logits: &[f32],
    temperature: f32,
    top_k: Option<usize>,
    top_p: Option<f32>,
) -> Vec<usize> {
    let t = f64::from(temperature);
    let max = logits
        .iter()
        .fold(f64::NEG_INFINITY, |m, &x| m.max(f64::from(x) / t));
    let weight = |i: usize| (f64::from(logits[i]) / t - max).exp();
    let top_p = top_p.filter(|&p| p < 1.0);
    // Most likely first; ties keep the lower id first.
    let by_likelihood = |a: &usize, b: &usize| logits[*b].total_cmp(&logits[*a]).then(a.cmp(b));
    let mut candidates: Vec<usize> = (0..logits.len()).collect();
    if let Some(k) = top_k.filter(|&k| k < candidates.len()) {
        // Partition out the k most likely tokens before sorting only those.
        candidates.select_nth_unstable_by(k.max(1) - 1, by_likelihood);
        candidates.truncate(k.max(1));
    }
    if top_k.is_some() || top_p.is_some() {
        candidates.sort_by(by_likelihood);
    }
    if let Some(p) = top_p {
        let weights: Vec<f64> = candidates.iter().map(|&i| weight(i)).collect();
        let total: f64 = weights.iter().sum();
        let mut cumulative = 0.0;
        let mut keep = weights.len();
        for (n, w) in weights.iter().enumerate() {
            cumulative += w;
            if cumulative / total >= f64::from(p) {
                keep = n + 1;
                break;
            }
        }
        candidates.truncate(keep);
    }
    candidates
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn greedy_picks_argmax_with_its_log_softmax() {
        let logits = [0.0f32, 2.0, 1.0];
        let d = Sampling::Greedy.draw(&logits, &mut SequenceRng::for_sequence(0, 0, 0));
        assert_eq!(d.token, 1);
        let z = (0f64.exp() + 2f64.exp() + 1f64.exp()).ln();
        assert!((f64::from(d.logprob) - (2.0 - z)).abs() < 1e-6);
    }

    #[test]
    fn top_k_one_is_greedy_and_top_p_keeps_the_head() {
        let logits = [0.5f32, 3.0, 2.9, -1.0];
        let mut rng = SequenceRng::for_sequence(7, 1, 2);
        let k1 = Sampling::Random {
            temperature: 1.0,
            top_k: Some(1),
            top_p: None,
        };
        let small_p = Sampling::Random {
            temperature: 1.0,
            top_k: None,
            top_p: Some(0.3),
        };
        let head = Sampling::Random {
            temperature: 1.0,
            top_k: None,
            top_p: Some(0.9),
        };
        let k2 = Sampling::Random {
            temperature: 5.0,
            top_k: Some(2),
            top_p: None,
        };
        let mut seen = [false; 4];
        for _ in 0..200 {
            seen[k2.draw(&logits, &mut rng).token as usize] = true;
            assert_eq!(k1.draw(&logits, &mut rng).token, 1);
            assert_eq!(small_p.draw(&logits, &mut rng).token, 1);
            // p(1) + p(2) ≈ 0.91 ≥ 0.9, so tokens 0 and 3 are cut.
            assert!(matches!(head.draw(&logits, &mut rng).token, 1 | 2));
        }
        // At temperature 5 both of the two most likely tokens occur, and only they do.
        assert_eq!(seen, [false, true, true, false]);
    }

    #[test]
    fn empirical_frequencies_follow_the_tempered_softmax() {
        let logits = [1.0f32, 0.0, -1.0];
        let temperature = 2.0f32;
        let sampling = Sampling::Random {
            temperature,
            top_k: None,
            top_p: None,
        };
        let mut rng = SequenceRng::for_sequence(42, 0, 0);
        let n = 20_000;
        let mut counts = [0usize; 3];
        for _ in 0..n {
            counts[sampling.draw(&logits, &mut rng).token as usize] += 1;
        }
        for (i, &c) in counts.iter().enumerate() {
            let p = f64::from(log_softmax_at(&logits, temperature, i)).exp();
            let freq = c as f64 / n as f64;
            // 5 standard errors of a binomial proportion.
            let tol = 5.0 * (p * (1.0 - p) / n as f64).sqrt();
            assert!((freq - p).abs() < tol, "token {i}: {freq} vs {p}");
        }
    }

    #[test]
    fn sequences_get_distinct_reproducible_streams() {
        let draw = |s, p, q| SequenceRng::for_sequence(s, p, q).next_u64();
        assert_eq!(draw(1, 2, 3), draw(1, 2, 3));
        assert_ne!(draw(1, 2, 3), draw(1, 3, 2));
        assert_ne!(draw(1, 0, 0), draw(2, 0, 0));
    }
}
