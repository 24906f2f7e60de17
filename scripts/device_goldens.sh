#!/usr/bin/env bash
# The one command the GPU machine runs to regenerate tests/data/goldens: `bash scripts/device_goldens.sh`.
# Writes $OUT/goldens.tar.gz (goldens/<family>/..., goldens/FACTS.md) and $OUT/make_goldens.log; unpack into tests/data/.
set -euo pipefail
: "${OUT:?OUT must be set (device tool output folder)}"
root="$(cd "$(dirname "$0")/.." && pwd)"
python3 -c "import transformers, torch; print(transformers.__version__, torch.__version__)"
work="$(mktemp -d)"
# CPU only: the goldens are float32 CPU references; the GPU is not needed.
set +e  # pack whatever was produced even if one family failed
CUDA_VISIBLE_DEVICES="" PYTHONUNBUFFERED=1 python3 "$root/tools/make_goldens.py" --out "$work/goldens" "$@" 2>&1 \
  | tee "$OUT/make_goldens.log"
rc=${PIPESTATUS[0]}
set -e
tar -C "$work" -czf "$OUT/goldens.tar.gz" goldens
ls -l "$OUT"
exit "$rc"
