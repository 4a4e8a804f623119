"""An engine inside a Ray actor: one model per actor, one CPU (or GPU) per actor.

Keeping engines in actors gives each its own process (vLLM patches torch globals and owns its
threads) and lets Ray Data and Serve place them.
"""

from __future__ import annotations

from collections.abc import Sequence

from meow.engines.base import EngineConfig, Generation, Prompt, SamplingConfig


class EngineActor:
    """Plain class; wrap with `ray.remote` (see `engine_actor`)."""

    def __init__(self, model: str, config: EngineConfig):
        from meow.engines import create_engine

        self.engine = create_engine(model, config)

    def generate(
        self, prompts: Sequence[Prompt], sampling: SamplingConfig | Sequence[SamplingConfig] = SamplingConfig()
    ) -> list[Generation]:
        return self.engine.generate(prompts, sampling)

    def score(self, prompts: Sequence[Prompt], continuations: Sequence[Prompt]) -> list[list[float]]:
        return self.engine.score(prompts, continuations)

    def ready(self) -> bool:
        return True


def engine_actor(model: str, config: EngineConfig = EngineConfig(), num_cpus: float = 1, num_gpus: float = 0):
    """Start an `EngineActor` in Ray and return its handle once the engine is loaded."""
    import ray

    from meow.cluster import check_memory

    memory = int(config.memory_per_actor)
    check_memory(1, memory, "engine.memory_per_actor", unreserved=True)
    options = {"num_cpus": num_cpus, "num_gpus": num_gpus, "memory": memory}
    handle = ray.remote(**options)(EngineActor).remote(model, config)
    ray.get(handle.ready.remote())
    return handle
