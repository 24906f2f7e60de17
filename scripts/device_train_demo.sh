#!/usr/bin/env bash
# The one command the GPU machine runs to train the demo model: `bash scripts/device_train_demo.sh [train_demo args]`
# (carry data/demo_corpus/train.txt, made by scripts/prepare_demo_corpus.sh). Results land in $OUT.
set -euo pipefail
: "${OUT:?OUT must be set (device tool output folder)}"
root="$(cd "$(dirname "$0")/.." && pwd)"
python3 -c "import torch, transformers, tokenizers; print(torch.__version__, transformers.__version__, tokenizers.__version__, torch.cuda.get_device_name())"
PYTHONUNBUFFERED=1 python3 "$root/tools/train_demo.py" --corpus "$root/data/demo_corpus" \
    --heldout "$root/models/demo/heldout.txt" --out "$OUT" "$@"
# Files over 16 MiB do not come back from the device: ship the weights in two parts (cat them back together).
split -n 2 -d "$OUT/model.safetensors" "$OUT/model.safetensors.part" && rm "$OUT/model.safetensors"
ls -l "$OUT"
