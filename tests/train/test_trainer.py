"""The Ray Train FSDP2 loop on a tiny model: sharding, worker-count invariance, resume, LoRA, saved models."""

import json
import threading
import time

import psutil
import pytest
import torch
from safetensors.torch import load_file
from transformers import AutoTokenizer

from meow.data import load_tofu
from meow.train.config import LoraConfig, TrainConfig
from meow.train.data import fact_source, plan_training
from meow.train.methods import FINETUNE, NoArgs
from meow.train.trainer import TrainJob, fit

# Small and quick: 40 facts, 4 epochs of 8 facts per step = 20 steps, warm-up 40 // 8 = 5 steps.
FAST = dict(epochs=4, batch_size=8, micro_batch_size=2, learning_rate=1e-3, checkpoint_every=0)


def train(model_dir, tmp_path, name, workers, **overrides):
    config = TrainConfig(**{**FAST, "workers": workers, **overrides})
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    source = fact_source(tokenizer, load_tofu("forget01"), FINETUNE.groups, config.max_length, config.seed)
    plan = plan_training(source, config, workers)
    job = TrainJob(str(model_dir), FINETUNE, NoArgs(), config, label=name)
    return fit(job, plan, str(tmp_path / "checkpoints"), name, tmp_path / name)


def weights(directory):
    return load_file(directory / "model.safetensors")


@pytest.fixture(scope="module")
def fp32_runs(ray_local, tiny_model_dir, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("fp32")
    # The 2-worker run also keeps parameters gathered for the whole step: the same math, fewer all-gathers.
    return {
        1: train(tiny_model_dir, tmp, "w1", 1, precision="fp32"),
        2: train(tiny_model_dir, tmp, "w2", 2, precision="fp32", reshard_after_forward=False),
    }


def test_two_workers_really_shard_the_parameters(fp32_runs):
    (total,) = fp32_runs[1].shard_parameters
    halves = fp32_runs[2].shard_parameters
    assert len(halves) == 2 and sum(halves) == total
    # Every parameter is split along its first dimension: each worker holds about half.
    assert all(abs(h - total / 2) < 0.01 * total for h in halves)


def test_two_workers_match_one_worker(fp32_runs):
    one, two = fp32_runs[1].history, fp32_runs[2].history
    assert [h["step"] for h in one] == [h["step"] for h in two] == list(range(1, 21))
    assert [h["loss"] for h in two] == pytest.approx([h["loss"] for h in one], rel=1e-5)
    assert one[-1]["loss"] < one[0]["loss"] - 0.5  # it learns
    a, b = weights(fp32_runs[1].model_dir), weights(fp32_runs[2].model_dir)
    assert a.keys() == b.keys()
    assert max(float((a[k] - b[k]).abs().max()) for k in a) < 1e-4


def test_learning_rate_warms_up_then_decays(fp32_runs):
    lrs = [h["lr"] for h in fp32_runs[1].history]
    assert lrs[:6] == pytest.approx([0, 2e-4, 4e-4, 6e-4, 8e-4, 1e-3])  # 5 warm-up steps from 0, as HF
    assert lrs[5:] == pytest.approx([1e-3 * (20 - s) / 15 for s in range(5, 20)])  # then linear to 0


def test_killed_run_resumes_from_its_last_checkpoint(fp32_runs, tiny_model_dir, tmp_path):
    """Kill the training workers once the first checkpoint is in storage; the rerun continues from it."""
    snapshot = tmp_path / "checkpoints" / "w2" / "checkpoint_manager_snapshot.json"
    killer = threading.Thread(target=_kill_workers_after_first_checkpoint, args=(snapshot,), daemon=True)
    killer.start()
    with pytest.raises(Exception, match="(?i)fail|died|error"):
        train(tiny_model_dir, tmp_path, "w2", 2, precision="fp32", checkpoint_every=3, max_failures=0)
    killer.join(timeout=5)
    assert not (tmp_path / "w2").exists()

    result = train(tiny_model_dir, tmp_path, "w2", 2, precision="fp32", checkpoint_every=3)
    assert 0 < result.resumed_from_step < 20 and result.resumed_from_step % 3 == 0  # not from scratch
    assert [h["step"] for h in result.history] == list(range(1, 21))
    # Model, optimizer, learning-rate schedule and data position were restored: the resumed steps are
    # the uninterrupted run's.
    assert [h["lr"] for h in result.history] == [h["lr"] for h in fp32_runs[2].history]
    assert [h["loss"] for h in result.history] == pytest.approx([h["loss"] for h in fp32_runs[2].history], rel=1e-5)


def _kill_workers_after_first_checkpoint(snapshot, timeout=600):
    """SIGKILL this Ray session's training workers (found under its own raylet, by PID)."""
    from ray._private.worker import _global_node

    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            if json.loads(snapshot.read_text()).get("latest_checkpoint_result"):
                break
        except (FileNotFoundError, json.JSONDecodeError):
            pass
        time.sleep(0.02)
    (raylet,) = _global_node.all_processes["raylet"]
    for child in psutil.Process(raylet.process.pid).children(recursive=True):
        if "RayTrainWorker" in child.name() or "RayTrainWorker" in " ".join(child.cmdline()):
            child.kill()


def test_workers_reserve_their_memory_in_ray(ray_local, monkeypatch, tiny_model_dir):
    # Ray queues workers whose memory is reserved elsewhere instead of letting its OOM killer end them.
    import ray.train.torch

    from meow.train.trainer import worker_resources

    captured = {}

    class Captured(Exception):
        pass

    def trainer(*args, **kwargs):
        captured.update(kwargs)
        raise Captured

    monkeypatch.setattr(ray.train.torch, "TorchTrainer", trainer)
    config = TrainConfig(workers=2, memory_per_worker="512MiB")
    plan = type("Plan", (), {"workers": 2})()
    with pytest.raises(Captured):
        fit(TrainJob(str(tiny_model_dir), FINETUNE, NoArgs(), config), plan, "/tmp/unused", "memory", tiny_model_dir)
    assert captured["scaling_config"].resources_per_worker == {"CPU": 1, "memory": 512 << 20}
    assert worker_resources(TrainConfig(gpus_per_worker=1, memory_per_worker="40Gi"))["memory"] == 40 << 30
    assert worker_resources(TrainConfig())["memory"] == 4608 << 20  # the default: a SmolLM2 FSDP worker


def test_a_worker_group_larger_than_the_local_ray_is_refused_not_left_waiting(ray_local, tiny_model_dir):
    config = TrainConfig(workers=2, memory_per_worker="1PiB")
    plan = type("Plan", (), {"workers": 2})()
    with pytest.raises(RuntimeError, match=r"2 x train.memory_per_worker 1.0PiB is more memory than the local Ray"):
        fit(TrainJob(str(tiny_model_dir), FINETUNE, NoArgs(), config), plan, "/tmp/unused", "memory", tiny_model_dir)
