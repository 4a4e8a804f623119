"""The records stages hand each other: one typed record per line of a stage's JSONL output.

A stage writes its records and a later stage reads them through `RunDir.write_records` and
`RunDir.read_records` (`meow/pipeline/rundir.py`, which names each file once), never by importing
the stage that wrote them. Every stage may import this module; it imports nothing of meow.

On disk a record is one JSON object per line whose keys are the field names, in field order; an
optional field (default None) is left out when it is None, so files written before it existed
read back unchanged. Reading rejects keys a record does not declare: a new field is added here.

    invert  -> CandidateRecord  invert/candidates.jsonl   read by memo, report
    memo    -> ScoreRecord      memo/scores.jsonl         read by select, report
    select  -> SelectionRecord  select/selected.jsonl     read by unlearn (MEOW), report
"""

from __future__ import annotations

from dataclasses import MISSING, dataclass, fields
from typing import Any, TypeVar

R = TypeVar("R", bound="Record")


class Record:
    """JSON conversion shared by the records below (all dataclasses)."""

    def to_json(self) -> dict[str, Any]:
        """The record's JSON object: every field in order, optional ones only when set."""
        return {
            f.name: value
            for f in fields(self)  # type: ignore[arg-type]
            if (value := getattr(self, f.name)) is not None or f.default is MISSING
        }

    @classmethod
    def from_json(cls: type[R], row: dict[str, Any]) -> R:
        names = {f.name for f in fields(cls)}  # type: ignore[arg-type]
        unknown = sorted(set(row) - names)
        missing = sorted(f.name for f in fields(cls) if f.default is MISSING and f.name not in row)  # type: ignore[arg-type]
        if unknown or missing:
            raise ValueError(f"not a {cls.__name__}: unknown keys {unknown}, missing keys {missing}")
        return cls(**row)


@dataclass(frozen=True, kw_only=True)
class CandidateRecord(Record):
    """One forget fact's inverted candidates (the `invert` stage, `meow/invert/stage.py`)."""

    # The forget record: its index in the forget set, question and original answer.
    index: int
    question: str
    answer: str
    # The accepted inverted answers, in the order they were found.
    candidates: list[str]
    # The fact-bearing spans of the answer, {"text", "label"}, the candidates were checked against;
    # None in free-form runs written before spans were kept (the quality checks find them anew).
    spans: list[dict[str, str]] | None = None
    # Structured inversion only: the answer's subject spans, and per fact-bearing span how many
    # alternatives each source (infill, typed, ...) gave.
    subject: list[str] | None = None
    sources: dict[str, dict[str, int]] | None = None
    # Rejected lines or values by reason.
    rejected: dict[str, int]
    # Fewer candidates than `invert.num_candidates` were found.
    short: bool
    # Generator replies used (1 for structured inversion).
    attempts: int
    # How the candidates were made: backend, generator, prompts, sampling, seeds.
    provenance: dict[str, Any]
    # Per candidate, the checks of `meow/invert/quality.py` (check name -> passed); None in runs
    # written before the checks existed.
    quality: list[dict[str, bool]] | None = None


@dataclass(frozen=True, kw_only=True)
class ScoreRecord(Record):
    """MEMO of one fact's original answer and of each candidate (the `memo` stage, `meow/memo/stage.py`)."""

    index: int
    question: str
    answer: str
    # The candidates of the fact's CandidateRecord, in its order.
    candidates: list[str]
    # `memo.mode` (prefix or suffix windows) and `memo.variant` (exact or fast) that scored them.
    mode: str
    variant: str
    # MEMO (mean ROUGE-1 precision over the answer's windows, in [0, 1]) of the original answer and
    # of each candidate, in candidate order.
    original_memo: float
    candidate_memos: list[float]
    # With `memo.save_windows`: every window's score, of the original and of each candidate.
    original_windows: list[float] | None = None
    candidate_windows: list[list[float]] | None = None


@dataclass(frozen=True, kw_only=True)
class SelectionRecord(Record):
    """The inverted answers one fact is unlearned with (the `select` stage, `meow/select/stage.py`).

    Facts without any candidate get no record. The order matters to the trainer: a fact's i-th
    inverted sequence is `selected[i % k]`, best first.
    """

    index: int
    question: str
    answer: str
    # At most `select.k` candidate texts, best first by `select.rule`.
    selected: list[str]
    # Their positions in the fact's candidate list, and their MEMO scores.
    selected_candidates: list[int]
    selected_memos: list[float]
