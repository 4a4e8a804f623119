"""Inside each Ray Train worker: shard the model, then run the plan's optimizer steps.

Worker `rank` of `world`:
1. loads the model in fp32 (LoRA adapters added when configured) and shards it with FSDP2, plus a
   frozen reference copy when the method scores with one;
2. builds AdamW and the learning-rate schedule; when a checkpoint exists, restores model, optimizer,
   schedule and step from it;
3. runs each step's micro-batches `rank, rank + world, ...` (gradients synchronised once, on the
   last), clips the gradient norm, steps the optimizer and the schedule, and records the step;
4. checkpoints every `checkpoint_every` steps and exports the model after each whole epoch when asked;
5. reports the final model as a checkpoint holding a plain HF directory (`meow.train.export`).
"""

from __future__ import annotations

import json
import logging
import tempfile
import time
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from meow.hardware import native_bf16
from meow.train.config import TrainConfig
from meow.train.data import MicroBatch, Plan
from meow.train.export import MODEL_DIR, export_epoch, full_state, save_hf
from meow.train.forward import Scorer, group_stats

if TYPE_CHECKING:
    from meow.train.trainer import TrainJob

log = logging.getLogger(__name__)

# In every checkpoint: the step, the history so far, the schedule's state; `final` marks the
# checkpoint that holds the finished model.
STATE_FILE = "trainer_state.json"


def train_loop(loop_config: dict[str, Any]) -> None:
    """Ray Train's per-worker function: `loop_config` holds the job and a reference to the plan."""
    import ray
    import ray.train
    import torch.distributed as dist

    job: TrainJob = loop_config["job"]
    plan: Plan = ray.get(loop_config["plan"])
    config = job.config
    context = ray.train.get_context()
    rank, world = context.get_world_rank(), context.get_world_size()
    device = _device(config.device)
    if device.type == "cpu":
        # One intra-op thread per CPU of the worker: more threads than cores thrash.
        torch.set_num_threads(max(1, int(config.cpus_per_worker)))
    torch.manual_seed(config.seed)

    scorer = _sharded(Scorer(_load_model(job.model_dir, config, trainable=True)), device, world, config)
    reference = None
    if job.method.uses_reference:
        reference = _sharded(Scorer(_load_model(job.model_dir, config, trainable=False)), device, world, config)
    # Each worker's share of the parameters (FSDP2 shards every parameter along its first dimension).
    shards: list[int] = [0] * world
    dist.all_gather_object(shards, sum(p.to_local().numel() for p in scorer.parameters()))
    params = [p for p in scorer.parameters() if p.requires_grad]
    optimizer = adamw(params, config)
    # Built before a checkpoint's optimizer state is loaded: the optimizer's learning rates are then
    # the checkpoint's, and the scheduler's state (loaded after) continues from there.
    scheduler = linear_schedule(optimizer, plan.warmup_steps, plan.total_steps)

    start, history, resumed_from = 0, [], 0
    checkpoint = ray.train.get_checkpoint()
    if checkpoint is not None:
        with checkpoint.as_directory() as directory:
            state = json.loads((Path(directory) / STATE_FILE).read_text())
            if state.get("final"):
                # The driver died after training finished: hand the same model back, train nothing.
                ray.train.report({"step": state["step"]}, checkpoint=checkpoint if rank == 0 else None)
                return
            _load_state(scorer, optimizer, directory)
            restore_schedule(scheduler, state)
            start, history, resumed_from = state["step"], state["history"], state["step"]
            log.info("resuming at step %d of %d", start, plan.total_steps)

    bf16 = uses_bf16(config.precision, device)
    if rank == 0:
        log.info("%s: %s on %s", job.label, "bf16 autocast" if bf16 else "fp32", device)
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16)
    progress = _progress(plan.total_steps, start, job.label) if rank == 0 else None
    for step in range(start, plan.total_steps):
        began, began_cpu = time.perf_counter(), time.process_time()
        lr = optimizer.param_groups[0]["lr"]
        step_loss = torch.zeros((), dtype=torch.float64, device=device)  # NCCL reduces device tensors
        mine = plan.steps[step][rank::world]
        for i, micro in enumerate(mine):
            step_loss += _backward(scorer, reference, micro, job, device, autocast, last=i == len(mine) - 1)
        grad_norm = _clip(params, config.max_grad_norm)
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)
        dist.all_reduce(step_loss)
        seconds = time.perf_counter() - began
        record = {
            "step": step + 1,
            "loss": float(step_loss),
            "lr": lr,
            "grad_norm": grad_norm,
            "tokens": sum(m.tokens() for m in plan.steps[step]),
            "seconds": round(seconds, 3),
            # This worker's CPU time: the step's cost on a machine shared with other work.
            "cpu_seconds": round(time.process_time() - began_cpu, 3),
        }
        history.append(record)
        if progress is not None:
            _publish(record, seconds, job.label, progress)
        done = step + 1
        if job.epochs_location and done in plan.epoch_ends:
            export_epoch(scorer, job, rank, plan.epoch_ends.index(done) + 1)
        if config.checkpoint_every and done % config.checkpoint_every == 0 and done < plan.total_steps:
            state = {
                "step": done,
                "history": history,
                "final": False,
                "resumed_from_step": resumed_from,
                "scheduler": scheduler.state_dict(),
            }
            _report_checkpoint(scorer, optimizer, state, record, rank)
    if progress is not None:
        progress.close()

    final = {
        "step": plan.total_steps,
        "history": history,
        "final": True,
        "resumed_from_step": resumed_from,
        "shard_parameters": shards,
    }
    _report_model(scorer, job, final, rank)


