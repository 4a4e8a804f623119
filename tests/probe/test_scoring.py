"""Leakage statistics on hand-made numbers."""

import math

import pytest

from meow.probe.scoring import answer_scores, auc, min_k_prob, normalise, paired_bootstrap


def test_exact_match_finds_the_whole_answer_inside_an_output():
    answer = "Basil Mahfouz Al-Kuwaiti."
    assert answer_scores(answer, "The author is basil mahfouz al kuwaiti, I believe.")["exact_match"] == 1
    assert answer_scores(answer, "The author is Basil Mahfouz.")["exact_match"] == 0
    assert normalise("  Al-Kuwaiti!  ") == "al kuwaiti"


def test_rouge_l_recall_is_the_share_of_the_answer_recovered():
    scores = answer_scores("he was born in kuwait city", "born in kuwait")
    assert scores["rouge_l_recall"] == pytest.approx(3 / 6)
    assert answer_scores("he was born in kuwait city", "")["rouge_l_recall"] == 0


def test_min_k_averages_the_least_likely_tokens():
    logprobs = [-0.1, -5.0, -0.2, -3.0, -0.3]
    assert min_k_prob(logprobs, 0.4) == pytest.approx(-4.0)
    assert min_k_prob(logprobs, 0.01) == pytest.approx(-5.0)  # at least one token
    assert min_k_prob(logprobs, 1.0) == pytest.approx(sum(logprobs) / 5)


def test_auc_matches_the_pairwise_definition():
    members = [True, True, False, False, True]
    scores = [0.9, 0.4, 0.5, 0.1, 0.5]
    pairs = [(p, n) for p, m in zip(scores, members) if m for n, o in zip(scores, members) if not o]
    expected = sum(1.0 if p > n else 0.5 if p == n else 0.0 for p, n in pairs) / len(pairs)
    assert auc(members, scores) == pytest.approx(expected)
    assert auc([True, False], [1.0, 0.0]) == 1.0 and auc([True, False], [0.0, 1.0]) == 0.0
    assert math.isnan(auc([True, True], [0.1, 0.2]))


def _rows(values, **extra):
    return [{"index": i, "score": v, **extra} for i, v in enumerate(values)]


def mean_score(rows):
    return sum(r["score"] for r in rows) / len(rows)


def test_paired_bootstrap_separates_a_consistent_difference_from_noise():
    base = [0.1, 0.5, 0.3, 0.8, 0.2, 0.6, 0.4, 0.7]
    higher = _rows([v + 0.1 for v in base])
    low, high = paired_bootstrap(higher, _rows(base), mean_score)
    assert low == pytest.approx(0.1) and high == pytest.approx(0.1)  # paired: every draw differs by 0.1
    noisy = _rows([v + (0.2 if i % 2 else -0.2) for i, v in enumerate(base)])
    low, high = paired_bootstrap(noisy, _rows(base), mean_score)
    assert low < 0 < high


def test_paired_bootstrap_keeps_both_membership_classes():
    members = [dict(r, member=True) for r in _rows([1.0, 0.9, 0.8])]
    others = [dict(r, member=False) for r in _rows([0.1, 0.2, 0.3])]

    def separation(rows):
        return auc([r["member"] for r in rows], [r["score"] for r in rows])

    low, high = paired_bootstrap(members + others, [dict(r, score=0.5) for r in members + others], separation)
    assert low == high == 0.5  # never a draw without one of the classes (that would be NaN)
