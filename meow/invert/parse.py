"""From a generator's reply to inverted-fact candidates: one answer per line, the rest filtered out.

The reference splits the reply on newlines and drops empty lines (method spec 1.1). We also strip
list markers the instruction forbids but models add anyway, and drop lines that cannot be an answer
or would defeat unlearning, counting each rejection by reason:

* `empty`: nothing left after stripping markers;
* `header`: a line ending in ':' ("Here are four answers:") introduces answers, it is not one;
* `echo`: the prompt's own "Question: ..." format repeated back;
* `duplicate`: the same text (case, punctuation and spacing aside) as an accepted candidate;
* `repetition`: a generation loop ("The full name of the full name of ..."): in a line of 12 words
  or more, fewer than half of the word trigrams are distinct;
* `restatement`: the line restates the fact to forget, by either of two tests: ROUGE-L recall of
  the original answer in the line above `restate_threshold` (the line carries nearly all of the
  answer), or the line contains every one of the answer's own words, the content words that are
  not already in the question ("The French literature genre." for "... is most known for his
  writings in the French literature genre."; "The author X is male." for "... is male.");
* `secret`: the line still contains one of the answer's fact-bearing spans (`meow.data.spans`: the
  memoir's true title, the birthplace), whatever else it changes.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field
from functools import cache, cached_property

from meow.data.spans import contains_span, normalized

# Leading list markers: "1.", "2)", "(3)", "a)", "-", "*", "•", and labels such as "Answer 2:", "Wrong answer:".
MARKER = re.compile(
    r"^(?:\s*(?:\(?\d{1,2}[.):]|\(?[a-zA-Z]\)|[-*•–]|(?:(?:inverted|wrong)\s+)?answer\s*\d*\s*[:.)-]))+\s*",
    re.IGNORECASE,
)
ECHO = re.compile(r"^question\s*\d*\s*:", re.IGNORECASE)
REASONS = ("empty", "header", "echo", "duplicate", "repetition", "restatement", "secret")
# Words that carry no fact: an answer's own words are its content words not in the question.
FUNCTION_WORDS = frozenset(
    (
        "a an the of in on at to for from by with as and or but not no is are was were be been being has have "
        "had do does did it its he him his she her they them their this that these those which who whom what "
        "when where how why there here also such into than then so"
    ).split()
)
REPETITION_MIN_WORDS = 12


@cache
def _stemmed_words():
    from rouge_score.tokenizers import DefaultTokenizer

    return DefaultTokenizer(use_stemmer=True).tokenize


@cache
def _rouge_l():
    from rouge_score.rouge_scorer import RougeScorer

    return RougeScorer(["rougeL"], use_stemmer=True)


def restatement_recall(original: str, candidate: str) -> float:
    """ROUGE-L recall of the original answer in the candidate (1.0 when it is fully contained)."""
    return _rouge_l().score(original, candidate)["rougeL"].recall


def own_words(question: str, answer: str) -> set[str]:
    """The answer's content words (stemmed, as ROUGE tokenises) that the question does not already contain."""
    tokenize = _stemmed_words()
    # Single letters are no words of a fact: "Kuwaiti's" tokenises to "kuwaiti", "s".
    words = {w for w in tokenize(answer) if len(w) > 1}
    return words - set(tokenize(question)) - FUNCTION_WORDS


def is_repetition(text: str) -> bool:
    words = normalized(text).split()
    if len(words) < REPETITION_MIN_WORDS:
        return False
    trigrams = list(zip(words, words[1:], words[2:]))
    return len(set(trigrams)) < len(trigrams) / 2


@dataclass
class Candidates:
    """The accepted candidates of one fact so far, and why other lines were rejected."""

    original: str
    wanted: int
    restate_threshold: float
    question: str = ""
    # The answer's fact-bearing spans: a line containing one of them still tells the fact.
    secrets: tuple[str, ...] = ()
    accepted: list[str] = field(default_factory=list)
    rejected: Counter = field(default_factory=Counter)

    @cached_property
    def _own_words(self) -> set[str]:
        return own_words(self.question, self.original)

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
        if is_repetition(text):
            return "repetition"
        if restatement_recall(self.original, text) > self.restate_threshold:
            return "restatement"
        answer_words = self._own_words
        if answer_words and answer_words <= set(_stemmed_words()(text)):
            return "restatement"
        if any(contains_span(text, secret) for secret in self.secrets):
            return "secret"
        return None
