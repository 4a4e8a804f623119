import pytest

from meow.cluster import InsufficientMemory
from meow.engines.actor import engine_actor
from meow.engines.base import EngineConfig


def test_an_engine_actor_that_cannot_fit_fails_at_once_instead_of_waiting(ray_local):
    """Ray queues an actor whose memory is reserved elsewhere; engine_actor waits for it to load, so
    without the check it would wait forever."""
    too_big = EngineConfig(memory_per_actor=int(ray_local.cluster_resources()["memory"]) + 2**30)
    with pytest.raises(InsufficientMemory, match="memory_per_actor.*unreserved"):
        engine_actor("no-such-model", too_big)
