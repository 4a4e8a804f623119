"""Recipe sweeps as Ray Tune trials on the run's own Ray cluster.

A sweep takes a run whose stages before `unlearn` have finished (its prepared models, inverted
facts, MEMO and selection) and a grid of spec overrides (`unlearn.train.learning_rate=1e-5,5e-5`,
`unlearn.train.lora.rank=16`, ...). Each point of the grid is one Tune trial: the run's spec with
those values, in its own run directory `<run>/sweep/<trial>/` whose upstream stages link to the
run's, so a trial computes only `unlearn`, `evaluate` and `report`. The target's and oracle's
evaluations come from the evaluation cache; with `unlearn.train.save_epochs` every trial also
gives its frontier along the epochs, so a grid of learning rates (and LoRA or full) times the
epochs of one recipe covers the forget-quality / model-utility plane.

Trials run one at a time by default: each one's training workers and engine actors take the
cluster's CPUs themselves (a trial reserves none), and Ray queues what does not fit.
"""

from __future__ import annotations

import hashlib
import json
from itertools import product
from pathlib import Path
from typing import Any

import yaml

from meow.pipeline.rundir import RunDir
from meow.pipeline.spec import PipelineSpec

# What a trial computes; the stages before `unlearn` are the base run's.
TRIAL_STAGES = ("unlearn", "evaluate", "report")
# What the trial's own process (the driver of its stages) reserves.
TRIAL_MEMORY = 256 * 1024**2


def parse_grid(params: list[str]) -> dict[str, list[Any]]:
    """`key=v1,v2` arguments (dotted spec keys, YAML values) -> {key: [v1, v2]}."""
    grid: dict[str, list[Any]] = {}
    for param in params:
        key, sep, values = param.partition("=")
        if not sep or not key.strip() or not values.strip():
            raise ValueError(f"a sweep parameter is key=value[,value...], not {param!r}")
        grid[key.strip()] = [_value(v) for v in values.split(",")]
    return grid


def _value(text: str) -> Any:
    """A YAML value, where "1e-5" (a string to YAML 1.1) is the number it means."""
    value = yaml.safe_load(text)
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return value
    return value


def points(grid: dict[str, list[Any]]) -> list[dict[str, Any]]:
    """Every combination of the grid's values, in order."""
    keys = list(grid)
    return [dict(zip(keys, values)) for values in product(*(grid[k] for k in keys))]


def with_overrides(spec: PipelineSpec, overrides: dict[str, Any]) -> PipelineSpec:
    """`spec` with dotted keys set, validated as a spec file is (a wrong key or value is an error)."""
    data = spec.model_dump(mode="json")
    for key, value in overrides.items():
        node = data
        *parents, leaf = key.split(".")
        for part in parents:
            if node.get(part) is None:
                node[part] = {}
            node = node[part]
            if not isinstance(node, dict):
                raise ValueError(f"sweep key {key!r}: {part!r} is not a section")
        node[leaf] = value
    return PipelineSpec.model_validate(data)


def trial_name(overrides: dict[str, Any]) -> str:
    text = json.dumps(overrides, sort_keys=True)
    readable = "_".join(f"{k.rsplit('.', 1)[-1]}={v}" for k, v in overrides.items())
    return f"{readable[:60]}-{hashlib.sha256(text.encode()).hexdigest()[:8]}".replace("/", "_")


def upstream(spec: PipelineSpec) -> list[str]:
    """The stages a trial takes from the base run: those before `unlearn`."""
    return list(spec.stages[: spec.stages.index("unlearn")]) if "unlearn" in spec.stages else []


def check(spec: PipelineSpec, base: Path, grid: dict[str, list[Any]]) -> list[dict[str, Any]]:
    """The grid's points, each a valid spec, and the base run's upstream stages finished; writes nothing."""
    if "unlearn" not in spec.stages or "evaluate" not in spec.stages:
        raise ValueError("a sweep needs a spec that runs the unlearn and evaluate stages")
    if "://" in str(base):
        raise ValueError("a sweep runs from a local run directory")
    grid_points = points(grid)
    for overrides in grid_points:
        with_overrides(spec, overrides)
    for stage in upstream(spec):
        if not (base / stage / "manifest.json").is_file():
            raise ValueError(f"the run at {base} has not finished stage {stage!r}: run it first (meow run {stage} SPEC)")
    return grid_points


def prepare_trial(base: Path, spec: PipelineSpec, name: str) -> Path:
    """The trial's run directory with links to the base run's finished upstream stages."""
    directory = base / "sweep" / name
    directory.mkdir(parents=True, exist_ok=True)
    for stage in upstream(spec):
        link = directory / stage
        if not link.exists():
            link.symlink_to((base / stage).resolve(), target_is_directory=True)
    return directory


def trial_result(run_path: Path, spec: PipelineSpec) -> dict[str, Any]:
    """The trial's headline numbers: its final model's and its frontier, from the evaluation."""
    metrics = RunDir(run_path).evaluation()
    method = metrics["methods"][spec.unlearn.method]
    keys = ("forget_quality", "model_utility", "forget_rouge_l", "forget_truth_ratio")
    return {k: method.get(k) for k in keys} | {
        "target_model_utility": (metrics.get("target") or {}).get("model_utility"),
        "frontier": method.get("frontier", []),
    }


def _trial(config: dict[str, Any], spec: PipelineSpec, base: str) -> None:
    from ray import tune

    from meow.pipeline.driver import run_pipeline

    overrides = config["overrides"]
    trial_spec = with_overrides(spec, overrides)
    location = prepare_trial(Path(base), trial_spec, trial_name(overrides))
    stages = [s for s in trial_spec.stages if s in TRIAL_STAGES]
    run = run_pipeline(trial_spec, str(location), only=stages)
    tune.report({**trial_result(run.path, trial_spec), "run": str(location)})


def sweep(spec: PipelineSpec, base: str | Path, grid: dict[str, list[Any]], max_concurrent: int = 1) -> list[dict[str, Any]]:
    """Run every grid point as a Tune trial (Ray must be running); one result per point, in grid order."""
    from ray import tune

    base = Path(base).expanduser().resolve()
    grid_points = check(spec, base, grid)
    tuner = tune.Tuner(
        # A trial holds no CPU (its workers and actors ask for their own); Tune needs some resource in the
        # trial's bundle, so it holds a little memory.
        tune.with_resources(tune.with_parameters(_trial, spec=spec, base=str(base)), {"cpu": 0, "memory": TRIAL_MEMORY}),
        param_space={"overrides": tune.grid_search(grid_points)},
        tune_config=tune.TuneConfig(max_concurrent_trials=max_concurrent),
        run_config=tune.RunConfig(name="tune", storage_path=str(base / "sweep"), verbose=0),
    )
    results = tuner.fit()
    found = {}
    for result in results:
        if result.error is not None:
            raise RuntimeError(f"sweep trial {result.config['overrides']} failed: {result.error}")
        found[json.dumps(result.config["overrides"], sort_keys=True)] = result.metrics
    keys = ("forget_quality", "model_utility", "forget_rouge_l", "forget_truth_ratio", "target_model_utility", "frontier", "run")
    out = [
        {"overrides": p, **{k: found[json.dumps(p, sort_keys=True)].get(k) for k in keys}} for p in grid_points
    ]
    (base / "sweep" / "results.json").write_text(json.dumps(out, indent=2) + "\n")
    return out
