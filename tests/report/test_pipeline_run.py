"""The evaluate and report stages in a real pipeline run on tiny models.

`prepare` and `unlearn` are stand-ins that write tiny random models where the real stages put theirs
(`<run>/prepare/{target,oracle}`, `<run>/unlearn/model`); evaluation and report are the real stages.
"""

import json

import pytest

from meow.evaluate.evaluator import model_metrics
from meow.evaluate.stage import EvaluateStage
from meow.hardware import describe
from meow.pipeline import driver
from meow.pipeline.records import ScoreRecord
from meow.pipeline.rundir import read_per_example
from meow.pipeline.spec import load_spec
from meow.pipeline.stage import Stage
from meow.report.stage import ReportStage
from meow.select.stage import SelectStage
from meow.testing.tiny_model import build_tiny_llama


class Prepare(Stage):
    name = "prepare"

    def config(self):
        return {}

    def run(self, ctx):
        build_tiny_llama(ctx.dir / "target", seed=1)
        build_tiny_llama(ctx.dir / "oracle", seed=2)
        return {"target": {"train_seconds": 1.5}, "oracle": {"train_seconds": 2.5}}


class Memo(Stage):
    """MEMO scores in the memo stage's format: the original answer scores above its inversions."""

    name = "memo"
    reads = ("prepare",)

    def config(self):
        return {}

    def run(self, ctx):
        from meow.data import load_tofu

        ctx.run.write_records(
            ScoreRecord,
            [
                ScoreRecord(
                    index=record.index, question=record.question, answer=record.answer,
                    candidates=[f"inverted {i}.{j}" for j in range(4)], mode="suffix", variant="exact",
                    original_memo=0.9, candidate_memos=[0.1 * j for j in range(4)],
                )  # fmt: skip
                for i, record in enumerate(load_tofu("forget01")[:3])
            ],
        )
        return {}


class Unlearn(Stage):
    name = "unlearn"
    reads = ("prepare",)

    def config(self):
        return {}

    def run(self, ctx):
        build_tiny_llama(ctx.dir / "model", seed=3)
        build_tiny_llama(ctx.dir / "epochs" / "epoch-1", seed=4)
        return {"epoch_models": ["epochs/epoch-1"]}


STAGES = {
    "prepare": Prepare,
    "memo": Memo,
    "select": SelectStage,
    "unlearn": Unlearn,
    "evaluate": EvaluateStage,
    "report": ReportStage,
}
SPEC = """
name: tiny-eval
stages: [prepare, memo, select, unlearn, evaluate, report]
select: {k: 2}
unlearn: {method: meow}
evaluate: {max_rows: 3, max_length: 64, batch_size: 8, engine: {name: hf}, frontier_dtype: bfloat16}
"""


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory, ray_local):
    home = tmp_path_factory.mktemp("meow-home")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MEOW_HOME", str(home))
        mp.setattr(driver, "load_stage", STAGES.__getitem__)
        run = driver.run_pipeline(load_spec(SPEC), str(tmp_path_factory.mktemp("run")))
        yield run, mp


