// Serving benchmark for `moeinfer serve` (issue 5 item 7): replays a seeded mix of prompt/output lengths as
// streaming /v1/completions requests from N closed-loop clients per concurrency level, and prints a markdown
// table of throughput, TTFT and inter-token latency. Node 20+, built-in fetch only. Usage: see bench/serve/README.md.

import { parseArgs } from 'node:util';
import { performance } from 'node:perf_hooks';

const { values: opt } = parseArgs({
    options: {
        url: { type: 'string', default: 'http://127.0.0.1:8080' },
        'api-key': { type: 'string', default: '' },
        model: { type: 'string', default: '' },  // empty: whatever /v1/models lists first
        levels: { type: 'string', default: '1,4,16,64' },
        // Requests per level: a fixed count (closed loop runs until all are done) ...
        requests: { type: 'string', default: '' },  // '' = max(min-requests, per-client * level)
        'min-requests': { type: 'string', default: '32' },
        'per-client': { type: 'string', default: '8' },
        // ... unless this many seconds pass first; then clients stop issuing and in-flight requests finish.
        'max-seconds': { type: 'string', default: '60' },
        'prompt-len': { type: 'string', default: '16-400' },
        'output-len': { type: 'string', default: '16-128' },
        // Token ids are drawn from [3, max-token-id): the id model needs no tokenizer, and small ids are valid in any
        // vocabulary used here (the golden test models have 512 entries).
        'max-token-id': { type: 'string', default: '500' },
        seed: { type: 'string', default: '1' },
        warmup: { type: 'string', default: '2' },
        json: { type: 'string', default: '' },  // optional path: every request's record, for later analysis
    },
});

const int = (k) => {
    const v = Number(opt[k]);
    if (!Number.isInteger(v) || v < 0) throw new Error(`--${k} must be a non-negative integer, got '${opt[k]}'`);
    return v;
};
const range = (k) => {
    const m = /^(\d+)-(\d+)$/.exec(opt[k]);
    if (!m || +m[1] < 1 || +m[1] > +m[2]) throw new Error(`--${k} must be LO-HI with 1 <= LO <= HI, got '${opt[k]}'`);
    return [+m[1], +m[2]];
};

const BASE = opt.url.replace(/\/$/, '');
const HEADERS = { 'Content-Type': 'application/json' };
if (opt['api-key']) HEADERS.Authorization = `Bearer ${opt['api-key']}`;
const LEVELS = opt.levels.split(',').map(Number);
if (LEVELS.some((c) => !Number.isInteger(c) || c < 1)) throw new Error(`bad --levels '${opt.levels}'`);
const [P_LO, P_HI] = range('prompt-len');
const [O_LO, O_HI] = range('output-len');
const MAX_ID = int('max-token-id');
const SEED = int('seed');
const MAX_SECONDS = Number(opt['max-seconds']);

// mulberry32: small, seedable, and the same on every machine, so a workload is named by its seed alone.
function rng(seed) {
    let a = seed >>> 0;
    return () => {
        a = (a + 0x6d2b79f5) >>> 0;
        let t = a;
        t = Math.imul(t ^ (t >>> 15), t | 1);
        t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
        return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
    };
}
const uniform = (r, lo, hi) => lo + Math.floor(r() * (hi - lo + 1));

// The request plan of one level. Each level gets its own stream (seed, level) so no prompt repeats across levels:
// a repeat would be answered from the prefix cache and flatter the later level's TTFT. Random ids also keep
// prompts within a level from sharing full KV blocks, so the cache plays no part (this measures cold prefill).
function plan(level, count, maxLen) {
    const r = rng(SEED * 1000003 + level);
    const reqs = [];
    let clamped = 0;
    for (let i = 0; i < count; i++) {
        const out = uniform(r, O_LO, O_HI);
        let plen = uniform(r, P_LO, P_HI);
        if (plen + out > maxLen) { plen = Math.max(1, maxLen - out); clamped++; }  // stay inside the context
        const prompt = Array.from({ length: plen }, () => uniform(r, 3, MAX_ID - 1));
        reqs.push({ prompt, max_tokens: out });
    }
    return { reqs, clamped };
}

