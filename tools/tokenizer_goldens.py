#!/usr/bin/env python3
# Makes the tokenizer goldens in tests/data/tokenizer/: ids from HF `tokenizers` for every fetched tokenizer.json
# x corpus text (with and without special tokens, plus decodes), and chat prompts rendered by transformers'
# apply_chat_template. Runs where those packages are installed (the GPU machine); needs no network.
import argparse, json, os, sys, time, traceback

def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--tokenizers", help="folder with <name>/tokenizer.json (scripts/fetch_tokenizers.sh)")
    ap.add_argument("--jinja", action="store_true", help="only render tests/data/tokenizer/jinja_cases.json with "
                    "jinja2 configured as transformers configures it (needs jinja2 alone; runs anywhere)")
    ap.add_argument("--data", default=os.path.join(os.path.dirname(__file__), "..", "tests", "data", "tokenizer"))
    ap.add_argument("--out", required=True)
    ap.add_argument("--peer-bench", help="folder where `MOEINFER_BENCH_DUMP=DIR tokenizer_bench` wrote mixed.txt and "
                    "random.txt: only time HF tokenizers on them (the peer figures for bench/RESULTS.md)")
    a = ap.parse_args()
    os.environ.setdefault("RAYON_NUM_THREADS", "1")
    if a.peer_bench:
        return peer_bench(a.tokenizers, a.peer_bench)
    if a.jinja:
        return jinja_goldens(a.data, a.out)
    from tokenizers import Tokenizer
    import tokenizers
    texts = json.load(open(os.path.join(a.data, "corpus.json"), encoding="utf-8"))["texts"]
    names = sorted(n for n in os.listdir(a.tokenizers) if os.path.exists(os.path.join(a.tokenizers, n, "tokenizer.json")))
    speed = {}
    for name in names:
        d = os.path.join(a.tokenizers, name)
        tok = Tokenizer.from_file(os.path.join(d, "tokenizer.json"))
        rows = []
        for t in texts:
            plain = tok.encode(t, add_special_tokens=False).ids
            special = tok.encode(t, add_special_tokens=True).ids
            rows.append({"text": t, "ids": plain, "ids_special": special,
                         "decoded": tok.decode(special, skip_special_tokens=False),
                         "decoded_skip": tok.decode(special, skip_special_tokens=True)})
        hf_tf = None
        try:
            from transformers import AutoTokenizer
            at = AutoTokenizer.from_pretrained(d)
            hf_tf = [at(t, add_special_tokens=True)["input_ids"] for t in texts]
        except Exception as e:  # recorded only for information: the tests compare against `tokenizers`
            hf_tf = "error: %s" % e
        big = "\n".join(texts) * 200
        t0 = time.perf_counter(); tok.encode(big, add_special_tokens=False); dt = time.perf_counter() - t0
        speed[name] = len(big.encode()) / dt / 1e6
        json.dump({"tokenizers_version": tokenizers.__version__, "rows": rows, "transformers_ids_special": hf_tf},
                  open(os.path.join(a.out, "ids_%s.json" % name), "w", encoding="utf-8"), ensure_ascii=False)
        print(name, "ok", "%.1f MB/s" % speed[name], flush=True)
    chat = render_chats(a)
    chat["hf_tokenizers_encode_mb_s"] = speed
    json.dump(chat, open(os.path.join(a.out, "chat_goldens.json"), "w", encoding="utf-8"), ensure_ascii=False, indent=1)

def transformers_like_env():
    # The environment transformers' chat-template renderer builds (facts: sandboxed, trim/lstrip blocks, loop
    # controls, a json.dumps tojson without HTML escaping, raise_exception, strftime_now).
    import datetime
    from jinja2 import TemplateError
    from jinja2.ext import loopcontrols
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    def raise_exception(message):
        raise TemplateError(message)

    def tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False):
        return json.dumps(x, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys)

    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True, extensions=[loopcontrols])
    env.filters["tojson"] = tojson
    env.globals["raise_exception"] = raise_exception
    env.globals["strftime_now"] = lambda f: datetime.datetime.now().strftime(f)
    return env

def jinja_goldens(data, out):
    import jinja2
    env = transformers_like_env()
    cases = json.load(open(os.path.join(data, "jinja_cases.json"), encoding="utf-8"))["cases"]
    res = []
    for c in cases:
        r = {"name": c["name"]}
        try:
            r["rendered"] = env.from_string(c["template"]).render(**c["context"])
        except Exception as e:
            r["error"] = "%s: %s" % (type(e).__name__, e)
        res.append(r)
    json.dump({"jinja2_version": jinja2.__version__, "results": res},
              open(os.path.join(out, "jinja_goldens.json"), "w", encoding="utf-8"), ensure_ascii=False, indent=1)
    print("jinja cases:", len(res), "errors:", sum("error" in r for r in res))

def peer_bench(tokdir, dump):
    from tokenizers import Tokenizer
    mixed = open(os.path.join(dump, "mixed.txt"), encoding="utf-8").read()
    rnd = open(os.path.join(dump, "random.txt"), encoding="utf-8").read()
    print("HF tokenizers, one thread, same texts as tokenizer_bench")
    for n in ["llama3", "qwen3", "deepseek_v3", "gptoss", "llama2", "gemma3"]:
        tok = Tokenizer.from_file(os.path.join(tokdir, n, "tokenizer.json"))
        t0 = time.perf_counter(); ids = tok.encode(mixed, add_special_tokens=False).ids; t1 = time.perf_counter()
        tok.encode(rnd, add_special_tokens=False); t2 = time.perf_counter()
        print("%-12s tokens %9d encode %6.1f MB/s random %6.1f MB/s" % (
            n, len(ids), len(mixed.encode()) / 1e6 / (t1 - t0), len(rnd.encode()) / 1e6 / (t2 - t1)), flush=True)

def render_chats(a):
    import transformers
    from transformers import AutoTokenizer
    convs = json.load(open(os.path.join(a.data, "conversations.json"), encoding="utf-8"))["conversations"]
    families = {"qwen3": ("qwen3", None), "llama3": ("llama3", None), "deepseek_v3": ("deepseek_v3", None),
                "gemma3": ("gemma3", None), "llama3_1": ("llama3", "templates/llama3_1.jinja")}
    out = {"transformers_version": transformers.__version__, "templates": {}}
    for fam, (tokname, tfile) in families.items():
        tok = AutoTokenizer.from_pretrained(os.path.join(a.tokenizers, tokname))
        if tfile:
            template = open(os.path.join(a.data, tfile), encoding="utf-8").read()
        else:
            template = json.load(open(os.path.join(a.tokenizers, tokname, "tokenizer_config.json"), encoding="utf-8"))["chat_template"]
        cases = []
        for c in convs:
            for agp in (False, True):
                case = {"conversation": c["name"], "add_generation_prompt": agp}
                try:
                    r = tok.apply_chat_template(c["messages"], tools=c.get("tools"), chat_template=template,
                                                add_generation_prompt=agp, tokenize=False)
                    case["rendered"] = r
                except Exception as e:
                    case["error"] = "%s: %s" % (type(e).__name__, e)
                cases.append(case)
        out["templates"][fam] = {"tokenizer": tokname, "template_file": tfile, "bos_token": tok.bos_token,
                                 "eos_token": tok.eos_token, "cases": cases}
        print(fam, "rendered", sum("rendered" in c for c in cases), "errors", sum("error" in c for c in cases), flush=True)
    return out

if __name__ == "__main__":
    main()
