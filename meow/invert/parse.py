"""From a generator's reply to inverted-fact candidates: one answer per line, the rest filtered out.

The reference splits the reply on newlines and drops empty lines (method spec 1.1). We also strip
list markers the instruction forbids but models add anyway, and drop lines that cannot be an answer
or would defeat unlearning, counting each rejection by reason:

* `empty`: nothing left after stripping markers;
* `header`: a line ending in ':' ("Here are four answers:") introduces answers, it is not one;
* `echo`: the prompt's own "Question: ..." format repeated back;
* `duplicate`: the same text (case, punctuation and spacing aside) as an accepted candidate;
* `restatement`: ROUGE-L recall of the original answer against the line above the threshold, i.e.
  the line carries (nearly) all of the original answer and so restates the fact to forget.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field
from functools import cache

# Leading list markers: "1.", "2)", "(3)", "a)", "-", "*", "•", and labels such as "Answer 2:".
MARKER = re.compile(
    r"^(?:\s*(?:\(?\d{1,2}[.):]|\(?[a-zA-Z]\)|[-*•–]|(?:inverted\s+)?answer\s*\d*\s*[:.)-]))+\s*", re.IGNORECASE
)
ECHO = re.compile(r"^question\s*\d*\s*:", re.IGNORECASE)
REASONS = ("empty", "header", "echo", "duplicate", "restatement")


@cache
def _rouge_l():
    from rouge_score.rouge_scorer import RougeScorer

    return RougeScorer(["rougeL"], use_stemmer=True)


def restatement_recall(original: str, candidate: str) -> float:
    """ROUGE-L recall of the original answer in the candidate (1.0 when it is fully contained)."""
    return _rouge_l().score(original, candidate)["rougeL"].recall


def normalized(text: str) -> str:
    return " ".join(re.findall(r"[a-z0-9]+", text.lower()))


@dataclass
class Candidates:
    """The accepted candidates of one fact so far, and why other lines were rejected."""

    original: str
    wanted: int
    restate_threshold: float
    accepted: list[str] = field(default_factory=list)
    rejected: Counter = field(default_factory=Counter)

    @property
    def full(self) -> bool:
        return len(self.accepted) >= self.wanted

    def add_reply(self, reply: str) -> None:
        """Take the reply's acceptable lines, in order, until `wanted` are accepted."""
        for line in reply.split("\n"):
            if self.full:
                return
            text = MARKER.sub("", line.strip()).strip()
            reason = self._rejection(text)
            if reason is None:
                self.accepted.append(text)
            else:
                self.rejected[reason] += 1

    def _rejection(self, text: str) -> str | None:
        if not normalized(text):
            return "empty"
        if text.endswith(":"):
            return "header"
        if ECHO.match(text):
            return "echo"
        if normalized(text) in {normalized(a) for a in self.accepted}:
            return "duplicate"
        if restatement_recall(self.original, text) > self.restate_threshold:
            return "restatement"
        return None
