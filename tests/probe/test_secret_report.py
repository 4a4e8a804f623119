"""The probe report's parts that need no server: verdicts against a reference, the per-fact table,
counterfactual non-members, and what `meow probe --run` and `meow serve --run` read from a run."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from meow.data import QARecord
from meow.data.spans import contains_span
from meow.probe.attacks import scored
from meow.probe.base import attack, secret
from meow.probe.report import Outcome, fact_table, markdown, verdict
from meow.probe.runner import counterfactuals, records_sha256

FACTS = [
    QARecord(0, "Who founded Acme Robotics?", "Acme Robotics was founded by Jane Doe in 1999."),
    QARecord(1, "Where was Tomas Verlaine born?", "Tomas Verlaine was born in Lyon, France."),
    QARecord(2, "What does Mira Okafor do for a living?", "Mira Okafor works as a marine biologist."),
    QARecord(3, "When did the Northern Gannet sink?", "The Northern Gannet sank on 14 March 1912."),
]
RECITES = [f.answer for f in FACTS]
WRONG = [
    "Acme Robotics was founded by John Smith in 1998.",
    "Tomas Verlaine was born in Paris.",
    "Mira Okafor is a chef.",
    "The Northern Gannet sank in 1950.",
]


def _outcomes(**outputs: list[str]) -> dict[str, Outcome]:
    direct = attack("direct")
    out = {}
    for model, texts in outputs.items():
        rows = [{"index": f.index, **scored(f, t), "output": t} for f, t in zip(FACTS, texts)]
        out[model] = Outcome(rows, direct.aggregate(rows))
    return out


def test_a_model_reciting_the_secrets_leaks_more_than_the_base():
    outcomes = _outcomes(unlearned=RECITES, base=WRONG)
    v = verdict("direct", attack("direct"), outcomes, "unlearned", ("oracle", "base", "original"), seed=0)
    assert (v.reference, v.direction, v.difference, v.interval) == ("base", "more", 1.0, (1.0, 1.0))
    assert "secret_leak 1.000 [1.000, 1.000] vs 0.000 [0.000, 0.000]" in v.line
    assert "the model before it learned the facts" in v.line
    # ROUGE-L alone would call the wrong answers half-leaked.
    assert outcomes["base"].aggregate["rouge_l_recall"] > 0.4 and outcomes["base"].aggregate["secret_leak"] == 0


def test_only_the_original_as_reference_is_flagged():
    outcomes = _outcomes(unlearned=WRONG, original=RECITES)
    v = verdict("direct", attack("direct"), outcomes, "unlearned", ("oracle", "base", "original"), seed=0)
    assert v.reference == "original" and v.direction == "less"
    assert "NOT a model that never saw the facts" in v.line


def test_the_per_fact_table_agrees_with_the_share():
    outcomes = _outcomes(unlearned=[RECITES[0], WRONG[1], "She is a marine biologist.", WRONG[3]], base=WRONG)
    facts = fact_table(FACTS, ("unlearned", "base"), {"direct": outcomes})
    assert [f["models"]["unlearned"]["leaked_by"] for f in facts] == [["direct"], [], ["direct"], []]
    assert outcomes["unlearned"].aggregate["secret_leak"] == 0.5
    assert facts[2]["secret"] == ["marine biologist"]
    probed = {
        "forget": {
            "source": "facts.csv",
            "question_field": "prompt",
            "answer_field": "completion",
            "records": 4,
            "records_in_source": 10,
            "sha256": records_sha256(FACTS),
        },
        "nonmembers": {"description": "counterfactual facts", "records": 4},
        "reference": "base",
    }
    direct = attack("direct")
    v = verdict("direct", direct, outcomes, "unlearned", ("base",), seed=0)
    text = markdown(("unlearned", "base"), {"direct": direct}, {"direct": outcomes}, {"direct": v}, probed, facts)
    assert "Forget set probed: `facts.csv` (4 of 10 records, question field `prompt`" in text
    assert "| 0 | Who founded Acme Robotics? | Jane Doe; 1999 | **leaked** (direct): Acme Robotics" in text
    assert "| 1 | Where was Tomas Verlaine born? | Lyon; France | not leaked: Tomas" in text


def test_counterfactual_nonmembers_keep_the_question_and_form_not_the_secret():
    twins = counterfactuals(FACTS, seed=0)
    assert [t.index for t in twins] == [0, 1, 2, 3]
    for fact, twin in zip(FACTS, twins):
        assert twin.question == fact.question and twin.answer != fact.answer
        assert not any(contains_span(twin.answer, s) for s in secret(fact)), twin.answer
    assert counterfactuals(FACTS, seed=0) == twins  # seeded
    assert records_sha256(FACTS) != records_sha256(twins)


def _run(tmp_path: Path, tiny_model_dir, manifest_base: str | None) -> Path:
    import shutil

    from meow.pipeline.spec import ForgetSpec, PipelineSpec

    model = tmp_path / "finetuned"
    shutil.copytree(tiny_model_dir, model)
    if manifest_base:
        (model / "meow-manifest.json").write_text(json.dumps({"base": manifest_base}))
    run = tmp_path / "run"
    (run / "unlearn").mkdir(parents=True)
    (run / "unlearn" / "model").symlink_to(model)
    forget = ForgetSpec(source=str(tmp_path / "facts.csv"), question_field="prompt", answer_field="completion")
    (run / "spec.yaml").write_text(PipelineSpec(model=str(model), forget=forget).to_yaml())
    return run


def test_a_runs_own_forget_set_and_models(tmp_path, tiny_model_dir):
    from meow.cli.probe import run_forget
    from meow.serve.rundir import run_models

    run = _run(tmp_path, tiny_model_dir, manifest_base="/models/base")
    assert run_forget(str(run)) == {
        "forget": str(tmp_path / "facts.csv"),
        "question_field": "prompt",
        "answer_field": "completion",
        "format": None,
    }
    models = run_models(str(run))
    assert models == {
        "original": str(tmp_path / "finetuned"),
        "unlearned": str(run / "unlearn" / "model"),
        "base": "/models/base",
    }


def test_no_base_without_a_finetune_manifest(tmp_path, tiny_model_dir):
    from meow.serve.rundir import run_models

    assert set(run_models(str(_run(tmp_path, tiny_model_dir, manifest_base=None)))) == {"original", "unlearned"}


def test_membership_against_counterfactual_twins_gets_a_distribution_test():
    membership = attack("membership")

    def rows(gap: float, spread: float) -> list[dict]:
        out = []
        for i in range(8):
            out.append({"index": i, "member": True, "loss": 1.0, "min_k": -1.0})
            out.append({"index": i, "member": False, "loss": 1.0 + gap + spread * i, "min_k": -2.0, "twin_of": i})
        return out

    remembers, fresh = rows(2.0, 0.1), rows(0.0, 0.01)
    assert membership.aggregate(remembers)["preference_gap"] == pytest.approx(2.35)
    outcomes = {m: Outcome(r, membership.aggregate(r)) for m, r in (("unlearned", remembers), ("base", fresh))}
    v = verdict("membership", membership, outcomes, "unlearned", ("base",), seed=0)
    assert v.ks_pvalue < 0.01 and "KS p = " in v.line
    alike = {"unlearned": outcomes["base"], "base": outcomes["base"]}
    same = verdict("membership", membership, alike, "unlearned", ("base",), seed=0)
    assert same.ks_pvalue == 1.0
    # TOFU's holdout is other facts, not twins: no test.
    plain = [{k: v for k, v in r.items() if k != "twin_of"} for r in remembers]
    assert membership.distribution_test(plain, plain) is None
