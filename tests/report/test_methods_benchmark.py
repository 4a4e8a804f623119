"""benchmarks/tofu_methods.py: the per-method specs it runs and the table it prints (no models)."""

import pytest

from meow.pipeline.spec import load_spec


@pytest.fixture(scope="module")
def bench(load_benchmark):
    return load_benchmark("tofu_methods")


BASE = """
name: tofu-forget01-smollm2
stages: [prepare, invert, memo, select, unlearn, evaluate, report]
unlearn: {method: meow, method_args: {sequences_per_fact: 8}, train: {epochs: 3}}
"""


def test_each_method_gets_the_same_spec_and_only_meow_builds_inverted_facts(bench):
    base = load_spec(BASE)
    meow = bench.method_spec(base, "meow")
    assert meow.stages == base.stages and meow.unlearn.method_args == {"sequences_per_fact": 8}
    npo = bench.method_spec(base, "npo")
    assert npo.stages == ("prepare", "unlearn", "evaluate", "report")
    assert npo.name == "tofu-forget01-smollm2-npo" and npo.unlearn.method == "npo"
    # Same data, preparation and training recipe; MEOW's own arguments do not leak into others.
    assert npo.unlearn.method_args == {} and npo.unlearn.train == base.unlearn.train
    assert npo.prepare == base.prepare and npo.forget == base.forget and npo.evaluate == base.evaluate
    with pytest.raises(SystemExit, match="report"):
        bench.method_spec(load_spec("stages: [unlearn, evaluate]"), "npo")


def test_table_and_relative_utility(bench):
    result = {
        "target": {"forget_quality": 0.0012, "model_utility": 0.5, "forget_rouge_l": 0.9, "wall_s": 100.0},
        "oracle": {"forget_quality": 1.0, "model_utility": 0.48, "forget_rouge_l": 0.3, "wall_s": 80.0},
        "methods": {"meow": {"forget_quality": 0.4, "model_utility": 0.475, "forget_rouge_l": 0.35, "wall_s": 42.0}},
    }
    lines = bench.table(result).splitlines()
    assert lines[0].split() == ["model", "FQ", "MU", "MU/target", "forget", "ROUGE-L", "wall", "s", "best", "FQ@0.95x", "best", "FQ@0.9x"]
    assert lines[1].split() == ["target", "0.0012", "0.500", "1.00x", "0.900", "100", "-", "-"]
    assert lines[3].split() == ["meow", "0.4", "0.475", "0.95x", "0.350", "42", "-", "-"]


def test_best_forget_quality_along_the_frontier(bench):
    # Utility falls as forgetting grows: the best FQ at >= 0.95x is epoch 2's, at >= 0.9x epoch 3's.
    frontier = [
        {"epoch": 0, "forget_quality": 0.01, "model_utility": 0.50},
        {"epoch": 1, "forget_quality": 0.10, "model_utility": 0.49},
        {"epoch": 2, "forget_quality": 0.30, "model_utility": 0.476},
        {"epoch": 3, "forget_quality": 0.60, "model_utility": 0.455},
        {"epoch": 4, "forget_quality": 0.90, "model_utility": 0.40},
    ]
    entry = bench._entry({**frontier[-1], "frontier": frontier}, target_mu=0.5)
    assert entry["best_forget_quality"] == {"0.95": 0.30, "0.9": 0.60}
    result = {"target": {"forget_quality": 0.01, "model_utility": 0.5}, "methods": {"meow": entry}}
    lines = bench.table(result).splitlines()
    assert lines[2].split()[-2:] == ["0.3", "0.6"]
    assert lines[3] == "meow frontier (epoch: FQ / MU): 0: 0.01 / 0.500, 1: 0.1 / 0.490, 2: 0.3 / 0.476, 3: 0.6 / 0.455, 4: 0.9 / 0.400"
    # Without a frontier the final model is the only point; no point keeps the utility -> None.
    assert bench._entry({"forget_quality": 0.5, "model_utility": 0.3}, 0.5)["best_forget_quality"] == {"0.95": None, "0.9": None}
