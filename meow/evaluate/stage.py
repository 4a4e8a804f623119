"""The `evaluate` stage: TOFU metrics of the run's target, oracle and unlearned model.

Which models exist depends on the spec:
* target: the prepared TOFU target (`<run>/prepare/target`) or, without `prepare`, the spec's model;
* oracle: the prepared retain-only model (`<run>/prepare/oracle`), else `evaluate.oracle` if set;
  without one there is no forget quality;
* unlearned: `<run>/unlearn/model` when the run unlearns, and with `unlearn.train.save_epochs` the
  models after each whole epoch (`unlearned-epoch-<k>`), which make the method's `frontier`: forget
  quality against model utility from the target (epoch 0) to the final model. Those per-epoch
  models are evaluated with `evaluate.frontier_dtype` when it is set (bf16: faster, FQ and MU less exact).

Writes `<model>/per_example/<split>.jsonl` for each and `metrics.json`, whose entries have the
benchmark's shape: `{"target": {...}, "oracle": {...}, "methods": {<method>: {...}}}`.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from functools import cached_property
from typing import Any

from meow.data import QARecord
from meow.evaluate.config import EvaluateConfig
from meow.evaluate.evaluator import evaluate_cached, evaluate_model, forget_ratios, model_metrics
from meow.evaluate.tofu import EvalSplit, forget_split, options_split, retain_split
from meow.pipeline.spec import PipelineSpec
from meow.pipeline.stage import Stage, StageContext


def eval_splits(spec: PipelineSpec, forget: Sequence[QARecord] | None = None) -> list[EvalSplit]:
    """The four evaluation sets; `forget`: the spec's forget records when the caller has read them."""
    rows = spec.evaluate.max_rows
    return [
        forget_split(spec.forget.source, rows, spec.forget.mapping(), spec.forget.format, records=forget),
        retain_split(rows, retain_authors(spec, forget)),
        options_split("real_authors", rows),
        options_split("world_facts", rows),
    ]


def retain_authors(spec: PipelineSpec, forget: Sequence[QARecord] | None = None) -> list[int] | None:
    """The retain authors the prepared target was trained on (`meow.data.tofu_mini`); None without
    `prepare`: all of retain_perturbed, as the reference. `forget`: the forget records if read already."""
    if "prepare" not in spec.stages:
        return None
    from meow.data import tofu_mini

    return tofu_mini.retain_authors(spec.prepare, spec.forget.records() if forget is None else forget)


FRONTIER_KEYS = (
    "forget_quality", "model_utility", "forget_rouge_l", "forget_truth_ratio", "forget_probability", "forget_secret_leak",
    "eval_dtype",
)  # fmt: skip
# Roles of the models saved after each whole epoch but the last.
EPOCH_PREFIX = "unlearned-epoch-"


def frontier(results: dict[str, dict[str, Any]], spec: PipelineSpec) -> list[dict[str, Any]]:
    """Forget quality against model utility along the unlearning: the target (epoch 0), the model after
    each whole epoch when they were saved, and the final model (`epochs` of the recipe)."""
    points = [("target", 0.0)]
    points += [(role, float(role.rsplit("-", 1)[1])) for role in results if role.startswith(EPOCH_PREFIX)]
    points.append(("unlearned", float(spec.unlearn.train.epochs)))
    return [
        {"epoch": epoch, "model": role, **{k: results[role].get(k) for k in FRONTIER_KEYS}}
        for role, epoch in points
        if role in results
    ]


class EvaluateStage(Stage):
    name = "evaluate"
    reads = ("prepare", "unlearn")

    @cached_property
    def forget_records(self) -> list[QARecord]:
        """The forget set, read once per stage: `config()` runs for the inputs hash and again for the
        manifest, and `run()` evaluates on it."""
        return self.spec.forget.records()

    def config(self) -> dict[str, Any]:
        spec = self.spec
        return {
            "evaluate": spec.evaluate.model_dump(mode="json"),
            # Without `prepare`, the evaluated target is the spec's model itself.
            "model": spec.given_model(),
            "retain_authors": retain_authors(spec, self.forget_records) if "prepare" in spec.stages else None,
            "method": spec.unlearn.method if "unlearn" in spec.stages else None,
        }

    def models(self, ctx: StageContext) -> dict[str, str]:
        """The models to evaluate by role, in evaluation order (the oracle first: FQ needs it)."""
        spec = self.spec
        found = {}
        if "prepare" in spec.stages:
            found["oracle"] = str(ctx.upstream("prepare") / "oracle")
        elif spec.evaluate.oracle:
            found["oracle"] = spec.evaluate.oracle
        found["target"] = ctx.model_to_unlearn()
        if "unlearn" in spec.stages:
            for k, path in enumerate(self.epoch_models(ctx), 1):
                found[f"{EPOCH_PREFIX}{k}"] = path
            found["unlearned"] = str(ctx.upstream("unlearn") / "model")
        return found

    def epoch_models(self, ctx: StageContext) -> list[str]:
        """The unlearning stage's models after each whole epoch but the last (`train.save_epochs`)."""
        manifest = ctx.run.manifest("unlearn") or {}
        names = (manifest.get("summary") or {}).get("epoch_models", [])
        return [str(ctx.upstream("unlearn") / name) for name in names]

    def settings(self, role: str) -> EvaluateConfig:
        """The evaluation settings of one role: the intermediate frontier points take `frontier_dtype`."""
        config = self.spec.evaluate
        if role.startswith(EPOCH_PREFIX) and config.frontier_dtype is not None:
            return config.with_dtype(config.frontier_dtype)
        return config

    def run(self, ctx: StageContext) -> dict[str, Any]:
        splits = eval_splits(self.spec, self.forget_records)
        ctx.run.log("evaluate_splits", **{s.name: len(s.examples) for s in splits})
        results: dict[str, dict[str, Any]] = {}
        oracle_forget = None
        for role, model in self.models(ctx).items():
            started = time.time()
            config = self.settings(role)
            if config.cache:
                per_example, cached = evaluate_cached(model, splits, config, label=role)
            else:
                per_example, cached = evaluate_model(model, splits, config, label=role), False
            ctx.run.write_examples(role, per_example)
            if role == "oracle":
                oracle_forget = forget_ratios(per_example)
            seconds = round(time.time() - started, 2)
            results[role] = {
                **model_metrics(per_example, oracle_forget),
                "eval_s": seconds,
                "eval_cached": cached,
                # As set (`auto` resolves inside the engine actor, on the hardware that runs it).
                "eval_dtype": config.engine.dtype,
            }
            ctx.run.log("evaluate_model", model=role, seconds=seconds, cached=cached)
        summary: dict[str, Any] = {role: results[role] for role in ("target", "oracle") if role in results}
        if "unlearned" in results:
            summary["methods"] = {self.spec.unlearn.method: {**results["unlearned"], "frontier": frontier(results, self.spec)}}
        ctx.run.write_evaluation(summary)
        return {
            role: {k: r[k] for k in ("forget_quality", "model_utility", "forget_rouge_l", "eval_s")}
            for role, r in results.items()
        }
