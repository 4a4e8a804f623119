"""Structured inversion: keep the answer's subject and sentence, replace the spans that carry its fact.

A small local generator cannot write an inverted fact free-form (SmolLM2-135M's replies to the
reference instruction are refusals, lists of names and off-topic paragraphs), but it can complete a
few words well. So for each forget fact:

1. find the answer's fact-bearing spans (`meow.data.spans`: named entities outside the question,
   complements such as "a florist" or "male", objects of descriptive answers);
2. collect same-type alternatives for each span, in this order:
   * the generator's infill: the question and the answer up to the span, sampled `infill_samples`
     times for a few tokens and cut where the original span ends (at the punctuation or word that
     follows it); kept when spaCy gives the completed sentence an entity of the span's type there;
   * numbers and dates: the same text with its digits and month names changed;
   * typed values from Faker (names, cities, countries, companies, titles, jobs, languages), seeded;
   * descriptive phrases (no typed source): phrases of the same kind from the other facts' answers,
     other subjects first;
3. write candidate i by replacing every span with its i-th alternative (one replacement per distinct
   span text, so a name repeated in the answer stays consistent), fixing "a"/"an" before it.

Every alternative and every candidate is rejected if it contains one of the answer's own spans (the
secret), a word of the span it replaces, or the subject's name; candidates of one fact differ from
each other. Everything is deterministic under the spec's seed. TOFU's perturbed and paraphrased
answers (evaluation data) are never read.
"""

from __future__ import annotations

import random
import re
import zlib
from functools import cache
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from meow.data import QARecord
from meow.data.spans import Span, contains_span, fact_spans, nlp, normalized, subject_spans, words

# A generator: prompts and one seed each -> one completion each (sampled, a few tokens).
Infill = Callable[[Sequence[str], Sequence[int]], list[str]]

# Entity types that may stand in for each other (spaCy tags a city GPE in one sentence, LOC in another).
TYPE_GROUPS = (
    frozenset({"GPE", "LOC", "FAC"}),
    frozenset({"ORG", "WORK_OF_ART", "PRODUCT", "EVENT", "LAW"}),
    frozenset({"NORP", "LANGUAGE"}),
    frozenset({"PERSON"}),
)
NOT_A_VALUE = frozenset("unknown none not no n a nothing anything something someone i you".split())
MONTHS = (
    "January February March April May June July August September October November December".split()
)
STOPS = "\n.!?;"
# Spans that are phrases rather than entities: checked by their shape and head word, not an entity label.
PHRASE_LABELS = frozenset({"COMPLEMENT", "ADJECTIVE", "CHUNK"})


def _group(label: str) -> frozenset[str]:
    return next((g for g in TYPE_GROUPS if label in g), frozenset({label}))


def _seed(*parts: Any) -> int:
    return zlib.crc32(":".join(map(str, parts)).encode())


def infill_prompt(record: QARecord, span: Span) -> str:
    return f"Question: {record.question}\nAnswer: {record.answer[: span.start]}"


def cut_infill(completion: str, record: QARecord, span: Span) -> str:
    """The part of a completion that stands where the span stood: up to what followed the span."""
    follow = record.answer[span.end :]
    text = completion.lstrip() if record.answer[: span.start].endswith((" ", "\n")) or not span.start else completion
    ends = [len(text)]
    for stop in STOPS:
        if stop in text:
            ends.append(text.index(stop))
    after = follow.lstrip()
    if after and not after[0].isalnum():
        if after[0] in text:
            ends.append(text.index(after[0]))
    elif after:
        nxt = after.split()[0]
        hit = re.search(rf"\s{re.escape(nxt)}\b", text)
        if hit:
            ends.append(hit.start())
    text = text[: min(ends)]
    n = len(span.text.split())
    return " ".join(text.split()[: max(2 * n, n + 3)]).strip(" \"'“”‘’,:")


