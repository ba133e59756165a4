//! Benchmark of the fused kernels against the unfused plain-Burn formulations
//! (`epgrpo_kernels::bench`): E1 (`token_logp_entropy` vs log_softmax + gather + sum, forward and
//! forward+backward) and E2–E12 (`group_advantages` vs the plain composition with its
//! `[B, G, L, K]` one-hot), on every backend compiled in (NdArray always; `Wgpu` / `Cuda` with the
//! features). `epgrpo bench kernels` prints the same tables for one device.
//!
//! Prints two Markdown tables. Environment:
//! - `BENCH_ROWS` (default 8192), `BENCH_VOCABS` (comma list, default `32000,151936`),
//! - `BENCH_GROUPS`, `BENCH_GROUP_SIZE`, `BENCH_LENGTH`, `BENCH_BUCKETS` (default 64, 8, 1024, 10),
//! - `BENCH_ITERS` (timed iterations per cell, default 5; one extra warm-up call is not timed),
//! - `BENCH_BACKENDS` (comma list among `ndarray,wgpu,cuda`; default: all compiled in),
//! - `BENCH_TABLES` (comma list among `logp,advantages`; default both),
//! - `BENCH_UNFUSED=0` skips the unfused side (it needs several `[N, V]` buffers).

use burn::backend::NdArray;
use epgrpo_kernels::KernelBackend;
use epgrpo_kernels::bench::{
    BenchConfig, advantages_header, advantages_rows, logp_entropy_header, logp_entropy_rows,
};

fn var(name: &str) -> Option<String> {
    std::env::var(name).ok()
}

fn list(text: &str) -> Vec<String> {
    text.split(',')
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .collect()
}

fn number(name: &str, default: usize) -> usize {
    var(name).map_or(default, |v| v.parse().expect(name))
}

fn config_from_env() -> BenchConfig {
    let default = BenchConfig::default();
    BenchConfig {
        rows: number("BENCH_ROWS", default.rows),
        vocabs: var("BENCH_VOCABS").map_or(default.vocabs, |v| {
            list(&v)
                .iter()
                .map(|v| v.parse().expect("BENCH_VOCABS"))
                .collect()
        }),
        iters: number("BENCH_ITERS", default.iters),
        unfused: var("BENCH_UNFUSED").is_none_or(|v| v != "0"),
        groups: number("BENCH_GROUPS", default.groups),
        group_size: number("BENCH_GROUP_SIZE", default.group_size),
        length: number("BENCH_LENGTH", default.length),
        buckets: number("BENCH_BUCKETS", default.buckets),
    }
}

/// Markdown rows of one table.
type Rows = Vec<String>;

/// The E1 and E2–E12 rows of backend `B` for the tables named in `tables`.
fn rows_for<B: KernelBackend>(name: &str, config: &BenchConfig, tables: &[String]) -> (Rows, Rows) {
    let wants = |t: &str| tables.iter().any(|x| x == t);
    let (mut logp, mut advantages) = (Vec::new(), Vec::new());
    if wants("logp") {
        logp_entropy_rows::<B>(name, config, &mut |row| logp.push(row));
    }
    if wants("advantages") {
        advantages_rows::<B>(name, config, &mut |row| advantages.push(row));
    }
    (logp, advantages)
}

fn main() {
    let config = config_from_env();
    let backends = list(&var("BENCH_BACKENDS").unwrap_or("ndarray,wgpu,cuda".into()));
    let tables = list(&var("BENCH_TABLES").unwrap_or("logp,advantages".into()));
    let wants = |b: &str| backends.iter().any(|x| x == b);
    let mut logp = Vec::new();
    let mut advantages = Vec::new();
    let mut collect = |(l, a): (Rows, Rows)| {
        logp.extend(l);
        advantages.extend(a);
    };
    if wants("ndarray") {
        collect(rows_for::<NdArray>("ndarray", &config, &tables));
    }
    #[cfg(feature = "wgpu")]
    if wants("wgpu") {
        collect(rows_for::<burn::backend::Wgpu>("wgpu", &config, &tables));
    }
    #[cfg(feature = "cuda")]
    if wants("cuda") {
        collect(rows_for::<burn::backend::Cuda>("cuda", &config, &tables));
    }
    if !logp.is_empty() {
        for line in logp_entropy_header(config.iters).iter().chain(&logp) {
            println!("{line}");
        }
        println!();
    }
    if !advantages.is_empty() {
        for line in advantages_header(config.iters).iter().chain(&advantages) {
            println!("{line}");
        }
    }
}