def _backward(scorer, reference, micro: MicroBatch, job: TrainJob, device, autocast, last: bool) -> torch.Tensor:
    """Forward and backward of one micro-batch; gradients are synchronised on the step's `last` one.
    Returns the micro-batch's loss (its share of the step's)."""
    import torch.distributed as dist

    from meow.train.losses import LossInputs

    scorer.set_requires_gradient_sync(last)
    if not job.config.reshard_after_forward:
        scorer.set_reshard_after_backward(last)
    stats = group_stats(scorer, reference, micro, job, device, autocast)
    loss = job.method.loss(LossInputs(stats, micro.scope), job.method_args)
    # FSDP averages gradients over workers; each worker's loss is its share of a sum.
    (loss * dist.get_world_size()).backward()
    return loss.detach().double()


def _report_checkpoint(scorer: nn.Module, optimizer, state: dict[str, Any], record: dict[str, Any], rank: int) -> None:
    """Every worker writes its shard of model and optimizer; rank 0 adds the trainer state."""
    import ray.train

    with tempfile.TemporaryDirectory() as directory:
        _save_state(scorer, optimizer, directory)
        if rank == 0:
            (Path(directory) / STATE_FILE).write_text(json.dumps(state))
        ray.train.report(record, checkpoint=ray.train.Checkpoint.from_directory(directory))


def _report_model(scorer: nn.Module, job: TrainJob, state: dict[str, Any], rank: int) -> None:
    """The final checkpoint: the model as a plain HF directory and the trainer state, from rank 0."""
    import ray.train

    full = full_state(scorer)
    history = state["history"]
    with tempfile.TemporaryDirectory() as directory:
        if rank == 0:
            save_hf(full, job, Path(directory) / MODEL_DIR)
            (Path(directory) / STATE_FILE).write_text(json.dumps(state))
        checkpoint = ray.train.Checkpoint.from_directory(directory) if rank == 0 else None
        ray.train.report(history[-1] if history else {"step": state["step"]}, checkpoint=checkpoint)


def _publish(record: dict[str, Any], seconds: float, label: str, progress) -> None:
    """Rank 0 shows the step in telemetry and on the progress bar."""
    from meow.telemetry import count, gauge

    gauge("meow_train_loss", record["loss"], "Training loss of the last step", stage=label)
    gauge("meow_train_step_seconds", seconds, "Wall time of the last training step", stage=label)
    count("meow_train_tokens_total", record["tokens"], "Tokens trained on", stage=label)
    progress.set_postfix(loss=f"{record['loss']:.4f}", refresh=False)
    progress.update(1)


# --- model, optimizer, schedule --------------------------------------------------------------


def uses_bf16(precision: str, device: torch.device) -> bool:
    """Whether a worker on `device` trains under bf16 autocast for a `precision` setting."""
    return precision == "bf16" or (precision == "auto" and native_bf16(device.type))


def _device(name: str) -> torch.device:
    if name == "cuda" or (name == "auto" and torch.cuda.is_available()):
        from ray.train.torch import get_device

        return get_device()
    return torch.device("cpu")


