#!/usr/bin/env python3
"""Greedy evaluation with transformers on the workload of `epgrpo eval --samples 0`, for timing.

Loads a GGUF (dequantised to f32, as `epgrpo eval` does) with its tokenizer, renders each
question of a JSONL file as one user turn of the model's chat template with the generation
prompt, and decodes all of them greedily in left-padded batches of --batch (default: all at
once), at most --max-new-tokens new tokens each, stopping at the template's end-of-turn token.
Prints the wall time of generation (not of loading) and the fraction of answers whose last
number equals the reference answer (a rough check; `epgrpo eval` grades with its verifier).

Usage:
    head -40 target/data/gsm_symbolic/test.jsonl > /tmp/gsm40.jsonl
    python3 scripts/peer/eval_transformers.py --gguf SmolLM2-135M-Instruct.Q4_1.gguf \
        --data /tmp/gsm40.jsonl --max-new-tokens 256 --threads 2
    epgrpo eval --model SmolLM2-135M-Instruct.Q4_1.gguf --data /tmp/gsm40.jsonl \
        --samples 0 --max-new-tokens 256
Needs: pip install torch transformers gguf.
"""

import argparse
import json
import os
import re
import time

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer


def last_number(text):
    numbers = re.findall(r"-?\d[\d,]*(?:\.\d+)?", text)
    return numbers[-1].replace(",", "") if numbers else None


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gguf", required=True)
    parser.add_argument("--data", required=True)
    parser.add_argument("--max-new-tokens", type=int, default=256)
    parser.add_argument("--batch", type=int, default=0, help="prompts per batch (0 = all)")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    directory, name = os.path.split(os.path.abspath(args.gguf))
    tokenizer = AutoTokenizer.from_pretrained(directory, gguf_file=name)
    tokenizer.padding_side = "left"
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    model = AutoModelForCausalLM.from_pretrained(
        directory, gguf_file=name, torch_dtype=torch.float32, attn_implementation="sdpa"
    ).eval()

    rows = [json.loads(line) for line in open(args.data) if line.strip()]
    prompts = [
        tokenizer.apply_chat_template(
            [{"role": "user", "content": row["question"]}],
            tokenize=False,
            add_generation_prompt=True,
        )
        for row in rows
    ]
    batch = args.batch or len(prompts)
    answers, new_tokens = [], 0
    start = time.perf_counter()
    for first in range(0, len(prompts), batch):
        inputs = tokenizer(
            prompts[first : first + batch],
            return_tensors="pt",
            padding=True,
            add_special_tokens=False,
        )
        with torch.inference_mode():
            output = model.generate(
                **inputs,
                do_sample=False,
                max_new_tokens=args.max_new_tokens,
                pad_token_id=tokenizer.pad_token_id,
            )
        generated = output[:, inputs["input_ids"].shape[1] :]
        for row in generated:
            ids = [t for t in row.tolist() if t != tokenizer.pad_token_id]
            new_tokens += len(ids)
            answers.append(tokenizer.decode(ids, skip_special_tokens=True))
    elapsed = time.perf_counter() - start
    correct = sum(
        last_number(answer) == str(row["answer"]) for answer, row in zip(answers, rows)
    )
    print(
        f"transformers {torch.__version__}: {len(rows)} problems, greedy, "
        f"max {args.max_new_tokens} new tokens, {args.threads} threads, batch {batch}"
    )
    print(f"generation time  {elapsed:.1f} s ({new_tokens} new tokens, {new_tokens / elapsed:.1f}/s)")
    print(f"last-number accuracy  {correct / len(rows):.4f}")


if __name__ == "__main__":
    main()
