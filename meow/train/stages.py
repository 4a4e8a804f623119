"""The `prepare` and `unlearn` stages.

prepare: fine-tunes the spec's model into the TOFU target (forget set + retain authors) and the
retain oracle (retain authors only), reusing `MEOW_HOME/prepared/<content hash>` when the same base,
data and config were trained before; writes `<run>/prepare/{target,oracle}/` (HF directories) and
`selection.json` (which authors, how many rows).

unlearn: fine-tunes the model to unlearn with the spec's method (MEOW by default: the selected
inverted facts of `<run>/select/selected.jsonl`) and writes `<run>/unlearn/model/` plus
`train_log.jsonl` (one line per optimizer step: loss, learning rate, gradient norm, tokens, time).

Both checkpoint into `<run location>/<stage>/checkpoints/` while training, so a killed run resumes
from its last checkpoint when rerun with the same inputs; checkpoints go once the model is out.
"""

from __future__ import annotations

import json
from typing import Any

from meow.data import QARecord, forget_authors, load_qa, tofu_mini
from meow.data.tofu import SPLITS
from meow.models import resolve_model
from meow.pipeline.records import SelectionRecord
from meow.pipeline.stage import Stage, StageContext
from meow.train.config import PrepareConfig


def checkpoint_location(ctx: StageContext) -> str:
    """Where Ray Train writes this stage's checkpoints: under the run's own location (local or s3://)."""
    return f"{ctx.run.location.rstrip('/')}/{ctx.dir.name}/checkpoints"


def epochs_location(ctx: StageContext) -> str:
    """Where the models after each whole epoch go: `<stage>/epochs/epoch-<k>` in the run directory
    (absolute: the training workers do not run in the driver's working directory)."""
    from meow.models.resolve import is_remote

    if is_remote(ctx.run.location):
        return f"{ctx.run.location.rstrip('/')}/{ctx.dir.name}/epochs"
    return str((ctx.dir / "epochs").resolve())


def _remove_checkpoints(ctx: StageContext) -> None:
    import fsspec

    location = checkpoint_location(ctx)
    fs, root = fsspec.core.url_to_fs(location)
    if fs.exists(root):
        fs.rm(root, recursive=True)


class PrepareStage(Stage):
    name = "prepare"

    def config(self) -> dict[str, Any]:
        return {"prepare": self.spec.prepare.model_dump(mode="json"), "model": self.spec.model}

    def run(self, ctx: StageContext) -> dict[str, Any]:
        from meow.train.finetune import link_tree, prepared_model

        config: PrepareConfig = self.spec.prepare
        base = resolve_model(self.spec.model)
        forget = self.spec.forget.records()
        sets = tofu_mini.training_sets(config, forget)
        summary: dict[str, Any] = {
            "selection": config.selection,
            "forget_authors": forget_authors(forget),
            "retain_authors": tofu_mini.retain_authors(config, forget),
        }
        # The oracle first: the evaluation needs it before the target can be judged.
        for role in ("oracle", "target"):
            directory, manifest = prepared_model(
                base, sets[role], config.train, checkpoint_location(ctx), f"prepare-{role}", cache=config.cache
            )
            link_tree(directory, ctx.dir / role)
            summary[role] = {
                "rows": len(sets[role]),
                "key": manifest.get("key"),
                "cached": manifest["cached"],
                "steps": manifest.get("steps"),
                "final_loss": manifest.get("final_loss"),
                "train_seconds": manifest.get("train_seconds"),
            }
            ctx.run.log("prepare_model", role=role, rows=len(sets[role]), cached=manifest["cached"])
        (ctx.dir / "selection.json").write_text(json.dumps(summary, indent=2) + "\n")
        _remove_checkpoints(ctx)
        return summary


