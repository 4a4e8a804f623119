"""The evaluate stage reads the forget set once: for the inputs hash, the manifest and the splits."""

import json

from meow.data import readers
from meow.data.tofu import tofu_path
from meow.evaluate.stage import EvaluateStage, eval_splits
from meow.pipeline.spec import load_spec


def test_the_forget_file_is_read_once_per_stage(tmp_path, monkeypatch):
    rows = [json.loads(line) for line in tofu_path("forget01_perturbed").read_text().splitlines() if line]
    path = tmp_path / "forget.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    opened = []
    real = readers.iter_records
    monkeypatch.setattr(readers, "iter_records", lambda uri, *a, **k: opened.append(uri) or real(uri, *a, **k))
    stage = EvaluateStage(load_spec(f"stages: [prepare, evaluate]\nforget: {{source: {path}}}\n"))
    first, again = stage.config(), stage.config()
    splits = eval_splits(stage.spec, stage.forget_records)
    assert opened.count(str(path)) == 1, "read once (TOFU's own files are read besides)"
    assert first == again and first["retain_authors"] == [0, 1, 2, 3]
    assert len(splits[0].examples) == 40 and splits[0].has_truth_ratio


def test_only_the_intermediate_frontier_points_take_the_frontier_dtype():
    spec = "stages: [prepare, unlearn, evaluate]\nevaluate: {frontier_dtype: auto}\n"
    stage = EvaluateStage(load_spec(spec))
    assert stage.settings("unlearned-epoch-2").engine.dtype == "auto"
    assert stage.settings("unlearned-epoch-2").frontier_dtype == "auto"
    for role in ("target", "oracle", "unlearned"):
        assert stage.settings(role).engine.dtype == "float32"
    # Unset, every model is evaluated as the engine says.
    plain = EvaluateStage(load_spec("stages: [prepare, unlearn, evaluate]\n"))
    assert plain.settings("unlearned-epoch-2").engine.dtype == "float32"