// One streaming request. TTFT: send → first SSE event carrying a token. ITL: gaps between successive token-carrying
// events; an event carrying k > 1 tokens (the server coalesces what a slow reader has not taken yet) counts as k
// samples of gap/k, so there is one sample per token after the first event and their sum is the decode time.
async function oneRequest(model, req) {
    const body = {
        model, prompt: req.prompt, max_tokens: req.max_tokens, temperature: 0, ignore_eos: true, stream: true,
        return_token_ids: true,  // exact token counts per event, whether or not text decodes to whole characters
    };
    const rec = { prompt_tokens: req.prompt.length, planned: req.max_tokens, tokens: 0, multi: 0, ttft: null, itl: [], status: 0, error: null };
    const t0 = performance.now();
    let last = t0;
    try {
        const res = await fetch(`${BASE}/v1/completions`, { method: 'POST', headers: HEADERS, body: JSON.stringify(body) });
        rec.status = res.status;
        if (res.status !== 200) {
            rec.error = `HTTP ${res.status}: ${(await res.text()).slice(0, 200)}`;
            rec.e2e = performance.now() - t0;
            return rec;
        }
        const dec = new TextDecoder();
        let buf = '';
        let done = false;
        for await (const chunk of res.body) {
            buf += dec.decode(chunk, { stream: true });
            let cut;
            while ((cut = buf.indexOf('\n\n')) >= 0) {
                const event = buf.slice(0, cut);
                buf = buf.slice(cut + 2);
                for (const line of event.split('\n')) {
                    if (!line.startsWith('data: ')) continue;
                    const data = line.slice(6);
                    if (data === '[DONE]') { done = true; continue; }
                    const msg = JSON.parse(data);
                    if (msg.error) { rec.error = `stream error: ${JSON.stringify(msg.error).slice(0, 200)}`; continue; }
                    const k = (msg.choices ?? []).reduce((s, c) => s + (c.token_ids?.length ?? 0), 0);
                    if (k === 0) continue;
                    const now = performance.now();
                    if (k > 1) rec.multi++;
                    if (rec.ttft === null) {
                        rec.ttft = now - t0;
                        // Tokens that came along with the first are not separately timed: one sample each of 0
                        // would drag the percentiles down, so they are left out.
                    } else {
                        for (let j = 0; j < k; j++) rec.itl.push((now - last) / k);
                    }
                    last = now;
                    rec.tokens += k;
                }
            }
        }
        if (!done && !rec.error) rec.error = 'stream ended without [DONE]';
        if (!rec.error && rec.tokens !== rec.planned) rec.error = `got ${rec.tokens} tokens, planned ${rec.planned}`;
    } catch (e) {
        rec.error = `${e.name}: ${e.message}${e.cause ? ` (${e.cause.code ?? e.cause.message})` : ''}`;
    }
    rec.e2e = performance.now() - t0;
    return rec;
}

// Nearest-rank percentile: always an observed value, no interpolation between samples.
function pct(sorted, p) {
    if (sorted.length === 0) return NaN;
    return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))];
}

// Closed loop: `level` clients, each takes the next planned request as soon as its previous one finishes.
async function runLevel(model, level, reqs) {
    let next = 0;
    const recs = [];
    const t0 = performance.now();
    const deadline = t0 + MAX_SECONDS * 1000;
    async function client() {
        while (next < reqs.length && performance.now() < deadline) {
            const req = reqs[next++];
            recs.push(await oneRequest(model, req));
        }
    }
    await Promise.all(Array.from({ length: level }, client));
    return { recs, seconds: (performance.now() - t0) / 1000 };
}