class UnlearnStage(Stage):
    name = "unlearn"
    reads = ("prepare", "select")

    def config(self) -> dict[str, Any]:
        spec = self.spec
        return {
            "unlearn": spec.unlearn.model_dump(mode="json"),
            "model": spec.given_model(),
        }

    def run(self, ctx: StageContext) -> dict[str, Any]:
        from transformers import AutoTokenizer

        from meow.train.data import fact_source, plan_training
        from meow.train.methods import METHODS
        from meow.train.trainer import TrainJob, fit

        config = self.spec.unlearn
        train = config.train
        method = METHODS.get(config.method)
        args = method.args.model_validate(config.method_args)
        model_dir = resolve_model(ctx.model_to_unlearn())
        tokenizer = AutoTokenizer.from_pretrained(model_dir)
        records, inversions = self._forget(ctx, "inverted" in method.groups)
        retain = self._retain(records) if method.uses_retain else None
        source = fact_source(
            tokenizer,
            records,
            method.groups,
            train.max_length,
            train.seed,
            inversions=inversions,
            sequences_per_fact=getattr(args, "sequences_per_fact", 1),
            retain=retain,
        )
        plan = plan_training(source, train, train.workers)
        ctx.run.log("unlearn_plan", method=config.method, facts=plan.facts, steps=plan.total_steps)
        job = TrainJob(
            str(model_dir),
            method,
            args,
            train,
            label="unlearn",
            epochs_location=epochs_location(ctx) if train.save_epochs else None,
        )
        # Same inputs, same run name: a rerun after a crash resumes; changed inputs start afresh.
        name = f"train-{ctx.inputs_hash}"
        result = fit(job, plan, checkpoint_location(ctx), name, ctx.dir / "model")
        if train.save_epochs and ctx.run.remote:
            # The workers wrote them to the run's remote location; the evaluation reads the stage's files.
            import fsspec

            fs, root = fsspec.core.url_to_fs(epochs_location(ctx))
            fs.get(root, str(ctx.dir / "epochs"), recursive=True)
        with open(ctx.dir / "train_log.jsonl", "w") as f:
            for record in result.history:
                f.write(json.dumps(record) + "\n")
        _remove_checkpoints(ctx)
        tokens = sum(h["tokens"] for h in result.history)
        ctx.run.log("unlearn_trained", steps=plan.total_steps, resumed_from_step=result.resumed_from_step)
        return {
            "method": config.method,
            "facts": plan.facts,
            "steps": plan.total_steps,
            "final_loss": result.history[-1]["loss"] if result.history else None,
            "tokens": tokens,
            "train_seconds": result.seconds,
            "resumed_from_step": result.resumed_from_step,
            "epoch_models": [f"epochs/epoch-{k}" for k in range(1, len(plan.epoch_ends) + 1)] if train.save_epochs else [],
        }

    def _forget(self, ctx: StageContext, inverted: bool) -> tuple[list[QARecord], dict[int, list[str]] | None]:
        """The facts to unlearn; with MEOW's data, the selection stage's records and their inversions."""
        if not inverted:
            return self.spec.forget.records(), None
        rows = ctx.run.read_records(SelectionRecord)
        records = [QARecord(r.index, r.question, r.answer) for r in rows]
        return records, {r.index: r.selected for r in rows}

    def _retain(self, forget: list[QARecord]) -> list[QARecord]:
        """The retain set: the spec's, else the prepared target's retain authors, else TOFU's complement split."""
        spec = self.spec
        if spec.unlearn.retain:
            return load_qa(spec.unlearn.retain)
        if "prepare" in spec.stages:
            return tofu_mini.author_rows(tofu_mini.retain_authors(spec.prepare, forget))
        source = spec.forget.source
        if source.startswith("forget") and source in SPLITS:
            complement = f"retain{100 - int(source.removeprefix('forget')):02d}"
            if complement in SPLITS:
                return load_qa(complement)
        raise ValueError(
            f"method {spec.unlearn.method!r} needs a retain set: set unlearn.retain (a TOFU split or a file/URI)"
        )

