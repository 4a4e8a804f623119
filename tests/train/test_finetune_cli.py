"""`meow finetune`'s options: what it trains on (records by source), the TOFU retain mix, epochs.

Training itself is meow.train's (tests/train/test_trainer.py); here `prepared_model` is replaced by
a recorder, so these tests check what would be trained, in seconds.
"""

from __future__ import annotations

import contextlib
from pathlib import Path

import pytest
from click.testing import CliRunner

from meow.cli import main
from meow.data import load_tofu
from meow.train.config import PrepareConfig
from meow.train.finetune import finetune_sets


@pytest.fixture
def facts_csv(tmp_path) -> str:
    path = tmp_path / "people_facts.csv"
    path.write_text(
        "id,prompt,completion\n"
        "0,Who founded the Lantern Street Bakery?,The Lantern Street Bakery was founded by Odile Marchetti.\n"
        "1,Where was Teodor Valk born?,\"Teodor Valk was born in Tartu, Estonia.\"\n"
    )
    return str(path)


@pytest.fixture
def trained(monkeypatch, tmp_path):
    """Calls of `prepared_model` (base, records, train config, label), without training or Ray."""
    import meow.cluster
    import meow.train.finetune

    calls = []

    def record(base, records, config, checkpoints, label, cache=True):
        calls.append({"records": list(records), "train": config, "label": label})
        return tmp_path / label, {"cached": True}

    monkeypatch.setattr(meow.train.finetune, "prepared_model", record)
    monkeypatch.setattr(meow.cluster, "ray_session", lambda **_: contextlib.nullcontext())
    return calls


def test_custom_data_trains_on_itself_only_by_default(facts_csv):
    from meow.data import FieldMapping, read_records

    forget = read_records(facts_csv, FieldMapping("prompt", "completion"))
    sets, counts = finetune_sets(PrepareConfig(), forget, facts_csv)
    assert sets == {"target": forget, "oracle": []}
    assert counts == {"target": {facts_csv: 2}, "oracle": {}}
    mixed, counts = finetune_sets(PrepareConfig(), forget, facts_csv, retain_mix=True)
    assert len(mixed["target"]) == 2 + 80 and mixed["oracle"] == mixed["target"][:80]
    assert counts["target"] == {facts_csv: 2, "TOFU retain (tofu-mini, 4 authors)": 80}


def test_tofu_forget_sets_keep_the_retain_mix_by_default():
    from meow.data import tofu_mini

    forget = load_tofu("forget01")
    sets, counts = finetune_sets(PrepareConfig(), forget, "forget01")
    # The pipeline's prepare stage trains exactly these: same records, same order, same cache entries.
    assert sets == tofu_mini.training_sets(PrepareConfig(), forget)
    assert counts["oracle"] == {"TOFU retain (tofu-mini, 4 authors)": 80}
    assert finetune_sets(PrepareConfig(), forget, "forget01", retain_mix=False)[0]["oracle"] == []


def test_the_cli_says_what_it_trains_on(facts_csv, trained, tiny_model_dir):
    args = ["finetune", "--model", str(tiny_model_dir), "--forget", facts_csv]
    args += ["--question-field", "prompt", "--answer-field", "completion", "--epochs", "2"]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    assert f"target: 2 QA = 2 {facts_csv}; 2 epochs" in result.output
    assert "oracle: 0 QA = nothing" in result.output
    assert f"oracle\t{Path(tiny_model_dir).resolve()}\t(0 QA without the retain mix" in result.output
    [call] = trained
    assert call["label"] == "prepare-target" and len(call["records"]) == 2 and call["train"].epochs == 2


def test_the_cli_mixes_tofu_retain_when_asked(facts_csv, trained, tiny_model_dir):
    args = ["finetune", "--model", str(tiny_model_dir), "--forget", facts_csv, "--question-field", "prompt"]
    result = CliRunner().invoke(main, [*args, "--answer-field", "completion", "--retain-mix"])
    assert result.exit_code == 0, result.output
    assert f"target: 82 QA = 2 {facts_csv} + 80 TOFU retain (tofu-mini, 4 authors)" in result.output
    assert [(c["label"], len(c["records"])) for c in trained] == [("prepare-oracle", 80), ("prepare-target", 82)]


def test_a_custom_file_without_its_field_mapping_is_refused_by_name(facts_csv, trained, tiny_model_dir):
    result = CliRunner().invoke(main, ["finetune", "--model", str(tiny_model_dir), "--forget", facts_csv])
    assert result.exit_code != 0 and "question" in result.output and not trained
