"""Bad input through the real CLI: `meow validate`, `meow unlearn` and `meow run` answer with one
`Error: <file>, line N: <what>` line on stderr and exit code 2, in well under 3 s, having written
nothing (no run directory, no MEOW_HOME)."""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DEFAULT = str(ROOT / "pipelines" / "default.yaml")
OK = {"question": "Who wrote X?", "answer": "Ann wrote X."}
OK2 = {"question": "Where is Y?", "answer": "Y is in Z."}


def jsonl(*rows) -> bytes:
    return "".join(json.dumps(r) + "\n" for r in rows).encode()


# name -> (file name, its bytes or None for "do not create", expected stderr line after "Error: ")
CASES = {
    "malformed-json": ("bad.jsonl", jsonl(OK, OK2) + b'{"question": "Q?", "answer": \n', r"bad\.jsonl, line 3: malformed JSON"),
    "missing-answer": ("f.jsonl", jsonl(OK, {"question": "Q?"}), r"f\.jsonl, line 2: missing field 'answer'"),
    "empty-answer": ("f.jsonl", jsonl(OK, {"question": "Q?", "answer": " "}), r"f\.jsonl, line 2: empty answer"),
    "non-text-answer": ("f.jsonl", jsonl(OK, {"question": "Q?", "answer": 3}), r"f\.jsonl, line 2: field 'answer' must be text, got int"),
    "latin-1": ("f.jsonl", jsonl(OK) + '{"question": "Qué?", "answer": "Sí."}\n'.encode("latin-1"), r"f\.jsonl, line 2: not valid UTF-8"),
    "empty-file": ("f.jsonl", b"", r"f\.jsonl: file is empty"),
    "csv-without-column": ("f.csv", b"question,reply\nQ?,A.\n", r"f\.csv, line 1: no column 'answer'"),
    "10-MB-answer": ("f.jsonl", jsonl(OK, {"question": "Q?", "answer": "x" * (10 << 20)}), r"f\.jsonl, line 2: answer in field 'answer' has 10485760 characters, over the limit of 8192"),
    "duplicates": ("f.jsonl", jsonl(OK, OK2, OK), r"f\.jsonl, line 3: duplicate question \(first seen at line 1\)"),
    "bom-then-bad-line": ("f.jsonl", b"\xef\xbb\xbf" + jsonl(OK) + b"\n\n{oops}\n", r"f\.jsonl, line 4: malformed JSON"),
    "missing-file": ("nope.jsonl", None, r"nope\.jsonl: file not found"),
    "directory": ("sets", "dir", r"sets: is a directory, not a file"),
    "directory-named-jsonl": ("x.jsonl", "dir", r"x\.jsonl: is a directory, not a file"),
    "typo-split": ("forget1", None, r"--forget: forget1: neither a TOFU split nor a file; did you mean 'forget01'\?"),
    "s3-without-credentials": ("s3://acme-privacy/forget.jsonl", None, r"s3://acme-privacy/forget\.jsonl: no credentials for s3://; set AWS_ACCESS_KEY_ID"),
}


def meow(args, cwd: Path, env_extra=None) -> tuple[subprocess.CompletedProcess, float]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(
        MEOW_HOME=str(cwd.parent / "home"),
        MEOW_RUNS=str(cwd.parent / "runs"),
        AWS_EC2_METADATA_DISABLED="true",
        AWS_SHARED_CREDENTIALS_FILE="/nonexistent",
        AWS_CONFIG_FILE="/nonexistent",
        **(env_extra or {}),
    )
    # CPU seconds of the command, not wall time: the test machines are shared and loaded.
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    done = subprocess.run(
        [str(Path(sys.executable).parent / "meow"), *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=60
    )
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return done, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


@pytest.fixture()
def work(tmp_path):
    directory = tmp_path / "work"
    directory.mkdir()
    return directory


def _prepare(work: Path, case: str) -> str:
    name, content, _ = CASES[case]
    if content == "dir":
        (work / name).mkdir()
    elif content is not None:
        (work / name).write_bytes(content)
    return name


def _assert_one_line_and_nothing_written(done, seconds, pattern, work: Path, before: set[str]):
    import re

    assert done.returncode == 2, done.stderr
    lines = done.stderr.splitlines()
    assert len(lines) == 1, done.stderr
    assert re.match(rf"Error: .*{pattern}", lines[0]), lines[0]
    assert "Traceback" not in done.stderr and done.stdout == ""
    assert seconds < 3, f"took {seconds:.1f} CPU seconds"
    assert set(os.listdir(work)) == before, "nothing is written next to the inputs"
    assert not (work.parent / "runs").exists() and not (work.parent / "home").exists()


@pytest.mark.parametrize("case", sorted(CASES))
def test_unlearn_with_a_bad_forget_set_says_one_line_and_writes_nothing(work, case):
    source = _prepare(work, case)
    before = set(os.listdir(work))
    done, seconds = meow(["unlearn", DEFAULT, "--forget", source], work)
    _assert_one_line_and_nothing_written(done, seconds, CASES[case][2], work, before)


@pytest.mark.parametrize("case", ["malformed-json", "typo-split", "csv-without-column"])
def test_validate_and_run_say_the_same(work, case):
    source = _prepare(work, case)
    before = set(os.listdir(work))
    for args in (["validate", DEFAULT, "--forget", source], ["run", "evaluate", DEFAULT, "--forget", source]):
        done, seconds = meow(args, work)
        _assert_one_line_and_nothing_written(done, seconds, CASES[case][2], work, before)


def test_debug_shows_the_traceback(work):
    source = _prepare(work, "malformed-json")
    done, _ = meow(["validate", DEFAULT, "--forget", source, "--debug"], work)
    assert done.returncode == 2 and "Traceback" in done.stderr
    assert done.stderr.splitlines()[-1].startswith("Error: bad.jsonl, line 3: malformed JSON")


def test_spec_errors_are_one_line_too(work):
    (work / "spec.yaml").write_text("name: t\nforget:\n  source: forget1\n  max_chars: 0\nmemo: {strid: 3}\n")
    done, seconds = meow(["validate", "spec.yaml"], work)
    _assert_one_line_and_nothing_written(done, seconds, r"spec\.yaml, line 4, key forget\.max_chars: .* \(\+1 more errors\)", work, {"spec.yaml"})
    (work / "spec.yaml").write_text("name: t\nforget:\n  source: forget1\n")
    done, seconds = meow(["unlearn", "spec.yaml"], work)
    _assert_one_line_and_nothing_written(done, seconds, r"spec\.yaml, line 3, key forget\.source: forget1: .*'forget01'", work, {"spec.yaml"})
    done, seconds = meow(["unlearn", "missing.yaml"], work)
    _assert_one_line_and_nothing_written(done, seconds, r"missing\.yaml: file not found", work, {"spec.yaml"})


def test_a_good_spec_validates_with_a_summary(work):
    (work / "f.jsonl").write_bytes(b"\xef\xbb\xbf\n" + jsonl(OK) + b"\n" + jsonl(OK2))
    done, seconds = meow(["validate", DEFAULT, "--forget", "f.jsonl"], work)
    assert done.returncode == 0, done.stderr
    assert "f.jsonl: 2 records" in done.stdout and seconds < 3
    assert set(os.listdir(work)) == {"f.jsonl"} and not (work.parent / "home").exists()