async function main() {
    const mres = await fetch(`${BASE}/v1/models`, { headers: HEADERS });
    if (mres.status !== 200) throw new Error(`GET /v1/models: HTTP ${mres.status}`);
    const models = (await mres.json()).data;
    const model = opt.model || models[0].id;
    const maxLen = models.find((m) => m.id === model)?.max_model_len ?? Infinity;

    // Warm-up requests (not measured): first-touch page faults of weights and KV, thread pool start.
    const warm = plan(0, int('warmup'), maxLen).reqs;
    for (const r of warm) {
        const rec = await oneRequest(model, r);
        if (rec.error) throw new Error(`warm-up request failed: ${rec.error}`);
    }

    const rows = [];
    const all = [];
    const notes = [];
    for (const level of LEVELS) {
        const count = opt.requests ? int('requests') : Math.max(int('min-requests'), int('per-client') * level);
        const { reqs, clamped } = plan(level, count, maxLen);
        if (clamped) notes.push(`c=${level}: ${clamped} prompt(s) shortened to fit max_model_len ${maxLen}`);
        const { recs, seconds } = await runLevel(model, level, reqs);
        const ok = recs.filter((r) => !r.error);
        const bad = recs.filter((r) => r.error);
        const n5xx = recs.filter((r) => r.status >= 500).length;
        for (const r of bad.slice(0, 3)) notes.push(`c=${level}: ${r.error}`);
        const multi = ok.reduce((s, r) => s + r.multi, 0);
        if (multi) notes.push(`c=${level}: ${multi} SSE event(s) carried more than one token (ITL split evenly over them)`);
        if (recs.length < reqs.length) notes.push(`c=${level}: stopped at --max-seconds ${MAX_SECONDS} after ${recs.length}/${reqs.length} requests`);
        const ttft = ok.map((r) => r.ttft).sort((a, b) => a - b);
        const itl = ok.flatMap((r) => r.itl).sort((a, b) => a - b);
        const e2e = ok.map((r) => r.e2e).sort((a, b) => a - b);
        const outTok = ok.reduce((s, r) => s + r.tokens, 0);
        const inTok = ok.reduce((s, r) => s + r.prompt_tokens, 0);
        rows.push({
            level, done: ok.length, errors: bad.length, n5xx, seconds, inTok, outTok,
            rps: ok.length / seconds, otps: outTok / seconds, tps: (inTok + outTok) / seconds,
            ttft: [50, 90, 99].map((p) => pct(ttft, p)), itl: [50, 90, 99].map((p) => pct(itl, p)),
            e2e50: pct(e2e, 50),
        });
        for (const r of recs) all.push({ level, ...r });
        process.stderr.write(`c=${level}: ${ok.length} ok, ${bad.length} failed, ${seconds.toFixed(1)} s\n`);
    }

    const f = (x, d = 1) => (Number.isFinite(x) ? x.toFixed(d) : '–');
    console.log(`model \`${model}\`, prompt ${P_LO}–${P_HI} tokens, output ${O_LO}–${O_HI} tokens (ignore_eos), ` +
        `greedy, streaming, seed ${SEED}; times in ms`);
    console.log('');
    console.log('| clients | requests ok | errors (5xx) | wall s | req/s | output tok/s | prompt+output tok/s | TTFT p50 | TTFT p90 | TTFT p99 | ITL p50 | ITL p90 | ITL p99 | latency p50 |');
    console.log('|---|---|---|---|---|---|---|---|---|---|---|---|---|---|');
    for (const r of rows) {
        console.log(`| ${r.level} | ${r.done} | ${r.errors} (${r.n5xx}) | ${f(r.seconds)} | ${f(r.rps, 2)} | ${f(r.otps, 0)} | ${f(r.tps, 0)} | ` +
            `${r.ttft.map((x) => f(x)).join(' | ')} | ${r.itl.map((x) => f(x, 2)).join(' | ')} | ${f(r.e2e50, 0)} |`);
    }
    if (notes.length) {
        console.log('');
        for (const n of notes) console.log(`- ${n}`);
    }
    if (opt.json) {
        const { writeFileSync } = await import('node:fs');
        writeFileSync(opt.json, all.map((r) => JSON.stringify(r)).join('\n') + '\n');
    }
    // Non-zero exit when any request failed, so run.sh and CI notice; the table is printed regardless.
    process.exitCode = rows.some((r) => r.errors > 0) ? 2 : 0;
}

main().catch((e) => {
    console.error(`bench_serve: ${e.message}`);
    process.exit(1);
});
