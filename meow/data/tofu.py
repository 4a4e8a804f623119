"""The TOFU benchmark data shipped inside the package (MIT; provenance in meow/data/tofu/README.md)."""

from __future__ import annotations

import difflib
import os
import re
from collections.abc import Sequence
from functools import cache
from pathlib import Path

from meow.data.readers import _SUFFIX_FORMATS, Duplicates, FieldMapping, Limits, read_records
from meow.data.records import DataError, QARecord

TOFU_DIR = Path(__file__).with_name("tofu")
# TOFU has 200 fictitious authors with 20 consecutive QA rows each in `full` (author a = rows
# 20a .. 20a+19); retain_perturbed = full[0:400] (authors 0-19), forget10_perturbed = authors 180-199.
ROWS_PER_AUTHOR = 20
AUTHORS = 200
SPLITS = tuple(sorted(p.stem for p in TOFU_DIR.glob("*.json")))


def tofu_path(split: str) -> Path:
    if split not in SPLITS:
        raise KeyError(f"unknown TOFU split {split!r}{_did_you_mean(split)}; known: {', '.join(SPLITS)}")
    return TOFU_DIR / f"{split}.json"


def _did_you_mean(name: str) -> str:
    """`; did you mean 'forget01'?` for `forget1`, `Forget_01`, `forgt01`; empty when nothing is close."""

    def key(split: str) -> tuple[str | int, ...]:
        # Letters lower-cased without separators, numbers by value: forget1 == forget01.
        return tuple(int(p) if p.isdigit() else p for p in re.findall(r"[a-z]+|\d+", split.lower()))

    same = [s for s in SPLITS if key(s) == key(name)]
    close = same or difflib.get_close_matches(name.lower(), SPLITS, n=1, cutoff=0.6)
    return f"; did you mean {close[0]!r}?" if close else ""


def looks_like_split(source: str) -> bool:
    """A bare name (no directory, scheme or known suffix) that is no file here: meant as a TOFU split."""
    return (
        source not in SPLITS
        and "/" not in source
        and os.sep not in source
        and not source.lower().endswith(tuple(_SUFFIX_FORMATS))
        and not os.path.exists(source)
    )


def unknown_split(source: str) -> DataError:
    """The error for a bare name that is neither a TOFU split nor a file, with the closest split."""
    hint = _did_you_mean(source)
    if not hint:
        forget_splits = [s for s in SPLITS if re.fullmatch(r"forget\d+", s)]
        hint = f" (TOFU forget splits: {', '.join(forget_splits)})"
    return DataError(source, f"neither a TOFU split nor a file{hint}")


def load_tofu(split: str) -> list[QARecord]:
    # The packaged files are checksummed upstream data: TOFU's full/retain splits repeat one
    # question (two authors' rows), which is theirs to keep and no user's to be warned about.
    return read_records(str(tofu_path(split)), fmt="jsonl", duplicates="ignore")


@cache
def tofu_rows(split: str) -> tuple[QARecord, ...]:
    """A packaged split, read once per process: the files ship with the package and never change."""
    return tuple(load_tofu(split))


def load_qa(
    source: str,
    mapping: FieldMapping = FieldMapping(),
    fmt: str | None = None,
    *,
    limits: Limits = Limits(),
    duplicates: Duplicates = "warn",
) -> list[QARecord]:
    """A TOFU split by name (`forget01`) or any file/URI the readers understand."""
    if source in SPLITS:
        return load_tofu(source)
    if looks_like_split(source):
        raise unknown_split(source)
    return read_records(source, mapping, fmt, limits=limits, duplicates=duplicates)


@cache
def _rows_by_pair() -> dict[tuple[str, str], int]:
    return {(r.question, r.answer): r.index for r in tofu_rows("full")}


def author_of(record: QARecord) -> int | None:
    """The TOFU author a (question, answer) pair belongs to, if it is one of TOFU's."""
    row = _rows_by_pair().get((record.question, record.answer))
    return None if row is None else row // ROWS_PER_AUTHOR


def forget_authors(forget: Sequence[QARecord]) -> list[int]:
    return sorted({a for a in (author_of(r) for r in forget) if a is not None})
