"""The job driver records every end in the run's status.json, also one before any stage ran."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys

from meow_platform.backends.base import SPEC_ENV


def test_a_driver_that_fails_before_any_stage_leaves_status_json_failed(tmp_path):
    spec = "name: broken\nstages: [nosuchstage]\n"
    env = {**os.environ, SPEC_ENV: base64.b64encode(spec.encode()).decode()}
    run_dir = tmp_path / "run"
    done = subprocess.run(
        [sys.executable, "-m", "meow_platform.jobrun", "--run-dir", str(run_dir)],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2, done.stderr
    status = json.loads((run_dir / "status.json").read_text())
    # The check's one line is the reason: a key and a line of the spec, never record text.
    assert (status["state"], status["error"]) == ("failed", "InvalidRun")
    assert status["reason"].startswith("spec, line 2, key stages: ")
    assert "unknown stage" in status["reason"] and done.stderr.strip().endswith(status["reason"])
