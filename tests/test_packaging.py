"""The installed distribution: two import packages, the console script, and no shadowed stdlib."""

import re
import subprocess
import sys
import sysconfig
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_import_platform_is_the_standard_library_even_from_the_repo_root():
    code = "import platform, meow, meow_platform; print(platform.__file__); print(platform.system())"
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    path, system = out.splitlines()
    assert Path(path).parent == Path(sysconfig.get_paths()["stdlib"])
    assert system == "Linux"
    assert not (ROOT / "platform" / "__init__.py").exists()


def test_numpy_torch_and_ray_import_next_to_the_platform_folder():
    code = "import numpy, torch, ray, meow_platform; print('ok')"
    assert subprocess.run([sys.executable, "-c", code], cwd=ROOT / "platform", capture_output=True, text=True).stdout.strip() == "ok"


def test_console_script_runs():
    meow = Path(sys.executable).with_name("meow")
    out = subprocess.run([str(meow), "--help"], capture_output=True, text=True, check=True).stdout
    assert "make large language models forget" in out
    out = subprocess.run([str(meow), "models", "list"], capture_output=True, text=True, check=True).stdout
    assert "smollm2" in out


def test_cuda_only_side_packages_are_not_installed():
    from importlib.util import find_spec

    for name in ("torchvision", "torchaudio", "torchcodec", "triton"):
        assert find_spec(name) is None, f"{name} should have been removed by the bootstrap"


def test_readme_commands_and_ci_agree():
    readme = (ROOT / "README.md").read_text()
    block = re.search(r"```(?:\w+)?\n(.*?)```", readme, re.S).group(1).strip().splitlines()
    assert len(block) == 2, "the README's first code block holds exactly the run and the test command"
    run_command, test_command = block
    assert "run" in run_command and "test" in test_command
    ci = (ROOT / ".ci" / "run").read_text().splitlines()
    assert test_command in [line.strip() for line in ci], ".ci/run must run the README's test command verbatim"
