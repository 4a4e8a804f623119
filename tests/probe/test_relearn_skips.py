"""Relearning that cannot get its training memory is skipped with the reason; the probe goes on."""

import asyncio

import pytest

from meow.cluster import InsufficientMemory
from meow.data import QARecord
from meow.probe.base import AttackSkipped, ProbeData
from meow.probe.relearn import RELEARNERS, Relearn, RelearnOptions


@RELEARNERS.register("test-no-memory")
def no_memory(model, records, out_dir, options) -> str:
    raise InsufficientMemory("1 x train.memory_per_worker 4.5GiB is more memory than the local Ray has (4.1GiB)")


@RELEARNERS.register("test-broken")
def broken(model, records, out_dir, options) -> str:
    raise ValueError("a bug")


FACTS = [QARecord(i, f"Who founded firm {i}?", f"Firm {i} was founded by Ada Quill {i}.") for i in range(4)]


def run(trainer: str):
    attack = Relearn(RelearnOptions(trainer=trainer))
    return asyncio.run(attack.run(None, "unlearned", ProbeData(FACTS, [], weights={"unlearned": "/models/u"})))


def test_a_relearner_without_memory_is_a_skip_with_the_reason():
    with pytest.raises(AttackSkipped, match=r"relearning could not train here: 1 x train.memory_per_worker 4.5GiB"):
        run("test-no-memory")


def test_other_failures_are_not_hidden_as_skips():
    with pytest.raises(ValueError, match="a bug"):
        run("test-broken")
