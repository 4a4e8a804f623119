"""Fine-tuning on Ray Train, the driver's side: a `TorchTrainer` with N workers, the model sharded
with FSDP2.

One loop serves the unlearning methods and the target/oracle preparation; what differs is the
plan (`meow.train.data`) and the method (`meow.train.methods`: what it trains on, its loss). Read
in this order:

* `trainer` (this module): the job, the workers' resources, `fit` (start or resume the run, copy
  the final model out);
* `worker`: what each worker runs: sharding, AdamW and torch's `LambdaLR` schedule (HF's linear
  warm-up and decay), the steps, checkpoints (sharded model + optimizer via
  torch.distributed.checkpoint, the step and the schedule's state in the trainer state file);
* `forward`: one micro-batch's forward pass, prompts shared or rows padded, logits only where a loss
  reads them;
* `export`: the final (and per-epoch) model as a plain HF directory.

Device and collectives come from the config: CUDA + NCCL when there are GPUs, CPU + gloo otherwise.
Checkpoints go through `ray.train.report` to the run's storage (a local directory or s3://); a
rerun with the same storage and run name resumes from the latest one.
"""

from __future__ import annotations

import json
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from meow.train.config import TrainConfig
from meow.train.data import Plan
from meow.train.export import MODEL_DIR
from meow.train.methods import Method
from meow.train.worker import STATE_FILE, train_loop


@dataclass(frozen=True)
class TrainJob:
    """Everything a worker needs besides the plan. `model_dir` is a local HF directory."""

    model_dir: str
    method: Method  # an unlearning method, or FINETUNE for the target and oracle
    method_args: BaseModel  # the method's validated arguments
    config: TrainConfig
    label: str = "train"  # telemetry tag: the stage (unlearn, prepare-target, ...)
    # Where rank 0 exports the model after each whole epoch (`<location>/epoch-<k>`, local or fsspec
    # URI); None: only the final model.
    epochs_location: str | None = None


@dataclass
class TrainResult:
    model_dir: Path
    history: list[dict[str, Any]] = field(default_factory=list)
    resumed_from_step: int = 0
    seconds: float = 0.0
    # Parameters held by each worker after sharding.
    shard_parameters: list[int] = field(default_factory=list)


def uses_gpu(config: TrainConfig) -> bool:
    return config.device == "cuda" or (config.device == "auto" and config.gpus_per_worker > 0)


def worker_resources(config: TrainConfig) -> dict[str, float]:
    """What Ray reserves for each training worker: CPUs, GPUs and memory (so that runs sharing a node
    queue for it rather than run out of it)."""
    gpus = {"GPU": config.gpus_per_worker or 1} if uses_gpu(config) else {}
    return {"CPU": config.cpus_per_worker, **gpus, "memory": int(config.memory_per_worker)}


def fit(job: TrainJob, plan: Plan, storage_path: str, name: str, out_dir: Path) -> TrainResult:
    """Train on Ray (joining the current session); writes the final HF directory to `out_dir`.

    Checkpoints go to `storage_path/name` (a local directory or an fsspec URI such as s3://...);
    when a previous attempt left checkpoints there, training resumes from the latest.
    """
    import ray
    from ray.train import CheckpointConfig, FailureConfig, RunConfig, ScalingConfig
    from ray.train.torch import TorchConfig, TorchTrainer

    from meow.cluster import check_memory

    config = job.config
    use_gpu = uses_gpu(config)
    check_memory(plan.workers, config.memory_per_worker, "train.memory_per_worker")
    started = time.time()
    storage, filesystem = _storage(storage_path)
    trainer = TorchTrainer(
        train_loop,
        train_loop_config={"job": job, "plan": ray.put(plan)},
        torch_config=TorchConfig(backend="nccl" if use_gpu else "gloo"),
        scaling_config=ScalingConfig(
            num_workers=plan.workers, use_gpu=use_gpu, resources_per_worker=worker_resources(config)
        ),
        run_config=RunConfig(
            name=name,
            storage_path=storage,
            storage_filesystem=filesystem,
            # The last checkpoint is all a resume needs; the final one holds the model.
            checkpoint_config=CheckpointConfig(num_to_keep=1),
            failure_config=FailureConfig(max_failures=config.max_failures),
        ),
    )
    result = trainer.fit()
    if result.checkpoint is None:
        raise RuntimeError("training finished without a final checkpoint")
    with result.checkpoint.as_directory() as directory:
        state = json.loads((Path(directory) / STATE_FILE).read_text())
        if not state.get("final"):
            raise RuntimeError("the latest checkpoint is not a finished model")
        tmp = out_dir.with_name(out_dir.name + ".tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        shutil.copytree(Path(directory) / MODEL_DIR, tmp)
        shutil.rmtree(out_dir, ignore_errors=True)
        tmp.rename(out_dir)
    return TrainResult(
        out_dir, state["history"], state["resumed_from_step"], round(time.time() - started, 2), state["shard_parameters"]
    )


def _storage(location: str):
    """Ray Train's storage path and filesystem: remote locations through fsspec, like the run directory."""
    from meow.models.resolve import is_remote

    if not is_remote(location):
        return str(Path(location).expanduser().resolve()), None
    import fsspec
    import pyarrow.fs

    fs, root = fsspec.core.url_to_fs(location)
    return root, pyarrow.fs.PyFileSystem(pyarrow.fs.FSSpecHandler(fs))
