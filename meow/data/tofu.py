"""The TOFU benchmark data shipped inside the package (MIT; provenance in meow/data/tofu/README.md)."""

from __future__ import annotations

from collections.abc import Sequence
from functools import cache
from pathlib import Path

from meow.data.readers import FieldMapping, read_records
from meow.data.records import QARecord

TOFU_DIR = Path(__file__).with_name("tofu")
# TOFU has 200 fictitious authors with 20 consecutive QA rows each in `full` (author a = rows
# 20a .. 20a+19); retain_perturbed = full[0:400] (authors 0-19), forget10_perturbed = authors 180-199.
ROWS_PER_AUTHOR = 20
AUTHORS = 200
SPLITS = tuple(sorted(p.stem for p in TOFU_DIR.glob("*.json")))


def tofu_path(split: str) -> Path:
    if split not in SPLITS:
        raise KeyError(f"unknown TOFU split {split!r}; known: {', '.join(SPLITS)}")
    return TOFU_DIR / f"{split}.json"


def load_tofu(split: str) -> list[QARecord]:
    return read_records(str(tofu_path(split)), fmt="jsonl")


@cache
def tofu_rows(split: str) -> tuple[QARecord, ...]:
    """A packaged split, read once per process: the files ship with the package and never change."""
    return tuple(load_tofu(split))


def load_qa(source: str, mapping: FieldMapping = FieldMapping(), fmt: str | None = None) -> list[QARecord]:
    """A TOFU split by name (`forget01`) or any file/URI the readers understand."""
    if source in SPLITS:
        return load_tofu(source)
    return read_records(source, mapping, fmt)


@cache
def _rows_by_pair() -> dict[tuple[str, str], int]:
    return {(r.question, r.answer): r.index for r in tofu_rows("full")}


def author_of(record: QARecord) -> int | None:
    """The TOFU author a (question, answer) pair belongs to, if it is one of TOFU's."""
    row = _rows_by_pair().get((record.question, record.answer))
    return None if row is None else row // ROWS_PER_AUTHOR


def forget_authors(forget: Sequence[QARecord]) -> list[int]:
    return sorted({a for a in (author_of(r) for r in forget) if a is not None})
