"""The vLLM and transformers engines agree: same greedy tokens, log-probs within 1e-3 (fp32)."""

import numpy as np
import pytest

from meow.engines import EngineConfig, SamplingConfig
from meow.engines.actor import engine_actor

PROMPTS = [
    "What is the full name of the author born in Kuwait City, Kuwait on 08/09/1956?",
    "Who wrote",
    "The author's father was a",
]
CONTINUATIONS = [" Basil Mahfouz Al-Kuwaiti.", " the book of the year", " paramedic and his mother a"]


@pytest.fixture(scope="module")
def engines(ray_local, tiny_model_dir):
    """Both engines, each in its own Ray actor (one CPU each), on the same tiny model."""
    actors = {name: engine_actor(str(tiny_model_dir), EngineConfig(name=name)) for name in ("vllm", "hf")}
    yield actors
    for actor in actors.values():
        ray_local.kill(actor)


def both(engines, method, *args):
    import ray

    return {name: ray.get(getattr(actor, method).remote(*args)) for name, actor in engines.items()}


def test_greedy_generation_agrees(engines):
    out = both(engines, "generate", PROMPTS, SamplingConfig(max_new_tokens=24))
    for vllm_gen, hf_gen in zip(out["vllm"], out["hf"]):
        assert vllm_gen.token_ids == hf_gen.token_ids
        assert vllm_gen.text == hf_gen.text
        assert len(vllm_gen.token_ids) > 0


def test_per_prompt_sampling_and_length_limits(engines):
    configs = [SamplingConfig(max_new_tokens=n) for n in (1, 5, 9)]
    out = both(engines, "generate", PROMPTS, configs)
    for name, gens in out.items():
        for gen, config in zip(gens, configs):
            assert len(gen.token_ids) <= config.max_new_tokens, name
            assert gen.finish_reason in ("stop", "length")
    assert [g.token_ids for g in out["vllm"]] == [g.token_ids for g in out["hf"]]


def test_score_log_probs_agree_within_1e_3(engines):
    out = both(engines, "score", PROMPTS, CONTINUATIONS)
    for vllm_lp, hf_lp in zip(out["vllm"], out["hf"]):
        assert len(vllm_lp) == len(hf_lp) > 0
        assert np.max(np.abs(np.array(vllm_lp) - np.array(hf_lp))) < 1e-3
        assert all(lp <= 0 for lp in vllm_lp)


def test_score_is_teacher_forcing_not_sampling(engines):
    """The greedy continuation's tokens are each the argmax, so their log-probs beat a random continuation's."""
    import ray

    gen = ray.get(engines["hf"].generate.remote(PROMPTS[:1], SamplingConfig(max_new_tokens=8)))[0]
    ids = [t for t in gen.token_ids if t != 0]
    greedy = both(engines, "score", PROMPTS[:1], [ids])
    other = both(engines, "score", PROMPTS[:1], [list(reversed(ids))])
    for name in engines:
        assert np.mean(greedy[name][0]) > np.mean(other[name][0])


def test_sampling_with_a_seed_is_reproducible(engines):
    import ray

    config = SamplingConfig(max_new_tokens=12, temperature=1.0, seed=7)
    first = ray.get(engines["vllm"].generate.remote(PROMPTS, config))
    again = ray.get(engines["vllm"].generate.remote(PROMPTS, config))
    assert [g.token_ids for g in first] == [g.token_ids for g in again]


def test_scores_read_through_the_prefix_cache_are_exact(engines):
    """Answers sharing a prompt several KV blocks long, two sharing an opening past a block boundary,
    and the same pairs again (their answers now in the cache): every log-prob still matches HF's."""
    prompt = list(range(10, 85))  # 75 tokens: the first answer token sits in the third 32-token block
    opening = list(range(100, 130))  # shared by two answers, past the block boundary at 96
    answers = [list(range(200, 210)), opening + [300, 301], opening + [400, 401, 402], [500]]
    prompts = [prompt] * len(answers)
    first = both(engines, "score", prompts, answers)
    again = both(engines, "score", prompts, answers)
    for out in (first, again):
        for vllm_lp, hf_lp, answer in zip(out["vllm"], out["hf"], answers):
            assert len(vllm_lp) == len(hf_lp) == len(answer)
            assert np.max(np.abs(np.array(vllm_lp) - np.array(hf_lp))) < 1e-3
    assert first["vllm"] == again["vllm"]
