"""benchmarks/invert_rounds.py: the comparison it prints (no models)."""

import pytest


@pytest.fixture(scope="module")
def bench(load_benchmark):
    return load_benchmark("invert_rounds")


def result(wall_s, round_s, prompts, candidates, short=0):
    return {
        "wall_s": wall_s, "rounds": len(round_s), "round_s": round_s, "prompts": prompts,
        "candidates": candidates, "short": short,
    }  # fmt: skip


def test_speedup_and_agreement_are_against_the_first_round_size(bench):
    one_round = result(200.0, [199.6], 160, {0: ["a", "b"], 1: ["c"], 2: ["d", "e"]}, short=1)
    # Fact 1 got another candidate, fact 2 the same ones in another order: both count as different.
    rounds_of_2 = result(160.0, [130.2, 29.4], 92, {0: ["a", "b"], 1: ["x"], 2: ["e", "d"]}, short=1)
    summary = bench.summarize({"all": one_round, "2": rounds_of_2})
    assert summary["all"]["speedup"] == 1.0 and summary["all"]["same_candidates_facts"] == 3
    assert summary["2"] == {
        "wall_s": 160.0, "rounds": 2, "round_s": [130.2, 29.4], "prompts": 92, "short": 1,
        "speedup": 1.25, "same_candidates_facts": 1, "facts": 3,
    }  # fmt: skip
    lines = bench.table(summary).splitlines()
    assert len(lines) == 3 and lines[2].split() == ["2", "160.0", "2", "130+29", "92", "1.25x", "1/3", "1"]
