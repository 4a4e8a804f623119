"""A few-shot inversion prompt, for local generators too small to follow the reference instruction.

SmolLM2-135M given the reference chat (system instruction, "Question: q Answer: a") mostly answers
with refusals, meta-comments and off-topic paragraphs. Shown a few worked examples as plain text,
it continues the pattern and writes answers of the fact's own form with other facts in them. The
examples are TOFU questions with their answer and TOFU's perturbed answers (wrong answers in the
answer's form), of authors outside the forget set: from `forget10_perturbed` (authors 180-199,
which TOFU's retain evaluation does not use), and from `retain_perturbed` only when that leaves too
few. Each attempt draws its examples with its own seed, so attempts differ and a rerun asks exactly
the same; all facts of one attempt share them, so the examples (~1 000 tokens) are one prompt prefix
that the engine's prefix cache computes once (examples drawn per fact made every prompt a cache
miss: 320 prompts ran at 22-35 generated tokens/s while training shared the two cores). The prompt
ends in the fact's "Wrong answer:"; the reply continues the list, one wrong answer per line, and
stops at the blank line that ends an example.
"""

from __future__ import annotations

import random
from collections.abc import Sequence

from meow.data import QARecord, author_of, forget_authors, tofu_rows

HEADER = (
    "Each answer below is followed by {n} wrong answers: the same question answered with different facts "
    "(another name, place, date, profession, genre, book or award), in the same form."
)
# Where the reply's list ends: the blank line before the next example.
STOP = ("\n\n", "\nQuestion:")
# Perturbed rows by preference: authors TOFU's retain evaluation does not use come first.
SOURCES = ("forget10_perturbed", "retain_perturbed")


def demonstration_pool(forget: Sequence[QARecord], wanted: int) -> list[QARecord]:
    """TOFU rows with perturbed answers whose author is not in the forget set, at least `wanted`."""
    excluded = set(forget_authors(forget))
    pool: list[QARecord] = []
    for split in SOURCES:
        pool += [r for r in tofu_rows(split) if author_of(r) not in excluded]
        if len(pool) >= wanted:
            return pool
    raise ValueError(f"only {len(pool)} TOFU rows outside the forget set to show as examples; {wanted} wanted")


def _example(record: QARecord, wrong: Sequence[str]) -> str:
    return f"Question: {record.question}\nAnswer: {record.answer}\n" + "".join(f"Wrong answer: {w}\n" for w in wrong)


def draw_examples(pool: Sequence[QARecord], demonstrations: int, seed: int, attempt: int) -> list[QARecord]:
    """The examples every fact's prompt shows at `attempt`."""
    return random.Random(f"{seed}:{attempt}").sample(list(pool), demonstrations)


def few_shot_prompt(record: QARecord, examples: Sequence[QARecord], n: int) -> str:
    shown = "\n".join(_example(e, e.extra["perturbed_answer"][:n]) for e in examples)
    return f"{HEADER.format(n=n)}\n\n{shown}\nQuestion: {record.question}\nAnswer: {record.answer}\nWrong answer:"
