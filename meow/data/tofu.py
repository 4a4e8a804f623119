"""The TOFU benchmark data shipped inside the package (MIT; provenance in meow/data/tofu/README.md)."""

from __future__ import annotations

from pathlib import Path

from meow.data.readers import FieldMapping, read_records
from meow.data.records import QARecord

TOFU_DIR = Path(__file__).with_name("tofu")
SPLITS = tuple(sorted(p.stem for p in TOFU_DIR.glob("*.json")))


def tofu_path(split: str) -> Path:
    if split not in SPLITS:
        raise KeyError(f"unknown TOFU split {split!r}; known: {', '.join(SPLITS)}")
    return TOFU_DIR / f"{split}.json"


def load_tofu(split: str) -> list[QARecord]:
    return read_records(str(tofu_path(split)), fmt="jsonl")


def load_qa(source: str, mapping: FieldMapping = FieldMapping(), fmt: str | None = None) -> list[QARecord]:
    """A TOFU split by name (`forget01`) or any file/URI the readers understand."""
    if source in SPLITS:
        return load_tofu(source)
    return read_records(source, mapping, fmt)
