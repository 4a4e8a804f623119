"""Fine-tuning on Ray Train: `TorchTrainer` with N workers, the model sharded with FSDP2.

One loop serves the unlearning methods and the target/oracle preparation; what differs is the
plan (`meow.train.data`) and the registered loss (`meow.train.losses`).

* Device and collectives come from the config: CUDA + NCCL when there are GPUs, CPU + gloo
  otherwise; every worker shards the model with `fully_shard` on a 1-D device mesh
  (`prepare_model(parallel_strategy="fsdp")` refuses CPUs, `fully_shard` does not).
* The model is the FSDP root inside a small wrapper that computes logits only where a loss needs
  them (answer tokens; every position for KL terms): the LM head over a 49k vocabulary is a fifth
  of a small model's compute, and the prompt's logits are never used.
* AdamW (decay on matrices only, as the HF Trainer does), linear warm-up then linear decay to 0
  (a `LambdaLR` computing HF's `get_linear_schedule_with_warmup`, so the first step has learning
  rate 0 when warming up), gradient clipping, bf16 autocast with fp32 master weights.
* Gradients are synchronised once per step (on each worker's last micro-batch).
* Checkpoints (sharded model + optimizer via torch.distributed.checkpoint; the step and the
  learning-rate scheduler's state in the trainer state file) go through
  `ray.train.report` to the run's storage (a local directory or s3://). A rerun with the same
  storage and run name resumes from the latest one.
* The final model is reported as a checkpoint holding a plain HF directory (safetensors, the
  base's dtype, tokenizer, LoRA merged), which the driver copies out.
"""

from __future__ import annotations

import json
import logging
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from pydantic import BaseModel
from torch import nn

from meow.hardware import native_bf16
from meow.models.encoding import IGNORE, Encoded
from meow.train.config import TrainConfig
from meow.train.data import MicroBatch, Plan

log = logging.getLogger(__name__)

MODEL_DIR = "model"
STATE_FILE = "trainer_state.json"


@dataclass(frozen=True)
class TrainJob:
    """Everything a worker needs besides the plan. `model_dir` is a local HF directory."""

    model_dir: str
    loss: str
    loss_args: BaseModel  # the loss's validated arguments
    config: TrainConfig
    reference_groups: tuple[str, ...] = ()
    kl_groups: tuple[str, ...] = ()
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


def linear_warmup_decay(step: int, warmup: int, total: int) -> float:
    """Learning-rate factor before optimizer step `step` (0-based), as HF's linear schedule."""
    if step < warmup:
        return step / max(1, warmup)
    return max(0.0, (total - step) / max(1, total - warmup))


def linear_schedule(optimizer: torch.optim.Optimizer, warmup: int, total: int) -> torch.optim.lr_scheduler.LambdaLR:
    """Optimizer step k (0-based) runs at the learning rate times `linear_warmup_decay(k, warmup, total)`;
    step the scheduler after each optimizer step."""
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: linear_warmup_decay(step, warmup, total))


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
        _worker_loop,
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


# --- inside each worker ----------------------------------------------------------------------


