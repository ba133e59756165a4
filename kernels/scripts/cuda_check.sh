#!/usr/bin/env bash
# Runs the prebuilt CUDA tests of the kernels on a GPU machine: the E1 parity tests of
# epgrpo-kernels, the E2–E12 advantage parity tests of epgrpo-core (tests/kernel_parity.rs, against
# the f64 reference) and, if present, the CUDA benchmark. Nothing is compiled here: the binaries
# are built on any machine (no CUDA toolkit needed) with
#   CARGO_TARGET_DIR=target-gpu cargo test  -p epgrpo-kernels --features cuda --release --no-run
#   CARGO_TARGET_DIR=target-gpu cargo test  -p epgrpo-core --features cuda --release --no-run \
#       --test kernel_parity
#   CARGO_TARGET_DIR=target-gpu cargo bench -p epgrpo-kernels --features cuda --no-run
#   CARGO_TARGET_DIR=target-gpu cargo test  -p epgrpo-train --features nccl --release --no-run \
#       --test distributed_nccl
# and copied to the GPU machine. At run time CubeCL needs the driver's libcuda.so and NVRTC
# (libnvrtc.so, found through the usual library path) for the JIT.
#
# Usage: kernels/scripts/cuda_check.sh [PARITY_BIN] [BENCH_BIN] [ADVANTAGE_PARITY_BIN]
#   defaults: the newest target-gpu/release/deps/parity-*, kernels-* and kernel_parity-*
#   executables.
# Environment: BENCH_* (see kernels/benches/kernels.rs); SKIP_BENCH=1; NCCL_TEST_BIN (default:
#   the newest target-gpu/release/deps/distributed_nccl-*; absent: NCCL is not checked).
set -euo pipefail

# NVRTC of the CUDA toolkit, where the machine has one in the usual place.
if [[ -d /usr/local/cuda/lib64 ]]; then
    export LD_LIBRARY_PATH="/usr/local/cuda/lib64${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
fi

newest() { ls -t $1 2>/dev/null | grep -v '\.d$' | head -n 1 || true; }

parity="${1:-$(newest 'target-gpu/release/deps/parity-*')}"
bench="${2:-$(newest 'target-gpu/release/deps/kernels-*')}"
advantages="${3:-$(newest 'target-gpu/release/deps/kernel_parity-*')}"

if [[ -z "$parity" || ! -x "$parity" ]]; then
    echo "cuda_check: no parity test binary (pass its path as the first argument)" >&2
    exit 2
fi

command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv
echo "== parity tests: $parity"
# One test at a time: the >65,535-row case is large, and the output is easier to read.
"$parity" --test-threads=1

if [[ -n "$advantages" && -x "$advantages" ]]; then
    echo "== advantage parity tests: $advantages"
    "$advantages" --test-threads=1
else
    echo "cuda_check: no kernel_parity binary of epgrpo-core (pass its path as the third argument)" >&2
    exit 2
fi

# Data parallelism's NCCL path on this machine's one GPU (world size 1): a step through NCCL
# equals the step without an engine; all-reduce time of a 256 MB bucket. libnccl.so.2 comes from
# the nvidia-nccl-cu13 wheel (cudarc loads it at run time).
nccl_test="${NCCL_TEST_BIN:-$(newest 'target-gpu/release/deps/distributed_nccl-*')}"
if [[ -n "$nccl_test" && -x "$nccl_test" ]]; then
    nccl_lib="$(find /usr /opt /root /home -name libnccl.so.2 -path '*nvidia/nccl*' 2>/dev/null | head -n 1 || true)"
    if [[ -n "$nccl_lib" ]]; then
        export LD_LIBRARY_PATH="$(dirname "$nccl_lib")${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
    fi
    echo "== NCCL, world size 1: $nccl_test (libnccl.so.2: ${nccl_lib:-from the library path})"
    MASTER_ADDR=127.0.0.1 MASTER_PORT=29500 NCCL_DEBUG="${NCCL_DEBUG:-WARN}" \
        "$nccl_test" --ignored --test-threads=1 --nocapture
else
    echo "cuda_check: no distributed_nccl binary of epgrpo-train: NCCL not checked" >&2
fi

if [[ "${SKIP_BENCH:-0}" != 1 && -n "$bench" && -x "$bench" ]]; then
    echo "== benchmark: $bench"
    BENCH_BACKENDS="${BENCH_BACKENDS:-cuda}" "$bench"
fi
