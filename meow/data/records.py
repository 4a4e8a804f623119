"""The question/answer record every stage passes around, and the error bad input raises."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


class DataError(ValueError):
    """Input that cannot be used; the message names the file and the line or record.

    Forget-set text is the very data being erased, so messages carry locations and field
    names only, never the offending question or answer.
    """

    def __init__(self, source: str, problem: str, *, line: int | None = None, record: int | None = None):
        where = source
        if line is not None:
            where += f", line {line}"
        elif record is not None:
            where += f", record {record}"
        super().__init__(f"{where}: {problem}")
        self.source = source
        self.line = line
        self.record = record
        self.problem = problem


@dataclass(frozen=True)
class QARecord:
    """One fact: a question and the answer to forget (or keep, or evaluate).

    `index` is the position in its source (0-based) and is what logs and metrics name instead
    of the text. `extra` keeps every other field of the source row (TOFU's
    `paraphrased_answer`, `perturbed_answer`, `paraphrased_question`, ...).
    """

    index: int
    question: str
    answer: str
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"index": self.index, "question": self.question, "answer": self.answer, **self.extra}
