"""Continuous batching over a real in-process vLLM engine (tiny model)."""

from __future__ import annotations

import asyncio
from contextlib import contextmanager

import pytest

from meow.engines import EngineConfig, SamplingConfig, create_engine

PROMPTS = ["Who wrote", "The author born in", "Basil Mahfouz"]


@pytest.fixture(scope="module")
def engine(tiny_model_dir):
    engine = create_engine(tiny_model_dir, EngineConfig(kv_cache_bytes=64 << 20, max_model_len=512))
    yield engine
    engine.close()


@contextmanager
def batching(engine):
    """A batcher owning `engine` for the block (the engine must not be called directly meanwhile)."""
    from meow.serve.batcher import ContinuousBatcher

    batcher = ContinuousBatcher(engine)
    try:
        yield batcher
    finally:
        batcher.close()


def test_concurrent_requests_match_one_batch_call(engine):
    sampling = [SamplingConfig(max_new_tokens=n) for n in (5, 12, 20)]
    expected = [g.text for g in engine.generate(PROMPTS, sampling)]
    [score] = engine.score(["Who wrote"], [" the book"])

    async def together(batcher):
        texts = await asyncio.gather(*(batcher.generate(engine.encode(p), s) for p, s in zip(PROMPTS, sampling)))
        logprobs = await batcher.score(engine.encode("Who wrote"), engine.encode_continuation(" the book"))
        return [g.text for g in texts], logprobs

    with batching(engine) as batcher:
        texts, logprobs = asyncio.run(together(batcher))
    assert texts == expected
    assert logprobs == pytest.approx(score, abs=1e-4)


def test_a_bad_request_fails_alone_and_a_cancelled_one_frees_its_slot(engine):
    async def scenario(batcher):
        long = asyncio.create_task(batcher.generate(engine.encode("Who"), SamplingConfig(max_new_tokens=400)))
        await asyncio.sleep(0.05)
        long.cancel()
        with pytest.raises(Exception, match="maximum context length"):
            await batcher.generate(list(range(5, 600)), SamplingConfig(max_new_tokens=2))
        fine = await batcher.generate(engine.encode("Who"), SamplingConfig(max_new_tokens=3))
        await asyncio.sleep(0.05)
        return fine

    with batching(engine) as batcher:
        assert len(asyncio.run(scenario(batcher)).token_ids) == 3
        assert batcher._pending == {} and batcher.error is None
        assert not batcher._core.has_unfinished_requests()


def test_closing_fails_what_is_in_flight_and_leaves_the_engine_clean(engine):
    async def scenario(batcher):
        task = asyncio.create_task(batcher.generate(engine.encode("Who"), SamplingConfig(max_new_tokens=400)))
        await asyncio.sleep(0.05)
        await asyncio.to_thread(batcher.close)
        return await asyncio.gather(task, return_exceptions=True)

    with batching(engine) as batcher:
        [outcome] = asyncio.run(scenario(batcher))
    assert type(outcome).__name__ == "EngineDied"
    assert not batcher._thread.is_alive()
    assert not batcher._core.has_unfinished_requests()
    assert len(engine.generate(["Who"], SamplingConfig(max_new_tokens=3))[0].token_ids) == 3