class Scorer(nn.Module):
    """A causal LM returning logits only at the selected positions (`select`: bool [B, T])."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model
        # Models that post-process their logits (soft-capping) keep the full head path.
        self.plain_head = not getattr(model.config, "final_logit_softcapping", None)

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        select: torch.Tensor,
        position_ids: torch.Tensor | None = None,
    ) -> torch.Tensor:
        inputs = {"input_ids": input_ids, "attention_mask": attention_mask, "position_ids": position_ids}
        if not self.plain_head:
            return self.model(**inputs).logits[select]
        hidden = self.model.get_decoder()(**inputs).last_hidden_state
        return self.model.get_output_embeddings()(hidden[select])


def _worker_loop(loop_config: dict[str, Any]) -> None:
    import ray
    import ray.train
    import torch.distributed as dist

    from meow.telemetry import count, gauge
    from meow.train.losses import LOSSES, LossInputs

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
    if job.reference_groups or job.kl_groups:
        reference = _sharded(Scorer(_load_model(job.model_dir, config, trainable=False)), device, world, config)

    # Each worker's share of the parameters (FSDP2 shards every parameter along its first dimension).
    shards: list[int] = [0] * world
    dist.all_gather_object(shards, sum(p.to_local().numel() for p in scorer.parameters()))
    params = [p for p in scorer.parameters() if p.requires_grad]
    # The HF Trainer decays every weight matrix and embedding, not biases or norm scales.
    optimizer = torch.optim.AdamW(
        [
            {"params": [p for p in params if p.ndim >= 2], "weight_decay": config.weight_decay},
            {"params": [p for p in params if p.ndim < 2], "weight_decay": 0.0},
        ],
        lr=config.learning_rate,
    )
    # Built before a checkpoint's optimizer state is loaded: the optimizer's learning rates are then
    # the checkpoint's, and the scheduler's state (loaded after) continues from there.
    scheduler = linear_schedule(optimizer, plan.warmup_steps, plan.total_steps)
    loss_fn = LOSSES.get(job.loss)

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
            scheduler.load_state_dict(state["scheduler"])
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
        mine = plan.steps[step][rank::world]
        step_loss = torch.zeros((), dtype=torch.float64, device=device)  # NCCL reduces device tensors
        for i, micro in enumerate(mine):
            last = i == len(mine) - 1
            scorer.set_requires_gradient_sync(last)
            if not config.reshard_after_forward:
                scorer.set_reshard_after_backward(last)
            stats = group_stats(scorer, reference, micro, job, device, autocast)
            loss = loss_fn(LossInputs(stats, micro.scope), job.loss_args)
            # FSDP averages gradients over workers; each worker's loss is its share of a sum.
            (loss * world).backward()
            step_loss += loss.detach().double()
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
            gauge("meow_train_loss", record["loss"], "Training loss of the last step", stage=job.label)
            gauge("meow_train_step_seconds", seconds, "Wall time of the last training step", stage=job.label)
            count("meow_train_tokens_total", record["tokens"], "Tokens trained on", stage=job.label)
            progress.set_postfix(loss=f"{record['loss']:.4f}", refresh=False)
            progress.update(1)
        done = step + 1
        if job.epochs_location and done in plan.epoch_ends:
            _export_epoch(scorer, job, rank, plan.epoch_ends.index(done) + 1)
        if config.checkpoint_every and done % config.checkpoint_every == 0 and done < plan.total_steps:
            state = {
                "step": done,
                "history": history,
                "final": False,
                "resumed_from_step": resumed_from,
                "scheduler": scheduler.state_dict(),
            }
            with tempfile.TemporaryDirectory() as directory:
                _save_state(scorer, optimizer, directory)
                if rank == 0:
                    (Path(directory) / STATE_FILE).write_text(json.dumps(state))
                ray.train.report(record, checkpoint=ray.train.Checkpoint.from_directory(directory))
    if progress is not None:
        progress.close()

    full = _full_state(scorer)
    final = {
        "step": plan.total_steps,
        "history": history,
        "final": True,
        "resumed_from_step": resumed_from,
        "shard_parameters": shards,
    }
    with tempfile.TemporaryDirectory() as directory:
        if rank == 0:
            _save_hf(full, job, Path(directory) / MODEL_DIR)
            (Path(directory) / STATE_FILE).write_text(json.dumps(final))
        checkpoint = ray.train.Checkpoint.from_directory(directory) if rank == 0 else None
        ray.train.report(history[-1] if history else {"step": plan.total_steps}, checkpoint=checkpoint)


def group_stats(scorer, reference, micro: MicroBatch, job: TrainJob, device, autocast) -> dict[str, Any]:
    """Per-sequence NLL (and reference NLL, KL) of every group of a micro-batch, in one forward pass."""
    from meow.train.losses import GroupStats

    names = list(micro.groups)
    sequences = [s for g in names for s in micro.groups[g]]
    if reference is None and job.config.share_prompts and _attention(scorer) == "sdpa":
        nll, ref_nll, kl = _shared_prompt_nll(scorer, sequences, device, autocast), None, None
    else:
        row_group = [g for g in names for _ in micro.groups[g]]
        nll, ref_nll, kl = _padded_stats(scorer, reference, sequences, row_group, job, device, autocast)

    weight = torch.tensor([float(s.weight) for s in sequences], device=device)
    tokens = torch.tensor([float(s.tokens) for s in sequences], device=device)
    stats, start = {}, 0
    for g in names:
        part = slice(start, start + len(micro.groups[g]))
        start = part.stop
        stats[g] = GroupStats(
            nll=nll[part],
            tokens=tokens[part],
            weight=weight[part],
            ref_nll=None if ref_nll is None else ref_nll[part],
            kl=None if kl is None else kl[part],
        )
    return stats


def _attention(scorer: Scorer) -> str | None:
    return getattr(scorer.model.config, "_attn_implementation", None)


def _shared_prompt_nll(scorer, sequences: list[Encoded], device, autocast) -> torch.Tensor:
    """Summed answer NLL of each sequence, sequences sharing a prompt packed into one row."""
    from meow.train.losses import per_sequence_sum, per_token_nll

    packed = pack_shared_prompts(sequences)
    with autocast:
        logits = scorer(
            packed.input_ids.to(device), packed.attention_mask.to(device), packed.select.to(device),
            packed.position_ids.to(device),
        )  # fmt: skip
    token_nll = per_token_nll(logits[packed.label_index.to(device)], packed.label_target.to(device))
    return per_sequence_sum(token_nll, packed.label_sequence.to(device), len(sequences))


def _padded_stats(scorer, reference, sequences: list[Encoded], row_group: list[str], job: TrainJob, device, autocast):
    """Summed answer NLL, reference NLL and KL of each sequence, one padded row per sequence."""
    from meow.train.losses import per_position_kl, per_sequence_sum, per_token_nll

    ids, mask, labels = (t.to(device) for t in collate(sequences))
    rows = len(sequences)
    # Position t predicts token t + 1.
    targets = torch.full_like(labels, IGNORE)
    targets[:, :-1] = labels[:, 1:]
    at_label = targets != IGNORE
    kl_rows = torch.tensor([g in job.kl_groups for g in row_group], device=device)
    select = at_label | (kl_rows[:, None] & mask.bool())
    # Selected positions in row-major order: the order of the returned logits.
    row_of = select.nonzero()[:, 0]
    is_label = at_label[select]
    selected_targets = targets[select]
    with autocast:
        logits = scorer(ids, mask, select)
    nll = per_sequence_sum(per_token_nll(logits[is_label], selected_targets[is_label]), row_of[is_label], rows)

    ref_nll = kl = None
    ref_rows = torch.tensor([g in job.reference_groups or g in job.kl_groups for g in row_group], device=device)
    if reference is not None:
        in_ref = ref_rows[row_of]  # the positions the reference sees, in the same order
        with torch.no_grad(), autocast:
            ref_logits = reference(ids[ref_rows], mask[ref_rows], select[ref_rows])
        ref_label = is_label[in_ref]
        ref_token_nll = per_token_nll(ref_logits[ref_label], selected_targets[in_ref][ref_label])
        ref_nll = per_sequence_sum(ref_token_nll, row_of[in_ref][ref_label], rows)
        if job.kl_groups:
            at_kl = kl_rows[row_of]
            position_kl = per_position_kl(logits[at_kl], ref_logits[kl_rows[row_of[in_ref]]])
            kl = per_sequence_sum(position_kl, row_of[at_kl], rows)
    return nll, ref_nll, kl


@dataclass
class SharedPromptBatch:
    """Sequences packed one row per distinct prompt (see `pack_shared_prompts`).

    Logits are computed only at `select`; label i is predicted by the `label_index[i]`-th selected
    position (row-major), is token `label_target[i]`, and belongs to sequence `label_sequence[i]`.
    """

    input_ids: torch.Tensor  # [rows, width]
    attention_mask: torch.Tensor  # bool [rows, 1, width, width]: query attends key
    position_ids: torch.Tensor  # [rows, width]
    select: torch.Tensor  # bool [rows, width]
    label_index: torch.Tensor  # [labels]
    label_target: torch.Tensor  # [labels]
    label_sequence: torch.Tensor  # [labels]


def _prompt_length(sequence: Encoded) -> int:
    """Leading positions that are not labels: the question prompt."""
    return next((i for i, label in enumerate(sequence.labels) if label != IGNORE), len(sequence.labels))


def pack_shared_prompts(sequences: list[Encoded]) -> SharedPromptBatch:
    """One row per distinct prompt: the prompt, then the answer of every sequence with that prompt.

    Each answer sits at the positions it would have alone and attends to the prompt and to its own
    earlier tokens only, so every answer token sees exactly the context it sees in its own row: the
    same logits up to float rounding, with the prompt computed once. Answer tokens' first label is
    predicted from the prompt's last position, shared by all answers of the row.
    """
    by_prompt: dict[tuple[int, ...], list[int]] = {}
    for k, s in enumerate(sequences):
        by_prompt.setdefault(tuple(s.input_ids[: _prompt_length(s)]), []).append(k)
    rows = list(by_prompt.items())
    width = max(len(p) + sum(len(sequences[k].input_ids) - len(p) for k in members) for p, members in rows)
    ids = torch.zeros((len(rows), width), dtype=torch.long)
    positions = torch.zeros((len(rows), width), dtype=torch.long)
    # Padding attends to itself only: a query with no key would give NaN, which masked keys still carry.
    mask = torch.eye(width, dtype=torch.bool).repeat(len(rows), 1, 1)
    causal = torch.ones((width, width), dtype=torch.bool).tril()
    labels: list[tuple[int, int, int, int]] = []  # (row, predicting column, target, sequence)
    for r, (prompt, members) in enumerate(rows):
        p = len(prompt)
        ids[r, :p] = torch.tensor(prompt, dtype=torch.long)
        positions[r, :p] = torch.arange(p)
        mask[r, :p, :p] = causal[:p, :p]
        start = p
        for k in members:
            s = sequences[k]
            answer, answer_labels = s.input_ids[p:], s.labels[p:]
            end = start + len(answer)
            ids[r, start:end] = torch.tensor(answer, dtype=torch.long)
            positions[r, start:end] = torch.arange(p, p + len(answer))
            mask[r, start:end, :p] = True
            mask[r, start:end, start:end] = causal[: len(answer), : len(answer)]
            for m, target in enumerate(answer_labels):
                if target != IGNORE and p + m > 0:
                    labels.append((r, p - 1 if m == 0 else start + m - 1, target, k))
            start = end
    row, column, target, sequence = (torch.tensor(v, dtype=torch.long) for v in zip(*labels))
    select = torch.zeros((len(rows), width), dtype=torch.bool)
    select[row, column] = True
    order = select.flatten().cumsum(0) - 1
    return SharedPromptBatch(ids, mask[:, None], positions, select, order[row * width + column], target, sequence)


def collate(sequences: list[Encoded]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Right-padded to the longest sequence (dynamic padding: padding is masked, the loss is unchanged)."""
    width = max(len(s.input_ids) for s in sequences)
    ids = torch.zeros((len(sequences), width), dtype=torch.long)
    mask = torch.zeros((len(sequences), width), dtype=torch.long)
    labels = torch.full((len(sequences), width), IGNORE, dtype=torch.long)
    for row, s in enumerate(sequences):
        ids[row, : len(s.input_ids)] = torch.tensor(s.input_ids)
        mask[row, : len(s.input_ids)] = 1
        labels[row, : len(s.labels)] = torch.tensor(s.labels)
    return ids, mask, labels


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