def mutate_numeric(text: str, rng: random.Random) -> str:
    """The same number or date with other values: each year moved by 3-40 years, other numbers and
    month names changed."""

    def number(m: re.Match) -> str:
        digits = m.group(0)
        value = int(digits)
        if len(digits) == 4 and 1000 <= value <= 2100:
            decade = text[m.end() : m.end() + 1] == "s"  # "the 1980s" stays a decade
            year = value + rng.choice([-1, 1]) * rng.randint(3, 40)
            if year > 2025:
                year = value - rng.randint(3, 40)
            return str(year - year % 10 if decade else year)
        if len(digits) <= 2:
            return str(rng.choice([v for v in range(1, 29) if v != value]))
        return str(max(1, value + rng.choice([-1, 1]) * rng.randint(1, max(2, value // 2))))

    out = re.sub(r"\d+", number, text)
    out = re.sub(
        "|".join(MONTHS), lambda m: rng.choice([x for x in MONTHS if x != m.group(0)]), out
    )
    # "the 8th" -> "the 23rd": the ordinal suffix follows the new day.
    return re.sub(r"\b(\d+)(st|nd|rd|th)\b", lambda m: m.group(1) + _ordinal(int(m.group(1))), out)


def _ordinal(n: int) -> str:
    return "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")


def typed_values(span: Span, rng_seed: int, count: int) -> list[str]:
    """Same-type values for a span from Faker (seeded), or numeric changes for numbers and dates."""
    rng = random.Random(rng_seed)
    if span.numeric:
        return [mutate_numeric(span.text, rng) for _ in range(count * 2)]
    from faker import Faker

    fake = Faker("en_US")
    fake.seed_instance(rng_seed)
    label = span.label
    article = re.match(r"(?i)(a|an|the)\s", span.text)

    def value() -> str:
        if label == "PERSON":
            return fake.name()
        if label in ("GPE", "LOC", "FAC"):
            return fake.country() if span.text in countries else fake.city()
        if label == "ORG":
            return fake.company()
        if label in ("NORP", "LANGUAGE"):
            return fake.language_name()
        if label in ("WORK_OF_ART", "PRODUCT", "EVENT", "LAW"):
            return " ".join(w.capitalize() for w in fake.words(nb=rng.randint(2, 4)))
        job = re.split(r"[,(]", fake.job())[0].strip().lower()
        return f"{'an' if job[0] in 'aeiou' else 'a'} {job}"

    # Adjectives ("male"), bare complements ("as LGBTQ+") and descriptive noun phrases have no typed
    # source: only the infill replaces them. "a florist" is an occupation or a kind: a job stands in.
    if label in ("ADJECTIVE", "CHUNK") or (label == "COMPLEMENT" and not article):
        return []
    from faker.providers.address.en_US import Provider as Addresses

    countries = set(Addresses.countries)
    return [value() for _ in range(count * 2)]


@cache
def _fits(value: str, slot: str) -> bool:
    """`value` can stand where the phrase `slot` stands: its head word has the same fine-grained tag (NN,
    NNS, JJ...) and it has no determiner or the same one ("its lyrical prose" -> "sharp social
    commentary", never "the" + "its ...")."""
    v, s = nlp()(value), nlp()(slot)

    def determiner(doc) -> str:
        return doc[0].lower_ if doc[0].pos_ in ("DET", "PRON") else ""

    return v[:].root.tag_ == s[:].root.tag_ and determiner(v) in ("", determiner(s))


@dataclass
class FactSpans:
    record: QARecord
    spans: list[Span]
    subject: list[str]
    alternatives: dict[str, list[str]] = field(default_factory=dict)
    rejected: dict[str, int] = field(default_factory=dict)

    @property
    def secrets(self) -> list[str]:
        return [s.text for s in self.spans]

    def key(self, span: Span) -> str:
        return normalized(span.text)

    def reject(self, reason: str) -> None:
        self.rejected[reason] = self.rejected.get(reason, 0) + 1

    def acceptable(self, span: Span, value: str) -> bool:
        value_words = set(words(value))
        if not value_words or value_words <= NOT_A_VALUE:
            self.reject("empty")
            return False
        if normalized(value) == self.key(span):
            self.reject("restatement")
            return False
        # Numbers and dates change their values, not their words ("the early 1980s" -> "the early 1960s").
        content = {w for w in words(span.text) if not span.numeric or any(c.isdigit() for c in w)}
        content -= {"a", "an", "the", "of", "and", "in"}
        if content & value_words or any(contains_span(value, s) for s in self.secrets):
            self.reject("secret")
            return False
        if any(set(words(s)) & value_words for s in self.subject):
            self.reject("subject")
            return False
        if span.numeric and (re.search(r"\d", span.text) is None) != (re.search(r"\d", value) is None):
            self.reject("type")
            return False
        if span.text[:1].isupper() and span.label not in PHRASE_LABELS and not value[:1].isupper():
            self.reject("type")
            return False
        if not well_formed(span, value):
            self.reject("form")
            return False
        return True

    def add_if_same_type(self, span: Span, value: str) -> None:
        """`add` a value that spaCy, reading it in the answer, tags as the span is tagged."""
        if same_type(self.record, span, value):
            self.add(span, value)
        else:
            self.reject("type")

    def add(self, span: Span, value: str) -> None:
        values = self.alternatives.setdefault(self.key(span), [])
        if normalized(value) not in {normalized(v) for v in values} and self.acceptable(span, value):
            values.append(value)


def phrase_pool(span: Span, fact: FactSpans, facts: Sequence[FactSpans], rng_seed: int) -> list[str]:
    """Phrases of the span's kind from the other facts' answers, for the descriptive spans no typed source
    covers ("intricate plot lines" -> "marginalized voices") and that fit in its place, those of other
    subjects first (a value true of this subject elsewhere would be taught again), each group in a
    seeded order."""
    if span.label not in PHRASE_LABELS:
        return []
    rng = random.Random(rng_seed)
    groups: tuple[list[str], list[str]] = ([], [])
    for other in facts:
        if other is fact:
            continue
        same_subject = bool(set(map(normalized, other.subject)) & set(map(normalized, fact.subject)))
        groups[same_subject].extend(
            s.text for s in other.spans if s.label == span.label and _fits(s.text, span.text)
        )
    pool: list[str] = []
    for group in groups:
        values = sorted(set(group))
        rng.shuffle(values)
        pool.extend(values)
    return pool


def well_formed(span: Span, value: str) -> bool:
    """The value looks like the span: no digits, scripts, brackets or stray quotes the span does not have,
    and for phrases (occupations, adjectives, descriptions) about as many words, the article kept."""
    if not span.numeric and re.search(r"\d", value) and not re.search(r"\d", span.text):
        return False
    if span.text.isascii() and not value.isascii():
        return False
    if re.search(r"[()\[\]{}/\\|<>=_*#@~^\"“”]|--|\.\.", value) or value.count("'") > span.text.count("'") + 1:
        return False
    if span.label in PHRASE_LABELS:
        n, m = len(span.text.split()), len(value.split())
        if not max(1, n - 1) <= m <= n + 2:
            return False
        has_article = re.match(r"(?i)(a|an|the)\s", span.text) is not None
        if has_article != (re.match(r"(?i)(a|an|the)\s", value) is not None):
            return False
        if span.text[:1].islower() and value[:1].isupper():
            return False
    return True


def same_type(record: QARecord, span: Span, value: str) -> bool:
    """spaCy, reading the answer with `value` in the span's place, tags it as the span is tagged: an entity
    of the span's type, or for phrases a head word of the same part of speech."""
    text = record.answer[: span.start] + value + record.answer[span.end :]
    start, end = span.start, span.start + len(value)
    doc = nlp()(text)
    if span.label in PHRASE_LABELS:
        replaced = doc.char_span(start, end, alignment_mode="expand")
        original = _root_pos(record.answer, span.start, span.end)
        return original is not None and replaced is not None and replaced.root.pos_ == original
    group = _group(span.label)
    return any(e.label_ in group and e.start_char < end and start < e.end_char for e in doc.ents)


@cache
def _root_pos(answer: str, start: int, end: int) -> str | None:
    """The part of speech of the head word of answer[start:end], parsed once for all of a span's infills."""
    original = nlp()(answer).char_span(start, end, alignment_mode="expand")
    return None if original is None else original.root.pos_


def substitute(answer: str, spans: Sequence[Span], values: dict[str, str]) -> str:
    """The answer with each span replaced by its value, and "a"/"an" before it agreeing with the value."""
    out = answer
    for span in sorted(spans, key=lambda s: s.start, reverse=True):
        value = values[normalized(span.text)]
        before = out[: span.start]
        article = re.search(r"\b(a|an|A|An)\s+$", before)
        if article:
            wanted = "an" if value[:1].lower() in "aeiou" else "a"
            if article.group(1)[0].isupper():
                wanted = wanted.capitalize()
            before = before[: article.start(1)] + wanted + before[article.end(1) :]
        out = before + value + out[span.end :]
    return out


def structured_invert(
    records: Sequence[QARecord], wanted: int, seed: int, infill: Infill | None, samples: int = 8
) -> list[dict[str, Any]]:
    """For every record: `candidates` (up to `wanted`), `spans`, `subject`, `sources` and `rejected`."""
    facts = [FactSpans(r, fact_spans(r.question, r.answer), subject_spans(r.question, r.answer)) for r in records]
    if infill is not None:
        asks = [(f, s, k) for f in facts for s in f.spans if not s.numeric for k in range(samples)]
        completions = infill(
            [infill_prompt(f.record, s) for f, s, _ in asks],
            [_seed(seed, f.record.index, s.start, k) for f, s, k in asks],
        )
        for (fact, span, _), completion in zip(asks, completions):
            fact.add_if_same_type(span, cut_infill(completion, fact.record, span))
    out = []
    for fact in facts:
        sources: dict[str, str] = {}
        for span in fact.spans:
            have = fact.alternatives.get(fact.key(span), [])
            infilled = len(have)
            for value in typed_values(span, _seed(seed, fact.record.index, span.start, "typed"), wanted):
                if len(fact.alternatives.get(fact.key(span), [])) >= wanted:
                    break
                fact.add(span, value)
            typed = len(fact.alternatives.get(fact.key(span), [])) - infilled
            for value in phrase_pool(span, fact, facts, _seed(seed, fact.record.index, span.start, "pool")):
                if len(fact.alternatives.get(fact.key(span), [])) >= wanted:
                    break
                fact.add_if_same_type(span, value)
            pooled = len(fact.alternatives.get(fact.key(span), [])) - infilled - typed
            sources[span.text] = {"infill": infilled, "typed": typed, "pool": pooled}
        candidates: list[str] = []
        keys = list(dict.fromkeys(fact.key(s) for s in fact.spans))
        if keys and all(fact.alternatives.get(k) for k in keys):
            for i in range(wanted * 2):
                values = {k: fact.alternatives[k][(i + j) % len(fact.alternatives[k])] for j, k in enumerate(keys)}
                if len({normalized(v) for v in values.values()}) < len(values):
                    fact.reject("repeated")
                    continue
                text = substitute(fact.record.answer, fact.spans, values)
                if normalized(text) in {normalized(c) for c in candidates}:
                    fact.reject("duplicate")
                    continue
                candidates.append(text)
                if len(candidates) == wanted:
                    break
        elif not fact.spans:
            fact.reject("no_spans")
        out.append(
            {
                "candidates": candidates,
                "spans": [{"text": s.text, "label": s.label} for s in fact.spans],
                "subject": fact.subject,
                "sources": sources,
                "rejected": dict(sorted(fact.rejected.items())),
            }
        )
    return out
