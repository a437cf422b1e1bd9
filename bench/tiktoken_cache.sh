#!/usr/bin/env bash
# Prepares a TIKTOKEN_CACHE_DIR from the BPE files bpe-openai ships, so Python tiktoken works
# offline with exactly the vocabularies fthub uses. Prints the directory.
set -euo pipefail
dir="${1:-${TMPDIR:-/tmp}/fthub-tiktoken-cache}"
mkdir -p "$dir"
src=$(ls -d "${CARGO_HOME:-$HOME/.cargo}"/registry/src/*/bpe-openai-0.3.*/data 2>/dev/null | tail -n 1)
[ -n "$src" ] || { echo "bpe-openai sources not found; run cargo fetch first" >&2; exit 1; }
for enc in cl100k_base o200k_base; do
  key=$(python3 -c "import hashlib,sys; print(hashlib.sha1(sys.argv[1].encode()).hexdigest())" \
        "https://openaipublic.blob.core.windows.net/encodings/$enc.tiktoken")
  [ -s "$dir/$key" ] || gunzip -c "$src/$enc.tiktoken.gz" > "$dir/$key"
done
echo "$dir"
