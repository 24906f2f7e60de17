#!/usr/bin/env python3
# Trains the demo model shipped in models/demo: a byte-level BPE tokenizer and a small Qwen3-MoE on the public
# corpus made by scripts/prepare_demo_corpus.sh. Runs on the GPU machine via scripts/device_train_demo.sh.
import argparse
import json
import math
import os
import time

import torch
import torch.nn.functional as F
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import AutoModelForCausalLM, GenerationConfig, Qwen3MoeConfig

SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]  # ids 0, 1, 2
EOT_ID, IM_END_ID = 0, 2
# ChatML, as Qwen's templates write it; the model never saw chat data, so this only frames a prompt.
CHAT_TEMPLATE = (
    "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>\\n' }}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}")


def log(f, msg):
    print(msg, flush=True)
    f.write(msg + "\n")
    f.flush()


def train_tokenizer(docs, vocab_size):
    tok = Tokenizer(models.BPE())
    # GPT-2's pre-tokenizer regex + byte mapping: every byte string is encodable, and moeinfer and llama.cpp know
    # it as GGUF pre "default"/"gpt2".
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, min_frequency=2, special_tokens=SPECIALS,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator(docs, trainer)
    return tok


def tokenizer_config(max_len):
    return {
        "tokenizer_class": "PreTrainedTokenizerFast",
        "bos_token": None,
        "eos_token": "<|endoftext|>",
        "pad_token": "<|endoftext|>",
        "unk_token": None,
        "add_bos_token": False,
        "add_eos_token": False,
        "clean_up_tokenization_spaces": False,
        "model_max_length": max_len,
        "chat_template": CHAT_TEMPLATE,
    }


