#!/usr/bin/env python3
"""PyTorch + transformers on exactly the phases and shapes of `epgrpo bench`.

A randomly initialised SmolLM2-135M-shaped Llama (vocab 49,152, hidden 576, intermediate 1,536,
9 query / 3 KV heads, tied embeddings), f32, on the CPU:

- train step: forward over B sequences of T tokens (T/2 prompt, T/2 answer; the model reads the
  first T - 1), the head on the answer positions only, log-prob + entropy of every answer token,
  loss = -mean(log-prob), backward, AdamW (lr 1e-5, no weight decay);
- scoring: the same forward, log-prob + entropy, without a graph;
- prefill: one prompt of T/2 tokens through the KV cache, the head on its last position;
- decode: the prompt's cache repeated G times, G rows x N new tokens sampled at temperature 1
  (time of prefill + N decode steps, minus the prefill).

Tokens per second count what `epgrpo bench` counts: every position of the training / scoring
batch (B x (T - 1)), the prompt's tokens for prefill, and G x N new tokens for decode. Each time
is the median of --repeats timed calls after one warm-up call.

Usage: python3 scripts/peer/bench_transformers.py [--threads 2] [--layers 30] [--repeats 2]
Needs: pip install torch transformers (see docs/performance.md for the versions measured).
"""

import argparse
import statistics
import time

import torch
import transformers
from transformers import LlamaConfig, LlamaForCausalLM
from transformers.cache_utils import DynamicCache


def smollm2_shape(layers):
    return LlamaConfig(
        vocab_size=49152,
        hidden_size=576,
        intermediate_size=1536,
        num_hidden_layers=layers,
        num_attention_heads=9,
        num_key_value_heads=3,
        rms_norm_eps=1e-5,
        rope_theta=100000.0,
        tie_word_embeddings=True,
        max_position_embeddings=8192,
        torch_dtype=torch.float32,
    )


def timed(repeats, f):
    f()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        f()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def ids(n, offset):
    # The token ids of `epgrpo bench`.
    return [(i * 7919 + offset) % 49152 for i in range(n)]


def logp_entropy(model, inputs, targets, prompt):
    hidden = model.model(input_ids=inputs).last_hidden_state
    logits = model.lm_head(hidden[:, prompt - 1 :, :])
    logp_all = torch.log_softmax(logits.float(), dim=-1)
    logp = logp_all.gather(-1, targets.unsqueeze(-1)).squeeze(-1)
    entropy = -(logp_all.exp() * logp_all).sum(-1)
    return logp, entropy


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--seq", type=int, default=256)
    parser.add_argument("--group", type=int, default=8)
    parser.add_argument("--new-tokens", type=int, default=32)
    parser.add_argument("--layers", type=int, default=30)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)

    b, t = args.batch, args.seq
    prompt_len, answer_len = t // 2, t - t // 2
    model = LlamaForCausalLM(smollm2_shape(args.layers)).float()
    sequences = torch.tensor(
        [ids(prompt_len, r) + ids(answer_len, 1000 + r) for r in range(b)]
    )
    inputs, targets = sequences[:, :-1], sequences[:, prompt_len:]
    tokens = b * (t - 1)

    optim = torch.optim.AdamW(model.parameters(), lr=1e-5, weight_decay=0.0)

    def train_step():
        optim.zero_grad(set_to_none=True)
        logp, _ = logp_entropy(model, inputs, targets, prompt_len)
        (-logp.mean()).backward()
        optim.step()

    model.train()
    train_s = timed(args.repeats, train_step)
    model.eval()

    def score():
        with torch.inference_mode():
            logp, entropy = logp_entropy(model, inputs, targets, prompt_len)
            (logp.sum() + entropy.sum()).item()

    score_s = timed(args.repeats, score)

    prompt = torch.tensor([ids(prompt_len, 0)])
    generator = torch.Generator().manual_seed(0)

    def sample(logits):
        probs = torch.softmax(logits.float(), dim=-1)
        return torch.multinomial(probs, 1, generator=generator)

    def generate(new_tokens):
        with torch.inference_mode():
            cache = DynamicCache()
            out = model.model(input_ids=prompt, cache=cache, use_cache=True)
            logits = model.lm_head(out.last_hidden_state[:, -1, :])
            logits = logits.expand(args.group, -1)
            cache.batch_repeat_interleave(args.group)
            next_tokens = sample(logits)
            for _ in range(new_tokens - 1):
                out = model.model(input_ids=next_tokens, cache=cache, use_cache=True)
                next_tokens = sample(model.lm_head(out.last_hidden_state[:, -1, :]))

    prefill_s = timed(args.repeats, lambda: generate(1))
    decode_s = timed(args.repeats, lambda: generate(args.new_tokens + 1)) - prefill_s
    new = args.group * args.new_tokens

    print(
        f"PyTorch {torch.__version__} + transformers {transformers.__version__}, "
        f"{torch.get_num_threads()} threads; SmolLM2-135M shape, {args.layers} layers, "
        "random weights, f32; tokens/s counts every position of the batch"
    )
    print("| phase | shape | time | tokens/s |\n|---|---|---|---|")
    print(
        f"| train step (fwd + bwd + AdamW) | B={b}, T={t}, loss on {b * answer_len} answer tokens "
        f"| {train_s:.3f} s | {tokens / train_s:.1f} |"
    )
    print(
        f"| scoring (log-prob + entropy, no graph) | B={b}, T={t} | {score_s:.3f} s "
        f"| {tokens / score_s:.1f} |"
    )
    print(
        f"| prefill | 1 prompt × {prompt_len} tokens | {prefill_s:.3f} s "
        f"| {prompt_len / prefill_s:.1f} |"
    )
    print(
        f"| decode, KV cache | G={args.group} × {args.new_tokens} new tokens | {decode_s:.3f} s "
        f"| {new / max(decode_s, 1e-9):.1f} |"
    )


if __name__ == "__main__":
    main()
