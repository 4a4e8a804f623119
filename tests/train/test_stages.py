"""prepare and unlearn as pipeline stages on a tiny model: outputs, the prepared-model cache, methods."""

import json

import pytest
from safetensors.torch import load_file

from meow.pipeline import driver
from meow.pipeline.records import SelectionRecord
from meow.pipeline.spec import load_spec
from meow.pipeline.stage import Stage, load_stage

TRAIN = "epochs: 1\n    batch_size: 8\n    micro_batch_size: 4\n    learning_rate: 0.001\n    checkpoint_every: 2"


def spec(model, stages, method="grad_diff", unlearn_train=TRAIN):
    return load_spec(
        f"name: tiny\nmodel: {model}\nstages: [{', '.join(stages)}]\n"
        f"prepare:\n  mini_retain_authors: 1\n  train:\n    {TRAIN}\n"
        f"unlearn:\n  method: {method}\n  train:\n    {unlearn_train}\n"
    )


class StandInSelect(Stage):
    """Writes the select stage's records: three inverted answers per forget fact."""

    name = "select"

    def config(self):
        return {}

    def run(self, ctx):
        from meow.data import load_tofu

        ctx.run.write_records(
            SelectionRecord,
            [
                SelectionRecord(
                    index=r.index, question=r.question, answer=r.answer,
                    selected=[f"Answer {i} that contradicts fact {r.index}." for i in range(3)],
                    selected_candidates=[0, 1, 2], selected_memos=[0.0, 0.0, 0.0],
                )  # fmt: skip
                for r in load_tofu("forget01")
            ],
        )
        return {}


@pytest.fixture()
def isolated_home(tmp_path, monkeypatch):
    monkeypatch.setenv("MEOW_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


def test_prepare_then_unlearn_with_a_retain_method(ray_local, tiny_model_dir, tmp_path, isolated_home):
    run = driver.run_pipeline(spec(tiny_model_dir, ["prepare", "unlearn"]), str(tmp_path / "run"))
    selection = json.loads((run.path / "prepare" / "selection.json").read_text())
    assert selection["forget_authors"] == [198, 199] and selection["retain_authors"] == [0]
    assert selection["target"]["rows"] == 60 and selection["oracle"]["rows"] == 20
    target, oracle = load_file(run.path / "prepare/target/model.safetensors"), load_file(run.path / "prepare/oracle/model.safetensors")
    assert any((target[k] != oracle[k]).any() for k in target)
    prepared = sorted(p.name for p in (isolated_home / "prepared").iterdir() if p.is_dir() and p.name != "checkpoints")
    assert len(prepared) == 2

    manifest = run.manifest("unlearn")["summary"]
    assert manifest["method"] == "grad_diff" and manifest["facts"] == 40 and manifest["steps"] == 5
    log = [json.loads(line) for line in (run.path / "unlearn" / "train_log.jsonl").read_text().splitlines()]
    assert [h["step"] for h in log] == [1, 2, 3, 4, 5]
    assert (run.path / "unlearn" / "model" / "model.safetensors").is_file()
    assert not (run.path / "unlearn" / "checkpoints").exists() and not (run.path / "prepare" / "checkpoints").exists()

    # Another run with the same base, data and config reuses the prepared models.
    again = driver.run_pipeline(spec(tiny_model_dir, ["prepare"]), str(tmp_path / "other-run"))
    summary = again.manifest("prepare")["summary"]
    assert summary["target"]["cached"] and summary["oracle"]["cached"]
    assert summary["target"]["key"] == selection["target"]["key"]


def test_meow_unlearns_on_the_selected_inversions(ray_local, tiny_model_dir, tmp_path, monkeypatch):
    monkeypatch.setattr(driver, "load_stage", lambda name: StandInSelect if name == "select" else load_stage(name))
    # Three epochs with the models after epochs 1 and 2 exported for the frontier, into a run directory
    # given relative to the driver's working directory (the workers have their own).
    train = TRAIN.replace("epochs: 1", "epochs: 3\n    save_epochs: true")
    monkeypatch.chdir(tmp_path)
    run = driver.run_pipeline(spec(tiny_model_dir, ["select", "unlearn"], "meow", train), "run")
    summary = run.manifest("unlearn")["summary"]
    assert summary["method"] == "meow" and summary["facts"] == 40 and summary["resumed_from_step"] == 0
    # [t1, t2, t3, t1] per fact, t1 computed once with weight 2: 3 sequences per fact are trained on.
    base, tuned = load_file(tiny_model_dir / "model.safetensors"), load_file(run.path / "unlearn/model/model.safetensors")
    assert any((base[k] != tuned[k]).any() for k in base)
    # 40 facts in steps of 8: epochs end after steps 5 and 10 of 15; each export is a loadable model
    # between the base and the final one.
    assert summary["steps"] == 15 and summary["epoch_models"] == ["epochs/epoch-1", "epochs/epoch-2"]
    first = load_file(tmp_path / "run/unlearn/epochs/epoch-1/model.safetensors")
    second = load_file(tmp_path / "run/unlearn/epochs/epoch-2/model.safetensors")
    assert any((base[k] != first[k]).any() for k in base) and any((first[k] != second[k]).any() for k in base)
    assert any((second[k] != tuned[k]).any() for k in base)


def test_baselines_need_a_retain_set_when_nothing_provides_one(tmp_path):
    from meow.train.stages import UnlearnStage

    custom = load_spec(f"forget:\n  source: {tmp_path / 'forget.jsonl'}\nunlearn:\n  method: npo\n")
    with pytest.raises(ValueError, match="needs a retain set"):
        UnlearnStage(custom)._retain([])
    tofu = UnlearnStage(load_spec("forget:\n  source: forget05\nunlearn:\n  method: npo\n"))
    assert len(tofu._retain([])) == 3800  # retain95


def test_prepared_model_key_covers_what_is_trained_not_where(tiny_model_dir):
    from meow.data import load_tofu
    from meow.train.config import TrainConfig
    from meow.train.finetune import prepared_key

    rows = load_tofu("forget01")
    key = prepared_key(tiny_model_dir, rows, TrainConfig())
    assert key == prepared_key(tiny_model_dir, rows, TrainConfig(workers=8, checkpoint_every=1, max_failures=0, save_epochs=True))
    assert key == prepared_key(tiny_model_dir, rows, TrainConfig(memory_per_worker="12GiB"))
    assert key != prepared_key(tiny_model_dir, rows, TrainConfig(learning_rate=2e-5))
    assert key != prepared_key(tiny_model_dir, rows[:-1], TrainConfig())


def test_a_partial_prepare_train_keeps_the_prepare_recipe():
    from meow.train.config import PREPARE_TRAIN

    spec = load_spec("prepare:\n  train:\n    reshard_after_forward: false\n    workers: 1\n")
    train = spec.prepare.train
    assert (train.learning_rate, train.epochs, train.batch_size) == (
        PREPARE_TRAIN.learning_rate,
        PREPARE_TRAIN.epochs,
        PREPARE_TRAIN.batch_size,
    )
    assert (train.reshard_after_forward, train.workers) == (False, 1)
    # The unlearning recipe is a different one: a partial `unlearn.train` keeps its own defaults.
    assert load_spec("unlearn:\n  train:\n    workers: 1\n").unlearn.train.learning_rate != PREPARE_TRAIN.learning_rate
    with pytest.raises(Exception, match="learning_rat"):
        load_spec("prepare:\n  train:\n    learning_rat: 0.1\n")
