#!/usr/bin/env python3
"""transformers `generate` on exactly the shapes, rows and lengths of `epgrpo bench rollout`.

A randomly initialised decoder of the chosen shape (SmolLM2-135M, Qwen2.5-0.5B or Qwen2.5-1.5B),
sdpa attention, bf16 or f32. For each batch size, rows = prompts x G: the prompts are distinct,
of the lengths `epgrpo bench rollout` uses (mean +- mean/8, left-padded), each sampled G times
(`num_return_sequences`) at temperature 1 (top-k off, optional top-p), with no stop token
(`min_new_tokens` = `max_new_tokens`), so that every row decodes every token.

Columns as in `epgrpo bench rollout`: prefill s (time of prefill + 1 token), ms per token step
((time of prefill + N tokens - prefill time) / (N - 1)), new tokens/s (rows / step time), MB read
per step (weights of the layers and the head + the KV cache at the mean context, in the chosen
dtype) and that divided by step time and --bandwidth-gbs.

Usage: python3 scripts/peer/bench_generate.py --shape qwen2.5-0.5b --rows 64,128,256,512 \
           --prompt-len 256 --new-tokens 512 --dtype bf16 --device cuda
Needs: pip install torch transformers.
"""

import argparse
import statistics
import time

import torch
from transformers import LlamaConfig, LlamaForCausalLM, Qwen2Config, Qwen2ForCausalLM

SHAPES = {
    "smollm2-135m": (
        LlamaConfig,
        LlamaForCausalLM,
        dict(
            vocab_size=49152,
            hidden_size=576,
            intermediate_size=1536,
            num_hidden_layers=30,
            num_attention_heads=9,
            num_key_value_heads=3,
            rms_norm_eps=1e-5,
            rope_theta=100000.0,
            tie_word_embeddings=True,
            max_position_embeddings=8192,
        ),
    ),
    "qwen2.5-0.5b": (
        Qwen2Config,
        Qwen2ForCausalLM,
        dict(
            vocab_size=151936,
            hidden_size=896,
            intermediate_size=4864,
            num_hidden_layers=24,
            num_attention_heads=14,
            num_key_value_heads=2,
            rms_norm_eps=1e-6,
            rope_theta=1000000.0,
            tie_word_embeddings=True,
            max_position_embeddings=32768,
        ),
    ),
    "qwen2.5-1.5b": (
        Qwen2Config,
        Qwen2ForCausalLM,
        dict(
            vocab_size=151936,
            hidden_size=1536,
            intermediate_size=8960,
            num_hidden_layers=28,
            num_attention_heads=12,
            num_key_value_heads=2,
            rms_norm_eps=1e-6,
            rope_theta=1000000.0,
            tie_word_embeddings=True,
            max_position_embeddings=32768,
        ),
    ),
}

HEADER = (
    "| engine | shape | rows | prompt lens | new tokens | prefill s | ms / token step "
    "| new tokens/s | MB read / step | bandwidth bound |\n|---|---|---|---|---|---|---|---|---|---|"
)


def prompt_lengths(prompts, mean):
    # The lengths of `epgrpo bench rollout` (bench_rollout.rs, `prompt_lengths`).
    spread = mean // 8
    return [max(1, mean - spread + (i * 37) % (2 * spread + 1)) for i in range(prompts)]


def left_padded(lengths, vocab, pad, device):
    width = max(lengths)
    ids = torch.full((len(lengths), width), pad, dtype=torch.long)
    mask = torch.zeros((len(lengths), width), dtype=torch.long)
    for p, n in enumerate(lengths):
        ids[p, width - n :] = torch.tensor([(j * 7919 + p * 104729 + 1) % vocab for j in range(n)])
        mask[p, width - n :] = 1
    return ids.to(device), mask.to(device)


