"""Encoding question/answer pairs (method spec 1.4), shared by training and scoring.

The prompt is the model family's question prompt (`meow.models.templates.question_prompt`: chat
template for instruct models, `Question:/Answer:` otherwise) tokenized with the tokenizer's default
special tokens, followed by the answer tokens and one EOS; only the answer tokens and the EOS are
labels. Prompt and answer are tokenized separately, exactly as the engines' `score` does, so
training targets the very tokens the evaluation scores. Sequences are cut at `max_length`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from meow.data import DataError
from meow.models.templates import question_prompt

IGNORE = -100


@dataclass(frozen=True)
class Encoded:
    """One training sequence. `weight` counts identical copies computed once."""

    input_ids: tuple[int, ...]
    labels: tuple[int, ...]
    weight: int = 1

    @property
    def tokens(self) -> int:
        """Answer tokens the loss covers (each label is predicted from the position before it)."""
        return sum(1 for label in self.labels[1:] if label != IGNORE)

    def weighted(self, weight: int) -> Encoded:
        return Encoded(self.input_ids, self.labels, weight)


def encode_qa(
    tokenizer,
    question: str,
    answer: str,
    max_length: int,
    index: int | None = None,
    label_spans: Sequence[tuple[int, int]] | None = None,
) -> Encoded:
    """`label_spans`: character ranges [start, end) of `answer`; when given, only the answer tokens
    overlapping one of them are labels (not the EOS): a loss on these tokens alone."""
    prompt = tokenizer(question_prompt(tokenizer, question)).input_ids
    encoded = tokenizer(answer, add_special_tokens=False, return_offsets_mapping=label_spans is not None)
    answer_ids = encoded.input_ids + [tokenizer.eos_token_id]
    answer_labels = list(answer_ids)
    if label_spans is not None:
        answer_labels = [
            token if any(start < end_ and end > start_ for start_, end_ in label_spans) else IGNORE
            for token, (start, end) in zip(encoded.input_ids, encoded.offset_mapping)
        ] + [IGNORE]
    ids = (prompt + answer_ids)[:max_length]
    labels = ([IGNORE] * len(prompt) + answer_labels)[:max_length]
    if len(prompt) >= max_length:
        raise DataError("training data", f"the question prompt is longer than max_length={max_length}", record=index)
    return Encoded(tuple(ids), tuple(labels))
