//! Resident memory of this process, as Linux reports it in `/proc/self/status`: the current
//! resident set (`VmRSS`) and its high-water mark (`VmHWM`). Used to check memory plans against
//! what a run really takes.

/// `VmHWM` (peak resident set) in bytes; `None` where `/proc/self/status` does not exist.
pub fn peak_rss_bytes() -> Option<u64> {
    status_kib("VmHWM:").map(|kib| kib * 1024)
}

/// `VmRSS` (current resident set) in bytes; `None` where `/proc/self/status` does not exist.
pub fn current_rss_bytes() -> Option<u64> {
    status_kib("VmRSS:").map(|kib| kib * 1024)
}

/// The value of a `Key:   123 kB` line of `/proc/self/status`.
fn status_kib(key: &str) -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    status
        .lines()
        .find_map(|line| line.strip_prefix(key))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(target_os = "linux")]
    #[test]
    fn the_peak_grows_with_a_large_allocation_and_stays_above_the_current_value() {
        let before = peak_rss_bytes().expect("Linux has /proc/self/status");
        let block = vec![1u8; 64 << 20];
        let touched: u64 = block.iter().step_by(4096).map(|&b| u64::from(b)).sum();
        assert_eq!(touched, (64 << 20) / 4096);
        let after = peak_rss_bytes().unwrap();
        assert!(after >= before + (60 << 20), "{before} → {after}");
        assert!(current_rss_bytes().unwrap() <= after);
    }
}
