"""The TOFU evaluation sets and how each example is put to a model (method spec 2.1-2.3).

Four splits, each with its own recipe:

| split | rows | truth-ratio base answer | probability | truth-ratio aggregate |
|---|---|---|---|---|
| forget | `<forget split>_perturbed` | paraphrased_answer | P̃(answer) | mean min(R, 1/R) |
| retain | retain_perturbed, authors the target trained on | paraphrased_answer | P̃(answer) | mean max(0, 1-R) |
| real_authors | real_authors_perturbed | answer | normalised over the 4 options | mean max(0, 1-R) |
| world_facts | world_facts_perturbed | answer | normalised over the 4 options | mean max(0, 1-R) |

Every answer is scored exactly as it is trained on (`scored_pair`, the trainer's own encoding): the
question prompt (chat template for instruct models, `meow.models.templates`) followed by the answer
tokens and one EOS label, the whole sequence cut at `max_length` tokens (no EOS when cut), as TOFU's
`convert_raw_data_to_model_format`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from meow.data import ROWS_PER_AUTHOR, SPLITS, FieldMapping, QARecord, load_qa

SplitName = Literal["forget", "retain", "real_authors", "world_facts"]
SPLIT_NAMES: tuple[SplitName, ...] = ("forget", "retain", "real_authors", "world_facts")


@dataclass(frozen=True)
class EvalExample:
    index: int  # row in the split's source file
    question: str
    answer: str
    # Truth-ratio answers: `base` is compared with the `perturbed` (wrong) answers. Empty when the
    # source has none (a custom forget file): that split then has no truth ratio.
    base: str | None
    perturbed: tuple[str, ...]


@dataclass(frozen=True)
class EvalSplit:
    name: SplitName
    examples: tuple[EvalExample, ...]

    @property
    def probability_over_options(self) -> bool:
        """Real authors / world facts: the answer's probability is normalised over the wrong options."""
        return self.name in ("real_authors", "world_facts")

    @property
    def has_truth_ratio(self) -> bool:
        return all(e.base is not None and e.perturbed for e in self.examples)


def _example(record: QARecord, base_key: str | None) -> EvalExample:
    perturbed = record.extra.get("perturbed_answer") or ()
    base = record.answer if base_key == "answer" else record.extra.get(base_key) if base_key else None
    return EvalExample(record.index, record.question, record.answer, base, tuple(perturbed))


def forget_split(
    source: str,
    max_rows: int,
    mapping: FieldMapping = FieldMapping(),
    fmt: str | None = None,
    records: Sequence[QARecord] | None = None,
) -> EvalSplit:
    """The forget set's evaluation rows: `<split>_perturbed` for a TOFU split, else the source itself
    (a custom forget file has a truth ratio only if its rows carry paraphrased and perturbed answers);
    `records`: the source's records when the caller has read them (the file is not read again)."""
    if source in SPLITS and f"{source}_perturbed" in SPLITS:
        records = load_qa(f"{source}_perturbed")
    elif records is None:
        records = load_qa(source, mapping, fmt)
    return EvalSplit("forget", tuple(_example(r, "paraphrased_answer") for r in records[:max_rows]))


def retain_split(max_rows: int, authors: Sequence[int] | None = None) -> EvalSplit:
    """retain_perturbed (TOFU authors 0-19), restricted to `authors` when the target was trained on a
    subset of the retain authors: evaluating retention of facts never trained on would measure nothing."""
    records = load_qa("retain_perturbed")
    if authors is not None:
        wanted = set(authors)
        records = [r for r in records if r.index // ROWS_PER_AUTHOR in wanted]
        if not records:
            raise ValueError(f"none of the retain authors {sorted(wanted)} is in retain_perturbed (authors 0-19)")
    return EvalSplit("retain", tuple(_example(r, "paraphrased_answer") for r in records[:max_rows]))


def options_split(name: Literal["real_authors", "world_facts"], max_rows: int) -> EvalSplit:
    records = load_qa(f"{name}_perturbed")
    return EvalSplit(name, tuple(_example(r, "answer") for r in records[:max_rows]))


def scored_pair(tokenizer, question: str, answer: str, max_length: int) -> tuple[list[int], list[int]]:
    """(prompt ids, label ids) of a question/answer pair exactly as training encodes it
    (`meow.models.encoding.encode_qa`): the labels are the answer tokens plus one EOS, cut so that the whole
    sequence fits in `max_length` (a cut sequence has no EOS, as in the reference)."""
    from meow.models.encoding import IGNORE, encode_qa

    encoded = encode_qa(tokenizer, question, answer, max_length)
    start = next(i for i, label in enumerate(encoded.labels) if label != IGNORE)
    return list(encoded.input_ids[:start]), list(encoded.input_ids[start:])
