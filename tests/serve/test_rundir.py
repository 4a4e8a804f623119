"""Which models `meow serve --run` and `meow probe --run` find in a run directory."""

import pytest
import yaml

from meow.serve.rundir import run_models


def _model(path):
    path.mkdir(parents=True)
    (path / "config.json").write_text("{}")
    return str(path)


@pytest.fixture()
def run(tmp_path):
    directory = tmp_path / "my-run"
    directory.mkdir()
    (directory / "spec.yaml").write_text(yaml.safe_dump({"name": "my-run", "model": "smollm2"}))
    return directory


def test_a_run_without_prepare_serves_the_spec_model_and_the_unlearned_one(run):
    unlearned = _model(run / "unlearn" / "model")
    assert run_models(str(run)) == {"original": "smollm2", "unlearned": unlearned}


def test_a_prepared_run_serves_its_target_and_oracle(run):
    target, oracle = _model(run / "prepare" / "target"), _model(run / "prepare" / "oracle")
    unlearned = _model(run / "unlearn" / "model")
    assert run_models(str(run)) == {"original": target, "unlearned": unlearned, "oracle": oracle}


def test_runs_are_found_by_id_under_meow_runs(run, monkeypatch):
    unlearned = _model(run / "unlearn" / "model")
    monkeypatch.setenv("MEOW_RUNS", str(run.parent))
    monkeypatch.chdir(run.parent.parent)
    assert run_models("my-run")["unlearned"] == unlearned


def test_unfinished_and_unknown_runs_are_refused(run, tmp_path):
    with pytest.raises(FileNotFoundError, match="no unlearned model"):
        run_models(str(run))
    with pytest.raises(FileNotFoundError, match="not a run directory"):
        run_models(str(tmp_path / "nowhere"))


def test_serve_cli_merges_run_and_explicit_models(run):
    from meow.cli.serve import _config_data

    _model(run / "unlearn" / "model")
    data = _config_data(("extra=/models/x", "original=/models/base"), str(run), None, None, 9000, "NO_SUCH_TOKEN_VAR")
    assert {m["name"]: m["spec"] for m in data["models"]} == {
        "original": "/models/base",
        "unlearned": str(run / "unlearn" / "model"),
        "extra": "/models/x",
    }
    assert data["port"] == 9000 and "api_token" not in data


def test_a_local_ray_has_a_cpu_for_every_replica(monkeypatch):
    from meow.cli.serve import local_cpus
    from meow.serve import ServeConfig

    monkeypatch.setattr("os.cpu_count", lambda: 2)
    three = ServeConfig(models=[{"name": n, "spec": "smollm2"} for n in ("original", "unlearned", "oracle")])
    assert local_cpus(three) == 3  # two cores would leave the third replica unscheduled
    two = ServeConfig(models=[{"name": n, "spec": "smollm2", "num_replicas": 1} for n in ("original", "unlearned")])
    assert local_cpus(two) == 2
    wide = ServeConfig(models=[{"name": "a", "spec": "smollm2", "num_cpus": 1.5, "num_replicas": 3}])
    assert local_cpus(wide) == 5
