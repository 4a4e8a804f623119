"""The pipeline's entry point lives in meow.pipeline: `python -m meow.pipeline`, the platform's job
driver and the stages reach it without the CLI, and the rule for the model to unlearn is one function."""

import json
import subprocess
import sys

from meow.pipeline.spec import STAGE_ORDER, PipelineSpec, load_spec
from meow.pipeline.stage import load_stage


def _python(*args, **kwargs):
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, timeout=120, **kwargs)


def test_the_pipeline_platform_and_stages_do_not_import_the_cli():
    modules = ["meow.pipeline.__main__", "meow.pipeline.driver", "meow_platform.jobrun", "meow.train.stages"]
    done = _python(
        "-c",
        f"import importlib, sys\nfor m in {modules!r}: importlib.import_module(m)\n"
        "print([m for m in sys.modules if m.startswith('meow.cli')])",
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


def test_schema_and_bad_input_from_python_dash_m(tmp_path):
    schema = _python("-m", "meow.pipeline", "schema")
    assert json.loads(schema.stdout) == PipelineSpec.model_json_schema()
    missing = _python("-m", "meow.pipeline", "run", str(tmp_path / "nope.yaml"), "--run-dir", str(tmp_path / "run"))
    assert missing.returncode == 2
    assert missing.stderr.strip().splitlines()[-1] == f"Error: {tmp_path / 'nope.yaml'}: file not found"
    assert not (tmp_path / "run").exists()


def test_one_list_of_stages():
    assert STAGE_ORDER == ("prepare", "invert", "memo", "select", "unlearn", "evaluate", "report")
    assert [load_stage(name).name for name in ("select", "report")] == ["select", "report"]


def test_the_model_to_unlearn_is_the_specs_unless_prepare_makes_it():
    assert load_spec("model: smollm2\nstages: [invert, memo]\n").given_model() == "smollm2"
    assert load_spec("model: smollm2\nstages: [prepare, invert]\n").given_model() is None
