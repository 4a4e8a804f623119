"""Every attack end to end against a real Ray Serve app on 127.0.0.1, and the leakage report.

Three served names: `original` is a tiny model fine-tuned until it recites the first forget
answers (so it must be caught leaking), `unlearned` a tiny model that never saw them, and
`oracle` the very same weights as `unlearned` (so the two must come out the same).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from pydantic import ValidationError

from meow.data import QARecord, load_tofu
from meow.engines import EngineConfig
from meow.probe import ATTACKS, ProbeConfig, run_probe
from meow.probe.relearn import RELEARNERS, RelearnOptions
from meow.serve import ModelEntry, ServeConfig
from meow.testing.memorise import memorise
from meow.testing.servers import free_port

LIMIT = 6
MODELS = ("original", "unlearned", "oracle")
ENGINE = EngineConfig(kv_cache_bytes=64 << 20, max_model_len=512)
OPTIONS = {
    "direct": {"max_tokens": 64},
    "paraphrase": {"max_tokens": 64},
    "prefix": {"max_tokens": 64},
    "sampling": {"max_tokens": 64, "n": 3},
    "relearn": {
        "trainer": "test-finetune",
        "train": {"learning_rate": 3e-3, "epochs": 30},
        "max_tokens": 64,
        "engine": {"name": "hf"},
    },
}


@RELEARNERS.register("test-finetune")
def finetune(model: str, records: list[QARecord], out_dir: Path, options) -> str:
    """Full-batch AdamW, one step per epoch, with plain transformers (seconds on the tiny model; the
    default relearner, meow.train on Ray Train, is exercised by the slow test below)."""
    return memorise(model, records, out_dir, options.train.learning_rate, int(options.train.epochs))


@pytest.fixture(scope="module")
def weights(tiny_model_dir, tmp_path_factory):
    from meow.testing.tiny_model import build_tiny_llama

    recipe = RelearnOptions(trainer="test-finetune", train={"learning_rate": 3e-3, "epochs": 40})
    memorised = finetune(
        str(tiny_model_dir), load_tofu("forget01")[:LIMIT], tmp_path_factory.mktemp("memorised"), recipe
    )
    fresh = str(build_tiny_llama(tmp_path_factory.mktemp("fresh"), seed=1))
    return {"original": memorised, "unlearned": fresh, "oracle": fresh}


@pytest.fixture(scope="module")
def endpoint(ray_local, weights):
    from meow.serve.app import running

    entries = [ModelEntry(name=n, spec=weights[n], engine=ENGINE, num_cpus=0.5) for n in MODELS]
    with running(ServeConfig(models=entries, port=free_port())) as url:
        yield url


@pytest.fixture(scope="module")
def report(endpoint, weights, tmp_path_factory):
    out = tmp_path_factory.mktemp("probe")
    config = ProbeConfig(endpoint=endpoint, models=MODELS, limit=LIMIT, options=OPTIONS, concurrency=4)
    return out, run_probe(config, out, weights=weights)


def test_every_registered_attack_ran_on_every_model(report):
    out, summary = report
    assert set(summary["attacks"]) == set(ATTACKS.names())
    for name, result in summary["attacks"].items():
        for model in MODELS:
            assert "skipped" not in result["models"][model], (name, model)
        rows = [json.loads(line) for line in (out / f"{name}.jsonl").read_text().splitlines()]
        assert {r["model"] for r in rows} == set(MODELS)


def test_the_memorising_model_is_caught_and_the_fresh_one_is_not(report):
    attacks = report[1]["attacks"]
    direct = attacks["direct"]["models"]
    assert direct["original"]["exact_match"] == 1.0 and direct["original"]["rouge_l_recall"] == 1.0
    assert direct["unlearned"]["rouge_l_recall"] < 0.5 and direct["unlearned"]["exact_match"] == 0
    # Secret-level: every fact's spans come back from the memorising model, none from the fresh one.
    assert direct["original"]["secret_leak"] == 1.0 and direct["original"]["secret_leak_low"] == 1.0
    assert direct["unlearned"]["secret_leak"] == 0.0
    prefix = attacks["prefix"]["models"]
    assert prefix["original"]["rouge_l_recall"] > 0.9 > 0.5 > prefix["unlearned"]["rouge_l_recall"]
    assert (
        attacks["sampling"]["models"]["original"]["rouge_l_recall"]
        > attacks["sampling"]["models"]["unlearned"]["rouge_l_recall"]
    )
    membership = attacks["membership"]["models"]
    assert membership["original"]["auc_loss"] == 1.0
    assert membership["original"]["loss_forget"] < membership["original"]["loss_holdout"]
    assert membership["unlearned"]["auc_loss"] < 1.0


def test_identical_models_get_the_same_verdict_and_leakier_ones_do_not(report):
    from meow.probe.attacks import attack
    from meow.probe.report import Outcome, verdict

    out, summary = report
    for name, result in summary["attacks"].items():
        v = result["verdict"]
        assert (v["subject"], v["reference"]) == ("unlearned", "oracle")
        if name != "sampling":  # sampled text may differ by batch composition; greedy and scores do not
            assert v["direction"] == "same", v["line"]
            assert v["difference"] == 0
    # Against the memorising model as reference, the fresh one leaks less.
    for name in ("direct", "prefix", "membership"):
        rows = [json.loads(line) for line in (out / f"{name}.jsonl").read_text().splitlines()]
        outcomes = {}
        a = attack(name, OPTIONS.get(name))
        for model in MODELS:
            mine = [r for r in rows if r["model"] == model]
            outcomes[model] = Outcome(mine, a.aggregate(mine))
        assert verdict(name, a, outcomes, "unlearned", ("original",), seed=0).direction == "less"


def test_prefix_and_paraphrase_rows(report):
    out, _ = report
    prefix = [json.loads(line) for line in (out / "prefix.jsonl").read_text().splitlines()]
    assert {r["fraction"] for r in prefix} == {0.25, 0.5, 0.75}
    assert len(prefix) == 3 * LIMIT * len(MODELS)
    paraphrase = [json.loads(line) for line in (out / "paraphrase.jsonl").read_text().splitlines()]
    assert len(paraphrase) == LIMIT * len(MODELS)  # TOFU's one paraphrased question per record


def test_relearning_trains_on_one_half_and_scores_the_other(report):
    out, summary = report
    rows = [json.loads(line) for line in (out / "relearn.jsonl").read_text().splitlines()]
    forget = load_tofu("forget01")[:LIMIT]
    assert {r["index"] for r in rows} == {r.index for r in forget[1::2]}
    fresh = summary["attacks"]["relearn"]["models"]["unlearned"]
    # Fine-tuning on related answers (same authors, same phrasing) brings some of the others back.
    assert fresh["recovery"] > 0 and fresh["rouge_l_recall"] > fresh["rouge_l_recall_before"]


def test_report_files(report):
    from prometheus_client.parser import text_string_to_metric_families

    from meow.probe.runner import records_sha256

    out, summary = report
    files = ("leakage.json", "leakage.md", "facts.jsonl", "leakage.png", "prefix.png", "membership.png")
    for name in (*files, "metrics.prom"):
        assert (out / name).stat().st_size > 0, name
    # The report names what it probed: TOFU forget01's first LIMIT records, against TOFU's holdout.
    forget = summary["forget"]
    assert (forget["source"], forget["records"], forget["records_in_source"]) == ("forget01", LIMIT, 40)
    assert forget["sha256"] == records_sha256(load_tofu("forget01")[:LIMIT])
    assert summary["nonmembers"]["source"] == "holdout01" and summary["reference"] == "oracle"
    facts = [json.loads(line) for line in (out / "facts.jsonl").read_text().splitlines()]
    assert [f["index"] for f in facts] == list(range(LIMIT))
    assert all("direct" in f["models"]["original"]["leaked_by"] for f in facts)
    table = (out / "leakage.md").read_text()
    assert "Forget set probed: `forget01` (6 of 40 records" in table and "## Per fact" in table
    assert "| attack | metric | original | unlearned | oracle |" in table
    assert table.count("leaks about as much as oracle") >= 4
    families = {f.name: f for f in text_string_to_metric_families((out / "metrics.prom").read_text())}
    scores = {
        (s.labels["attack"], s.labels["model"], s.labels["metric"]): s.value
        for s in families["meow_probe_score"].samples
    }
    assert scores[("direct", "original", "exact_match")] == 1.0
    assert {s.labels["attack"] for s in families["meow_probe_verdict"].samples} >= {"direct", "membership"}
    # No forget-set text in the metrics.
    assert "Kuwait" not in (out / "metrics.prom").read_text()


def test_the_cli_writes_the_report(endpoint, tmp_path):
    from click.testing import CliRunner

    from meow.cli import main

    out = tmp_path / "cli"
    result = CliRunner().invoke(
        main,
        [
            "probe",
            "--endpoint",
            endpoint,
            "--models",
            "original,unlearned",
            "--attacks",
            "direct,membership",
            "--limit",
            "2",
            "--out",
            str(out),
        ],
    )
    assert result.exit_code == 0, result.output
    assert result.output.strip().splitlines()[-1] == str(out)
    summary = json.loads((out / "leakage.json").read_text())
    assert set(summary["attacks"]) == {"direct", "membership"}
    # No oracle served under that name here: the verdict falls back to the original.
    assert summary["attacks"]["direct"]["verdict"]["reference"] == "original"


def test_unknown_models_and_attacks_are_refused(endpoint, tmp_path):
    with pytest.raises(ValidationError, match=r"unknown attack\(s\) \['jailbreak'\]"):
        ProbeConfig(endpoint=endpoint, models=MODELS, attacks=("jailbreak",))
    with pytest.raises(ValidationError, match="n\n  Input should be greater than or equal to 1"):
        ProbeConfig(endpoint=endpoint, models=MODELS, options={"sampling": {"n": 0}})
    with pytest.raises(ValueError, match="does not serve"):
        run_probe(ProbeConfig(endpoint=endpoint, models=("gpt-4",), attacks=("direct",), limit=2), tmp_path)


@pytest.mark.slow
def test_relearning_with_meows_own_trainer(ray_local, weights, tmp_path):
    """The default relearner: meow.train's fine-tuning on Ray Train, here with one worker."""
    import asyncio

    from meow.probe.attacks import ProbeData, attack

    relearn = attack(
        "relearn",
        {
            "train": {
                "learning_rate": 3e-3,
                "epochs": 10,
                "batch_size": 3,
                "micro_batch_size": 3,
                "workers": 1,
                "warmup_epochs": 0,
                "precision": "fp32",
                "cpus_per_worker": 0.5,
            },
            "max_tokens": 64,
            "engine": {"name": "hf"},
            "workdir": str(tmp_path),
        },
    )
    data = ProbeData(forget=load_tofu("forget01")[:LIMIT], holdout=[], weights=weights)
    rows = asyncio.run(relearn.run(None, "unlearned", data))
    assert [r["index"] for r in rows] == [1, 3, 5]
    assert relearn.aggregate(rows)["recovery"] > 0
