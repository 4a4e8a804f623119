"""A pool of engine actors fed by Ray Data: many `generate` / `score` requests, one streaming job.

Every request becomes one row of a `ray.data.Dataset`; `map_batches` with a callable class runs a
fixed pool of actors, each holding one engine (vLLM or HF) for the whole job, and hands each actor
at most `batch_size` rows per call, which the engine serves as one batch (vLLM schedules them together). The
rows carry their request id, so results come back in request order whatever order actors finish
in. Generate and score requests may be mixed in one job: a stage that needs both pays the engine
start-up once.

Placement comes from the arguments, never from the code: one CPU per actor here (`cpus_per_actor`),
`gpus_per_actor=1` on a GPU cluster, where the same code runs the official vLLM. Each actor also
reserves the engine's `memory_per_actor`, so pools of jobs sharing a node wait for memory instead of
being OOM-killed.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from meow.engines.base import EngineConfig, Generation, Prompt, SamplingConfig, sampling_per_prompt


def block_count(rows: int, actors: int, batch_size: int) -> int:
    """Blocks (one engine call each) for `rows` requests: at most `batch_size` rows each, a multiple of `actors`.

    A count that is not a multiple of the actors leaves actors idle for the last call: 160 invert
    prompts in calls of at most 64 were 3 calls on 2 actors, one actor running twice; 4 calls of 40
    finish together.
    """
    return min(rows, actors * math.ceil(rows / (actors * batch_size)))


@dataclass(frozen=True)
class GenerateRequest:
    prompt: Prompt
    sampling: SamplingConfig = SamplingConfig()


@dataclass(frozen=True)
class ScoreRequest:
    """Teacher-forced log-probs of `continuation` given `prompt` (see `Engine.score`)."""

    prompt: Prompt
    continuation: Prompt


Request = GenerateRequest | ScoreRequest
Result = Generation | list[float]


def _encode_request(request: Request) -> str:
    # JSON keeps the rows plain Arrow strings whatever a prompt is (text or token ids).
    if isinstance(request, GenerateRequest):
        return json.dumps({"prompt": _plain(request.prompt), "sampling": request.sampling.model_dump(mode="json")})
    return json.dumps({"prompt": _plain(request.prompt), "continuation": _plain(request.continuation)})


def _plain(prompt: Prompt) -> str | list[int]:
    return prompt if isinstance(prompt, str) else [int(t) for t in prompt]


def _decode_result(encoded: str) -> Result:
    value = json.loads(encoded)
    if isinstance(value, dict):
        return Generation(value["text"], value["token_ids"], value["finish_reason"])
    return value


class _EngineWorker:
    """The callable class Ray Data instantiates once per actor: one engine, many batches."""

    def __init__(self, model: str, config: EngineConfig):
        from meow.engines import create_engine

        self.engine = create_engine(model, config)

    def __call__(self, batch: dict[str, Any]) -> dict[str, Any]:
        requests = [json.loads(r) for r in batch["request"]]
        results: list[str | None] = [None] * len(requests)
        generate = [i for i, r in enumerate(requests) if "sampling" in r]
        score = [i for i, r in enumerate(requests) if "continuation" in r]
        if generate:
            outputs = self.engine.generate(
                [requests[i]["prompt"] for i in generate],
                [SamplingConfig.model_validate(requests[i]["sampling"]) for i in generate],
            )
            for i, g in zip(generate, outputs):
                results[i] = json.dumps({"text": g.text, "token_ids": g.token_ids, "finish_reason": g.finish_reason})
        if score:
            scores = self.engine.score([requests[i]["prompt"] for i in score], [requests[i]["continuation"] for i in score])
            for i, s in zip(score, scores):
                results[i] = json.dumps(s)
        return {"id": batch["id"], "result": results}


class EnginePool:
    """`actors` engines of `model` (any model spec) serving batches of requests streamed by Ray Data.

    Needs a running Ray (`meow.cluster.ray_session`). Actors start when a job starts and are released
    when it ends, so each `run` pays the engine start-up once: put all of a stage's requests for one
    model into one job.
    """

    def __init__(
        self,
        model: str,
        engine: EngineConfig = EngineConfig(),
        *,
        actors: int = 1,
        batch_size: int = 64,
        cpus_per_actor: float = 1,
        gpus_per_actor: float = 0,
        progress: str | None = "engine pool",
    ):
        if actors < 1 or batch_size < 1:
            raise ValueError("an engine pool needs at least one actor and a batch size of at least one")
        self.model = str(model)
        self.engine = engine
        self.actors = actors
        self.batch_size = batch_size
        self.cpus_per_actor = cpus_per_actor
        self.gpus_per_actor = gpus_per_actor
        self.progress = progress

    def ray_options(self) -> dict[str, Any]:
        """What Ray reserves for each actor of the pool."""
        return {
            "num_cpus": self.cpus_per_actor,
            "num_gpus": self.gpus_per_actor or None,
            "memory": int(self.engine.memory_per_actor),
        }

    def stream(self, requests: Sequence[Request]) -> Iterator[tuple[int, Result]]:
        """(request index, result) pairs as batches finish, in no particular order."""
        import ray.data
        from tqdm import tqdm

        from meow.cluster import check_memory

        if not requests:
            return
        rows = [{"id": i, "request": _encode_request(r)} for i, r in enumerate(requests)]
        blocks = block_count(len(rows), self.actors, self.batch_size)
        check_memory(min(self.actors, blocks), self.engine.memory_per_actor, "engine.memory_per_actor")
        context = ray.data.DataContext.get_current()
        detectors = context.issue_detectors_config
        previous = context.enable_progress_bars, context.print_on_execution_start, detectors.detectors
        # One progress bar of our own (requests and tokens) instead of Ray Data's per-operator bars, and
        # no "high memory" warning every 30 s: an engine actor holds its model and KV cache by design.
        context.enable_progress_bars, context.print_on_execution_start, detectors.detectors = False, False, []
        try:
            dataset = ray.data.from_items(rows, override_num_blocks=blocks)
            results = dataset.map_batches(
                _EngineWorker,
                fn_constructor_kwargs={"model": self.model, "config": self.engine},
                compute=ray.data.ActorPoolStrategy(size=min(self.actors, blocks)),
                batch_size=None,  # a whole block per engine call (see block_count)
                udf_modifying_row_count=False,
                **self.ray_options(),
            )
        finally:
            context.enable_progress_bars, context.print_on_execution_start, detectors.detectors = previous
        started, tokens = time.time(), 0
        with tqdm(total=len(rows), desc=self.progress, unit="req", disable=self.progress is None) as bar:
            for batch in results.iter_batches(batch_size=None, batch_format="numpy"):
                for request_id, encoded in zip(batch["id"], batch["result"]):
                    result = _decode_result(encoded)
                    if isinstance(result, Generation):
                        tokens += len(result.token_ids)
                    yield int(request_id), result
                bar.update(len(batch["id"]))
                if tokens:
                    bar.set_postfix(tok_s=round(tokens / max(time.time() - started, 1e-9)))

    def run(self, requests: Sequence[Request]) -> list[Result]:
        """Every request's result, in request order."""
        results: list[Result | None] = [None] * len(requests)
        for i, result in self.stream(requests):
            results[i] = result
        missing = [i for i, r in enumerate(results) if r is None]
        if missing:
            raise RuntimeError(f"engine pool returned no result for {len(missing)} request(s), first {missing[0]}")
        return results  # type: ignore[return-value]

    def generate(
        self, prompts: Sequence[Prompt], sampling: SamplingConfig | Sequence[SamplingConfig] = SamplingConfig()
    ) -> list[Generation]:
        per_prompt = sampling_per_prompt(prompts, sampling)
        return self.run([GenerateRequest(p, s) for p, s in zip(prompts, per_prompt)])  # type: ignore[return-value]

    def score(self, prompts: Sequence[Prompt], continuations: Sequence[Prompt]) -> list[list[float]]:
        if len(prompts) != len(continuations):
            raise ValueError(f"{len(prompts)} prompts but {len(continuations)} continuations")
        return self.run([ScoreRequest(p, c) for p, c in zip(prompts, continuations)])  # type: ignore[return-value]
