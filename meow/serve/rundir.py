"""Which models a MEOW run directory holds, by the names the serve app and the probe use.

The one place that knows a run's layout (see meow.pipeline): adapt it here if the layout moves.
"""

from __future__ import annotations

import os
from pathlib import Path

import yaml


def locate_run(run: str) -> Path:
    """A run directory from a path, an s3:// location (pulled to a local copy) or a run id under $MEOW_RUNS."""
    if "://" in run:
        from meow.pipeline.rundir import RunDir

        remote = RunDir(run)
        remote.pull()
        return remote.path
    path = Path(run).expanduser()
    if not path.is_dir():
        path = Path(os.environ.get("MEOW_RUNS", "runs")) / run
    if not (path / "spec.yaml").is_file():
        raise FileNotFoundError(f"{run}: not a run directory (no spec.yaml there or under $MEOW_RUNS)")
    return path


def run_models(run: str) -> dict[str, str]:
    """`original`, `unlearned` and, when the run prepared one, `oracle` -> model spec; without an oracle,
    `base` when it is known: the model the original was fine-tuned from by `meow finetune` (its manifest's
    `base`), the reference that never learned the facts.

    `original` is the model the run unlearned: the TOFU target it prepared, else the spec's `model`.
    """
    path = locate_run(run)
    spec = yaml.safe_load((path / "spec.yaml").read_text()) or {}
    prepared = path / "prepare"
    target = prepared / "target"
    models = {"original": str(target) if _is_model(target) else spec.get("model", "smollm2")}
    unlearned = path / "unlearn" / "model"
    if not _is_model(unlearned):
        raise FileNotFoundError(f"{path}: the run has no unlearned model yet (unlearn/model)")
    models["unlearned"] = str(unlearned)
    if _is_model(prepared / "oracle"):
        models["oracle"] = str(prepared / "oracle")
    elif base := finetuned_from(models["original"]):
        models["base"] = base
    return models


def finetuned_from(model: str) -> str | None:
    """The base a `meow finetune` model directory was trained from (its meow manifest), if it is one."""
    from meow.models.cache import read_manifest

    path = Path(model).expanduser()
    manifest = read_manifest(path) if path.is_dir() else None
    base = (manifest or {}).get("base")
    return base if isinstance(base, str) and base != str(path) else None


def _is_model(path: Path) -> bool:
    return (path / "config.json").is_file()
