"""Recipe sweeps: grid points as Ray Tune trials that reuse the run's finished upstream stages."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from meow.pipeline import sweep
from meow.pipeline.driver import run_pipeline
from meow.pipeline.spec import load_spec
from meow.testing.tiny_model import build_tiny_llama


def test_grid_parsing_and_overrides():
    grid = sweep.parse_grid(["unlearn.train.learning_rate=1e-5,5e-5", "unlearn.train.lora={rank: 4}"])
    assert grid == {"unlearn.train.learning_rate": [1e-5, 5e-5], "unlearn.train.lora": [{"rank": 4}]}
    points = sweep.points(grid)
    assert len(points) == 2 and points[1]["unlearn.train.learning_rate"] == 5e-5
    spec = sweep.with_overrides(load_spec("stages: [unlearn, evaluate]\n"), points[1])
    assert spec.unlearn.train.learning_rate == 5e-5 and spec.unlearn.train.lora.rank == 4
    with pytest.raises(ValueError):
        sweep.with_overrides(spec, {"unlearn.train.learnin_rate": 1.0})
    with pytest.raises(ValueError, match="key=value"):
        sweep.parse_grid(["unlearn.train.learning_rate"])


def test_a_sweep_needs_the_upstream_stages_finished(tmp_path):
    spec = load_spec("stages: [invert, unlearn, evaluate]\n")
    with pytest.raises(ValueError, match="has not finished stage 'invert'"):
        sweep.check(spec, tmp_path, {"unlearn.train.learning_rate": [1e-3]})
    # The CLI says so in one line, exit code 2, before starting anything.
    spec_file = tmp_path / "spec.yaml"
    spec_file.write_text("name: s\nstages: [invert, unlearn, evaluate]\n")
    result = subprocess.run(
        [str(Path(sys.executable).parent / "meow"), "sweep", str(spec_file), "--run-dir", str(tmp_path / "run"),
         "--param", "unlearn.train.learning_rate=1e-3"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 2 and result.stderr.strip().count("\n") == 0
    assert "has not finished stage 'invert'" in result.stderr


@pytest.mark.slow
def test_two_learning_rates_as_tune_trials(ray_local, tiny_model_dir, tmp_path):
    oracle = build_tiny_llama(tmp_path / "oracle", seed=5)
    spec = load_spec(
        f"""
name: tiny-sweep
model: {tiny_model_dir}
forget: {{source: forget01}}
stages: [invert, unlearn, evaluate]
invert: {{infill_samples: 0}}
unlearn:
  method: grad_ascent
  train: {{epochs: 2, batch_size: 20, micro_batch_size: 10, workers: 1, save_epochs: true, checkpoint_every: 0}}
evaluate: {{oracle: {oracle}, max_rows: 3, max_length: 64, batch_size: 8, engine: {{name: hf}}}}
"""
    )
    base = tmp_path / "run"
    run_pipeline(spec, str(base), only=["invert"])
    results = sweep.sweep(spec, base, {"unlearn.train.learning_rate": [1e-3, 1e-2]})
    assert [r["overrides"] for r in results] == [{"unlearn.train.learning_rate": 1e-3}, {"unlearn.train.learning_rate": 1e-2}]
    for r in results:
        # Target, the model after epoch 1, the final model: each with FQ against the oracle and MU.
        assert [p["epoch"] for p in r["frontier"]] == [0, 1, 2]
        assert all(0 <= p["forget_quality"] <= 1 and 0 <= p["model_utility"] <= 1 for p in r["frontier"])
        trial = tmp_path / "run" / "sweep" / r["run"].rsplit("/", 1)[-1]
        assert (trial / "invert").is_symlink() and (trial / "invert").resolve() == (base / "invert").resolve()
        assert (trial / "evaluate" / "metrics.json").is_file() and (trial / "unlearn" / "epochs" / "epoch-1").is_dir()
    assert results[0]["frontier"][-1] != results[1]["frontier"][-1]
    assert json.loads((base / "sweep" / "results.json").read_text()) == results
