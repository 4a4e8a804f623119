"""Continuous batching for one vLLM engine inside a Serve replica.

`Engine.generate` is a blocking call over a fixed list of prompts: requests arriving while it
runs would wait for the whole batch, and batches of uneven size keep alternating under steady
load. Here one thread owns vLLM's `LLMEngine` and steps it; a request joins the running batch
at the next decode step and returns as soon as its own sequence finishes. The replica's event
loop only enqueues work and awaits futures, so it stays free for health checks and new requests.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import itertools
import logging
import queue
import threading
from dataclasses import dataclass
from typing import Any

from meow.engines import Generation, SamplingConfig
from meow.engines.vllm_engine import VLLMEngine

log = logging.getLogger(__name__)


@dataclass
class _Add:
    request_id: str
    token_ids: list[int]
    params: Any  # vllm.SamplingParams
    future: concurrent.futures.Future


@dataclass
class _Abort:
    request_id: str


class EngineDied(RuntimeError):
    pass


class ContinuousBatcher:
    """`generate` and `score` one sequence at a time, batched with everything else in flight.

    From construction to `close` the batcher's thread owns the engine: it steps whatever the
    engine holds, so nothing else may call the engine meanwhile.
    """

    def __init__(self, engine: VLLMEngine):
        self.engine = engine
        self._core = engine.llm.llm_engine
        self._inbox: queue.SimpleQueue[_Add | _Abort | None] = queue.SimpleQueue()
        self._pending: dict[str, concurrent.futures.Future] = {}
        self._ids = itertools.count()
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._loop, name="vllm-step-loop", daemon=True)
        self._thread.start()

    async def generate(self, token_ids: list[int], sampling: SamplingConfig) -> Generation:
        output = await self._submit(token_ids, self.engine._sampling_params(sampling))
        return self.engine._finish(list(output.outputs[0].token_ids), sampling)

    async def score(self, prompt_ids: list[int], continuation_ids: list[int]) -> list[float]:
        """Teacher-forced log-prob of each continuation token (as `Engine.score`)."""
        params = self.engine._sampling_params(SamplingConfig(max_new_tokens=1), prompt_logprobs=0, detokenize=False)
        output = await self._submit(prompt_ids + continuation_ids, params)
        positions = output.prompt_logprobs[len(prompt_ids) :]
        return [lp[token].logprob for lp, token in zip(positions, continuation_ids)]

    async def _submit(self, token_ids: list[int], params: Any):
        from vllm.sampling_params import RequestOutputKind

        if self.error is not None:
            raise EngineDied("the engine loop stopped") from self.error
        params.output_kind = RequestOutputKind.FINAL_ONLY
        request = _Add(f"serve-{next(self._ids)}", token_ids, params, concurrent.futures.Future())
        self._inbox.put(request)
        try:
            return await asyncio.wrap_future(request.future)
        except asyncio.CancelledError:
            # The client went away (or Serve cancelled the request): free its batch slot.
            self._inbox.put(_Abort(request.request_id))
            raise

    def close(self) -> None:
        """Stop the step loop (requests still in flight are dropped)."""
        self._inbox.put(None)
        self._thread.join(timeout=30)

    def _loop(self) -> None:
        try:
            while self._drain(block=not self._core.has_unfinished_requests()):
                if not self._core.has_unfinished_requests():
                    continue
                for output in self._core.step():
                    if output.finished:
                        future = self._pending.pop(output.request_id, None)
                        if future is not None:
                            future.set_result(output)
        except BaseException as e:  # noqa: BLE001 - any failure ends the engine; callers must hear of it
            log.exception("vLLM step loop stopped")
            self.error = e
        finally:
            # Leave the engine with nothing in flight, and no caller waiting forever.
            if self._pending and self.error is None:
                self._core.abort_request(list(self._pending))
            for future in self._pending.values():
                future.set_exception(EngineDied("the engine loop stopped"))
            self._pending.clear()

    def _drain(self, block: bool) -> bool:
        """Apply queued adds and aborts; wait for one when idle. False once asked to stop."""
        while True:
            try:
                item = self._inbox.get(block=block)
            except queue.Empty:
                return True
            block = False
            if item is None:
                return False
            if isinstance(item, _Abort):
                if self._pending.pop(item.request_id, None) is not None:
                    self._core.abort_request([item.request_id])
                continue
            # RUNNING futures can no longer be cancelled, so set_result below cannot race a cancel.
            if not item.future.set_running_or_notify_cancel():
                continue
            try:
                self._core.add_request(item.request_id, {"prompt_token_ids": item.token_ids}, item.params)
            except Exception as e:  # noqa: BLE001 - a bad request fails alone, the loop goes on
                item.future.set_exception(e)
                continue
            self._pending[item.request_id] = item.future
