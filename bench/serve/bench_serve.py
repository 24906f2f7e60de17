#!/usr/bin/env python3
# Python twin of bench_serve.mjs for machines without Node (the GPU machine): the same seeded workload (mulberry32,
# token-id prompts, ignore_eos, streaming /v1/completions; temperature 0 unless --temperature, then seeded per
# request), closed-loop clients per concurrency level, and the same table: requests/s, output tokens/s, TTFT and
# inter-token latency p50/p90/p99.
# Needs aiohttp. Usage: python3 bench/serve/bench_serve.py --url http://127.0.0.1:8080 --levels 1,16,64,256
import argparse
import asyncio
import json
import time

import aiohttp


def mulberry32(seed):
    a = seed & 0xFFFFFFFF

    def nxt():
        nonlocal a
        a = (a + 0x6D2B79F5) & 0xFFFFFFFF
        t = a
        t = ((t ^ (t >> 15)) * (t | 1)) & 0xFFFFFFFF
        t ^= (t + (((t ^ (t >> 7)) * (t | 61)) & 0xFFFFFFFF)) & 0xFFFFFFFF
        return ((t ^ (t >> 14)) & 0xFFFFFFFF) / 4294967296
    return nxt


def plan(args, level, count, max_len):
    r = mulberry32(args.seed * 1000003 + level)
    uni = lambda lo, hi: lo + int(r() * (hi - lo + 1))
    p_lo, p_hi = map(int, args.prompt_len.split("-"))
    o_lo, o_hi = map(int, args.output_len.split("-"))
    reqs = []
    for _ in range(count):
        out = uni(o_lo, o_hi)
        plen = min(uni(p_lo, p_hi), max(1, max_len - out))
        reqs.append(dict(prompt=[uni(3, args.max_token_id - 1) for _ in range(plen)], max_tokens=out,
                         temperature=args.temperature, top_p=args.top_p, top_k=args.top_k,
                         frequency_penalty=args.frequency_penalty, seed=len(reqs)))
    return reqs


async def one(session, url, model, req):
    body = dict(model=model, prompt=req["prompt"], max_tokens=req["max_tokens"], temperature=req["temperature"],
                top_p=req["top_p"], top_k=req["top_k"], frequency_penalty=req["frequency_penalty"], ignore_eos=True,
                stream=True, return_token_ids=True, seed=req["seed"])
    rec = dict(tokens=0, ttft=None, itl=[], error=None)
    t0 = last = time.perf_counter()
    try:
        async with session.post(url + "/v1/completions", json=body) as res:
            if res.status != 200:
                rec["error"] = f"HTTP {res.status}: {(await res.text())[:200]}"
                return rec
            buf = b""
            async for chunk in res.content.iter_any():
                buf += chunk
                while b"\n\n" in buf:
                    event, buf = buf.split(b"\n\n", 1)
                    for line in event.split(b"\n"):
                        if not line.startswith(b"data: ") or line == b"data: [DONE]":
                            continue
                        msg = json.loads(line[6:])
                        k = sum(len(c.get("token_ids") or []) for c in msg.get("choices", []))
                        if k == 0:
                            continue
                        now = time.perf_counter()
                        if rec["ttft"] is None:
                            rec["ttft"] = now - t0
                        else:
                            rec["itl"] += [(now - last) / k] * k
                        last = now
                        rec["tokens"] += k
    except Exception as e:  # noqa: BLE001 - any failure is reported per request
        rec["error"] = repr(e)
    if rec["error"] is None and rec["tokens"] != req["max_tokens"]:
        rec["error"] = f"got {rec['tokens']} tokens, planned {req['max_tokens']}"
    return rec


def pct(v, q):
    if not v:
        return float("nan")
    v = sorted(v)
    return v[min(len(v) - 1, int(q * len(v)))]


async def level_run(args, session, model, max_len, level):
    count = max(args.min_requests, args.per_client * level)
    reqs = plan(args, level, count, max_len)
    recs, nxt, t0 = [], 0, time.perf_counter()

    async def client():
        nonlocal nxt
        while nxt < len(reqs) and time.perf_counter() - t0 < args.max_seconds:
            req = reqs[nxt]
            nxt += 1
            recs.append(await one(session, args.url, model, req))
    await asyncio.gather(*(client() for _ in range(level)))
    wall = time.perf_counter() - t0
    ok = [r for r in recs if r["error"] is None]
    toks = sum(r["tokens"] for r in ok)
    ttft = [r["ttft"] * 1e3 for r in ok if r["ttft"] is not None]
    itl = [x * 1e3 for r in ok for x in r["itl"]]
    errors = [r["error"] for r in recs if r["error"]]
    print(f"| {level} | {len(ok)} | {len(ok) / wall:.2f} | {toks / wall:.1f} | {pct(ttft, .5):.1f} | {pct(ttft, .9):.1f} | "
          f"{pct(ttft, .99):.1f} | {pct(itl, .5):.2f} | {pct(itl, .9):.2f} | {pct(itl, .99):.2f} | {len(errors)} |",
          flush=True)
    for e in errors[:3]:
        print("  error:", e, flush=True)
    return len(errors)


async def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--url", default="http://127.0.0.1:8080")
    ap.add_argument("--levels", default="1,4,16,64")
    ap.add_argument("--min-requests", type=int, default=32)
    ap.add_argument("--per-client", type=int, default=4)
    ap.add_argument("--max-seconds", type=float, default=60)
    ap.add_argument("--prompt-len", default="16-400")
    ap.add_argument("--output-len", default="16-128")
    ap.add_argument("--max-token-id", type=int, default=500)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--temperature", type=float, default=0.0, help="0: greedy (the Node client's workload)")
    ap.add_argument("--top-p", type=float, default=1.0)
    ap.add_argument("--top-k", type=int, default=0, help="0: off")
    ap.add_argument("--frequency-penalty", type=float, default=0.0)
    args = ap.parse_args()
    timeout = aiohttp.ClientTimeout(total=None, sock_read=600)
    async with aiohttp.ClientSession(timeout=timeout, connector=aiohttp.TCPConnector(limit=0)) as session:
        async with session.get(args.url + "/v1/models") as res:
            m = (await res.json())["data"][0]
        model, max_len = m["id"], m.get("max_model_len", 4096)
        for req in plan(args, 0, args.warmup, max_len):
            await one(session, args.url, model, req)
        print(f"model {model}; prompts {args.prompt_len}, outputs {args.output_len} tokens; seed {args.seed}; "
              f"temperature {args.temperature}, top_p {args.top_p}, top_k {args.top_k}, "
              f"frequency_penalty {args.frequency_penalty}")
        print("| clients | requests | req/s | output tok/s | TTFT p50 ms | p90 | p99 | ITL p50 ms | p90 | p99 | errors |")
        print("|---|---|---|---|---|---|---|---|---|---|---|")
        failed = 0
        for level in map(int, args.levels.split(",")):
            failed += await level_run(args, session, model, max_len, level)
    raise SystemExit(2 if failed else 0)


if __name__ == "__main__":
    asyncio.run(main())
