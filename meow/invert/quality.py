"""Is an inverted fact an inverted fact? Checks every candidate of every generator, the same way.

An inverted fact keeps the subject and the form of the answer and contradicts its fact. A candidate
is **coherent** when it passes all of:

* `keeps_subject`: it names the subject the question and answer share (the author, the book), when
  they share one;
* `changes_fact`: it contains none of the answer's fact-bearing spans (`meow.data.spans`) and is not
  the answer itself;
* `not_restatement`: it is not the answer lightly reworded: its ROUGE-L recall of the answer stays
  below the restatement threshold unless the spans that differ are the fact (a structured swap of
  "male" for "female" keeps most words and is still an inversion);
* `not_refusal`: no "I don't know", "I cannot", "as an AI" and the like;
* `not_name_list`: not a list of unrelated names (more than three people or organisations that the
  answer does not have);
* `on_topic`: it keeps at least half of the answer's own words other than the fact (the frame of the
  sentence) and is between a third and three times the answer's length;
* `fluent`: no generation loop (repeated word trigrams), no markup, brackets or scripts the answer
  does not have, balanced quotes, and it ends like a sentence.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from typing import Any

from meow.data.spans import contains_span, fact_spans, nlp, normalized, subject_spans, words
from meow.invert.parse import FUNCTION_WORDS, is_repetition, restatement_recall

CHECKS = ("keeps_subject", "changes_fact", "not_restatement", "not_refusal", "not_name_list", "on_topic", "fluent")
REFUSAL = re.compile(
    r"\b(i (do not|don't|cannot|can't|am not able)|i'm (sorry|not sure|unable)|as an ai|not (available|known|"
    r"mentioned|provided)|no information|unknown)\b",
    re.IGNORECASE,
)
NAME_LABELS = ("PERSON", "ORG")
# Markup, code and cut-off text that no sentence of an answer has.
GARBAGE = re.compile(r"[\[\]{}<>|\\_*#@~^=]|--|\.\.\.|\(\s*\)")


def candidate_quality(
    question: str, answer: str, candidate: str, secrets: Sequence[str], subject: Sequence[str], restate_threshold: float
) -> dict[str, bool]:
    """The checks of the module docstring for one candidate; `coherent` is all of them."""
    text = normalized(candidate)
    checks = {
        "keeps_subject": not subject or any(contains_span(candidate, s) for s in subject),
        "changes_fact": text != normalized(answer) and not any(contains_span(candidate, s) for s in secrets),
        "not_restatement": bool(secrets) or restatement_recall(answer, candidate) <= restate_threshold,
        "not_refusal": REFUSAL.search(candidate) is None,
        "not_name_list": _foreign_names(answer, candidate) <= 3,
        "on_topic": _keeps_frame(question, answer, candidate, secrets),
        "fluent": _fluent(answer, candidate),
    }
    checks["coherent"] = all(checks.values())
    return checks


def _fluent(answer: str, candidate: str) -> bool:
    if is_repetition(candidate) or candidate.rstrip()[-1:] not in '.!?"”)\'':
        return False
    if answer.isascii() and not candidate.isascii():
        return False
    return GARBAGE.search(candidate) is None and candidate.count('"') % 2 == 0


def _foreign_names(answer: str, candidate: str) -> int:
    known = normalized(answer)
    return sum(
        1 for e in nlp()(candidate).ents if e.label_ in NAME_LABELS and normalized(e.text) not in known
    )


def _keeps_frame(question: str, answer: str, candidate: str, secrets: Sequence[str]) -> bool:
    secret_words = {w for s in secrets for w in words(s)}
    frame = {w for w in words(answer) if w not in FUNCTION_WORDS and w not in secret_words and len(w) > 1}
    ratio = len(candidate) / max(1, len(answer))
    if not 1 / 3 <= ratio <= 3:
        return False
    if not frame:
        return True
    return len(frame & set(words(candidate))) >= len(frame) / 2


def fact_quality(record: dict[str, Any], restate_threshold: float) -> list[dict[str, bool]]:
    """Per-candidate checks of one `candidates.jsonl` record (spans found anew unless the record has them)."""
    question, answer = record["question"], record["answer"]
    secrets = [s["text"] for s in record["spans"]] if "spans" in record else [s.text for s in fact_spans(question, answer)]
    subject = record["subject"] if "subject" in record else subject_spans(question, answer)
    return [candidate_quality(question, answer, c, secrets, subject, restate_threshold) for c in record["candidates"]]


def shares(checks: Iterable[dict[str, bool]]) -> dict[str, Any]:
    """The share of candidates passing each check, and how many were checked."""
    checks = list(checks)
    out: dict[str, Any] = {"n": len(checks)}
    for name in (*CHECKS, "coherent"):
        out[name] = round(sum(c[name] for c in checks) / len(checks), 4) if checks else None
    return out