def _load_model(model_dir: str, config: TrainConfig, trainable: bool) -> nn.Module:
    from transformers import AutoModelForCausalLM

    from meow.train.lora import apply_lora

    # fp32 master weights; bf16 only inside autocast.
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
    model.config.use_cache = False
    if not trainable:
        model.requires_grad_(False)
        return model.eval()
    if config.lora is not None:
        apply_lora(model, config.lora)
    if config.gradient_checkpointing:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    return model.train()


def _sharded(scorer: Scorer, device: torch.device, world: int, config: TrainConfig) -> Scorer:
    """FSDP2: each transformer block is a unit; the root unit holds embeddings, final norm and head."""
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.fsdp import fully_shard

    mesh = init_device_mesh(device.type, (world,))
    blocks = set(getattr(scorer.model, "_no_split_modules", None) or ())
    for module in scorer.model.modules():
        if type(module).__name__ in blocks:
            fully_shard(module, mesh=mesh, reshard_after_forward=config.reshard_after_forward)
    fully_shard(scorer, mesh=mesh, reshard_after_forward=config.reshard_after_forward)
    return scorer


def adamw(params: list[nn.Parameter], config: TrainConfig) -> torch.optim.AdamW:
    """AdamW decaying every weight matrix and embedding, not biases or norm scales (as the HF Trainer).

    torch's fused kernel where it has one (CPU, CUDA): the same update to rounding (2e-7 after 4
    steps of SmolLM2), one pass over each tensor instead of a dozen; on one CPU core SmolLM2's step
    takes 0.25-0.39 s instead of 1.4 s (docs/training.md)."""
    fused = all(p.device.type in ("cpu", "cuda") for p in params) or None
    return torch.optim.AdamW(
        [
            {"params": [p for p in params if p.ndim >= 2], "weight_decay": config.weight_decay},
            {"params": [p for p in params if p.ndim < 2], "weight_decay": 0.0},
        ],
        lr=config.learning_rate,
        fused=fused,
    )


def linear_warmup_decay(step: int, warmup: int, total: int) -> float:
    """Learning-rate factor before optimizer step `step` (0-based), as HF's linear schedule."""
    if step < warmup:
        return step / max(1, warmup)
    return max(0.0, (total - step) / max(1, total - warmup))


def linear_schedule(optimizer: torch.optim.Optimizer, warmup: int, total: int) -> torch.optim.lr_scheduler.LambdaLR:
    """Optimizer step k (0-based) runs at the learning rate times `linear_warmup_decay(k, warmup, total)`;
    step the scheduler after each optimizer step."""
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: linear_warmup_decay(step, warmup, total))


def restore_schedule(scheduler: torch.optim.lr_scheduler.LambdaLR, state: dict[str, Any]) -> None:
    """The schedule as a checkpoint's trainer state left it. A state without the scheduler's (written
    before it was saved) is caught up by stepping: the schedule is a function of the step alone."""
    if "scheduler" in state:
        scheduler.load_state_dict(state["scheduler"])
        return
    with warnings.catch_warnings():
        # Stepping the schedule without optimizer steps is the point here.
        warnings.simplefilter("ignore", UserWarning)
        for _ in range(state["step"]):
            scheduler.step()


def _clip(params: list[nn.Parameter], max_norm: float) -> float:
    """Clip the global gradient norm (across shards) to `max_norm` (0: measure only); returns it."""
    norm = torch.nn.utils.clip_grad_norm_(params, max_norm if max_norm > 0 else float("inf"))
    norm = norm.full_tensor() if hasattr(norm, "full_tensor") else norm
    return float(norm)


# --- checkpoint state ------------------------------------------------------------------------


def _save_state(model: nn.Module, optimizer, directory: str) -> None:
    import torch.distributed.checkpoint as dcp
    from torch.distributed.checkpoint.state_dict import get_state_dict

    model_state, optimizer_state = get_state_dict(model, optimizer)
    dcp.save({"model": model_state, "optimizer": optimizer_state}, checkpoint_id=directory)


def _load_state(model: nn.Module, optimizer, directory: str) -> None:
    import torch.distributed.checkpoint as dcp
    from torch.distributed.checkpoint.state_dict import get_state_dict, set_state_dict

    model_state, optimizer_state = get_state_dict(model, optimizer)
    state = {"model": model_state, "optimizer": optimizer_state}
    dcp.load(state, checkpoint_id=directory)
    set_state_dict(model, optimizer, model_state_dict=state["model"], optim_state_dict=state["optimizer"])


def _progress(total: int, initial: int, label: str):
    from tqdm import tqdm

    return tqdm(total=total, initial=initial, desc=f"{label} steps", unit="step", mininterval=2.0)