def _clip(params: list[nn.Parameter], max_norm: float) -> float:
    """Clip the global gradient norm (across shards) to `max_norm` (0: measure only); returns it."""
    norm = torch.nn.utils.clip_grad_norm_(params, max_norm if max_norm > 0 else float("inf"))
    norm = norm.full_tensor() if hasattr(norm, "full_tensor") else norm
    return float(norm)


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


def _full_state(model: nn.Module) -> dict[str, torch.Tensor]:
    """The unsharded weights, on rank 0's CPU (other ranks get an empty dict)."""
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict

    return get_model_state_dict(model, options=StateDictOptions(full_state_dict=True, cpu_offload=True))


def _save_hf(full: dict[str, torch.Tensor], job: TrainJob, out: Path) -> None:
    """A plain HF directory in the base model's dtype: the weights (LoRA merged) and the tokenizer."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from meow.train.lora import merge_lora

    state = {key.removeprefix("model."): value for key, value in full.items()}
    if job.config.lora is not None:
        state = merge_lora(state, job.config.lora)
    model = AutoModelForCausalLM.from_pretrained(job.model_dir, dtype="auto")
    model.load_state_dict(state, strict=True)
    model.save_pretrained(out)
    AutoTokenizer.from_pretrained(job.model_dir).save_pretrained(out)


def _export_epoch(scorer: nn.Module, job: TrainJob, rank: int, epoch: int) -> None:
    """The model after `epoch` as a plain HF directory at `<epochs_location>/epoch-<epoch>` (every rank
    takes part in gathering the weights; rank 0 writes)."""
    import fsspec

    full = _full_state(scorer)
    if rank != 0:
        return
    fs, root = fsspec.core.url_to_fs(f"{job.epochs_location.rstrip('/')}/epoch-{epoch}")
    with tempfile.TemporaryDirectory() as directory:
        _save_hf(full, job, Path(directory) / MODEL_DIR)
        if fs.exists(root):
            fs.rm(root, recursive=True)
        fs.put(str(Path(directory) / MODEL_DIR), root, recursive=True)


def _progress(total: int, initial: int, label: str):
    from tqdm import tqdm

    return tqdm(total=total, initial=initial, desc=f"{label} steps", unit="step", mininterval=2.0)
