"""The learning-rate schedule: HF's linear warm-up/decay through torch's `LambdaLR`, resumable."""

import json

import pytest
import torch
from transformers import AutoTokenizer

from meow.data import load_tofu
from meow.train.config import TrainConfig
from meow.train.data import fact_source, plan_training
from meow.train.worker import linear_schedule, restore_schedule


@pytest.fixture(scope="module")
def facts(tiny_model_dir):
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    return fact_source(tokenizer, load_tofu("forget01"), ["answer"], 200, 42)


# 40 facts: 12 steps with 1 (or no) warm-up step, 20 steps with 5, 17 steps with 2.
CONFIGS = [
    dict(epochs=10, batch_size=32, warmup_epochs=1, learning_rate=1e-5),
    dict(epochs=5, batch_size=16, warmup_epochs=0, learning_rate=5e-5),
    dict(epochs=4, batch_size=8, warmup_epochs=1, learning_rate=1e-3),
    dict(epochs=3, batch_size=7, warmup_epochs=0.5, learning_rate=2e-4),
]


def optimizer_for(config: TrainConfig) -> torch.optim.Optimizer:
    return torch.optim.AdamW([torch.nn.Parameter(torch.ones(3))], lr=config.learning_rate)


def run_steps(optimizer, scheduler, steps: int) -> list[float]:
    """The learning rate of each optimizer step, in the worker loop's order."""
    lrs = []
    for _ in range(steps):
        lrs.append(optimizer.param_groups[0]["lr"])
        optimizer.param_groups[0]["params"][0].grad = torch.ones(3)
        optimizer.step()
        scheduler.step()
    return lrs


def hand_made(learning_rate: float, warmup: int, total: int) -> list[float]:
    """Learning rate times the linear warm-up/decay factor of each step, written out independently."""
    factor = lambda s: s / max(1, warmup) if s < warmup else max(0.0, (total - s) / max(1, total - warmup))  # noqa: E731
    return [learning_rate * factor(s) for s in range(total)]


@pytest.mark.parametrize("options", CONFIGS)
def test_per_step_learning_rates_are_the_hand_made_schedule_s(facts, options):
    config = TrainConfig(**options)
    plan = plan_training(facts, config, 1)
    optimizer = optimizer_for(config)
    lrs = run_steps(optimizer, linear_schedule(optimizer, plan.warmup_steps, plan.total_steps), plan.total_steps)
    assert lrs == hand_made(config.learning_rate, plan.warmup_steps, plan.total_steps)  # exactly
    assert (lrs[0] == 0) == (config.warmup_epochs > 0)


def test_the_schedule_is_hf_linear_with_warmup():
    from transformers import get_linear_schedule_with_warmup

    for warmup, total in [(1, 12), (3, 10), (0, 5)]:
        ours, theirs = (torch.optim.SGD([torch.nn.Parameter(torch.ones(3))], lr=1.0) for _ in range(2))
        expected = run_steps(theirs, get_linear_schedule_with_warmup(theirs, warmup, total), total)
        assert run_steps(ours, linear_schedule(ours, warmup, total), total) == pytest.approx(expected)


@pytest.mark.parametrize("options", [CONFIGS[0], CONFIGS[2]])
def test_a_resumed_schedule_continues_the_same_sequence(facts, options):
    """As the worker resumes: a new optimizer and scheduler, then the checkpoint's optimizer state,
    then the scheduler's state as the trainer state file holds it (JSON)."""
    config = TrainConfig(**options)
    plan = plan_training(facts, config, 1)
    warmup, total = plan.warmup_steps, plan.total_steps
    optimizer = optimizer_for(config)
    uninterrupted = run_steps(optimizer, linear_schedule(optimizer, warmup, total), total)
    for stop in (1, warmup, total // 2, total - 1):
        optimizer = optimizer_for(config)
        scheduler = linear_schedule(optimizer, warmup, total)
        before = run_steps(optimizer, scheduler, stop)
        saved_optimizer, saved_scheduler = optimizer.state_dict(), json.dumps(scheduler.state_dict())

        optimizer = optimizer_for(config)
        scheduler = linear_schedule(optimizer, warmup, total)
        optimizer.load_state_dict(saved_optimizer)
        restore_schedule(scheduler, {"step": stop, "scheduler": json.loads(saved_scheduler)})
        assert before + run_steps(optimizer, scheduler, total - stop) == uninterrupted


@pytest.mark.parametrize("options", [CONFIGS[0], CONFIGS[2]])
def test_a_checkpoint_without_the_schedule_s_state_resumes_at_its_step(facts, options):
    config = TrainConfig(**options)
    plan = plan_training(facts, config, 1)
    warmup, total = plan.warmup_steps, plan.total_steps
    optimizer = optimizer_for(config)
    uninterrupted = run_steps(optimizer, linear_schedule(optimizer, warmup, total), total)
    for stop in (1, warmup, total - 1):
        optimizer = optimizer_for(config)
        scheduler = linear_schedule(optimizer, warmup, total)
        restore_schedule(scheduler, {"step": stop})
        assert run_steps(optimizer, scheduler, total - stop) == uninterrupted[stop:]