def timed(repeats, device, f):
    def once():
        if device.type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        f()
        if device.type == "cuda":
            torch.cuda.synchronize()
        return time.perf_counter() - start

    once()
    return statistics.median(once() for _ in range(repeats))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--shape", choices=sorted(SHAPES), default="smollm2-135m")
    ap.add_argument("--layers", type=int, help="decoder layers instead of the shape's own count")
    ap.add_argument("--rows", default=None, help="comma-separated; default 8 on cpu, 64,128,256,512 on cuda")
    ap.add_argument("--group", type=int, default=8, help="samples per prompt (G)")
    ap.add_argument("--prompt-len", type=int, default=None, help="default 32 on cpu, 256 on cuda")
    ap.add_argument("--new-tokens", type=int, default=None, help="default 16 on cpu, 512 on cuda")
    ap.add_argument("--top-p", type=float, default=None)
    ap.add_argument("--dtype", choices=["bf16", "f32"], default="bf16")
    ap.add_argument("--bandwidth-gbs", type=float, default=4800.0)
    ap.add_argument("--repeats", type=int, default=1)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    a = ap.parse_args()
    if a.threads:
        torch.set_num_threads(a.threads)
    device = torch.device(a.device)
    gpu = device.type != "cpu"
    rows_list = [int(r) for r in a.rows.split(",")] if a.rows else ([64, 128, 256, 512] if gpu else [8])
    prompt_len = a.prompt_len or (256 if gpu else 32)
    new_tokens = a.new_tokens or (512 if gpu else 16)
    if any(r <= 0 or r % a.group for r in rows_list) or new_tokens < 2:
        raise SystemExit("--rows must be positive multiples of --group, --new-tokens >= 2")
    dtype = {"bf16": torch.bfloat16, "f32": torch.float32}[a.dtype]
    config_cls, model_cls, fields = SHAPES[a.shape]
    if a.layers:
        fields = dict(fields, num_hidden_layers=a.layers)
    config = config_cls(**fields, attn_implementation="sdpa")
    torch.manual_seed(0)
    model = model_cls(config).to(device=device, dtype=dtype).eval()
    element = torch.finfo(dtype).bits // 8
    weights = sum(p.numel() for p in model.parameters())  # tied: the head is the embedding
    kv_width = config.num_key_value_heads * (config.hidden_size // config.num_attention_heads)
    pad = 0
    print(
        f"transformers generate, {a.shape} shape, {config.num_hidden_layers} layers, random weights, "
        f"{a.dtype}, sdpa, {device}; torch {torch.__version__}; bound = bytes/step / ({a.bandwidth_gbs} GB/s)"
    )
    print(HEADER)
    for rows in rows_list:
        lengths = prompt_lengths(rows // a.group, prompt_len)
        ids, mask = left_padded(lengths, config.vocab_size, pad, device)

        def run(n):
            with torch.inference_mode():
                model.generate(
                    input_ids=ids,
                    attention_mask=mask,
                    do_sample=True,
                    temperature=1.0,
                    top_k=0,
                    top_p=a.top_p if a.top_p is not None else 1.0,
                    num_return_sequences=a.group,
                    max_new_tokens=n,
                    min_new_tokens=n,
                    pad_token_id=pad,
                    eos_token_id=None,
                )

        prefill_s = timed(a.repeats, device, lambda: run(1))
        total_s = timed(a.repeats, device, lambda: run(new_tokens))
        step_s = max(total_s - prefill_s, 1e-9) / (new_tokens - 1)
        width = max(lengths)
        context = width + new_tokens / 2
        kv_bytes = 2 * config.num_hidden_layers * rows * kv_width * context * element
        bytes_per_step = weights * element + kv_bytes
        bound = bytes_per_step / step_s / (a.bandwidth_gbs * 1e9)
        print(
            f"| transformers {a.dtype} | {a.shape} | {rows} | {min(lengths)}–{width} | {new_tokens} "
            f"| {prefill_s:.3f} | {step_s * 1e3:.2f} | {rows / step_s:.1f} | {bytes_per_step / 1e6:.1f} "
            f"| {bound * 100:.2f} % |",
            flush=True,
        )


if __name__ == "__main__":
    main()
