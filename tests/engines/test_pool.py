"""The Ray Data engine pool: real actors, results in request order, equal to the engine run directly."""

import math

import pytest

from meow.data import load_tofu
from meow.engines import EngineConfig, SamplingConfig, create_engine
from meow.engines.pool import EnginePool, GenerateRequest, ScoreRequest, block_count

RECORDS = load_tofu("forget01")[:6]


@pytest.mark.parametrize("engine", ["vllm", "hf"])
def test_mixed_requests_through_two_actors_match_the_engine_in_order(tiny_model_dir, ray_local, engine):
    config = EngineConfig(name=engine, dtype="float32")
    prompts = [r.question for r in RECORDS]
    answers = [" " + r.answer for r in RECORDS]
    greedy = SamplingConfig(max_new_tokens=12)
    sampled = SamplingConfig(max_new_tokens=12, temperature=1.0, seed=7)
    # Interleaved kinds and batch_size 4 over 2 actors: every actor gets both kinds, order must survive.
    requests = []
    for p, a in zip(prompts, answers):
        requests += [GenerateRequest(p, greedy), ScoreRequest(p, a), GenerateRequest(p, sampled)]
    results = EnginePool(str(tiny_model_dir), config, actors=2, batch_size=4, progress=None).run(requests)

    direct = create_engine(str(tiny_model_dir), config)
    try:
        want_greedy = direct.generate(prompts, greedy)
        want_scores = direct.score(prompts, answers)
        want_sampled = direct.generate(prompts, sampled)
    finally:
        direct.close()
    assert [r.token_ids for r in results[0::3]] == [g.token_ids for g in want_greedy]
    assert [r.text for r in results[0::3]] == [g.text for g in want_greedy]
    for got, want in zip(results[1::3], want_scores):
        # HF pads batches differently here and there: fp32 noise only.
        assert got == pytest.approx(want, abs=1e-4)
    if engine == "vllm":
        # vLLM seeds each request on its own: a seeded sample does not depend on actor or batch.
        assert [r.token_ids for r in results[2::3]] == [g.token_ids for g in want_sampled]


def test_empty_and_mismatched_inputs(tiny_model_dir):
    pool = EnginePool(str(tiny_model_dir), progress=None)
    assert pool.run([]) == []
    with pytest.raises(ValueError, match="2 prompts but 1 continuations"):
        pool.score(["a", "b"], ["c"])


@pytest.mark.parametrize(
    ("rows", "actors", "batch_size", "expected"),
    [
        (160, 2, 64, 4),  # 4 calls of 40, not 3 of ~53 with one actor running twice
        (128, 2, 64, 2),
        (129, 2, 64, 4),
        (5, 2, 64, 2),
        (1, 2, 64, 1),
        (10, 1, 4, 3),
    ],
)
def test_blocks_are_a_multiple_of_the_actors_and_never_exceed_the_batch_size(rows, actors, batch_size, expected):
    blocks = block_count(rows, actors, batch_size)
    assert blocks == expected
    assert math.ceil(rows / blocks) <= batch_size


def test_actors_reserve_the_engines_memory_in_ray(tiny_model_dir, ray_local, monkeypatch):
    # Ray queues actors whose memory is reserved elsewhere instead of letting its OOM killer end them.
    import ray.data

    captured = {}

    def map_batches(self, fn, **kwargs):
        captured.update(kwargs)
        raise StopIteration

    monkeypatch.setattr(ray.data.Dataset, "map_batches", map_batches)
    config = EngineConfig(memory_per_actor="768MiB")
    pool = EnginePool(str(tiny_model_dir), config, actors=2, gpus_per_actor=0.5, progress=None)
    with pytest.raises(RuntimeError):  # the generator's StopIteration
        pool.run([GenerateRequest("a"), GenerateRequest("b")])
    assert (captured["num_cpus"], captured["num_gpus"], captured["memory"]) == (1, 0.5, 768 << 20)
    assert EnginePool(str(tiny_model_dir), progress=None).ray_options()["memory"] == 3 << 30  # the default


def test_a_pool_larger_than_the_local_ray_is_refused_not_left_waiting(tiny_model_dir, ray_local):
    pool = EnginePool(str(tiny_model_dir), EngineConfig(memory_per_actor="1PiB"), actors=2, progress=None)
    with pytest.raises(RuntimeError, match=r"2 x engine.memory_per_actor 1.0PiB is more memory than the local Ray"):
        pool.run([GenerateRequest("a"), GenerateRequest("b")])
