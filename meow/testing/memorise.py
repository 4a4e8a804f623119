"""Make a tiny model recite facts: full-batch AdamW on question prompt + answer, one step per epoch.

Plain transformers, seconds on the tiny test model: the models that must be caught leaking in the
probe tests, and the test relearner.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from meow.data import QARecord


def memorise(model: str, records: Sequence[QARecord], out_dir: Path, learning_rate: float, epochs: int) -> str:
    """Fine-tune `model` (a local HF directory) on `records` into `out_dir`; returns `out_dir`."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from meow.models.templates import question_prompt

    tokenizer = AutoTokenizer.from_pretrained(model)
    net = AutoModelForCausalLM.from_pretrained(model)
    texts = [question_prompt(tokenizer, r.question) + r.answer + tokenizer.eos_token for r in records]
    batch = tokenizer(texts, return_tensors="pt", padding=True)
    labels = batch.input_ids.masked_fill(batch.attention_mask == 0, -100)
    optimizer = torch.optim.AdamW(net.parameters(), lr=learning_rate)
    for _ in range(epochs):
        net(**batch, labels=labels).loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    net.save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)
    return str(out_dir)
