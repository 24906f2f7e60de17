#!/usr/bin/env python3
# Turns the raw demo-corpus sources (tagged Brown corpus files, the KJV text dump) into train.txt and heldout.txt.
# Deterministic: documents are taken in sorted order and every 40th one (2.5%) is held out, from both sources.
import os
import re
import sys

DOC_SEP = "<|endoftext|>"  # train_demo.py splits on this; it is also the tokenizer's document separator
HOLDOUT_EVERY = 40

# Tokens after which no space follows, and before which none precedes (Brown splits punctuation off words).
NO_SPACE_AFTER = {"``", "(", "[", "`"}
NO_SPACE_BEFORE = {",", ".", ";", ":", "?", "!", ")", "]", "''", "'"}


def brown_sentence(line):
    out = ""
    prev = None
    for tok in line.split():
        word = tok.rsplit("/", 1)[0] if "/" in tok else tok
        if word == "``" or word == "''":
            text = '"'
        else:
            text = word
        if prev is not None and prev not in NO_SPACE_AFTER and word not in NO_SPACE_BEFORE:
            out += " "
        out += text
        prev = word
    return out


def brown_document(raw):
    # Paragraphs are blocks separated by blank lines; each line inside a block is one sentence.
    paragraphs = []
    for block in re.split(r"\n\s*\n", raw):
        sentences = [brown_sentence(l) for l in block.splitlines() if l.strip()]
        if sentences:
            paragraphs.append(" ".join(sentences))
    return "\n".join(paragraphs)


def kjv_documents(raw):
    # The dump is "Book N" headings followed by "  V verse text" lines; one chapter per document, verse numbers
    # dropped so the text reads as prose.
    docs, cur = [], None
    for line in raw.splitlines():
        if not line.strip():
            continue
        m = re.match(r"^\s+\d+ (.*)$", line)
        if m and cur is not None:
            cur.append(m.group(1).strip())
        else:
            if cur:
                docs.append("\n".join(cur))
            cur = [line.strip()]
    if cur:
        docs.append("\n".join(cur))
    return docs


def main(brown_dir, kjv_file, out_dir):
    docs = []
    names = sorted(n for n in os.listdir(brown_dir) if re.fullmatch(r"c[a-r]\d\d", n))
    for n in names:
        with open(os.path.join(brown_dir, n), encoding="latin-1") as f:
            docs.append(("brown", brown_document(f.read())))
    with open(kjv_file, encoding="utf-8") as f:
        docs += [("kjv", d) for d in kjv_documents(f.read())]
    train, held = [], []
    for i, (_, d) in enumerate(docs):
        (held if i % HOLDOUT_EVERY == HOLDOUT_EVERY - 1 else train).append(d)
    os.makedirs(out_dir, exist_ok=True)
    with open(os.path.join(out_dir, "train.txt"), "w", encoding="utf-8") as f:
        f.write(DOC_SEP.join(train))
    # The held-out file is plain text (documents separated by blank lines): `moeinfer perplexity` reads it as is.
    with open(os.path.join(out_dir, "heldout.txt"), "w", encoding="utf-8") as f:
        f.write("\n\n".join(held) + "\n")
    print(f"{len(names)} brown + {len(docs) - len(names)} kjv documents: {len(train)} train, {len(held)} held out")


if __name__ == "__main__":
    if len(sys.argv) != 4:
        sys.exit("usage: prepare_demo_corpus.py BROWN_DIR KJV_TXT OUT_DIR")
    main(*sys.argv[1:])
