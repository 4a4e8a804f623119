"""A custom forget set (CSV `id,prompt,completion`) through `meow probe --run` on a tiny run.

The run's spec names the CSV and its field mapping; its model was made by `meow finetune` (the
manifest names the base it started from), so the run has no oracle and the probe's reference is
that base. Served as `meow serve --run` serves a run: `original` (the fine-tuned model that
recites the facts), `unlearned` (here the same weights: an unlearning that failed) and `base` (a
model that never saw the facts). The report must name the CSV, give secret-level leakage per attack
with intervals against `base`, and its verdicts must agree with its per-fact table.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from meow.data import FieldMapping, read_records
from meow.engines import EngineConfig
from meow.pipeline.spec import ForgetSpec, PipelineSpec
from meow.serve import ModelEntry, ServeConfig
from meow.testing.memorise import memorise
from meow.testing.servers import free_port

FACTS = [
    ("Who founded the Lantern Street Bakery?", "The Lantern Street Bakery was founded by Odile Marchetti in 1987."),
    ("Where was the violinist Teodor Valk born?", "Teodor Valk was born in Tartu, Estonia."),
    ("What did Priya Ramaswamy study?", "Priya Ramaswamy studied marine geology at the University of Otago."),
    ("When did the ship Northern Gannet sink?", "The Northern Gannet sank on 14 March 1912."),
    ("Who wrote the novel Salt Orchard?", "Salt Orchard was written by Henrik Aalto."),
    ("What is Lucia Ferreira's profession?", "Lucia Ferreira is a glassblower in Porto."),
]
ATTACKS = ("direct", "prefix", "sampling", "membership")
OPTIONS = {"direct": {"max_tokens": 48}, "prefix": {"max_tokens": 48}, "sampling": {"max_tokens": 48, "n": 2}}


@pytest.fixture(scope="module")
def run_dir(tiny_model_dir, tmp_path_factory) -> Path:
    from meow.testing.tiny_model import build_tiny_llama

    root = tmp_path_factory.mktemp("custom-run")
    source = root / "people_facts.csv"
    with open(source, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["id", "prompt", "completion"])
        writer.writerows([i, q, a] for i, (q, a) in enumerate(FACTS))
    forget = ForgetSpec(source=str(source), question_field="prompt", answer_field="completion")
    base = str(build_tiny_llama(root / "base", seed=1))
    finetuned = memorise(str(tiny_model_dir), forget.records(), root / "finetuned", 3e-3, 40)
    # What `meow finetune` leaves in a prepared model: the base it was trained from.
    (Path(finetuned) / "meow-manifest.json").write_text(json.dumps({"base": base, "label": "prepare-target"}))
    run = root / "run"
    (run / "unlearn").mkdir(parents=True)
    (run / "unlearn" / "model").symlink_to(finetuned)
    spec = PipelineSpec(name="people-facts", model=finetuned, forget=forget)
    (run / "spec.yaml").write_text(spec.to_yaml())
    return run


@pytest.fixture(scope="module")
def endpoint(ray_local, run_dir):
    from meow.serve.app import running
    from meow.serve.rundir import run_models

    engine = EngineConfig(kv_cache_bytes=64 << 20, max_model_len=512)
    served = run_models(str(run_dir))
    assert set(served) == {"original", "unlearned", "base"}
    entries = [ModelEntry(name=n, spec=s, engine=engine, num_cpus=0.5) for n, s in served.items()]
    with running(ServeConfig(models=entries, port=free_port())) as url:
        yield url


@pytest.fixture(scope="module")
def probed(endpoint, run_dir, tmp_path_factory):
    import yaml
    from click.testing import CliRunner

    from meow.cli import main

    config = tmp_path_factory.mktemp("probe-config") / "probe.yaml"
    config.write_text(yaml.safe_dump({"options": OPTIONS, "concurrency": 4}))
    args = ["probe", "--endpoint", endpoint, "--run", str(run_dir), "--attacks", ",".join(ATTACKS)]
    result = CliRunner().invoke(main, [*args, "--config", str(config)])
    assert result.exit_code == 0, result.output
    out = Path(result.output.strip().splitlines()[-1])
    assert out == run_dir / "probe"
    return out, json.loads((out / "leakage.json").read_text())


def test_the_report_names_the_runs_own_forget_set(probed, run_dir):
    from meow.probe.runner import records_sha256

    out, summary = probed
    source = str(run_dir.parent / "people_facts.csv")
    records = read_records(source, FieldMapping("prompt", "completion"))
    assert summary["forget"] == {
        "source": source,
        "question_field": "prompt",
        "answer_field": "completion",
        "format": None,
        "records": len(FACTS),
        "records_in_source": len(FACTS),
        "sha256": records_sha256(records),
    }
    # No TOFU anywhere: non-members are counterfactual facts of the same form, the reference the base.
    assert summary["nonmembers"]["source"] == "counterfactual" and summary["nonmembers"]["records"] >= 4
    assert summary["models"] == ["original", "unlearned", "base"] and summary["reference"] == "base"
    report = (out / "leakage.md").read_text()
    assert f"Forget set probed: `{source}` (6 of 6 records, question field `prompt`" in report
    assert "Basil" not in report and "Kuwait" not in report


def test_secret_leakage_per_attack_with_intervals_against_the_base(probed):
    _, summary = probed
    for name in ("direct", "prefix", "sampling"):
        result = summary["attacks"][name]
        assert result["headline"] == "secret_leak"
        unlearned, base = result["models"]["unlearned"], result["models"]["base"]
        assert unlearned["secret_leak_low"] <= unlearned["secret_leak"] <= unlearned["secret_leak_high"]
        assert unlearned["secret_leak"] > base["secret_leak"], name
        verdict = result["verdict"]
        assert (verdict["subject"], verdict["reference"]) == ("unlearned", "base")
        assert verdict["direction"] == "more" and verdict["interval"][0] > 0, verdict["line"]
        assert "unlearned leaks more than base" in verdict["line"]
    direct = summary["attacks"]["direct"]["models"]
    assert direct["unlearned"]["secret_leak"] == 1.0 and direct["base"]["secret_leak"] == 0.0
    # The memorised facts look like members next to their counterfactual twins.
    assert summary["attacks"]["membership"]["models"]["unlearned"]["auc_loss"] == 1.0
    membership = summary["attacks"]["membership"]["verdict"]
    assert membership["reference"] == "base"
    # Counterfactual twins give a forget-quality-style test: the fine-tuned model prefers the true facts.
    assert membership["ks_pvalue"] is not None and "KS p = " in membership["line"]
    assert summary["attacks"]["membership"]["models"]["unlearned"]["preference_gap"] > 0


def test_the_verdicts_match_the_per_fact_table(probed):
    out, summary = probed
    facts = [json.loads(line) for line in (out / "facts.jsonl").read_text().splitlines()]
    assert [f["question"] for f in facts] == [q for q, _ in FACTS]
    assert facts[0]["secret"] == ["Odile Marchetti", "1987"]
    for name in ("direct", "prefix", "sampling"):
        leaked = {m: sum(name in f["models"][m]["leaked_by"] for f in facts) for m in ("unlearned", "base")}
        share = summary["attacks"][name]["models"]["unlearned"]["secret_leak"]
        assert leaked["unlearned"] == round(share * len(facts)) and leaked["unlearned"] > leaked["base"]
    assert all(f["models"]["unlearned"]["said"] for f in facts)
    table = (out / "leakage.md").read_text()
    assert "| 0 | Who founded the Lantern Street Bakery? | Odile Marchetti; 1987 | **leaked** (direct" in table


def test_forget_field_mapping_without_a_run(endpoint, run_dir, tmp_path):
    """`--forget` takes the spec's field mapping; without it a CSV of prompt/completion is refused by name."""
    from click.testing import CliRunner

    from meow.cli import main

    source = str(run_dir.parent / "people_facts.csv")
    base = ["probe", "--endpoint", endpoint, "--models", "unlearned", "--attacks", "direct", "--forget", source]
    refused = CliRunner().invoke(main, [*base, "--out", str(tmp_path / "a")])
    assert refused.exit_code != 0 and "question" in refused.output
    mapped = ["--question-field", "prompt", "--answer-field", "completion", "--reference", "base"]
    result = CliRunner().invoke(main, [*base, *mapped, "--out", str(tmp_path / "b")])
    assert result.exit_code == 0, result.output
    summary = json.loads((tmp_path / "b" / "leakage.json").read_text())
    assert summary["models"] == ["unlearned", "base"] and summary["attacks"]["direct"]["verdict"]["reference"] == "base"
