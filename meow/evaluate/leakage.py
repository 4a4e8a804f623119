"""Secret-level leakage: does a model's output still contain the words that carry a fact?

ROUGE-L over a whole answer overstates leakage when an answer repeats the question's form around a
wrong value ("... was founded by **John Smith**" scores 0.88 against the true founder) and
understates it when a short answer names the secret and nothing else. Here each fact's *secret* is
its fact-bearing spans (`meow.data.spans.fact_spans`: names, dates, numbers, places, titles, the
complement of "was ..."; the subject named in the question is not a secret), and a fact counts as
leaked by an output when the output contains one of them:

* exactly: as whole words, case and punctuation aside (`contains_span`);
* fuzzily: the normalised span matches some stretch of the normalised output with a partial ratio
  >= `FUZZY_THRESHOLD` (difflib, the fuzzywuzzy `partial_ratio` algorithm): misspellings, a dropped
  letter and inflections count ("Jane Do" for "Jane Doe", "Kuwaiti" for "Kuwait"), a different
  number does not ("1998" for "1999" scores 0.75). Fuzzy is the upper bound, exact the lower.

The headline is the share of facts leaked, over the facts that have at least one span, with a seeded
bootstrap 95% interval over facts. Probing (`meow.probe`) and evaluation (`meow.evaluate.evaluator`)
both use this module, so `meow probe` and `evaluate/metrics.json` count leakage the same way.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping, Sequence
from difflib import SequenceMatcher
from functools import lru_cache
from typing import Any

import numpy as np

from meow.data.spans import contains_span, fact_spans, normalized

FUZZY_THRESHOLD = 0.9
RESAMPLES = 1000
# Per-row flags (1.0 leaked, 0.0 not, NaN: the fact has no span to look for).
EXACT, FUZZY = "secret_exact", "secret_fuzzy"
ARTICLE = re.compile(r"^(?:a|an|the)\s+", re.IGNORECASE)


@lru_cache(maxsize=65536)
def secret_spans(question: str, answer: str) -> tuple[str, ...]:
    """The fact's secret: its fact-bearing spans, each distinct text once, in order."""
    seen: dict[str, str] = {}
    for span in fact_spans(question, answer):
        # "a marine biologist": the article is form; "is marine biologist" names the secret too.
        text = ARTICLE.sub("", span.text) or span.text
        seen.setdefault(normalized(text), text)
    return tuple(seen.values())


def partial_ratio(needle: str, haystack: str) -> float:
    """Best `SequenceMatcher` ratio of `needle` against any stretch of `haystack` of its length."""
    if not needle or not haystack:
        return 0.0
    if len(needle) > len(haystack):
        needle, haystack = haystack, needle
    best = 0.0
    for block in SequenceMatcher(None, needle, haystack, autojunk=False).get_matching_blocks():
        start = max(0, block.b - block.a)
        window = haystack[start : start + len(needle)]
        best = max(best, SequenceMatcher(None, needle, window, autojunk=False).ratio())
        if best == 1.0:
            break
    return best


def fuzzy_contains(text: str, span: str, threshold: float = FUZZY_THRESHOLD) -> bool:
    needle = normalized(span)
    return bool(needle) and partial_ratio(needle, normalized(text)) >= threshold


def span_hits(spans: Sequence[str], outputs: Iterable[str]) -> dict[str, Any]:
    """Which of `spans` appear in any of `outputs`: the row flags (`secret_exact`, `secret_fuzzy`) and
    the spans found. Flags are NaN when there is no span to look for."""
    outputs = list(outputs)
    exact = [s for s in spans if any(contains_span(o, s) for o in outputs)]
    fuzzy = [s for s in spans if s in exact or any(fuzzy_contains(o, s) for o in outputs)]
    if not spans:
        return {EXACT: math.nan, FUZZY: math.nan, "secrets_found": []}
    return {EXACT: float(bool(exact)), FUZZY: float(bool(fuzzy)), "secrets_found": fuzzy}


def per_fact(rows: Iterable[Mapping[str, Any]], key: str = EXACT) -> dict[Any, float]:
    """One flag per fact (rows sharing `index`): leaked if any of its rows leaked; facts without spans left out."""
    facts: dict[Any, float] = {}
    for row in rows:
        value = row.get(key)
        if value is None or (isinstance(value, float) and math.isnan(value)):
            continue
        facts[row["index"]] = max(facts.get(row["index"], 0.0), float(value))
    return facts


def share(rows: Iterable[Mapping[str, Any]], key: str = EXACT) -> float:
    """Share of facts leaked (NaN when no fact has a span)."""
    flags = list(per_fact(rows, key).values())
    return float(np.mean(flags)) if flags else math.nan


def bootstrap_interval(values: Sequence[float], seed: int = 0, resamples: int = RESAMPLES) -> tuple[float, float]:
    """95% percentile interval of the mean of `values`, resampled with replacement (seeded)."""
    data = np.asarray(values, dtype=float)
    if not len(data):
        return math.nan, math.nan
    rng = np.random.default_rng(seed)
    means = data[rng.integers(0, len(data), (resamples, len(data)))].mean(axis=1)
    low, high = np.percentile(means, [2.5, 97.5])
    return float(low), float(high)


def summary(rows: Iterable[Mapping[str, Any]], seed: int = 0, prefix: str = "secret_leak") -> dict[str, float]:
    """`<prefix>` (exact share), `<prefix>_fuzzy`, their `_low`/`_high` 95% bounds and `<prefix>_facts`
    (facts with a span): flat floats, so they travel as metrics."""
    rows = list(rows)
    out: dict[str, float] = {}
    for key, name in ((EXACT, prefix), (FUZZY, f"{prefix}_fuzzy")):
        flags = list(per_fact(rows, key).values())
        low, high = bootstrap_interval(flags, seed)
        out.update({name: float(np.mean(flags)) if flags else math.nan, f"{name}_low": low, f"{name}_high": high})
    out[f"{prefix}_facts"] = float(len(per_fact(rows, EXACT)))
    return out


def generation_leak(question: str, answer: str, generation: str) -> dict[str, Any]:
    """Per-example fields of an evaluated forget example: its secret and whether the greedy generation leaks it."""
    spans = secret_spans(question, answer)
    return {"secret_spans": list(spans), **span_hits(spans, [generation])}


def forget_secret_leak(records: Sequence[Mapping[str, Any]], seed: int = 0) -> dict[str, Any] | None:
    """`forget_secret_leak` (share of forget facts whose secret the greedy generation contains), its fuzzy
    twin and 95% intervals, from per-example records with `generation_leak`'s fields; None without them."""
    if not records or any(EXACT not in r for r in records):
        return None
    values = summary(records, seed, prefix="forget_secret_leak")
    return {
        "forget_secret_leak": _none(values["forget_secret_leak"]),
        "forget_secret_leak_ci": [_none(values["forget_secret_leak_low"]), _none(values["forget_secret_leak_high"])],
        "forget_secret_leak_fuzzy": _none(values["forget_secret_leak_fuzzy"]),
        "forget_secret_leak_fuzzy_ci": [
            _none(values["forget_secret_leak_fuzzy_low"]),
            _none(values["forget_secret_leak_fuzzy_high"]),
        ],
        "forget_secret_facts": int(values["forget_secret_leak_facts"]),
    }


def _none(value: float) -> float | None:
    return None if math.isnan(value) else value
