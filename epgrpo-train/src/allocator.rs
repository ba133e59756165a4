//! How the `epgrpo` process asks glibc's allocator to keep freed memory.
//!
//! A training or scoring step allocates and frees the same large buffers over and over
//! (activations, `[chunk, vocab]` logits and their gradients, tens of MB each). By default
//! glibc serves every block above 32 MB with a fresh `mmap` and returns it on `free`, so each
//! step faults its pages in again (the kernel zeroing them: 10–20 % of a CPU step, see
//! docs/performance.md). Here blocks come from the heap and freed memory at its top is kept up
//! to [`TRIM_THRESHOLD`], as PyTorch's caching allocator keeps its blocks: the resident size
//! stays at the peak of the run instead of falling between steps.

/// Free memory at the top of the heap kept for reuse before glibc returns it (bytes).
#[cfg(all(target_os = "linux", target_env = "gnu"))]
const TRIM_THRESHOLD: libc::c_int = 1 << 30;

/// Serves large blocks from the heap and keeps freed memory (glibc on Linux; elsewhere the
/// platform allocator is left as it is).
pub fn keep_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: `mallopt` only changes allocator parameters; called first thing in `main`,
    // before any other thread exists.
    unsafe {
        libc::mallopt(libc::M_MMAP_MAX, 0);
        libc::mallopt(libc::M_TRIM_THRESHOLD, TRIM_THRESHOLD);
    }
}