@torch.no_grad()
def perplexity(model, ids, ctx, max_chunks=None):
    """What `moeinfer perplexity` computes: non-overlapping windows of ctx tokens (a final partial window is
    dropped), each run from an empty cache; every token after the first of a window is scored; exp(mean NLL)."""
    n_chunks = len(ids) // ctx
    if max_chunks:
        n_chunks = min(n_chunks, max_chunks)
    nll, count = 0.0, 0
    for c in range(n_chunks):
        x = torch.tensor(ids[c * ctx:(c + 1) * ctx], device="cuda")[None]
        logits = model(input_ids=x).logits[0].double()
        nll += F.cross_entropy(logits[:-1], x[0, 1:], reduction="sum").item()
        count += ctx - 1
    return math.exp(nll / count), n_chunks, count


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--corpus", required=True, help="folder with train.txt (docs split by <|endoftext|>)")
    ap.add_argument("--heldout", required=True, help="plain held-out text (models/demo/heldout.txt)")
    ap.add_argument("--out", required=True)
    ap.add_argument("--minutes", type=float, default=5.0, help="training time budget")
    ap.add_argument("--steps", type=int, default=0, help="fixed step count (overrides --minutes) to reproduce")
    ap.add_argument("--vocab", type=int, default=8192)
    ap.add_argument("--seq", type=int, default=512)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--seed", type=int, default=1234)
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    lf = open(os.path.join(args.out, "train_log.txt"), "w")
    torch.manual_seed(args.seed)
    torch.backends.cuda.matmul.allow_tf32 = False  # the PPL reference must be plain fp32
    torch.backends.cudnn.allow_tf32 = False

    t0 = time.time()
    with open(os.path.join(args.corpus, "train.txt"), encoding="utf-8") as f:
        docs = f.read().split("<|endoftext|>")
    with open(args.heldout, encoding="utf-8") as f:
        heldout_text = f.read()
    tok = train_tokenizer(docs, args.vocab)
    tok.save(os.path.join(args.out, "tokenizer.json"))
    with open(os.path.join(args.out, "tokenizer_config.json"), "w") as f:
        json.dump(tokenizer_config(args.seq), f, indent=2)
    train_ids = []
    for enc in tok.encode_batch(docs, add_special_tokens=False):
        train_ids += enc.ids + [EOT_ID]  # documents separated by <|endoftext|>, as the model will see them
    held_ids = tok.encode(heldout_text, add_special_tokens=False).ids
    log(lf, f"tokenizer: vocab {tok.get_vocab_size()}, train {len(train_ids)} tokens ({len(docs)} docs), "
            f"held-out {len(held_ids)} tokens, {time.time() - t0:.1f}s")

    cfg = Qwen3MoeConfig(
        vocab_size=tok.get_vocab_size(), hidden_size=256, num_hidden_layers=5, num_attention_heads=4,
        num_key_value_heads=2, head_dim=64, intermediate_size=768, moe_intermediate_size=192, num_experts=8,
        num_experts_per_tok=2, norm_topk_prob=True, decoder_sparse_step=1, mlp_only_layers=[],
        max_position_embeddings=args.seq, rms_norm_eps=1e-6, tie_word_embeddings=True, use_sliding_window=False,
        rope_parameters=dict(rope_type="default", rope_theta=10000.0), router_aux_loss_coef=0.01,
        output_router_logits=False, bos_token_id=EOT_ID, eos_token_id=EOT_ID, pad_token_id=EOT_ID,
        attention_dropout=0.0)
    model = AutoModelForCausalLM.from_config(cfg, dtype=torch.float32, attn_implementation="sdpa").cuda()
    n_params = sum(p.numel() for p in model.parameters())
    log(lf, f"model: qwen3_moe, {n_params / 1e6:.2f}M parameters, config {json.dumps(cfg.to_diff_dict(), default=str)}")

    data = torch.tensor(train_ids, dtype=torch.long, device="cuda")
    held = torch.tensor(held_ids, dtype=torch.long, device="cuda")
    n_held = (len(held) - 1) // args.seq
    held_x = held[: n_held * args.seq + 1]
    decay = [p for n, p in model.named_parameters() if p.dim() >= 2]
    no_decay = [p for n, p in model.named_parameters() if p.dim() < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.1}, {"params": no_decay, "weight_decay": 0.0}],
                            lr=args.lr, betas=(0.9, 0.95), fused=True)
    gen = torch.Generator(device="cuda").manual_seed(args.seed)
    span = torch.arange(args.seq + 1, device="cuda")
    warmup = 200
    budget = args.minutes * 60

    def lr_at(frac):  # linear warmup, cosine to 10% of peak over the (time or step) budget
        return args.lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(frac, 1.0))))

    @torch.no_grad()
    def heldout_loss():
        model.eval()
        tot = 0.0
        for i in range(0, n_held, 64):
            rows = range(i, min(i + 64, n_held))
            x = torch.stack([held_x[r * args.seq:(r + 1) * args.seq + 1] for r in rows])
            with torch.autocast("cuda", dtype=torch.bfloat16):
                logits = model(input_ids=x[:, :-1]).logits
            tot += F.cross_entropy(logits.float().reshape(-1, logits.shape[-1]), x[:, 1:].reshape(-1),
                                   reduction="sum").item()
        model.train()
        return tot / (n_held * args.seq)

    best, best_state, best_step = float("inf"), None, 0
    step, t_train = 0, time.time()
    model.train()
    while True:
        elapsed = time.time() - t_train
        frac = step / args.steps if args.steps else elapsed / budget
        if frac >= 1.0:
            break
        lr = args.lr * min(1.0, (step + 1) / warmup) * lr_at(frac) / args.lr
        for g in opt.param_groups:
            g["lr"] = lr
        off = torch.randint(0, len(data) - args.seq - 1, (args.batch, 1), device="cuda", generator=gen)
        x = data[off + span]  # [batch, seq + 1] random windows of the token stream
        with torch.autocast("cuda", dtype=torch.bfloat16):
            out = model(input_ids=x[:, :-1], output_router_logits=True)
            ce = F.cross_entropy(out.logits.float().reshape(-1, out.logits.shape[-1]), x[:, 1:].reshape(-1))
            aux = out.aux_loss if out.aux_loss is not None else torch.zeros((), device="cuda")
            loss = ce + cfg.router_aux_loss_coef * aux  # load-balancing loss keeps all 8 experts in use
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        step += 1
        if step % 100 == 0 or step == args.steps:
            hl = heldout_loss()
            tag = ""
            if hl < best:  # keep the best held-out checkpoint: the corpus is small enough to overfit
                best, best_step, tag = hl, step, " *"
                best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
            log(lf, f"step {step:6d}  {time.time() - t_train:6.1f}s  lr {lr:.2e}  train {ce.item():.4f}  "
                    f"aux {aux.item():.3f}  held-out {hl:.4f}{tag}")
    log(lf, f"trained {step} steps x {args.batch} x {args.seq} tokens in {time.time() - t_train:.1f}s; "
            f"best held-out loss {best:.4f} at step {best_step} (rerun with --steps {step} to reproduce)")
    model.load_state_dict(best_state)

    model.to(torch.bfloat16).save_pretrained(args.out, safe_serialization=True)
    GenerationConfig(bos_token_id=EOT_ID, eos_token_id=[EOT_ID, IM_END_ID], pad_token_id=EOT_ID, do_sample=True,
                     temperature=0.8, top_p=0.95).save_pretrained(args.out)

    # The reference figures come from the saved bf16 weights computed in fp32, as the engine does.
    ref = AutoModelForCausalLM.from_pretrained(args.out, dtype=torch.float32, attn_implementation="eager").cuda()
    ref.eval()
    results = {"parameters": n_params, "steps": step, "best_step": best_step, "heldout_loss_bf16": best,
               "train_tokens": len(train_ids), "heldout_tokens": len(held_ids), "ppl": []}
    for ctx, chunks in ((512, None), (256, 8), (128, 4)):
        ppl, n, cnt = perplexity(ref, held_ids, ctx, chunks)
        results["ppl"].append({"ctx": ctx, "chunks": n, "scored_tokens": cnt, "ppl": ppl})
        log(lf, f"pytorch fp32 perplexity: ctx {ctx}, {n} chunks, {cnt} scored tokens: PPL = {ppl:.6f}")
    prompt = "The old man looked at the"
    ids = torch.tensor([tok.encode(prompt).ids], device="cuda")
    g = ref.generate(input_ids=ids, attention_mask=torch.ones_like(ids), do_sample=False, max_new_tokens=48)
    results["greedy_sample"] = prompt + tok.decode(g[0, ids.shape[1]:].tolist())
    log(lf, "greedy sample: " + repr(results["greedy_sample"]))
    with open(os.path.join(args.out, "results.json"), "w") as f:
        json.dump(results, f, indent=2)
    log(lf, f"total {time.time() - t0:.1f}s")


if __name__ == "__main__":
    main()
