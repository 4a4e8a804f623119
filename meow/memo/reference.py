"""MEMO the way the authors' code runs it: transformers `generate`, one window at a time.

The baseline of `benchmarks/memo_throughput.py` and the check of the stage in the tests. Per
window: `tokenizer(prompt)` (default special tokens), greedy `generate(max_new_tokens)`, decode
the whole sequence without skipping special tokens, remove the prompt string (`str.replace`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tqdm import tqdm

from meow.memo.metric import Mode, memo


class ReferenceGenerator:
    def __init__(self, model_dir: str | Path, max_new_tokens: int = 200, threads: int = 1, device: str = "cpu"):
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        torch.set_num_threads(threads)
        self.tokenizer = AutoTokenizer.from_pretrained(model_dir)
        self.model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32).to(device).eval()
        self.device = device
        self.max_new_tokens = max_new_tokens
        self.tokens = 0

    def __call__(self, prompts: list[str]) -> list[str]:
        import torch

        outputs = []
        for prompt in prompts:
            inputs = self.tokenizer(prompt, return_tensors="pt").to(self.device)
            with torch.inference_mode():
                sequence = self.model.generate(
                    **inputs,
                    max_new_tokens=self.max_new_tokens,
                    do_sample=False,
                    top_p=None,
                    top_k=None,
                    pad_token_id=self.tokenizer.pad_token_id or self.tokenizer.eos_token_id,
                )[0]
            self.tokens += len(sequence) - inputs["input_ids"].shape[1]
            outputs.append(self.tokenizer.decode(sequence).replace(prompt, ""))
        return outputs


def reference_scores(
    facts: list[dict[str, Any]], generate: ReferenceGenerator, mode: Mode = "suffix", stride: int = 5
) -> list[dict[str, Any]]:
    """`original_memo` and `candidate_memos` of each fact, answer by answer, window by window."""
    out = []
    for fact in tqdm(facts, desc="memo (reference loop)", unit="fact"):
        original, _ = memo(generate, fact["question"], fact["answer"], mode, stride)
        candidates = [memo(generate, fact["question"], c, mode, stride)[0] for c in fact["candidates"]]
        out.append({"index": fact["index"], "original_memo": original, "candidate_memos": candidates})
    return out
