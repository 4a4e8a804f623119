"""MEMO, the memorisation score of an answer under a model (method spec 1.2), as the reference computes it.

    MEMO(q, y) = mean over windows L of ROUGE-1 precision( greedy_generation(prompt_L), target_L )

    suffix mode: L = 1, 1+s, 1+2s, ... < len(y)   prompt_L = q + " " + y[:L]   target_L = y[L:]
    prefix mode: L = 1, 1+s, 1+2s, ... < len(q)   prompt_L = q[:L]             target_L = q[L:] + " " + y

Windows are cut in characters (stride s = 5), prompts are raw text (no chat template), and a
answer with no window scores 0. This module is the arithmetic only: which windows, what text a
generation is scored as, and the ROUGE; `meow.memo.stage` runs the generations on an engine pool.

Choices where the reference leaves room (docs/memo.md):
* decoding is greedy (the reference calls `generate` with the checkpoint's default generation
  config, which may sample);
* `decode="reference"` scores what the reference scores: the whole sequence (prompt + generation)
  decoded *with* special tokens, minus the prompt string (`str.replace`), so an EOS such as
  `<|im_end|>` adds the unigrams "im" and "end"; `decode="generated"` scores only the generated
  tokens without special tokens.
* the `fast` variant caps new tokens per window relative to the target's length (`fast_max_new_tokens`).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cache
from typing import Literal

Mode = Literal["suffix", "prefix"]
Decode = Literal["reference", "generated"]


@dataclass(frozen=True)
class Window:
    length: int  # L, in characters
    prompt: str
    target: str


def windows(question: str, answer: str, mode: Mode = "suffix", stride: int = 5) -> list[Window]:
    """The reference's character windows of one (question, answer) pair."""
    if stride < 1:
        raise ValueError("stride must be at least 1")
    if mode == "suffix":
        return [Window(n, question + " " + answer[:n], answer[n:]) for n in range(1, len(answer), stride)]
    if mode == "prefix":
        return [Window(n, question[:n], question[n:] + " " + answer) for n in range(1, len(question), stride)]
    raise ValueError(f"unknown MEMO mode {mode!r}")


@cache
def _scorer():
    from rouge_score.rouge_scorer import RougeScorer

    return RougeScorer(["rouge1"], use_stemmer=True)


def rouge1_precision(target: str, output: str) -> float:
    """Unigrams of `output` that occur in `target` (stemmed, clipped counts) / unigrams of `output`."""
    return _scorer().score(target, output)["rouge1"].precision


def scored_text(decode: Decode, prompt: str, full_sequence: str, generated: str) -> str:
    """The text a window's generation is scored as.

    `full_sequence` is the decode of prompt + generated token ids with special tokens kept
    (reference); `generated` is the decode of the generated ids alone without special tokens.
    """
    if decode == "reference":
        return full_sequence.replace(prompt, "")
    return generated


def mean(values: Sequence[float]) -> float:
    """The MEMO of one answer from its window scores: their mean, 0 with no window."""
    return sum(values) / len(values) if values else 0.0


def memo(
    generate: Callable[[list[str]], list[str]], question: str, answer: str, mode: Mode = "suffix", stride: int = 5
) -> tuple[float, list[float]]:
    """MEMO of one answer and its per-window scores, with `generate` mapping prompts to scored texts.

    The stage batches every window of a run at once; this serial form states the definition.
    """
    cut = windows(question, answer, mode, stride)
    outputs = generate([w.prompt for w in cut]) if cut else []
    scores = [rouge1_precision(w.target, out) for w, out in zip(cut, outputs, strict=True)]
    return mean(scores), scores


def fast_max_new_tokens(target_tokens: int, factor: float, margin: int, limit: int) -> int:
    """New-token budget of a window in the `fast` variant: room to reproduce the target and some more.

    Tokens generated past the target's length cannot add matches beyond the target's unigram counts,
    but they do change the precision, so fast scores are not exact MEMO: docs/memo.md measures how
    well they correlate and how often they select the same candidates.
    """
    return max(1, min(limit, math.ceil(factor * target_tokens) + margin))
