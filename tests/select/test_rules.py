"""Selection rules: order, ties without duplicates, seeded random."""

import random

import pytest

from meow.pipeline.records import ScoreRecord, SelectionRecord
from meow.select.rules import RULES, select
from meow.select.stage import selected_record


def test_largest_and_smallest_order_and_ties():
    scores = [0.2, 0.5, 0.5, 0.1, 0.5]
    # Three-way tie at 0.5: all three positions, earlier first (the reference would repeat position 1).
    assert select("largest", scores, 3, seed=42, index=0) == [1, 2, 4]
    assert select("largest", scores, 4, seed=42, index=0) == [1, 2, 4, 0]
    assert select("smallest", scores, 2, seed=42, index=0) == [3, 0]
    assert select("smallest", [0.3, 0.3, 0.3], 3, seed=42, index=0) == [0, 1, 2]


@pytest.mark.parametrize("rule", ["largest", "smallest", "random"])
def test_no_rule_selects_a_candidate_twice_or_more_than_exist(rule):
    rng = random.Random(0)
    for index in range(200):
        scores = [rng.choice([0.0, 0.1, 0.5]) for _ in range(rng.randint(0, 6))]
        chosen = select(rule, scores, 3, seed=42, index=index)
        assert len(chosen) == len(set(chosen)) == min(3, len(scores))
        assert all(0 <= i < len(scores) for i in chosen)


def test_random_is_fixed_by_seed_and_fact_index():
    scores = [0.1] * 8
    first = select("random", scores, 3, seed=42, index=7)
    assert select("random", scores, 3, seed=42, index=7) == first
    # Another fact or another seed draws differently.
    draws = {tuple(select("random", scores, 3, seed=s, index=i)) for s in (42, 43) for i in (7, 8)}
    assert len(draws) == 4


def test_rules_are_registered_by_name():
    assert RULES.names() == ["largest", "random", "smallest"]
    with pytest.raises(KeyError, match="unknown selection rule 'median'"):
        select("median", [0.1], 1, seed=0, index=0)


def test_selected_record_carries_texts_best_first():
    fact = ScoreRecord(
        index=5, question="q", answer="a", candidates=["x", "y", "z", "w"], mode="suffix", variant="exact",
        original_memo=0.9, candidate_memos=[0.1, 0.4, 0.3, 0.2],
    )  # fmt: skip
    record = selected_record(fact, "largest", 3, seed=42)
    assert record == SelectionRecord(
        index=5,
        question="q",
        answer="a",
        selected=["y", "z", "w"],
        selected_candidates=[1, 2, 3],
        selected_memos=[0.4, 0.3, 0.2],
    )