def test_evaluates_target_oracle_and_unlearned_model(finished_run):
    run, _ = finished_run
    metrics = json.loads((run.path / "evaluate" / "metrics.json").read_text())
    assert set(metrics) == {"target", "oracle", "methods"} and set(metrics["methods"]) == {"meow"}
    # The oracle against itself: identical truth-ratio samples.
    assert metrics["oracle"]["forget_quality"] == 1.0
    for entry in (metrics["target"], metrics["oracle"], metrics["methods"]["meow"]):
        assert 0 <= entry["forget_quality"] <= 1 and 0 <= entry["model_utility"] <= 1
        assert {s: v["n"] for s, v in entry["splits"].items()} == {
            "forget": 3,
            "retain": 3,
            "real_authors": 3,
            "world_facts": 3,
        }
    # Every number is recomputable from the saved per-example files.
    oracle = read_per_example(run.path / "evaluate" / "oracle" / "per_example")
    unlearned = read_per_example(run.path / "evaluate" / "unlearned" / "per_example")
    recomputed = model_metrics(unlearned, [r["truth_ratio"] for r in oracle["forget"]])
    assert recomputed["forget_quality"] == metrics["methods"]["meow"]["forget_quality"]
    assert recomputed["model_utility"] == metrics["methods"]["meow"]["model_utility"]
    # The frontier: the target (epoch 0), the model after epoch 1, the final model (10 epochs by default).
    frontier = metrics["methods"]["meow"]["frontier"]
    assert [(p["epoch"], p["model"]) for p in frontier] == [(0, "target"), (1, "unlearned-epoch-1"), (10, "unlearned")]
    epoch_1 = read_per_example(run.path / "evaluate" / "unlearned-epoch-1" / "per_example")
    assert frontier[1]["forget_quality"] == model_metrics(epoch_1, [r["truth_ratio"] for r in oracle["forget"]])["forget_quality"]
    assert frontier[0]["model_utility"] == metrics["target"]["model_utility"]
    assert frontier[2]["forget_quality"] == metrics["methods"]["meow"]["forget_quality"]
    # Only the intermediate point is evaluated in the frontier's dtype.
    assert [p["eval_dtype"] for p in frontier] == ["float32", "bfloat16", "float32"]


def test_report_files_and_benchmark_shaped_metrics(finished_run):
    run, _ = finished_run
    report = run.path / "report"
    metrics = json.loads((report / "metrics.json").read_text())
    evaluated = json.loads((run.path / "evaluate" / "metrics.json").read_text())
    meow = metrics["methods"]["meow"]
    assert meow["forget_quality"] == evaluated["methods"]["meow"]["forget_quality"]
    # A method's wall time is the time of the stages that produced the unlearned model.
    seconds = sum(run.manifest(s)["seconds"] for s in ("memo", "select", "unlearn"))
    assert meow["wall_s"] == pytest.approx(seconds, abs=0.011)
    assert metrics["target"]["wall_s"] == 1.5 and metrics["oracle"]["wall_s"] == 2.5
    md = (report / "report.md").read_text()
    assert "| meow |" in md and "![truth ratio histogram](truth_ratio.png)" in md
    assert "### Frontier: meow along its training" in md and metrics["methods"]["meow"]["frontier"][1]["epoch"] == 1
    question = read_per_example(run.path / "evaluate" / "target" / "per_example")["forget"][0]["question"]
    assert question.split()[0] in md
    html = (report / "report.html").read_text()
    assert "data:image/png;base64," in html and 'src="truth_ratio.png"' not in html
    assert "<td>meow</td>" in html
    # MEMO: originals 0.9 (3 facts), candidates 0, 0.1, 0.2, 0.3; top-2 selected = 0.3 and 0.2.
    assert "| original | 3 | 0.900 |" in md and "| inverted | 12 | 0.150 |" in md and "| selected | 6 | 0.250 |" in md
    assert "on 3 of 3 facts" in md and "*trained on (inverted)*: inverted 0.3" in md
    machine = describe()
    assert f"| cpu_bf16 | {machine['cpu_bf16']} |" in md and f"| cpus | {machine['cpus']} |" in md
    started = [json.loads(line) for line in (run.path / "log.jsonl").read_text().splitlines()]
    assert [e["hardware"] for e in started if e["event"] == "run_started"][-1] == machine
    for png in ("truth_ratio.png", "quality_utility.png", "memo.png"):
        assert (report / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_a_forced_rerun_reuses_cached_evaluations(finished_run):
    run, mp = finished_run
    first = json.loads((run.path / "evaluate" / "metrics.json").read_text())
    rerun = driver.run_pipeline(load_spec(SPEC), run.location, only=["evaluate"], force=True)
    second = json.loads((rerun.path / "evaluate" / "metrics.json").read_text())
    assert second["methods"]["meow"]["eval_cached"] and second["target"]["eval_cached"]
    for key in ("forget_quality", "model_utility", "splits"):
        assert second["methods"]["meow"][key] == first["methods"]["meow"][key]
