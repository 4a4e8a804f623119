"""Plain fine-tuning (the TOFU target and retain oracle), cached by content hash.

A prepared model is identified by what went into it: the base model's files, the training
records, the training config and this recipe's version. Prepared models live in
`MEOW_HOME/prepared/<hash>/` (a plain HF directory), so reruns and other runs with the same
inputs reuse them instead of training again.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from meow.data import QARecord
from meow.models.cache import cached_directory, meow_home, read_manifest
from meow.pipeline.rundir import stable_hash
from meow.train.config import PrepareConfig, TrainConfig
from meow.train.methods import FINETUNE, NoArgs

log = logging.getLogger(__name__)

# Bump when a change to data encoding or the training loop changes what a prepared model is.
RECIPE_VERSION = 1
# Where and how robustly training runs, and what it exports on the way (save_epochs), not what it
# computes: left out of the cache key.
PLACEMENT_FIELDS = {
    "save_epochs",
    "workers",
    "cpus_per_worker",
    "gpus_per_worker",
    "memory_per_worker",
    "device",
    "checkpoint_every",
    "max_failures",
    "reshard_after_forward",
    "share_prompts",
}


def model_fingerprint(model_dir: Path) -> str:
    """sha256 over every file of a model directory (names and contents)."""
    digest = hashlib.sha256()
    for path in sorted(p for p in Path(model_dir).rglob("*") if p.is_file()):
        if path.name.startswith("meow-manifest") or path.name.endswith(".lock"):
            continue
        digest.update(path.relative_to(model_dir).as_posix().encode() + b"\0")
        with open(path, "rb") as f:
            while block := f.read(1 << 22):
                digest.update(block)
    return digest.hexdigest()


def prepared_key(model_dir: Path, records: Sequence[QARecord], config: TrainConfig) -> str:
    return stable_hash(
        {
            "recipe": RECIPE_VERSION,
            "base": model_fingerprint(model_dir),
            "data": [(r.question, r.answer) for r in records],
            "train": config.model_dump(mode="json", exclude=PLACEMENT_FIELDS),
        }
    )


def finetune(
    model_dir: Path, records: Sequence[QARecord], config: TrainConfig, out_dir: Path, checkpoints: str, label: str
) -> dict[str, Any]:
    """Fine-tune `model_dir` on `records` (NLL on the answers) into `out_dir`; returns a summary."""
    from transformers import AutoTokenizer

    from meow.train.data import fact_source, plan_training
    from meow.train.trainer import TrainJob, fit

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    source = fact_source(tokenizer, records, FINETUNE.groups, config.max_length, config.seed)
    plan = plan_training(source, config, config.workers)
    job = TrainJob(str(model_dir), FINETUNE, NoArgs(), config, label=label)
    result = fit(job, plan, checkpoints, "train", out_dir)
    return {
        "records": len(records),
        "steps": plan.total_steps,
        "final_loss": result.history[-1]["loss"] if result.history else None,
        "train_seconds": result.seconds,
        "resumed_from_step": result.resumed_from_step,
        "history": result.history,
    }


def prepared_model(
    model_dir: Path,
    records: Sequence[QARecord],
    config: TrainConfig,
    checkpoints: str,
    label: str,
    cache: bool = True,
) -> tuple[Path, dict[str, Any]]:
    """The model fine-tuned on `records`, from the cache when it was trained before; and its manifest."""
    key = prepared_key(model_dir, records, config)
    directory = meow_home() / "prepared" / key
    if not cache:
        shutil.rmtree(directory, ignore_errors=True)

    def build(tmp: Path) -> dict[str, Any]:
        summary = finetune(model_dir, records, config, tmp, f"{checkpoints.rstrip('/')}/{key}", label)
        return {"key": key, "label": label, "base": str(model_dir), "train": config.model_dump(mode="json"), **summary}

    cached = read_manifest(directory) is not None
    cached_directory(directory, build)
    manifest = read_manifest(directory) or {}
    return directory, {**manifest, "cached": cached}


def finetune_sets(
    prepare: PrepareConfig, forget: Sequence[QARecord], forget_source: str, retain_mix: bool | None = None
) -> tuple[dict[str, list[QARecord]], dict[str, dict[str, int]]]:
    """What `meow finetune` trains each role on, and the record counts by source.

    With the retain mix (TOFU's retain authors of `prepare.selection`, `meow.data.tofu_mini`) the
    target is retain + forget and the oracle retain alone, exactly as the pipeline's `prepare` stage
    trains them (same records, same order, so the same cached models). Without it the target is the
    forget set alone and there is no oracle to train: the base model itself never saw the facts.
    `retain_mix=None` mixes for a TOFU forget set (every record one of TOFU's) and not for custom data.
    """
    from meow.data.tofu import author_of
    from meow.data import tofu_mini

    if retain_mix is None:
        retain_mix = bool(forget) and all(author_of(r) is not None for r in forget)
    if not retain_mix:
        return {"target": list(forget), "oracle": []}, {"target": {forget_source: len(forget)}, "oracle": {}}
    sets = tofu_mini.training_sets(prepare, forget)
    retain = f"TOFU retain ({prepare.selection}, {len(tofu_mini.retain_authors(prepare, forget))} authors)"
    retained = len(sets["oracle"])
    counts = {"target": {forget_source: len(forget), retain: retained}, "oracle": {retain: retained}}
    return sets, counts


def link_tree(source: Path, destination: Path) -> None:
    """Mirror `source` at `destination` with hard links (a copy across filesystems)."""
    shutil.rmtree(destination, ignore_errors=True)
    for path in source.rglob("*"):
        target = destination / path.relative_to(source)
        if path.is_dir():
            target.mkdir(parents=True, exist_ok=True)
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.link(path, target)
        except OSError:
            shutil.copy2(path, target)
