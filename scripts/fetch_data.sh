#!/usr/bin/env bash
# Generates the JSONL problem sets of docs/training.md ("Data") with reasoning-gym.
#
#   scripts/fetch_data.sh [OUT_DIR]            train/test sets (default: target/data)
#   scripts/fetch_data.sh --fixtures [DIR]     epgrpo-eval's test fixtures
#                                              (default: epgrpo-eval/tests/fixtures)
#
# Environment: EPGRPO_DATA_DIR (output directory when no argument is given), EPGRPO_DATA_VENV
# (the Python virtual environment, default target/data-venv; created on first use, outside the
# tracked tree). Needs python3 (3.10 or newer) and access to PyPI on the first run. Idempotent:
# the same command writes the same bytes.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="${EPGRPO_DATA_VENV:-$root/target/data-venv}"
version="0.1.25"

if [[ "${1:-}" == "--fixtures" ]]; then
    args=(--fixtures "${2:-$root/epgrpo-eval/tests/fixtures}")
else
    args=(--out "${1:-${EPGRPO_DATA_DIR:-$root/target/data}}")
fi

if [[ ! -x "$venv/bin/python" ]]; then
    python3 -m venv "$venv"
fi
if ! "$venv/bin/python" -c "import importlib.metadata as m, sys; \
sys.exit(m.version('reasoning-gym') != '$version')" 2>/dev/null; then
    "$venv/bin/pip" install --quiet --disable-pip-version-check "reasoning-gym==$version"
fi
PYTHONHASHSEED=0 exec "$venv/bin/python" "$root/scripts/fetch_data.py" "${args[@]}"
